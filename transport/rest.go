package transport

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/transport/wire"
)

type roomJSON struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	LastID string `json:"last_id"`
	Unread int64  `json:"unread"`
}

func (s *Server) listRooms(c echo.Context) error {
	sums, err := s.opts.Engine.Rooms(c.Request().Context(), claimsOf(c).User)
	if err != nil {
		return err
	}
	rooms := make([]roomJSON, len(sums))
	for i, r := range sums {
		rooms[i] = roomJSON{Name: r.Name, Kind: string(r.Kind), LastID: r.LastID.String(), Unread: r.Unread}
	}
	return c.JSON(http.StatusOK, map[string]any{"rooms": rooms})
}

func (s *Server) createRoom(c echo.Context) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := s.bind(c, &req); err != nil {
		return err
	}
	if err := s.opts.Engine.CreateChannel(c.Request().Context(), req.Name); err != nil {
		if errors.Is(err, engine.ErrExists) {
			return newAPIError(http.StatusConflict, wire.CodeRoomExists, "room "+req.Name+" exists")
		}
		return err
	}
	return c.JSON(http.StatusCreated, map[string]string{"name": req.Name, "kind": string(engine.KindChannel)})
}

func (s *Server) openDirect(c echo.Context) error {
	var req struct {
		User string `json:"user"`
	}
	if err := s.bind(c, &req); err != nil {
		return err
	}
	name, err := s.opts.Engine.OpenDirect(c.Request().Context(), claimsOf(c).User, req.User)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"name": name, "kind": string(engine.KindDirect)})
}

// roomParam returns the room of the path, unescaped (dm:a:b may arrive
// as dm%3Aa%3Ab).
func roomParam(c echo.Context) (string, error) {
	room, err := url.PathUnescape(c.Param("room"))
	if err != nil {
		return "", newAPIError(http.StatusBadRequest, wire.CodeInvalid, "bad room in path")
	}
	return room, nil
}

func messageJSON(m engine.Message) wire.Message {
	return wire.Message{ID: m.ID.String(), Room: m.Room, User: m.User, Text: m.Text, TS: m.TS, ClientID: m.ClientID}
}

func (s *Server) history(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	q := c.QueryParams()
	hq := engine.HistoryQuery{Limit: wire.DefaultHistorySize}
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > wire.MaxHistorySize {
			return newAPIError(http.StatusBadRequest, wire.CodeInvalid, "limit must be a whole number from 1 to 200")
		}
		hq.Limit = n
	}
	for name, dst := range map[string]**engine.StreamPos{"before": &hq.Before, "after": &hq.After} {
		if v, ok := q[name]; ok {
			p, err := engine.ParsePos(v[0])
			if err != nil {
				return newAPIError(http.StatusBadRequest, wire.CodeInvalid, name+" must be a stream id such as 1700000000000-0")
			}
			*dst = &p
		}
	}
	msgs, more, err := s.opts.Engine.History(c.Request().Context(), claimsOf(c).User, room, hq)
	if err != nil {
		return err
	}
	out := make([]wire.Message, len(msgs))
	for i, m := range msgs {
		out[i] = messageJSON(m)
	}
	return c.JSON(http.StatusOK, map[string]any{"room": room, "messages": out, "has_more": more})
}

func (s *Server) postMessage(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	var req struct {
		Text     string `json:"text"`
		ClientID string `json:"client_id"`
	}
	if err := s.bind(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	user := claimsOf(c).User
	res, err := s.opts.Engine.SendWait(ctx, user, room, req.Text, req.ClientID)
	if err != nil {
		return err
	}
	m := res.Message
	if res.Duplicate {
		// Answer with the message first stored under this client_id.
		if first, err := s.opts.Engine.Get(ctx, user, room, m.ID); err == nil {
			m = first
		}
	}
	return c.JSON(http.StatusCreated, map[string]any{"message": messageJSON(m)})
}

package transport

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/transport/wire"
)

// roomRoutes mounts the rooms, messages and members routes on g (which
// requires a user token).
func (s *Server) roomRoutes(g *echo.Group) {
	g.GET("/rooms", s.listRooms)
	g.POST("/rooms", s.createRoom)
	g.PATCH("/rooms/:room", s.setTopic)
	g.POST("/dms", s.openDirect)
	g.GET("/rooms/:room/messages", s.history)
	g.POST("/rooms/:room/messages", s.postMessage)
	g.GET("/rooms/:room/messages/:id", s.getMessage)
	g.PATCH("/rooms/:room/messages/:id", s.editMessage)
	g.DELETE("/rooms/:room/messages/:id", s.deleteMessage)
	g.PUT("/rooms/:room/messages/:id/reactions/:emoji", s.react(true))
	g.DELETE("/rooms/:room/messages/:id/reactions/:emoji", s.react(false))
	g.GET("/rooms/:room/messages/:id/replies", s.replies)
	g.GET("/rooms/:room/members", s.members)
	g.POST("/rooms/:room/members", s.addMember)
	g.PUT("/rooms/:room/members/:user", s.setRole)
	g.DELETE("/rooms/:room/members/:user", s.removeMember)
	g.POST("/rooms/:room/bans", s.restrict(false))
	g.GET("/rooms/:room/bans", s.listBans)
	g.DELETE("/rooms/:room/bans/:user", s.lift(false))
	g.POST("/rooms/:room/mutes", s.restrict(true))
	g.DELETE("/rooms/:room/mutes/:user", s.lift(true))
}

// pathParam returns a path parameter decoded exactly once. Echo matches
// the raw path when the request escaped something it need not have
// (dm%3Aa%3Ab) and the decoded one otherwise; decoding the decoded one
// again would turn dm%253Aa%253Ab into dm:a:b.
func pathParam(c echo.Context, name string) (string, error) {
	v := c.Param(name)
	if c.Request().URL.RawPath == "" {
		return v, nil
	}
	u, err := url.PathUnescape(v)
	if err != nil {
		return "", errorf(engine.ErrInvalid, "bad %s in path", name)
	}
	return u, nil
}

func roomParam(c echo.Context) (string, error) { return pathParam(c, "room") }

func idParam(c echo.Context) (engine.StreamPos, error) {
	v, err := pathParam(c, "id")
	if err != nil {
		return engine.StreamPos{}, err
	}
	p, err := engine.ParsePos(v)
	if err != nil || p.IsZero() {
		return engine.StreamPos{}, errorf(engine.ErrNotFound, "no such message")
	}
	return p, nil
}

// limitParam reads ?limit: def when absent, 400 outside [1, max].
func limitParam(c echo.Context, def, max int) (int, error) {
	v, ok := c.QueryParams()["limit"]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v[0])
	if err != nil || n < 1 || n > max {
		return 0, errorf(engine.ErrInvalid, "limit must be a whole number from 1 to %d", max)
	}
	return n, nil
}

// posQuery reads an optional stream-ID query parameter.
func posQuery(c echo.Context, name string) (*engine.StreamPos, error) {
	v, ok := c.QueryParams()[name]
	if !ok {
		return nil, nil
	}
	p, err := engine.ParsePos(v[0])
	if err != nil {
		return nil, errorf(engine.ErrInvalid, "%s must be a stream id such as 1700000000000-0", name)
	}
	return &p, nil
}

type roomJSON struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	LastID   string `json:"last_id"`
	Unread   int64  `json:"unread"`
	Mentions int64  `json:"mentions"`
	Topic    string `json:"topic,omitempty"`
	Role     string `json:"role,omitempty"`
}

func (s *Server) listRooms(c echo.Context) error {
	limit, err := limitParam(c, 200, 500)
	if err != nil {
		return err
	}
	after := c.QueryParam("after")
	sums, more, err := s.opts.Engine.Rooms(c.Request().Context(), claimsOf(c).User, after, limit)
	if err != nil {
		return err
	}
	rooms := make([]roomJSON, len(sums))
	for i, r := range sums {
		rooms[i] = roomJSON{Name: r.Name, Kind: string(r.Kind), LastID: r.LastID.String(), Unread: r.Unread,
			Mentions: r.Mentions, Topic: r.Topic, Role: string(r.Role)}
	}
	return c.JSON(http.StatusOK, map[string]any{"rooms": rooms, "has_more": more})
}

type createRoomBody struct {
	Name    string   `json:"name"`
	Private bool     `json:"private"`
	Topic   string   `json:"topic"`
	Owner   string   `json:"owner"`   // server API only
	Members []string `json:"members"` // server API only
}

func (s *Server) createRoom(c echo.Context) error {
	var req createRoomBody
	if err := s.bind(c, &req); err != nil {
		return err
	}
	spec := engine.RoomSpec{Name: req.Name, Private: req.Private, Topic: req.Topic}
	return s.doCreateRoom(c, claimsOf(c).User, spec, false)
}

func (s *Server) doCreateRoom(c echo.Context, user string, spec engine.RoomSpec, byAPI bool) error {
	if err := s.opts.Engine.CreateRoom(c.Request().Context(), user, spec, byAPI); err != nil {
		if errors.Is(err, engine.ErrExists) {
			return errorf(engine.ErrExists, "room %s exists", spec.Name)
		}
		return err
	}
	kind := engine.KindChannel
	if spec.Private {
		kind = engine.KindPrivate
	}
	body := map[string]string{"name": spec.Name, "kind": string(kind)}
	if spec.Topic != "" {
		body["topic"] = spec.Topic
	}
	return c.JSON(http.StatusCreated, body)
}

func (s *Server) setTopic(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	var req struct {
		Topic *string `json:"topic"`
	}
	if err := s.bind(c, &req); err != nil {
		return err
	}
	if req.Topic == nil {
		return errorf(engine.ErrInvalid, "topic is required")
	}
	acc, err := s.opts.Engine.SetTopic(c.Request().Context(), claimsOf(c).User, room, *req.Topic)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"name": room, "kind": string(acc.Kind), "topic": acc.Topic})
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

func messagesJSON(ms []engine.Message) []wire.Message {
	out := make([]wire.Message, len(ms))
	for i, m := range ms {
		out[i] = messageJSON(m)
	}
	return out
}

func (s *Server) history(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	hq := engine.HistoryQuery{}
	if hq.Limit, err = limitParam(c, wire.DefaultHistorySize, wire.MaxHistorySize); err != nil {
		return err
	}
	if hq.Before, err = posQuery(c, "before"); err != nil {
		return err
	}
	if hq.After, err = posQuery(c, "after"); err != nil {
		return err
	}
	page, err := s.opts.Engine.History(c.Request().Context(), claimsOf(c).User, room, hq)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"room": room, "messages": messagesJSON(page.Messages), "has_more": page.More})
}

type postBody struct {
	Text     string `json:"text"`
	ClientID string `json:"client_id"`
	ReplyTo  string `json:"reply_to"`
}

func (b postBody) write(room string) (engine.Write, error) {
	w := engine.Write{Kind: engine.EntryMessage, Room: room, Text: b.Text, ClientID: b.ClientID}
	if b.ReplyTo != "" {
		p, err := engine.ParsePos(b.ReplyTo)
		if err != nil || p.IsZero() {
			return w, errorf(engine.ErrInvalid, "reply_to must be a message id")
		}
		w.ReplyTo = p
	}
	return w, nil
}

func (s *Server) postMessage(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	var req postBody
	if err := s.bind(c, &req); err != nil {
		return err
	}
	w, err := req.write(room)
	if err != nil {
		return err
	}
	return s.post(c, claimsOf(c).User, w)
}

// post stores w for user and answers 201 with the message.
func (s *Server) post(c echo.Context, user string, w engine.Write) error {
	res, err := s.opts.Engine.Post(c.Request().Context(), user, w)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{"message": entryJSON(&res.Entry)})
}

func (s *Server) getMessage(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	id, err := idParam(c)
	if err != nil {
		return err
	}
	m, err := s.opts.Engine.Message(c.Request().Context(), claimsOf(c).User, room, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"message": messageJSON(m)})
}

// act runs a write against an existing message and answers with it in
// its current state (edit) or with 204 (delete, reactions).
func (s *Server) act(c echo.Context, w engine.Write, answer bool) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	id, err := idParam(c)
	if err != nil {
		return err
	}
	w.Room, w.Target = room, id
	ctx, user := c.Request().Context(), claimsOf(c).User
	if _, err := s.opts.Engine.Post(ctx, user, w); err != nil {
		return err
	}
	if !answer {
		return c.NoContent(http.StatusNoContent)
	}
	m, err := s.opts.Engine.Message(ctx, user, room, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"message": messageJSON(m)})
}

func (s *Server) editMessage(c echo.Context) error {
	var req struct {
		Text *string `json:"text"`
	}
	if err := s.bind(c, &req); err != nil {
		return err
	}
	if req.Text == nil {
		return errorf(engine.ErrInvalid, "text is required")
	}
	return s.act(c, engine.Write{Kind: engine.EntryEdit, Text: *req.Text}, true)
}

func (s *Server) deleteMessage(c echo.Context) error {
	return s.act(c, engine.Write{Kind: engine.EntryDelete}, false)
}

func (s *Server) react(on bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		emoji, err := pathParam(c, "emoji")
		if err != nil {
			return err
		}
		return s.act(c, engine.Write{Kind: engine.EntryReaction, Emoji: emoji, On: on}, false)
	}
}

func (s *Server) replies(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	id, err := idParam(c)
	if err != nil {
		return err
	}
	limit, err := limitParam(c, wire.DefaultHistorySize, wire.MaxHistorySize)
	if err != nil {
		return err
	}
	after, err := posQuery(c, "after")
	if err != nil {
		return err
	}
	var from engine.StreamPos
	if after != nil {
		from = *after
	}
	root, page, err := s.opts.Engine.Replies(c.Request().Context(), claimsOf(c).User, room, id, from, limit)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"room": room, "root": messageJSON(root),
		"messages": messagesJSON(page.Messages), "has_more": page.More})
}

type memberJSON struct {
	User   string `json:"user"`
	Role   string `json:"role"`
	Online bool   `json:"online"`
}

func (s *Server) members(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	limit, err := limitParam(c, 200, 1000)
	if err != nil {
		return err
	}
	ms, more, err := s.opts.Engine.Members(c.Request().Context(), claimsOf(c).User, room, c.QueryParam("after"), limit)
	if err != nil {
		return err
	}
	out := make([]memberJSON, len(ms))
	for i, m := range ms {
		out[i] = memberJSON{User: m.User, Role: string(m.Role), Online: m.Online}
	}
	return c.JSON(http.StatusOK, map[string]any{"members": out, "has_more": more})
}

func (s *Server) addMember(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	var req struct {
		User string `json:"user"`
	}
	if err := s.bind(c, &req); err != nil {
		return err
	}
	role, err := s.opts.Engine.AddMember(c.Request().Context(), claimsOf(c).User, room, req.User)
	if err != nil && !errors.Is(err, engine.ErrExists) { // already a member: done
		return err
	}
	user, _ := engine.NormalizeUsername(req.User)
	return c.JSON(http.StatusCreated, map[string]string{"user": user, "role": string(role)})
}

func (s *Server) setRole(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	target, err := pathParam(c, "user")
	if err != nil {
		return err
	}
	var req struct {
		Role string `json:"role"`
	}
	if err := s.bind(c, &req); err != nil {
		return err
	}
	if err := s.opts.Engine.SetRole(c.Request().Context(), claimsOf(c).User, room, target, engine.Role(req.Role)); err != nil {
		return err
	}
	user, _ := engine.NormalizeUsername(target)
	return c.JSON(http.StatusOK, map[string]string{"user": user, "role": req.Role})
}

func (s *Server) removeMember(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	target, err := pathParam(c, "user")
	if err != nil {
		return err
	}
	if err := s.opts.Engine.RemoveMember(c.Request().Context(), claimsOf(c).User, room, target); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type banJSON struct {
	User  string `json:"user"`
	Until string `json:"until,omitempty"`
}

func untilJSON(ms int64) string {
	if ms <= 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

func (s *Server) restrict(mute bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		room, err := roomParam(c)
		if err != nil {
			return err
		}
		var req struct {
			User    string `json:"user"`
			Seconds *int64 `json:"seconds"`
		}
		if err := s.bind(c, &req); err != nil {
			return err
		}
		var d time.Duration
		if req.Seconds != nil {
			if *req.Seconds < 1 || *req.Seconds > int64(engine.MaxBanDuration/time.Second) {
				return errorf(engine.ErrInvalid, "seconds must be 1 to 31536000")
			}
			d = time.Duration(*req.Seconds) * time.Second
		}
		ctx, user := c.Request().Context(), claimsOf(c).User
		var until time.Time
		if mute {
			until, err = s.opts.Engine.Mute(ctx, user, room, req.User, d)
		} else {
			until, err = s.opts.Engine.Ban(ctx, user, room, req.User, d)
		}
		if err != nil {
			return err
		}
		target, _ := engine.NormalizeUsername(req.User)
		out := banJSON{User: target}
		if !until.IsZero() {
			out.Until = untilJSON(until.UnixMilli())
		}
		return c.JSON(http.StatusCreated, out)
	}
}

func (s *Server) listBans(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	bans, err := s.opts.Engine.Bans(c.Request().Context(), claimsOf(c).User, room, false)
	if err != nil {
		return err
	}
	out := make([]banJSON, len(bans))
	for i, b := range bans {
		out[i] = banJSON{User: b.User, Until: untilJSON(b.Until)}
	}
	return c.JSON(http.StatusOK, map[string]any{"bans": out})
}

func (s *Server) lift(mute bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		room, err := roomParam(c)
		if err != nil {
			return err
		}
		target, err := pathParam(c, "user")
		if err != nil {
			return err
		}
		if err := s.opts.Engine.Lift(c.Request().Context(), claimsOf(c).User, room, target, mute); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	}
}

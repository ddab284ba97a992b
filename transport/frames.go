package transport

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/transport/wire"
)

// The handlers of client frames: each decoded frame is passed to the engine
// and answered on the session queue, in order with messages.

func (c *conn) reply(v any) { c.sess.Enqueue(wire.Encode(v)) }

func (c *conn) replyError(e wire.Error) {
	if c.s.opts.Observe.ErrorFrame != nil {
		c.s.opts.Observe.ErrorFrame(e.Code)
	}
	c.reply(e)
}

func (c *conn) fail(f wire.ClientFrame, err error) {
	a := toAPI(err)
	if a.Code == wire.CodeRateLimited {
		kind := "rooms_per_conn"
		if f.Type == wire.TypeSend {
			kind = "send"
		}
		c.s.opts.Observe.rateLimited(kind)
	}
	if a.Code == wire.CodeInternal {
		c.s.log.Error("frame", "type", f.Type, "user", c.user, "err", err)
	}
	c.replyError(wire.Error{Type: wire.TypeError, Code: a.Code, Message: a.Message, Ref: f.Ref})
}

func invalid(msg string) error { return newAPIError(http.StatusBadRequest, wire.CodeInvalid, msg) }

func (c *conn) handle(ctx context.Context, f wire.ClientFrame) {
	e := c.s.opts.Engine
	needRoom := func() bool {
		if f.Room == "" {
			c.fail(f, invalid("room is required"))
			return false
		}
		return true
	}
	switch f.Type {
	case wire.TypePing:
		c.reply(wire.Pong{Type: wire.TypePong, Ref: f.Ref})
	case wire.TypeJoin:
		if !needRoom() {
			return
		}
		var since *engine.StreamPos
		if f.Since != "" {
			p, err := engine.ParsePos(f.Since)
			if err != nil {
				c.fail(f, invalid("since must be a stream id"))
				return
			}
			since = &p
		}
		err := c.sess.Join(ctx, f.Room, since, func(j engine.JoinInfo) {
			c.reply(wire.Joined{Type: wire.TypeJoined, Ref: f.Ref, Room: j.Room, LastID: j.LastID.String(), Online: j.Online, Recovered: j.Recovered})
		})
		if err != nil {
			c.fail(f, err)
		}
	case wire.TypeLeave:
		if !needRoom() {
			return
		}
		if err := c.sess.Leave(f.Room); err != nil && !errors.Is(err, engine.ErrNotFound) {
			c.fail(f, err)
			return
		}
		c.reply(wire.Left{Type: wire.TypeLeft, Ref: f.Ref, Room: f.Room})
	case wire.TypeSend:
		if !needRoom() {
			return
		}
		ref, room, arrived := f.Ref, f.Room, time.Now()
		err := c.sess.Send(ctx, f.Room, f.Text, f.ClientID, func(r engine.AppendResult, err error) {
			if err != nil {
				c.fail(f, err)
				return
			}
			c.reply(wire.Ack{Type: wire.TypeAck, Ref: ref, Room: room, ID: r.Message.ID.String(), ClientID: r.Message.ClientID})
			if c.s.opts.Observe.Ack != nil {
				c.s.opts.Observe.Ack(time.Since(arrived))
			}
		})
		if err != nil {
			c.fail(f, err)
		}
	case wire.TypeTyping:
		if !needRoom() {
			return
		}
		if err := e.Typing(ctx, c.user, f.Room); err != nil {
			c.fail(f, err)
		}
	case wire.TypeRead:
		if !needRoom() {
			return
		}
		id, err := engine.ParsePos(f.ID)
		if err != nil {
			c.fail(f, invalid("id must be a stream id"))
			return
		}
		if err := e.MarkRead(ctx, c.user, f.Room, id); err != nil {
			c.fail(f, err)
		}
	case wire.TypeAuth:
		if f.Token == "" {
			c.fail(f, invalid("token is required"))
			return
		}
		cl, err := c.s.verify(ctx, f.Token)
		if err != nil {
			if errors.Is(err, errUnauthorized) {
				err = newAPIError(http.StatusForbidden, wire.CodeForbidden, "token is invalid, expired or revoked")
			}
			c.fail(f, err)
			return
		}
		if cl.User != c.user {
			c.fail(f, newAPIError(http.StatusForbidden, wire.CodeForbidden, "token is for another user"))
			return
		}
		c.sess.SetToken(cl.ID)
		c.expires.Store(cl.Expires.UnixNano())
		c.expiry.Reset(time.Until(cl.Expires))
		c.reply(wire.Authed{Type: wire.TypeAuthed, Ref: f.Ref, ExpiresAt: cl.Expires.UTC().Format(time.RFC3339)})
	}
}

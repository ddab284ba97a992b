package transport

import (
	"context"
	"errors"
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
		switch f.Type {
		case wire.TypeSend, wire.TypeEdit, wire.TypeDelete, wire.TypeReact:
			kind = "send"
		}
		c.s.opts.Observe.rateLimited(kind)
	}
	if a.Code == wire.CodeInternal {
		c.s.log.Error("frame", "type", f.Type, "user", c.user, "err", err)
	}
	c.replyError(wire.Error{Type: wire.TypeError, Code: a.Code, Message: a.Message, Ref: f.Ref})
}

func invalid(msg string) error { return errorf(engine.ErrInvalid, "%s", msg) }

func (c *conn) handle(ctx context.Context, f wire.ClientFrame) {
	if f.Type == wire.TypePing {
		c.reply(wire.Pong{Type: wire.TypePong, Ref: f.Ref})
		return
	}
	if f.Type == wire.TypeAuth {
		c.auth(ctx, f)
		return
	}
	if f.Room == "" {
		c.fail(f, invalid("room is required"))
		return
	}
	switch f.Type {
	case wire.TypeJoin:
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
		if err := c.sess.Leave(f.Room); err != nil && !errors.Is(err, engine.ErrNotFound) {
			c.fail(f, err)
			return
		}
		c.reply(wire.Left{Type: wire.TypeLeft, Ref: f.Ref, Room: f.Room})
	case wire.TypeSend, wire.TypeEdit, wire.TypeDelete, wire.TypeReact:
		w, err := writeOf(f)
		if err != nil {
			c.fail(f, err)
			return
		}
		c.store(ctx, f, w)
	case wire.TypeTyping:
		if err := c.sess.Typing(ctx, f.Room); err != nil {
			c.fail(f, err)
		}
	case wire.TypeRead:
		id, err := engine.ParsePos(f.ID)
		if err != nil {
			c.fail(f, invalid("id must be a stream id"))
			return
		}
		if err := c.sess.MarkRead(ctx, f.Room, id); err != nil {
			c.fail(f, err)
		}
	}
}

// writeOf turns a send, edit, delete or react frame into an engine write.
func writeOf(f wire.ClientFrame) (engine.Write, error) {
	w := engine.Write{Room: f.Room, Text: f.Text, ClientID: f.ClientID, Emoji: f.Emoji, On: f.On == nil || *f.On}
	switch f.Type {
	case wire.TypeSend:
		w.Kind = engine.EntryMessage
		if f.ReplyTo != "" {
			p, err := engine.ParsePos(f.ReplyTo)
			if err != nil || p.IsZero() {
				return w, invalid("reply_to must be a message id")
			}
			w.ReplyTo = p
		}
		return w, nil
	case wire.TypeEdit:
		w.Kind = engine.EntryEdit
	case wire.TypeDelete:
		w.Kind = engine.EntryDelete
	case wire.TypeReact:
		w.Kind = engine.EntryReaction
		if f.Emoji == "" {
			return w, invalid("emoji is required")
		}
	}
	p, err := engine.ParsePos(f.ID)
	if err != nil || p.IsZero() {
		return w, invalid("id must be a message id")
	}
	w.Target = p
	return w, nil
}

// store stores w and acks it: with the message's id and client_id for a
// send, the event's id for an edit, deletion or reaction, and no id for a
// reaction that changed nothing.
func (c *conn) store(ctx context.Context, f wire.ClientFrame, w engine.Write) {
	ref, room, arrived := f.Ref, f.Room, time.Now()
	err := c.sess.Write(ctx, w, func(r engine.AppendResult, err error) {
		if err != nil {
			c.fail(f, err)
			return
		}
		ack := wire.Ack{Type: wire.TypeAck, Ref: ref, Room: room}
		if !r.Noop {
			ack.ID = r.Entry.ID.String()
		}
		if w.Kind == engine.EntryMessage {
			ack.ClientID = r.Entry.ClientID
		}
		c.reply(ack)
		if c.s.opts.Observe.Ack != nil && w.Kind == engine.EntryMessage {
			c.s.opts.Observe.Ack(time.Since(arrived))
		}
	})
	if err != nil {
		c.fail(f, err)
	}
}

func (c *conn) auth(ctx context.Context, f wire.ClientFrame) {
	if f.Token == "" {
		c.fail(f, invalid("token is required"))
		return
	}
	cl, err := c.s.verify(ctx, f.Token)
	if err != nil {
		if errors.Is(err, errUnauthorized) {
			err = errorf(engine.ErrForbidden, "token is invalid, expired or revoked")
		}
		c.fail(f, err)
		return
	}
	if cl.User != c.user {
		c.fail(f, errorf(engine.ErrForbidden, "token is for another user"))
		return
	}
	c.sess.SetToken(cl.ID, cl.Issued)
	c.setExpiry(cl.Expires)
	c.reply(wire.Authed{Type: wire.TypeAuthed, Ref: f.Ref, ExpiresAt: cl.Expires.UTC().Format(time.RFC3339)})
}

package transport

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/transport/wire"
)

// conn is one WebSocket connection. Two goroutines serve it: the HTTP
// handler's own, which reads and handles client frames, and a writer, the
// only one that writes data frames; the writer also pings and enforces the
// token's expiry. coder/websocket delivers pongs and close frames only to a
// reader, so the reader always runs.
type conn struct {
	s       *Server
	ws      *websocket.Conn
	cork    *corkConn
	sess    *engine.Session
	user    string
	batch   bool
	expires atomic.Int64  // token expiry, Unix nanoseconds
	reauth  chan struct{} // cap 1: expires changed
}

var (
	errExpired     = errors.New("token expired")
	errInvalidUTF8 = errors.New("text frame is not valid UTF-8")
)

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeHTTPError(w, newAPIError(http.StatusServiceUnavailable, wire.CodeUnavailable, "server is shutting down; reconnect"))
		return
	}
	tok := bearer(r)
	if tok == "" {
		writeHTTPError(w, errUnauthorized)
		return
	}
	cl, err := s.verify(r.Context(), tok)
	if err != nil {
		writeHTTPError(w, toAPI(err))
		return
	}
	if s.nconns.Add(1) > int64(s.opts.MaxConns) {
		s.nconns.Add(-1)
		s.opts.Observe.rateLimited("conns_per_instance")
		writeHTTPError(w, newAPIError(http.StatusServiceUnavailable, wire.CodeUnavailable, "instance is at its connection limit"))
		return
	}
	defer s.nconns.Add(-1)
	// Registered first so it runs last: Drain returns only after the
	// session below has left its rooms (presence goes offline).
	s.conns.Add(1)
	defer s.conns.Done()
	sess, err := s.opts.Engine.Connect(cl.User, cl.ID)
	if err != nil {
		if errors.Is(err, engine.ErrRateLimited) {
			s.opts.Observe.rateLimited("conns_per_user")
		}
		a := toAPI(err)
		retryAfter(w.Header(), a)
		writeHTTPError(w, a)
		return
	}
	defer sess.Close()
	cw := &corkWriter{ResponseWriter: w, timeout: s.opts.WriteTimeout}
	ws, err := websocket.Accept(cw, r, &websocket.AcceptOptions{
		OriginPatterns:  s.opts.AllowedOrigins,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return // Accept wrote the HTTP error (403 for a foreign Origin)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(s.opts.MaxFrame)

	c := &conn{s: s, ws: ws, cork: cw.conn, sess: sess, user: cl.User, batch: r.URL.Query().Get(wire.BatchQueryParam) == "1", reauth: make(chan struct{}, 1)}
	c.expires.Store(cl.Expires.UnixNano())
	s.mu.Lock()
	s.live[c] = struct{}{}
	s.mu.Unlock()
	if s.draining.Load() { // Drain may have listed the sockets before this one
		sess.Kick(engine.ErrShutdown)
	}
	defer func() {
		s.mu.Lock()
		delete(s.live, c)
		s.mu.Unlock()
	}()
	start := time.Now()
	connID := s.nextConn.Add(1)
	log := s.log.With("conn", connID, "user", cl.User)
	log.Info("connection opened", "batch", c.batch)

	// The writer decides how the connection ends; the reader ends when
	// the peer goes or the writer closes the socket.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	werr := make(chan error, 1)
	go func() { werr <- c.writeLoop(ctx) }()
	rerr := c.readLoop(r.Context())
	if rerr != nil && !isClosed(rerr) {
		c.closeWith(rerr)
	}
	cancel()
	err = <-werr
	if rerr != nil {
		err = rerr
	}
	// The code the close handshake carried (either side's), else the one
	// the server meant to send, else 1006: the peer vanished.
	code := websocket.CloseStatus(rerr)
	if code == -1 {
		code = websocket.CloseStatus(err)
	}
	if code == -1 {
		code = websocket.StatusAbnormalClosure
	}
	if s.opts.Observe.Closed != nil {
		s.opts.Observe.Closed(int(code))
	}
	log.Info("connection closed", "duration", time.Since(start).Round(time.Millisecond), "code", int(code), "reason", reason(err))
}

func reason(err error) string {
	if err == nil {
		return "closed"
	}
	return err.Error()
}

func isClosed(err error) bool {
	return websocket.CloseStatus(err) != -1 || errors.Is(err, context.Canceled)
}

// closeFor maps why a connection ends to its close code.
func closeFor(err error) (websocket.StatusCode, string) {
	switch {
	case errors.Is(err, engine.ErrSlowConsumer):
		return wire.CloseSlowConsumer, "too slow to keep up; reconnect and join with since"
	case errors.Is(err, engine.ErrRevoked):
		return wire.ClosePolicy, "token revoked"
	case errors.Is(err, errExpired):
		return wire.ClosePolicy, "token expired"
	case errors.Is(err, engine.ErrShutdown):
		return wire.CloseGoingAway, "server going away; reconnect and join with since"
	case errors.Is(err, errInvalidUTF8):
		return wire.CloseInvalidData, "text frame is not valid UTF-8"
	case errors.Is(err, websocket.ErrMessageTooBig):
		return wire.CloseTooBig, "frame too large"
	}
	return wire.CloseInternal, "internal error"
}

func (c *conn) closeWith(err error) {
	code, why := closeFor(err)
	_ = c.ws.Close(code, why)
}

func (c *conn) writeLoop(ctx context.Context) error {
	var frames []engine.Frame
	var buf bytes.Buffer
	var pinging atomic.Bool
	interval := c.s.opts.PingInterval
	nextPing := time.Now().Add(interval)
	timer := time.NewTimer(interval)
	defer timer.Stop()
	coalesce := time.NewTimer(time.Hour)
	defer coalesce.Stop()
	var lastWrite time.Time
	for {
		wakeAt := time.Unix(0, c.expires.Load())
		if nextPing.Before(wakeAt) {
			wakeAt = nextPing
		}
		timer.Reset(time.Until(wakeAt))
		var err error
		frames, err = c.sess.Next(ctx, frames, timer.C, c.reauth)
		switch {
		case errors.Is(err, engine.ErrWoken):
			now := time.Now()
			if !now.Before(time.Unix(0, c.expires.Load())) {
				c.closeWith(errExpired)
				return errExpired
			}
			if !now.Before(nextPing) {
				nextPing = now.Add(interval)
				if pinging.CompareAndSwap(false, true) {
					go func() {
						defer pinging.Store(false)
						pctx, cancel := context.WithTimeout(ctx, c.s.opts.WriteTimeout)
						defer cancel()
						if err := c.ws.Ping(pctx); err != nil && ctx.Err() == nil {
							_ = c.ws.CloseNow() // a peer that does not answer is gone
						}
					}()
				}
			}
			continue
		case err != nil:
			if errors.Is(err, engine.ErrShutdown) {
				c.flushOnShutdown(&buf)
			}
			if ctx.Err() == nil {
				c.closeWith(err)
			}
			return err
		}
		if c.batch && c.s.opts.BatchWindow > 0 {
			if wait := c.s.opts.BatchWindow - time.Since(lastWrite); wait > 0 {
				coalesce.Reset(wait)
				select {
				case <-coalesce.C:
				case <-ctx.Done():
				case <-c.sess.Done():
				}
				frames = c.sess.More(frames)
			}
			lastWrite = time.Now()
		}
		if err := c.write(frames, &buf); err != nil {
			_ = c.ws.CloseNow()
			return err
		}
	}
}

// flushOnShutdown lets in-flight sends finish and writes their acks before
// the 1001 close, so a client does not retry what was stored.
func (c *conn) flushOnShutdown(buf *bytes.Buffer) {
	deadline := time.Now().Add(2 * time.Second)
	for c.sess.Inflight() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_ = c.write(c.sess.Drain(), buf)
}

// write sends frames: one WebSocket message each, or, for a ?batch=1
// client, as few messages as fit the frame limit, newline-separated. The
// messages collect in the corked connection and leave in one system call,
// bounded by the write timeout.
func (c *conn) write(frames []engine.Frame, buf *bytes.Buffer) error {
	c.cork.Cork()
	err := c.writeFrames(context.Background(), frames, buf)
	if uerr := c.cork.Uncork(); err == nil {
		err = uerr
	}
	if err != nil {
		return err
	}
	if obs := c.s.opts.Observe.Delivery; obs != nil {
		now := time.Now().UnixMilli()
		for _, f := range frames {
			if f.Ms > 0 {
				obs(time.Duration(now-int64(f.Ms)) * time.Millisecond)
			}
		}
	}
	return nil
}

func (c *conn) writeFrames(ctx context.Context, frames []engine.Frame, buf *bytes.Buffer) error {
	if !c.batch || len(frames) == 1 {
		for _, f := range frames {
			if err := c.ws.Write(ctx, websocket.MessageText, f.Data); err != nil {
				return err
			}
		}
		return nil
	}
	limit := int(c.s.opts.MaxFrame)
	buf.Reset()
	for _, fr := range frames {
		f := fr.Data
		if buf.Len() > 0 && buf.Len()+1+len(f) > limit {
			if err := c.ws.Write(ctx, websocket.MessageText, buf.Bytes()); err != nil {
				return err
			}
			buf.Reset()
		}
		if buf.Len() > 0 {
			buf.WriteByte(wire.BatchSeparator)
		}
		buf.Write(f)
	}
	if buf.Len() > 0 {
		return c.ws.Write(ctx, websocket.MessageText, buf.Bytes())
	}
	return nil
}

func (c *conn) readLoop(ctx context.Context) error {
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			c.replyError(wire.Error{Type: wire.TypeError, Code: wire.CodeBadFrame, Message: "frames must be JSON text"})
			continue
		}
		f, err := wire.Decode(data)
		if errors.Is(err, wire.ErrInvalidUTF8) {
			return errInvalidUTF8
		}
		var de *wire.DecodeError
		if errors.As(err, &de) {
			c.replyError(wire.Error{Type: wire.TypeError, Code: de.Code, Message: de.Msg, Ref: f.Ref})
			continue
		}
		c.handle(ctx, f)
	}
}

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
		select {
		case c.reauth <- struct{}{}:
		default:
		}
		c.reply(wire.Authed{Type: wire.TypeAuthed, Ref: f.Ref, ExpiresAt: cl.Expires.UTC().Format(time.RFC3339)})
	}
}

func writeHTTPError(w http.ResponseWriter, a *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.Status)
	_, _ = w.Write(wire.Encode(map[string]any{"error": map[string]string{"code": a.Code, "message": a.Message}}))
}

package transport

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/transport/wire"
)

// conn is one WebSocket connection. A reader goroutine reads and handles
// client frames for the connection's whole life (coder/websocket delivers
// pongs and close frames only to a reader). Writing holds no goroutine
// while the socket is idle: when the session queues frames, a writer
// goroutine (one left idle by an earlier flush, else a new one) writes
// everything queued and leaves once the queue is empty. Timers ping the
// peer and enforce the token's expiry.
type conn struct {
	s       *Server
	ws      *websocket.Conn
	cork    *corkConn
	sess    *engine.Session
	user    string
	batch   bool
	ctx     context.Context // ends when the connection does
	cancel  context.CancelFunc
	log     *slog.Logger
	start   time.Time
	expires atomic.Int64 // token expiry, Unix nanoseconds

	wmu      sync.Mutex
	writing  bool // a writer goroutine runs
	again    bool // frames arrived while it ran
	ended    bool // the connection is over: start no writer
	endErr   error
	writers  sync.WaitGroup
	lastSent time.Time // batch clients: the last write, for the batch window

	ping, expiry *time.Timer

	sentCode atomic.Int32 // the close code the server sent, 0 if none
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
	// Registered first so it is released last: Drain returns only after
	// the session below has left its rooms (presence goes offline).
	s.conns.Add(1)
	sess, err := s.opts.Engine.Connect(cl.User, cl.ID, cl.Issued)
	if err != nil {
		s.conns.Done()
		s.nconns.Add(-1)
		if errors.Is(err, engine.ErrRateLimited) {
			s.opts.Observe.rateLimited("conns_per_user")
		}
		a := toAPI(err)
		retryAfter(w.Header(), a)
		writeHTTPError(w, a)
		return
	}
	cw := &corkWriter{ResponseWriter: w, timeout: s.opts.WriteTimeout}
	ws, err := websocket.Accept(cw, r, &websocket.AcceptOptions{
		OriginPatterns:  s.opts.AllowedOrigins,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		sess.Close()
		s.conns.Done()
		s.nconns.Add(-1)
		return // Accept wrote the HTTP error (403 for a foreign Origin)
	}
	ws.SetReadLimit(s.opts.MaxFrame)
	c := &conn{s: s, ws: ws, cork: cw.conn, sess: sess, user: cl.User, batch: r.URL.Query().Get(wire.BatchQueryParam) == "1"}
	c.expires.Store(cl.Expires.UnixNano())
	// The handler returns now and the connection lives on in goroutines of
	// its own: net/http's buffers and the handler's deep stack, kept for
	// the whole life of the socket otherwise, become garbage.
	go c.serve()
}

// serve is the connection's reader goroutine. Its own frame stays small:
// between frames an idle socket waits in waitReadable a few hundred bytes
// deep, so the garbage collector can shrink its stack to a few KiB, and
// reading and handling a frame happen in calls that return before the
// next wait.
func (c *conn) serve() {
	c.open()
	var err error
	for err == nil {
		c.cork.waitReadable()
		err = c.readFrame()
	}
	c.finish(err)
}

// open registers the connection and starts its timers.
func (c *conn) open() {
	s := c.s
	s.mu.Lock()
	s.live[c] = struct{}{}
	s.mu.Unlock()
	if s.draining.Load() { // Drain may have listed the sockets before this one
		c.sess.Kick(engine.ErrShutdown)
	}
	c.start = time.Now()
	c.log = s.log.With("conn", s.nextConn.Add(1), "user", c.user)
	c.log.Info("connection opened", "batch", c.batch)

	// The writer and the timers decide how the connection ends; the
	// reader ends when the peer goes or the socket is closed.
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.sess.OnReady(c.wake)
	// Armed only once the fields are set: the callbacks read them.
	c.ping = time.AfterFunc(time.Hour, c.pingPeer)
	c.expiry = time.AfterFunc(time.Hour, c.checkExpiry)
	c.ping.Reset(s.opts.PingInterval)
	c.expiry.Reset(time.Until(time.Unix(0, c.expires.Load())))
	c.wake() // the session may have been kicked before OnReady
}

// finish ends the connection once reading failed with rerr (a close
// handshake, a closed socket, a protocol error) and releases what
// serveWS took.
func (c *conn) finish(rerr error) {
	s := c.s
	if !isClosed(rerr) {
		c.end(rerr)
		c.closeWith(rerr)
	}
	c.cancel()
	c.ping.Stop()
	c.expiry.Stop()
	c.wmu.Lock()
	c.ended = true
	err := c.endErr
	c.wmu.Unlock()
	c.writers.Wait()
	if rerr != nil {
		err = rerr
	}
	// The code the close handshake carried (either side's), else the one
	// the server meant to send, else 1006: the peer vanished.
	code := websocket.CloseStatus(rerr)
	if code == -1 {
		code = websocket.CloseStatus(err)
	}
	if sent := c.sentCode.Load(); code == -1 && sent != 0 {
		code = websocket.StatusCode(sent)
	}
	if code == -1 {
		code = websocket.StatusAbnormalClosure
	}
	if s.opts.Observe.Closed != nil {
		s.opts.Observe.Closed(int(code))
	}
	c.log.Info("connection closed", "duration", time.Since(c.start).Round(time.Millisecond), "code", int(code), "reason", reason(err))

	s.mu.Lock()
	delete(s.live, c)
	s.mu.Unlock()
	_ = c.ws.CloseNow()
	c.sess.Close()
	s.conns.Done() // Drain returns once the session has left its rooms
	s.nconns.Add(-1)
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
	if code != wire.CloseInternal { // else the peer is most likely gone and sees nothing
		c.sentCode.CompareAndSwap(0, int32(code))
	}
	c.cork.closeHandshake(func() { _ = c.ws.Close(code, why) })
}

// end records why the server ends the connection, if nothing did before,
// and stops writers from starting. It reports whether err was the first.
func (c *conn) end(err error) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.endErr != nil {
		return false
	}
	c.endErr = err
	c.ended = true
	return true
}

// wake starts a writer, or tells the running one to look again. It is the
// session's OnReady hook, so it must not block.
func (c *conn) wake() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.writing {
		c.again = true
		return
	}
	if c.ended {
		return
	}
	c.writing = true
	c.writers.Add(1)
	select {
	case idleWriters <- c:
	default:
		go writer(c)
	}
}

// idleWriters hands a connection to flush to a writer goroutine that has
// finished its last one. Unbuffered: the hand-off happens only if one is
// waiting.
var idleWriters = make(chan *conn)

// writerIdle is how long a writer goroutine waits for another connection
// to flush before it exits.
const writerIdle = 250 * time.Millisecond

// writer flushes c, then any connection handed to it while it waits, and
// exits once none came for writerIdle. Reusing writers keeps their stacks
// grown (a fresh goroutine grows its stack twice on the write path, which
// was 9% of chatd's CPU fanning out to a room of 2,000) and their buffers
// and batch-window timer.
func writer(c *conn) {
	w := &writeState{window: time.NewTimer(time.Hour)}
	w.window.Stop()
	idle := time.NewTimer(writerIdle)
	defer idle.Stop()
	for {
		c.flush(w)
		clear(w.frames)
		w.frames = w.frames[:0]
		if w.batch.Cap() > 64<<10 {
			w.batch = bytes.Buffer{} // a burst's buffer need not stay
		}
		idle.Reset(writerIdle)
		select {
		case c = <-idleWriters:
		case <-idle.C:
			return
		}
	}
}

// writeState is what a writer goroutine keeps from one flush to the next.
type writeState struct {
	frames []engine.Frame
	batch  bytes.Buffer
	window *time.Timer // the batch window; stopped between uses
}

// flush writes everything queued until the queue is empty, then returns;
// after a kick it writes what is left and closes the socket with the
// kick's code.
func (c *conn) flush(w *writeState) {
	defer c.writers.Done()
	for {
		// A kick ends the connection now: a slow consumer's backlog is not
		// worth writing (it resumes with since), and a server going away
		// writes what is queued in flushOnShutdown.
		if err := c.sess.Err(); err != nil {
			c.kicked(err, &w.batch)
			return
		}
		frames := c.sess.More(w.frames[:0])
		if len(frames) == 0 {
			c.wmu.Lock()
			if c.again && !c.ended {
				c.again = false
				c.wmu.Unlock()
				continue
			}
			c.writing, c.again = false, false
			c.wmu.Unlock()
			return
		}
		if c.batch && c.s.opts.BatchWindow > 0 {
			if wait := c.s.opts.BatchWindow - time.Since(c.lastSent); wait > 0 {
				w.window.Reset(wait)
				select {
				case <-w.window.C:
				case <-c.ctx.Done():
				case <-c.sess.Done():
				}
				w.window.Stop()
				frames = c.sess.More(frames)
			}
			c.lastSent = time.Now()
		}
		w.frames = frames
		if err := c.write(frames, &w.batch); err != nil {
			c.end(err)
			_ = c.ws.CloseNow()
			return
		}
	}
}

// kicked ends a session the engine kicked: a server going away first
// writes the acks of sends still in flight.
func (c *conn) kicked(err error, buf *bytes.Buffer) {
	if !c.end(err) {
		return
	}
	if errors.Is(err, engine.ErrShutdown) {
		c.flushOnShutdown(buf)
	}
	if c.ctx.Err() == nil {
		c.closeWith(err)
	}
}

// pingPeer pings and waits for the pong; a peer that does not answer
// within the write timeout is gone.
func (c *conn) pingPeer() {
	c.sess.Compact()
	pctx, cancel := context.WithTimeout(c.ctx, c.s.opts.WriteTimeout)
	defer cancel()
	if err := c.ws.Ping(pctx); err != nil {
		if c.ctx.Err() == nil {
			_ = c.ws.CloseNow()
		}
		return
	}
	if c.ctx.Err() == nil {
		c.ping.Reset(c.s.opts.PingInterval)
	}
}

// checkExpiry closes the socket with 1008 once the token expired, unless
// an in-band auth moved the expiry on meanwhile.
func (c *conn) checkExpiry() {
	if left := time.Until(time.Unix(0, c.expires.Load())); left > 0 {
		if c.ctx.Err() == nil {
			c.expiry.Reset(left)
		}
		return
	}
	if c.end(errExpired) && c.ctx.Err() == nil {
		c.closeWith(errExpired)
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

// readFrame reads and handles one client frame. It returns an error only
// when the connection should end.
func (c *conn) readFrame() error {
	// No ctx: coder/websocket would arm a context.AfterFunc per read. The
	// read ends when the socket is closed.
	typ, data, err := c.ws.Read(context.Background())
	if err != nil {
		return err
	}
	if typ != websocket.MessageText {
		c.replyError(wire.Error{Type: wire.TypeError, Code: wire.CodeBadFrame, Message: "frames must be JSON text"})
		return nil
	}
	f, err := wire.Decode(data)
	if errors.Is(err, wire.ErrInvalidUTF8) {
		return errInvalidUTF8
	}
	var de *wire.DecodeError
	if errors.As(err, &de) {
		c.replyError(wire.Error{Type: wire.TypeError, Code: de.Code, Message: de.Msg, Ref: f.Ref})
		return nil
	}
	c.handle(c.ctx, f)
	return nil
}

func writeHTTPError(w http.ResponseWriter, a *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.Status)
	_, _ = w.Write(wire.Encode(map[string]any{"error": map[string]string{"code": a.Code, "message": a.Message}}))
}

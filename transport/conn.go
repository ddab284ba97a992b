package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/transport/wire"
)

// conn is one WebSocket connection after the upgrade. It is three pieces
// of work, all owned by the connection and waited for by finish:
//
//   - the reader (serve) reads and handles client frames for the whole
//     life of the socket; coder/websocket delivers pongs and close frames
//     only to a reader;
//   - the writer (writeLoop) is the only goroutine that writes frames:
//     woken when the session queues frames, it writes everything queued in
//     one system call, again until the queue is empty, and once the
//     connection is ending it writes what it must and closes the socket;
//   - the timers: a ping every PingInterval, whose goroutine lives only
//     while the ping is out, and the token's expiry.
//
// end is the one way a connection ends: it records why (the first reason
// wins) and wakes the writer, which closes the socket with the code
// closeOf picks. The reader then fails, and finish waits for the writer
// and the timers and releases everything.
//
// An idle connection holds one goroutine, the reader, waiting in
// idleWait a few hundred bytes deep. The writer exits once it has found
// nothing to write for writerLinger, so that an idle socket does not keep
// a stack grown by its writes; a busy one keeps its writer.
type conn struct {
	s     *Server
	ws    *websocket.Conn
	nc    *corkConn
	sess  *engine.Session
	user  string
	batch bool // ?batch=1: frames queued together go in one message
	log   *slog.Logger
	start time.Time

	// ctx is the context of the engine calls the connection makes and of
	// its pings; finish cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	// wake tells the writer to look: frames were queued, the session was
	// kicked or the connection is ending. One pending signal is enough,
	// since the writer takes everything queued when it looks.
	wake chan struct{}

	expires      atomic.Int64 // token expiry, Unix nanoseconds
	ping, expiry Timer
	frames       frameBucket // the reader's only

	mu      sync.Mutex
	why     error // why the connection ends; nil while it lives
	writing bool  // a writer goroutine runs (or has closed the socket)
	closed  bool  // finish has begun: start no writer, arm no timer
	// wg counts the writer and each armed timer: a timer holds its count
	// until its callback returns or finish stops it.
	wg sync.WaitGroup
}

// writerLinger is how long a writer waits for more frames before it
// exits. Starting a writer costs a goroutine and the growth of its stack
// on the write path; a socket that gets a frame more often than this
// keeps one writer. (250 ms and 1 s measured the same in T1, T3 and T4.)
const writerLinger = 250 * time.Millisecond

func newConn(s *Server, ws *websocket.Conn, nc *corkConn, sess *engine.Session, cl claims, batch bool) *conn {
	c := &conn{s: s, ws: ws, nc: nc, sess: sess, user: cl.User, batch: batch, wake: make(chan struct{}, 1)}
	c.expires.Store(cl.Expires.UnixNano())
	return c
}

// serve is the connection's reader goroutine. Its own frame stays small:
// between frames an idle socket waits in idleWait.wait, and reading and
// handling a frame happen in calls that return before the next wait.
func (c *conn) serve() {
	c.open()
	var err error
	for err == nil {
		c.nc.idle.wait()
		err = c.readFrame()
	}
	c.finish(err)
}

// open registers the connection and arms its timers.
func (c *conn) open() {
	s := c.s
	s.mu.Lock()
	s.live[c] = struct{}{}
	s.mu.Unlock()
	if s.draining.Load() { // Drain may have listed the sockets before this one
		c.sess.Kick(engine.ErrShutdown)
	}
	c.start = s.opts.Now()
	c.frames = frameBucket{tokens: float64(s.opts.FrameBurst), last: c.start.UnixNano()}
	c.log = s.log.With("conn", s.nextConn.Add(1), "user", c.user)
	c.log.Info("connection opened", "batch", c.batch)
	c.ctx, c.cancel = context.WithCancel(context.Background())

	c.mu.Lock()
	c.wg.Add(2)
	c.ping = s.opts.AfterFunc(s.opts.PingInterval, c.pingPeer)
	c.expiry = s.opts.AfterFunc(time.Unix(0, c.expires.Load()).Sub(s.opts.Now()), c.checkExpiry)
	c.mu.Unlock()

	c.sess.OnReady(c.wakeWriter)
	c.wakeWriter() // frames queued or a kick before OnReady
}

// end ends the connection because of err, unless it is ending already.
// It never blocks: the writer does the closing.
func (c *conn) end(err error) {
	c.mu.Lock()
	if c.why == nil {
		c.why = err
	}
	c.mu.Unlock()
	c.wakeWriter()
}

// reason returns why the connection ends, or nil while it lives.
func (c *conn) reason() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.why
}

// finish runs on the reader once reading failed with rerr: it ends the
// connection, waits for the writer (which has closed the socket) and the
// timers, and releases what serveWS took.
func (c *conn) finish(rerr error) {
	switch {
	case errors.Is(rerr, errInvalidUTF8), errors.Is(rerr, websocket.ErrMessageTooBig):
		c.end(rerr) // the writer closes with 1007 or 1009
	default:
		c.end(goneError{rerr}) // closed by the peer, the library or the writer
	}
	c.mu.Lock()
	c.closed = true
	for _, t := range []Timer{c.ping, c.expiry} {
		if t.Stop() {
			c.wg.Done()
		}
	}
	c.mu.Unlock()
	c.cancel() // a ping out returns
	c.wg.Wait()
	_ = c.ws.CloseNow()

	why := c.reason()
	// The code the close handshake carried (either side's), else the one
	// the server sent, else 1006: the peer vanished.
	code := websocket.CloseStatus(rerr)
	var gone goneError
	switch {
	case code != -1:
	case errors.As(why, &gone):
		code = websocket.CloseStatus(gone.err)
		if code == -1 {
			code = websocket.StatusAbnormalClosure
		}
	default:
		code, _ = closeOf(why)
	}
	s := c.s
	if s.opts.Observe.Closed != nil {
		s.opts.Observe.Closed(int(code))
	}
	c.log.Info("connection closed", "duration", s.opts.Now().Sub(c.start).Round(time.Millisecond), "code", int(code), "reason", why.Error())

	s.mu.Lock()
	delete(s.live, c)
	s.mu.Unlock()
	c.sess.Close()
	s.conns.Done() // Drain returns once the session has left its rooms
	s.nconns.Add(-1)
}

// wakeWriter tells the writer to look, starting one if none runs. It is
// the session's OnReady hook, so it must not block.
func (c *conn) wakeWriter() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
	c.mu.Lock()
	start := !c.writing && !c.closed
	if start {
		c.writing = true
		c.wg.Add(1)
	}
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// writeLoop is the connection's writer. It runs while there is work and
// for writerLinger after, and closes the socket once the connection ends.
func (c *conn) writeLoop() {
	defer c.wg.Done()
	w := writeState{linger: time.NewTimer(writerLinger)}
	defer w.linger.Stop()
	for {
		select {
		case <-c.wake:
		case <-w.linger.C:
			if c.park() {
				return
			}
			continue
		}
		if c.flush(&w) {
			return // the socket is closed: this writer stays the last
		}
		w.linger.Reset(writerLinger)
	}
}

// writeState is what a writer keeps from one flush to the next.
type writeState struct {
	frames []engine.Frame
	batch  bytes.Buffer
	linger *time.Timer
}

// park lets the writer exit unless a wake came meanwhile; wakeWriter
// sends its signal before it looks at writing, so none is lost.
func (c *conn) park() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.wake) > 0 {
		return false
	}
	c.writing = false
	return true
}

// flush writes whatever is queued, at once and all of it in one system
// call, and again until nothing is; a socket that is slower than its
// frames arrive so gets more frames per write. Once the connection ends
// it closes the socket and reports true.
func (c *conn) flush(w *writeState) bool {
	for {
		// A kick ends the connection now: a slow consumer's backlog is not
		// worth writing (it resumes with since), and a server going away
		// writes what is queued in hangUp.
		if err := c.sess.Err(); err != nil {
			c.end(err)
		}
		if why := c.reason(); why != nil {
			c.hangUp(why, &w.batch)
			return true
		}
		w.frames = c.sess.More(w.frames[:0])
		if len(w.frames) == 0 {
			if w.batch.Cap() > 64<<10 {
				w.batch = bytes.Buffer{} // a burst's buffer need not stay
			}
			return false
		}
		err := c.write(w.frames, &w.batch)
		clear(w.frames)
		if err != nil {
			c.end(goneError{err})
		}
	}
}

// hangUp closes the socket because of why: a server going away first
// writes the acks of sends still in flight and what is queued; a peer
// that is gone is dropped; anything else gets its close code.
func (c *conn) hangUp(why error, buf *bytes.Buffer) {
	var gone goneError
	if errors.As(why, &gone) {
		_ = c.ws.CloseNow()
		return
	}
	if errors.Is(why, engine.ErrShutdown) {
		c.flushOnShutdown(buf)
	}
	code, reason := closeOf(why)
	c.nc.idle.closing(func() { _ = c.ws.Close(code, reason) })
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
	c.nc.Cork()
	err := c.writeFrames(context.Background(), frames, buf)
	if uerr := c.nc.Uncork(); err == nil {
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

// arm re-arms t, one of the connection's timers, to fire after d, unless
// the connection is finishing. Only the timer's own callback re-arms it,
// so a timer never holds two counts.
func (c *conn) arm(t Timer, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.wg.Add(1)
	t.Reset(d)
}

// pingPeer is the ping timer's callback: its goroutine is the pinger,
// alive while the ping is out. A peer that does not answer within the
// write timeout is gone.
func (c *conn) pingPeer() {
	defer c.wg.Done()
	c.sess.Compact()
	ctx, cancel := context.WithTimeout(c.ctx, c.s.opts.WriteTimeout)
	err := c.ws.Ping(ctx)
	cancel()
	if err != nil {
		c.end(goneError{fmt.Errorf("no pong: %w", err)})
		return
	}
	c.arm(c.ping, c.s.opts.PingInterval)
}

// checkExpiry is the expiry timer's callback: it ends the connection with
// 1008 once the token expired, unless an in-band auth moved the expiry on.
func (c *conn) checkExpiry() {
	defer c.wg.Done()
	if left := time.Unix(0, c.expires.Load()).Sub(c.s.opts.Now()); left > 0 {
		c.arm(c.expiry, left)
		return
	}
	c.end(errExpired)
}

// setExpiry moves the token's expiry to t (an in-band auth). A timer
// already fired reads the new expiry and re-arms itself.
func (c *conn) setExpiry(t time.Time) {
	c.expires.Store(t.UnixNano())
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed && c.expiry.Stop() {
		c.expiry.Reset(t.Sub(c.s.opts.Now())) // the same count: still one pending call
	}
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
		if c.limited(wire.ClientFrame{}) {
			return nil
		}
		c.replyError(wire.Error{Type: wire.TypeError, Code: wire.CodeBadFrame, Message: "frames must be JSON text"})
		return nil
	}
	f, err := wire.Decode(data)
	if errors.Is(err, wire.ErrInvalidUTF8) {
		return errInvalidUTF8
	}
	var de *wire.DecodeError
	bad := errors.As(err, &de)
	if (bad || !isWrite(f.Type)) && c.limited(f) {
		return nil
	}
	if bad {
		c.replyError(wire.Error{Type: wire.TypeError, Code: de.Code, Message: de.Msg, Ref: f.Ref})
		return nil
	}
	c.handle(c.ctx, f)
	return nil
}

// isWrite reports whether frames of type typ count against the per-user
// send rate rather than the per-socket frame rate.
func isWrite(typ string) bool {
	switch typ {
	case wire.TypeSend, wire.TypeEdit, wire.TypeDelete, wire.TypeReact:
		return true
	}
	return false
}

// limited takes f from the socket's frame bucket; past the limit it
// answers rate_limited and reports true: the frame is dropped.
func (c *conn) limited(f wire.ClientFrame) bool {
	if c.frames.take(c.s.opts.Now(), c.s.opts.FrameRate, c.s.opts.FrameBurst) {
		return false
	}
	c.s.opts.Observe.rateLimited("frames")
	c.replyError(wire.Error{Type: wire.TypeError, Code: wire.CodeRateLimited, Message: "too many frames on this socket; slow down", Ref: f.Ref})
	return true
}

// frameBucket is a token bucket: burst tokens, refilled at rate a second.
// The zero value is empty.
type frameBucket struct {
	tokens float64
	last   int64 // Unix nanoseconds of the last refill
}

// take refills the bucket up to now and takes a token, if there is one.
func (b *frameBucket) take(now time.Time, rate float64, burst int) bool {
	n := now.UnixNano()
	if d := n - b.last; d > 0 {
		b.tokens = min(float64(burst), b.tokens+float64(d)*rate/1e9)
		b.last = n
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

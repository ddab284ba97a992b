package transport

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"time"
)

// Buffer sizes of a WebSocket connection's own bufio pair. net/http would
// hand over 4 KiB each; chat frames are small, a larger client frame is
// read straight into the message buffer, and a corked writer collects
// whole batches in a pooled buffer, so small buffers cost no system calls
// worth counting and save memory on every idle connection.
const (
	wsReadBuffer  = 1024
	wsWriteBuffer = 512
)

// corkConn is the hijacked network connection under one WebSocket. While
// corked, writes collect in memory; Uncork sends them with one system
// call, so the frames a writer finds queued (an ack, a few messages) leave
// in one write instead of one each. Writes made while uncorked (pings,
// close frames from other goroutines) go straight out. Every write to the
// network holds mu and has a deadline, so frames never interleave and a
// stuck peer costs at most the write timeout.
type corkConn struct {
	net.Conn
	timeout time.Duration
	pre     []byte    // bytes the HTTP server read past the upgrade request
	idle    *idleWait // for the reader goroutine and close handshakes

	mu     sync.Mutex
	corked bool
	buf    *[]byte // pooled, only while corked
	err    error   // the first failed network write; later writes fail too
}

var corkPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledCork keeps a burst's large buffer from staying in the pool.
const maxPooledCork = 64 << 10

func (c *corkConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		if len(c.pre) == 0 {
			c.pre = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.corked {
		if c.buf == nil {
			c.buf = corkPool.Get().(*[]byte)
		}
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	return c.writeLocked(p)
}

func (c *corkConn) writeLocked(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	n, err := c.Conn.Write(p)
	if err != nil {
		c.err = err
	}
	return n, err
}

// Cork starts collecting writes.
func (c *corkConn) Cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// Uncork writes what was collected since Cork, in one system call.
func (c *corkConn) Uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if c.buf == nil {
		return c.err
	}
	b := c.buf
	c.buf = nil
	var err error
	if c.err == nil && len(*b) > 0 {
		_, err = c.writeLocked(*b)
	}
	if cap(*b) <= maxPooledCork {
		*b = (*b)[:0]
		corkPool.Put(b)
	}
	if err != nil {
		return err
	}
	return c.err
}

// corkWriter is the ResponseWriter handed to websocket.Accept: its
// Hijack returns the connection wrapped in a corkConn, with small
// buffers of its own.
type corkWriter struct {
	http.ResponseWriter
	timeout time.Duration
	conn    *corkConn // set by Hijack
}

func (w *corkWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	raw, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	var pre []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		pre = append([]byte(nil), b...)
	}
	c := newCorkConn(raw, w.timeout, pre)
	w.conn = c
	return c, bufio.NewReadWriter(c.idle.br, bufio.NewWriterSize(c, wsWriteBuffer)), nil
}

// newCorkConn wraps raw, whose first bytes to read are pre.
func newCorkConn(raw net.Conn, timeout time.Duration, pre []byte) *corkConn {
	c := &corkConn{Conn: raw, timeout: timeout, pre: pre}
	c.idle = newIdleWait(bufio.NewReaderSize(c, wsReadBuffer), func() bool { return len(c.pre) > 0 }, raw)
	return c
}

func (w *corkWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

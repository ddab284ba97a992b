package transport

import (
	"bufio"
	"sync"
	"syscall"
)

// idleWait is the one piece of the connection that works around
// coder/websocket rather than through it, for memory: a reader blocked
// inside the library's Read sits several KiB of stack deep, and 15,000
// idle sockets each keep that stack. The reader goroutine calls wait
// before each Read instead: an idle socket then waits here, a few hundred
// bytes deep, and the garbage collector shrinks its stack.
//
// wait must not block while a frame is already buffered, so it must see
// every byte the library has read but not consumed. That holds because
// the library reads through br, the bufio.Reader our Hijack hands it
// (TestLibraryReadsThroughOurReader fails the day it stops doing so).
// The library also reads through br from whichever goroutine closes the
// socket with a handshake; mu keeps wait from looking at br meanwhile.
type idleWait struct {
	mu   sync.Mutex
	br   *bufio.Reader      // the reader coder/websocket reads through
	pre  func() bool        // whether bytes read ahead of br's source wait
	raw  syscall.RawConn    // nil: wait returns at once
	fn   func(uintptr) bool // w.readable, made once
	peek [1]byte
}

// newIdleWait watches the socket under br, if it has a descriptor and
// this platform can peek (peek_unix.go).
func newIdleWait(br *bufio.Reader, pre func() bool, sock any) *idleWait {
	w := &idleWait{br: br, pre: pre}
	if sc, ok := sock.(syscall.Conn); ok && canPeek {
		if rc, err := sc.SyscallConn(); err == nil {
			w.raw, w.fn = rc, w.readable
		}
	}
	return w
}

// wait returns once the socket has bytes to read or has failed, without
// reading them. Errors are left for the read that follows to report.
func (w *idleWait) wait() {
	if w.raw == nil {
		return
	}
	w.mu.Lock()
	buffered := w.pre() || w.br.Buffered() > 0
	w.mu.Unlock()
	if !buffered {
		_ = w.raw.Read(w.fn)
	}
}

// closing runs close, a close handshake that reads the peer's reply
// through br from the calling goroutine.
func (w *idleWait) closing(close func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	close()
}

//go:build linux || darwin || freebsd || netbsd || openbsd

package transport

import "syscall"

// canPeek says whether idleWait.readable works here.
const canPeek = true

// readable is the function idleWait.wait passes to RawConn.Read, which
// calls it, and whenever it returns false waits for the socket to become
// readable and calls it again. It must look at the socket itself: the
// readiness Go's poller had recorded is cleared before the first call.
// A peek that finds no data says wait; data, end of stream or an error
// say read.
func (w *idleWait) readable(fd uintptr) bool {
	_, _, err := syscall.Recvfrom(int(fd), w.peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
}

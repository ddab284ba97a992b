//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package transport

// canPeek is false where a non-blocking peek at a socket is not wired
// up: the reader then waits inside the WebSocket library's read, which
// is correct and only keeps idle stacks larger.
const canPeek = false

func (w *idleWait) readable(uintptr) bool { return true }

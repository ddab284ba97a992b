package main

import (
	"net"
	"sync"
)

// corkConn is a client's TCP connection under coder/websocket. While it
// is corked, what is written collects in a buffer, and the last uncork
// sends it in one system call: the frames a sender has ready at once
// leave together, which costs this process and the server one write and
// one read instead of one per frame. coder/websocket writes whole frames
// through it and knows nothing of the cork; writes stay in order, whoever
// makes them (a pong from the read loop, a resend after a reconnect).
type corkConn struct {
	net.Conn
	mu     sync.Mutex
	corked int // cork calls not yet matched by uncork
	buf    []byte
}

// maxCorkBuf is the largest buffer kept between corks; a larger one, from
// an unusual burst, is dropped so idle connections hold little.
const maxCorkBuf = 64 << 10

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked > 0 {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// cork holds back writes until the matching uncork.
func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked++
	c.mu.Unlock()
}

// uncork ends a cork; the last one writes what was held back.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked--; c.corked > 0 || len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > maxCorkBuf {
		c.buf = nil
	} else {
		c.buf = c.buf[:0]
	}
	return err
}

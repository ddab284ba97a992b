package transport

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// countConn records each Write that reaches the network.
type countConn struct {
	net.Conn
	writes [][]byte
	fail   error
	dl     time.Time
}

func (c *countConn) Write(p []byte) (int, error) {
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, append([]byte(nil), p...))
	return len(p), nil
}

func (c *countConn) SetWriteDeadline(t time.Time) error { c.dl = t; return nil }

func TestCorkConnOneWritePerBatch(t *testing.T) {
	raw := &countConn{}
	c := &corkConn{Conn: raw, timeout: time.Second}

	c.Cork()
	for _, s := range []string{"ack", "msg1", "msg2"} {
		if _, err := c.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if len(raw.writes) != 0 {
		t.Fatalf("corked writes reached the network: %q", raw.writes)
	}
	if err := c.Uncork(); err != nil {
		t.Fatal(err)
	}
	if len(raw.writes) != 1 || string(raw.writes[0]) != "ackmsg1msg2" {
		t.Fatalf("network writes = %q, want one write of all three", raw.writes)
	}
	if d := time.Until(raw.dl); d <= 0 || d > time.Second {
		t.Fatalf("write deadline %v from now, want within the 1s timeout", d)
	}

	// Uncorked (a ping from another goroutine): straight out.
	if _, err := c.Write([]byte("ping")); err != nil || len(raw.writes) != 2 {
		t.Fatalf("uncorked write: %v, writes %q", err, raw.writes)
	}
	// Nothing collected: Uncork writes nothing.
	c.Cork()
	if err := c.Uncork(); err != nil || len(raw.writes) != 2 {
		t.Fatalf("empty uncork: %v, writes %q", err, raw.writes)
	}

	// A failed network write fails every later write.
	raw.fail = errors.New("broken pipe")
	c.Cork()
	_, _ = c.Write([]byte("x"))
	if err := c.Uncork(); err == nil {
		t.Fatal("Uncork over a broken connection succeeded")
	}
	raw.fail = nil
	if _, err := c.Write([]byte("y")); err == nil {
		t.Fatal("write after a failed write succeeded")
	}
}

func TestCorkConnReadsBytesReadAheadFirst(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &corkConn{Conn: a, pre: []byte("early")}
	go func() { _, _ = b.Write([]byte(" later")); b.Close() }()
	got, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if !bytes.Equal(got, []byte("early later")) {
		t.Fatalf("read %q, want the read-ahead bytes first", got)
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// waitReturns runs idleWait.wait and reports whether it returned within d.
func waitReturns(c *corkConn, d time.Duration) bool {
	done := make(chan struct{})
	go func() { c.idle.wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func TestIdleWait(t *testing.T) {
	if !canPeek {
		t.Skip("wait returns at once on this platform")
	}
	client, server := tcpPair(t)
	c := newCorkConn(server, time.Second, nil)

	// Bytes that arrived while nobody waited: Go's poller recorded the
	// socket as readable and RawConn.Read forgets that, so the wait must
	// look at the socket itself or it would never return.
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if !waitReturns(c, 2*time.Second) {
		t.Fatal("wait did not return with a byte waiting")
	}
	// It does not consume: the byte is still there to read.
	b, err := c.idle.br.ReadByte()
	if err != nil || b != 'x' {
		t.Fatalf("ReadByte = %q, %v; want x", b, err)
	}

	// Nothing to read: it waits until something arrives.
	if waitReturns(c, 100*time.Millisecond) {
		t.Fatal("wait returned with nothing to read")
	}
	done := make(chan struct{})
	go func() { c.idle.wait(); close(done) }()
	time.Sleep(20 * time.Millisecond)
	if _, err := client.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("wait did not return when a byte arrived")
	}
	if b, _ := c.idle.br.ReadByte(); b != 'y' {
		t.Fatalf("ReadByte = %q, want y", b)
	}

	// Buffered bytes need no wait.
	if _, err := client.Write([]byte("ab")); err != nil {
		t.Fatal(err)
	}
	if b, _ := c.idle.br.ReadByte(); b != 'a' {
		t.Fatalf("ReadByte = %q, want a", b)
	}
	if !waitReturns(c, time.Second) {
		t.Fatal("wait waited with a byte buffered")
	}

	// The peer going away ends the wait, as does closing the socket.
	c.idle.br.ReadByte()
	go func() { time.Sleep(20 * time.Millisecond); client.Close() }()
	if !waitReturns(c, 2*time.Second) {
		t.Fatal("wait did not return when the peer closed")
	}
	_, server2 := tcpPair(t)
	c2 := newCorkConn(server2, time.Second, nil)
	go func() { time.Sleep(20 * time.Millisecond); server2.Close() }()
	if !waitReturns(c2, 2*time.Second) {
		t.Fatal("wait did not return when the socket was closed")
	}
}

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

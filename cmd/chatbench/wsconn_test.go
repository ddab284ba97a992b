package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *countingConn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// wsReader accepts WebSockets and sends the texts it receives on got, or
// discards them when got is nil.
func wsReader(tb testing.TB, got chan<- string) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for {
			_, b, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if got != nil {
				got <- string(b)
			}
		}
	}))
	tb.Cleanup(srv.Close)
	return srv
}

// dialTest opens a wsConn to srv's URL with path, through a countingConn.
func dialTest(t *testing.T, srv *httptest.Server, path string) (*wsConn, *countingConn) {
	t.Helper()
	u, _ := url.Parse("ws" + strings.TrimPrefix(srv.URL, "http") + path)
	nc, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	cc := &countingConn{Conn: nc}
	w, err := handshake(cc, u, http.Header{"Authorization": {"Bearer x"}})
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.CloseNow() })
	return w, cc
}

// TestWSWriteOneCall checks that the frames of one write reach a
// WebSocket library's server whole and in order, in one system call.
func TestWSWriteOneCall(t *testing.T) {
	t.Parallel()
	got := make(chan string, 16)
	w, cc := dialTest(t, wsReader(t, got), "/")
	before := cc.count()
	big := strings.Repeat("x", 70000) // a 64-bit length
	msgs := []string{"one", strings.Repeat("é", 100), big, "four"}
	frames := make([][]byte, len(msgs))
	for i, m := range msgs {
		frames[i] = []byte(m)
	}
	if err := w.writeText(frames...); err != nil {
		t.Fatal(err)
	}
	if n := cc.count() - before; n != 1 {
		t.Fatalf("four frames took %d writes, want 1", n)
	}
	if string(frames[0]) != "one" {
		t.Fatalf("writeText changed its input: %q", frames[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, want := range msgs {
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("got %.20q (%d bytes), want %.20q (%d bytes)", m, len(m), want, len(want))
			}
		case <-ctx.Done():
			t.Fatalf("waiting for %.20q: %v", want, ctx.Err())
		}
	}
}

// TestWSRead checks what readMessage returns for a library server's
// messages: small, large and fragmented ones, pings answered on the way,
// and the server's close frame with its status.
func TestWSRead(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("0123456789"), 10000)
	pinged := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer x" {
			http.Error(rw, "no", http.StatusUnauthorized)
			return
		}
		c, err := websocket.Accept(rw, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		go func() { // a reader, so that the ping's pong is seen
			for {
				if _, _, err := c.Read(ctx); err != nil {
					return
				}
			}
		}()
		_ = c.Write(ctx, websocket.MessageText, []byte("hello"))
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		pinged <- c.Ping(pctx) // the client answers while it waits in readMessage
		cancel()
		mw, _ := c.Writer(ctx, websocket.MessageText) // fragmented: several frames
		for i := 0; i < len(big); i += 3000 {
			_, _ = mw.Write(big[i:min(i+3000, len(big))])
		}
		_ = mw.Close()
		_ = c.Write(ctx, websocket.MessageBinary, []byte{1, 2, 3})
		_ = c.Close(4000, "bye")
	}))
	t.Cleanup(srv.Close)
	w, _ := dialTest(t, srv, "/ws?batch=1")
	w.SetReadLimit(1 << 20)
	var buf []byte
	read := func(wantOp byte, want []byte) {
		t.Helper()
		op, msg, err := w.readMessage(buf)
		if err != nil {
			t.Fatal(err)
		}
		if op != wantOp || !bytes.Equal(msg, want) {
			t.Fatalf("got opcode %d, %d bytes %.20q; want opcode %d, %d bytes %.20q", op, len(msg), msg, wantOp, len(want), want)
		}
		buf = msg
	}
	read(opText, []byte("hello"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		read(opText, big)
		read(opBinary, []byte{1, 2, 3})
		_, _, err := w.readMessage(buf)
		if closeStatus(err) != 4000 || err.(*closeError).Reason != "bye" {
			t.Errorf("end of the connection: %v, want close status 4000 bye", err)
		}
	}()
	if err := <-pinged; err != nil {
		t.Fatalf("the server's ping got no pong: %v", err)
	}
	<-done
}

// TestWSReadLimit checks that a message over the read limit ends the
// connection with 1009 on both ends.
func TestWSReadLimit(t *testing.T) {
	t.Parallel()
	status := make(chan websocket.StatusCode, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(rw, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		_ = c.Write(r.Context(), websocket.MessageText, make([]byte, 2000))
		_, _, err = c.Read(r.Context())
		status <- websocket.CloseStatus(err)
	}))
	t.Cleanup(srv.Close)
	w, _ := dialTest(t, srv, "/")
	w.SetReadLimit(1000)
	if _, _, err := w.readMessage(nil); err == nil || !strings.Contains(err.Error(), "1009") {
		t.Fatalf("a 2,000-byte message under a 1,000-byte limit: %v, want an error naming 1009", err)
	}
	select {
	case s := <-status:
		if s != websocket.StatusMessageTooBig {
			t.Fatalf("the server saw close status %d, want 1009", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server saw no close")
	}
}

// TestWSClose checks the close handshake the client starts: the server
// gets the status and reason, and Close returns once it has answered.
func TestWSClose(t *testing.T) {
	t.Parallel()
	got := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(rw, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		_, _, err = c.Read(r.Context())
		got <- err
	}))
	t.Cleanup(srv.Close)
	w, _ := dialTest(t, srv, "/")
	readErr := make(chan error, 1)
	go func() {
		_, _, err := w.readMessage(nil)
		readErr <- err
	}()
	if err := w.Close(1000, "benchmark done"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	err := <-got
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusNormalClosure || ce.Reason != "benchmark done" {
		t.Fatalf("the server read %v, want close 1000 benchmark done", err)
	}
	if err := <-readErr; closeStatus(err) != 1000 {
		t.Fatalf("the client's reader ended with %v, want the server's close 1000", err)
	}
	if err := w.writeText([]byte("late")); !errors.Is(err, errWSClosed) {
		t.Fatalf("a write after Close: %v, want errWSClosed", err)
	}
}

// TestWSRefused checks that a refused upgrade reports the HTTP status.
func TestWSRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		http.Error(rw, "no", http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	_, err := dialWS(context.Background(), &net.Dialer{}, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	var de *dialError
	if !errors.As(err, &de) || de.Status != http.StatusUnauthorized {
		t.Fatalf("dial: %v, want HTTP 401", err)
	}
}

// TestWSMask checks the masking against the byte-by-byte definition.
func TestWSMask(t *testing.T) {
	t.Parallel()
	for n := 0; n < 40; n++ {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i * 7)
		}
		const key = 0x01a2b3c4
		kb := []byte{0x01, 0xa2, 0xb3, 0xc4}
		mask(p, key)
		for i := range p {
			if want := byte(i*7) ^ kb[i%4]; p[i] != want {
				t.Fatalf("length %d: byte %d is %#x, want %#x", n, i, p[i], want)
			}
		}
	}
}

// discardConn is a net.Conn whose writes vanish, for a wsConn reading
// from a buffer: pongs and close frames go nowhere.
type discardConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (d *discardConn) Write(p []byte) (int, error) {
	d.mu.Lock()
	d.writes = append(d.writes, bytes.Clone(p))
	d.mu.Unlock()
	return len(p), nil
}
func (d *discardConn) Close() error { return nil }

// serverFrame appends an unmasked frame as a server writes it.
func appendServerFrame(dst []byte, fin bool, op byte, p []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	dst = append(dst, b0)
	switch n := len(p); {
	case n < 126:
		dst = append(dst, byte(n))
	case n < 1<<16:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, p...)
}

// FuzzWSReadMessage splits a message into fragments at the cuts given,
// with a ping after the first, and checks that readMessage gives back the
// message whole and answers the ping; and that arbitrary bytes never make
// it panic or return more than the read limit.
func FuzzWSReadMessage(f *testing.F) {
	f.Add([]byte(`{"type":"message","room":"r","id":"1-1","text":"hi"}`), []byte{3, 10}, false)
	f.Add(bytes.Repeat([]byte("a"), 300), []byte{200}, true)
	f.Add([]byte{}, []byte{}, false)
	f.Add([]byte{0x81, 0x7e, 0xff}, []byte{0}, true)
	f.Fuzz(func(t *testing.T, payload, cuts []byte, raw bool) {
		const limit = 1 << 12
		var in []byte
		if raw {
			in = payload // arbitrary bytes from a server
		} else {
			rest, first := payload, true
			for _, c := range cuts {
				n := min(int(c), len(rest))
				op := byte(opContinuation)
				if first {
					op = opText
				}
				in = appendServerFrame(in, false, op, rest[:n])
				if first {
					in = appendServerFrame(in, true, opPing, []byte("p"))
				}
				rest, first = rest[n:], false
			}
			op := byte(opContinuation)
			if first {
				op = opText
			}
			in = appendServerFrame(in, true, op, rest)
		}
		dc := &discardConn{}
		fills := &countReader{r: bytes.NewReader(in)}
		w := &wsConn{nc: dc, br: bufio.NewReaderSize(fills, 64), fills: fills, readLimit: limit, readEnd: make(chan struct{})}
		if !raw {
			op, msg, err := w.readMessage(nil)
			switch {
			case len(payload) > limit:
				if err == nil {
					t.Fatalf("a message of %d bytes read under a limit of %d", len(payload), limit)
				}
			case err != nil || op != opText || !bytes.Equal(msg, payload):
				t.Fatalf("got opcode %d, %q, %v; want text %q", op, msg, err, payload)
			case len(cuts) > 0 && len(dc.writes) != 1:
				t.Fatalf("the ping between fragments got %d answers, want 1 pong", len(dc.writes))
			}
			if _, _, err := w.readMessage(nil); err == nil {
				t.Fatal("a message read after the end of the input")
			}
			return
		}
		for i := 0; i < 100; i++ {
			op, msg, err := w.readMessage(nil)
			if err != nil {
				break
			}
			if len(msg) > limit {
				t.Fatalf("a message of %d bytes under a read limit of %d", len(msg), limit)
			}
			if op != opText && op != opBinary {
				t.Fatalf("opcode %d returned as a message", op)
			}
		}
	})
}

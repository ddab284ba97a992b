package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
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

// TestCorkOneWrite checks that frames written while corked reach the
// socket in one write, whole and in order, and that uncorked writes go
// out at once.
func TestCorkOneWrite(t *testing.T) {
	t.Parallel()
	got := make(chan string, 16)
	srv := wsReader(t, got)
	var cc *corkConn
	var counter *countingConn
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		counter = &countingConn{Conn: nc}
		cc = &corkConn{Conn: counter}
		return cc, nil
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	before := counter.count()

	cc.cork()
	cc.cork() // nested: only the outer uncork writes
	for _, m := range []string{"one", "two", "three"} {
		if err := conn.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := cc.uncork(); err != nil {
		t.Fatal(err)
	}
	if n := counter.count() - before; n != 0 {
		t.Fatalf("%d writes before the last uncork", n)
	}
	if err := cc.uncork(); err != nil {
		t.Fatal(err)
	}
	if n := counter.count() - before; n != 1 {
		t.Fatalf("three corked frames took %d writes, want 1", n)
	}
	if err := conn.Write(ctx, websocket.MessageText, []byte("four")); err != nil {
		t.Fatal(err)
	}
	if n := counter.count() - before; n != 2 {
		t.Fatalf("an uncorked frame took %d writes, want 1", n-1)
	}
	for _, want := range []string{"one", "two", "three", "four"} {
		select {
		case m := <-got:
			if m != want {
				t.Fatalf("got %q, want %q", m, want)
			}
		case <-ctx.Done():
			t.Fatalf("waiting for %q: %v", want, ctx.Err())
		}
	}
}

// TestConnectCorks checks that the connection a client dials is one the
// send loop can cork.
func TestConnectCorks(t *testing.T) {
	t.Parallel()
	f, srv := newFakeServer(t)
	f.mu.Lock()
	f.users["u"] = true
	f.mu.Unlock()
	b := &bench{cfg: &config{connectTimeout: 5 * time.Second}, plan: &plan{}}
	c := &client{b: b, user: "u", token: "tok-u", url: wsURL(srv.URL, false), sender: -1}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs, readDone, err := c.connect(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if cs.cork == nil {
		t.Fatal("the dialled connection is not corkable")
	}
	cancel()
	<-readDone
}

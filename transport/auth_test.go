package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redstream/chat/engine"
)

func TestAddrKey(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"203.0.113.7":                 "203.0.113.7",
		"::ffff:203.0.113.7":          "203.0.113.7",
		"2001:db8:1:2:aaaa::1":        "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:ffff::9":   "2001:db8:1:2::/64",
		"2001:db8:1:3::1":             "2001:db8:1:3::/64",
		"fe80::1%eth0":                "fe80::/64",
		"not an address":              "not an address",
		"2001:0db8:0001:0002:0:0:0:1": "2001:db8:1:2::/64",
	} {
		if got := addrKey(in); got != want {
			t.Errorf("addrKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHashPool: one slot and one waiter; a third request is turned away
// at once, a waiter past the wait is turned away, and a waiter whose
// request ends gets ErrUnavailable.
func TestHashPool(t *testing.T) {
	t.Parallel()
	p := newHashPool(1, 1, 100*time.Millisecond)
	release := make(chan struct{})
	running := make(chan struct{})
	go func() { _ = p.run(context.Background(), func() { close(running); <-release }) }()
	<-running

	waited := make(chan error, 1)
	start := time.Now()
	go func() { waited <- p.run(context.Background(), func() {}) }()
	time.Sleep(20 * time.Millisecond) // the waiter holds the queue's one ticket
	if err := p.run(context.Background(), func() {}); err != errHashBusy {
		t.Errorf("a request beyond the queue: %v, want errHashBusy", err)
	}
	if err := <-waited; err != errHashBusy || time.Since(start) < 100*time.Millisecond {
		t.Errorf("a waiter: %v after %v, want errHashBusy after the wait", err, time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if err := p.run(ctx, func() {}); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("a waiter whose request ended: %v, want ErrUnavailable", err)
	}
	close(release)
	ran := false
	deadline := time.Now().Add(2 * time.Second)
	for !ran && time.Now().Before(deadline) {
		if err := p.run(context.Background(), func() { ran = true }); err != nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if !ran {
		t.Error("the pool did not run anything after its slot was freed")
	}
}

// TestLimitListener: at most max connections per address; one over it is
// answered 429 and closed; closing one makes room; a trusted address is
// not capped.
func TestLimitListener(t *testing.T) {
	t.Parallel()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int64
	ln := LimitListener(raw, 2, []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}, func() { refused.Add(1) })
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func(from string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	take := func() net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(2 * time.Second):
			t.Fatal("no connection accepted")
			return nil
		}
	}
	dial("127.0.0.2")
	dial("127.0.0.2")
	first, _ := take(), take()
	over := dial("127.0.0.2")
	_ = over.SetReadDeadline(time.Now().Add(2 * time.Second))
	got, _ := io.ReadAll(over)
	if !strings.HasPrefix(string(got), "HTTP/1.1 429 ") || !strings.Contains(string(got), "Retry-After: ") || refused.Load() != 1 {
		t.Errorf("the third connection from one address got %q (refused %d), want 429 with Retry-After", got, refused.Load())
	}
	dial("127.0.0.4") // another address is served
	take()
	first.Close()
	dial("127.0.0.2") // room again
	take()
	for range 3 {
		dial("127.0.0.3")
		take()
	}
	if refused.Load() != 1 {
		t.Errorf("%d refusals, want 1", refused.Load())
	}
	if l := LimitListener(raw, 0, nil, nil); l != raw {
		t.Error("LimitListener with 0 wrapped the listener")
	}
}

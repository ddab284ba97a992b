package transport_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store/storetest"
	"github.com/redstream/chat/transport"
)

// fakeClock is a clock a test moves by hand: Now for the server, and
// AfterFunc timers that fire, each on a goroutine of its own as
// time.AfterFunc's do, when Advance passes their time.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c      *fakeClock
	at     time.Time
	f      func()
	active bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) transport.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f, active: true}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.active = false
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.active
	t.at, t.active = t.c.now.Add(d), true
	return was
}

// Advance moves the clock on by d and fires the timers that came due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for _, t := range c.timers {
		if t.active && !t.at.After(c.now) {
			t.active = false
			due = append(due, t.f)
		}
	}
	c.mu.Unlock()
	for _, f := range due {
		go f()
	}
}

func onClock(clk *fakeClock) func(*transport.Options) {
	return func(o *transport.Options) { o.Now, o.AfterFunc = clk.Now, clk.AfterFunc }
}

// opened waits until the server has opened w's connection (its timers
// are armed once it answers a frame).
func opened(w *wsClient) {
	w.tb.Helper()
	w.send(map[string]any{"type": "ping", "ref": "opened"})
	w.next(5*time.Second, func(f frame) bool { return f.Type == "pong" && string(f.Ref) == `"opened"` })
}

// TestTokenExpiryOnInjectedClock: a socket closes with 1008 when its
// token expires on the server's clock; one that sent a fresh token in
// band stays until that one expires. No test time passes.
func TestTokenExpiryOnInjectedClock(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	clk := newFakeClock()
	in := startInstance(t, srv, instanceOpts{Transport: func(o *transport.Options) {
		onClock(clk)(o)
		o.TokenTTL = time.Minute
	}})
	tok := mustUser(t, in.URL, "alice")
	expiring := dial(t, in.URL, tok, "")
	refreshed := dial(t, in.URL, tok, "")
	opened(expiring)
	opened(refreshed)

	clk.Advance(30 * time.Second)
	var rt struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
	}
	if st := api(t, in.URL, "POST", "/api/refresh", tok, nil, &rt); st != http.StatusOK {
		t.Fatalf("refresh: %d", st)
	}
	refreshed.send(map[string]any{"type": "auth", "token": rt.Token, "ref": 1})
	if f := refreshed.nextType("authed"); f.ExpiresAt != rt.ExpiresAt {
		t.Fatalf("authed = %+v, want expires_at %s", f, rt.ExpiresAt)
	}

	clk.Advance(29 * time.Second) // 59 s: nothing expired yet
	opened(expiring)
	clk.Advance(2 * time.Second) // 61 s: the first token expired
	if code := expiring.waitClosed(5 * time.Second); code != websocket.StatusPolicyViolation {
		t.Fatalf("expired socket closed with %d, want 1008", code)
	}
	opened(refreshed)
	clk.Advance(30 * time.Second) // 91 s: the refreshed token expired too
	if code := refreshed.waitClosed(5 * time.Second); code != websocket.StatusPolicyViolation {
		t.Fatalf("refreshed socket closed with %d, want 1008", code)
	}
}

// TestFrameRateLimit: past CHAT_FRAME_BURST frames other than sends, a
// socket's frames get rate_limited with their ref and are dropped; the
// socket stays open, sends still work, and after the bucket refilled
// frames pass again.
func TestFrameRateLimit(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	clk := newFakeClock()
	var limited atomic.Int64
	in := startInstance(t, srv, instanceOpts{Transport: func(o *transport.Options) {
		onClock(clk)(o)
		o.FrameRate, o.FrameBurst = 50, 200
		o.Observe.RateLimited = func(kind string) {
			if kind == "frames" {
				limited.Add(1)
			}
		}
	}})
	a := dial(t, in.URL, mustUser(t, in.URL, "alice"), "")
	a.join("general", "") // frame 1
	for i := range 199 {  // frames 2..200: typing has no reply
		a.send(map[string]any{"type": "typing", "room": "general", "ref": i})
	}
	for i := range 20 { // frames 201..220
		a.send(map[string]any{"type": "ping", "ref": 1000 + i})
	}
	a.send(map[string]any{"type": "send", "room": "general", "text": "still", "client_id": "c1", "ref": 5000})
	for i := range 20 {
		f := a.next(5*time.Second, func(f frame) bool { return f.Type == "error" || f.Type == "pong" })
		if f.Type != "error" || f.Code != "rate_limited" || string(f.Ref) != fmt.Sprint(1000+i) {
			t.Fatalf("frame %d past the burst: %+v, want rate_limited with ref %d", 201+i, f, 1000+i)
		}
	}
	if ack := a.nextType("ack"); string(ack.Ref) != "5000" || ack.ClientID != "c1" {
		t.Fatalf("send past the frame limit: %+v, want its ack", ack)
	}
	if n := limited.Load(); n != 20 {
		t.Fatalf("rate-limited metric counted %d frames, want 20", n)
	}

	clk.Advance(time.Second) // 50 frames' worth
	for i := range 51 {
		a.send(map[string]any{"type": "ping", "ref": 2000 + i})
	}
	for i := range 51 {
		f := a.next(5*time.Second, func(f frame) bool { return f.Type == "error" || f.Type == "pong" })
		want := "pong"
		if i == 50 {
			want = "error"
		}
		if f.Type != want || string(f.Ref) != fmt.Sprint(2000+i) {
			t.Fatalf("frame %d after a second: %+v, want %s", i, f, want)
		}
	}
}

// stallDeliveries makes every socket's writer wait, after its first write
// of a live message, until release is called.
type stall struct {
	entered chan struct{} // one value per writer that waits
	release func()
}

func stallDeliveries(o *transport.Options) *stall {
	gate := make(chan struct{})
	s := &stall{entered: make(chan struct{}, 100)}
	var once sync.Once
	s.release = func() { once.Do(func() { close(gate) }) }
	o.Observe.Delivery = func(time.Duration) {
		select {
		case <-gate:
		default:
			s.entered <- struct{}{}
			<-gate
		}
	}
	return s
}

// TestBatchCoalescesByQueueDepth: the writer writes at once what is
// queued; a ?batch=1 socket gets, in one WebSocket message, everything
// that queued while its writer was busy, newline-separated, in order; a
// plain socket gets one frame per message.
func TestBatchCoalescesByQueueDepth(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	var st *stall
	t.Cleanup(func() { st.release() })
	in := startInstance(t, srv, instanceOpts{Transport: func(o *transport.Options) { st = stallDeliveries(o) }})
	sender := dial(t, in.URL, mustUser(t, in.URL, "sender"), "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	raws := map[string]*websocket.Conn{}
	for _, q := range []string{"?batch=1", ""} {
		raw, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(in.URL, "http")+"/ws"+q,
			&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + mustUser(t, in.URL, "reader"+strings.TrimPrefix(q, "?batch="))}}})
		if err != nil {
			t.Fatal(err)
		}
		defer raw.CloseNow()
		_ = raw.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"general"}`))
		if _, data, err := raw.Read(ctx); err != nil || !strings.Contains(string(data), `"joined"`) {
			t.Fatalf("joined: %s %v", data, err)
		}
		raws[q] = raw
	}
	const n = 200
	sender.send(map[string]any{"type": "send", "room": "general", "text": "0"})
	for range 2 { // both writers wrote message 0 and wait
		select {
		case <-st.entered:
		case <-ctx.Done():
			t.Fatal("message 0 was not written")
		}
	}
	for i := 1; i < n; i++ {
		sender.send(map[string]any{"type": "send", "room": "general", "text": fmt.Sprint(i)})
	}
	storetest.CheckFor(t, 10*time.Second, func() error {
		if d := in.Engine.Counters().Delivered; d < 2*n {
			return fmt.Errorf("%d of %d messages queued", d, 2*n)
		}
		return nil
	})
	st.release()

	read := func(raw *websocket.Conn) (frames []string, messages int) {
		for len(frames) < n {
			_, data, err := raw.Read(ctx)
			if err != nil {
				t.Fatalf("after %d frames: %v", len(frames), err)
			}
			had := len(frames)
			for _, line := range strings.Split(string(data), "\n") {
				if strings.Contains(line, `"type":"message"`) {
					frames = append(frames, line)
				}
			}
			if len(frames) > had {
				messages++ // presence frames of the other reader may come alone
			}
		}
		return frames, messages
	}
	for q, raw := range raws {
		frames, messages := read(raw)
		for i, line := range frames {
			if want := fmt.Sprintf(`"text":"%d"`, i); !strings.Contains(line, want) {
				t.Fatalf("%q frame %d: %s", q, i, line)
			}
		}
		want := n // plain: one frame per message
		if q != "" {
			want = 2 // message 0, then the 199 that queued behind it
		}
		if messages != want {
			t.Fatalf("%q: %d frames came in %d WebSocket messages, want %d", q, n, messages, want)
		}
	}
}

// TestSlowConsumerCloses1013: a socket whose queue overflows while its
// writer is stuck is closed with 1013 once the writer gets through, and
// its backlog is not written.
func TestSlowConsumerCloses1013(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	var st *stall
	t.Cleanup(func() { st.release() })
	in := startInstance(t, srv, instanceOpts{
		Engine:    func(o *engine.Options) { o.QueueLen = 16 },
		Transport: func(o *transport.Options) { st = stallDeliveries(o) },
	})
	sender := dial(t, in.URL, mustUser(t, in.URL, "sender"), "")
	slow := dial(t, in.URL, mustUser(t, in.URL, "slow"), "")
	slow.join("general", "")
	sender.send(map[string]any{"type": "send", "room": "general", "text": "0"})
	<-st.entered
	for i := 1; i <= 20; i++ { // one at a time: the sender's acks never pile up
		sender.send(map[string]any{"type": "send", "room": "general", "text": fmt.Sprint(i)})
		sender.nextType("ack")
	}
	storetest.CheckFor(t, 10*time.Second, func() error {
		if k := in.Engine.Counters().SlowKicks; k != 1 {
			return fmt.Errorf("%d slow kicks", k)
		}
		return nil
	})
	st.release()
	var got []string
	for f := range slow.frames {
		if f.Type == "message" {
			got = append(got, f.Text)
		}
	}
	if code := websocket.CloseStatus(slow.closeErr()); code != websocket.StatusTryAgainLater {
		t.Fatalf("slow socket ended with %v, want close 1013", slow.closeErr())
	}
	if len(got) != 1 || got[0] != "0" {
		t.Fatalf("slow socket got messages %q, want only the one written before the kick", got)
	}
}

// TestShutdownWritesQueuedAcksBefore1001: acks queued behind a busy
// writer when the server drains are written before the 1001 close, so
// the client does not send again what was stored.
func TestShutdownWritesQueuedAcksBefore1001(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	var st *stall
	t.Cleanup(func() { st.release() })
	in := startInstance(t, srv, instanceOpts{Transport: func(o *transport.Options) { st = stallDeliveries(o) }})
	a := dial(t, in.URL, mustUser(t, in.URL, "alice"), "")
	a.join("general", "")
	a.send(map[string]any{"type": "send", "room": "general", "text": "0", "client_id": "c0"})
	<-st.entered // the writer wrote message 0 and waits
	const n = 6
	for i := 1; i < n; i++ {
		a.send(map[string]any{"type": "send", "room": "general", "text": fmt.Sprint(i), "client_id": fmt.Sprint("c", i)})
	}
	// Each live message is queued after its sender's ack.
	storetest.CheckFor(t, 10*time.Second, func() error {
		if d := in.Engine.Counters().Delivered; d < n {
			return fmt.Errorf("%d of %d messages queued", d, n)
		}
		return nil
	})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		in.Server.Drain(ctx, 0)
	}()
	storetest.CheckFor(t, 5*time.Second, func() error {
		if st := api(t, in.URL, "GET", "/readyz", "", nil, nil); st != http.StatusServiceUnavailable {
			return fmt.Errorf("readyz %d while draining", st)
		}
		return nil
	})
	st.release()
	acked := map[string]bool{}
	for f := range a.frames {
		if f.Type == "ack" {
			acked[f.ClientID] = true
		}
	}
	if code := websocket.CloseStatus(a.closeErr()); code != websocket.StatusGoingAway {
		t.Fatalf("socket ended with %v, want close 1001", a.closeErr())
	}
	for i := range n {
		if !acked[fmt.Sprint("c", i)] {
			t.Fatalf("ack of c%d missing before the 1001 close (got %v)", i, acked)
		}
	}
	<-drained
}

// connGoroutines lists the goroutines running connection code.
func connGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "chat/transport.(*conn)") || strings.Contains(g, "chat/transport.(*idleWait)") {
			out = append(out, g)
		}
	}
	return out
}

// TestDrainLeavesNoGoroutine: once Drain returns, no goroutine of any
// connection is left (readers, writers, pingers, timer callbacks), and
// once the instance stopped, none of the instance's. Not parallel, so
// that no other test's connections run meanwhile.
func TestDrainLeavesNoGoroutine(t *testing.T) {
	srv := storetest.Start(t, storetest.Options{})
	ignore := goleak.IgnoreCurrent()
	in := startInstance(t, srv, instanceOpts{Transport: func(o *transport.Options) {
		o.PingInterval = 20 * time.Millisecond // pings out while draining
	}})
	alice := mustUser(t, in.URL, "alice")
	var socks []*wsClient
	for i := range 6 {
		q := ""
		if i%2 == 1 {
			q = "?batch=1"
		}
		w := dial(t, in.URL, alice, q)
		if i < 4 {
			w.join("general", "")
		}
		socks = append(socks, w)
	}
	for i, w := range socks[:4] {
		w.send(map[string]any{"type": "send", "room": "general", "text": fmt.Sprint(i)})
	}
	for _, w := range socks[:4] {
		for range 4 {
			w.nextType("message")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in.Server.Drain(ctx, 0)
	if ctx.Err() != nil {
		t.Fatal("Drain did not return before its context ended")
	}
	// A goroutine that called conns.Done may still be returning.
	deadline := time.Now().Add(time.Second)
	for gs := connGoroutines(); len(gs) > 0; gs = connGoroutines() {
		if time.Now().After(deadline) {
			t.Fatalf("%d connection goroutines left after Drain:\n%s", len(gs), strings.Join(gs, "\n\n"))
		}
		time.Sleep(time.Millisecond)
	}
	for _, w := range socks {
		if code := w.waitClosed(5 * time.Second); code != websocket.StatusGoingAway {
			t.Fatalf("socket closed with %d, want 1001", code)
		}
	}
	in.Stop()
	goleak.VerifyNone(t, ignore, goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"),
		// Without redis-server the test's Redis is the in-process store,
		// whose server goroutines belong to the test, not to the transport.
		goleak.IgnoreAnyFunction("github.com/alicebob/miniredis/v2/server.(*Server).servePeer"),
		goleak.IgnoreAnyFunction("github.com/alicebob/miniredis/v2/server.(*Server).servePeer.func2"),
		goleak.IgnoreAnyFunction("github.com/alicebob/miniredis/v2/server.(*Server).ServeConn.func1"))
}

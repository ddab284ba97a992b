package engine_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/engine/enginetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustEngine(tb testing.TB, mem *enginetest.Mem, mod func(*engine.Options)) *engine.Engine {
	tb.Helper()
	opts := engine.Options{
		Log: mem, Tail: mem, Bus: mem, Presence: mem, Directory: mem,
		Encoder: enginetest.JSONEncoder{}, TailBlock: 200 * time.Millisecond,
	}
	if mod != nil {
		mod(&opts)
	}
	e, err := engine.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.Close() })
	return e
}

// client drains a session in the background, like a socket writer.
type client struct {
	s      *engine.Session
	mu     sync.Mutex
	frames []enginetest.Frame
	done   chan struct{}
}

func connect(tb testing.TB, e *engine.Engine, user string) *client {
	tb.Helper()
	s, err := e.Connect(user, "tok-"+user)
	if err != nil {
		tb.Fatal(err)
	}
	c := &client{s: s, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(c.done)
		write(ctx, s, func(buf []engine.Frame) {
			c.mu.Lock()
			for _, b := range buf {
				c.frames = append(c.frames, enginetest.Decode(b.Data))
			}
			c.mu.Unlock()
		})
	}()
	tb.Cleanup(func() { cancel(); <-c.done; s.Close() })
	return c
}

// write is a session's writer as the gateway runs it: woken by OnReady,
// it passes each batch of queued frames to got until the session is
// kicked with nothing left queued, or ctx ends.
func write(ctx context.Context, s *engine.Session, got func([]engine.Frame)) {
	ready := make(chan struct{}, 1)
	s.OnReady(func() {
		select {
		case ready <- struct{}{}:
		default:
		}
	})
	var buf []engine.Frame
	for {
		if buf = s.More(buf[:0]); len(buf) > 0 {
			got(buf)
			continue
		}
		select {
		case <-ready:
		case <-s.Done():
			if buf = s.More(buf[:0]); len(buf) > 0 {
				got(buf)
			}
			return
		case <-ctx.Done():
			return
		}
	}
}

func (c *client) join(tb testing.TB, room string, since *engine.StreamPos) engine.JoinInfo {
	tb.Helper()
	var info engine.JoinInfo
	if err := c.s.Join(context.Background(), room, since, func(j engine.JoinInfo) { info = j }); err != nil {
		tb.Fatalf("join %s: %v", room, err)
	}
	return info
}

func (c *client) messages(room string) []enginetest.Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []enginetest.Frame
	for _, f := range c.frames {
		if f.Type == "message" && f.Room == room {
			out = append(out, f)
		}
	}
	return out
}

func (c *client) ofType(typ string) []enginetest.Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []enginetest.Frame
	for _, f := range c.frames {
		if f.Type == typ {
			out = append(out, f)
		}
	}
	return out
}

func checkFor(tb testing.TB, total time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func send(tb testing.TB, e *engine.Engine, user, room, text string) engine.Message {
	tb.Helper()
	r, err := e.SendWait(context.Background(), user, room, text, "")
	if err != nil {
		tb.Fatalf("send: %v", err)
	}
	return r.Message
}

// ids returns the stream IDs of all messages of room after since, as stored.
func storedAfter(tb testing.TB, mem *enginetest.Mem, room string, since engine.StreamPos) []string {
	tb.Helper()
	msgs, err := mem.Range(context.Background(), room, since, 1<<30)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID.String()
	}
	return out
}

func frameIDs(fs []enginetest.Frame) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.ID
	}
	return out
}

func equalIDs(got, want []string) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d messages, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Errorf("message %d: got %s, want %s", i, got[i], want[i])
		}
	}
	return nil
}

func TestFanOutOrderExactlyOnce(t *testing.T) {
	t.Parallel()
	mem := enginetest.New()
	for _, u := range []string{"alice", "bob", "carol"} {
		mem.AddUser(u)
	}
	e := mustEngine(t, mem, nil)
	var clients []*client
	for _, u := range []string{"alice", "bob", "carol"} {
		c := connect(t, e, u)
		info := c.join(t, "general", nil)
		if !info.LastID.IsZero() {
			t.Fatalf("empty room last_id = %s", info.LastID)
		}
		clients = append(clients, c)
	}
	var wg sync.WaitGroup
	for _, u := range []string{"alice", "bob", "carol"} {
		wg.Go(func() {
			for i := range 50 {
				send(t, e, u, "general", fmt.Sprintf("%s %d", u, i))
			}
		})
	}
	wg.Wait()
	want := storedAfter(t, mem, "general", engine.StreamPos{})
	if len(want) != 150 {
		t.Fatalf("stored %d messages, want 150", len(want))
	}
	for _, c := range clients {
		checkFor(t, 5*time.Second, func() error { return equalIDs(frameIDs(c.messages("general")), want) })
	}
}

// TestJoinSinceUnderConcurrentSends is the join race: sessions join with
// since while messages keep arriving, and each must see every message after
// since exactly once, in order.
func TestJoinSinceUnderConcurrentSends(t *testing.T) {
	t.Parallel()
	mem := enginetest.New()
	mem.AddUser("alice")
	mem.AddUser("bob")
	e := mustEngine(t, mem, nil)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			send(t, e, "alice", "tech", fmt.Sprint(i))
			time.Sleep(100 * time.Microsecond)
		}
	})
	type joiner struct {
		c     *client
		since engine.StreamPos
	}
	var joiners []joiner
	for i := range 20 {
		time.Sleep(3 * time.Millisecond)
		since, _ := mem.Last(context.Background(), "tech")
		if i%3 == 0 && !since.IsZero() {
			since.Seq = 0 // a cursor that is not a message id
		}
		c := connect(t, e, "bob")
		info := c.join(t, "tech", &since)
		if info.Recovered == nil || !*info.Recovered {
			t.Fatalf("recovered = %v, want true", info.Recovered)
		}
		joiners = append(joiners, joiner{c, since})
		if i%2 == 0 {
			// Joiners that come and go make the room start and stop tailing.
			c2 := connect(t, e, "bob")
			c2.join(t, "tech", nil)
			c2.s.Close()
		}
	}
	time.Sleep(20 * time.Millisecond)
	stop()
	wg.Wait()
	for i, j := range joiners {
		want := storedAfter(t, mem, "tech", j.since)
		checkFor(t, 5*time.Second, func() error {
			got := frameIDs(j.c.messages("tech"))
			if err := equalIDs(got, want); err != nil {
				seen := map[string]int{}
				dups := 0
				for _, id := range got {
					seen[id]++
					if seen[id] == 2 {
						dups++
					}
				}
				return fmt.Errorf("joiner %d (since %s): %w; dups %d; first got %v want %v", i, j.since, err, dups, got[:min(3, len(got))], want[:min(3, len(want))])
			}
			return nil
		})
	}
}

func TestJoinWithoutSinceGetsOnlyNewMessages(t *testing.T) {
	t.Parallel()
	mem := enginetest.New()
	mem.AddUser("alice")
	e := mustEngine(t, mem, nil)
	old := send(t, e, "alice", "general", "before")
	c := connect(t, e, "alice")
	info := c.join(t, "general", nil)
	if info.LastID != old.ID {
		t.Fatalf("last_id = %s, want %s", info.LastID, old.ID)
	}
	if info.Recovered != nil {
		t.Fatalf("recovered set without since")
	}
	m := send(t, e, "alice", "general", "after")
	checkFor(t, 2*time.Second, func() error {
		return equalIDs(frameIDs(c.messages("general")), []string{m.ID.String()})
	})
}

func TestSinceTrimmedIsNotRecovered(t *testing.T) {
	t.Parallel()
	mem := enginetest.New()
	mem.MaxLen = 3
	mem.AddUser("alice")
	e := mustEngine(t, mem, nil)
	first := send(t, e, "alice", "general", "0")
	for i := range 5 {
		send(t, e, "alice", "general", fmt.Sprint(i+1))
	}
	c := connect(t, e, "alice")
	info := c.join(t, "general", &first.ID)
	if info.Recovered == nil || *info.Recovered {
		t.Fatalf("recovered = %v, want false", info.Recovered)
	}
	checkFor(t, 2*time.Second, func() error {
		if n := len(c.messages("general")); n != 3 {
			return fmt.Errorf("replayed %d, want the 3 kept", n)
		}
		return nil
	})
}

func TestSlowConsumerIsKickedOthersUnaffected(t *testing.T) {
	t.Parallel()
	mem := enginetest.New()
	mem.AddUser("alice")
	e := mustEngine(t, mem, func(o *engine.Options) { o.QueueLen = 128 })
	fast := connect(t, e, "alice")
	fast.join(t, "general", nil)
	slow, err := e.Connect("alice", "t2") // nobody reads it
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if err := slow.Join(context.Background(), "general", nil, func(engine.JoinInfo) {}); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		send(t, e, "alice", "general", fmt.Sprint(i))
		time.Sleep(500 * time.Microsecond) // a rate the reading client keeps up with
	}
	select {
	case <-slow.Done():
		if !errors.Is(slow.Err(), engine.ErrSlowConsumer) {
			t.Fatalf("kicked with %v", slow.Err())
		}
	case <-time.After(2 * time.Second):
		t.Fatal("slow session not kicked")
	}
	checkFor(t, 2*time.Second, func() error {
		if n := len(fast.messages("general")); n != 300 {
			return fmt.Errorf("fast client got %d of 300", n)
		}
		return nil
	})
}

func TestAuthorize(t *testing.T) {
	t.Parallel()
	mem := enginetest.New()
	for _, u := range []string{"alice", "bob", "carol"} {
		mem.AddUser(u)
	}
	e := mustEngine(t, mem, nil)
	ctx := context.Background()
	dm, err := e.OpenDirect(ctx, "alice", "Bob")
	if err != nil || dm != "dm:alice:bob" {
		t.Fatalf("OpenDirect = %q, %v", dm, err)
	}
	tests := []struct {
		user, room string
		want       error
	}{
		{"alice", "general", nil},
		{"bob", "dm:alice:bob", nil},
		{"carol", "dm:alice:bob", engine.ErrForbidden},
		{"alice", "dm:alice:zed", engine.ErrNotFound},
		{"alice", "nope", engine.ErrNotFound},
		{"alice", "Bad Name", engine.ErrInvalid},
		{"alice", "dm:bob:alice", engine.ErrInvalid},
	}
	for _, tc := range tests {
		_, err := e.Authorize(ctx, tc.user, tc.room)
		if !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
			t.Errorf("Authorize(%s, %s) = %v, want %v", tc.user, tc.room, err, tc.want)
		}
	}
	c := connect(t, e, "carol")
	if err := c.s.Join(ctx, "dm:alice:bob", nil, func(engine.JoinInfo) {}); !errors.Is(err, engine.ErrForbidden) {
		t.Errorf("carol joins dm: %v", err)
	}
	if _, _, err := e.History(ctx, "carol", "dm:alice:bob", engine.HistoryQuery{Limit: 10}); !errors.Is(err, engine.ErrForbidden) {
		t.Errorf("carol reads dm: %v", err)
	}
	if _, err := e.SendWait(ctx, "carol", "dm:alice:bob", "hi", ""); !errors.Is(err, engine.ErrForbidden) {
		t.Errorf("carol sends to dm: %v", err)
	}
}

func TestPresenceTwoSessionsOfOneUser(t *testing.T) {
	t.Parallel()
	mem := enginetest.New()
	mem.AddUser("alice")
	mem.AddUser("bob")
	e := mustEngine(t, mem, nil)
	watcher := connect(t, e, "bob")
	watcher.join(t, "general", nil)
	a1 := connect(t, e, "alice")
	if info := a1.join(t, "general", nil); len(info.Online) != 2 {
		t.Fatalf("online = %v", info.Online)
	}
	a2 := connect(t, e, "alice")
	a2.join(t, "general", nil)
	checkFor(t, time.Second, func() error {
		if n := len(watcher.ofType("presence")); n != 1 {
			return fmt.Errorf("%d presence frames, want 1 (online)", n)
		}
		return nil
	})
	if err := a1.s.Leave("general"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(watcher.ofType("presence")); n != 1 {
		t.Fatalf("offline sent while a second socket is joined")
	}
	a2.s.Close()
	checkFor(t, time.Second, func() error {
		p := watcher.ofType("presence")
		if len(p) != 2 || p[1].State != "offline" || p[1].User != "alice" {
			return fmt.Errorf("presence frames %v, want online then offline", p)
		}
		return nil
	})
	for _, f := range a1.ofType("presence") {
		if f.User == "alice" {
			t.Fatalf("a user got their own presence: %v", f)
		}
	}
}

func TestTypingThrottledAndNotToSender(t *testing.T) {
	t.Parallel()
	mem := enginetest.New()
	mem.AddUser("alice")
	mem.AddUser("bob")
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	e := mustEngine(t, mem, func(o *engine.Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	a := connect(t, e, "alice")
	a.join(t, "general", nil)
	b := connect(t, e, "bob")
	b.join(t, "general", nil)
	for range 10 {
		if err := e.Typing(context.Background(), "alice", "general"); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	if err := e.Typing(context.Background(), "alice", "general"); err != nil {
		t.Fatal(err)
	}
	checkFor(t, time.Second, func() error {
		if n := len(b.ofType("typing")); n != 2 {
			return fmt.Errorf("bob got %d typing frames, want 2", n)
		}
		return nil
	})
	if len(a.ofType("typing")) != 0 {
		t.Fatal("sender got own typing")
	}
}

func TestHistoryPagesWalkWholeRoom(t *testing.T) {
	t.Parallel()
	mem := enginetest.New()
	mem.AddUser("alice")
	e := mustEngine(t, mem, nil)
	for i := range 23 {
		send(t, e, "alice", "support", fmt.Sprint(i))
	}
	want := storedAfter(t, mem, "support", engine.StreamPos{})
	ctx := context.Background()
	// Backwards with before.
	var got []string
	q := engine.HistoryQuery{Limit: 5}
	for {
		page, more, err := e.History(ctx, "alice", "support", q)
		if err != nil {
			t.Fatal(err)
		}
		got = append(frameIDsOf(page), got...)
		if !more {
			break
		}
		q.Before = &page[0].ID
	}
	if err := equalIDs(got, want); err != nil {
		t.Fatalf("before walk: %v", err)
	}
	// Forwards with after=0.
	got = nil
	q = engine.HistoryQuery{Limit: 7, After: &engine.StreamPos{}}
	for {
		page, more, err := e.History(ctx, "alice", "support", q)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, frameIDsOf(page)...)
		if !more {
			break
		}
		q.After = &page[len(page)-1].ID
	}
	if err := equalIDs(got, want); err != nil {
		t.Fatalf("after walk: %v", err)
	}
	if _, _, err := e.History(ctx, "alice", "support", engine.HistoryQuery{Limit: 5, Before: &engine.StreamPos{Ms: 1}, After: &engine.StreamPos{}}); !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("before+after: %v", err)
	}
	if _, _, err := e.History(ctx, "alice", "support", engine.HistoryQuery{Limit: 201}); !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("limit 201: %v", err)
	}
}

func frameIDsOf(msgs []engine.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID.String()
	}
	return out
}

func TestIdempotentRetryAndValidation(t *testing.T) {
	t.Parallel()
	mem := enginetest.New()
	mem.AddUser("alice")
	e := mustEngine(t, mem, nil)
	ctx := context.Background()
	r1, err := e.SendWait(ctx, "alice", "general", "hi", "c1")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := e.SendWait(ctx, "alice", "general", "hi", "c1")
	if err != nil || !r2.Duplicate || r2.Message.ID != r1.Message.ID {
		t.Fatalf("retry = %+v, %v; want duplicate of %s", r2, err, r1.Message.ID)
	}
	if n := len(storedAfter(t, mem, "general", engine.StreamPos{})); n != 1 {
		t.Fatalf("stored %d, want 1", n)
	}
	for text, want := range map[string]error{
		"":                             engine.ErrInvalid,
		"   ":                          engine.ErrInvalid,
		"bell\a":                       engine.ErrInvalid,
		string(make([]byte, 4001)):     engine.ErrTooLarge,
		"ok\nwith\ttabs and ünïcödé ✓": nil,
	} {
		_, err := e.SendWait(ctx, "alice", "general", text, "")
		if !errors.Is(err, want) && !(err == nil && want == nil) {
			t.Errorf("send %q: %v, want %v", text, err, want)
		}
	}
}

func TestParsePos(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"0": "0-0", "0-0": "0-0", "1700000000000-5": "1700000000000-5", "12": "12-0"} {
		p, err := engine.ParsePos(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePos(%q) = %v, %v", in, p, err)
		}
	}
	for _, in := range []string{"", "-1", "1-", "a-1", "1-2-3", " 1", "+1", "99999999999999999999999"} {
		if _, err := engine.ParsePos(in); !errors.Is(err, engine.ErrInvalid) {
			t.Errorf("ParsePos(%q) accepted", in)
		}
	}
}

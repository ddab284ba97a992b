package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/storetest"
	"github.com/redstream/chat/transport"
)

// The engine is tested on the real store (a private redis-server, or the
// in-process store where none is installed): the store's scripts hold
// half of the delivery rules, and a fake that re-implemented them would
// test the fake.

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"), // go-redis connections closing after Close
	)
}

// world is a Redis and the users of a test; instances share it.
type world struct {
	tb  testing.TB
	srv *storetest.Server
	rdb redis.UniversalClient
}

func newWorld(tb testing.TB, users ...string) *world {
	tb.Helper()
	srv := storetest.Start(tb, storetest.Options{})
	w := &world{tb: tb, srv: srv, rdb: srv.UniversalClient(tb)}
	st := w.store(nil)
	for _, u := range users {
		if err := st.CreateUser(context.Background(), u, "x"); err != nil {
			tb.Fatal(err)
		}
	}
	return w
}

func (w *world) store(mod func(*store.Options)) *store.Store {
	w.tb.Helper()
	opts := store.Options{Client: w.rdb, SendRate: 10000, SendBurst: 10000, MaxLen: 100000}
	if mod != nil {
		mod(&opts)
	}
	st, err := store.New(opts)
	if err != nil {
		w.tb.Fatal(err)
	}
	w.tb.Cleanup(func() { _ = st.Close() })
	if err := st.Init(context.Background()); err != nil {
		w.tb.Fatal(err)
	}
	return st
}

// instance is one engine on its own store.
type instance struct {
	*engine.Engine
	st *store.Store
}

func (w *world) instance(feed func(*store.Store) engine.Feed, mod func(*engine.Options)) *instance {
	w.tb.Helper()
	st := w.store(nil)
	var f engine.Feed = st
	if feed != nil {
		f = feed(st)
	}
	opts := engine.Options{Log: st, Directory: st, Presence: st, Feed: f, Encoder: transport.Encoder{}}
	if mod != nil {
		mod(&opts)
	}
	e, err := engine.New(opts)
	if err != nil {
		w.tb.Fatal(err)
	}
	w.tb.Cleanup(func() { _ = e.Close() })
	return &instance{e, st}
}

// frame is any server frame, decoded.
type frame struct {
	Type, Room, ID, User, Text, Target, Emoji, State, Reason string
	On                                                       bool
}

// client drains a session in the background, like a socket writer.
type client struct {
	s      *engine.Session
	mu     sync.Mutex
	frames []frame
	done   chan struct{}
}

func connect(tb testing.TB, e *instance, user string) *client {
	tb.Helper()
	s, err := e.Connect(user, "tok-"+user, time.Now())
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
				var f frame
				if err := json.Unmarshal(b.Data, &f); err != nil {
					panic(err)
				}
				c.frames = append(c.frames, f)
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

// entries are the message, edit, delete and reaction frames of room.
func (c *client) entries(room string) []frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []frame
	for _, f := range c.frames {
		switch f.Type {
		case "message", "edit", "delete", "reaction":
			if f.Room == room {
				out = append(out, f)
			}
		}
	}
	return out
}

func (c *client) ofType(typ string) []frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []frame
	for _, f := range c.frames {
		if f.Type == typ {
			out = append(out, f)
		}
	}
	return out
}

func send(tb testing.TB, e *instance, user, room, text string) engine.Entry {
	tb.Helper()
	r, err := e.Post(context.Background(), user, engine.Write{Kind: engine.EntryMessage, Room: room, Text: text})
	if err != nil {
		tb.Fatalf("send %q: %v", text, err)
	}
	return r.Entry
}

// storedAfter lists the client-visible entries of room after since.
func storedAfter(tb testing.TB, st *store.Store, room string, since engine.StreamPos) []string {
	tb.Helper()
	var out []string
	for {
		ents, err := st.Range(context.Background(), room, since, 500)
		if err != nil {
			tb.Fatal(err)
		}
		for _, e := range ents {
			since = e.ID
			if e.Kind != engine.EntryMember {
				out = append(out, e.ID.String())
			}
		}
		if len(ents) < 500 {
			return out
		}
	}
}

func ids(fs []frame) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.ID
	}
	return out
}

func equalIDs(got, want []string) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			return fmt.Errorf("entry %d: got %s, want %s", i, got[i], want[i])
		}
	}
	return nil
}

func TestFanOutOrderExactlyOnceAcrossInstances(t *testing.T) {
	t.Parallel()
	users := []string{"alice", "bob", "carol"}
	w := newWorld(t, users...)
	a, b := w.instance(nil, nil), w.instance(nil, nil)
	var clients []*client
	for i, u := range users {
		c := connect(t, []*instance{a, b}[i%2], u)
		if info := c.join(t, "general", nil); !info.LastID.IsZero() {
			t.Fatalf("empty room last_id = %s", info.LastID)
		}
		clients = append(clients, c)
	}
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			in := []*instance{a, b}[i%2]
			for j := range 50 {
				m := send(t, in, u, "general", fmt.Sprintf("%s %d", u, j))
				if j%10 == 0 {
					if _, err := in.Post(context.Background(), u, engine.Write{Kind: engine.EntryReaction, Room: "general", Target: m.ID, Emoji: "+1", On: true}); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	want := storedAfter(t, a.st, "general", engine.StreamPos{})
	if len(want) != 165 {
		t.Fatalf("stored %d entries, want 150 messages and 15 reactions", len(want))
	}
	for _, c := range clients {
		storetest.CheckFor(t, 5*time.Second, func() error { return equalIDs(ids(c.entries("general")), want) })
	}
}

// lossyFeed drops notices before the engine sees them, as a pub/sub
// connection that loses messages would: the counter shows each loss and
// the engine must read the missing entries from the stream.
type lossyFeed struct {
	*store.Store
	drop    func() bool
	dropped atomic.Int64
}

func (f *lossyFeed) Attach(h engine.FeedHandler) { f.Store.Attach(lossyHandler{h, f}) }

type lossyHandler struct {
	engine.FeedHandler
	f *lossyFeed
}

func (h lossyHandler) Notice(e *engine.Entry) {
	if h.f.drop() {
		h.f.dropped.Add(1)
		return
	}
	h.FeedHandler.Notice(e)
}

// TestGapRepair: a third of the notices never arrive; every client still
// gets every entry once, in order. The last notices are dropped too, so
// only the sweep can find them.
func TestGapRepair(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob")
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	lossy := &lossyFeed{}
	b := w.instance(func(st *store.Store) engine.Feed {
		lossy.Store = st
		lossy.drop = func() bool { mu.Lock(); defer mu.Unlock(); return rng.IntN(3) == 0 }
		return lossy
	}, func(o *engine.Options) { o.SweepEvery = 300 * time.Millisecond })
	a := w.instance(nil, nil)
	c := connect(t, b, "bob")
	c.join(t, "general", nil)
	for i := range 200 {
		send(t, a, "alice", "general", fmt.Sprint(i))
	}
	mu.Lock()
	lossy.drop = func() bool { return true } // the last ones too
	mu.Unlock()
	for i := range 3 {
		send(t, a, "alice", "general", fmt.Sprint("last ", i))
	}
	want := storedAfter(t, a.st, "general", engine.StreamPos{})
	storetest.CheckFor(t, 5*time.Second, func() error { return equalIDs(ids(c.entries("general")), want) })
	if lossy.dropped.Load() < 50 {
		t.Fatalf("only %d notices dropped", lossy.dropped.Load())
	}
	if n := b.Counters().Repaired; n < lossy.dropped.Load() {
		t.Fatalf("%d entries repaired, %d notices dropped", n, lossy.dropped.Load())
	}
}

// TestJoinSinceUnderConcurrentSends is the join race: sessions join with
// since while messages keep arriving, and each must see every entry after
// since exactly once, in order.
func TestJoinSinceUnderConcurrentSends(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob")
	a, b := w.instance(nil, nil), w.instance(nil, nil)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			send(t, a, "alice", "tech", fmt.Sprint(i))
			time.Sleep(200 * time.Microsecond)
		}
	})
	type joiner struct {
		c     *client
		since engine.StreamPos
	}
	var joiners []joiner
	for i := range 20 {
		time.Sleep(3 * time.Millisecond)
		st, err := a.st.JoinState(context.Background(), "tech", "bob", engine.JoinOptions{})
		if err != nil {
			t.Fatal(err)
		}
		since := st.LastEntry
		if i%3 == 0 && !since.IsZero() {
			since.Seq = 0 // a cursor that is not an entry's id
		}
		c := connect(t, b, "bob")
		info := c.join(t, "tech", &since)
		if info.Recovered == nil || !*info.Recovered {
			t.Fatalf("recovered = %v, want true", info.Recovered)
		}
		joiners = append(joiners, joiner{c, since})
		if i%2 == 0 {
			// Joiners that come and go make the room start and stop.
			c2 := connect(t, b, "bob")
			c2.join(t, "tech", nil)
			c2.s.Close()
		}
	}
	time.Sleep(20 * time.Millisecond)
	stop()
	wg.Wait()
	for i, j := range joiners {
		want := storedAfter(t, a.st, "tech", j.since)
		storetest.CheckFor(t, 5*time.Second, func() error {
			if err := equalIDs(ids(j.c.entries("tech")), want); err != nil {
				return fmt.Errorf("joiner %d (since %s): %w", i, j.since, err)
			}
			return nil
		})
	}
}

func TestJoinWithoutSinceGetsOnlyNewEntries(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice")
	e := w.instance(nil, nil)
	old := send(t, e, "alice", "general", "before")
	if _, err := e.Post(context.Background(), "alice", engine.Write{Kind: engine.EntryReaction, Room: "general", Target: old.ID, Emoji: "x", On: true}); err != nil {
		t.Fatal(err)
	}
	c := connect(t, e, "alice")
	info := c.join(t, "general", nil)
	if info.LastID != old.ID {
		t.Fatalf("last_id = %s, want the newest message %s", info.LastID, old.ID)
	}
	if info.Recovered != nil {
		t.Fatalf("recovered set without since")
	}
	m := send(t, e, "alice", "general", "after")
	storetest.CheckFor(t, 2*time.Second, func() error { return equalIDs(ids(c.entries("general")), []string{m.ID.String()}) })
}

func TestSinceTrimmedIsNotRecovered(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice")
	st := w.store(func(o *store.Options) { o.MaxLen = 100 })
	e, err := engine.New(engine.Options{Log: st, Directory: st, Presence: st, Feed: st, Encoder: transport.Encoder{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	in := &instance{e, st}
	first := send(t, in, "alice", "general", "0")
	for i := range 150 {
		send(t, in, "alice", "general", fmt.Sprint(i+1))
	}
	c := connect(t, in, "alice")
	info := c.join(t, "general", &first.ID)
	if info.Recovered == nil || *info.Recovered {
		t.Fatalf("recovered = %v, want false", info.Recovered)
	}
	kept := storedAfter(t, st, "general", engine.StreamPos{})
	storetest.CheckFor(t, 2*time.Second, func() error { return equalIDs(ids(c.entries("general")), kept) })
}

func TestSlowConsumerIsKickedOthersUnaffected(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice")
	e := w.instance(nil, func(o *engine.Options) { o.QueueLen = 128 })
	fast := connect(t, e, "alice")
	fast.join(t, "general", nil)
	slow, err := e.Connect("alice", "t2", time.Now()) // nobody reads it
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if err := slow.Join(context.Background(), "general", nil, func(engine.JoinInfo) {}); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		send(t, e, "alice", "general", fmt.Sprint(i))
	}
	select {
	case <-slow.Done():
		if !errors.Is(slow.Err(), engine.ErrSlowConsumer) {
			t.Fatalf("kicked with %v", slow.Err())
		}
	case <-time.After(2 * time.Second):
		t.Fatal("slow session not kicked")
	}
	storetest.CheckFor(t, 2*time.Second, func() error {
		if n := len(fast.entries("general")); n != 300 {
			return fmt.Errorf("fast client got %d of 300", n)
		}
		return nil
	})
}

// TestRemovalStopsDeliveryInStreamOrder: a member removed from a private
// channel gets kicked, and nothing stored after the removal, on any
// instance, even while messages keep coming.
func TestRemovalStopsDeliveryInStreamOrder(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "owner", "bob")
	a, b := w.instance(nil, nil), w.instance(nil, nil)
	ctx := context.Background()
	if err := a.CreateRoom(ctx, "owner", engine.RoomSpec{Name: "club", Private: true}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddMember(ctx, "owner", "club", "bob"); err != nil {
		t.Fatal(err)
	}
	bob := connect(t, b, "bob")
	bob.join(t, "club", nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			send(t, a, "owner", "club", fmt.Sprint(i))
		}
	})
	time.Sleep(50 * time.Millisecond)
	if err := a.RemoveMember(ctx, "owner", "club", "bob"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	storetest.CheckFor(t, 2*time.Second, func() error {
		if k := bob.ofType("kicked"); len(k) != 1 || k[0].Room != "club" || k[0].Reason != "removed" {
			return fmt.Errorf("kicked frames %+v", k)
		}
		return nil
	})
	// Bob got exactly the messages stored before the removal entry.
	ents, _ := a.st.Range(ctx, "club", engine.StreamPos{}, 100000)
	var before []string
	for _, e := range ents {
		if e.Kind == engine.EntryMember && e.Member == "bob" && e.Change == engine.ChangeRemoved {
			break
		}
		if e.Kind == engine.EntryMessage {
			before = append(before, e.ID.String())
		}
	}
	if len(before) == len(storedAfter(t, a.st, "club", engine.StreamPos{})) {
		t.Fatal("no message was stored after the removal; the test proves nothing")
	}
	if err := equalIDs(ids(bob.entries("club")), before); err != nil {
		t.Fatalf("bob's entries are not the stream's up to his removal: %v", err)
	}
	// And he can no longer join or send.
	if err := bob.s.Join(ctx, "club", nil, func(engine.JoinInfo) {}); !errors.Is(err, engine.ErrForbidden) {
		t.Fatalf("join after removal: %v", err)
	}
	if _, err := b.Post(ctx, "bob", engine.Write{Kind: engine.EntryMessage, Room: "club", Text: "x"}); !errors.Is(err, engine.ErrForbidden) {
		t.Fatalf("send after removal: %v", err)
	}
}

// TestPresenceDebounced: a user who joins and leaves in a loop reaches
// the others as at most one presence frame a second, and the last state
// is announced within a second.
func TestPresenceDebounced(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "mallory")
	e := w.instance(nil, nil)
	alice := connect(t, e, "alice")
	alice.join(t, "general", nil)
	m := connect(t, e, "mallory")
	start := time.Now()
	for time.Since(start) < 1500*time.Millisecond {
		m.join(t, "general", nil)
		if err := m.s.Leave("general"); err != nil {
			t.Fatal(err)
		}
	}
	m.join(t, "general", nil) // the last state: online
	time.Sleep(1200 * time.Millisecond)
	pres := alice.ofType("presence")
	if n := len(pres); n < 1 || n > 4 {
		t.Fatalf("%d presence frames for 1.5 s of join/leave, want at most one a second", n)
	}
	if last := pres[len(pres)-1]; last.User != "mallory" || last.State != "online" {
		t.Fatalf("last presence %+v, want mallory online", last)
	}
}

func TestPermit(t *testing.T) {
	t.Parallel()
	now := time.Now()
	later := now.Add(time.Hour).UnixMilli()
	type row struct {
		acc  engine.Access
		act  engine.Action
		want error
	}
	pub := engine.Access{Room: "general", User: "u", Kind: engine.KindChannel}
	with := func(a engine.Access, f func(*engine.Access)) engine.Access { f(&a); return a }
	priv := with(pub, func(a *engine.Access) { a.Kind, a.Room = engine.KindPrivate, "club" })
	dm := engine.Access{Room: "dm:ann:bob", User: "ann", Kind: engine.KindDirect}
	rows := []row{
		{engine.Access{Room: "nope", User: "u"}, engine.ActRead, engine.ErrNotFound},
		{pub, engine.ActRead, nil},
		{pub, engine.ActWrite, nil},
		{pub, engine.ActManage, engine.ErrForbidden},
		{with(pub, func(a *engine.Access) { a.Role = engine.RoleModerator }), engine.ActManage, nil},
		{with(pub, func(a *engine.Access) { a.Role = engine.RoleModerator }), engine.ActRoles, engine.ErrForbidden},
		{with(pub, func(a *engine.Access) { a.Role = engine.RoleOwner }), engine.ActRoles, nil},
		{with(pub, func(a *engine.Access) { a.BannedUntil = -1 }), engine.ActRead, engine.ErrForbidden},
		{with(pub, func(a *engine.Access) { a.BannedUntil = now.Add(-time.Second).UnixMilli() }), engine.ActRead, nil},
		{with(pub, func(a *engine.Access) { a.MutedUntil = later }), engine.ActRead, nil},
		{with(pub, func(a *engine.Access) { a.MutedUntil = later }), engine.ActWrite, engine.ErrForbidden},
		{with(pub, func(a *engine.Access) { a.MutedUntil = later }), engine.ActEdit, engine.ErrForbidden},
		{with(pub, func(a *engine.Access) { a.MutedUntil = later }), engine.ActDelete, nil},
		{with(pub, func(a *engine.Access) { a.Admin = true }), engine.ActRoles, nil},
		{priv, engine.ActRead, engine.ErrForbidden},
		{priv, engine.ActWrite, engine.ErrForbidden},
		{with(priv, func(a *engine.Access) { a.Role = engine.RoleMember }), engine.ActWrite, nil},
		{with(priv, func(a *engine.Access) { a.Role = engine.RoleMember }), engine.ActManage, engine.ErrForbidden},
		{with(priv, func(a *engine.Access) { a.Admin = true }), engine.ActRead, nil},
		{dm, engine.ActRead, nil},
		{dm, engine.ActDelete, nil},
		{dm, engine.ActManage, engine.ErrForbidden},
		{with(dm, func(a *engine.Access) { a.User = "cat" }), engine.ActRead, engine.ErrForbidden},
	}
	for i, r := range rows {
		err := r.acc.Permit(r.act, now)
		if (r.want == nil) != (err == nil) || (r.want != nil && !errors.Is(err, r.want)) {
			t.Errorf("row %d: %+v %v: %v, want %v", i, r.acc, r.act, err, r.want)
		}
	}
}

func TestParseMentions(t *testing.T) {
	t.Parallel()
	for text, want := range map[string][]string{
		"@bob hi":                 {"bob"},
		"hi @Bob, and @carol.":    {"bob", "carol.", "carol"},
		"mail bob@example.com":    nil,
		"@bo":                     {},
		"(@dave) é@erin @dave":    {"dave", "erin"},
		"@a.b-c_d @x":             {"a.b-c_d"},
		"no mentions here at all": nil,
	} {
		got := engine.ParseMentions(text)
		if len(got) != len(want) || (len(want) > 0 && !slices.Equal(got, want)) {
			t.Errorf("ParseMentions(%q) = %v, want %v", text, got, want)
		}
	}
	var many string
	for i := range 80 {
		many += fmt.Sprintf("@user%03d ", i)
	}
	if n := len(engine.ParseMentions(many)); n != engine.MaxMentions {
		t.Errorf("%d mentions kept, want %d", n, engine.MaxMentions)
	}
}

func TestParsePos(t *testing.T) {
	t.Parallel()
	for in, ok := range map[string]bool{
		"0": true, "0-0": true, "1700000000000-3": true, "18446744073709551615-18446744073709551615": true,
		"": false, "-1": false, "1-": false, "a-1": false, " 1-0": false, "1-0-0": false, "+1": false,
	} {
		p, err := engine.ParsePos(in)
		if ok != (err == nil) {
			t.Errorf("ParsePos(%q) = %v, %v", in, p, err)
		}
		if err != nil && !errors.Is(err, engine.ErrInvalid) {
			t.Errorf("ParsePos(%q) error %v does not wrap ErrInvalid", in, err)
		}
	}
}

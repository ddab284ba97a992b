package transport_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/storetest"
)

// Integration tests of issue 3, "Rooms people live in": direct rooms,
// presence, typing, read receipts and unread counts, each across two
// instances on one Redis.

// roomInfo is one entry of GET /api/rooms.
type roomInfo struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	LastID string `json:"last_id"`
	Unread int64  `json:"unread"`
}

// mustRooms returns GET /api/rooms by name.
func mustRooms(tb testing.TB, base, token string) map[string]roomInfo {
	tb.Helper()
	var res struct {
		Rooms []roomInfo `json:"rooms"`
	}
	if st := api(tb, base, "GET", "/api/rooms", token, nil, &res); st != http.StatusOK {
		tb.Fatalf("GET /api/rooms: %d", st)
	}
	out := make(map[string]roomInfo, len(res.Rooms))
	for _, r := range res.Rooms {
		if _, dup := out[r.Name]; dup {
			tb.Errorf("GET /api/rooms lists %s twice", r.Name)
		}
		out[r.Name] = r
	}
	return out
}

// checkRoom waits until the caller's GET /api/rooms shows room with unread
// and last_id (last_id "" means any).
func checkRoom(tb testing.TB, base, token, room string, unread int64, lastID string) {
	tb.Helper()
	storetest.CheckFor(tb, 5*time.Second, func() error {
		r, ok := mustRooms(tb, base, token)[room]
		switch {
		case !ok:
			return fmt.Errorf("GET /api/rooms lacks %s", room)
		case r.Unread != unread:
			return fmt.Errorf("%s: unread %d, want %d", room, r.Unread, unread)
		case lastID != "" && r.LastID != lastID:
			return fmt.Errorf("%s: last_id %s, want %s", room, r.LastID, lastID)
		}
		return nil
	})
}

// mustDM opens the direct room of the caller and other.
func mustDM(tb testing.TB, base, token, other string) string {
	tb.Helper()
	var dm struct{ Name, Kind string }
	if st := api(tb, base, "POST", "/api/dms", token, map[string]string{"user": other}, &dm); st != http.StatusOK || dm.Kind != "direct" {
		tb.Fatalf("POST /api/dms %s: %d %+v", other, st, dm)
	}
	return dm.Name
}

// reply sends v with ref and returns the first frame that echoes ref.
func (w *wsClient) reply(v map[string]any, ref string) frame {
	w.tb.Helper()
	v["ref"] = ref
	w.send(v)
	want := strconv.Quote(ref)
	return w.next(5*time.Second, func(f frame) bool { return string(f.Ref) == want })
}

// noReply sends v (which must have no reply on success) and then a ping:
// the first frame echoing either ref must be the pong, so v was handled
// without an answer (the socket handles frames in order).
func (w *wsClient) noReply(v map[string]any, ref string) {
	w.tb.Helper()
	v["ref"] = ref
	w.send(v)
	if f := w.reply(map[string]any{"type": "ping"}, ref+"/ping"); f.Type != "pong" {
		w.tb.Fatalf("frame %v: got %+v, want no reply", v, f)
	}
	want := strconv.Quote(ref)
	for _, f := range w.held {
		if string(f.Ref) == want {
			w.tb.Fatalf("frame %v: got reply %+v, want none", v, f)
		}
	}
}

// poll is next that reports a timeout instead of failing.
func (w *wsClient) poll(d time.Duration, match func(frame) bool) (frame, bool) {
	w.tb.Helper()
	for i, f := range w.held {
		if match(f) {
			w.held = append(w.held[:i:i], w.held[i+1:]...)
			return f, true
		}
	}
	deadline := time.After(d)
	for {
		select {
		case f, ok := <-w.frames:
			if !ok {
				w.tb.Fatalf("connection closed while waiting: %v", w.closeErr())
			}
			if match(f) {
				return f, true
			}
			w.held = append(w.held, f)
		case <-deadline:
			return frame{}, false
		}
	}
}

// nextPresence returns the next presence frame of room.
func (w *wsClient) nextPresence(room string) frame {
	w.tb.Helper()
	return w.next(5*time.Second, func(f frame) bool { return f.Type == "presence" && f.Room == room })
}

func expectPresence(tb testing.TB, who string, f frame, user, state string) {
	tb.Helper()
	if f.User != user || f.State != state {
		tb.Fatalf("%s got presence %s %s, want %s %s", who, f.User, f.State, user, state)
	}
}

func expectOnline(tb testing.TB, j frame, want ...string) {
	tb.Helper()
	got := slices.Clone(j.Online)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		tb.Fatalf("joined %s: online %v, want %v", j.Room, j.Online, want)
	}
}

// killable starts an instance that kill can end like kill -9: nothing it
// would say on the way out (presence leave) reaches Redis, so its presence
// entries stay until they expire.
func killable(tb testing.TB, srv *storetest.Server, o instanceOpts) (in *instance, kill func()) {
	tb.Helper()
	var rdb redis.UniversalClient
	inner := o.Store
	o.Store = func(so *store.Options) {
		rdb = so.Client
		if inner != nil {
			inner(so)
		}
	}
	in = startInstance(tb, srv, o)
	return in, func() {
		in.closed = true // Cleanup must not drain it
		// Store.Close does not close the client it was given, and presence
		// goes through that client: close it first, so the engine's
		// goodbye fails as it would in a dead process.
		_ = rdb.Close()
		_ = in.Engine.Close()
		// Wait for the socket handlers (httptest does not wait for
		// hijacked connections), so none logs after the test ended.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		in.Server.Drain(ctx, 0)
		in.http.CloseClientConnections()
		in.http.Close()
		_ = in.Store.Close()
	}
}

func sortIDs(tb testing.TB, ids []string) {
	tb.Helper()
	slices.SortFunc(ids, func(a, b string) int {
		pa, err := engine.ParsePos(a)
		if err != nil {
			tb.Fatalf("id %q: %v", a, err)
		}
		pb, _ := engine.ParsePos(b)
		return pa.Compare(pb)
	})
}

// TestDirectRooms: a direct room is opened by name of the other user, is
// listed for both members only, carries messages between instances, and a
// third user is refused on every path.
func TestDirectRooms(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in1 := startInstance(t, srv, instanceOpts{})
	in2 := startInstance(t, srv, instanceOpts{})
	alice := mustUser(t, in1.URL, "alice")
	bob := mustUser(t, in2.URL, "bob")
	carol := mustUser(t, in1.URL, "carol")

	var dm struct{ Name, Kind string }
	if st := api(t, in1.URL, "POST", "/api/dms", alice, map[string]string{"user": "Bob"}, &dm); st != http.StatusOK ||
		dm.Name != "dm:alice:bob" || dm.Kind != "direct" {
		t.Fatalf(`POST /api/dms {"user":"Bob"}: %d %+v, want 200 dm:alice:bob direct`, st, dm)
	}
	const room = "dm:alice:bob"
	if got := mustDM(t, in2.URL, bob, "alice"); got != room {
		t.Fatalf("bob's direct room with alice is %s, want %s", got, room)
	}
	var e errBody
	if st := api(t, in2.URL, "POST", "/api/dms", alice, map[string]string{"user": "nobody"}, &e); st != http.StatusNotFound || e.Error.Code != "not_found" {
		t.Errorf("direct room with unknown user: %d %+v, want 404 not_found", st, e)
	}

	for _, c := range []struct {
		who, tok string
		listed   bool
	}{{"alice", alice, true}, {"bob", bob, true}, {"carol", carol, false}} {
		for _, in := range []*instance{in1, in2} {
			r, ok := mustRooms(t, in.URL, c.tok)[room]
			if ok != c.listed || (ok && r.Kind != "direct") {
				t.Errorf("%s's GET /api/rooms: %s listed=%v %+v, want listed=%v kind direct", c.who, room, ok, r, c.listed)
			}
		}
	}

	// Alice and bob chat across the two instances.
	a := dial(t, in1.URL, alice, "")
	b := dial(t, in2.URL, bob, "")
	a.join(room, "")
	b.join(room, "")
	a.send(map[string]any{"type": "send", "room": room, "text": "hi bob"})
	if m := b.nextType("message"); m.Room != room || m.User != "alice" || m.Text != "hi bob" {
		t.Fatalf("bob got %+v", m)
	}
	var posted struct{ Message frame }
	if st := api(t, in2.URL, "POST", "/api/rooms/"+room+"/messages", bob, map[string]string{"text": "hi alice"}, &posted); st != http.StatusCreated {
		t.Fatalf("bob's REST post: %d", st)
	}
	a.nextType("message") // her own
	if m := a.nextType("message"); m.ID != posted.Message.ID || m.User != "bob" || m.Text != "hi alice" {
		t.Fatalf("alice got %+v, want bob's %+v", m, posted.Message)
	}

	// Carol is refused on every path, on both instances.
	for _, in := range []*instance{in1, in2} {
		c := dial(t, in.URL, carol, "")
		for i, v := range []map[string]any{
			{"type": "join", "room": room},
			{"type": "join", "room": room, "since": "0"},
			{"type": "join", "room": room, "since": posted.Message.ID},
			{"type": "send", "room": room, "text": "let me in"},
			{"type": "send", "room": room, "text": "let me in", "client_id": "c1"},
			{"type": "typing", "room": room},
			{"type": "read", "room": room, "id": posted.Message.ID},
			{"type": "join", "room": "dm:alice:zed"}, // guessed, with a user who does not exist
			{"type": "send", "room": "dm:bob:zed", "text": "guess"},
		} {
			if f := c.reply(v, fmt.Sprint("c", i)); f.Type != "error" || f.Code != "forbidden" {
				t.Errorf("carol on %s sends %v: got %s %q (%s), want error forbidden", in.URL, v, f.Type, f.Code, f.Message)
			}
		}
		// Variants of the name never let her in.
		for i, name := range []string{"dm:bob:alice", "DM:alice:bob", "dm:Alice:bob", "dm:alice:bob:", "dm:alice:bob:carol"} {
			f := c.reply(map[string]any{"type": "join", "room": name}, fmt.Sprint("v", i))
			if f.Type != "error" || !slices.Contains([]string{"forbidden", "invalid", "not_found"}, f.Code) {
				t.Errorf("carol joins %q: got %s %q, want an error", name, f.Type, f.Code)
			}
		}
		// Nothing of the room reached her socket.
		c.reply(map[string]any{"type": "ping"}, "last")
		for _, f := range c.drain(0) {
			if f.Room == room || f.Type == "message" || f.Type == "joined" {
				t.Errorf("carol's socket got %+v", f)
			}
		}

		for _, path := range []string{
			"/api/rooms/" + room + "/messages",
			"/api/rooms/" + room + "/messages?after=0",
			"/api/rooms/" + room + "/messages?before=" + posted.Message.ID,
			"/api/rooms/dm%3Aalice%3Abob/messages",
			"/api/rooms/dm:alice:zed/messages",
		} {
			var e errBody
			var page struct{ Messages []frame }
			st := api(t, in.URL, "GET", path, carol, nil, &e)
			if st == http.StatusOK {
				api(t, in.URL, "GET", path, carol, nil, &page)
			}
			if st != http.StatusForbidden || e.Error.Code != "forbidden" {
				t.Errorf("carol GET %s: %d %+v (%d messages), want 403 forbidden", path, st, e, len(page.Messages))
			}
		}
		for _, path := range []string{"/api/rooms/" + room + "/messages", "/api/rooms/dm%3Aalice%3Abob/messages"} {
			var e errBody
			if st := api(t, in.URL, "POST", path, carol, map[string]string{"text": "let me in"}, &e); st != http.StatusForbidden || e.Error.Code != "forbidden" {
				t.Errorf("carol POST %s: %d %+v, want 403 forbidden", path, st, e)
			}
		}
		for _, name := range []string{"dm:bob:alice", "DM:alice:bob"} {
			var page struct{ Messages []frame }
			if st := api(t, in.URL, "GET", "/api/rooms/"+name+"/messages", carol, nil, &page); st == http.StatusOK {
				t.Errorf("carol GET history of %q: 200 with %d messages", name, len(page.Messages))
			}
		}
		if st := api(t, in.URL, "POST", "/api/rooms", carol, map[string]string{"name": room}, nil); st == http.StatusCreated {
			t.Errorf("carol created a channel named %s", room)
		}
	}
	if _, ok := mustRooms(t, in2.URL, carol)[room]; ok {
		t.Errorf("carol's GET /api/rooms lists %s after her attempts", room)
	}

	// What carol tried left nothing: the room holds the two messages, and
	// alice and bob got nothing from her.
	var page struct{ Messages []frame }
	if st := api(t, in1.URL, "GET", "/api/rooms/"+room+"/messages", alice, nil, &page); st != http.StatusOK || len(page.Messages) != 2 {
		t.Fatalf("alice's history: %d, %d messages, want 200 and 2", st, len(page.Messages))
	}
	for _, w := range []*wsClient{a, b} {
		w.reply(map[string]any{"type": "ping"}, "end")
		for _, f := range w.drain(0) {
			if f.User == "carol" {
				t.Errorf("a member got carol's %+v", f)
			}
		}
	}
}

// TestPresence: joined lists who is online on any instance; members on
// every instance see others come and go; a user is online while any socket
// has joined, and never sees their own presence.
func TestPresence(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in1 := startInstance(t, srv, instanceOpts{})
	in2 := startInstance(t, srv, instanceOpts{})
	tok := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
		tok[u] = mustUser(t, in1.URL, u)
	}
	const room = "general"

	a1 := dial(t, in1.URL, tok["alice"], "")
	expectOnline(t, a1.join(room, ""), "alice")
	c2 := dial(t, in2.URL, tok["carol"], "")
	expectOnline(t, c2.join(room, ""), "alice", "carol")
	expectPresence(t, "alice", a1.nextPresence(room), "carol", "online")

	// Bob opens one socket on each instance.
	b1 := dial(t, in1.URL, tok["bob"], "")
	expectOnline(t, b1.join(room, ""), "alice", "bob", "carol")
	expectPresence(t, "alice", a1.nextPresence(room), "bob", "online")
	expectPresence(t, "carol", c2.nextPresence(room), "bob", "online")
	b2 := dial(t, in2.URL, tok["bob"], "")
	expectOnline(t, b2.join(room, ""), "alice", "bob", "carol")

	// Closing one of bob's sockets leaves him online. Wait until in1 has
	// let go of the session (it leaves its rooms first), then let dave
	// join: presence events of a room arrive in order, so anyone who sees
	// dave come before any "bob offline" never got one.
	b1.c.CloseNow()
	storetest.CheckFor(t, 5*time.Second, func() error {
		if n := in1.Engine.Stats().Sessions; n != 1 {
			return fmt.Errorf("in1 has %d sessions after bob's socket closed, want 1", n)
		}
		return nil
	})
	d1 := dial(t, in1.URL, tok["dave"], "")
	expectOnline(t, d1.join(room, ""), "alice", "bob", "carol", "dave")
	expectPresence(t, "alice", a1.nextPresence(room), "dave", "online")
	expectPresence(t, "carol", c2.nextPresence(room), "dave", "online")
	expectPresence(t, "bob's other socket", b2.nextPresence(room), "dave", "online")

	// The last one closing takes him offline, for everyone on both instances.
	b2.c.CloseNow()
	expectPresence(t, "alice", a1.nextPresence(room), "bob", "offline")
	expectPresence(t, "carol", c2.nextPresence(room), "bob", "offline")
	expectPresence(t, "dave", d1.nextPresence(room), "bob", "offline")

	// Leaving is like closing.
	if f := c2.reply(map[string]any{"type": "leave", "room": room}, "leave"); f.Type != "left" || f.Room != room {
		t.Fatalf("leave: %+v", f)
	}
	expectPresence(t, "alice", a1.nextPresence(room), "carol", "offline")
	expectPresence(t, "dave", d1.nextPresence(room), "carol", "offline")
	e2 := dial(t, in2.URL, tok["erin"], "")
	expectOnline(t, e2.join(room, ""), "alice", "dave", "erin")
	expectPresence(t, "alice", a1.nextPresence(room), "erin", "online")
	expectPresence(t, "dave", d1.nextPresence(room), "erin", "online")

	// Nobody got their own presence; bob's sockets are closed, so what they
	// hold is all they ever got.
	for _, c := range []struct {
		user string
		w    *wsClient
	}{{"alice", a1}, {"bob", b1}, {"bob", b2}, {"carol", c2}, {"dave", d1}, {"erin", e2}} {
		for _, f := range c.w.drain(0) {
			if f.Type == "presence" && f.User == c.user {
				t.Errorf("%s got their own presence %+v", c.user, f)
			}
		}
	}
}

// TestPresenceInstanceKilled: an instance that dies without a goodbye
// takes its users offline for everyone else once their entries expire.
func TestPresenceInstanceKilled(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	const ttl = time.Second
	opts := instanceOpts{Engine: func(o *engine.Options) { o.PresenceTTL = ttl }}
	in1 := startInstance(t, srv, opts)
	in2, kill := killable(t, srv, opts)
	tok := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
		tok[u] = mustUser(t, in1.URL, u)
	}
	const room = "general"
	a1 := dial(t, in1.URL, tok["alice"], "")
	a1.join(room, "")
	for _, u := range []string{"bob", "carol"} {
		w := dial(t, in2.URL, tok[u], "")
		w.join(room, "")
		expectPresence(t, "alice", a1.nextPresence(room), u, "online")
	}
	// Dave has a socket on each instance: he survives the crash.
	d1 := dial(t, in1.URL, tok["dave"], "")
	d1.join(room, "")
	expectPresence(t, "alice", a1.nextPresence(room), "dave", "online")
	dial(t, in2.URL, tok["dave"], "").join(room, "")

	start := time.Now()
	kill()
	offline := map[string]bool{}
	for len(offline) < 2 {
		f := a1.next(3*ttl+5*time.Second, func(f frame) bool { return f.Type == "presence" && f.Room == room })
		if f.State != "offline" || (f.User != "bob" && f.User != "carol") {
			t.Fatalf("alice got presence %s %s, want bob and carol offline", f.User, f.State)
		}
		offline[f.User] = true
	}
	// The heartbeat refreshes entries every TTL/4, so expiry takes at least
	// 3/4 of the TTL: anything sooner was a goodbye, not a crash.
	if d := time.Since(start); d < ttl/2 {
		t.Fatalf("offline after %v, before the entries could expire: the kill said goodbye", d)
	} else {
		t.Logf("killed instance's users offline after %v (TTL %v)", d.Round(time.Millisecond), ttl)
	}
	if f := d1.nextPresence(room); f.State != "offline" || (f.User != "bob" && f.User != "carol") {
		t.Fatalf("dave got presence %+v, want bob or carol offline", f)
	}
	e1 := dial(t, in1.URL, tok["erin"], "")
	expectOnline(t, e1.join(room, ""), "alice", "dave", "erin")
	expectPresence(t, "alice", a1.nextPresence(room), "erin", "online") // dave never went offline
}

// TestTyping: typing reaches the other members on both instances, never
// the sender, at most once per 2s per user and room across instances, and
// is never stored.
func TestTyping(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in1 := startInstance(t, srv, instanceOpts{})
	in2 := startInstance(t, srv, instanceOpts{})
	tok := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		tok[u] = mustUser(t, in1.URL, u)
	}
	const room = "general"
	a1 := dial(t, in1.URL, tok["alice"], "")
	a2 := dial(t, in2.URL, tok["alice"], "")
	b2 := dial(t, in2.URL, tok["bob"], "")
	c1 := dial(t, in1.URL, tok["carol"], "")
	d2 := dial(t, in2.URL, tok["dave"], "")
	for _, w := range []*wsClient{a1, a2, b2, c1, d2} {
		w.join(room, "")
	}
	b2.join("tech", "")
	nextTyping := func(who string, w *wsClient, room, user string) {
		t.Helper()
		f := w.next(5*time.Second, func(f frame) bool { return f.Type == "typing" })
		if f.Room != room || f.User != user {
			t.Fatalf("%s got typing %s %s, want %s %s", who, f.Room, f.User, room, user)
		}
	}

	// Twenty keystrokes in a row; the pong says all were handled.
	for range 20 {
		a1.send(map[string]any{"type": "typing", "room": room})
	}
	a1.noReply(map[string]any{"type": "typing", "room": room}, "t")
	// Carol's typing, published after all of alice's, marks where they end.
	c1.noReply(map[string]any{"type": "typing", "room": room}, "t")
	nextTyping("bob", b2, room, "alice")
	nextTyping("bob", b2, room, "carol")
	nextTyping("dave", d2, room, "alice")
	nextTyping("dave", d2, room, "carol")
	nextTyping("carol", c1, room, "alice")

	// The throttle is shared: alice's socket on the other instance is
	// within the same 2s. Another room is throttled apart.
	a2.noReply(map[string]any{"type": "typing", "room": room}, "t2")
	a2.noReply(map[string]any{"type": "typing", "room": "tech"}, "t3")
	d2.noReply(map[string]any{"type": "typing", "room": room}, "t")
	nextTyping("bob", b2, "tech", "alice")
	nextTyping("bob", b2, room, "dave")
	nextTyping("carol", c1, room, "dave")

	// Alice never saw her own typing: only carol's and dave's.
	for _, w := range []*wsClient{a1, a2} {
		nextTyping("alice", w, room, "carol")
		nextTyping("alice", w, room, "dave")
	}

	// Typing is not history: the room holds only the real message.
	a1.send(map[string]any{"type": "send", "room": room, "text": "done typing"})
	a1.nextType("ack")
	var page struct{ Messages []frame }
	if st := api(t, in2.URL, "GET", "/api/rooms/"+room+"/messages", tok["bob"], nil, &page); st != http.StatusOK || len(page.Messages) != 1 || page.Messages[0].Text != "done typing" {
		t.Fatalf("history: %d %+v, want only the sent message", st, page.Messages)
	}
	if st := api(t, in1.URL, "GET", "/api/rooms/tech/messages", tok["bob"], nil, &page); st != http.StatusOK || len(page.Messages) != 0 {
		t.Fatalf("tech history: %d %+v, want empty", st, page.Messages)
	}
	for _, w := range []*wsClient{a1, a2, b2, c1, d2} {
		w.reply(map[string]any{"type": "ping"}, "end")
		for _, f := range w.drain(0) {
			if f.Type == "typing" {
				t.Errorf("extra typing %+v", f)
			}
			if f.Type == "message" && f.Text != "done typing" {
				t.Errorf("typing became a message: %+v", f)
			}
		}
	}
}

// TestTypingRelayedAgain: the throttle only holds for its period (2s):
// after it, the same user's typing in the same room is relayed again, from
// either instance.
func TestTypingRelayedAgain(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in1 := startInstance(t, srv, instanceOpts{})
	in2 := startInstance(t, srv, instanceOpts{})
	alice := mustUser(t, in1.URL, "alice")
	bob := mustUser(t, in2.URL, "bob")
	const room = "support"
	a1 := dial(t, in1.URL, alice, "")
	a2 := dial(t, in2.URL, alice, "")
	b2 := dial(t, in2.URL, bob, "")
	b2.join(room, "")
	isTyping := func(f frame) bool { return f.Type == "typing" }

	start := time.Now()
	a1.noReply(map[string]any{"type": "typing", "room": room}, "first")
	if f := b2.next(5*time.Second, isTyping); f.User != "alice" || f.Room != room {
		t.Fatalf("bob got typing %+v, want alice's in %s", f, room)
	}
	// Keep typing, alternating instances, until it is relayed again.
	for i := 0; ; i++ {
		w := []*wsClient{a2, a1}[i%2]
		w.noReply(map[string]any{"type": "typing", "room": room}, fmt.Sprint("again", i))
		if f, ok := b2.poll(100*time.Millisecond, isTyping); ok {
			if f.User != "alice" || f.Room != room {
				t.Fatalf("bob got typing %+v, want alice's", f)
			}
			d := time.Since(start)
			if d < 1900*time.Millisecond {
				t.Fatalf("alice's typing relayed again after %v, within the 2s throttle", d)
			}
			t.Logf("relayed again after %v", d.Round(time.Millisecond))
			break
		}
		if time.Since(start) > 8*time.Second {
			t.Fatal("alice's typing was not relayed again within 8s; the throttle is 2s")
		}
	}
}

// TestReadReceiptsAndUnread: a burst through both instances counts as
// unread; read moves the position forward only and tells the other member
// of a direct room; sending moves the sender's position; the counts survive
// a restart of every instance.
func TestReadReceiptsAndUnread(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in1 := startInstance(t, srv, instanceOpts{})
	in2 := startInstance(t, srv, instanceOpts{})
	alice := mustUser(t, in1.URL, "alice")
	bob := mustUser(t, in2.URL, "bob")
	dm := mustDM(t, in1.URL, alice, "bob")

	b := dial(t, in2.URL, bob, "")
	b.join("tech", "") // bob's position in tech starts here
	if f := b.reply(map[string]any{"type": "leave", "room": "tech"}, "l"); f.Type != "left" {
		t.Fatalf("leave: %+v", f)
	}

	// The burst: 40 messages into each room, alternating instances.
	a1 := dial(t, in1.URL, alice, "")
	a2 := dial(t, in2.URL, alice, "")
	const n = 40
	for i := range n {
		w := []*wsClient{a1, a2}[i%2]
		for _, room := range []string{dm, "tech"} {
			w.send(map[string]any{"type": "send", "room": room, "text": fmt.Sprint("m", i), "client_id": fmt.Sprint(room, i)})
		}
	}
	ids := map[string][]string{}
	for _, w := range []*wsClient{a1, a2} {
		for range n {
			ack := w.nextType("ack")
			ids[ack.Room] = append(ids[ack.Room], ack.ID)
		}
	}
	dmIDs, techIDs := ids[dm], ids["tech"]
	if len(dmIDs) != n || len(techIDs) != n {
		t.Fatalf("acks: %d in %s, %d in tech", len(dmIDs), dm, len(techIDs))
	}
	sortIDs(t, dmIDs)
	sortIDs(t, techIDs)

	for _, in := range []*instance{in1, in2} {
		rooms := mustRooms(t, in.URL, bob)
		for _, want := range []roomInfo{
			{dm, "direct", dmIDs[n-1], n},
			{"tech", "channel", techIDs[n-1], n},
			{"general", "channel", "0-0", 0},
		} {
			if got := rooms[want.Name]; got != want {
				t.Errorf("bob's rooms on %s: %+v, want %+v", in.URL, got, want)
			}
		}
		rooms = mustRooms(t, in.URL, alice)
		for _, room := range []string{dm, "tech"} {
			if got := rooms[room]; got.Unread != 0 {
				t.Errorf("alice's own messages count as unread: %+v", got)
			}
		}
	}

	// Bob reads up to the tenth message, on in2: no reply; alice, in the
	// room on in1, gets the receipt; unread drops to the 30 after it.
	a1.join(dm, "")
	b.noReply(map[string]any{"type": "read", "room": dm, "id": dmIDs[9]}, "r1")
	if f := a1.nextType("read"); f.Room != dm || f.User != "bob" || f.ID != dmIDs[9] {
		t.Fatalf("alice got read %+v, want bob at %s", f, dmIDs[9])
	}
	checkRoom(t, in1.URL, bob, dm, n-10, dmIDs[n-1])

	// An older id, or the same one again, changes nothing.
	b.noReply(map[string]any{"type": "read", "room": dm, "id": dmIDs[3]}, "r2")
	b.noReply(map[string]any{"type": "read", "room": dm, "id": dmIDs[9]}, "r3")
	if got := mustRooms(t, in2.URL, bob)[dm]; got.Unread != n-10 {
		t.Fatalf("after reading an older id: unread %d, want %d", got.Unread, n-10)
	}
	b.noReply(map[string]any{"type": "read", "room": dm, "id": dmIDs[19]}, "r4")
	if f := a1.nextType("read"); f.User != "bob" || f.ID != dmIDs[19] {
		t.Fatalf("alice got read %+v, want bob at %s (and nothing for the older ids)", f, dmIDs[19])
	}
	checkRoom(t, in1.URL, bob, dm, n-20, "")

	// Channels: reading moves the position, rejoining does not reset it.
	b.noReply(map[string]any{"type": "read", "room": "tech", "id": techIDs[29]}, "r5")
	checkRoom(t, in1.URL, bob, "tech", n-30, techIDs[n-1])
	b.join("tech", "")
	checkRoom(t, in1.URL, bob, "tech", n-30, techIDs[n-1])

	// A message bob sends moves his position to it; for alice it is unread.
	ack := b.reply(map[string]any{"type": "send", "room": dm, "text": "read them"}, "s")
	if ack.Type != "ack" {
		t.Fatalf("bob's send: %+v", ack)
	}
	var posted struct{ Message frame }
	if st := api(t, in1.URL, "POST", "/api/rooms/tech/messages", bob, map[string]string{"text": "me too"}, &posted); st != http.StatusCreated {
		t.Fatalf("bob's REST post: %d", st)
	}
	checkRoom(t, in1.URL, bob, dm, 0, ack.ID)
	checkRoom(t, in1.URL, bob, "tech", 0, posted.Message.ID)
	checkRoom(t, in2.URL, alice, dm, 1, ack.ID)
	checkRoom(t, in2.URL, alice, "tech", 1, posted.Message.ID)

	// Every instance restarts; the counts are the same on the new ones.
	before := map[string]map[string]roomInfo{"alice": mustRooms(t, in1.URL, alice), "bob": mustRooms(t, in2.URL, bob)}
	in1.Stop()
	in2.Stop()
	in3 := startInstance(t, srv, instanceOpts{})
	in4 := startInstance(t, srv, instanceOpts{})
	for _, in := range []*instance{in3, in4} {
		for user, tok := range map[string]string{"alice": alice, "bob": bob} {
			after := mustRooms(t, in.URL, tok)
			for name, want := range before[user] {
				if got := after[name]; got != want {
					t.Errorf("%s's %s after restart: %+v, want %+v", user, name, got, want)
				}
			}
			if len(after) != len(before[user]) {
				t.Errorf("%s has %d rooms after restart, %d before", user, len(after), len(before[user]))
			}
		}
	}
	// And they keep counting.
	var more struct{ Message frame }
	api(t, in3.URL, "POST", "/api/rooms/"+dm+"/messages", alice, map[string]string{"text": "welcome back"}, &more)
	checkRoom(t, in4.URL, bob, dm, 1, more.Message.ID)
}

// TestChannelUnreadStartsAtFirstJoin: a channel's read position starts at
// the user's first join, so a channel never joined has nothing unread.
func TestChannelUnreadStartsAtFirstJoin(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in1 := startInstance(t, srv, instanceOpts{})
	in2 := startInstance(t, srv, instanceOpts{})
	alice := mustUser(t, in1.URL, "alice")
	bob := mustUser(t, in2.URL, "bob")
	if st := api(t, in1.URL, "POST", "/api/rooms", alice, map[string]string{"name": "lounge"}, nil); st != http.StatusCreated {
		t.Fatalf("create lounge: %d", st)
	}
	post := func(in *instance, room string, k int) string {
		t.Helper()
		var last string
		for i := range k {
			var res struct{ Message frame }
			if st := api(t, in.URL, "POST", "/api/rooms/"+room+"/messages", alice, map[string]string{"text": fmt.Sprint(room, i)}, &res); st != http.StatusCreated {
				t.Fatalf("post: %d", st)
			}
			last = res.Message.ID
		}
		return last
	}
	last := post(in1, "lounge", 3)
	post(in2, "support", 4)
	lastSupport := post(in1, "support", 4)
	for _, in := range []*instance{in1, in2} {
		rooms := mustRooms(t, in.URL, bob)
		if got := rooms["lounge"]; got.Unread != 0 || got.LastID != last || got.Kind != "channel" {
			t.Errorf("never-joined lounge: %+v, want unread 0 last_id %s", got, last)
		}
		if got := rooms["support"]; got.Unread != 0 || got.LastID != lastSupport {
			t.Errorf("never-joined support: %+v, want unread 0 last_id %s", got, lastSupport)
		}
	}
	b := dial(t, in2.URL, bob, "")
	b.join("lounge", "")
	checkRoom(t, in1.URL, bob, "lounge", 0, last)
	last = post(in2, "lounge", 2)
	checkRoom(t, in1.URL, bob, "lounge", 2, last)
	b.c.CloseNow()
	dial(t, in1.URL, bob, "").join("lounge", "")
	checkRoom(t, in2.URL, bob, "lounge", 2, last)
	if got := mustRooms(t, in2.URL, bob)["support"]; got.Unread != 0 {
		t.Errorf("support after all: %+v", got)
	}
}

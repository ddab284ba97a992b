package transport_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/storetest"
)

// Black-box tests of issue 15, "Messages people can fix, answer and react
// to": the edit, delete and react frames and their REST twins, replies,
// mentions, since and history with events, the edit window and the emoji
// rules, each across two instances on one Redis.

// frameWant checks the fields of an event frame.
func checkEvent(tb testing.TB, who string, f xframe, typ, room, id, target, user string) {
	tb.Helper()
	if f.Type != typ || f.Room != room || f.ID != id || f.Target != target || f.User != user {
		tb.Errorf("%s got %s, want %s of %s in %s by %s with id %s", who, f, typ, target, room, user, id)
	}
	p, err := engine.ParsePos(f.ID)
	if err != nil || f.TS != int64(p.Ms) {
		tb.Errorf("%s: %s: ts %d is not the time of its id", who, f, f.TS)
	}
}

// TestEditDeleteReactFrames: each of the frames edit, delete and react,
// sent on one instance, reaches a member on the other as its event frame,
// in order, acked with the event's own id; every wrong use gets the error
// PROTOCOL.md names and leaves the socket open.
func TestEditDeleteReactFrames(t *testing.T) {
	t.Parallel()
	w := startPair(t, instanceOpts{}, storetest.Options{})
	tok := mustUsers(t, w.A.URL, "alice", "bob", "dave")
	const room = "lounge"
	mustCreate(t, w.A.URL, tok["dave"], room, false) // dave owns it; alice and bob are plain members
	a := mustConnect(t, w.A.URL, "alice", tok["alice"])
	b := mustConnect(t, w.B.URL, "bob", tok["bob"])
	a.join(room, "")
	b.join(room, "")

	ack := a.sendMsg(room, "helo", "client_id", "c1")
	m1 := ack.ID
	for _, p := range []*peer{a, b} {
		if m := p.nextOf("message", room); m.ID != m1 || m.Text != "helo" {
			t.Fatalf("%s got %s, want message %s", p.name, m, m1)
		}
	}

	// Edit: the author's edit is acked with the event's id and reaches both.
	ed := a.ok(map[string]any{"type": "edit", "room": room, "id": m1, "text": "hello"}, "ack")
	if ed.ID == "" || ed.ID == m1 || ed.Room != room || ed.has("client_id") {
		t.Errorf("ack of edit: %s, want the event's own id and no client_id", ed)
	}
	for _, p := range []*peer{a, b} {
		f := p.nextOf("edit", room)
		checkEvent(t, p.name, f, "edit", room, ed.ID, m1, "alice")
		if f.Text != "hello" {
			t.Errorf("%s: edit frame text %q, want hello", p.name, f.Text)
		}
	}

	// Wrong edits: each an error, and the socket stays open.
	long := strings.Repeat("x", 4001)
	for _, c := range []struct {
		who  *peer
		v    map[string]any
		code string
	}{
		{b, map[string]any{"type": "edit", "room": room, "id": m1, "text": "mine now"}, "forbidden"},
		{a, map[string]any{"type": "edit", "room": room, "id": "1-0", "text": "x"}, "not_found"},
		{a, map[string]any{"type": "edit", "room": room, "id": ed.ID, "text": "x"}, "not_found"}, // an event, not a message
		{a, map[string]any{"type": "edit", "room": room, "id": "junk", "text": "x"}, "invalid"},
		{a, map[string]any{"type": "edit", "room": room, "text": "x"}, "invalid"},
		{a, map[string]any{"type": "edit", "room": room, "id": m1, "text": ""}, "invalid"},
		{a, map[string]any{"type": "edit", "room": room, "id": m1}, "invalid"},
		{a, map[string]any{"type": "edit", "room": room, "id": m1, "text": long}, "too_large"},
		{a, map[string]any{"type": "edit", "id": m1, "text": "x"}, "invalid"},
		{a, map[string]any{"type": "edit", "room": "nosuchroom", "id": m1, "text": "x"}, "not_found"},
		{a, map[string]any{"type": "edit", "room": "Bad Name", "id": m1, "text": "x"}, "invalid"},
	} {
		c.who.refused(c.v, c.code)
	}

	// React: an ack with the event's id and a reaction frame; the same
	// again changes nothing: an ack without id, and no frame.
	r1 := b.ok(map[string]any{"type": "react", "room": room, "id": m1, "emoji": "👍"}, "ack")
	if r1.ID == "" {
		t.Fatalf("ack of react: %s, want an id", r1)
	}
	for _, p := range []*peer{a, b} {
		f := p.nextOf("reaction", room)
		checkEvent(t, p.name, f, "reaction", room, r1.ID, m1, "bob")
		if f.Emoji != "👍" || f.On == nil || !*f.On {
			t.Errorf("%s: %s, want 👍 on", p.name, f)
		}
	}
	if again := b.ok(map[string]any{"type": "react", "room": room, "id": m1, "emoji": "👍", "on": true}, "ack"); again.has("id") {
		t.Errorf("ack of a reaction already there: %s, want no id", again)
	}
	r2 := b.ok(map[string]any{"type": "react", "room": room, "id": m1, "emoji": "👍", "on": false}, "ack")
	if r2.ID == "" {
		t.Fatalf("ack of unreact: %s", r2)
	}
	if again := b.ok(map[string]any{"type": "react", "room": room, "id": m1, "emoji": "👍", "on": false}, "ack"); again.has("id") {
		t.Errorf("ack of removing a reaction not there: %s, want no id", again)
	}
	// The no-ops stored nothing: the next reaction frame is the removal.
	for _, p := range []*peer{a, b} {
		f := p.nextOf("reaction", room)
		checkEvent(t, p.name, f, "reaction", room, r2.ID, m1, "bob")
		if f.On == nil || *f.On {
			t.Errorf("%s: %s, want on false", p.name, f)
		}
	}
	for _, c := range []struct {
		v    map[string]any
		code string
	}{
		{map[string]any{"type": "react", "room": room, "id": m1}, "invalid"},
		{map[string]any{"type": "react", "room": room, "id": m1, "emoji": ""}, "invalid"},
		{map[string]any{"type": "react", "room": room, "id": m1, "emoji": "a b"}, "invalid"},
		{map[string]any{"type": "react", "room": room, "id": m1, "emoji": strings.Repeat("x", 33)}, "invalid"},
		{map[string]any{"type": "react", "room": room, "emoji": "x"}, "invalid"},
		{map[string]any{"type": "react", "room": room, "id": "2-0", "emoji": "x"}, "not_found"},
		{map[string]any{"type": "react", "room": room, "id": r1.ID, "emoji": "x"}, "not_found"},
	} {
		b.refused(c.v, c.code)
	}

	// Delete: not by a plain member; by the author, reaching both.
	b.refused(map[string]any{"type": "delete", "room": room, "id": m1}, "forbidden")
	a.refused(map[string]any{"type": "delete", "room": room, "id": "3-0"}, "not_found")
	a.refused(map[string]any{"type": "delete", "room": room}, "invalid")
	del := a.ok(map[string]any{"type": "delete", "room": room, "id": m1}, "ack")
	if del.ID == "" || del.ID == m1 {
		t.Fatalf("ack of delete: %s", del)
	}
	for _, p := range []*peer{a, b} {
		checkEvent(t, p.name, p.nextOf("delete", room), "delete", room, del.ID, m1, "alice")
	}
	// A deleted message is gone for every action.
	a.refused(map[string]any{"type": "delete", "room": room, "id": m1}, "not_found")
	a.refused(map[string]any{"type": "edit", "room": room, "id": m1, "text": "back"}, "not_found")
	b.refused(map[string]any{"type": "react", "room": room, "id": m1, "emoji": "x"}, "not_found")
	b.refused(map[string]any{"type": "send", "room": room, "text": "re", "reply_to": m1}, "not_found")

	got := mustMessage(t, w.B.URL, tok["bob"], room, m1)
	if !got.Deleted || got.Text != "" || got.Mentions != nil || got.Reactions != nil || got.User != "alice" {
		t.Errorf("deleted message reads %+v", got)
	}
	// Every error left both sockets open, and nothing else reached them.
	a.alive()
	b.alive()
	for _, p := range []*peer{a, b} {
		p.none(200*time.Millisecond, "a frame after the delete", func(f xframe) bool { return isEntry(f, room) })
	}
}

// TestMessageRoutes: GET, PATCH and DELETE of a message and PUT and
// DELETE of a reaction, on one instance, are delivered live on the other
// exactly like their frames, and fail as the frames do.
func TestMessageRoutes(t *testing.T) {
	t.Parallel()
	w := startPair(t, instanceOpts{}, storetest.Options{})
	tok := mustUsers(t, w.A.URL, "alice", "bob", "dave")
	const room = "lounge"
	mustCreate(t, w.A.URL, tok["dave"], room, false)
	b := mustConnect(t, w.B.URL, "bob", tok["bob"])
	b.join(room, "")
	A, B, alice, bob := w.A.URL, w.B.URL, tok["alice"], tok["bob"]

	m := mustPost(t, A, alice, room, "helo @bob", "client_id", "r1")
	if f := b.nextOf("message", room); f.ID != m.ID || f.Text != "helo @bob" || f.ClientID != "r1" || !slices.Equal(f.Mentions, []string{"bob"}) {
		t.Fatalf("bob got %s, want %+v", f, m)
	}

	// PATCH answers with the message in its current state and is an edit
	// frame for everyone joined.
	a := restCall(t, A, "PATCH", msgPath(room, m.ID), alice, map[string]string{"text": "hello @dave"})
	var edited struct{ Message msgState }
	if a.Status != http.StatusOK {
		t.Fatalf("PATCH: %s", a)
	}
	a.decode(t, &edited)
	if e := edited.Message; e.ID != m.ID || e.Text != "hello @dave" || e.EditedTS == 0 || e.User != "alice" || !slices.Equal(e.Mentions, []string{"dave"}) {
		t.Errorf("PATCH answered %+v", e)
	}
	f := b.nextOf("edit", room)
	if f.Target != m.ID || f.Text != "hello @dave" || f.User != "alice" || f.ID == "" {
		t.Errorf("bob got %s after PATCH", f)
	}
	if edited.Message.EditedTS != f.TS {
		t.Errorf("edited_ts %d, edit frame ts %d", edited.Message.EditedTS, f.TS)
	}
	editID := f.ID

	long := strings.Repeat("é", 4001)
	for _, c := range []struct {
		what, method, path, tok string
		body                    any
		status                  int
		code                    string
	}{
		{"someone else's", "PATCH", msgPath(room, m.ID), bob, map[string]string{"text": "x"}, 403, "forbidden"},
		{"no such id", "PATCH", msgPath(room, "1-0"), alice, map[string]string{"text": "x"}, 404, "not_found"},
		{"an event's id", "PATCH", msgPath(room, editID), alice, map[string]string{"text": "x"}, 404, "not_found"},
		{"no text", "PATCH", msgPath(room, m.ID), alice, map[string]string{}, 400, "invalid"},
		{"empty text", "PATCH", msgPath(room, m.ID), alice, map[string]string{"text": " "}, 400, "invalid"},
		{"long text", "PATCH", msgPath(room, m.ID), alice, map[string]string{"text": long}, 413, "too_large"},
		{"not JSON", "PATCH", msgPath(room, m.ID), alice, []byte("{"), 400, "invalid"},
		{"no such room", "PATCH", msgPath("nosuchroom", m.ID), alice, map[string]string{"text": "x"}, 404, "not_found"},
		{"no token", "PATCH", msgPath(room, m.ID), "", map[string]string{"text": "x"}, 401, "unauthorized"},
		{"no such id", "GET", msgPath(room, "1-0"), bob, nil, 404, "not_found"},
		{"an event's id", "GET", msgPath(room, editID), bob, nil, 404, "not_found"},
		{"no such room", "GET", msgPath("nosuchroom", m.ID), bob, nil, 404, "not_found"},
		{"no token", "GET", msgPath(room, m.ID), "", nil, 401, "unauthorized"},
		{"someone else's", "DELETE", msgPath(room, m.ID), bob, nil, 403, "forbidden"},
		{"no such id", "DELETE", msgPath(room, "1-0"), alice, nil, 404, "not_found"},
		{"bad emoji", "PUT", reactionPath(room, m.ID, "a b"), bob, nil, 400, "invalid"},
		{"long emoji", "PUT", reactionPath(room, m.ID, strings.Repeat("x", 33)), bob, nil, 400, "invalid"},
		{"control emoji", "PUT", reactionPath(room, m.ID, "\x07"), bob, nil, 400, "invalid"},
		{"not UTF-8 emoji", "PUT", msgPath(room, m.ID) + "/reactions/%FF", bob, nil, 400, "invalid"},
		{"no such id", "PUT", reactionPath(room, "1-0", "x"), bob, nil, 404, "not_found"},
		{"no such id", "DELETE", reactionPath(room, "1-0", "x"), bob, nil, 404, "not_found"},
	} {
		wantStatus(t, c.method+" "+c.what, restCall(t, A, c.method, c.path, c.tok, c.body), c.status, c.code)
	}
	for _, bad := range []string{"junk", "1-x", "-1"} {
		for _, method := range []string{"GET", "PATCH", "DELETE"} {
			a := restCall(t, B, method, msgPath(room, bad), alice, map[string]string{"text": "x"})
			if a.Status != 404 && a.Status != 400 {
				t.Errorf("%s a malformed id %q: %s, want 404 or 400", method, bad, a)
			}
		}
	}

	// Reactions: PUT adds (204), a second PUT changes nothing, DELETE
	// removes; the emoji is path-escaped, "/" and "%" included.
	for _, emoji := range []string{"👍", "a/b", "%", "?#"} {
		wantStatus(t, "PUT "+emoji, restCall(t, A, "PUT", reactionPath(room, m.ID, emoji), alice, nil), 204, "")
		f := b.nextOf("reaction", room)
		if f.Target != m.ID || f.Emoji != emoji || f.User != "alice" || f.On == nil || !*f.On {
			t.Errorf("bob got %s after PUT %s", f, emoji)
		}
	}
	wantStatus(t, "PUT again", restCall(t, B, "PUT", reactionPath(room, m.ID, "👍"), alice, nil), 204, "")
	wantStatus(t, "PUT by bob", restCall(t, B, "PUT", reactionPath(room, m.ID, "👍"), bob, nil), 204, "")
	wantStatus(t, "DELETE a/b", restCall(t, A, "DELETE", reactionPath(room, m.ID, "a/b"), alice, nil), 204, "")
	wantStatus(t, "DELETE a/b again", restCall(t, A, "DELETE", reactionPath(room, m.ID, "a/b"), alice, nil), 204, "")
	f = b.nextOf("reaction", room)
	if f.Emoji != "👍" || f.User != "bob" || !*f.On {
		t.Errorf("after a PUT that changed nothing, bob got %s, want his own 👍", f)
	}
	f = b.nextOf("reaction", room)
	if f.Emoji != "a/b" || f.User != "alice" || *f.On {
		t.Errorf("bob got %s, want a/b removed", f)
	}
	got := mustMessage(t, B, bob, room, m.ID)
	want := map[string][]string{"👍": {"alice", "bob"}, "%": {"alice"}, "?#": {"alice"}}
	if !mapsEqual(got.Reactions, want) || got.Text != "hello @dave" || got.EditedTS != edited.Message.EditedTS {
		t.Errorf("GET message: %+v, want reactions %v", got, want)
	}

	// DELETE: 204 and a delete frame; then the message is gone for edits,
	// reactions and deletions, and reads as deleted.
	wantStatus(t, "DELETE", restCall(t, B, "DELETE", msgPath(room, m.ID), alice, nil), 204, "")
	if f := b.nextOf("delete", room); f.Target != m.ID || f.User != "alice" {
		t.Errorf("bob got %s after DELETE", f)
	}
	for _, c := range []struct{ method, path string }{
		{"DELETE", msgPath(room, m.ID)},
		{"PATCH", msgPath(room, m.ID)},
		{"PUT", reactionPath(room, m.ID, "x")},
		{"DELETE", reactionPath(room, m.ID, "👍")},
	} {
		wantStatus(t, c.method+" on a deleted message", restCall(t, A, c.method, c.path, alice, map[string]string{"text": "x"}), 404, "not_found")
	}
	wantStatus(t, "reply to a deleted message", restCall(t, A, "POST", msgPath(room), bob, map[string]string{"text": "x", "reply_to": m.ID}), 404, "not_found")
	del := restCall(t, A, "GET", msgPath(room, m.ID), bob, nil)
	fields := del.fields(t)
	var msg struct{ Message map[string]any }
	del.decode(t, &msg)
	if del.Status != 200 || msg.Message["deleted"] != true || msg.Message["text"] != "" || msg.Message["mentions"] != nil || msg.Message["reactions"] != nil || fields["message"] == nil {
		t.Errorf("GET deleted message: %s", del)
	}
	hist := mustPage(t, A, bob, room, "")
	if len(hist.Messages) != 1 || !hist.Messages[0].Deleted || hist.Messages[0].ID != m.ID {
		t.Errorf("history after the delete: %+v, want the message marked deleted", hist.Messages)
	}
	b.none(200*time.Millisecond, "a frame of a refused or no-op request", func(f xframe) bool { return isEntry(f, room) })
}

func mapsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestReplies: send with reply_to, on a socket and over REST, answers a
// message of the same room; the thread route pages the replies oldest
// first and the root counts them; a reply to anything else is not_found.
func TestReplies(t *testing.T) {
	t.Parallel()
	w := startPair(t, instanceOpts{}, storetest.Options{})
	tok := mustUsers(t, w.A.URL, "alice", "bob")
	A, B, alice, bob := w.A.URL, w.B.URL, tok["alice"], tok["bob"]
	const room, other = "general", "tech"
	a := mustConnect(t, w.A.URL, "alice", alice)
	b := mustConnect(t, w.B.URL, "bob", bob)
	a.join(room, "")
	b.join(room, "")

	root := a.sendMsg(room, "who is in?").ID
	elsewhere := mustPost(t, B, bob, other, "in another room").ID
	var replies []string
	for i := range 5 {
		var id string
		if i%2 == 0 {
			id = b.sendMsg(room, fmt.Sprintf("me %d", i), "reply_to", root).ID
		} else {
			id = mustPost(t, A, alice, room, fmt.Sprintf("me %d", i), "reply_to", root).ID
			if got := mustMessage(t, A, alice, room, id); got.ReplyTo != root {
				t.Errorf("REST reply reads %+v, want reply_to %s", got, root)
			}
		}
		replies = append(replies, id)
		a.sendMsg(room, fmt.Sprintf("chatter %d", i)) // not in the thread
	}
	for _, p := range []*peer{a, b} {
		n := 0
		for _, f := range p.settle(300 * time.Millisecond) {
			if f.Type == "message" && slices.Contains(replies, f.ID) {
				n++
				if f.ReplyTo != root {
					t.Errorf("%s: reply frame %s lacks reply_to %s", p.name, f, root)
				}
			} else if f.Type == "message" && f.has("reply_to") {
				t.Errorf("%s: %s has reply_to", p.name, f)
			}
		}
		if n != len(replies) {
			t.Errorf("%s got %d reply frames, want %d", p.name, n, len(replies))
		}
	}

	type thread struct {
		Room     string     `json:"room"`
		Root     msgState   `json:"root"`
		Messages []msgState `json:"messages"`
		HasMore  bool       `json:"has_more"`
	}
	read := func(base, query string) thread {
		t.Helper()
		a := restCall(t, base, "GET", msgPath(room, root)+"/replies"+query, bob, nil)
		if a.Status != 200 {
			t.Fatalf("replies%s: %s", query, a)
		}
		var th thread
		a.decode(t, &th)
		if th.Room != room || th.Root.ID != root || th.Root.ReplyCount != len(replies) || !strings.HasPrefix(th.Root.Text, "who is in") {
			t.Errorf("replies%s: root %+v, want %s with reply_count %d", query, th.Root, root, len(replies))
		}
		return th
	}
	ids := func(ms []msgState) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
			if m.ReplyTo != root {
				t.Errorf("thread holds %+v, not a reply to %s", m, root)
			}
		}
		return out
	}
	if th := read(A, ""); !slices.Equal(ids(th.Messages), replies) || th.HasMore {
		t.Errorf("all replies: %v has_more %v, want %v", ids(th.Messages), th.HasMore, replies)
	}
	th := read(B, "?limit=2")
	if !slices.Equal(ids(th.Messages), replies[:2]) || !th.HasMore {
		t.Errorf("first 2 replies: %v has_more %v", ids(th.Messages), th.HasMore)
	}
	th = read(A, "?limit=2&after="+replies[1])
	if !slices.Equal(ids(th.Messages), replies[2:4]) || !th.HasMore {
		t.Errorf("replies 3-4: %v has_more %v", ids(th.Messages), th.HasMore)
	}
	th = read(B, "?limit=2&after="+replies[3])
	if !slices.Equal(ids(th.Messages), replies[4:]) || th.HasMore {
		t.Errorf("last reply: %v has_more %v", ids(th.Messages), th.HasMore)
	}
	if th := read(A, "?after="+replies[4]); len(th.Messages) != 0 || th.HasMore {
		t.Errorf("after the last reply: %v", ids(th.Messages))
	}
	// The root counts its replies in history and single reads too.
	if m := mustMessage(t, B, bob, room, root); m.ReplyCount != len(replies) {
		t.Errorf("root reads %+v, want reply_count %d", m, len(replies))
	}
	for _, m := range mustPage(t, A, alice, room, "").Messages {
		want := 0
		if m.ID == root {
			want = len(replies)
		}
		if m.ReplyCount != want {
			t.Errorf("history: %s has reply_count %d, want %d", m.ID, m.ReplyCount, want)
		}
	}
	// An edited and a deleted reply stay in the thread in their current state.
	a.ok(map[string]any{"type": "edit", "room": room, "id": replies[1], "text": "me, edited"}, "ack")
	b.ok(map[string]any{"type": "delete", "room": room, "id": replies[0]}, "ack")
	th = read(B, "")
	if len(th.Messages) != 5 || !th.Messages[0].Deleted || th.Messages[1].Text != "me, edited" {
		t.Errorf("thread after an edit and a delete: %+v", th.Messages)
	}

	// Replies to anything but a live message of the room are not_found.
	// Stream IDs are per stream: a message of another room may share its
	// ID with one of this room, stored in the same millisecond. Take one
	// that does not.
	for i := 0; restCall(t, A, "GET", msgPath(room, elsewhere), alice, nil).Status != 404; i++ {
		if i == 10 {
			t.Fatalf("every message of %s shares its id with one of %s", other, room)
		}
		elsewhere = mustPost(t, B, bob, other, "in another room").ID
	}
	edit := a.ok(map[string]any{"type": "edit", "room": room, "id": root, "text": "who is in now?"}, "ack").ID
	for _, c := range []struct {
		what, to, code string
	}{
		{"another room's message", elsewhere, "not_found"},
		{"no message", "1-0", "not_found"},
		{"an edit event", edit, "not_found"},
		{"a deleted message", replies[0], "not_found"},
		{"a malformed id", "junk", "invalid"},
		{"zero", "0-0", "invalid"},
	} {
		b.refused(map[string]any{"type": "send", "room": room, "text": "re " + c.what, "reply_to": c.to}, c.code)
		status := map[string]int{"not_found": 404, "invalid": 400}[c.code]
		wantStatus(t, "REST reply to "+c.what, restCall(t, A, "POST", msgPath(room), alice, map[string]string{"text": "re", "reply_to": c.to}), status, c.code)
	}
	for _, c := range []struct {
		what, path string
		status     int
		code       string
	}{
		{"no such root", msgPath(room, "1-0") + "/replies", 404, "not_found"},
		{"another room's root", msgPath(room, elsewhere) + "/replies", 404, "not_found"},
		{"an event as root", msgPath(room, edit) + "/replies", 404, "not_found"},
		{"no such room", msgPath("nosuchroom", root) + "/replies", 404, "not_found"},
		{"limit 0", msgPath(room, root) + "/replies?limit=0", 400, "invalid"},
		{"limit 201", msgPath(room, root) + "/replies?limit=201", 400, "invalid"},
		{"bad after", msgPath(room, root) + "/replies?after=x", 400, "invalid"},
	} {
		wantStatus(t, "GET replies of "+c.what, restCall(t, B, "GET", c.path, bob, nil), c.status, c.code)
	}
	// Nothing refused was stored.
	if th := read(A, ""); len(th.Messages) != 5 {
		t.Errorf("thread holds %d messages after refused replies, want 5", len(th.Messages))
	}
	a.alive()
	b.alive()
}

// entryOp is one write of TestSinceReplaysEventsInOrder and what its
// replay frame must be.
type entryOp struct {
	id, typ, user string
}

// TestSinceReplaysEventsInOrder: a member who was away rejoins with since
// on the other instance and gets every message, edit, deletion and
// reaction stored meanwhile by two users on two instances, in stream
// order, once each, and then the live tail.
func TestSinceReplaysEventsInOrder(t *testing.T) {
	t.Parallel()
	w := startPair(t, instanceOpts{}, storetest.Options{})
	tok := mustUsers(t, w.A.URL, "alice", "bob", "carol")
	const room = "general"
	b := mustConnect(t, w.B.URL, "bob", tok["bob"])
	b.join(room, "")
	first := b.sendMsg(room, "back soon").ID
	b.nextOf("message", room)
	b.close()

	a := mustConnect(t, w.A.URL, "alice", tok["alice"])
	c := mustConnect(t, w.B.URL, "carol", tok["carol"])
	var ops []entryOp
	own := map[*peer][]string{}
	anchor := map[*peer]string{a: a.sendMsg(room, "alice's anchor").ID, c: c.sendMsg(room, "carol's anchor").ID}
	ops = append(ops, entryOp{anchor[a], "message", "alice"}, entryOp{anchor[c], "message", "carol"})
	other := map[*peer]*peer{a: c, c: a}
	for round := range 12 {
		// Both users pipeline a few writes each round, so the two
		// instances store them concurrently.
		type sent struct {
			p   *peer
			ref string
			typ string
		}
		var batch []sent
		for _, p := range []*peer{a, c} {
			fire := func(typ string, v map[string]any) {
				batch = append(batch, sent{p, p.fire(v), typ})
			}
			fire("message", map[string]any{"type": "send", "room": room, "text": fmt.Sprintf("%s %d", p.name, round)})
			fire("reaction", map[string]any{"type": "react", "room": room, "id": anchor[other[p]], "emoji": "👍", "on": round%2 == 0})
			if n := len(own[p]); n >= 1 {
				fire("edit", map[string]any{"type": "edit", "room": room, "id": own[p][n-1], "text": fmt.Sprintf("%s %d, edited", p.name, round-1)})
			}
			if n := len(own[p]); n >= 2 && round%3 == 0 {
				fire("delete", map[string]any{"type": "delete", "room": room, "id": own[p][n-2]})
				own[p] = slices.Delete(own[p], n-2, n-1)
			}
			fire("message", map[string]any{"type": "send", "room": room, "text": "re", "reply_to": anchor[p]})
		}
		for _, s := range batch {
			ack := s.p.await(s.ref)
			if ack.Type != "ack" || ack.ID == "" {
				t.Fatalf("%s: %s: %s", s.p.name, s.typ, ack)
			}
			ops = append(ops, entryOp{ack.ID, s.typ, s.p.name})
			if s.typ == "message" {
				own[s.p] = append(own[s.p], ack.ID)
			}
		}
	}
	slices.SortFunc(ops, func(x, y entryOp) int { return mustPos(t, x.id).Compare(mustPos(t, y.id)) })

	// replay rejoins with since on instance A and checks it gets exactly
	// want, then a live message (which joins ops).
	replay := func(since string, want []entryOp) {
		t.Helper()
		b := mustConnect(t, w.A.URL, "bob", tok["bob"])
		j := b.join(room, since)
		if j.Recovered == nil || !*j.Recovered {
			t.Errorf("join since %s: %s, want recovered true", since, j)
		}
		for i, op := range want {
			f := b.next(10*time.Second, "replayed entry", func(f xframe) bool { return isEntry(f, room) })
			if f.ID != op.id || f.Type != op.typ || f.User != op.user {
				t.Fatalf("since %s: entry %d of %d is %s, want %s %s by %s", since, i, len(want), f, op.typ, op.id, op.user)
			}
		}
		live := a.sendMsg(room, "live after since "+since).ID
		if f := b.next(10*time.Second, "live message", func(f xframe) bool { return isEntry(f, room) }); f.ID != live {
			t.Fatalf("since %s: after the replay got %s, want the live message %s", since, f, live)
		}
		b.none(200*time.Millisecond, "an entry twice", func(f xframe) bool { return isEntry(f, room) })
		b.close()
		ops = append(ops, entryOp{live, "message", "alice"})
	}
	replay(first, slices.Clone(ops))
	// From an event in the middle (since need not be a message's id).
	i := len(ops) / 2
	for ops[i].typ == "message" {
		i++
	}
	replay(ops[i].id, slices.Clone(ops[i+1:]))
	replay("0", append([]entryOp{{first, "message", "bob"}}, ops...))
}

func mustPos(tb testing.TB, id string) engine.StreamPos {
	tb.Helper()
	p, err := engine.ParsePos(id)
	if err != nil {
		tb.Fatalf("id %q: %v", id, err)
	}
	return p
}

// TestHistoryPagesCountMessagesOnly: with thousands of events between two
// messages (more than one scan of the store reads), every history page
// still holds exactly limit messages, in their current state, and
// has_more is right in both directions.
func TestHistoryPagesCountMessagesOnly(t *testing.T) {
	t.Parallel()
	fast := func(o *store.Options) { o.SendRate, o.SendBurst = 1e6, 1e6 }
	w := startPair(t, instanceOpts{Store: fast}, storetest.Options{})
	tok := mustUsers(t, w.A.URL, "alice", "bob")
	A, B, alice, bob := w.A.URL, w.B.URL, tok["alice"], tok["bob"]
	const room = "general"
	a := mustConnect(t, A, "alice", alice)
	var m []string
	post := func() { m = append(m, a.sendMsg(room, fmt.Sprintf("m%d", len(m))).ID) }
	post()
	post()
	post()
	// 4,201 reactions on m2 toggle 👍 on and off: it ends on.
	const events = 4201
	refs := make([]string, 0, events)
	for i := range events {
		refs = append(refs, a.fire(map[string]any{"type": "react", "room": room, "id": m[2], "emoji": "👍", "on": i%2 == 0}))
	}
	for _, ref := range refs {
		if ack := a.await(ref); ack.Type != "ack" || ack.ID == "" {
			t.Fatalf("react: %s", ack)
		}
	}
	post() // m3
	post() // m4
	for i := range 3 {
		wantStatus(t, "PATCH m4", restCall(t, B, "PATCH", msgPath(room, m[4]), alice, map[string]string{"text": fmt.Sprintf("m4 v%d", i+2)}), 200, "")
	}
	post() // m5
	post() // m6
	wantStatus(t, "DELETE m5", restCall(t, B, "DELETE", msgPath(room, m[5]), alice, nil), 204, "")
	wantStatus(t, "PUT on m0", restCall(t, A, "PUT", reactionPath(room, m[0], "🎉"), bob, nil), 204, "")

	check := func(query string, want []int, more bool) {
		t.Helper()
		for _, base := range []string{A, B} {
			p := mustPage(t, base, bob, room, query)
			var wantIDs []string
			for _, i := range want {
				wantIDs = append(wantIDs, m[i])
			}
			if !slices.Equal(p.ids(), wantIDs) || p.HasMore != more || p.Room != room {
				t.Errorf("GET messages%s: %v has_more %v, want %v has_more %v", query, p.ids(), p.HasMore, wantIDs, more)
			}
			for _, msg := range p.Messages {
				i := slices.Index(m, msg.ID)
				switch {
				case i == 2 && !mapsEqual(msg.Reactions, map[string][]string{"👍": {"alice"}}):
					t.Errorf("m2 reads %+v, want 👍 by alice", msg)
				case i == 4 && (msg.Text != "m4 v4" || msg.EditedTS == 0):
					t.Errorf("m4 reads %+v, want its third edit", msg)
				case i == 5 && (!msg.Deleted || msg.Text != ""):
					t.Errorf("m5 reads %+v, want deleted", msg)
				case i == 0 && !mapsEqual(msg.Reactions, map[string][]string{"🎉": {"bob"}}):
					t.Errorf("m0 reads %+v, want 🎉 by bob", msg)
				case (i == 1 || i == 3 || i == 6) && (msg.Text != fmt.Sprintf("m%d", i) || msg.Reactions != nil || msg.EditedTS != 0):
					t.Errorf("m%d reads %+v, want it as sent", i, msg)
				}
			}
		}
	}
	check("?limit=3", []int{4, 5, 6}, true)
	check("?limit=3&before="+m[4], []int{1, 2, 3}, true) // across the events, backwards
	check("?limit=3&before="+m[1], []int{0}, false)
	check("?limit=1&before="+m[3], []int{2}, true)
	check("?limit=2&before="+m[3], []int{1, 2}, true)
	check("?after=0&limit=3", []int{0, 1, 2}, true)
	check("?after=0-0&limit=3", []int{0, 1, 2}, true)
	check("?limit=3&after="+m[2], []int{3, 4, 5}, true) // across the events, forwards
	check("?limit=1&after="+m[2], []int{3}, true)
	check("?limit=3&after="+m[5], []int{6}, false)
	check("?limit=3&after="+m[6], nil, false)
	check("", []int{0, 1, 2, 3, 4, 5, 6}, false)
	check("?limit=7", []int{0, 1, 2, 3, 4, 5, 6}, false)
	check("?limit=6", []int{1, 2, 3, 4, 5, 6}, true)
	for _, q := range []string{"?limit=0", "?limit=201", "?limit=x", "?before=x", "?after=1-x", "?before=" + m[3] + "&after=" + m[1]} {
		wantStatus(t, "GET messages"+q, restCall(t, A, "GET", msgPath(room)+q, bob, nil), 400, "invalid")
	}
}

// TestEventsCountAgainstSendRate: edit, delete and react count against
// the per-user send rate like send, on every instance and over REST; past
// it the frame gets rate_limited and nothing is stored.
func TestEventsCountAgainstSendRate(t *testing.T) {
	t.Parallel()
	slow := func(o *store.Options) { o.SendRate, o.SendBurst = 0.2, 4 }
	w := startPair(t, instanceOpts{Store: slow}, storetest.Options{})
	tok := mustUsers(t, w.A.URL, "alice", "bob")
	const room = "general"
	a := mustConnect(t, w.A.URL, "alice", tok["alice"])
	m := a.sendMsg(room, "one").ID                                                                                       // 1
	a.ok(map[string]any{"type": "edit", "room": room, "id": m, "text": "one, edited"}, "ack")                            // 2
	a.ok(map[string]any{"type": "react", "room": room, "id": m, "emoji": "👍"}, "ack")                                    // 3
	wantStatus(t, "PUT a reaction", restCall(t, w.B.URL, "PUT", reactionPath(room, m, "🎉"), tok["alice"], nil), 204, "") // 4
	// The burst is spent, on both instances and for every kind of write.
	for _, v := range []map[string]any{
		{"type": "send", "room": room, "text": "two"},
		{"type": "edit", "room": room, "id": m, "text": "one, edited twice"},
		{"type": "react", "room": room, "id": m, "emoji": "🙂"},
		{"type": "delete", "room": room, "id": m},
	} {
		a.refused(v, "rate_limited")
	}
	for _, c := range []struct{ method, path string }{
		{"PATCH", msgPath(room, m)},
		{"PUT", reactionPath(room, m, "🙂")},
		{"DELETE", reactionPath(room, m, "👍")},
		{"DELETE", msgPath(room, m)},
		{"POST", msgPath(room)},
	} {
		r := restCall(t, w.B.URL, c.method, c.path, tok["alice"], map[string]string{"text": "x"})
		wantStatus(t, c.method+" "+c.path+" past the rate", r, 429, "rate_limited")
		if r.Status == 429 && r.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s: 429 without Retry-After", c.method, c.path)
		}
	}
	// Nothing refused was stored; another user is not slowed down.
	got := mustMessage(t, w.A.URL, tok["bob"], room, m)
	if got.Deleted || got.Text != "one, edited" || !mapsEqual(got.Reactions, map[string][]string{"👍": {"alice"}, "🎉": {"alice"}}) {
		t.Errorf("after refused writes the message reads %+v", got)
	}
	if n := len(mustPage(t, w.A.URL, tok["bob"], room, "").Messages); n != 1 {
		t.Errorf("history holds %d messages, want 1", n)
	}
	wantStatus(t, "bob reacts", restCall(t, w.A.URL, "PUT", reactionPath(room, m, "🙂"), tok["bob"], nil), 204, "")
	a.alive()
}

// TestCurrentStateSurvivesRestart: every instance and Redis (append-only)
// restart; history, single reads and threads then show each message in
// the state it had: edits, deletions, reactions, replies and mentions.
func TestCurrentStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{AppendOnly: true})
	srv.RequireReal(t)
	srv.RequireSingle(t)
	A, B := startInstance(t, srv, instanceOpts{}), startInstance(t, srv, instanceOpts{})
	tok := mustUsers(t, A.URL, "alice", "bob", "dave", "erin")
	alice, bob := tok["alice"], tok["bob"]
	const room = "lounge"
	mustCreate(t, A.URL, alice, room, false)
	// A ban and a mute are kept as well.
	wantStatus(t, "ban dave", restCall(t, A.URL, "POST", "/api/rooms/"+room+"/bans", alice, map[string]any{"user": "dave"}), 201, "")
	wantStatus(t, "mute erin", restCall(t, A.URL, "POST", "/api/rooms/"+room+"/mutes", alice, map[string]any{"user": "erin", "seconds": 3600}), 201, "")
	a := mustConnect(t, A.URL, "alice", alice)
	b := mustConnect(t, B.URL, "bob", bob)
	root := a.sendMsg(room, "plans @bob?").ID
	gone := a.sendMsg(room, "typo").ID
	reply := b.sendMsg(room, "yes @alice", "reply_to", root, "client_id", "k1").ID
	a.ok(map[string]any{"type": "edit", "room": room, "id": root, "text": "plans for friday, @bob?"}, "ack")
	a.ok(map[string]any{"type": "delete", "room": room, "id": gone}, "ack")
	b.ok(map[string]any{"type": "react", "room": room, "id": root, "emoji": "👍"}, "ack")
	a.ok(map[string]any{"type": "react", "room": room, "id": root, "emoji": "👍"}, "ack")
	a.ok(map[string]any{"type": "react", "room": room, "id": reply, "emoji": "🎉"}, "ack")

	snapshot := func(base string) string {
		t.Helper()
		var out []string
		for _, path := range []string{msgPath(room), msgPath(room, root), msgPath(room, gone), msgPath(room, reply), msgPath(room, root) + "/replies"} {
			r := restCall(t, base, "GET", path, bob, nil)
			if r.Status != 200 {
				t.Fatalf("GET %s: %s", path, r)
			}
			out = append(out, string(r.Body))
		}
		return strings.Join(out, "\n")
	}
	before := snapshot(A.URL)
	m := mustMessage(t, B.URL, bob, room, root)
	if m.Text != "plans for friday, @bob?" || m.EditedTS == 0 || m.ReplyCount != 1 || !slices.Equal(m.Mentions, []string{"bob"}) ||
		!mapsEqual(m.Reactions, map[string][]string{"👍": {"bob", "alice"}}) {
		t.Fatalf("root before the restart: %+v", m)
	}

	a.close()
	b.close()
	A.Stop()
	B.Stop()
	if err := srv.Proc.Restart(); err != nil {
		t.Fatal(err)
	}
	A, B = startInstance(t, srv, instanceOpts{}), startInstance(t, srv, instanceOpts{})
	if after := snapshot(B.URL); after != before {
		t.Errorf("after the restart:\n%s\nbefore:\n%s", after, before)
	}
	// The state goes on from where it was: a new edit, a retried send.
	b = mustConnect(t, B.URL, "bob", login(t, B.URL, "bob"))
	if ack := b.sendMsg(room, "yes @alice", "reply_to", root, "client_id", "k1"); ack.ID != reply {
		t.Errorf("retry of an acked send after the restart: %s, want id %s", ack, reply)
	}
	b.ok(map[string]any{"type": "react", "room": room, "id": root, "emoji": "👍", "on": false}, "ack")
	m = mustMessage(t, A.URL, alice, room, root)
	if !mapsEqual(m.Reactions, map[string][]string{"👍": {"alice"}}) || m.ReplyCount != 1 {
		t.Errorf("root after the restart and an unreact: %+v", m)
	}
	wantStatus(t, "banned dave posts", restCall(t, A.URL, "POST", msgPath(room), tok["dave"], map[string]string{"text": "hi"}), 403, "forbidden")
	wantStatus(t, "banned dave reads", restCall(t, B.URL, "GET", msgPath(room), tok["dave"], nil), 403, "forbidden")
	wantStatus(t, "muted erin posts", restCall(t, B.URL, "POST", msgPath(room), tok["erin"], map[string]string{"text": "hi"}), 403, "forbidden")
	wantStatus(t, "muted erin reads", restCall(t, A.URL, "GET", msgPath(room), tok["erin"], nil), 200, "")
}

// roomsOf returns the caller's GET /api/rooms by name, with mentions and
// roles.
func roomsOf(tb testing.TB, base, token string) map[string]roomEntry {
	tb.Helper()
	out := map[string]roomEntry{}
	after := ""
	for {
		a := restCall(tb, base, "GET", "/api/rooms?limit=500&after="+after, token, nil)
		if a.Status != 200 {
			tb.Fatalf("GET /api/rooms: %s", a)
		}
		var res struct {
			Rooms   []roomEntry `json:"rooms"`
			HasMore bool        `json:"has_more"`
		}
		a.decode(tb, &res)
		for _, r := range res.Rooms {
			out[r.Name] = r
			after = r.Name
		}
		if !res.HasMore {
			return out
		}
	}
}

type roomEntry struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	LastID   string `json:"last_id"`
	Unread   int64  `json:"unread"`
	Mentions int64  `json:"mentions"`
	Topic    string `json:"topic"`
	Role     string `json:"role"`
}

// TestMentions: @name names a user who can read the room, once, ignoring
// case; the message carries mentions; the named user's sockets not
// joined to the room get a mention event on any instance; GET /api/rooms
// counts unread mentions until the user reads. Nobody outside a room
// hears of a mention in it.
func TestMentions(t *testing.T) {
	t.Parallel()
	w := startPair(t, instanceOpts{}, storetest.Options{})
	tok := mustUsers(t, w.A.URL, "alice", "bob", "carol", "dave", "b.o-b_2")
	A, B := w.A.URL, w.B.URL
	const room = "general"
	a := mustConnect(t, A, "alice", tok["alice"])
	bJoined := mustConnect(t, B, "bob", tok["bob"])
	bAway := mustConnect(t, B, "bob-away", tok["bob"])
	bAwayA := mustConnect(t, A, "bob-away-A", tok["bob"])
	c := mustConnect(t, A, "carol", tok["carol"])
	userEventsLive(t, B, tok["dave"], "bob", bJoined, bAway, bAwayA)
	userEventsLive(t, B, tok["dave"], "carol", c)
	bJoined.join(room, "")
	a.join(room, "")

	text := "hi @Bob and @carol, @nobody, mail@dave.com, (@B.O-B_2) and @bob again, @alice"
	ack := a.sendMsg(room, text)
	want := []string{"alice", "b.o-b_2", "bob", "carol"}
	for _, p := range []*peer{a, bJoined} {
		f := p.nextOf("message", room)
		if f.ID != ack.ID || !slices.Equal(sortedCopy(f.Mentions), want) {
			t.Errorf("%s got %s, want mentions %v", p.name, f, want)
		}
	}
	if m := mustMessage(t, B, tok["dave"], room, ack.ID); !slices.Equal(sortedCopy(m.Mentions), want) {
		t.Errorf("GET message: mentions %v, want %v", m.Mentions, want)
	}
	// Sockets of the named users that have not joined the room get a
	// mention event, on both instances; the joined one does not, and the
	// sender gets none for naming herself.
	for _, p := range []*peer{bAway, bAwayA, c} {
		f := p.nextOf("mention", room)
		if f.ID != ack.ID || f.User != "alice" || f.Text != text {
			t.Errorf("%s got %s", p.name, f)
		}
	}
	bJoined.none(300*time.Millisecond, "a mention event on a joined socket", func(f xframe) bool { return f.Type == "mention" && f.Room == room })
	a.none(0, "a mention event for naming herself", func(f xframe) bool { return f.Type == "mention" && f.Room == room })

	// Unread mentions: bob joined before, so the message is unread and
	// mentions him; carol never joined, so her position starts at her
	// first join and nothing is unread for her.
	storetest.CheckFor(t, 5*time.Second, func() error {
		r := roomsOf(t, A, tok["bob"])[room]
		if r.Unread != 1 || r.Mentions != 1 {
			return fmt.Errorf("bob's %s: unread %d mentions %d, want 1 and 1", room, r.Unread, r.Mentions)
		}
		return nil
	})
	a.sendMsg(room, "no names here")
	a.sendMsg(room, "@BOB once more")
	storetest.CheckFor(t, 5*time.Second, func() error {
		r := roomsOf(t, B, tok["bob"])[room]
		if r.Unread != 3 || r.Mentions != 2 {
			return fmt.Errorf("bob's %s: unread %d mentions %d, want 3 and 2", room, r.Unread, r.Mentions)
		}
		return nil
	})
	// An edit that drops the name drops the unread mention.
	a.ok(map[string]any{"type": "edit", "room": room, "id": ack.ID, "text": "hi all"}, "ack")
	storetest.CheckFor(t, 5*time.Second, func() error {
		r := roomsOf(t, B, tok["bob"])[room]
		if r.Unread != 3 || r.Mentions != 1 {
			return fmt.Errorf("bob's %s after the edit: unread %d mentions %d, want 3 and 1", room, r.Unread, r.Mentions)
		}
		return nil
	})
	if m := mustMessage(t, A, tok["bob"], room, ack.ID); m.Mentions != nil {
		t.Errorf("after an edit without names: mentions %v", m.Mentions)
	}
	last := mustPage(t, A, tok["bob"], room, "?limit=1").Messages[0].ID
	if f, ok := bJoined.quiet(map[string]any{"type": "read", "room": room, "id": last}); !ok {
		t.Fatalf("read: %s", f)
	}
	storetest.CheckFor(t, 5*time.Second, func() error {
		r := roomsOf(t, A, tok["bob"])[room]
		if r.Unread != 0 || r.Mentions != 0 {
			return fmt.Errorf("bob's %s after reading: unread %d mentions %d, want 0 and 0", room, r.Unread, r.Mentions)
		}
		return nil
	})

	// A private channel: only members can be named; nobody else hears.
	mustCreate(t, A, tok["alice"], "hush", true)
	mustAdd(t, A, tok["alice"], "hush", "bob")
	bJoined.join("hush", "")
	ack = a.sendMsg("hush", "@carol @bob @dave look")
	if f := bJoined.nextOf("message", "hush"); !slices.Equal(f.Mentions, []string{"bob"}) {
		t.Errorf("in a private channel: %s, want mentions [bob]", f)
	}
	if f := bAway.nextOf("mention", "hush"); f.ID != ack.ID {
		t.Errorf("bob's away socket got %s", f)
	}
	// A direct room: only its two users.
	dm := mustDM(t, A, tok["alice"], "dave")
	ack = a.sendMsg(dm, "@carol said @dave should know")
	if m := mustMessage(t, A, tok["dave"], dm, ack.ID); !slices.Equal(m.Mentions, []string{"dave"}) {
		t.Errorf("in a direct room: mentions %v, want [dave]", m.Mentions)
	}
	c.none(500*time.Millisecond, "a mention in a room closed to her", func(f xframe) bool {
		return f.Room == "hush" || f.Room == dm
	})
	if r, ok := roomsOf(t, B, tok["carol"])["hush"]; ok {
		t.Errorf("carol's rooms list hush: %+v", r)
	}
}

// TestMentionsAtMost50: a message names at most 50 users.
func TestMentionsAtMost50(t *testing.T) {
	t.Parallel()
	w := startPair(t, instanceOpts{}, storetest.Options{})
	var names []string
	for i := range 55 {
		names = append(names, fmt.Sprintf("user%02d", i))
	}
	tok := mustUsers(t, w.A.URL, append(names, "alice")...)
	text := "@" + strings.Join(names, " @")
	m := mustPost(t, w.B.URL, tok["alice"], "general", text)
	if len(m.Mentions) != 50 {
		t.Errorf("a message naming 55 users mentions %d: %v", len(m.Mentions), m.Mentions)
	}
	for _, n := range m.Mentions {
		if !slices.Contains(names, n) {
			t.Errorf("mentions %q", n)
		}
	}
}

// TestRoomAddedOnNewDM: opening a direct room, by POST /api/dms or by
// sending to its name, tells both users' sockets on every instance at
// once; opening it again tells nobody.
func TestRoomAddedOnNewDM(t *testing.T) {
	t.Parallel()
	w := startPair(t, instanceOpts{}, storetest.Options{})
	tok := mustUsers(t, w.A.URL, "alice", "carol", "dave")
	a := mustConnect(t, w.A.URL, "alice", tok["alice"])
	c := mustConnect(t, w.B.URL, "carol", tok["carol"])
	c2 := mustConnect(t, w.A.URL, "carol-2", tok["carol"])
	d := mustConnect(t, w.B.URL, "dave", tok["dave"])
	userEventsLive(t, w.A.URL, tok["dave"], "alice", a)
	userEventsLive(t, w.A.URL, tok["alice"], "carol", c, c2)
	userEventsLive(t, w.A.URL, tok["alice"], "dave", d)
	room := mustDM(t, w.A.URL, tok["alice"], "Carol")
	if room != "dm:alice:carol" {
		t.Fatalf("dm is %s", room)
	}
	for _, p := range []*peer{a, c, c2} {
		if f := p.nextOf("room_added", room); f.Kind != "direct" {
			t.Errorf("%s got %s, want kind direct", p.name, f)
		}
	}
	if again := mustDM(t, w.B.URL, tok["carol"], "alice"); again != room {
		t.Errorf("carol's dm with alice is %s", again)
	}
	// Opened by a send to its name, from the other user's side.
	ack := d.sendMsg("dm:carol:dave", "hi carol")
	for _, p := range []*peer{c, c2, d} {
		if f := p.nextOf("room_added", "dm:carol:dave"); f.Kind != "direct" {
			t.Errorf("%s got %s", p.name, f)
		}
	}
	if r, ok := roomsOf(t, w.A.URL, tok["carol"])["dm:carol:dave"]; !ok || r.Kind != "direct" || r.LastID != ack.ID || r.Unread != 1 {
		t.Errorf("carol's rooms: dm:carol:dave %+v (listed %v), want direct, unread 1", r, ok)
	}
	for _, p := range []*peer{a, c, c2, d} {
		p.none(300*time.Millisecond, "room_added twice", func(f xframe) bool { return f.Type == "room_added" })
	}
	// A user who is not in it hears nothing.
	d.none(0, "another pair's room_added", func(f xframe) bool { return f.Room == room })
}

// TestEditWindow: with CHAT_EDIT_WINDOW set, the author may edit only
// within the window, on every instance and over REST; deleting and
// reacting are not limited by it.
func TestEditWindow(t *testing.T) {
	t.Parallel()
	const window = 1500 * time.Millisecond
	w := startPair(t, instanceOpts{Engine: func(o *engine.Options) { o.EditWindow = window }}, storetest.Options{})
	tok := mustUsers(t, w.A.URL, "alice", "bob")
	const room = "general"
	a := mustConnect(t, w.A.URL, "alice", tok["alice"])
	m1 := a.sendMsg(room, "one").ID
	m2 := a.sendMsg(room, "two").ID
	sent := time.UnixMilli(int64(mustPos(t, m2).Ms))
	a.ok(map[string]any{"type": "edit", "room": room, "id": m1, "text": "one, edited in time"}, "ack")
	wantStatus(t, "PATCH in time", restCall(t, w.B.URL, "PATCH", msgPath(room, m2), tok["alice"], map[string]string{"text": "two, edited in time"}), 200, "")
	time.Sleep(time.Until(sent.Add(window + 200*time.Millisecond)))

	a.refused(map[string]any{"type": "edit", "room": room, "id": m1, "text": "one, too late"}, "forbidden")
	b := mustConnect(t, w.B.URL, "alice-B", tok["alice"])
	b.refused(map[string]any{"type": "edit", "room": room, "id": m2, "text": "two, too late"}, "forbidden")
	wantStatus(t, "PATCH too late", restCall(t, w.A.URL, "PATCH", msgPath(room, m2), tok["alice"], map[string]string{"text": "too late"}), 403, "forbidden")
	// Someone else's message stays forbidden, a missing one not_found.
	wantStatus(t, "PATCH by bob", restCall(t, w.A.URL, "PATCH", msgPath(room, m2), tok["bob"], map[string]string{"text": "x"}), 403, "forbidden")
	a.refused(map[string]any{"type": "edit", "room": room, "id": "1-0", "text": "x"}, "not_found")
	for _, m := range []struct{ id, text string }{{m1, "one, edited in time"}, {m2, "two, edited in time"}} {
		if got := mustMessage(t, w.B.URL, tok["bob"], room, m.id); got.Text != m.text {
			t.Errorf("%s reads %q, want %q", m.id, got.Text, m.text)
		}
	}
	b.ok(map[string]any{"type": "react", "room": room, "id": m1, "emoji": "⏰"}, "ack")
	b.ok(map[string]any{"type": "delete", "room": room, "id": m1}, "ack")
	wantStatus(t, "DELETE after the window", restCall(t, w.A.URL, "DELETE", msgPath(room, m2), tok["alice"], nil), 204, "")
	// A new message can be edited again.
	m3 := a.sendMsg(room, "three").ID
	a.ok(map[string]any{"type": "edit", "room": room, "id": m3, "text": "three, edited"}, "ack")
}

// TestEmojiRules: an emoji is 1–32 bytes of UTF-8 without whitespace or
// control characters, on the socket and in the REST path; a message holds
// at most 50 distinct emoji, however many users react with each.
func TestEmojiRules(t *testing.T) {
	t.Parallel()
	w := startPair(t, instanceOpts{}, storetest.Options{})
	tok := mustUsers(t, w.A.URL, "alice", "bob", "carol")
	const room = "general"
	a := mustConnect(t, w.A.URL, "alice", tok["alice"])
	m := a.sendMsg(room, "react to me").ID
	good := []string{"👍", "a", strings.Repeat("x", 32), "👨‍👩‍👧‍👦", "🇫🇷", ":+1:", "❤️", "日本", "1", "+", "é"}
	bad := []string{"", strings.Repeat("x", 33), strings.Repeat("é", 17), "a b", " a", "a\t", "\n", "\u00a0", "\u3000", "\u2028",
		"\x00", "\x7f", "\u0085", "\x1b[31m"}
	for i, e := range good {
		if i%2 == 0 {
			a.ok(map[string]any{"type": "react", "room": room, "id": m, "emoji": e}, "ack")
		} else {
			wantStatus(t, "PUT "+e, restCall(t, w.B.URL, "PUT", reactionPath(room, m, e), tok["alice"], nil), 204, "")
		}
	}
	for _, e := range bad {
		a.refused(map[string]any{"type": "react", "room": room, "id": m, "emoji": e}, "invalid")
		a.refused(map[string]any{"type": "react", "room": room, "id": m, "emoji": e, "on": false}, "invalid")
		if e != "" {
			wantStatus(t, fmt.Sprintf("PUT %q", e), restCall(t, w.B.URL, "PUT", reactionPath(room, m, e), tok["alice"], nil), 400, "invalid")
			wantStatus(t, fmt.Sprintf("DELETE %q", e), restCall(t, w.A.URL, "DELETE", reactionPath(room, m, e), tok["alice"], nil), 400, "invalid")
		}
	}
	got := mustMessage(t, w.A.URL, tok["bob"], room, m)
	if len(got.Reactions) != len(good) {
		t.Errorf("reactions %v, want exactly %q", got.Reactions, good)
	}
	for _, e := range good {
		if !slices.Equal(got.Reactions[e], []string{"alice"}) {
			t.Errorf("reaction %q: %v", e, got.Reactions[e])
		}
	}

	// Up to 50 distinct emoji; then a new one is invalid, while more users
	// may still react with those there.
	for i := len(good); i < 50; i++ {
		e := fmt.Sprintf("e%02d", i)
		if i%2 == 0 {
			a.ok(map[string]any{"type": "react", "room": room, "id": m, "emoji": e}, "ack")
		} else {
			wantStatus(t, "PUT "+e, restCall(t, w.B.URL, "PUT", reactionPath(room, m, e), tok["bob"], nil), 204, "")
		}
	}
	a.refused(map[string]any{"type": "react", "room": room, "id": m, "emoji": "🆕"}, "invalid")
	wantStatus(t, "PUT a 51st emoji", restCall(t, w.B.URL, "PUT", reactionPath(room, m, "🆕"), tok["carol"], nil), 400, "invalid")
	wantStatus(t, "PUT a 51st emoji, other instance", restCall(t, w.A.URL, "PUT", reactionPath(room, m, "🆒"), tok["bob"], nil), 400, "invalid")
	wantStatus(t, "PUT an emoji already there", restCall(t, w.B.URL, "PUT", reactionPath(room, m, "👍"), tok["carol"], nil), 204, "")
	if f := a.ok(map[string]any{"type": "react", "room": room, "id": m, "emoji": "🆕", "on": false}, "ack"); f.has("id") {
		t.Errorf("removing an emoji that is not there: %s, want an ack without id", f)
	}
	// Removing the last user of one frees its place for another.
	a.ok(map[string]any{"type": "react", "room": room, "id": m, "emoji": "a", "on": false}, "ack")
	wantStatus(t, "PUT a new emoji after one left", restCall(t, w.B.URL, "PUT", reactionPath(room, m, "🆕"), tok["carol"], nil), 204, "")
	wantStatus(t, "PUT yet another", restCall(t, w.A.URL, "PUT", reactionPath(room, m, "🆒"), tok["carol"], nil), 400, "invalid")
	got = mustMessage(t, w.B.URL, tok["bob"], room, m)
	if len(got.Reactions) != 50 || got.Reactions["🆕"] == nil || got.Reactions["a"] != nil ||
		!slices.Equal(got.Reactions["👍"], []string{"alice", "carol"}) {
		t.Errorf("after the limit: %d emoji %v", len(got.Reactions), got.Reactions)
	}
	a.alive()
}

// TestCursorsAtTheEnds: the smallest and largest stream ids are cursors
// like any other: nothing lies before 0-0 or after the largest id, and a
// page there is empty, not an error.
func TestCursorsAtTheEnds(t *testing.T) {
	t.Parallel()
	w := startPair(t, instanceOpts{}, storetest.Options{})
	tok := mustUsers(t, w.A.URL, "alice")
	const room, max = "general", "18446744073709551615-18446744073709551615"
	root := mustPost(t, w.A.URL, tok["alice"], room, "root").ID
	mustPost(t, w.A.URL, tok["alice"], room, "reply", "reply_to", root)
	for _, c := range []struct {
		query string
		n     int
	}{
		{"?after=" + max, 0},
		{"?after=18446744073709551615", 0},
		{"?before=" + max, 2},
		{"?before=0", 0},
		{"?before=0-0", 0},
		{"?after=0", 2},
	} {
		for _, base := range []string{w.A.URL, w.B.URL} {
			a := restCall(t, base, "GET", msgPath(room)+c.query, tok["alice"], nil)
			var p histPage
			if a.Status == 200 {
				a.decode(t, &p)
			}
			if a.Status != 200 || len(p.Messages) != c.n || p.HasMore {
				t.Errorf("GET messages%s: %s, want 200 with %d messages", c.query, a, c.n)
			}
		}
	}
	for _, c := range []struct {
		query string
		n     int
	}{{"?after=" + max, 0}, {"?after=0", 1}, {"?after=" + root, 1}} {
		a := restCall(t, w.B.URL, "GET", msgPath(room, root)+"/replies"+c.query, tok["alice"], nil)
		var th struct {
			Root     msgState   `json:"root"`
			Messages []msgState `json:"messages"`
		}
		if a.Status == 200 {
			a.decode(t, &th)
		}
		if a.Status != 200 || th.Root.ID != root || len(th.Messages) != c.n {
			t.Errorf("GET replies%s: %s, want 200 with %d replies", c.query, a, c.n)
		}
	}
	p := mustConnect(t, w.A.URL, "alice", tok["alice"])
	if j := p.join(room, max); j.Recovered == nil || !*j.Recovered {
		t.Errorf("join since the largest id: %s", j)
	}
}

// TestJoinSinceAheadOfTheRoom: a since ahead of everything stored (a
// client's bad memory, or an id from entries a failover lost) replays
// nothing, and the live messages from the join on still arrive.
func TestJoinSinceAheadOfTheRoom(t *testing.T) {
	t.Parallel()
	w := startPair(t, instanceOpts{}, storetest.Options{})
	tok := mustUsers(t, w.A.URL, "alice", "bob")
	const room = "general"
	before := mustPost(t, w.A.URL, tok["alice"], room, "before").ID
	b := mustConnect(t, w.B.URL, "bob", tok["bob"])
	for _, since := range []string{"99999999999999-0", "18446744073709551615-18446744073709551615"} {
		if j := b.join(room, since); j.LastID != before || j.Recovered == nil || !*j.Recovered {
			t.Errorf("join since %s: %s", since, j)
		}
		id := mustPost(t, w.A.URL, tok["alice"], room, "live after since "+since).ID
		if f := b.next(5*time.Second, "the live message", func(f xframe) bool { return isEntry(f, room) }); f.ID != id {
			t.Errorf("after a join since %s got %s, want %s", since, f, id)
		}
		before = id
	}
}

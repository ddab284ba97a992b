package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/storetest"
)

func mustStore(tb testing.TB, rdb redis.UniversalClient, mod func(*store.Options)) *store.Store {
	tb.Helper()
	opts := store.Options{Client: rdb, MaxLen: 1000, SendRate: 1000, SendBurst: 1000}
	if mod != nil {
		mod(&opts)
	}
	s, err := store.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	if err := s.Init(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return s
}

func appendWait(tb testing.TB, s *store.Store, req engine.AppendRequest) (engine.AppendResult, error) {
	tb.Helper()
	if req.Kind == 0 {
		req.Kind = engine.EntryMessage
	}
	ch := make(chan struct{})
	var res engine.AppendResult
	var err error
	s.Append(req, func(r engine.AppendResult, e error) { res, err = r, e; close(ch) })
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		tb.Fatal("append did not complete")
	}
	return res, err
}

func mustAppend(tb testing.TB, s *store.Store, req engine.AppendRequest) engine.Entry {
	tb.Helper()
	r, err := appendWait(tb, s, req)
	if err != nil {
		tb.Fatalf("append %+v: %v", req, err)
	}
	return r.Entry
}

func TestSlot(t *testing.T) {
	t.Parallel()
	// Values from the Redis Cluster specification and CRC16/XMODEM's check value.
	for key, want := range map[string]int{
		"123456789":            0x31C3,
		"foo":                  12182,
		"{foo}.bar":            12182,
		"x{foo}y":              12182,
		"{}foo":                store.Slot("{}foo"),
		"chat:{general}:s":     store.Slot("general"),
		"chat:{dm:a:b}:c":      store.Slot("dm:a:b"),
		"chat:{u:alice}:rooms": store.Slot("u:alice"),
	} {
		if got := store.Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
	if store.Slot("{}foo") == store.Slot("") {
		t.Error("an empty hash tag must not be used: {}foo hashes whole")
	}
}

func TestAppendIdempotencyAndCounters(t *testing.T) {
	t.Parallel()
	s := mustStore(t, storetest.Redis(t), nil)
	ctx := context.Background()
	var ids []engine.StreamPos
	for i := range 10 {
		e := mustAppend(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: fmt.Sprint("m", i), ClientID: fmt.Sprint("c", i)})
		if e.N != uint64(i+1) || e.Q != uint64(i+1) {
			t.Fatalf("message %d: n=%d q=%d, want %d", i, e.N, e.Q, i+1)
		}
		ids = append(ids, e.ID)
	}
	r, err := appendWait(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: "again", ClientID: "c3"})
	if err != nil || !r.Duplicate || r.Entry.ID != ids[3] {
		t.Fatalf("retry: %+v %v, want duplicate of %s", r, err, ids[3])
	}
	// The same client_id from another user is a new message.
	if r, err := appendWait(t, s, engine.AppendRequest{Room: "general", User: "bob", Text: "x", ClientID: "c3"}); err != nil || r.Duplicate {
		t.Fatalf("other user's c3: %+v %v", r, err)
	}
	ents, err := s.Range(ctx, "general", ids[2], 3)
	if err != nil || len(ents) != 3 || ents[0].ID != ids[3] || ents[0].Text != "m3" || ents[0].User != "alice" || ents[0].ClientID != "c3" {
		t.Fatalf("Range after %s = %+v, %v", ids[2], ents, err)
	}
}

// TestIdempotencyKeysDoNotCollide: a (room, user, client_id) triple
// whose parts hold ':' must not meet another's key (issue 14, finding 8).
func TestIdempotencyKeysDoNotCollide(t *testing.T) {
	t.Parallel()
	s := mustStore(t, storetest.Redis(t), nil)
	ctx := context.Background()
	for _, u := range []string{"aaron", "zed"} {
		if err := s.CreateUser(ctx, u, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.OpenDirect(ctx, "dm:aaron:zed", "aaron", "zed"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRoom(ctx, engine.RoomSpec{Name: "dm", Owner: "aaron"}); err != nil {
		t.Fatal(err)
	}
	first := mustAppend(t, s, engine.AppendRequest{Room: "dm", User: "aaron", Text: "in channel dm", ClientID: "zed:zed:c1"})
	r, err := appendWait(t, s, engine.AppendRequest{Room: "dm:aaron:zed", User: "zed", Text: "in the direct room", ClientID: "c1"})
	if err != nil || r.Duplicate {
		t.Fatalf("zed's message in dm:aaron:zed: %+v %v, want a new message (aaron's was %s)", r, err, first.ID)
	}
	ents, _ := s.Range(ctx, "dm:aaron:zed", engine.StreamPos{}, 10)
	if len(ents) != 1 || ents[0].Text != "in the direct room" {
		t.Fatalf("dm:aaron:zed holds %+v", ents)
	}
}

func TestAppendRateLimit(t *testing.T) {
	t.Parallel()
	s := mustStore(t, storetest.Redis(t), func(o *store.Options) { o.SendRate, o.SendBurst = 1, 3 })
	var limited error
	for i := range 5 {
		_, err := appendWait(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: fmt.Sprint(i)})
		if err != nil {
			limited = err
		}
	}
	var re *engine.RetryError
	if !errors.As(limited, &re) || re.After <= 0 {
		t.Fatalf("5 sends at burst 3: %v, want a RetryError", limited)
	}
	// The server API's sends are exempt.
	if _, err := appendWait(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: "bot", RateExempt: true}); err != nil {
		t.Fatalf("exempt send: %v", err)
	}
}

// TestEventsAndCurrentState: edits, deletions and reactions are entries
// of the stream, and history shows each message in its current state.
func TestEventsAndCurrentState(t *testing.T) {
	t.Parallel()
	s := mustStore(t, storetest.Redis(t), nil)
	ctx := context.Background()
	m1 := mustAppend(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: "helo @bob", Mentions: []string{"bob"}})
	m2 := mustAppend(t, s, engine.AppendRequest{Room: "general", User: "bob", Text: "second"})
	if !slices.Equal(m1.Mentions, []string{"bob"}) {
		t.Fatalf("mentions = %v", m1.Mentions)
	}
	// Only the author edits.
	if _, err := appendWait(t, s, engine.AppendRequest{Kind: engine.EntryEdit, Room: "general", User: "bob", Target: m1.ID, Text: "hijack"}); !errors.Is(err, engine.ErrForbidden) {
		t.Fatalf("bob edits alice's message: %v, want forbidden", err)
	}
	ed := mustAppend(t, s, engine.AppendRequest{Kind: engine.EntryEdit, Room: "general", User: "alice", Target: m1.ID, Text: "hello @carol", Mentions: []string{"carol"}})
	if ed.Kind != engine.EntryEdit || ed.Target != m1.ID || ed.Q != 3 || ed.N != 0 {
		t.Fatalf("edit entry %+v", ed)
	}
	for _, r := range []struct {
		user, emoji string
		on, noop    bool
	}{{"bob", "👍", true, false}, {"carol", "👍", true, false}, {"bob", "👍", true, true}, {"bob", "🎉", true, false}, {"bob", "🎉", false, false}, {"bob", "🎉", false, true}} {
		res, err := appendWait(t, s, engine.AppendRequest{Kind: engine.EntryReaction, Room: "general", User: r.user, Target: m1.ID, Emoji: r.emoji, On: r.on})
		if err != nil || res.Noop != r.noop {
			t.Fatalf("reaction %+v: %+v %v", r, res, err)
		}
	}
	// Bob deletes his own; a direct-room rule is tested elsewhere.
	mustAppend(t, s, engine.AppendRequest{Kind: engine.EntryDelete, Room: "general", User: "bob", Target: m2.ID})
	if _, err := appendWait(t, s, engine.AppendRequest{Kind: engine.EntryEdit, Room: "general", User: "bob", Target: m2.ID, Text: "x"}); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("edit of a deleted message: %v, want not found", err)
	}
	if _, err := appendWait(t, s, engine.AppendRequest{Kind: engine.EntryReaction, Room: "general", User: "bob", Target: m2.ID, Emoji: "x", On: true}); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("reaction to a deleted message: %v, want not found", err)
	}
	_, page, err := s.History(ctx, "general", "alice", nil, nil, 10)
	if err != nil || len(page.Messages) != 2 || page.More {
		t.Fatalf("history: %+v %v", page, err)
	}
	h1, h2 := page.Messages[0], page.Messages[1]
	if h1.Text != "hello @carol" || h1.EditedTS != ed.TS() || !slices.Equal(h1.Mentions, []string{"carol"}) ||
		len(h1.Reactions) != 1 || h1.Reactions[0].Emoji != "👍" || !slices.Equal(h1.Reactions[0].Users, []string{"bob", "carol"}) {
		t.Fatalf("edited message in history: %+v", h1)
	}
	if !h2.Deleted || h2.Text != "" || h2.Mentions != nil || h2.Reactions != nil {
		t.Fatalf("deleted message in history: %+v", h2)
	}
	// The deleted text is gone from the message state (the original
	// stream entry keeps it until retention removes it).
	_, one, err := s.Message(ctx, "general", "alice", m2.ID)
	if err != nil || !one.Deleted {
		t.Fatalf("Message(%s) = %+v %v", m2.ID, one, err)
	}
	// Replay carries every entry in order.
	ents, _ := s.Range(ctx, "general", engine.StreamPos{}, 100)
	var kinds []string
	for i, e := range ents {
		if e.Q != uint64(i+1) {
			t.Errorf("entry %d has q=%d", i, e.Q)
		}
		kinds = append(kinds, string(e.Kind))
	}
	if strings.Join(kinds, "") != "mmerrrrd" {
		t.Fatalf("entry kinds %q, want mmerrrrd", strings.Join(kinds, ""))
	}
}

func TestReactionLimits(t *testing.T) {
	t.Parallel()
	s := mustStore(t, storetest.Redis(t), nil)
	m := mustAppend(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: "react to me"})
	for i := range 50 {
		mustAppend(t, s, engine.AppendRequest{Kind: engine.EntryReaction, Room: "general", User: "bob", Target: m.ID, Emoji: fmt.Sprint("e", i), On: true})
	}
	if _, err := appendWait(t, s, engine.AppendRequest{Kind: engine.EntryReaction, Room: "general", User: "bob", Target: m.ID, Emoji: "one-more", On: true}); !errors.Is(err, engine.ErrInvalid) {
		t.Fatalf("51st distinct emoji: %v, want invalid", err)
	}
	// Another user on an existing emoji is fine.
	mustAppend(t, s, engine.AppendRequest{Kind: engine.EntryReaction, Room: "general", User: "carol", Target: m.ID, Emoji: "e7", On: true})
}

// TestHistoryCountsMessagesOnly: a page holds exactly limit messages
// however many events sit between them.
func TestHistoryCountsMessagesOnly(t *testing.T) {
	t.Parallel()
	s := mustStore(t, storetest.Redis(t), func(o *store.Options) { o.MaxLen = 100000 })
	ctx := context.Background()
	var msgs []engine.Entry
	for i := range 12 {
		m := mustAppend(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: fmt.Sprint("m", i)})
		msgs = append(msgs, m)
		// Many events after each message: more than one script call scans.
		for j := range 600 {
			mustAppendQuiet(t, s, engine.AppendRequest{Kind: engine.EntryReaction, Room: "general", User: fmt.Sprint("u", j), Target: m.ID, Emoji: "x", On: true})
		}
	}
	_, page, err := s.History(ctx, "general", "alice", nil, nil, 5)
	if err != nil || len(page.Messages) != 5 || !page.More || page.Messages[4].ID != msgs[11].ID || page.Messages[0].ID != msgs[7].ID {
		t.Fatalf("newest page: %d messages, more=%v, %v", len(page.Messages), page.More, err)
	}
	after := engine.StreamPos{}
	_, page, err = s.History(ctx, "general", "alice", nil, &after, 10)
	if err != nil || len(page.Messages) != 10 || !page.More || page.Messages[0].ID != msgs[0].ID {
		t.Fatalf("oldest page: %d messages, more=%v, %v", len(page.Messages), page.More, err)
	}
	before := msgs[2].ID
	_, page, err = s.History(ctx, "general", "alice", &before, nil, 5)
	if err != nil || len(page.Messages) != 2 || page.More {
		t.Fatalf("page before %s: %d messages, more=%v, %v", before, len(page.Messages), page.More, err)
	}
	if len(page.Messages[0].Reactions) != 1 || len(page.Messages[0].Reactions[0].Users) != 600 {
		t.Fatalf("reactions: %+v", page.Messages[0].Reactions)
	}
}

// mustAppendQuiet appends many entries concurrently (they batch).
func mustAppendQuiet(tb testing.TB, s *store.Store, req engine.AppendRequest) {
	tb.Helper()
	if _, err := appendWait(tb, s, req); err != nil {
		tb.Fatal(err)
	}
}

func TestRepliesAndReplyTo(t *testing.T) {
	t.Parallel()
	s := mustStore(t, storetest.Redis(t), nil)
	ctx := context.Background()
	other := mustAppend(t, s, engine.AppendRequest{Room: "support", User: "alice", Text: "elsewhere"})
	time.Sleep(2 * time.Millisecond) // no ID of general can equal other's
	root := mustAppend(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: "root"})
	if _, err := appendWait(t, s, engine.AppendRequest{Room: "general", User: "bob", Text: "bad", ReplyTo: other.ID}); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("reply to another room's message: %v, want not found", err)
	}
	var replies []engine.Entry
	for i := range 5 {
		mustAppend(t, s, engine.AppendRequest{Room: "general", User: "carol", Text: fmt.Sprint("noise", i)})
		replies = append(replies, mustAppend(t, s, engine.AppendRequest{Room: "general", User: "bob", Text: fmt.Sprint("re", i), ReplyTo: root.ID}))
	}
	if replies[0].ReplyTo != root.ID {
		t.Fatalf("reply entry %+v", replies[0])
	}
	_, r, page, err := s.Replies(ctx, "general", "alice", root.ID, engine.StreamPos{}, 3)
	if err != nil || r.ID != root.ID || r.ReplyCount != 5 || len(page.Messages) != 3 || !page.More || page.Messages[0].ID != replies[0].ID {
		t.Fatalf("replies: root %+v, %+v, %v", r, page, err)
	}
	_, _, page, err = s.Replies(ctx, "general", "alice", root.ID, page.Messages[2].ID, 3)
	if err != nil || len(page.Messages) != 2 || page.More || page.Messages[1].ID != replies[4].ID {
		t.Fatalf("second page: %+v, %v", page, err)
	}
	if _, _, _, err := s.Replies(ctx, "general", "alice", other.ID, engine.StreamPos{}, 3); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("replies of another room's message: %v", err)
	}
}

func TestWriteRechecks(t *testing.T) {
	t.Parallel()
	s := mustStore(t, storetest.Redis(t), nil)
	ctx := context.Background()
	for _, u := range []string{"owner", "mod", "bob", "eve"} {
		if err := s.CreateUser(ctx, u, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateRoom(ctx, engine.RoomSpec{Name: "team", Private: true, Owner: "owner", Members: []string{"mod", "bob"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRole(ctx, "team", "mod", engine.RoleModerator); err != nil {
		t.Fatal(err)
	}
	// A non-member's write is refused even if the engine was wrong.
	if _, err := appendWait(t, s, engine.AppendRequest{Room: "team", User: "eve", Text: "let me in"}); !errors.Is(err, engine.ErrForbidden) {
		t.Fatalf("non-member send: %v", err)
	}
	m := mustAppend(t, s, engine.AppendRequest{Room: "team", User: "bob", Text: "hi @eve @owner", Mentions: []string{"eve", "owner"}})
	if !slices.Equal(m.Mentions, []string{"owner"}) {
		t.Fatalf("mentions %v: eve cannot read the room", m.Mentions)
	}
	// A moderator deletes others' messages; a member does not.
	other := mustAppend(t, s, engine.AppendRequest{Room: "team", User: "owner", Text: "x"})
	if _, err := appendWait(t, s, engine.AppendRequest{Kind: engine.EntryDelete, Room: "team", User: "bob", Target: other.ID}); !errors.Is(err, engine.ErrForbidden) {
		t.Fatalf("member deletes owner's message: %v", err)
	}
	mustAppend(t, s, engine.AppendRequest{Kind: engine.EntryDelete, Room: "team", User: "mod", Target: other.ID})
	// Muted: no send, no react; a delete of one's own still works.
	if err := s.Mute(ctx, "team", "bob", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := appendWait(t, s, engine.AppendRequest{Room: "team", User: "bob", Text: "muted"}); !errors.Is(err, engine.ErrForbidden) {
		t.Fatalf("muted send: %v", err)
	}
	if _, err := appendWait(t, s, engine.AppendRequest{Kind: engine.EntryReaction, Room: "team", User: "bob", Target: m.ID, Emoji: "x", On: true}); !errors.Is(err, engine.ErrForbidden) {
		t.Fatalf("muted react: %v", err)
	}
	mustAppend(t, s, engine.AppendRequest{Kind: engine.EntryDelete, Room: "team", User: "bob", Target: m.ID})
	// Banned (timed): refused, and the ban ends by itself.
	if err := s.Unmute(ctx, "team", "bob"); err != nil {
		t.Fatal(err)
	}
	if err := s.Ban(ctx, "team", "bob", "owner", time.Now().Add(1500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := appendWait(t, s, engine.AppendRequest{Room: "team", User: "bob", Text: "banned"}); !errors.Is(err, engine.ErrForbidden) {
		t.Fatalf("banned send: %v", err)
	}
	bans, err := s.Bans(ctx, "team", false)
	if err != nil || len(bans) != 1 || bans[0].User != "bob" || bans[0].Until == 0 {
		t.Fatalf("bans: %+v %v", bans, err)
	}
	acc, err := s.Access(ctx, "team", "bob")
	if err != nil || acc.Role != "" || acc.BannedUntil <= 0 {
		t.Fatalf("banned access: %+v %v", acc, err)
	}
	storetest.CheckFor(t, 5*time.Second, func() error {
		bans, err := s.Bans(ctx, "team", false)
		if err != nil || len(bans) != 0 {
			return fmt.Errorf("bans %+v %v", bans, err)
		}
		return nil
	})
	// The ban ended; bob was removed by it, so he needs adding again.
	if _, err := s.AddMember(ctx, "team", "bob", "owner"); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, engine.AppendRequest{Room: "team", User: "bob", Text: "back"})
}

func TestMembership(t *testing.T) {
	t.Parallel()
	s := mustStore(t, storetest.Redis(t), nil)
	ctx := context.Background()
	for _, u := range []string{"ann", "ben", "cat"} {
		if err := s.CreateUser(ctx, u, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateRoom(ctx, engine.RoomSpec{Name: "club", Private: true, Topic: "members only", Owner: "ann"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRoom(ctx, engine.RoomSpec{Name: "club", Owner: "ben"}); !errors.Is(err, engine.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	if err := s.CreateRoom(ctx, engine.RoomSpec{Name: "general"}); !errors.Is(err, engine.ErrExists) {
		t.Fatalf("create general: %v", err)
	}
	if _, err := s.AddMember(ctx, "club", "ben", "ann"); err != nil {
		t.Fatal(err)
	}
	if role, err := s.AddMember(ctx, "club", "ben", "ann"); !errors.Is(err, engine.ErrExists) || role != engine.RoleMember {
		t.Fatalf("add twice: %v %v", role, err)
	}
	if err := s.RemoveMember(ctx, "club", "ann", "ann"); !errors.Is(err, engine.ErrLastOwner) {
		t.Fatalf("last owner leaves: %v", err)
	}
	if err := s.SetRole(ctx, "club", "ann", engine.RoleMember); !errors.Is(err, engine.ErrLastOwner) {
		t.Fatalf("last owner demoted: %v", err)
	}
	if err := s.SetRole(ctx, "club", "ben", engine.RoleOwner); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRole(ctx, "club", "ann", engine.RoleMember); err != nil {
		t.Fatalf("demote with another owner: %v", err)
	}
	if err := s.Ban(ctx, "club", "cat", "ben", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddMember(ctx, "club", "cat", "ben"); !errors.Is(err, engine.ErrBanned) {
		t.Fatalf("add banned: %v", err)
	}
	ms, more, err := s.Members(ctx, "club", "", 10)
	if err != nil || more || len(ms) != 2 || ms[0].User != "ann" || ms[0].Role != engine.RoleMember || ms[1].User != "ben" || ms[1].Role != engine.RoleOwner {
		t.Fatalf("members: %+v %v %v", ms, more, err)
	}
	// Lists: ben sees club, cat does not.
	sums, _, err := s.Rooms(ctx, "ben", "", 50)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range sums {
		names = append(names, r.Name)
		if r.Name == "club" && (r.Kind != engine.KindPrivate || r.Topic != "members only" || r.Role != engine.RoleOwner) {
			t.Errorf("club summary %+v", r)
		}
	}
	if !slices.Equal(names, []string{"club", "general", "support", "tech"}) {
		t.Fatalf("ben's rooms %v", names)
	}
	sums, _, _ = s.Rooms(ctx, "cat", "", 50)
	for _, r := range sums {
		if r.Name == "club" {
			t.Fatalf("cat sees club: %+v", r)
		}
	}
	// The member entries are in the stream, in order.
	ents, _ := s.Range(ctx, "club", engine.StreamPos{}, 10)
	var changes []string
	for _, e := range ents {
		if e.Kind == engine.EntryMember {
			changes = append(changes, e.Member+" "+e.Change)
		}
	}
	if !slices.Equal(changes, []string{"ann added", "ben added", "cat banned"}) {
		t.Fatalf("member entries %v", changes)
	}
}

// TestRoomsPaging pages a user's rooms by name across public channels
// and the user's own list.
func TestRoomsPaging(t *testing.T) {
	t.Parallel()
	s := mustStore(t, storetest.Redis(t), nil)
	ctx := context.Background()
	if err := s.CreateUser(ctx, "pat", "x"); err != nil {
		t.Fatal(err)
	}
	want := []string{"general", "support", "tech"}
	for i := range 300 {
		name := fmt.Sprintf("c%03d", i)
		if err := s.CreateRoom(ctx, engine.RoomSpec{Name: name, Private: i%3 == 0, Owner: "pat"}); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	for i := range 20 {
		name := fmt.Sprintf("hidden%02d", i)
		if err := s.CreateRoom(ctx, engine.RoomSpec{Name: name, Private: true}); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(want)
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		sums, more, err := s.Rooms(ctx, "pat", after, 47)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range sums {
			got = append(got, r.Name)
		}
		if !more {
			break
		}
		after = sums[len(sums)-1].Name
		if pages > 20 {
			t.Fatal("paging does not end")
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged rooms: %d, want %d (%v…)", len(got), len(want), got[:min(5, len(got))])
	}
}

func TestUnreadAndMentions(t *testing.T) {
	t.Parallel()
	s := mustStore(t, storetest.Redis(t), nil)
	ctx := context.Background()
	st, err := s.JoinState(ctx, "general", "bob", engine.JoinOptions{MarkRead: true})
	if err != nil || st.Access.Kind != engine.KindChannel {
		t.Fatalf("join state %+v %v", st, err)
	}
	var last engine.Entry
	for i := range 5 {
		req := engine.AppendRequest{Room: "general", User: "alice", Text: fmt.Sprint(i)}
		if i%2 == 0 {
			req.Text, req.Mentions = "@bob look", []string{"bob"}
		}
		last = mustAppend(t, s, req)
	}
	summary := func() engine.RoomSummary {
		sums, _, err := s.Rooms(ctx, "bob", "", 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range sums {
			if r.Name == "general" {
				return r
			}
		}
		t.Fatal("no general")
		return engine.RoomSummary{}
	}
	if r := summary(); r.Unread != 5 || r.Mentions != 3 || r.LastID != last.ID {
		t.Fatalf("before reading: %+v", r)
	}
	ents, _ := s.Range(ctx, "general", engine.StreamPos{}, 10)
	if err := s.MarkRead(ctx, "general", "bob", ents[2].ID, false); err != nil {
		t.Fatal(err)
	}
	if r := summary(); r.Unread != 2 || r.Mentions != 1 {
		t.Fatalf("after reading 3: %+v", r)
	}
	// Bob's own message moves his position.
	mustAppend(t, s, engine.AppendRequest{Room: "general", User: "bob", Text: "read all"})
	if r := summary(); r.Unread != 0 || r.Mentions != 0 {
		t.Fatalf("after sending: %+v", r)
	}
}

// TestRetention trims to about MaxLen entries, records what it removed,
// and takes the removed messages' state with them.
func TestRetention(t *testing.T) {
	t.Parallel()
	s := mustStore(t, storetest.Redis(t), func(o *store.Options) { o.MaxLen = 100 })
	ctx := context.Background()
	first := mustAppend(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: "first"})
	mustAppend(t, s, engine.AppendRequest{Kind: engine.EntryReaction, Room: "general", User: "bob", Target: first.ID, Emoji: "x", On: true})
	mustAppend(t, s, engine.AppendRequest{Room: "general", User: "bob", Text: "re", ReplyTo: first.ID})
	for i := range 150 {
		mustAppend(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: fmt.Sprint(i)})
	}
	st, err := s.JoinState(ctx, "general", "alice", engine.JoinOptions{})
	if err != nil || st.Trimmed.IsZero() {
		t.Fatalf("trimmed: %+v %v", st, err)
	}
	ents, _ := s.Range(ctx, "general", engine.StreamPos{}, 1000)
	if n := len(ents); n < 100 || n > 102 {
		t.Fatalf("%d entries kept, want about 100", n)
	}
	if !st.Trimmed.Less(ents[0].ID) {
		t.Fatalf("trimmed %s not before the first kept %s", st.Trimmed, ents[0].ID)
	}
	if _, _, err := s.Message(ctx, "general", "alice", first.ID); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("trimmed message still readable: %v", err)
	}
}

// TestNoticesMatchStream: what a watched room's notices carry is what
// the stream holds, and a watch is confirmed by a resync.
func TestNoticesMatchStream(t *testing.T) {
	t.Parallel()
	s := mustStore(t, storetest.Redis(t), nil)
	ctx := context.Background()
	h := newRecorder()
	s.Attach(h)
	s.Watch("general")
	h.waitResync(t, "general")
	m := mustAppend(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: "hi\nthere @bob", ClientID: "c", Mentions: []string{"bob"}})
	mustAppend(t, s, engine.AppendRequest{Room: "general", User: "bob", Text: "answer", ReplyTo: m.ID})
	mustAppend(t, s, engine.AppendRequest{Kind: engine.EntryEdit, Room: "general", User: "alice", Target: m.ID, Text: "edited"})
	mustAppend(t, s, engine.AppendRequest{Kind: engine.EntryReaction, Room: "general", User: "bob", Target: m.ID, Emoji: "👍", On: true})
	mustAppend(t, s, engine.AppendRequest{Kind: engine.EntryDelete, Room: "general", User: "alice", Target: m.ID})
	if err := s.CreateUser(ctx, "carol", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddMember(ctx, "general", "carol", "carol"); err != nil {
		t.Fatal(err)
	}
	stream, _ := s.Range(ctx, "general", engine.StreamPos{}, 100)
	got := h.waitNotices(t, len(stream))
	for i := range stream {
		if fmt.Sprintf("%+v", got[i]) != fmt.Sprintf("%+v", stream[i]) {
			t.Errorf("notice %d:\n got %+v\nwant %+v", i, got[i], stream[i])
		}
	}
}

type recorder struct {
	mu      sync.Mutex
	notices []engine.Entry
	resyncs map[string]int
	events  []engine.Event
	changed chan struct{}
}

func newRecorder() *recorder {
	return &recorder{resyncs: map[string]int{}, changed: make(chan struct{}, 1)}
}

func (r *recorder) signal() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) Notice(e *engine.Entry) {
	r.mu.Lock()
	r.notices = append(r.notices, *e)
	r.mu.Unlock()
	r.signal()
}

func (r *recorder) Resync(room string) {
	r.mu.Lock()
	r.resyncs[room]++
	r.mu.Unlock()
	r.signal()
}

func (r *recorder) RoomEvent(ev engine.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
	r.signal()
}

func (r *recorder) UserEvent(engine.UserEvent) {}

func (r *recorder) waitResync(tb testing.TB, room string) int {
	tb.Helper()
	deadline := time.After(5 * time.Second)
	for {
		r.mu.Lock()
		n := r.resyncs[room]
		r.mu.Unlock()
		if n > 0 {
			return n
		}
		select {
		case <-r.changed:
		case <-deadline:
			tb.Fatalf("no resync of %s within 5s", room)
		}
	}
}

func (r *recorder) waitNotices(tb testing.TB, n int) []engine.Entry {
	tb.Helper()
	deadline := time.After(5 * time.Second)
	for {
		r.mu.Lock()
		got := append([]engine.Entry(nil), r.notices...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.changed:
		case <-deadline:
			tb.Fatalf("%d notices within 5s, want %d", len(got), n)
		}
	}
}

// TestResubscribeAfterKill: when Redis drops the subscriber connection
// (CLIENT KILL), the feed subscribes again and asks for a resync, so the
// engine reads what was published meanwhile from the stream.
func TestResubscribeAfterKill(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	srv.RequireReal(t)
	rdb := srv.Client(t)
	s := mustStore(t, rdb, nil)
	h := newRecorder()
	s.Attach(h)
	s.Watch("general")
	h.waitResync(t, "general")
	ctx := context.Background()
	if err := rdb.Do(ctx, "client", "kill", "type", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.waitResync(t, "general") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no second resync after the subscriber was killed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.Healthy(); err != nil {
		t.Fatalf("healthy after resubscribing: %v", err)
	}
	m := mustAppend(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: "after"})
	got := h.waitNotices(t, 1)
	if got[len(got)-1].ID != m.ID {
		t.Fatalf("notice after resubscribing: %+v", got)
	}
}

func TestPresenceRegistry(t *testing.T) {
	t.Parallel()
	rdb := storetest.Redis(t)
	a := mustStore(t, rdb, func(o *store.Options) { o.Instance, o.PresenceTTL = "a", time.Second })
	b := mustStore(t, rdb, func(o *store.Options) { o.Instance, o.PresenceTTL = "b", time.Second })
	ctx := context.Background()
	if _, err := a.Join(ctx, "general", []string{"ann", "dan"}); err != nil {
		t.Fatal(err)
	}
	online, err := b.Join(ctx, "general", []string{"ben", "dan"})
	if err != nil || !slices.Equal(sorted(online), []string{"ann", "ben", "dan"}) {
		t.Fatalf("online %v %v", online, err)
	}
	// a stops beating; after its TTL, b's heartbeat reaps it: ann goes,
	// dan stays (b still has him).
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := b.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
		online, _ = b.Online(ctx, "general")
		if slices.Equal(sorted(online), []string{"ben", "dan"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("online %v, want ben and dan after a's entries are reaped", online)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := b.Leave(ctx, "general", []string{"dan"}); err != nil {
		t.Fatal(err)
	}
	if online, _ = b.Online(ctx, "general"); !slices.Equal(online, []string{"ben"}) {
		t.Fatalf("online %v after dan left b", online)
	}
}

func sorted(xs []string) []string {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs
}

func TestUsersUniqueUnderRace(t *testing.T) {
	t.Parallel()
	rdb := storetest.Redis(t)
	s1 := mustStore(t, rdb, nil)
	s2 := mustStore(t, rdb, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		s := s1
		if i%2 == 1 {
			s = s2
		}
		wg.Go(func() { errs[i] = s.CreateUser(ctx, "dora", fmt.Sprint("hash", i)) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, engine.ErrExists):
			t.Fatal(err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d registrations of one name succeeded", ok)
	}
	if _, err := s1.PasswordHash(ctx, "nobody"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	ok1, _, _ := s1.Attempt(ctx, []string{"x"}, []int{1}, []time.Duration{time.Minute})
	ok2, ttl, _ := s2.Attempt(ctx, []string{"x"}, []int{1}, []time.Duration{time.Minute})
	if !ok1 || ok2 || ttl <= 0 || ttl > time.Minute {
		t.Fatalf("attempts %v %v ttl %v", ok1, ok2, ttl)
	}
	k1, _ := s1.Secret(ctx)
	k2, _ := s2.Secret(ctx)
	if len(k1) != 32 || string(k1) != string(k2) {
		t.Fatalf("secrets differ or short: %d", len(k1))
	}
}

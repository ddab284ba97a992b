package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/storetest"
)

// The webhook outbox, on one Redis and on a Redis Cluster: which rooms
// are pending, leases, cursors, and that no entry's mark is lost.

var allKinds = map[engine.EntryKind]bool{engine.EntryMessage: true, engine.EntryEdit: true,
	engine.EntryDelete: true, engine.EntryReaction: true, engine.EntryMember: true}

const testLease = 5 * time.Second

// outboxModes runs f against a fresh store of each mode: one Redis, and
// a Redis Cluster (started once for all of f's cluster runs).
func outboxModes(t *testing.T, f func(t *testing.T, rdb redis.UniversalClient)) {
	t.Run("single", func(t *testing.T) {
		t.Parallel()
		srv := storetest.Start(t, storetest.Options{})
		f(t, srv.UniversalClient(t))
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		c := storetest.StartCluster(t, storetest.ClusterOptions{NodeTimeout: 2 * time.Second})
		f(t, c.Client(t))
	})
}

// waitPending waits until WebhookPending lists (or, with want false, no
// longer lists) room. On a cluster the hint is written a moment after
// the append.
func waitPending(t *testing.T, s *store.Store, room string, want bool) int64 {
	t.Helper()
	var since int64
	storetest.CheckFor(t, 5*time.Second, func() error {
		rooms, times, err := s.WebhookPending(context.Background(), 1000)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.Index(rooms, room)
		if (i >= 0) != want {
			return fmt.Errorf("pending rooms %v: want %s listed %v", rooms, room, want)
		}
		if i >= 0 {
			since = times[i]
		}
		return nil
	})
	return since
}

func mustTake(t *testing.T, s *store.Store, room, owner string) (engine.StreamPos, uint64) {
	t.Helper()
	cur, q, held, ok, err := s.WebhookTake(context.Background(), room, owner, testLease)
	if err != nil || !ok {
		t.Fatalf("take %s by %s: ok=%v held=%v err=%v", room, owner, ok, held, err)
	}
	return cur, q
}

func TestWebhookOutbox(t *testing.T) {
	t.Parallel()
	outboxModes(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		s := mustStore(t, rdb, func(o *store.Options) { o.Webhooks = allKinds })
		// A room created with an owner stores a member entry: pending.
		if err := s.CreateRoom(ctx, engine.RoomSpec{Name: "orders-1", Owner: "alice"}); err != nil {
			t.Fatal(err)
		}
		since := waitPending(t, s, "orders-1", true)
		if age := time.Since(time.UnixMilli(since)); age < 0 || age > 10*time.Second {
			t.Errorf("pending since %d, %v ago", since, age)
		}
		cur, q := mustTake(t, s, "orders-1", "a")
		if q != 0 {
			t.Errorf("first take: q=%d, want 0 (no cursor yet)", q)
		}
		// One owner at a time.
		if _, _, held, ok, err := s.WebhookTake(ctx, "orders-1", "b", testLease); err != nil || ok || held <= 0 || held > testLease {
			t.Fatalf("second owner: ok=%v held=%v err=%v, want refused for up to %v", ok, held, err, testLease)
		}
		m1 := mustAppend(t, s, engine.AppendRequest{Room: "orders-1", User: "alice", Text: "first"})
		ents, err := s.Range(ctx, "orders-1", cur, 10)
		if err != nil || len(ents) != 2 || ents[0].Kind != engine.EntryMember || ents[1].ID != m1.ID {
			t.Fatalf("entries after the first cursor %s: %+v %v", cur, ents, err)
		}
		// Another owner cannot record progress.
		if _, lost, err := s.WebhookAdvance(ctx, "orders-1", "b", m1.ID, m1.Q, true, testLease); err != nil || !lost {
			t.Fatalf("advance by b: lost=%v err=%v, want lost", lost, err)
		}
		if done, lost, err := s.WebhookAdvance(ctx, "orders-1", "a", ents[0].ID, ents[0].Q, false, testLease); done || lost || err != nil {
			t.Fatalf("advance: done=%v lost=%v err=%v", done, lost, err)
		}
		// An entry stored after the deliverer read: finishing at the
		// entry before it keeps the room pending (its mark is not lost).
		m2 := mustAppend(t, s, engine.AppendRequest{Room: "orders-1", User: "alice", Text: "second"})
		m2At := time.Now()
		if done, lost, err := s.WebhookAdvance(ctx, "orders-1", "a", m1.ID, m1.Q, true, testLease); done || lost || err != nil {
			t.Fatalf("finish before the newest entry: done=%v lost=%v err=%v, want more", done, lost, err)
		}
		waitPending(t, s, "orders-1", true)
		if done, lost, err := s.WebhookAdvance(ctx, "orders-1", "a", m2.ID, m2.Q, true, testLease); !done || lost || err != nil {
			t.Fatalf("finish at the newest entry: done=%v lost=%v err=%v", done, lost, err)
		}
		if _, isCluster := rdb.(*redis.ClusterClient); isCluster {
			// On a cluster a store goroutine writes the hints of appends
			// every 10 ms, so m2's may land after this finish: a stale
			// hint, which a take drops when the room has nothing pending,
			// as a deliverer's take would. Wait past the hint's time.
			storetest.CheckFor(t, 5*time.Second, func() error {
				rooms, _, err := s.WebhookPending(ctx, 1000)
				if err != nil {
					return err
				}
				if !slices.Contains(rooms, "orders-1") {
					if time.Since(m2At) < 100*time.Millisecond {
						return fmt.Errorf("m2's hint may still come (it is written within about 10 ms)")
					}
					return nil
				}
				if _, _, held, ok, err := s.WebhookTake(ctx, "orders-1", "probe", testLease); ok || held != 0 || err != nil {
					t.Fatalf("take of a delivered room with a stale hint: ok=%v held=%v err=%v, want idle", ok, held, err)
				}
				return fmt.Errorf("a stale hint of orders-1 was dropped; look again")
			})
		}
		waitPending(t, s, "orders-1", false)
		if _, _, held, ok, err := s.WebhookTake(ctx, "orders-1", "b", testLease); ok || held != 0 || err != nil {
			t.Fatalf("take of a delivered room: ok=%v held=%v err=%v, want idle", ok, held, err)
		}
		// The cursor stays: the next delivery starts after m2, whoever
		// delivers it.
		m3 := mustAppend(t, s, engine.AppendRequest{Room: "orders-1", User: "alice", Text: "third"})
		waitPending(t, s, "orders-1", true)
		cur, q = mustTake(t, s, "orders-1", "b")
		if cur != m2.ID || q != m2.Q {
			t.Fatalf("cursor %s q=%d, want %s q=%d", cur, q, m2.ID, m2.Q)
		}
		if ents, _ := s.Range(ctx, "orders-1", cur, 10); len(ents) != 1 || ents[0].ID != m3.ID {
			t.Fatalf("after the cursor: %+v, want only %s", ents, m3.ID)
		}
		// Renew and release are the holder's only.
		if held, err := s.WebhookRenew(ctx, "a", []string{"orders-1"}, testLease); err != nil || held[0] {
			t.Fatalf("renew by a: %v %v, want not held", held, err)
		}
		if held, err := s.WebhookRenew(ctx, "b", []string{"orders-1", "general"}, testLease); err != nil || !slices.Equal(held, []bool{true, false}) {
			t.Fatalf("renew by b: %v %v", held, err)
		}
		if err := s.WebhookRelease(ctx, "orders-1", "a"); err != nil {
			t.Fatal(err)
		}
		if _, _, _, ok, _ := s.WebhookTake(ctx, "orders-1", "a", testLease); ok {
			t.Fatal("a took the lease b holds after a's release")
		}
		if err := s.WebhookRelease(ctx, "orders-1", "b"); err != nil {
			t.Fatal(err)
		}
		if cur, _ := mustTake(t, s, "orders-1", "a"); cur != m2.ID {
			t.Fatalf("a's cursor after b released: %s, want %s", cur, m2.ID)
		}
		// A lease that is not renewed ends by itself.
		if _, _, _, ok, err := s.WebhookTake(ctx, "orders-1", "a", 50*time.Millisecond); !ok || err != nil {
			t.Fatal(ok, err)
		}
		time.Sleep(120 * time.Millisecond)
		mustTake(t, s, "orders-1", "b")
	})
}

// TestWebhookKindsAndStart: only configured kinds mark a room, and
// entries stored while webhooks were off are not delivered later.
func TestWebhookKindsAndStart(t *testing.T) {
	t.Parallel()
	outboxModes(t, func(t *testing.T, rdb redis.UniversalClient) {
		ctx := context.Background()
		off := mustStore(t, rdb, nil)
		old := mustAppend(t, off, engine.AppendRequest{Room: "general", User: "alice", Text: "before webhooks"})
		if err := off.CreateRoom(ctx, engine.RoomSpec{Name: "quiet", Owner: "alice"}); err != nil {
			t.Fatal(err)
		}
		s := mustStore(t, rdb, func(o *store.Options) { o.Webhooks = map[engine.EntryKind]bool{engine.EntryMessage: true} })
		// A reaction and a member change are not delivered kinds here.
		mustAppend(t, s, engine.AppendRequest{Kind: engine.EntryReaction, Room: "general", User: "bob", Target: old.ID, Emoji: "👍", On: true})
		if _, err := s.AddMember(ctx, "quiet", "bob", "alice"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond) // past the hint flush
		if rooms, _, err := s.WebhookPending(ctx, 100); err != nil || len(rooms) != 0 {
			t.Fatalf("pending after undelivered kinds: %v %v", rooms, err)
		}
		time.Sleep(2 * time.Millisecond) // the next entry in a later millisecond than the reaction
		m := mustAppend(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: "after"})
		waitPending(t, s, "general", true)
		cur, _ := mustTake(t, s, "general", "a")
		ents, err := s.Range(ctx, "general", cur, 10)
		if err != nil || len(ents) != 1 || ents[0].ID != m.ID {
			t.Fatalf("delivery starts at %s: %+v %v, want only the message stored with webhooks on (%s)", cur, ents, err, m.ID)
		}
	})
}

// TestWebhookPendingScore: the pending score follows the oldest entry not
// yet delivered, so the pending set tells how far delivery lags.
func TestWebhookPendingScore(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	srv.RequireSingle(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	s := mustStore(t, rdb, func(o *store.Options) { o.Webhooks = allKinds })
	m1 := mustAppend(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: "1"})
	time.Sleep(5 * time.Millisecond)
	m2 := mustAppend(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: "2"})
	if got := waitPending(t, s, "general", true); got > int64(m1.ID.Ms) {
		t.Fatalf("pending since %d, after the first entry (%d)", got, m1.ID.Ms)
	}
	mustTake(t, s, "general", "a")
	if _, _, err := s.WebhookAdvance(ctx, "general", "a", m1.ID, m1.Q, false, testLease); err != nil {
		t.Fatal(err)
	}
	if got := waitPending(t, s, "general", true); got != int64(m2.ID.Ms) {
		t.Fatalf("pending since %d after m1 was delivered, want m2's time %d", got, m2.ID.Ms)
	}
}

// TestWebhookClusterHints: on a cluster, rooms of every primary are
// found through the hint set; a stale hint is dropped; the sweep finds a
// pending room whose hint was lost, once per period.
func TestWebhookClusterHints(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t, storetest.ClusterOptions{NodeTimeout: 2 * time.Second})
	rdb := c.Client(t)
	ctx := context.Background()
	s := mustStore(t, rdb, func(o *store.Options) { o.Webhooks = allKinds })
	var rooms []string
	nodes := map[string]bool{}
	for i := range 40 {
		r := fmt.Sprintf("ticket-%d", i)
		rooms = append(rooms, r)
		nodes[c.PrimaryOf(t, "chat:{"+r+"}:s")] = true
		if err := s.CreateRoom(ctx, engine.RoomSpec{Name: r}); err != nil {
			t.Fatal(err)
		}
		mustAppend(t, s, engine.AppendRequest{Room: r, User: "alice", Text: "hi"})
	}
	if len(nodes) < 2 {
		t.Fatalf("rooms on %d primaries; want them spread", len(nodes))
	}
	for _, r := range rooms {
		waitPending(t, s, r, true)
	}
	// A stale hint (the room was delivered after its hint was written)
	// goes at the first take.
	r0 := rooms[0]
	cur, _ := mustTake(t, s, r0, "a")
	ents, _ := s.Range(ctx, r0, cur, 10)
	last := ents[len(ents)-1]
	if done, _, err := s.WebhookAdvance(ctx, r0, "a", last.ID, last.Q, true, testLease); !done || err != nil {
		t.Fatalf("finish %s: %v %v", r0, done, err)
	}
	if err := rdb.ZAdd(ctx, "chat:whh", redis.Z{Score: float64(last.ID.Ms), Member: r0}).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, _, ok, err := s.WebhookTake(ctx, r0, "b", testLease); ok || err != nil {
		t.Fatalf("take of a delivered room: %v %v", ok, err)
	}
	waitPending(t, s, r0, false)
	// Every hint lost: the sweep puts the pending rooms back, once per
	// period whichever instance asks.
	if err := rdb.Del(ctx, "chat:whh").Err(); err != nil {
		t.Fatal(err)
	}
	other := mustStore(t, rdb, func(o *store.Options) { o.Webhooks = allKinds })
	var primaries []*redis.Client
	for _, addr := range c.Primaries(t) {
		nc := c.NodeClient(t, addr)
		primaries = append(primaries, nc)
		if err := nc.ConfigResetStat(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	began := time.Now()
	n, err := s.WebhookSweep(ctx, "a", time.Minute)
	if err != nil || n != len(rooms)-1 {
		t.Fatalf("sweep found %d rooms (%v), want %d", n, err, len(rooms)-1)
	}
	took := time.Since(began)
	var calls, usec int64
	for _, nc := range primaries {
		info, _ := nc.Info(ctx, "commandstats").Result()
		for _, line := range strings.Split(info, "\n") {
			if rest, ok := strings.CutPrefix(line, "cmdstat_zrange:"); ok {
				var cl, us int64
				fmt.Sscanf(rest, "calls=%d,usec=%d", &cl, &us)
				calls, usec = calls+cl, usec+us
			}
		}
	}
	if calls < store.NumSlots {
		t.Errorf("the sweep read %d slot sets, want all %d", calls, store.NumSlots)
	}
	t.Logf("a sweep of all %d slot sets of %d primaries: %v, %d ZRANGE calls costing %d µs of Redis time in all",
		store.NumSlots, len(primaries), took.Round(time.Millisecond), calls, usec)
	for _, r := range rooms[1:] {
		waitPending(t, other, r, true)
	}
	waitPending(t, s, r0, false)
	if n, err := other.WebhookSweep(ctx, "b", time.Minute); err != nil || n != 0 {
		t.Fatalf("second sweep in the period: %d %v, want none", n, err)
	}
}

// BenchmarkAppendOutbox: the cost of the webhook outbox's mark on a
// send's path to its ack. Two stores on one Redis, one recording
// webhooks and one not, append one message at a time (each waited for)
// in alternating blocks, so that both see the same machine; it reports
// the median per-append wall time of each and the Redis time per append
// script call (INFO commandstats), where the mark is not hidden by the
// round trip.
func BenchmarkAppendOutbox(b *testing.B) {
	srv := storetest.Start(b, storetest.Options{})
	srv.RequireSingle(b)
	rdb := srv.Client(b)
	ctx := context.Background()
	mk := func(kinds map[engine.EntryKind]bool) *store.Store {
		return mustStore(b, rdb, func(o *store.Options) { o.Webhooks, o.SendRate, o.SendBurst = kinds, 1e9, 1e9 })
	}
	stores := [2]*store.Store{mk(nil), mk(allKinds)}
	for i, s := range stores {
		if err := s.CreateRoom(ctx, engine.RoomSpec{Name: fmt.Sprint("bench-", i)}); err != nil {
			b.Fatal(err)
		}
	}
	var ops [2]func()
	for i, s := range stores {
		room := fmt.Sprint("bench-", i)
		ops[i] = func() {
			mustAppend(b, s, engine.AppendRequest{Room: room, User: "alice", Text: "a message of ordinary length, like this one"})
		}
	}
	compareAppends(b, rdb, [2]string{"off", "on"}, ops)
}

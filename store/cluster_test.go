package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/storetest"
)

// Cluster mode: the same store on a local Redis Cluster (3 primaries, 3
// replicas).

// TestClusterNoticesAcrossSlots: appends to rooms spread over every
// primary, batched, each reaching its watchers once and in order, equal
// to what the streams hold; room lists and history read across slots.
func TestClusterNoticesAcrossSlots(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t, storetest.ClusterOptions{NodeTimeout: 2 * time.Second})
	s := mustStore(t, c.Client(t), nil)
	if !s.Cluster() {
		t.Fatal("not in cluster mode")
	}
	ctx := context.Background()
	h := newRecorder()
	s.Attach(h)
	var rooms []string
	for i := range 30 {
		rooms = append(rooms, fmt.Sprintf("room-%d", i))
	}
	for _, r := range rooms {
		if err := s.CreateRoom(ctx, engine.RoomSpec{Name: r, Owner: ""}); err != nil {
			t.Fatal(err)
		}
		s.Watch(r)
	}
	for _, r := range rooms {
		h.waitResync(t, r)
	}
	// Concurrent appends: the workers batch them, one script per slot.
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for i := range 40 {
				room := rooms[(w*7+i)%len(rooms)]
				if _, err := appendWait(t, s, engine.AppendRequest{Room: room, User: fmt.Sprint("user", w), Text: fmt.Sprint(i), ClientID: fmt.Sprint(w, "-", i)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	got := h.waitNotices(t, 240)
	byRoom := map[string][]engine.Entry{}
	for _, e := range got {
		byRoom[e.Room] = append(byRoom[e.Room], e)
	}
	total := 0
	for _, r := range rooms {
		stream, err := s.Range(ctx, r, engine.StreamPos{}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		total += len(stream)
		if fmt.Sprint(stream) != fmt.Sprint(byRoom[r]) {
			t.Errorf("room %s: notices differ from the stream (%d against %d)", r, len(byRoom[r]), len(stream))
		}
	}
	if total != 240 {
		t.Fatalf("streams hold %d entries, want 240", total)
	}
	sums, _, err := s.Rooms(ctx, "user0", "", 100)
	if err != nil || len(sums) != 33 {
		t.Fatalf("rooms: %d %v, want 33", len(sums), err)
	}
	_, page, err := s.History(ctx, rooms[0], "user0", nil, nil, 5)
	if err != nil || len(page.Messages) != 5 {
		t.Fatalf("history: %+v %v", page, err)
	}
	// Rate buckets live in the users' slots.
	rs := mustStore(t, c.Client(t), func(o *store.Options) { o.SendRate, o.SendBurst = 1, 2 })
	var limited error
	for i := range 4 {
		if _, err := appendWait(t, rs, engine.AppendRequest{Room: rooms[i], User: "eve", Text: "x"}); err != nil {
			limited = err
		}
	}
	var re *engine.RetryError
	if !errors.As(limited, &re) {
		t.Fatalf("4 sends at burst 2 across rooms: %v, want rate limited", limited)
	}
}

// TestClusterWaitReplicas: with WaitReplicas an append is acked only once
// a replica holds it; asking for more replicas than exist fails the
// append, and a retry with the same client_id stores nothing twice.
func TestClusterWaitReplicas(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t, storetest.ClusterOptions{NodeTimeout: 2 * time.Second})
	ok := mustStore(t, c.Client(t), func(o *store.Options) { o.WaitReplicas = 1 })
	m := mustAppend(t, ok, engine.AppendRequest{Room: "general", User: "alice", Text: "replicated", ClientID: "c1"})
	h := newRecorder()
	ok.Attach(h)
	ok.Watch("general")
	h.waitResync(t, "general")
	m2 := mustAppend(t, ok, engine.AppendRequest{Room: "general", User: "alice", Text: "announced after WAIT"})
	if got := h.waitNotices(t, 1); got[0].ID != m2.ID {
		t.Fatalf("notice %+v, want %s", got, m2.ID)
	}

	// A store that asks for two replicas (of one): not Init, whose writes
	// would wait for them too.
	two, err := store.New(store.Options{Client: c.Client(t), WaitReplicas: 2, WaitTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = two.Close() })
	_, err = appendWait(t, two, engine.AppendRequest{Room: "general", User: "alice", Text: "needs two replicas", ClientID: "c2"})
	if !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("append waiting for 2 of 1 replicas: %v, want unavailable", err)
	}
	r, err := appendWait(t, ok, engine.AppendRequest{Room: "general", User: "alice", Text: "needs two replicas", ClientID: "c2"})
	if err != nil || !r.Duplicate {
		t.Fatalf("retry: %+v %v, want the first (unacked) send found", r, err)
	}
	if r, err := appendWait(t, ok, engine.AppendRequest{Room: "general", User: "alice", Text: "x", ClientID: "c1"}); err != nil || !r.Duplicate || r.Entry.ID != m.ID {
		t.Fatalf("retry of c1: %+v %v", r, err)
	}
}

// TestClusterFailover: sends with client ids to a busy room while its
// primary is killed and its replica promoted: with WaitReplicas 1, every
// acked message is in the stream, once; sends continue after a brief
// unavailable period; notices resume (the feed resubscribes and asks for
// a resync).
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t, storetest.ClusterOptions{NodeTimeout: 2 * time.Second})
	s := mustStore(t, c.Client(t), func(o *store.Options) { o.WaitReplicas, o.MaxLen = 1, 1000000 })
	h := newRecorder()
	s.Attach(h)
	const room = "busy"
	if err := s.CreateRoom(context.Background(), engine.RoomSpec{Name: room}); err != nil {
		t.Fatal(err)
	}
	s.Watch(room)
	h.waitResync(t, room)
	acked := map[string]engine.StreamPos{}
	var mu sync.Mutex
	var retries atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cid := fmt.Sprintf("w%d-%d", w, i)
				for try := 0; ; try++ {
					r, err := appendWait(t, s, engine.AppendRequest{Room: room, User: fmt.Sprint("u", w), Text: cid, ClientID: cid})
					if err == nil {
						mu.Lock()
						acked[cid] = r.Entry.ID
						mu.Unlock()
						break
					}
					if !errors.Is(err, engine.ErrUnavailable) || try > 200 {
						t.Errorf("send %s: %v", cid, err)
						return
					}
					retries.Add(1)
					time.Sleep(50 * time.Millisecond) // retry with the same client_id
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	n0 := len(acked)
	mu.Unlock()
	killed := time.Now()
	old := c.KillPrimaryOf(t, "chat:{"+room+"}:s")
	c.WaitFailover(t, "chat:{"+room+"}:s")
	mu.Lock()
	t.Logf("killed %s with %d acked; failover took %v, %d acked now, %d retries", old, n0, time.Since(killed).Round(time.Millisecond), len(acked), retries.Load())
	mu.Unlock()
	// The promoted replica has no replica of its own until the old
	// primary comes back as one: until then WAIT 1 cannot succeed and
	// sends fail with unavailable, as they should.
	c.RestartNode(t, old)
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}
	stream, err := s.Range(context.Background(), room, engine.StreamPos{}, 100000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, e := range stream {
		seen[e.ClientID]++
	}
	lost, dups := 0, 0
	var lostIDs []string
	for cid, id := range acked {
		if seen[cid] == 0 {
			lost++
			if len(lostIDs) < 10 {
				lostIDs = append(lostIDs, cid+"="+id.String())
			}
		}
	}
	if lost > 0 {
		t.Logf("stream holds %d entries, first %v last %v; lost e.g. %v", len(stream), stream[0].ID, stream[len(stream)-1].ID, lostIDs)
	}
	for _, n := range seen {
		if n > 1 {
			dups++
		}
	}
	if lost > 0 || dups > 0 || len(acked) < 20 || retries.Load() == 0 {
		t.Fatalf("%d acked, %d lost, %d stored twice, %d retries (the failover must have refused some)", len(acked), lost, dups, retries.Load())
	}
	if h.waitResync(t, room) < 2 {
		t.Fatal("no resync after the failover")
	}
	t.Logf("%d acked sends, 0 lost, 0 duplicated across the failover; %d sends retried", len(acked), retries.Load())
}

// TestClusterReshard: when a watched room's slot moves to another
// primary, Redis unsubscribes its channel; the feed subscribes again on
// the new owner and asks for a resync, and notices keep coming.
func TestClusterReshard(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t, storetest.ClusterOptions{NodeTimeout: 2 * time.Second})
	s := mustStore(t, c.Client(t), nil)
	h := newRecorder()
	s.Attach(h)
	const room = "moving"
	if err := s.CreateRoom(context.Background(), engine.RoomSpec{Name: room}); err != nil {
		t.Fatal(err)
	}
	s.Watch(room)
	h.waitResync(t, room)
	before := mustAppend(t, s, engine.AppendRequest{Room: room, User: "alice", Text: "before"})
	key := "chat:{" + room + "}:s"
	from := c.PrimaryOf(t, key)
	var to string
	for _, p := range c.Primaries(t) {
		if p != from {
			to = p
			break
		}
	}
	c.MoveSlot(t, store.Slot(key), to)
	deadline := time.Now().Add(20 * time.Second)
	for h.waitResync(t, room) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no resync after the slot moved")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var after engine.Entry
	for try := 0; ; try++ {
		r, err := appendWait(t, s, engine.AppendRequest{Room: room, User: "alice", Text: "after", ClientID: "after"})
		if err == nil {
			after = r.Entry
			break
		}
		if try > 100 {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := h.waitNotices(t, 2)
	if got[0].ID != before.ID || got[len(got)-1].ID != after.ID {
		t.Fatalf("notices %+v, want %s then %s", got, before.ID, after.ID)
	}
	if c.PrimaryOf(t, key) != to {
		t.Fatalf("slot is on %s, want %s", c.PrimaryOf(t, key), to)
	}
}

package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/storetest"
)

func mustStore(tb testing.TB, srv *storetest.Server, mod func(*store.Options)) *store.Store {
	tb.Helper()
	opts := store.Options{Client: srv.Client(tb), MaxLen: 1000}
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
	if req.Now.IsZero() {
		req.Now = time.Now()
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

func TestAppendRangeIdempotency(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	s := mustStore(t, srv, nil)
	ctx := context.Background()
	var ids []engine.StreamPos
	for i := range 10 {
		r, err := appendWait(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: fmt.Sprint("m", i), ClientID: fmt.Sprint("c", i)})
		if err != nil || r.Duplicate {
			t.Fatalf("append %d: %+v %v", i, r, err)
		}
		if r.Message.Seq != uint64(i+1) {
			t.Fatalf("seq = %d, want %d", r.Message.Seq, i+1)
		}
		ids = append(ids, r.Message.ID)
	}
	r, err := appendWait(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: "again", ClientID: "c3"})
	if err != nil || !r.Duplicate || r.Message.ID != ids[3] {
		t.Fatalf("retry: %+v %v, want duplicate of %s", r, err, ids[3])
	}
	// The same client_id from another user is a new message.
	if r, err := appendWait(t, s, engine.AppendRequest{Room: "general", User: "bob", Text: "x", ClientID: "c3"}); err != nil || r.Duplicate {
		t.Fatalf("other user's c3: %+v %v", r, err)
	}
	msgs, err := s.Range(ctx, "general", ids[2], 3)
	if err != nil || len(msgs) != 3 || msgs[0].ID != ids[3] || msgs[0].Text != "m3" || msgs[0].User != "alice" || msgs[0].ClientID != "c3" {
		t.Fatalf("Range after %s = %+v, %v", ids[2], msgs, err)
	}
	rev, err := s.RevRange(ctx, "general", ids[5], 2)
	if err != nil || len(rev) != 2 || rev[0].ID != ids[4] || rev[1].ID != ids[3] {
		t.Fatalf("RevRange before %s = %+v, %v", ids[5], rev, err)
	}
	last, err := s.Last(ctx, "general")
	if err != nil || !ids[9].Less(last) {
		t.Fatalf("Last = %s, %v", last, err)
	}
	if last, _ := s.Last(ctx, "empty"); !last.IsZero() {
		t.Fatalf("empty room Last = %s", last)
	}
	if _, err := s.Get(ctx, "general", engine.StreamPos{Ms: 1}); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
}

func TestSendRateLimit(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	s := mustStore(t, srv, func(o *store.Options) { o.SendRate, o.SendBurst = 1, 3 })
	now := time.Now()
	for i := range 3 {
		if _, err := appendWait(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: "x", Now: now}); err != nil {
			t.Fatalf("send %d within burst: %v", i, err)
		}
	}
	_, err := appendWait(t, s, engine.AppendRequest{Room: "tech", User: "alice", Text: "x", Now: now})
	var re *engine.RetryError
	if !errors.As(err, &re) || re.After <= 0 || re.After > 1000 {
		t.Fatalf("4th send: %v, want rate limited with retry ≤ 1s", err)
	}
	if _, err := appendWait(t, s, engine.AppendRequest{Room: "general", User: "bob", Text: "x", Now: now}); err != nil {
		t.Fatalf("another user is not limited: %v", err)
	}
	if _, err := appendWait(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: "x", Now: now.Add(1100 * time.Millisecond)}); err != nil {
		t.Fatalf("after refill: %v", err)
	}
}

func TestTrimmedReportsRetention(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	s := mustStore(t, srv, func(o *store.Options) { o.MaxLen = 10; o.SendRate = 1e6; o.SendBurst = 1e6 })
	ctx := context.Background()
	var ids []engine.StreamPos
	for i := range 300 {
		r, err := appendWait(t, s, engine.AppendRequest{Room: "tech", User: "alice", Text: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.Message.ID)
	}
	trimmed, err := s.Trimmed(ctx, "tech")
	if err != nil {
		t.Fatal(err)
	}
	if trimmed.IsZero() || !trimmed.Less(ids[299]) {
		t.Fatalf("trimmed = %s after 300 sends with MAXLEN ~10", trimmed)
	}
	// Exact: trimmed is the message just before the first one kept.
	first, _ := s.Range(ctx, "tech", engine.StreamPos{}, 1)
	var before engine.StreamPos
	for i, id := range ids {
		if id == first[0].ID {
			before = ids[i-1]
		}
	}
	if trimmed != before {
		t.Fatalf("trimmed = %s, want %s (the last message removed)", trimmed, before)
	}
	if kept, _ := s.Range(ctx, "tech", engine.StreamPos{}, 1000); len(kept) < 10 || len(kept) > 11 {
		t.Fatalf("kept %d messages with MAXLEN 10", len(kept))
	}
	if tr, _ := s.Trimmed(ctx, "never"); !tr.IsZero() {
		t.Fatalf("missing stream trimmed = %s", tr)
	}
}

func TestTailReadAndWake(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	s := mustStore(t, srv, nil)
	ctx := context.Background()
	rooms := []string{"general"}
	shard := s.Shard("general")
	// A read with nothing new returns promptly when woken.
	done := make(chan error, 1)
	go func() {
		_, err := s.Read(ctx, shard, rooms, []engine.StreamPos{{Ms: 1 << 62}}, 10*time.Second)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := s.Wake(ctx, shard); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("woke after %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wake did not end the blocked read")
	}
	// A read returns messages appended after its position.
	r, _ := appendWait(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: "hi"})
	msgs, err := s.Read(ctx, shard, rooms, []engine.StreamPos{{}}, time.Second)
	if err != nil || len(msgs) != 1 || msgs[0].ID != r.Message.ID || msgs[0].Room != "general" {
		t.Fatalf("Read = %+v, %v", msgs, err)
	}
}

func TestPresenceAcrossInstancesWithExpiry(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	a := mustStore(t, srv, func(o *store.Options) { o.Instance = "a" })
	b := mustStore(t, srv, func(o *store.Options) { o.Instance = "b" })
	ctx := context.Background()
	if err := b.Subscribe(ctx, "general"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	online, err := a.Join(ctx, "general", []string{"alice"}, time.Now().Add(300*time.Millisecond))
	if err != nil || len(online) != 1 || online[0] != "alice" {
		t.Fatalf("join: %v %v", online, err)
	}
	expect := func(state string) {
		t.Helper()
		select {
		case ev := <-b.Events():
			if ev.Kind != engine.EventPresence || ev.User != "alice" || ev.State != state || ev.Room != "general" {
				t.Fatalf("event %+v, want alice %s", ev, state)
			}
		case <-time.After(3 * time.Second):
			t.Fatalf("no presence %s event", state)
		}
	}
	expect("online")
	// The same user from instance b: no second online event.
	if _, err := b.Join(ctx, "general", []string{"alice"}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := b.Leave(ctx, "general", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	// Instance a "dies": its entry expires and the next call reaps it.
	time.Sleep(400 * time.Millisecond)
	online, err = b.Online(ctx, "general")
	if err != nil || len(online) != 0 {
		t.Fatalf("online after expiry: %v %v", online, err)
	}
	expect("offline")
}

func TestUnreadAndReadPositions(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	s := mustStore(t, srv, nil)
	ctx := context.Background()
	room := engine.DirectRoom("alice", "bob")
	kinds := []engine.Kind{engine.KindDirect, engine.KindChannel}
	if err := s.MarkJoined(ctx, "general", "bob"); err != nil {
		t.Fatal(err)
	}
	var last engine.StreamPos
	for i := range 5 {
		r, err := appendWait(t, s, engine.AppendRequest{Room: room, User: "alice", Text: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		appendWait(t, s, engine.AppendRequest{Room: "general", User: "alice", Text: fmt.Sprint(i)})
		if i == 1 {
			last = r.Message.ID
		}
	}
	sums, err := s.Summaries(ctx, "bob", []string{room, "general"}, kinds)
	if err != nil || sums[0].Unread != 5 || sums[1].Unread != 5 {
		t.Fatalf("bob summaries = %+v, %v", sums, err)
	}
	if sums, _ := s.Summaries(ctx, "alice", []string{room}, kinds[:1]); sums[0].Unread != 0 {
		t.Fatalf("alice's own messages count as unread: %+v", sums)
	}
	if err := s.Subscribe(ctx, room); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	pos, moved, err := s.MarkRead(ctx, room, "bob", last, true)
	if err != nil || !moved || pos != last {
		t.Fatalf("MarkRead = %s %v %v", pos, moved, err)
	}
	select {
	case ev := <-s.Events():
		if ev.Kind != engine.EventRead || ev.User != "bob" || ev.ID != last {
			t.Fatalf("read event %+v", ev)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no read event")
	}
	if _, moved, _ := s.MarkRead(ctx, room, "bob", engine.StreamPos{Ms: 1}, true); moved {
		t.Fatal("read position moved backwards")
	}
	sums, _ = s.Summaries(ctx, "bob", []string{room}, kinds[:1])
	if sums[0].Unread != 3 || sums[0].LastID.IsZero() {
		t.Fatalf("after read: %+v", sums)
	}
	// Sending moves the sender's position to the message sent.
	appendWait(t, s, engine.AppendRequest{Room: room, User: "bob", Text: "reply"})
	if sums, _ := s.Summaries(ctx, "bob", []string{room}, kinds[:1]); sums[0].Unread != 0 {
		t.Fatalf("after bob sends: %+v", sums)
	}
}

func TestUsersUniqueUnderRace(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	s1 := mustStore(t, srv, nil)
	s2 := mustStore(t, srv, nil)
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
	if err := s1.CreateChannel(ctx, "general"); !errors.Is(err, engine.ErrExists) {
		t.Fatalf("create general: %v", err)
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

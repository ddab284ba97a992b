package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/storetest"
)

// oldTag is the earlier layout's prefix of a room: FNV-1a over 16 shards.
func oldTag(room string) string {
	h := uint32(2166136261)
	for i := 0; i < len(room); i++ {
		h ^= uint32(room[i])
		h *= 16777619
	}
	return fmt.Sprintf("chat:{s%d}:", h%16)
}

// TestMigrateEarlierLayout writes data as the earlier build did (16 key
// shards, a channel set, direct rooms listed per user), checks that a
// store refuses to start on it, migrates it, and reads it back: history,
// counters and unread counts, the channel list, direct rooms; then
// appends continue the counters.
func TestMigrateEarlierLayout(t *testing.T) {
	t.Parallel()
	rdb := storetest.Redis(t)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(rdb.SAdd(ctx, "chat:channels", "general", "support", "tech", "old-room").Err())
	var ids []string
	for i := range 5 {
		id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: oldTag("old-room") + "r:old-room",
			Values: []any{"u", "alice", "t", fmt.Sprint("old ", i), "n", fmt.Sprint(i + 1)}}).Result()
		must(err)
		ids = append(ids, id)
	}
	must(rdb.HSet(ctx, oldTag("old-room")+"m:old-room", "n", "5", "last", ids[4]).Err())
	must(rdb.HSet(ctx, oldTag("old-room")+"rd:old-room", "bob", ids[1]+" 2").Err())
	dm := "dm:alice:bob"
	id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: oldTag(dm) + "r:" + dm, Values: []any{"u", "bob", "t", "psst", "n", "1"}}).Result()
	must(err)
	must(rdb.HSet(ctx, oldTag(dm)+"m:"+dm, "n", "1", "last", id).Err())
	must(rdb.SAdd(ctx, "chat:user:alice:dms", dm).Err())
	must(rdb.SAdd(ctx, "chat:user:bob:dms", dm).Err())
	must(rdb.HSet(ctx, "chat:user:alice", "hash", "x").Err())
	must(rdb.HSet(ctx, "chat:user:bob", "hash", "x").Err())

	s, err := store.New(store.Options{Client: rdb})
	must(err)
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Init(ctx); !errors.Is(err, store.ErrOldLayout) {
		t.Fatalf("Init on the earlier layout: %v, want ErrOldLayout", err)
	}
	var lines []string
	must(s.Migrate(ctx, func(l string) { lines = append(lines, l) }))
	must(s.Migrate(ctx, func(l string) { lines = append(lines, l) })) // idempotent
	t.Log(lines)
	must(s.Init(ctx))

	_, page, err := s.History(ctx, "old-room", "bob", nil, nil, 10)
	if err != nil || len(page.Messages) != 5 || page.Messages[0].Text != "old 0" || page.Messages[4].ID.String() != ids[4] {
		t.Fatalf("history after migration: %+v %v", page, err)
	}
	sums, _, err := s.Rooms(ctx, "bob", "", 50)
	must(err)
	got := map[string]engine.RoomSummary{}
	for _, r := range sums {
		got[r.Name] = r
	}
	if r := got["old-room"]; r.Kind != engine.KindChannel || r.Unread != 3 || r.LastID.String() != ids[4] {
		t.Fatalf("old-room summary %+v", r)
	}
	if r := got[dm]; r.Kind != engine.KindDirect || r.Unread != 1 {
		t.Fatalf("direct room summary %+v (rooms %v)", r, sums)
	}
	// New entries continue the counters.
	m := mustAppend(t, s, engine.AppendRequest{Room: "old-room", User: "alice", Text: "new"})
	if m.N != 6 || m.Q != 6 {
		t.Fatalf("first new message n=%d q=%d, want 6", m.N, m.Q)
	}
	ents, err := s.Range(ctx, "old-room", engine.StreamPos{}, 10)
	if err != nil || len(ents) != 6 || ents[0].Q != 1 || ents[5].Q != 6 {
		t.Fatalf("entries %+v %v", ents, err)
	}
}

package store_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/storetest"
)

// BenchmarkAppend measures the send path against Redis: append.lua
// (idempotency, rate bucket, the write re-check, XADD, counters, the
// notice) with many sends in flight, as the workers batch them.
func BenchmarkAppend(b *testing.B) {
	s := mustStore(b, storetest.Redis(b), func(o *store.Options) { o.SendRate, o.SendBurst = 1e9, 1e9 })
	for i := range 64 {
		if err := s.CreateRoom(context.Background(), engine.RoomSpec{Name: fmt.Sprint("room", i)}); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16) // many clients with sends in flight
	b.RunParallel(func(pb *testing.PB) {
		done := make(chan error, 1)
		for pb.Next() {
			i := n.Add(1)
			s.Append(engine.AppendRequest{Kind: engine.EntryMessage, Room: fmt.Sprint("room", i%64), User: fmt.Sprint("u", i%200),
				Text: "hello", ClientID: fmt.Sprint(i)},
				func(_ engine.AppendResult, err error) { done <- err })
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sends/s")
}

// BenchmarkHistoryPage compares a history page of 50 messages in their
// current state (history.lua with the access reads, one round trip: a
// third of the messages edited, a third with reactions, every fifth with
// replies, and an event between each two messages) with the plain
// XREVRANGE of 50 entries that the page read before messages had state.
func BenchmarkHistoryPage(b *testing.B) {
	rdb := storetest.Redis(b)
	s := mustStore(b, rdb, func(o *store.Options) { o.SendRate, o.SendBurst, o.MaxLen = 1e9, 1e9, 1e6 })
	ctx := context.Background()
	for i := range 200 {
		m := mustAppend(b, s, engine.AppendRequest{Room: "general", User: "alice", Text: fmt.Sprintf("message %d with a few words of text", i)})
		switch i % 3 {
		case 0:
			mustAppend(b, s, engine.AppendRequest{Kind: engine.EntryEdit, Room: "general", User: "alice", Target: m.ID, Text: "edited text"})
		case 1:
			mustAppend(b, s, engine.AppendRequest{Kind: engine.EntryReaction, Room: "general", User: "bob", Target: m.ID, Emoji: "👍", On: true})
		default:
			mustAppend(b, s, engine.AppendRequest{Kind: engine.EntryReaction, Room: "general", User: "carol", Target: m.ID, Emoji: "🎉", On: true})
		}
		if i%5 == 0 {
			mustAppend(b, s, engine.AppendRequest{Room: "general", User: "bob", Text: "a reply", ReplyTo: m.ID})
		}
	}
	b.Run("current-state", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, page, err := s.History(ctx, "general", "alice", nil, nil, 50); err != nil || len(page.Messages) != 50 {
				b.Fatal(len(page.Messages), err)
			}
		}
	})
	b.Run("plain-xrevrange", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if xs, err := rdb.XRevRangeN(ctx, "chat:{general}:s", "+", "-", 50).Result(); err != nil || len(xs) != 50 {
				b.Fatal(err)
			}
		}
	})
}

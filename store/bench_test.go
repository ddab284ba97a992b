package store_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

// BenchmarkAppendMembership: what the membership re-check costs a send.
// The check (banned? muted? a member of a private room?) runs inside
// append.lua, so it adds no round trip; this measures the Redis time it
// adds. One store appends, in alternating blocks, to a public channel
// (no ban, mute or member keys to read) and to a private channel of
// 1,000 members with bans and mutes in place, as a member.
func BenchmarkAppendMembership(b *testing.B) {
	srv := storetest.Start(b, storetest.Options{})
	srv.RequireSingle(b)
	rdb := srv.Client(b)
	ctx := context.Background()
	s := mustStore(b, rdb, func(o *store.Options) { o.SendRate, o.SendBurst = 1e9, 1e9 })
	members := make([]string, 1000)
	for i := range members {
		members[i] = fmt.Sprint("member", i)
	}
	if err := s.CreateRoom(ctx, engine.RoomSpec{Name: "open"}); err != nil {
		b.Fatal(err)
	}
	if err := s.CreateRoom(ctx, engine.RoomSpec{Name: "closed", Private: true, Owner: "owner", Members: members}); err != nil {
		b.Fatal(err)
	}
	for i := range 20 {
		if err := s.Ban(ctx, "closed", fmt.Sprint("banned", i), "owner", time.Now().Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
		if err := s.Mute(ctx, "closed", fmt.Sprint("member", 900+i), time.Now().Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	text := "a message of ordinary length, like this one"
	compareAppends(b, rdb, [2]string{"public", "private"}, [2]func(){
		func() { mustAppend(b, s, engine.AppendRequest{Room: "open", User: "member7", Text: text}) },
		func() { mustAppend(b, s, engine.AppendRequest{Room: "closed", User: "member7", Text: text}) },
	})
}

// compareAppends runs ops[0] and ops[1] (one append each, waited for) in
// alternating blocks, so that both see the same machine, and reports the
// median wall time per append of each, the Redis time per append script
// call (INFO commandstats, where a script's extra work is not hidden by
// the round trip) and the median ratio of the two Redis times.
func compareAppends(b *testing.B, rdb redis.UniversalClient, names [2]string, ops [2]func()) {
	ctx := context.Background()
	evalUsec := func() float64 {
		info, err := rdb.Info(ctx, "commandstats").Result()
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			if rest, ok := strings.CutPrefix(line, "cmdstat_evalsha:"); ok {
				for _, f := range strings.Split(strings.TrimSpace(rest), ",") {
					if v, ok := strings.CutPrefix(f, "usec="); ok {
						us, _ := strconv.ParseFloat(v, 64)
						return us
					}
				}
			}
		}
		return 0
	}
	const block = 200
	var wall, redisUs [2][]float64
	for b.Loop() {
		for i, op := range ops {
			u0, t0 := evalUsec(), time.Now()
			for range block {
				op()
			}
			wall[i] = append(wall[i], float64(time.Since(t0).Microseconds())/block)
			redisUs[i] = append(redisUs[i], (evalUsec()-u0)/block)
		}
	}
	med := func(xs []float64) float64 {
		xs = slices.Clone(xs)
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	ratios := make([]float64, len(wall[0]))
	for i := range ratios {
		ratios[i] = redisUs[1][i] / redisUs[0][i]
	}
	for i, name := range names {
		b.ReportMetric(med(wall[i]), name+"-µs/append")
		b.ReportMetric(med(redisUs[i]), name+"-redis-µs/append")
	}
	b.ReportMetric(med(ratios), "redis-"+names[1]+"/"+names[0])
}

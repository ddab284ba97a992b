package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redstream/chat/engine"
)

// BenchmarkFanOut1000 measures one entry delivered to 1,000 local
// sessions of one room: the notice handed to the engine as the feed
// would → encode once → 1,000 queue pushes → 1,000 writers draining, per
// entry. Redis is not on this path (a notice carries the entry).
func BenchmarkFanOut1000(b *testing.B) {
	const sessions = 1000
	w := newWorld(b, "alice")
	e := w.instance(nil, func(o *engine.Options) { o.QueueLen = 1 << 16; o.MaxSessionsPerUser = sessions })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	counts := make([]int, sessions)
	for i := range sessions {
		s, err := e.Connect("alice", "t", time.Now())
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		if err := s.Join(ctx, "general", nil, func(engine.JoinInfo) {}); err != nil {
			b.Fatal(err)
		}
		wg.Go(func() { write(ctx, s, func(buf []engine.Frame) { counts[i] += len(buf) }) })
	}
	st, err := e.st.JoinState(ctx, "general", "alice", engine.JoinOptions{})
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	b.ReportAllocs()
	b.ResetTimer()
	pos, q := st.LastEntry, st.Q
	for range b.N {
		q++
		pos = engine.StreamPos{Ms: max(pos.Ms, uint64(time.Now().UnixMilli())), Seq: pos.Seq + 1}
		e.Notice(&engine.Entry{Kind: engine.EntryMessage, ID: pos, Room: "general", User: "alice", Text: "hello everyone", Q: q, N: q})
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*sessions)/b.Elapsed().Seconds(), "deliveries/s")
	cancel()
	wg.Wait()
}

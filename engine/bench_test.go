package engine_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/engine/enginetest"
)

// BenchmarkFanOut1000 measures one message delivered to 1,000 local
// sessions of one room (tail → encode once → 1,000 queue pushes → 1,000
// writers draining), per message.
func BenchmarkFanOut1000(b *testing.B) {
	const sessions = 1000
	mem := enginetest.New()
	mem.AddUser("alice")
	e := mustEngine(b, mem, func(o *engine.Options) { o.QueueLen = 1 << 16; o.MaxSessionsPerUser = sessions })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	counts := make([]int, sessions)
	for i := range sessions {
		s, err := e.Connect("alice", "t")
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		if err := s.Join(ctx, "general", nil, func(engine.JoinInfo) {}); err != nil {
			b.Fatal(err)
		}
		wg.Go(func() { write(ctx, s, func(buf []engine.Frame) { counts[i] += len(buf) }) })
	}
	time.Sleep(50 * time.Millisecond)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		mem.Append(engine.AppendRequest{Room: "general", User: "alice", Text: "hello everyone", Now: time.Now()},
			func(engine.AppendResult, error) {})
	}
	want := b.N
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		st := e.Counters()
		if st.Delivered >= int64(want*sessions) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	b.ReportMetric(float64(b.N*sessions)/b.Elapsed().Seconds(), "deliveries/s")
}

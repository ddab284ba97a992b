package store_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/storetest"
)

// BenchmarkAppend measures the send path against Redis: the send script
// (idempotency, rate bucket, XADD, counters) with many sends in flight, as
// the automatic pipelining batches them.
func BenchmarkAppend(b *testing.B) {
	srv := storetest.Start(b, storetest.Options{})
	s := mustStore(b, srv, func(o *store.Options) { o.SendRate, o.SendBurst = 1e9, 1e9 })
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16) // many clients with sends in flight
	b.RunParallel(func(pb *testing.PB) {
		done := make(chan error, 1)
		for pb.Next() {
			i := n.Add(1)
			s.Append(engine.AppendRequest{Room: fmt.Sprint("room", i%64), User: fmt.Sprint("u", i%200),
				Text: "hello", ClientID: fmt.Sprint(i), Now: time.Now()},
				func(_ engine.AppendResult, err error) { done <- err })
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sends/s")
}

package main

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
)

func TestParallel(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	var calls atomic.Int64
	seen := make([]atomic.Bool, 100)
	if err := parallel(context.Background(), 100, 7, log, "x", func(_ context.Context, i int) error {
		calls.Add(1)
		if seen[i].Swap(true) {
			return errors.New("called twice")
		}
		return nil
	}); err != nil || calls.Load() != 100 {
		t.Fatalf("err %v after %d calls, want nil after 100", err, calls.Load())
	}
	// The first error is returned and the calls not yet made are not made.
	boom := errors.New("boom")
	calls.Store(0)
	err := parallel(context.Background(), 1000, 1, log, "x", func(ctx context.Context, i int) error {
		calls.Add(1)
		if i == 3 {
			return boom
		}
		return ctx.Err()
	})
	if !errors.Is(err, boom) || calls.Load() != 4 {
		t.Fatalf("err %v after %d calls, want boom after 4", err, calls.Load())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := parallel(ctx, 10, 2, log, "x", func(context.Context, int) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled ctx gave %v", err)
	}
	if err := parallel(context.Background(), 0, 4, log, "x", func(context.Context, int) error { return boom }); err != nil {
		t.Fatalf("nothing to do gave %v", err)
	}
}

package storetest_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redstream/chat/store/storetest"
)

// fakeTB records what CheckFor reports instead of failing the test, so
// that its failure can be checked. Fatalf ends the calling goroutine, as
// testing.T's does.
type fakeTB struct {
	testing.TB
	mu     sync.Mutex
	failed string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.failed = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func runCheck(tb *fakeTB, total time.Duration, f func() error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		storetest.CheckFor(tb, total, f)
	}()
	<-done
}

func TestCheckForSucceedsOnceTrue(t *testing.T) {
	t.Parallel()
	calls := 0
	start := time.Now()
	tb := &fakeTB{TB: t}
	runCheck(tb, 5*time.Second, func() error {
		calls++
		if calls < 5 {
			return errors.New("not yet")
		}
		return nil
	})
	if tb.failed != "" || calls != 5 {
		t.Fatalf("failed %q after %d calls, want success at the 5th", tb.failed, calls)
	}
	// 1+2+4+8 ms of waits: well under the 20 ms a slow poller would take
	// per call.
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("5 calls took %v", took)
	}
}

func TestCheckForFailsWithTheLastError(t *testing.T) {
	t.Parallel()
	calls := 0
	start := time.Now()
	tb := &fakeTB{TB: t}
	runCheck(tb, 200*time.Millisecond, func() error {
		calls++
		return fmt.Errorf("attempt %d", calls)
	})
	took := time.Since(start)
	if want := fmt.Sprintf("attempt %d", calls); !strings.Contains(tb.failed, want) || !strings.Contains(tb.failed, "200ms") {
		t.Fatalf("failed with %q, want the last error %q and the time", tb.failed, want)
	}
	if took < 200*time.Millisecond || took > 5*time.Second {
		t.Errorf("gave up after %v, want just over 200ms", took)
	}
	// About 200ms/20ms polls plus the quick first ones.
	if calls < 5 || calls > 40 {
		t.Errorf("%d calls in 200ms", calls)
	}
}

func TestCheckForSlowCheckWaitsAsLongAsItTakes(t *testing.T) {
	t.Parallel()
	calls := 0
	tb := &fakeTB{TB: t}
	runCheck(tb, 300*time.Millisecond, func() error {
		calls++
		time.Sleep(50 * time.Millisecond)
		return errors.New("slow")
	})
	// Each call takes 50 ms and is followed by a 50 ms wait: about 4 in
	// 300 ms, not the 6 of back-to-back calls.
	if tb.failed == "" || calls > 5 {
		t.Errorf("%d calls of 50 ms in 300 ms (failed %q)", calls, tb.failed)
	}
}

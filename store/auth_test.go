package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/storetest"
)

// TestAttemptCountsBeforeTheCheck: 100 parallel attempts against a limit
// of 10, from two instances, let exactly 10 through; one key at its limit
// stops the attempt for every key and counts nothing; Release gives an
// attempt back; a window ends.
func TestAttemptCountsBeforeTheCheck(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	s1, s2 := mustStore(t, srv.Client(t), nil), mustStore(t, srv.Client(t), nil)
	ctx := context.Background()

	var mu sync.Mutex
	passed := 0
	var wg sync.WaitGroup
	for i := range 100 {
		s := []*store.Store{s1, s2}[i%2]
		wg.Go(func() {
			ok, _, err := s.Attempt(ctx, []string{"p:user", "p:addr"}, []int{10, 1000}, []time.Duration{time.Minute, time.Minute})
			if err != nil {
				t.Error(err)
			}
			if ok {
				mu.Lock()
				passed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if passed != 10 {
		t.Fatalf("%d of 100 parallel attempts passed a limit of 10", passed)
	}

	// The user's key is full: an attempt counts nothing, not even under
	// the address key, and says how long to wait.
	ok, retry, err := s1.Attempt(ctx, []string{"p:addr", "p:user"}, []int{11, 10}, []time.Duration{time.Minute, time.Minute})
	if err != nil || ok || retry <= 50*time.Second || retry > time.Minute {
		t.Fatalf("attempt at the limit: ok %v retry %v err %v", ok, retry, err)
	}
	if ok, _, _ := s1.Attempt(ctx, []string{"p:addr"}, []int{11}, []time.Duration{time.Minute}); !ok {
		t.Fatal("the refused attempt was counted under the address key")
	}

	// Release makes room for one more, and never goes below zero.
	if err := s2.Release(ctx, "p:user"); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false} {
		if ok, _, _ := s1.Attempt(ctx, []string{"p:user"}, []int{10}, []time.Duration{time.Minute}); ok != want {
			t.Fatalf("attempt %d after a release: %v, want %v", i+1, ok, want)
		}
	}
	for range 3 {
		if err := s1.Release(ctx, "p:empty"); err != nil {
			t.Fatal(err)
		}
	}
	if ok, _, _ := s1.Attempt(ctx, []string{"p:empty"}, []int{1}, []time.Duration{time.Minute}); !ok {
		t.Fatal("a fresh key refused an attempt")
	}
	if ok, _, _ := s1.Attempt(ctx, []string{"p:empty"}, []int{1}, []time.Duration{time.Minute}); ok {
		t.Fatal("releases of an empty key went below zero")
	}

	// A window ends: its key passes again.
	if ok, _, _ := s1.Attempt(ctx, []string{"p:short"}, []int{1}, []time.Duration{200 * time.Millisecond}); !ok {
		t.Fatal("first attempt refused")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, retry, err := s1.Attempt(ctx, []string{"p:short"}, []int{1}, []time.Duration{200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if retry > 200*time.Millisecond || time.Now().After(deadline) {
			t.Fatalf("window of 200ms: retry %v", retry)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, err := s1.Attempt(ctx, []string{"a", "b"}, []int{1}, []time.Duration{time.Second}); err == nil {
		t.Fatal("mismatched limits accepted")
	}
}

// TestRevokeUser: RevokeUser ends every token of the user issued up to
// and in its second, not later ones and not other users' tokens; Revoke
// still ends single tokens.
func TestRevokeUser(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	s := mustStore(t, srv.Client(t), nil)
	ctx := context.Background()
	at := time.Unix(1_800_000_000, 0).Add(300 * time.Millisecond)
	if err := s.RevokeUser(ctx, "alice", at); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, "one", time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		jti, user string
		issued    time.Time
		want      bool
	}{
		{"a1", "alice", at.Add(-time.Hour), true},
		{"a2", "alice", at.Truncate(time.Second), true},
		{"a3", "alice", at.Truncate(time.Second).Add(time.Second), false},
		{"b1", "bob", at.Add(-time.Hour), false},
		{"one", "bob", at.Add(time.Hour), true},
	} {
		got, err := s.Revoked(ctx, tc.jti, tc.user, tc.issued)
		if err != nil || got != tc.want {
			t.Errorf("Revoked(%s, %s, %v) = %v %v, want %v", tc.jti, tc.user, tc.issued, got, err, tc.want)
		}
	}
}

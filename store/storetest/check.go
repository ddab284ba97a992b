package storetest

import (
	"testing"
	"time"
)

// CheckFor calls f until it returns nil and fails tb with f's last error
// once total has passed. It is the one polling helper of every package's
// tests (engine, store, transport, cmd), here because they all import
// storetest already.
//
// It retries after 1 ms, doubling the wait up to 20 ms; a check that
// itself takes longer (a subprocess, an HTTP round trip) waits as long as
// it took, so that polling takes at most half a core.
func CheckFor(tb testing.TB, total time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(total)
	wait := time.Millisecond
	for {
		began := time.Now()
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("not so after %v: %v", total, err)
		}
		time.Sleep(max(wait, time.Since(began)))
		wait = min(2*wait, maxCheckWait)
	}
}

// maxCheckWait is the longest wait of CheckFor between two cheap checks.
const maxCheckWait = 20 * time.Millisecond

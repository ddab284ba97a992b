package transport_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/redstream/chat/store/storetest"
	"github.com/redstream/chat/transport"
)

// closedCodes returns the codes of the "connection closed" log lines.
func (b *syncBuffer) closedCodes(tb testing.TB) []int {
	var codes []int
	for _, line := range bytes.Split([]byte(b.String()), []byte("\n")) {
		var rec struct {
			Msg  string `json:"msg"`
			Code int    `json:"code"`
		}
		if len(line) == 0 {
			continue
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			tb.Fatalf("log line %q: %v", line, err)
		}
		if rec.Msg == "connection closed" {
			codes = append(codes, rec.Code)
		}
	}
	return codes
}

// The log and the metric name the close code the client saw: 1000 for a
// client that said goodbye, 1001 for sockets the server closed going
// away, 1006 only for a peer that vanished without a close frame.
func TestCloseCodeIsTheOneTheClientSaw(t *testing.T) {
	var logs syncBuffer
	var mu sync.Mutex
	var observed []int
	in := startInstance(t, storetest.Start(t, storetest.Options{}), instanceOpts{Transport: func(o *transport.Options) {
		o.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		o.Observe.Closed = func(code int) {
			mu.Lock()
			observed = append(observed, code)
			mu.Unlock()
		}
	}})
	tok := mustUser(t, in.URL, "closer")
	waitCodes := func(want []int) {
		t.Helper()
		storetest.CheckFor(t, 5*time.Second, func() error {
			mu.Lock()
			got := slices.Clone(observed)
			mu.Unlock()
			slices.Sort(got)
			logged := logs.closedCodes(t)
			slices.Sort(logged)
			if !slices.Equal(got, want) || !slices.Equal(logged, want) {
				return fmt.Errorf("closes observed %v, logged %v, want %v", got, logged, want)
			}
			return nil
		})
	}

	bye := dial(t, in.URL, tok, "")
	bye.join("general", "")
	if err := bye.c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("client close: %v", err)
	}
	waitCodes([]int{1000})

	gone := dial(t, in.URL, tok, "")
	gone.join("general", "")
	_ = gone.c.CloseNow() // no close frame: the peer vanished
	waitCodes([]int{1000, 1006})

	away := dial(t, in.URL, tok, "")
	away.join("general", "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	in.Server.Drain(ctx, 0)
	if code := away.waitClosed(5 * time.Second); code != websocket.StatusGoingAway {
		t.Fatalf("client saw %d on shutdown, want 1001", code)
	}
	waitCodes([]int{1000, 1001, 1006})
}

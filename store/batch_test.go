package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/storetest"
)

// TestAppendBatchesKeepEachSend fires many sends without waiting, so the
// workers store them in batches of one script call each, and checks that
// every send still means what it would alone: per-room order and
// counters, retries answered with the first send's id, one user's rate
// limit, and each sender's read position at its own newest message.
func TestAppendBatchesKeepEachSend(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	const burst = 40
	s := mustStore(t, srv, func(o *store.Options) { o.SendRate, o.SendBurst = 1, burst })
	ctx := context.Background()
	rooms := []string{"general", "tech", engine.DirectRoom("alice", "bob")}
	users := []string{"alice", "bob", "carol"}
	kinds := []engine.Kind{engine.KindChannel, engine.KindChannel, engine.KindDirect}

	type sent struct {
		req  engine.AppendRequest
		res  engine.AppendResult
		err  error
		done chan struct{}
	}
	now := time.Now() // one instant: the bucket never refills during the test
	var all []*sent
	send := func(req engine.AppendRequest) {
		x := &sent{req: req, done: make(chan struct{})}
		all = append(all, x)
		s.Append(req, func(r engine.AppendResult, err error) { x.res, x.err = r, err; close(x.done) })
	}
	for i := range 300 {
		u := users[i%3]
		room := rooms[(i/3)%3]
		if room == rooms[2] && u == "carol" {
			room = "general"
		}
		req := engine.AppendRequest{Room: room, User: u, Text: fmt.Sprint("m", i), ClientID: fmt.Sprint("c", i), Now: now}
		send(req)
		if i%10 == 0 { // a quick retry, most likely in the same batch
			send(req)
		}
	}
	for _, x := range all {
		select {
		case <-x.done:
		case <-time.After(10 * time.Second):
			t.Fatal("a send never completed")
		}
	}

	first := map[string]*sent{} // user|client_id -> first send
	stored := map[string][]*sent{}
	okPer := map[string]int{}
	for _, x := range all {
		key := x.req.User + "|" + x.req.ClientID
		f := first[key]
		if f == nil {
			first[key] = x
		}
		var re *engine.RetryError
		switch {
		case f != nil && f.err == nil:
			if x.err != nil || !x.res.Duplicate || x.res.Message.ID != f.res.Message.ID {
				t.Fatalf("retry of %s: %+v %v, want duplicate of %s", key, x.res, x.err, f.res.Message.ID)
			}
		case errors.As(x.err, &re):
			if re.After <= 0 || re.After > 1000 {
				t.Fatalf("%s limited with retry after %d ms, want 1..1000", key, re.After)
			}
		case x.err != nil:
			t.Fatalf("send %s: %v", key, x.err)
		default:
			if x.res.Duplicate {
				t.Fatalf("first send %s reported as duplicate", key)
			}
			okPer[x.req.User]++
			stored[x.req.Room] = append(stored[x.req.Room], x)
		}
	}
	for _, u := range users {
		if okPer[u] != burst {
			t.Fatalf("%s stored %d, want exactly the burst %d", u, okPer[u], burst)
		}
	}

	for i, room := range rooms {
		msgs, err := s.Range(ctx, room, engine.StreamPos{}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		want := stored[room]
		if len(msgs) != len(want) {
			t.Fatalf("%s holds %d messages, %d were acked", room, len(msgs), len(want))
		}
		lastBy := map[string]engine.StreamPos{}
		for j, m := range msgs {
			w := want[j].res.Message
			if m.ID != w.ID || m.Text != want[j].req.Text || m.Seq != uint64(j+1) || w.Seq != m.Seq {
				t.Fatalf("%s #%d: stored %+v, acked %+v (want seq %d in send order)", room, j, m, w, j+1)
			}
			lastBy[m.User] = m.ID
		}
		for _, u := range users {
			sums, err := s.Summaries(ctx, u, []string{room}, kinds[i:i+1])
			if err != nil {
				t.Fatal(err)
			}
			if _, sentHere := lastBy[u]; sentHere {
				// Read position at their own newest message: unread counts
				// only what others sent after it.
				var after int64
				for _, m := range msgs {
					if lastBy[u].Less(m.ID) {
						after++
					}
				}
				if sums[0].Unread != after {
					t.Fatalf("%s in %s: unread %d, want %d (messages after their own last)", u, room, sums[0].Unread, after)
				}
			}
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/storetest"
)

// Issue 14, the findings about rooms, presence, reads, typing,
// idempotency and replays: each attacks a running chatd on real Redis.

// commandCalls returns how often Redis ran each command (INFO commandstats).
func commandCalls(tb testing.TB, rdb *redis.Client) map[string]int64 {
	tb.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				out[strings.TrimPrefix(name, "cmdstat_")], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return out
}

// rawSocket is a WebSocket client that counts what it receives.
type rawSocket struct {
	c     *websocket.Conn
	err   error // why reading ended, once done is closed
	bytes atomic.Int64
	mu    sync.Mutex
	got   []msg
	done  chan struct{}
}

func rawDial(tb testing.TB, base, token string) *rawSocket {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws?token="+token, nil)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(1 << 20)
	r := &rawSocket{c: c, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				r.err = err
				return
			}
			r.bytes.Add(int64(len(data)))
			var m msg
			if json.Unmarshal(data, &m) == nil {
				r.mu.Lock()
				r.got = append(r.got, m)
				r.mu.Unlock()
			}
		}
	}()
	tb.Cleanup(func() { c.CloseNow(); <-r.done })
	return r
}

func (r *rawSocket) write(tb testing.TB, v any) {
	tb.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.c.Write(ctx, websocket.MessageText, b); err != nil {
		select {
		case <-r.done:
		case <-time.After(2 * time.Second):
		}
		tb.Fatalf("write: %v (reading ended with: %v)", err, r.err)
	}
}

// sync sends a ping and waits for its pong: a flood paced this way never
// outruns the server's writer (a client that does is closed as too slow).
func (r *rawSocket) sync(tb testing.TB, ref string) {
	tb.Helper()
	r.write(tb, map[string]any{"type": "ping", "ref": ref})
	storetest.CheckFor(tb, 10*time.Second, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		for i := len(r.got) - 1; i >= 0 && i >= len(r.got)-400; i-- {
			if r.got[i].Type == "pong" && r.got[i].Ref == ref {
				return nil
			}
		}
		return fmt.Errorf("no pong %s", ref)
	})
}

func (r *rawSocket) count(f func(msg) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.got {
		if f(m) {
			n++
		}
	}
	return n
}

func (r *rawSocket) waitFor(tb testing.TB, what string, f func(msg) bool) {
	tb.Helper()
	storetest.CheckFor(tb, 10*time.Second, func() error {
		if r.count(f) == 0 {
			return fmt.Errorf("no %s", what)
		}
		return nil
	})
}

// TestAbuseChannelsBoundedAndPaged, finding 2: one user creates at most
// CHAT_MAX_CHANNELS_PER_USER channels (then 429 rate_limited), and with
// thousands of channels GET /api/rooms answers one small page fast, and
// paging walks them all.
func TestAbuseChannelsBoundedAndPaged(t *testing.T) {
	d, _ := abuseChatd(t, nil)
	c := abuseClient(t, "127.0.0.1", 64)
	mallory := signToken(t, abuseSecret, "mallory", time.Now())
	mustRegister(t, c, d.URL, "mallory", "mallory-password")
	as := abuseParallel(200, func(i int) abuseAnswer {
		return abuseDo(c, "POST", d.URL+"/api/rooms", mallory, map[string]string{"name": fmt.Sprintf("spam-%03d", i)})
	})
	if got := tally(as); got[201] != 50 || got[429] != 150 {
		t.Fatalf("200 creates by one user: %v, want 50×201 and 150×429", got)
	}
	for _, a := range as {
		if a.Status == 429 && a.Code != "rate_limited" {
			t.Fatalf("429 with code %q", a.Code)
		}
	}
	// 60 more users make 3,000 more channels.
	var wg sync.WaitGroup
	for u := range 60 {
		name := fmt.Sprintf("maker%02d", u)
		mustRegister(t, c, d.URL, name, "maker-password-long")
		tok := signToken(t, abuseSecret, name, time.Now())
		wg.Go(func() {
			for i := range 50 {
				if a := abuseDo(c, "POST", d.URL+"/api/rooms", tok, map[string]string{"name": fmt.Sprintf("%s-%02d", name, i)}); a.Status != 201 {
					t.Errorf("create: %d %s", a.Status, a.Body)
					return
				}
			}
		})
	}
	wg.Wait()
	var took []time.Duration
	var size int
	for range 5 {
		a := abuseDo(c, "GET", d.URL+"/api/rooms", mallory, nil)
		if a.Status != 200 {
			t.Fatalf("rooms: %d", a.Status)
		}
		took, size = append(took, a.Took), len(a.Body)
	}
	var page struct {
		Rooms   []struct{ Name string }
		HasMore bool `json:"has_more"`
	}
	a := abuseDo(c, "GET", d.URL+"/api/rooms", mallory, nil)
	_ = json.Unmarshal([]byte(a.Body), &page)
	if len(page.Rooms) != 200 || !page.HasMore || size > 64<<10 {
		t.Fatalf("first page: %d rooms, has_more %v, %d bytes", len(page.Rooms), page.HasMore, size)
	}
	if m := median(took); m > 200*time.Millisecond {
		t.Errorf("GET /api/rooms with 3,053 channels: median %v", m)
	}
	total, after := 0, ""
	for {
		a := abuseDo(c, "GET", d.URL+"/api/rooms?limit=500&after="+after, mallory, nil)
		page.Rooms, page.HasMore = nil, false
		_ = json.Unmarshal([]byte(a.Body), &page)
		total += len(page.Rooms)
		if !page.HasMore {
			break
		}
		after = page.Rooms[len(page.Rooms)-1].Name
	}
	if total != 3+50+3000 {
		t.Fatalf("paging found %d rooms, want %d", total, 3053)
	}
	t.Logf("3,053 channels: first page %d bytes, median %v; 200 creates by one user: 50 made, 150 refused", size, median(took))
}

// TestAbusePresenceFlood, finding 4: one socket joining and leaving a
// room in a loop reaches another member as at most about one presence
// frame a second, the last state is right, and delivery in the room stays
// quick meanwhile.
func TestAbusePresenceFlood(t *testing.T) {
	d, _ := abuseChatd(t, map[string]string{"CHAT_FRAME_RATE": "100000", "CHAT_FRAME_BURST": "100000"})
	c := abuseClient(t, "127.0.0.1", 8)
	mustRegister(t, c, d.URL, "victim", "victim-password")
	mustRegister(t, c, d.URL, "mallory", "mallory-password")
	victim := rawDial(t, d.URL, signToken(t, abuseSecret, "victim", time.Now()))
	victim.write(t, map[string]any{"type": "join", "room": "general"})
	victim.waitFor(t, "joined", func(m msg) bool { return m.Type == "joined" })
	mal := rawDial(t, d.URL, signToken(t, abuseSecret, "mallory", time.Now()))
	start := time.Now()
	for i := 0; time.Since(start) < 3*time.Second; i++ {
		mal.write(t, map[string]any{"type": "join", "room": "general"})
		mal.write(t, map[string]any{"type": "leave", "room": "general"})
		if i%50 == 49 {
			mal.sync(t, fmt.Sprint("p", i))
		}
	}
	joins := mal.count(func(m msg) bool { return m.Type == "joined" })
	mal.write(t, map[string]any{"type": "join", "room": "general", "ref": "last"})
	// Delivery stays quick: the victim's own message comes back at once.
	sent := time.Now()
	victim.write(t, map[string]any{"type": "send", "room": "general", "text": "still here", "client_id": "v1"})
	victim.waitFor(t, "own message", func(m msg) bool { return m.Type == "message" && m.ClientID == "v1" })
	echo := time.Since(sent)
	time.Sleep(1500 * time.Millisecond)
	var last msg
	n := 0
	victim.mu.Lock()
	for _, m := range victim.got {
		if m.Type == "presence" && m.User == "mallory" {
			n++
			last = m
		}
	}
	victim.mu.Unlock()
	if joins < 50 {
		t.Fatalf("mallory joined only %d times; the flood did not happen", joins)
	}
	if n > 6 {
		t.Errorf("%d presence frames for %d joins in 3 s, want at most about one a second", n, joins)
	}
	if last.State != "online" {
		t.Errorf("last presence of mallory %+v, want online (she ended joined)", last)
	}
	if echo > 500*time.Millisecond {
		t.Errorf("a message took %v to come back during the flood", echo)
	}
	t.Logf("%d joins and leaves in 3 s reached the victim as %d presence frames; a send came back in %v", joins, n, echo.Round(time.Millisecond))
}

// TestAbuseFrameFlood, finding 4 with the default limits: a socket that
// floods frames other than sends (typing here) gets rate_limited past
// the per-socket bucket (CHAT_FRAME_RATE 50/s, bursts of 200), those
// frames are dropped, the socket stays open, its sends still go through,
// and once the bucket refills its frames pass again.
func TestAbuseFrameFlood(t *testing.T) {
	d, _ := abuseChatd(t, nil)
	c := abuseClient(t, "127.0.0.1", 8)
	mustRegister(t, c, d.URL, "mallory", "mallory-password")
	mal := rawDial(t, d.URL, signToken(t, abuseSecret, "mallory", time.Now()))
	const flood = 1000
	start := time.Now()
	for i := range flood {
		mal.write(t, map[string]any{"type": "typing", "room": "general", "ref": fmt.Sprint("t", i)})
	}
	took := time.Since(start)
	mal.write(t, map[string]any{"type": "send", "room": "general", "text": "sends are not frames", "client_id": "m1", "ref": "send"})
	mal.waitFor(t, "the send's ack", func(m msg) bool { return m.Type == "ack" && m.Ref == "send" })
	limited := mal.count(func(m msg) bool { return m.Type == "error" && m.Code == "rate_limited" })
	// At most the burst and what refilled while the flood was written.
	passed := flood - limited
	if most := 200 + int(50*took.Seconds()) + 5; passed > most || passed < 150 {
		t.Errorf("%d of %d typing frames passed in %v, want the burst of 200 and 50/s (at most %d)", passed, flood, took, most)
	}
	time.Sleep(1100 * time.Millisecond) // about 50 tokens back
	mal.write(t, map[string]any{"type": "ping", "ref": "after"})
	mal.waitFor(t, "pong after the refill", func(m msg) bool { return m.Type == "pong" && m.Ref == "after" })
	t.Logf("%d typing frames in %v: %d rate_limited, %d passed; a send meanwhile acked; a ping 1.1 s later answered", flood, took.Round(time.Millisecond), limited, passed)
}

// TestAbuseReadsAndTypingCheap, finding 4: read frames cost at most one
// write a second per user and room, and typing to a room that does not
// exist costs one lookup per couple of seconds, however many frames come.
func TestAbuseReadsAndTypingCheap(t *testing.T) {
	d, srv := abuseChatd(t, map[string]string{"CHAT_FRAME_RATE": "100000", "CHAT_FRAME_BURST": "100000"})
	srv.RequireReal(t) // it counts Redis calls with INFO commandstats
	rdb := srv.Client(t)
	c := abuseClient(t, "127.0.0.1", 8)
	mustRegister(t, c, d.URL, "mallory", "mallory-password")
	tok := signToken(t, abuseSecret, "mallory", time.Now())
	post := abuseDo(c, "POST", d.URL+"/api/rooms/general/messages", tok, map[string]string{"text": "read me"})
	var m struct{ Message msg }
	_ = json.Unmarshal([]byte(post.Body), &m)
	s := rawDial(t, d.URL, tok)
	before := commandCalls(t, rdb)
	start := time.Now()
	for i := 0; time.Since(start) < 2*time.Second; i++ {
		s.write(t, map[string]any{"type": "read", "room": "general", "id": m.Message.ID})
		s.write(t, map[string]any{"type": "typing", "room": "no-such-room"})
		if i%100 == 99 {
			s.sync(t, fmt.Sprint("p", i))
		}
	}
	s.write(t, map[string]any{"type": "ping", "ref": "end"})
	s.waitFor(t, "pong", func(m msg) bool { return m.Type == "pong" })
	time.Sleep(1200 * time.Millisecond) // the last coalesced read is written
	after := commandCalls(t, rdb)
	frames := s.count(func(m msg) bool { return m.Type == "error" && m.Code == "not_found" })
	evals := after["evalsha"] - before["evalsha"]
	lookups := after["hmget"] - before["hmget"]
	t.Logf("2 s of read and typing frames (%d typing refusals): %d script calls, %d room lookups", frames, evals, lookups)
	if frames < 100 {
		t.Fatalf("only %d typing frames answered; the attack did not happen", frames)
	}
	if evals > 6 {
		t.Errorf("%d script calls for 2 s of read frames, want at most a few (one write a second)", evals)
	}
	if lookups > 6 {
		t.Errorf("%d lookups for typing to an unknown room, want a few (cached)", lookups)
	}
}

// TestAbuseIdempotencyKeysDoNotCollide, finding 8: channel "dm", user
// aaron, client_id "zed:zed:c1" must not be mistaken for direct room
// dm:aaron:zed, user zed, client_id "c1".
func TestAbuseIdempotencyKeysDoNotCollide(t *testing.T) {
	d, _ := abuseChatd(t, nil)
	c := abuseClient(t, "127.0.0.1", 8)
	mustRegister(t, c, d.URL, "aaron", "aaron-password")
	mustRegister(t, c, d.URL, "zed", "zed-password-x")
	aaron, zed := signToken(t, abuseSecret, "aaron", time.Now()), signToken(t, abuseSecret, "zed", time.Now())
	if a := abuseDo(c, "POST", d.URL+"/api/rooms", aaron, map[string]string{"name": "dm"}); a.Status != 201 {
		t.Fatalf("create dm: %d", a.Status)
	}
	first := abuseDo(c, "POST", d.URL+"/api/rooms/dm/messages", aaron, map[string]string{"text": "in channel dm", "client_id": "zed:zed:c1"})
	second := abuseDo(c, "POST", d.URL+"/api/rooms/dm:aaron:zed/messages", zed, map[string]string{"text": "in the direct room", "client_id": "c1"})
	if first.Status != 201 || second.Status != 201 {
		t.Fatalf("posts: %d %d", first.Status, second.Status)
	}
	var page struct{ Messages []msg }
	a := abuseDo(c, "GET", d.URL+"/api/rooms/dm:aaron:zed/messages", zed, nil)
	_ = json.Unmarshal([]byte(a.Body), &page)
	if len(page.Messages) != 1 || page.Messages[0].Text != "in the direct room" || page.Messages[0].User != "zed" {
		t.Fatalf("dm:aaron:zed holds %+v, want zed's message", page.Messages)
	}
}

// TestAbuseReplayBounded, finding 12: a user who joins a 10,000-message
// room with since "0" again and again from 20 sockets pulls what its
// replay budget allows (5,000 entries a second, bursts of 10,000, for all
// of the user's sockets on an instance), not gigabytes; a single join
// with since still gets everything.
func TestAbuseReplayBounded(t *testing.T) {
	d, srv := abuseChatd(t, map[string]string{"CHAT_FRAME_RATE": "100000", "CHAT_FRAME_BURST": "100000"})
	st, err := store.New(store.Options{Client: srv.Client(t), MaxLen: 100000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	const total = 10000
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < total; i += 8 {
				done := make(chan error, 1)
				st.Append(engine.AppendRequest{Kind: engine.EntryMessage, Room: "general", User: "filler", Text: fmt.Sprintf("filler message number %05d with some text", i), RateExempt: true},
					func(_ engine.AppendResult, err error) { done <- err })
				if err := <-done; err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	c := abuseClient(t, "127.0.0.1", 8)
	mustRegister(t, c, d.URL, "mallory", "mallory-password")
	tok := signToken(t, abuseSecret, "mallory", time.Now())
	var socks []*rawSocket
	for range 20 {
		socks = append(socks, rawDial(t, d.URL, tok))
	}
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		for _, s := range socks {
			s.write(t, map[string]any{"type": "join", "room": "general", "since": "0"})
		}
		time.Sleep(50 * time.Millisecond)
	}
	var bytes, entries int64
	for _, s := range socks {
		bytes += s.bytes.Load()
		entries += int64(s.count(func(m msg) bool { return m.Type == "message" }))
	}
	elapsed := time.Since(start)
	t.Logf("20 sockets joining with since 0 for %v: %d messages, %.1f MB", elapsed.Round(time.Millisecond), entries, float64(bytes)/1e6)
	// 10,000 burst + 5,000 a second, plus a page or two in flight per socket.
	if limit := int64(10000 + 5000*elapsed.Seconds() + 20*2*200); entries > limit {
		t.Errorf("%d entries replayed in %v, want at most %d", entries, elapsed, limit)
	}
	// Another user's single join with since gets everything.
	mustRegister(t, c, d.URL, "honest", "honest-password")
	h := rawDial(t, d.URL, signToken(t, abuseSecret, "honest", time.Now()))
	h.write(t, map[string]any{"type": "join", "room": "general", "since": "0"})
	storetest.CheckFor(t, 30*time.Second, func() error {
		if n := h.count(func(m msg) bool { return m.Type == "message" }); n != total {
			return fmt.Errorf("honest replay: %d of %d", n, total)
		}
		return nil
	})
}

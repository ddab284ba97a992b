package transport_test

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/storetest"
	"github.com/redstream/chat/transport"
)

// Webhooks through real instances on real Redis, to a receiver in the
// test.

var hookSecret = []byte("webhook-secret-webhook-secret-0123456789")

var allHookKinds = map[engine.EntryKind]bool{engine.EntryMessage: true, engine.EntryEdit: true,
	engine.EntryDelete: true, engine.EntryReaction: true, engine.EntryMember: true}

// hookCall is one request the receiver got.
type hookCall struct {
	Delivery string // X-Chat-Delivery
	At       time.Time
	Raw      []byte
	Body     map[string]any
	Status   int    // what the receiver answered
	Problem  string // a header or signature that is wrong, "" if none
}

// receiver is a webhook receiver on loopback. answer decides each
// request's status (nil: 200); n counts earlier requests of the same
// delivery.
type receiver struct {
	t      testing.TB
	URL    string
	mu     sync.Mutex
	calls  []hookCall
	answer func(call hookCall, n int) int
}

func startReceiver(t testing.TB, answer func(call hookCall, n int) int) *receiver {
	t.Helper()
	rc := &receiver{t: t, answer: answer}
	srv := httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(srv.Close)
	rc.URL = srv.URL + "/hook"
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	call := hookCall{Delivery: r.Header.Get("X-Chat-Delivery"), At: time.Now(), Raw: raw}
	ts := r.Header.Get("X-Chat-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	want := transport.WebhookSignature(hookSecret, ts, raw)
	switch {
	case r.Method != http.MethodPost || r.URL.Path != "/hook":
		call.Problem = "request " + r.Method + " " + r.URL.Path
	case r.Header.Get("Content-Type") != "application/json":
		call.Problem = "Content-Type " + r.Header.Get("Content-Type")
	case err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute:
		call.Problem = "X-Chat-Timestamp " + ts
	case !hmac.Equal([]byte(r.Header.Get("X-Chat-Signature")), []byte(want)):
		call.Problem = "X-Chat-Signature " + r.Header.Get("X-Chat-Signature") + ", want " + want
	case json.Unmarshal(raw, &call.Body) != nil:
		call.Problem = "body is not a JSON object: " + string(raw)
	case call.Body["delivery"] != call.Delivery || call.Delivery == "":
		call.Problem = fmt.Sprintf("delivery %v in the body, %q in the header", call.Body["delivery"], call.Delivery)
	}
	rc.mu.Lock()
	n := 0
	for _, c := range rc.calls {
		if c.Delivery == call.Delivery {
			n++
		}
	}
	rc.mu.Unlock()
	call.Status = http.StatusOK
	if rc.answer != nil {
		call.Status = rc.answer(call, n) // it may block: not under mu
	}
	rc.mu.Lock()
	rc.calls = append(rc.calls, call)
	rc.mu.Unlock()
	if call.Status == http.StatusFound {
		w.Header().Set("Location", "/elsewhere")
	}
	w.WriteHeader(call.Status)
}

// acked returns the calls answered 2xx, in arrival order.
func (rc *receiver) acked() []hookCall {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []hookCall
	for _, c := range rc.calls {
		if c.Status < 300 {
			out = append(out, c)
		}
	}
	return out
}

func (rc *receiver) all() []hookCall {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.calls)
}

// problems fails the test for every request with a wrong header,
// signature or body.
func (rc *receiver) problems() {
	rc.t.Helper()
	for _, c := range rc.all() {
		if c.Problem != "" {
			rc.t.Errorf("webhook %s: %s", c.Delivery, c.Problem)
		}
	}
}

// waitAcked waits until every delivery of want was acknowledged.
func (rc *receiver) waitAcked(within time.Duration, want []string) {
	rc.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := map[string]bool{}
		for _, c := range rc.acked() {
			got[c.Delivery] = true
		}
		missing := 0
		for _, d := range want {
			if !got[d] {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			rc.t.Fatalf("%d of %d events not delivered within %v", missing, len(want), within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hookCounts counts what a deliverer observed.
type hookCounts struct {
	mu       sync.Mutex
	outcomes map[string]int
	retries  int
	dropped  map[string]int
}

func (h *hookCounts) observer() transport.WebhookObserver {
	return transport.WebhookObserver{
		Attempt: func(outcome string, _ time.Duration) {
			h.mu.Lock()
			h.outcomes[outcome]++
			h.mu.Unlock()
		},
		Retry: func() { h.mu.Lock(); h.retries++; h.mu.Unlock() },
		Dropped: func(reason string, n int) {
			h.mu.Lock()
			h.dropped[reason] += n
			h.mu.Unlock()
		},
	}
}

func (h *hookCounts) get() (map[string]int, int, map[string]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return maps(h.outcomes), h.retries, maps(h.dropped)
}

func maps(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// hookInstance is an instance whose store records every kind for
// webhooks, with a deliverer to url.
type hookInstance struct {
	*instance
	hooks  *transport.Webhooks
	counts *hookCounts
}

func startHookInstance(t testing.TB, srv *storetest.Server, url string, mod func(*transport.WebhookOptions), smod func(*store.Options)) *hookInstance {
	t.Helper()
	in := startInstance(t, srv, instanceOpts{Store: func(o *store.Options) {
		o.Webhooks = allHookKinds
		if smod != nil {
			smod(o)
		}
	}})
	h := &hookInstance{instance: in, counts: &hookCounts{outcomes: map[string]int{}, dropped: map[string]int{}}}
	if url != "" {
		h.hooks = startHooks(t, in, url, h.counts, mod)
	}
	return h
}

func startHooks(t testing.TB, in *instance, url string, counts *hookCounts, mod func(*transport.WebhookOptions)) *transport.Webhooks {
	t.Helper()
	opts := transport.WebhookOptions{Outbox: in.Store, URL: url, Secret: hookSecret, Kinds: allHookKinds,
		Poll: 20 * time.Millisecond, Observe: counts.observer(), Logger: tlog(t)}
	if mod != nil {
		mod(&opts)
	}
	w, err := transport.NewWebhooks(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// streamDeliveries returns the delivery IDs of room's entries, in stream
// order, as the webhook names them.
func streamDeliveries(t testing.TB, st *store.Store, room string) []string {
	t.Helper()
	ents, err := st.Range(context.Background(), room, engine.StreamPos{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(ents))
	for i, e := range ents {
		out[i] = room + "/" + e.ID.String()
	}
	return out
}

// checkOnceInOrder fails unless the acknowledged deliveries of room are
// want, each once, in order.
func checkOnceInOrder(t testing.TB, rc *receiver, room string, want []string) {
	t.Helper()
	var got []string
	for _, c := range rc.acked() {
		if strings.HasPrefix(c.Delivery, room+"/") {
			got = append(got, c.Delivery)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("room %s: delivered %d events %v\nwant %d in stream order %v", room, len(got), got, len(want), want)
	}
}

// TestWebhookEveryEvent: every event type, from two instances that both
// deliver, is POSTed once with a valid signature and the frame's fields,
// in stream order per room.
func TestWebhookEveryEvent(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	rc := startReceiver(t, nil)
	a := startHookInstance(t, srv, rc.URL, nil, nil)
	b := startHookInstance(t, srv, rc.URL, nil, nil)
	alice := mustUser(t, a.URL, "alice")
	bob := mustUser(t, b.URL, "bob")
	wa, wb := dial(t, a.URL, alice, ""), dial(t, b.URL, bob, "")
	ack := func(w *wsClient, v map[string]any, ref string) string {
		t.Helper()
		f := w.reply(v, ref)
		if f.Type != "ack" {
			t.Fatalf("%v: %+v", v, f)
		}
		return f.ID
	}
	m1 := ack(wa, map[string]any{"type": "send", "room": "general", "text": "hi @bob", "client_id": "c1"}, "1")
	m2 := ack(wb, map[string]any{"type": "send", "room": "general", "text": "hello", "reply_to": m1}, "2")
	ack(wa, map[string]any{"type": "edit", "room": "general", "id": m1, "text": "hi @bob!"}, "3")
	ack(wb, map[string]any{"type": "react", "room": "general", "id": m1, "emoji": "👍"}, "4")
	ack(wb, map[string]any{"type": "react", "room": "general", "id": m1, "emoji": "👍", "on": false}, "5")
	ack(wb, map[string]any{"type": "delete", "room": "general", "id": m2}, "6")
	// Member changes of a private channel.
	for _, c := range []struct {
		method, path string
		body         any
		status       int
	}{
		{"POST", "/api/rooms", map[string]any{"name": "team", "private": true}, 201},
		{"POST", "/api/rooms/team/members", map[string]string{"user": "bob"}, 201},
		{"DELETE", "/api/rooms/team/members/bob", nil, 204},
		{"POST", "/api/rooms/team/members", map[string]string{"user": "bob"}, 201},
		{"POST", "/api/rooms/team/bans", map[string]any{"user": "bob"}, 201},
	} {
		if st := api(t, a.URL, c.method, c.path, alice, c.body, nil); st != c.status {
			t.Fatalf("%s %s: %d", c.method, c.path, st)
		}
	}
	general, team := streamDeliveries(t, a.Store, "general"), streamDeliveries(t, a.Store, "team")
	if len(general) != 6 || len(team) != 5 {
		t.Fatalf("streams hold %d and %d entries, want 6 and 5", len(general), len(team))
	}
	rc.waitAcked(10*time.Second, append(slices.Clone(general), team...))
	time.Sleep(300 * time.Millisecond) // time for a duplicate to show
	checkOnceInOrder(t, rc, "general", general)
	checkOnceInOrder(t, rc, "team", team)
	rc.problems()

	// Each payload is the event's frame plus its delivery ID.
	ents, _ := a.Store.Range(context.Background(), "general", engine.StreamPos{}, 100)
	members, _ := a.Store.Range(context.Background(), "team", engine.StreamPos{}, 100)
	bodies := map[string]map[string]any{}
	for _, c := range rc.acked() {
		bodies[c.Delivery] = c.Body
	}
	for _, e := range append(ents, members...) {
		d := e.Room + "/" + e.ID.String()
		var want map[string]any
		if e.Kind == engine.EntryMember {
			want = map[string]any{"type": "member", "room": e.Room, "user": e.Member, "change": e.Change, "by": e.User}
		} else {
			_ = json.Unmarshal(transport.Encoder{}.Entry(&e), &want)
		}
		want["delivery"] = d
		if got, _ := json.Marshal(bodies[d]); string(got) != string(mustJSON(want)) {
			t.Errorf("payload of %s:\n got %s\nwant %s", d, got, mustJSON(want))
		}
	}
	wantTypes := []string{"message", "message", "edit", "reaction", "reaction", "delete"}
	for i, e := range ents {
		if typ := bodies["general/"+e.ID.String()]["type"]; typ != wantTypes[i] {
			t.Errorf("event %d of general: type %v, want %s", i, typ, wantTypes[i])
		}
	}
	var changes []string
	for _, e := range members {
		changes = append(changes, fmt.Sprint(bodies["team/"+e.ID.String()]["user"], " ", bodies["team/"+e.ID.String()]["change"]))
	}
	if want := []string{"alice added", "bob added", "bob removed", "bob added", "bob banned"}; !slices.Equal(changes, want) {
		t.Errorf("member events %v, want %v", changes, want)
	}
	storetest.CheckFor(t, 2*time.Second, func() error { // counted once the deliverer read the answer
		out, retries, dropped := a.counts.get()
		outB, _, _ := b.counts.get()
		if out["delivered"]+outB["delivered"] != 11 || retries != 0 || len(dropped) != 0 {
			return fmt.Errorf("observed %v and %v, %d retries, dropped %v; want 11 delivered in all", out, outB, retries, dropped)
		}
		return nil
	})
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// TestWebhookOrderAndThroughput: many rooms written through two instances
// at once, each event POSTed once and in stream order per room; the rate
// reached with a fast receiver is logged.
func TestWebhookOrderAndThroughput(t *testing.T) {
	t.Parallel()
	const rooms, perRoom = 20, 100
	srv := storetest.Start(t, storetest.Options{})
	rc := startReceiver(t, nil)
	// The deliverers start after the writes, so that what is timed is
	// delivery alone.
	a := startHookInstance(t, srv, "", nil, nil)
	b := startHookInstance(t, srv, "", nil, nil)
	ctx := context.Background()
	var names []string
	for i := range rooms {
		names = append(names, fmt.Sprintf("room-%02d", i))
		if err := a.Engine.CreateRoom(ctx, "", engine.RoomSpec{Name: names[i]}, true); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i, name := range names {
		for _, in := range []*hookInstance{a, b} {
			wg.Go(func() {
				for j := range perRoom / 2 {
					if _, err := in.Engine.Post(ctx, "writer", engine.Write{Kind: engine.EntryMessage, Room: name, Text: fmt.Sprint(i, "-", j), RateExempt: true}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	var want []string
	for _, n := range names {
		want = append(want, streamDeliveries(t, a.Store, n)...)
	}
	began := time.Now()
	a.hooks = startHooks(t, a.instance, rc.URL, a.counts, nil)
	b.hooks = startHooks(t, b.instance, rc.URL, b.counts, nil)
	rc.waitAcked(60*time.Second, want)
	took := time.Since(began)
	time.Sleep(300 * time.Millisecond)
	for _, n := range names {
		checkOnceInOrder(t, rc, n, streamDeliveries(t, a.Store, n))
	}
	rc.problems()
	t.Logf("delivered %d events of %d rooms in %v by two instances: %.0f events/s", len(want), rooms, took.Round(time.Millisecond), float64(len(want))/took.Seconds())
}

// TestWebhookRetries: a 500 and a redirect are failures, retried after 1 s
// and then 2 s (redirects not followed); the room's next event waits for
// the first's acknowledgement, while another room's does not.
func TestWebhookRetries(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	var elsewhere atomic.Int64
	rc := startReceiver(t, func(c hookCall, n int) int {
		if c.Body["text"] == "first" {
			switch n {
			case 0:
				return http.StatusInternalServerError
			case 1:
				return http.StatusFound
			}
		}
		return http.StatusOK
	})
	redirected := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer redirected.Close()
	a := startHookInstance(t, srv, rc.URL, nil, nil)
	ctx := context.Background()
	post := func(room, text string) string {
		t.Helper()
		r, err := a.Engine.Post(ctx, "writer", engine.Write{Kind: engine.EntryMessage, Room: room, Text: text, RateExempt: true})
		if err != nil {
			t.Fatal(err)
		}
		return room + "/" + r.Entry.ID.String()
	}
	first := post("general", "first")
	second := post("general", "second")
	time.Sleep(200 * time.Millisecond) // the first attempt failed by now
	other := post("support", "other room")
	rc.waitAcked(5*time.Second, []string{other})
	if got := rc.acked(); len(got) != 1 {
		t.Fatalf("acknowledged before the first event's retries: %v", got)
	}
	rc.waitAcked(10*time.Second, []string{first, second})
	var tries []time.Time
	for _, c := range rc.all() {
		if c.Delivery == first {
			tries = append(tries, c.At)
		}
	}
	if len(tries) != 3 {
		t.Fatalf("%d attempts of the first event, want 3", len(tries))
	}
	if d := tries[1].Sub(tries[0]); d < 950*time.Millisecond || d > 1800*time.Millisecond {
		t.Errorf("first retry after %v, want about 1s", d)
	}
	if d := tries[2].Sub(tries[1]); d < 1900*time.Millisecond || d > 3*time.Second {
		t.Errorf("second retry after %v, want about 2s", d)
	}
	checkOnceInOrder(t, rc, "general", []string{first, second})
	if elsewhere.Load() != 0 {
		t.Error("the redirect was followed")
	}
	// The deliverer counts an outcome once it has read the answer, a
	// moment after the receiver recorded it.
	storetest.CheckFor(t, 2*time.Second, func() error {
		out, retries, _ := a.counts.get()
		if out["failed"] != 1 || out["redirect"] != 1 || out["delivered"] != 3 || retries != 2 {
			return fmt.Errorf("outcomes %v, %d retries; want failed 1, redirect 1, delivered 3, 2 retries", out, retries)
		}
		return nil
	})
	rc.problems()
}

// TestWebhookMaxAge: an event refused for longer than MaxAge is dropped
// and counted, and delivery goes on with the next one.
func TestWebhookMaxAge(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	var healed atomic.Bool
	rc := startReceiver(t, func(hookCall, int) int {
		if healed.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	a := startHookInstance(t, srv, rc.URL, func(o *transport.WebhookOptions) {
		o.MaxAge, o.FirstRetry = 1500*time.Millisecond, 200*time.Millisecond
	}, nil)
	ctx := context.Background()
	r, err := a.Engine.Post(ctx, "writer", engine.Write{Kind: engine.EntryMessage, Room: "general", Text: "doomed", RateExempt: true})
	if err != nil {
		t.Fatal(err)
	}
	storetest.CheckFor(t, 5*time.Second, func() error {
		if _, _, d := a.counts.get(); d["max_age"] != 1 {
			return fmt.Errorf("dropped %v, want max_age 1", d)
		}
		return nil
	})
	if age := time.Since(time.UnixMilli(r.Entry.TS())); age < 1500*time.Millisecond {
		t.Errorf("dropped %v after it was stored, before MaxAge", age)
	}
	n := len(rc.all())
	if n < 3 {
		t.Errorf("%d attempts before the drop, want it retried", n)
	}
	healed.Store(true)
	r2, err := a.Engine.Post(ctx, "writer", engine.Write{Kind: engine.EntryMessage, Room: "general", Text: "fine", RateExempt: true})
	if err != nil {
		t.Fatal(err)
	}
	rc.waitAcked(5*time.Second, []string{"general/" + r2.Entry.ID.String()})
	for _, c := range rc.all()[n:] {
		if c.Body["text"] == "doomed" {
			t.Error("the dropped event was POSTed again")
		}
	}
}

// TestWebhookTrimmed: events that retention removed before they were
// delivered are counted as dropped; the rest are delivered.
func TestWebhookTrimmed(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	rc := startReceiver(t, nil)
	a := startHookInstance(t, srv, "", nil, func(o *store.Options) { o.MaxLen = 20 })
	counts := &hookCounts{outcomes: map[string]int{}, dropped: map[string]int{}}
	ctx := context.Background()
	send := func(text string) string {
		r, err := a.Engine.Post(ctx, "writer", engine.Write{Kind: engine.EntryMessage, Room: "general", Text: text, RateExempt: true})
		if err != nil {
			t.Fatal(err)
		}
		return "general/" + r.Entry.ID.String()
	}
	w := startHooks(t, a.instance, rc.URL, counts, nil)
	rc.waitAcked(5*time.Second, []string{send("before")})
	// The cursor is recorded after the ack: wait until the room is done
	// (off the pending set), so the cursor holds "before"'s counter.
	storetest.CheckFor(t, 5*time.Second, func() error {
		rooms, _, err := a.Store.WebhookPending(ctx, 10)
		if err != nil || len(rooms) > 0 {
			return fmt.Errorf("pending %v %v", rooms, err)
		}
		return nil
	})
	_ = w.Close()
	for i := range 60 {
		send(fmt.Sprint("while off ", i))
	}
	kept := streamDeliveries(t, a.Store, "general")
	startHooks(t, a.instance, rc.URL, counts, nil)
	if len(kept) >= 60 {
		t.Fatalf("retention kept %d of 61 entries", len(kept))
	}
	rc.waitAcked(5*time.Second, kept)
	storetest.CheckFor(t, 2*time.Second, func() error {
		if _, _, d := counts.get(); d["trimmed"] != 60-len(kept) {
			return fmt.Errorf("dropped %v, want trimmed %d (60 stored while off, %d kept)", d, 60-len(kept), len(kept))
		}
		return nil
	})
}

// TestWebhookHandOver: one instance delivers a room at a time; one that
// stops hands its rooms over at once, and the event it had in flight is
// delivered by the other.
func TestWebhookHandOver(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	var hold atomic.Bool
	hold.Store(true)
	release := make(chan struct{})
	rc := startReceiver(t, func(c hookCall, n int) int {
		if hold.Load() {
			<-release
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	a := startHookInstance(t, srv, "", nil, nil)
	countsA := &hookCounts{outcomes: map[string]int{}, dropped: map[string]int{}}
	wa := startHooks(t, a.instance, rc.URL, countsA, func(o *transport.WebhookOptions) { o.Instance = "a" })
	r, err := a.Engine.Post(context.Background(), "writer", engine.Write{Kind: engine.EntryMessage, Room: "general", Text: "held", RateExempt: true})
	if err != nil {
		t.Fatal(err)
	}
	storetest.CheckFor(t, 5*time.Second, func() error {
		if len(rc.all()) == 0 && wa.Delivering() != 1 {
			return fmt.Errorf("a delivers %d rooms and posted nothing", wa.Delivering())
		}
		return nil
	})
	b := startHookInstance(t, srv, "", nil, nil)
	countsB := &hookCounts{outcomes: map[string]int{}, dropped: map[string]int{}}
	wb := startHooks(t, b.instance, rc.URL, countsB, func(o *transport.WebhookOptions) { o.Instance = "b" })
	time.Sleep(200 * time.Millisecond)
	if wb.Delivering() != 0 {
		t.Fatal("b took a room a holds")
	}
	hold.Store(false)
	closed := make(chan struct{})
	go func() { _ = wa.Close(); close(closed) }()
	<-closed // a gave up its request in flight and its lease
	close(release)
	rc.waitAcked(5*time.Second, []string{"general/" + r.Entry.ID.String()})
	storetest.CheckFor(t, 2*time.Second, func() error { // counted once b read the answer
		if out, _, _ := countsB.get(); out["delivered"] != 1 {
			return fmt.Errorf("b's outcomes %v, want the event delivered by b", out)
		}
		return nil
	})
	if out, _, _ := countsA.get(); out["delivered"] != 0 {
		t.Errorf("a's outcomes %v after it stopped", out)
	}
}

// BenchmarkWebhookDelivery: events/s delivered to a receiver that
// answers at once, by one instance, from one room (each event waits for
// the previous one's acknowledgement) and from 20 rooms (delivered side
// by side). Run with -benchtime Nx: N events are stored first, then
// timed from the deliverer's start to the last acknowledgement.
func BenchmarkWebhookDelivery(b *testing.B) {
	for _, rooms := range []int{1, 20} {
		b.Run(fmt.Sprint("rooms=", rooms), func(b *testing.B) {
			srv := storetest.Start(b, storetest.Options{})
			var acked atomic.Int64
			all := make(chan struct{})
			rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				if acked.Add(1) == int64(b.N) {
					close(all)
				}
			}))
			defer rec.Close()
			in := startHookInstance(b, srv, "", nil, nil)
			ctx := context.Background()
			for i := range rooms {
				if err := in.Engine.CreateRoom(ctx, "", engine.RoomSpec{Name: fmt.Sprint("bench-", i)}, true); err != nil {
					b.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			for i := range rooms {
				wg.Go(func() {
					for j := i; j < b.N; j += rooms {
						if _, err := in.Engine.Post(ctx, "writer", engine.Write{Kind: engine.EntryMessage, Room: fmt.Sprint("bench-", i), Text: "x", RateExempt: true}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ResetTimer()
			began := time.Now()
			startHooks(b, in.instance, rec.URL, &hookCounts{outcomes: map[string]int{}, dropped: map[string]int{}}, nil)
			select {
			case <-all:
			case <-time.After(5 * time.Minute):
				b.Fatalf("%d of %d delivered", acked.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/time.Since(began).Seconds(), "events/s")
		})
	}
}

// TestWebhookUnreadableNewestEntry: an entry this build cannot read (a
// kind of a newer version) as a room's newest does not make its deliverer
// spin; the next entry is delivered.
func TestWebhookUnreadableNewestEntry(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	srv.RequireSingle(t)
	rdb := srv.Client(t)
	rc := startReceiver(t, nil)
	a := startHookInstance(t, srv, rc.URL, nil, nil)
	ctx := context.Background()
	r, err := a.Engine.Post(ctx, "writer", engine.Write{Kind: engine.EntryMessage, Room: "general", Text: "before", RateExempt: true})
	if err != nil {
		t.Fatal(err)
	}
	rc.waitAcked(5*time.Second, []string{"general/" + r.Entry.ID.String()})
	// What a newer version's script would store: an entry, the room's
	// newest-entry field, the pending mark.
	id, err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: "chat:{general}:s", Values: []string{"k", "Z", "u", "writer", "q", "2"}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	rdb.HSet(ctx, "chat:{general}:m", "le", id, "q", 2)
	rdb.ZAddNX(ctx, "chat:whq", redis.Z{Score: float64(time.Now().UnixMilli()), Member: "general"})
	xranges := func() int64 {
		info, _ := rdb.Info(ctx, "commandstats").Result()
		for _, line := range strings.Split(info, "\n") {
			if rest, ok := strings.CutPrefix(line, "cmdstat_xrange:calls="); ok {
				n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
				return n
			}
		}
		return 0
	}
	time.Sleep(200 * time.Millisecond)
	before := xranges()
	time.Sleep(2 * time.Second)
	if n := xranges() - before; n > 20 {
		t.Errorf("%d reads of the room in 2 s with an unreadable newest entry, want a few", n)
	}
	r2, err := a.Engine.Post(ctx, "writer", engine.Write{Kind: engine.EntryMessage, Room: "general", Text: "after", RateExempt: true})
	if err != nil {
		t.Fatal(err)
	}
	rc.waitAcked(5*time.Second, []string{"general/" + r2.Entry.ID.String()})
}

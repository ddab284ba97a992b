package main

// Webhooks and the server API through the real chatd: as processes on one
// redis-server with append-only persistence, killed and restarted, and
// in-process with a receiver that never answers.

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redstream/chat/cmd/internal/chatdtest"
	"github.com/redstream/chat/store/storetest"
)

const (
	hookSecret = "webhook-secret-of-the-e2e-tests-0123456789"
	e2eAPIKey  = "e2e-server-api-key-0123456789abcdef-xyz"
)

// hookLog is a webhook receiver: it checks every request's signature and
// records the deliveries it acknowledged, in order. With delay, it takes
// that long over each answer; with hang, it answers nothing until the
// test ends.
type hookLog struct {
	tb    testing.TB
	URL   string
	delay time.Duration
	hang  chan struct{}

	mu       sync.Mutex
	order    []string // acknowledged deliveries, in arrival order
	bad      []string
	requests int
}

func startHookLog(tb testing.TB, delay time.Duration, hang bool) *hookLog {
	tb.Helper()
	h := &hookLog{tb: tb, delay: delay}
	srv := httptest.NewServer(http.HandlerFunc(h.serve))
	tb.Cleanup(srv.Close)
	if hang {
		h.hang = make(chan struct{})
		tb.Cleanup(func() { close(h.hang) }) // before srv.Close, which waits for the handlers
	}
	h.URL = srv.URL + "/events"
	return h
}

func (h *hookLog) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.requests++
	h.mu.Unlock()
	if h.hang != nil {
		select {
		case <-h.hang:
		case <-r.Context().Done():
		}
		return
	}
	time.Sleep(h.delay)
	// The check a receiver makes (the README's example does the same).
	ts := r.Header.Get("X-Chat-Timestamp")
	mac := hmac.New(sha256.New, []byte(hookSecret))
	mac.Write([]byte(ts + "." + string(body)))
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	var ev struct {
		Delivery string `json:"delivery"`
	}
	_ = json.Unmarshal(body, &ev)
	h.mu.Lock()
	defer h.mu.Unlock()
	if !hmac.Equal([]byte(r.Header.Get("X-Chat-Signature")), []byte(want)) || ev.Delivery == "" || ev.Delivery != r.Header.Get("X-Chat-Delivery") {
		h.bad = append(h.bad, string(body))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	h.order = append(h.order, ev.Delivery)
}

func (h *hookLog) delivered() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.order)
}

// checkDeliveries fails unless every one of want (room/id) was delivered,
// and, per room, the first deliveries came in stream order. It returns how
// many were delivered more than once (allowed only after a failure).
func checkDeliveries(tb testing.TB, h *hookLog, want map[string][]string) int {
	tb.Helper()
	got := h.delivered()
	h.mu.Lock()
	for _, b := range h.bad {
		tb.Errorf("a request with a wrong signature or delivery: %s", b)
	}
	h.mu.Unlock()
	seen := map[string]int{}
	first := map[string][]string{}
	for _, d := range got {
		seen[d]++
		if seen[d] == 1 {
			room, _, _ := strings.Cut(d, "/")
			first[room] = append(first[room], d)
		}
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	for room, ids := range want {
		var wantD []string
		for _, id := range ids {
			wantD = append(wantD, room+"/"+id)
		}
		if !slices.Equal(first[room], wantD) {
			missing := 0
			for _, d := range wantD {
				if seen[d] == 0 {
					missing++
				}
			}
			tb.Errorf("room %s: %d of %d events never delivered; first deliveries %d, in stream order: %v",
				room, missing, len(wantD), len(first[room]), slices.Equal(first[room], wantD))
		}
	}
	return dups
}

// waitDelivered waits until every one of want was delivered.
func waitDelivered(tb testing.TB, h *hookLog, want map[string][]string, within time.Duration) {
	tb.Helper()
	storetest.CheckFor(tb, within, func() error {
		got := map[string]bool{}
		for _, d := range h.delivered() {
			got[d] = true
		}
		missing := 0
		for room, ids := range want {
			for _, id := range ids {
				if !got[room+"/"+id] {
					missing++
				}
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d events not delivered yet", missing)
		}
		return nil
	})
}

// metric reads one sample (name with its labels, as exposed) from base's
// /metrics, 0 when absent.
func metric(tb testing.TB, base, sample string) float64 {
	tb.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// restPost stores a message through base and returns its id; a refused
// or lost request is retried (same client_id) on the other bases.
func restPost(tb testing.TB, bases []string, token, room, text, clientID string) string {
	tb.Helper()
	var last error
	for try := 0; try < 40; try++ {
		var res struct {
			Message struct{ ID string } `json:"message"`
		}
		err := postAuth(bases[try%len(bases)]+"/api/rooms/"+room+"/messages", token,
			map[string]string{"text": text, "client_id": clientID}, &res)
		if err == nil {
			return res.Message.ID
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("post %s: %v", clientID, last)
	return ""
}

func postAuth(url, token string, body, out any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+token)
	c := &http.Client{Timeout: 5 * time.Second}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusCreated {
		return fmt.Errorf("%d %s", res.StatusCode, data)
	}
	return json.Unmarshal(data, out)
}

// TestWebhookSurvivesKillAndRestarts: two chatd processes deliver to a
// slow receiver; the instance delivering is killed with SIGKILL mid-way,
// then every instance and Redis (append-only) are restarted. Every event
// is delivered, each room's in stream order.
func TestWebhookSurvivesKillAndRestarts(t *testing.T) {
	srv := storetest.Start(t, storetest.Options{AppendOnly: true})
	srv.RequireReal(t)
	srv.RequireSingle(t)
	hooks := startHookLog(t, 15*time.Millisecond, false)
	env := map[string]string{
		"REDIS_URL": "redis://" + srv.Addr, "CHAT_JWT_SECRET": faultSecret,
		"CHAT_SEND_RATE": "1000", "CHAT_SEND_BURST": "1000", "CHAT_SHUTDOWN_GRACE": "2s", "CHAT_LOG_LEVEL": "info",
		"CHAT_WEBHOOK_URL": hooks.URL, "CHAT_WEBHOOK_SECRET": hookSecret,
		"CHAT_WEBHOOK_EVENTS": "message,edit,delete,reaction,member",
	}
	a, b := mustStartChatdProc(t, "a", env), mustStartChatdProc(t, "b", env)
	bases := []string{a.URL, b.URL}
	token := mustUsers(t, a.URL, "writer")["writer"]
	rooms := []string{"general", "support", "tech"}
	want := map[string][]string{}
	n := 0
	send := func(count int, bases []string) {
		for range count {
			room := rooms[n%len(rooms)]
			want[room] = append(want[room], restPost(t, bases, token, room, fmt.Sprint("event ", n), fmt.Sprint("c", n)))
			n++
		}
	}
	send(120, bases)
	// Kill whichever instance is delivering, while it delivers.
	var victim, survivor *chatdtest.Proc
	storetest.CheckFor(t, 20*time.Second, func() error {
		for _, p := range []*chatdtest.Proc{a, b} {
			if metric(t, p.URL, "chat_webhook_rooms_delivering") > 0 {
				victim = p
				return nil
			}
		}
		return fmt.Errorf("no instance delivers")
	})
	if victim == a {
		survivor = b
	} else {
		survivor = a
	}
	before := len(hooks.delivered())
	victim.Kill(t)
	t.Logf("killed %s while delivering, after %d of %d deliveries", victim.Name, before, n)
	send(60, []string{survivor.URL})
	waitDelivered(t, hooks, want, 60*time.Second)
	dupsAfterKill := checkDeliveries(t, hooks, want)
	victim.Start(t)

	// Every instance and Redis restarted, with events stored meanwhile
	// delivered when they are back.
	send(30, bases)
	a.Stop(t)
	b.Stop(t)
	if err := srv.Proc.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Proc.StartAgain(); err != nil {
		t.Fatal(err)
	}
	a.Start(t)
	send(30, []string{a.URL})
	b.Start(t)
	send(30, bases)
	waitDelivered(t, hooks, want, 60*time.Second)
	time.Sleep(500 * time.Millisecond)
	dups := checkDeliveries(t, hooks, want)
	t.Logf("%d events in %d rooms delivered; %d delivered again after the kill, %d in all after the restarts",
		n, len(rooms), dupsAfterKill, dups)
	for _, p := range []*chatdtest.Proc{a, b} {
		if d := metric(t, p.URL, `chat_webhook_dropped_total{reason="max_age"}`) + metric(t, p.URL, `chat_webhook_dropped_total{reason="trimmed"}`); d != 0 {
			t.Errorf("instance %s dropped %v events", p.Name, d)
		}
	}
}

// TestWebhookHangingReceiver: with a receiver that accepts connections
// and never answers, sends on two instances are acknowledged as fast as
// ever (p99 under 100 ms), /readyz stays 200, and each instance holds at
// most its room limit of requests.
func TestWebhookHangingReceiver(t *testing.T) {
	srv := storetest.Start(t, storetest.Options{})
	hooks := startHookLog(t, 0, true)
	env := func() map[string]string {
		return map[string]string{"REDIS_URL": "redis://" + srv.Addr, "CHAT_SEND_RATE": "1000", "CHAT_SEND_BURST": "1000",
			"CHAT_WEBHOOK_URL": hooks.URL, "CHAT_WEBHOOK_SECRET": hookSecret}
	}
	d1, d2 := mustRunChatd(t, env()), mustRunChatd(t, env())
	ctx := context.Background()
	const rooms, perRoom = 8, 50
	var lat []time.Duration
	for i, base := range []string{d1.URL, d2.URL} {
		tok := user(t, base, fmt.Sprint("sender", i))
		s := connect(t, base, tok)
		for j := range rooms * perRoom / 2 {
			room := fmt.Sprintf("room-%d", j%rooms)
			if j < rooms {
				call(t, "POST", base+"/api/rooms", tok, map[string]string{"name": room}, nil) // 201 or 409
			}
			began := time.Now()
			s.send(map[string]any{"type": "send", "room": room, "text": fmt.Sprint("m", j)})
			s.read("ack")
			lat = append(lat, time.Since(began))
		}
	}
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	t.Logf("%d sends with a hanging webhook receiver: ack p50 %v p99 %v max %v", len(lat), p50, p99, lat[len(lat)-1])
	if p99 > 100*time.Millisecond {
		t.Errorf("send→ack p99 %v with a hanging receiver, want under 100 ms", p99)
	}
	for _, d := range []*chatd{d1, d2} {
		if st := call(t, "GET", d.URL+"/readyz", "", nil, nil); st != http.StatusOK {
			t.Errorf("/readyz %d with only the webhook receiver down", st)
		}
	}
	// The rooms are held (one request each, hanging), none twice.
	storetest.CheckFor(t, 5*time.Second, func() error {
		held := metric(t, d1.URL, "chat_webhook_rooms_delivering") + metric(t, d2.URL, "chat_webhook_rooms_delivering")
		hooks.mu.Lock()
		reqs := hooks.requests
		hooks.mu.Unlock()
		if held != rooms || reqs != rooms {
			return fmt.Errorf("%v rooms held, %d requests hanging; want %d each", held, reqs, rooms)
		}
		return nil
	})
	_ = ctx
}

// TestServerAPIThroughChatd: CHAT_API_KEYS turns the server API on; a
// token it mints works on the user routes and sockets of every instance.
func TestServerAPIThroughChatd(t *testing.T) {
	srv := storetest.Start(t, storetest.Options{})
	env := func(keys string) map[string]string {
		return map[string]string{"REDIS_URL": "redis://" + srv.Addr, "CHAT_API_KEYS": keys}
	}
	on := mustRunChatd(t, env("another-key-that-is-long-enough-0123456789,"+e2eAPIKey))
	off := mustRunChatd(t, env(""))
	if st := call(t, "POST", off.URL+"/api/server/users", e2eAPIKey, map[string]string{"username": "bot-1"}, nil); st != http.StatusNotFound {
		t.Errorf("server API without CHAT_API_KEYS: %d, want 404", st)
	}
	if st := call(t, "POST", on.URL+"/api/server/users", e2eAPIKey, map[string]string{"username": "bot-1"}, nil); st != http.StatusCreated {
		t.Fatalf("create a bot: %d", st)
	}
	var tok struct{ Token string }
	if st := call(t, "POST", on.URL+"/api/server/tokens", e2eAPIKey, map[string]string{"username": "bot-1", "ttl": "10m"}, &tok); st != http.StatusOK {
		t.Fatalf("mint: %d", st)
	}
	s := connect(t, off.URL, tok.Token)
	s.send(map[string]any{"type": "join", "room": "general"})
	s.read("joined")
	if st := call(t, "POST", on.URL+"/api/server/messages", e2eAPIKey, map[string]string{"room": "general", "user": "bot-1", "text": "beep"}, nil); st != http.StatusCreated {
		t.Fatalf("post as the bot: %d", st)
	}
	if m := s.read("message"); m.User != "bot-1" || m.Text != "beep" {
		t.Errorf("live message %+v", m)
	}
	if !strings.Contains(on.logText(), "key=2") || strings.Contains(on.logText(), e2eAPIKey) {
		t.Errorf("chatd's log should name the key by position only:\n%s", on.logText())
	}
}

// TestWebhookBadURLStopsChatd: a receiver URL that is not http(s) stops
// chatd at startup with a message that names the setting.
func TestWebhookBadURLStopsChatd(t *testing.T) {
	for _, u := range []string{"ftp://example.com/hook", "example.com/hook", "http://"} {
		err := Run(context.Background(), nil, func(k string) string {
			return map[string]string{"CHAT_WEBHOOK_URL": u, "CHAT_WEBHOOK_SECRET": hookSecret, "CHAT_ADDR": "127.0.0.1:0"}[k]
		}, io.Discard, io.Discard, nil)
		if err == nil || !strings.Contains(err.Error(), "CHAT_WEBHOOK_URL") {
			t.Errorf("CHAT_WEBHOOK_URL=%s: %v, want an error naming CHAT_WEBHOOK_URL", u, err)
		}
	}
}

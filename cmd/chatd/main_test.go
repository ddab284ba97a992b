package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/redstream/chat/cmd/internal/chatdtest"
	"github.com/redstream/chat/store/storetest"
)

// TestMain checks that no goroutine outlives Run.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"),
	)
}

// chatd is one in-process chatd started with Run.
type chatd struct {
	tb     testing.TB
	env    map[string]string
	URL    string
	cancel context.CancelFunc
	done   chan error
	log    *chatdtest.Log
}

// mustRunChatd starts chatd with env (CHAT_ADDR defaults to a free port),
// stopped by tb.Cleanup.
func mustRunChatd(tb testing.TB, env map[string]string) *chatd {
	tb.Helper()
	if env["CHAT_ADDR"] == "" {
		env["CHAT_ADDR"] = "127.0.0.1:0"
	}
	if env["CHAT_JWT_SECRET"] == "" && env["CHAT_JWT_SECRET_FILE"] == "" && env["REDIS_URL"] != "" {
		env["CHAT_JWT_SECRET"] = "e2e-secret-e2e-secret-e2e-secret-0123"
	}
	d := &chatd{tb: tb, env: env}
	d.start()
	tb.Cleanup(d.Stop)
	return d
}

func (d *chatd) start() {
	d.tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel, d.done, d.log = cancel, make(chan error, 1), &chatdtest.Log{}
	ready := make(chan string, 1)
	go func() {
		d.done <- Run(ctx, nil, func(k string) string { return d.env[k] }, io.Discard, d.log, func(addr string) { ready <- addr })
	}()
	select {
	case addr := <-ready:
		d.URL = "http://" + addr
	case err := <-d.done:
		d.tb.Fatalf("chatd exited at start: %v\n%s", err, d.logText())
	case <-time.After(30 * time.Second):
		d.tb.Fatalf("chatd did not start\n%s", d.logText())
	}
}

func (d *chatd) logText() string { return d.log.String() }

// Stop sends the equivalent of SIGTERM and waits for Run to return.
func (d *chatd) Stop() {
	if d.cancel == nil {
		return
	}
	d.cancel()
	select {
	case err := <-d.done:
		if err != nil {
			d.tb.Errorf("chatd: %v", err)
		}
	case <-time.After(20 * time.Second):
		d.tb.Errorf("chatd did not stop within 20s")
	}
	d.cancel = nil
}

// Restart stops chatd and starts it again with the same settings (a new
// port unless CHAT_ADDR fixes one).
func (d *chatd) Restart() {
	d.Stop()
	d.start()
}

func call(tb testing.TB, method, url, token string, body any, out any) int {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if out != nil {
		_ = json.Unmarshal(data, out)
	}
	return res.StatusCode
}

func user(tb testing.TB, base, name string) string {
	tb.Helper()
	if st := call(tb, "POST", base+"/api/register", "", map[string]string{"username": name, "password": "pw-" + name + "-long"}, nil); st != 201 && st != 409 {
		tb.Fatalf("register %s: %d", name, st)
	}
	var tok struct{ Token string }
	if st := call(tb, "POST", base+"/api/login", "", map[string]string{"username": name, "password": "pw-" + name + "-long"}, &tok); st != 200 {
		tb.Fatalf("login %s: %d", name, st)
	}
	return tok.Token
}

type msg struct {
	Type     string `json:"type"`
	Room     string `json:"room"`
	ID       string `json:"id"`
	User     string `json:"user"`
	Text     string `json:"text"`
	ClientID string `json:"client_id"`
	LastID   string `json:"last_id"`
	Code     string `json:"code"`
	State    string `json:"state"`
	Ref      string `json:"ref"`
}

type socket struct {
	tb testing.TB
	c  *websocket.Conn
}

func connect(tb testing.TB, base, token string) *socket {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/ws?token="+token, nil)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() { c.CloseNow() })
	return &socket{tb, c}
}

func (s *socket) send(v any) {
	s.tb.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.c.Write(ctx, websocket.MessageText, b); err != nil {
		s.tb.Fatalf("write: %v", err)
	}
}

func (s *socket) read(typ string) msg {
	s.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, data, err := s.c.Read(ctx)
		if err != nil {
			s.tb.Fatalf("read %s: %v", typ, err)
		}
		var m msg
		_ = json.Unmarshal(data, &m)
		if m.Type == "error" {
			s.tb.Fatalf("error frame: %s", data)
		}
		if m.Type == typ {
			return m
		}
	}
}

func history(tb testing.TB, base, token, room string) []msg {
	tb.Helper()
	var all []msg
	q := "after=0"
	for {
		var page struct {
			Messages []msg `json:"messages"`
			HasMore  bool  `json:"has_more"`
		}
		if st := call(tb, "GET", base+"/api/rooms/"+room+"/messages?limit=200&"+q, token, nil, &page); st != 200 {
			tb.Fatalf("history: %d", st)
		}
		all = append(all, page.Messages...)
		if !page.HasMore {
			return all
		}
		q = "after=" + page.Messages[len(page.Messages)-1].ID
	}
}

// sendAcked sends n messages over a socket and returns the acked ids.
func sendAcked(tb testing.TB, s *socket, room, prefix string, n int) []string {
	tb.Helper()
	var ids []string
	for i := range n {
		s.send(map[string]any{"type": "send", "room": room, "text": fmt.Sprintf("%s %d", prefix, i), "client_id": fmt.Sprintf("%s-%d", prefix, i)})
		ids = append(ids, s.read("ack").ID)
	}
	return ids
}

func ids(ms []msg) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// TestUserJoinsAndChats: scenarios 1 and 2 through the real main.
func TestUserJoinsAndChats(t *testing.T) {
	srv := storetest.Start(t, storetest.Options{})
	d := mustRunChatd(t, map[string]string{"REDIS_URL": "redis://" + srv.Addr})
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(d.logText())
		}
	})
	alice := connect(t, d.URL, user(t, d.URL, "alice"))
	bob := connect(t, d.URL, user(t, d.URL, "bob"))
	alice.send(map[string]any{"type": "join", "room": "general"})
	alice.read("joined")
	bob.send(map[string]any{"type": "join", "room": "general"})
	bob.read("joined")
	alice.send(map[string]any{"type": "send", "room": "general", "text": "hi all", "client_id": "1"})
	id := alice.read("ack").ID
	for _, s := range []*socket{alice, bob} {
		if m := s.read("message"); m.ID != id || m.Text != "hi all" || m.User != "alice" {
			t.Fatalf("message = %+v", m)
		}
	}
	if st := call(t, "GET", d.URL+"/healthz", "", nil, nil); st != 200 {
		t.Fatalf("healthz %d", st)
	}
	if st := call(t, "GET", d.URL+"/readyz", "", nil, nil); st != 200 {
		t.Fatalf("readyz %d", st)
	}
}

// TestRestartsLoseNothing: scenario 3. Acked messages survive a restart of
// chatd and a restart of Redis with append-only persistence, and history
// pages still work.
func TestRestartsLoseNothing(t *testing.T) {
	srv := storetest.Start(t, storetest.Options{AppendOnly: true, Fsync: "always"})
	srv.RequireReal(t)
	d := mustRunChatd(t, map[string]string{"REDIS_URL": "redis://" + srv.Addr})
	tok := user(t, d.URL, "alice")
	s := connect(t, d.URL, tok)
	acked := sendAcked(t, s, "general", "before", 30)

	d.Restart()
	if got := ids(history(t, d.URL, tok, "general")); !slices.Equal(got, acked) {
		t.Fatalf("after chatd restart history = %v, want %v", got, acked)
	}
	s = connect(t, d.URL, tok)
	acked = append(acked, sendAcked(t, s, "general", "between", 20)...)

	if err := srv.Proc.Restart(); err != nil {
		t.Fatal(err)
	}
	// The token still works (revocations and the secret are in Redis or
	// config), and the history holds every acked message.
	checkHistory := func() error {
		var page struct{ Messages []msg }
		if st := call(t, "GET", d.URL+"/api/rooms/general/messages?limit=200&after=0", tok, nil, &page); st != 200 {
			return fmt.Errorf("history status %d", st)
		}
		if !slices.Equal(ids(page.Messages), acked) {
			return fmt.Errorf("after redis restart: %d messages, want %d", len(page.Messages), len(acked))
		}
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for err := checkHistory(); err != nil; err = checkHistory() {
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Chat goes on over a new socket, and a joiner with since gets it.
	s = connect(t, d.URL, tok)
	more := sendAcked(t, s, "general", "after", 5)
	r := connect(t, d.URL, tok)
	r.send(map[string]any{"type": "join", "room": "general", "since": acked[len(acked)-1]})
	r.read("joined")
	for _, want := range more {
		if m := r.read("message"); m.ID != want {
			t.Fatalf("since replay got %s, want %s", m.ID, want)
		}
	}
}

// TestSelfContainedKeepsHistory: go run ./cmd/chatd twice on one data
// directory keeps the messages (private redis-server with AOF).
func TestSelfContainedKeepsHistory(t *testing.T) {
	srv := storetest.Start(t, storetest.Options{})
	srv.RequireReal(t) // needs redis-server for self-contained persistence
	dir := t.TempDir()
	d := mustRunChatd(t, map[string]string{"CHAT_DATA_DIR": dir})
	tok := user(t, d.URL, "alice")
	acked := sendAcked(t, connect(t, d.URL, tok), "tech", "m", 10)
	d.Restart()
	// The generated secret is kept in Redis, so the token survives too.
	if got := ids(history(t, d.URL, tok, "tech")); !slices.Equal(got, acked) {
		t.Fatalf("history after restart = %v, want %v", got, acked)
	}
	// A second chatd on the same data directory is refused.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := Run(ctx, nil, func(k string) string {
		return map[string]string{"CHAT_DATA_DIR": dir, "CHAT_ADDR": "127.0.0.1:0"}[k]
	}, io.Discard, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second chatd on one data dir: %v", err)
	}
}

// TestTwoInstancesLatency is a small two-instance run: clients on both
// instances, every message reaches every member once, in order; it logs
// the send → receive latency.
func TestTwoInstancesLatency(t *testing.T) {
	srv := storetest.Start(t, storetest.Options{})
	env := func() map[string]string {
		return map[string]string{"REDIS_URL": "redis://" + srv.Addr, "CHAT_SEND_RATE": "1000", "CHAT_SEND_BURST": "1000"}
	}
	d1 := mustRunChatd(t, env())
	d2 := mustRunChatd(t, env())
	const members, messages = 10, 200
	var socks []*socket
	for i := range members {
		base := []string{d1.URL, d2.URL}[i%2]
		s := connect(t, base, user(t, base, fmt.Sprintf("member%d", i)))
		s.send(map[string]any{"type": "join", "room": "general"})
		s.read("joined")
		socks = append(socks, s)
	}
	var lat []time.Duration
	var mu sync.Mutex
	var wg sync.WaitGroup
	got := make([][]string, members)
	for i, s := range socks {
		wg.Go(func() {
			for range messages {
				m := s.read("message")
				var sent int64
				fmt.Sscanf(m.Text, "t=%d", &sent)
				mu.Lock()
				lat = append(lat, time.Since(time.Unix(0, sent)))
				mu.Unlock()
				got[i] = append(got[i], m.ID)
			}
		})
	}
	sender := socks[0]
	for range messages {
		sender.send(map[string]any{"type": "send", "room": "general", "text": fmt.Sprintf("t=%d", time.Now().UnixNano())})
		time.Sleep(2 * time.Millisecond)
	}
	wg.Wait()
	for i := 1; i < members; i++ {
		if !slices.Equal(got[i], got[0]) {
			t.Fatalf("member %d saw another sequence than member 0", i)
		}
	}
	slices.Sort(lat)
	t.Logf("two instances, %d members, %d messages, %d deliveries: latency p50 %v p99 %v max %v",
		members, messages, len(lat), lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
}

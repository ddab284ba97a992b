//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redstream/chat/cmd/internal/chatdtest"
	"github.com/redstream/chat/store/storetest"
)

// mustStartChatd starts chatd on a free port with its own data directory,
// a send rate that the load does not hit, and env on top, and returns its
// base URL and PID. Cleanup stops it.
func mustStartChatd(tb testing.TB, name, bin string, env map[string]string) (string, int) {
	tb.Helper()
	e := map[string]string{
		"CHAT_DATA_DIR":   filepath.Join(tb.TempDir(), "data"),
		"CHAT_SEND_RATE":  "1000",
		"CHAT_SEND_BURST": "1000",
	}
	for k, v := range env {
		e[k] = v
	}
	p := chatdtest.Start(tb, bin, chatdtest.Options{Name: name, Env: e})
	return p.URL, p.PID()
}

// TestEndToEnd runs the real chatbench binary against a real chatd.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts chatd")
	}
	chatd := chatdtest.Build(t, chatdtest.Chatd, chatdtest.BuildOptions{})
	bench := chatdtest.Build(t, chatdtest.Chatbench, chatdtest.BuildOptions{})
	base, _ := mustStartChatd(t, "chatd", chatd, nil)

	r := mustRunChatbench(t, bench, "--servers", base, "--clients", "20", "--rooms", "2", "--room-size", "10",
		"--senders", "4", "--rate", "40", "--duration", "3s", "--json")
	if r.Deliveries <= 0 || r.Lost != 0 || r.Dups != 0 {
		t.Fatalf("deliveries %d, lost %d, dups %d; want > 0, 0, 0", r.Deliveries, r.Lost, r.Dups)
	}
	if r.LostReconnected != 0 || r.Reorders != 0 || r.Connected != 20 {
		t.Errorf("lost after reconnect %d, reorders %d, connected %d", r.LostReconnected, r.Reorders, r.Connected)
	}
}

// mustRunChatbench runs the chatbench binary with args, which must hold
// --json, and returns its report; it fails the test unless chatbench
// exits 0.
func mustRunChatbench(tb testing.TB, bench string, args ...string) *Report {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bench, args...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr chatdtest.Log
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	tb.Logf("chatbench stderr:\n%s", stderr.String())
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		tb.Fatalf("chatbench: %v", err)
	}
	var r Report
	if err := json.Unmarshal(bytes.TrimSpace([]byte(stdout.String())), &r); err != nil {
		tb.Fatalf("chatbench output is not one JSON line: %v\n%s", err, stdout.String())
	}
	tb.Logf("result: %s", stdout.String())
	if err != nil {
		tb.Fatalf("chatbench exited with %v (lost %d, dups %d)", err, r.Lost, r.Dups)
	}
	return &r
}

// e2eSecret is the CHAT_JWT_SECRET of the chatd pairs the end-to-end
// tests start, which chatbench signs its tokens with.
const e2eSecret = "e2e-chatbench-secret-0123456789abcdef"

// chatdPair is two chatd on one real redis-server with append-only
// persistence, and the chatbench binary to run against them.
type chatdPair struct {
	bench, redis string // the chatbench binary, Redis's host:port
	a, b         string // the chatd base URLs
	pidA, pidB   int
}

// mustStartChatdPair builds chatd and chatbench and starts the pair.
func mustStartChatdPair(t *testing.T) chatdPair {
	t.Helper()
	rs := storetest.Start(t, storetest.Options{AppendOnly: true})
	rs.RequireReal(t)
	chatd := chatdtest.Build(t, chatdtest.Chatd, chatdtest.BuildOptions{})
	p := chatdPair{bench: chatdtest.Build(t, chatdtest.Chatbench, chatdtest.BuildOptions{}), redis: rs.Addr}
	env := map[string]string{"REDIS_URL": "redis://" + rs.Addr + "/0", "CHAT_JWT_SECRET": e2eSecret}
	p.a, p.pidA = mustStartChatd(t, "chatd a", chatd, env)
	p.b, p.pidB = mustStartChatd(t, "chatd b", chatd, env)
	return p
}

// TestEndToEndRoomsPerClient runs chatbench against two chatd on one real
// redis-server with sockets in three rooms each, every room spanning both
// instances, and reports Redis's and both chatd's CPU time.
func TestEndToEndRoomsPerClient(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts chatd")
	}
	p := mustStartChatdPair(t)
	r := mustRunChatbench(t, p.bench, "--servers", p.a+","+p.b, "--clients", "12", "--rooms", "18", "--room-size", "2",
		"--rooms-per-client", "3", "--senders", "6", "--rate", "90", "--duration", "3s", "--token-secret", e2eSecret,
		"--redis-addrs", p.redis, "--server-pid", fmt.Sprintf("%d,%d", p.pidA, p.pidB), "--json")
	if r.Logins != 0 {
		t.Errorf("%d logins reported for tokens signed with --token-secret", r.Logins)
	}
	if r.Connected != 12 || r.ClientsInRooms != 12 || r.RoomsPerClient != 3 || !r.Spread {
		t.Fatalf("connected %d, in rooms %d, rooms per client %d, spread %v; want 12, 12, 3, true",
			r.Connected, r.ClientsInRooms, r.RoomsPerClient, r.Spread)
	}
	if r.Acked == 0 || r.Deliveries != 2*r.Acked || r.Expected != r.Deliveries || r.Reorders != 0 || r.LostReconnected != 0 {
		t.Fatalf("acked %d, deliveries %d, expected %d, reorders %d, lost after reconnect %d",
			r.Acked, r.Deliveries, r.Expected, r.Reorders, r.LostReconnected)
	}
	if len(r.RedisCPU) != 1 || r.RedisCPU[0].Addr != p.redis || r.RedisCPU[0].Role != "master" || r.RedisCPU[0].Share != 1 ||
		!(r.RedisCPUS > 0) || !(r.RedisCPUMsPer1000 > 0) {
		t.Fatalf("Redis CPU %+v, %v s, %v ms per 1,000 deliveries", r.RedisCPU, r.RedisCPUS, r.RedisCPUMsPer1000)
	}
	if len(r.ServerCPU) != 2 || !(r.ServerCPU[0] > 0) || !(r.ServerCPU[1] > 0) || r.ServerCPUSource != "proc" {
		t.Fatalf("server CPU %v from %q, want both chatd's from proc", r.ServerCPU, r.ServerCPUSource)
	}
	if !(r.GeneratorCPUS > 0) || !(r.WindowS >= 2.9) {
		t.Fatalf("chatbench CPU %v s over a window of %v s", r.GeneratorCPUS, r.WindowS)
	}
}

// TestEndToEndEvents runs chatbench with 10% of the slots editing or
// reacting against two chatd on one real redis-server: every acked edit
// and reaction reaches every member once, on both instances, and the
// server's history shows them.
func TestEndToEndEvents(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts chatd")
	}
	p := mustStartChatdPair(t)
	r := mustRunChatbench(t, p.bench, "--servers", p.a+","+p.b, "--clients", "20", "--rooms", "2", "--room-size", "10",
		"--senders", "4", "--rate", "100", "--duration", "3s", "--events", "0.1", "--user-prefix", "ev_",
		"--token-secret", e2eSecret, "--json")
	if r.Connected != 20 || !r.Spread || r.Acked == 0 || r.Deliveries != 10*r.Acked || r.Expected != r.Deliveries ||
		r.Reorders != 0 || r.LostReconnected != 0 {
		t.Fatalf("messages: connected %d, spread %v, acked %d, deliveries %d, expected %d, reorders %d, lost after reconnect %d",
			r.Connected, r.Spread, r.Acked, r.Deliveries, r.Expected, r.Reorders, r.LostReconnected)
	}
	// 300 slots, a tenth of them events.
	if slots := r.Sent + r.EventsSent + r.Skipped; slots < 299 || slots > 301 || r.EventsSent < 25 || r.EventsSent > 35 {
		t.Fatalf("%d sent, %d events, %d skipped; want 300 slots, about 30 of them events", r.Sent, r.EventsSent, r.Skipped)
	}
	if r.EditsAcked == 0 || r.ReactionsAcked == 0 || r.EventsAcked != r.EventsSent || r.EventsNoop != 0 || r.EventsRejected != 0 {
		t.Fatalf("events sent %d, acked %d (%d edits, %d reactions), unchanged %d, rejected %d, errors %v",
			r.EventsSent, r.EventsAcked, r.EditsAcked, r.ReactionsAcked, r.EventsNoop, r.EventsRejected, r.ErrCodes)
	}
	if r.EventDeliveries != 10*r.EventsAcked || r.EventsExpected != r.EventDeliveries || r.EventDups != 0 || r.EventReorders != 0 ||
		!(r.EventP50Ms > 0) || !(r.EventAckP50Ms > 0) {
		t.Fatalf("event deliveries %d of %d expected for %d acked, dups %d, reorders %d, p50 %v ms, ack p50 %v ms",
			r.EventDeliveries, r.EventsExpected, r.EventsAcked, r.EventDups, r.EventReorders, r.EventP50Ms, r.EventAckP50Ms)
	}

	// History shows the edits and reactions on the senders' messages.
	tok, err := mintToken(e2eSecret, "ev_0000001")
	if err != nil {
		t.Fatal(err)
	}
	var edited, reacted int
	for _, room := range []string{"ev-r0", "ev-r1"} {
		req, _ := http.NewRequest(http.MethodGet, p.a+"/api/rooms/"+room+"/messages?limit=200", nil)
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Messages []struct {
				Text      string              `json:"text"`
				EditedTS  int64               `json:"edited_ts"`
				Reactions map[string][]string `json:"reactions"`
			} `json:"messages"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("history of %s: %s, %v", room, resp.Status, err)
		}
		for _, m := range page.Messages {
			if m.EditedTS > 0 {
				edited++
			}
			if len(m.Reactions[reactEmoji]) > 0 {
				reacted++
			}
		}
	}
	if edited == 0 || reacted == 0 {
		t.Fatalf("history shows %d edited messages and %d with a reaction, want some of each", edited, reacted)
	}
}

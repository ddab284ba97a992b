package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redstream/chat/cmd/internal/chatdtest"
	"github.com/redstream/chat/transport/wire"
)

// TestMain lets the test binary stand in for chatbench when a test runs
// a multi-process benchmark: the parent re-executes os.Executable(), which
// is then this binary, with CHATBENCH_TEST_MAIN set.
func TestMain(m *testing.M) {
	if os.Getenv("CHATBENCH_TEST_MAIN") == "1" {
		os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	code := m.Run()
	chatdtest.RemoveBinaries()
	os.Exit(code)
}

// testLogger routes logs to t.Log.
func testLogger(tb testing.TB) *slog.Logger {
	tb.Helper()
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// mustRunBench runs one benchmark in process with the given flags.
func mustRunBench(tb testing.TB, args ...string) *Report {
	tb.Helper()
	cfg, err := parseFlags(args, io.Discard)
	if err != nil {
		tb.Fatal(err)
	}
	if err := cfg.resolve(); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := runOnce(ctx, cfg, newAuthState(cfg, testLogger(tb)), testLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	_ = rep.writeTable(&buf)
	tb.Log("\n" + buf.String())
	return rep
}

var quick = []string{"--clients", "20", "--rooms", "2", "--room-size", "10", "--senders", "4",
	"--rate", "200", "--duration", "1s", "--warmup", "200ms", "--drain", "3s", "--inflight", "64"}

func TestBenchClean(t *testing.T) {
	t.Parallel()
	for _, batch := range []bool{false, true} {
		_, srv := newFakeServer(t)
		args := append([]string{"--servers", srv.URL}, quick...)
		if batch {
			args = append(args, "--batch")
		}
		r := mustRunBench(t, args...)
		if r.Connected != 20 || r.Lost != 0 || r.LostReconnected != 0 || r.Dups != 0 || r.Reorders != 0 || r.Disconnects != 0 {
			t.Fatalf("batch %v: unexpected anomalies: %+v", batch, r)
		}
		// 200 msg/s for 1 s: 200 slots, sent or (on a loaded machine) skipped;
		// every sent one reaches its room of 10.
		if slots := r.Sent + r.Skipped; slots < 199 || slots > 201 {
			t.Fatalf("batch %v: %d sent + %d skipped, want 200 slots", batch, r.Sent, r.Skipped)
		}
		if r.Sent == 0 || r.Acked != r.Sent || r.Deliveries != r.Acked*10 || r.Expected != r.Deliveries {
			t.Fatalf("batch %v: sent %d acked %d deliveries %d expected %d", batch, r.Sent, r.Acked, r.Deliveries, r.Expected)
		}
		if r.P50Ms <= 0 || r.P99Ms < r.P50Ms || r.MaxMs < r.P99Ms || r.ServerRSSBytes != 10485760 {
			t.Fatalf("batch %v: latencies %v/%v/%v, RSS %d", batch, r.P50Ms, r.P99Ms, r.MaxMs, r.ServerRSSBytes)
		}
		if r.failed() {
			t.Fatal("a clean run failed")
		}
	}
}

func TestBenchDetectsLoss(t *testing.T) {
	t.Parallel()
	f, srv := newFakeServer(t)
	f.dropEvery = 97
	r := mustRunBench(t, append([]string{"--servers", srv.URL}, quick...)...)
	if r.Lost == 0 || !r.failed() || len(r.LostSample) == 0 {
		t.Fatalf("dropped deliveries not reported: lost %d", r.Lost)
	}
	if r.Lost+r.Deliveries != r.Expected {
		t.Fatalf("lost %d + delivered %d != expected %d", r.Lost, r.Deliveries, r.Expected)
	}
}

func TestBenchDetectsDuplicates(t *testing.T) {
	t.Parallel()
	f, srv := newFakeServer(t)
	f.dupEvery = 101
	r := mustRunBench(t, append([]string{"--servers", srv.URL}, quick...)...)
	if r.Dups == 0 || r.Lost != 0 || r.Reorders != 0 || !r.failed() {
		t.Fatalf("duplicates: dups %d lost %d reorders %d", r.Dups, r.Lost, r.Reorders)
	}
}

func TestBenchRecoversAfterKick(t *testing.T) {
	t.Parallel()
	f, srv := newFakeServer(t)
	f.kickAfter = 30
	r := mustRunBench(t, append([]string{"--servers", srv.URL}, quick...)...)
	if r.Disconnects == 0 || r.ReconnectedClients == 0 || r.CloseCodes["1013"] == 0 {
		t.Fatalf("kicks not seen: disconnects %d, reconnected %d, close codes %v", r.Disconnects, r.ReconnectedClients, r.CloseCodes)
	}
	if r.Lost != 0 || r.LostReconnected != 0 || r.Dups != 0 || r.Reorders != 0 {
		t.Fatalf("rejoin with since did not recover: lost %d/%d dups %d reorders %d", r.Lost, r.LostReconnected, r.Dups, r.Reorders)
	}
}

func TestBenchIdle(t *testing.T) {
	t.Parallel()
	_, srv := newFakeServer(t)
	r := mustRunBench(t, "--servers", srv.URL, "--clients", "30", "--rooms", "3", "--room-size", "10", "--idle", "--duration", "300ms")
	if r.Connected != 30 || r.Sent != 0 || r.Deliveries != 0 || r.failed() {
		t.Fatalf("idle run: %+v", r)
	}
}

// TestBenchTokenCache checks that a second run with the same users and
// --token-cache logs nobody in.
func TestBenchTokenCache(t *testing.T) {
	t.Parallel()
	f, srv := newFakeServer(t)
	cache := filepath.Join(t.TempDir(), "tokens.json")
	args := append([]string{"--servers", srv.URL, "--user-prefix", "tc_", "--token-cache", cache, "--reuse-users"}, quick...)
	mustRunBench(t, args...)
	f.mu.Lock()
	first := f.logins
	f.mu.Unlock()
	if first != 20 {
		t.Fatalf("%d logins, want 20", first)
	}
	b, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]tokenEntry
	if err := json.Unmarshal(b, &m); err != nil || len(m) != 20 || m["tc_0000001"].Token == "" {
		t.Fatalf("token cache %s: %v", b, err)
	}
	r := mustRunBench(t, args...)
	f.mu.Lock()
	second := f.logins
	f.mu.Unlock()
	if second != first || r.failed() || r.Deliveries == 0 {
		t.Fatalf("second run logged in %d more users, deliveries %d", second-first, r.Deliveries)
	}
}

// TestBenchWorkers runs the benchmark in three worker processes; senders
// and receivers of the same room are in different processes.
func TestBenchWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Setenv("CHATBENCH_TEST_MAIN", "1") // for the re-executed workers
	f, srv := newFakeServer(t)
	f.kickAfter = 40
	r := mustRunBench(t, append([]string{"--servers", srv.URL, "--workers", "3", "--events", "0.2"}, quick...)...)
	if r.Workers != 3 || r.Connected != 20 || r.failed() || r.Dups != 0 || r.Reorders != 0 || r.EventDups != 0 || r.EventReorders != 0 {
		t.Fatalf("workers: %+v", r)
	}
	if r.Deliveries != r.Acked*10 || r.Expected != r.Deliveries || r.Disconnects == 0 {
		t.Fatalf("acked %d deliveries %d expected %d disconnects %d", r.Acked, r.Deliveries, r.Expected, r.Disconnects)
	}
	// Events acked in one process are expected, and found, in the others.
	if r.EventsAcked == 0 || r.EventDeliveries != r.EventsAcked*10 || r.EventsExpected != r.EventDeliveries || r.EventP50Ms <= 0 {
		t.Fatalf("events acked %d, delivered %d of %d expected, p50 %v ms", r.EventsAcked, r.EventDeliveries, r.EventsExpected, r.EventP50Ms)
	}
}

// TestSweep runs a two-step sweep through realMain and checks its files.
func TestSweep(t *testing.T) {
	t.Parallel()
	_, srv := newFakeServer(t)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := realMain([]string{"--servers", srv.URL, "--sweep", "10,20", "--rooms", "2", "--room-size", "5",
		"--rate", "100", "--duration", "500ms", "--warmup", "100ms", "--drain", "1s", "--json", "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines, got:\n%s", stdout.String())
	}
	for i, l := range lines {
		var r Report
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Deliveries == 0 {
			t.Fatalf("line %s: %v", l, err)
		}
		// The server's RSS then still holds the step before's memory.
		if i > 0 && (r.ServerRSSPerConnBytes != 0 || r.ServerRSSBaseBytes != 0) {
			t.Fatalf("step %d reports memory per connection: %s", i+1, l)
		}
	}
	for _, name := range []string{"sweep.csv", "sweep.svg"} {
		if fi, err := os.Stat(filepath.Join(out, name)); err != nil || fi.Size() == 0 {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func TestUsageExit(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	if code := realMain([]string{"--clients", "x"}, io.Discard, &stderr); code != 2 {
		t.Fatalf("exit %d for a bad flag", code)
	}
	if code := realMain([]string{"--clients", "5", "--room-size", "6"}, io.Discard, &stderr); code != 2 {
		t.Fatalf("exit %d for a room larger than the clients", code)
	}
}

// roomCounts returns how many messages each room of the fake server holds.
func roomCounts(f *fakeServer) map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.rooms))
	for name, r := range f.rooms {
		out[name] = len(r.msgs)
	}
	return out
}

var multiRoom = []string{"--clients", "12", "--rooms", "18", "--room-size", "2", "--rooms-per-client", "3", "--senders", "6",
	"--rate", "180", "--duration", "1s", "--warmup", "200ms", "--drain", "3s", "--inflight", "64"}

// TestBenchRoomsPerClient runs sockets in three rooms each, over two
// servers (the same fake twice), and checks every (socket, room) and that
// every room got the same share of the sends.
func TestBenchRoomsPerClient(t *testing.T) {
	t.Parallel()
	f, srv := newFakeServer(t)
	r := mustRunBench(t, append([]string{"--servers", srv.URL + "," + srv.URL}, multiRoom...)...)
	if r.Connected != 12 || r.ClientsInRooms != 12 || r.RoomsPerClient != 3 || !r.Spread {
		t.Fatalf("connected %d, in rooms %d, rooms per client %d, spread %v; want 12, 12, 3, true",
			r.Connected, r.ClientsInRooms, r.RoomsPerClient, r.Spread)
	}
	if r.Lost != 0 || r.LostReconnected != 0 || r.Dups != 0 || r.Reorders != 0 || r.failed() {
		t.Fatalf("anomalies: lost %d/%d dups %d reorders %d", r.Lost, r.LostReconnected, r.Dups, r.Reorders)
	}
	if slots := r.Sent + r.Skipped; slots < 179 || slots > 181 {
		t.Fatalf("%d sent + %d skipped, want 180 slots", r.Sent, r.Skipped)
	}
	if r.Sent == 0 || r.Acked != r.Sent || r.Deliveries != 2*r.Acked || r.Expected != r.Deliveries {
		t.Fatalf("sent %d acked %d deliveries %d expected %d; want every acked message at both members", r.Sent, r.Acked, r.Deliveries, r.Expected)
	}
	counts := roomCounts(f)
	if len(counts) != 18 {
		t.Fatalf("%d rooms on the server, want 18", len(counts))
	}
	lo, hi := math.MaxInt, 0
	for _, n := range counts {
		lo, hi = min(lo, n), max(hi, n)
	}
	if r.Skipped == 0 && hi-lo > 1 {
		t.Fatalf("rooms got from %d to %d messages; want an even share", lo, hi)
	}
}

// TestBenchRoomsPerClientDetectsLoss checks that loss and duplicates are
// found per (socket, room) when sockets are in several rooms.
func TestBenchRoomsPerClientDetectsLoss(t *testing.T) {
	t.Parallel()
	f, srv := newFakeServer(t)
	f.dropEvery = 37
	r := mustRunBench(t, append([]string{"--servers", srv.URL}, multiRoom...)...)
	if r.Lost == 0 || r.Lost+r.Deliveries != r.Expected || !r.failed() {
		t.Fatalf("lost %d + delivered %d, expected %d", r.Lost, r.Deliveries, r.Expected)
	}
	f, srv = newFakeServer(t)
	f.dupEvery = 41
	r = mustRunBench(t, append([]string{"--servers", srv.URL}, multiRoom...)...)
	if r.Dups == 0 || r.Lost != 0 || !r.failed() {
		t.Fatalf("duplicates: dups %d lost %d", r.Dups, r.Lost)
	}
}

// TestSweepRooms runs a two-step room sweep through realMain: each step
// fits its rooms in --clients with as few rooms per client as it can. Two
// worker processes run each step, so they must be told the step's layout.
func TestSweepRooms(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Setenv("CHATBENCH_TEST_MAIN", "1") // for the re-executed workers
	_, srv := newFakeServer(t)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := realMain([]string{"--servers", srv.URL, "--sweep-rooms", "4,12", "--clients", "6", "--room-size", "2", "--workers", "2",
		"--rate", "60", "--duration", "500ms", "--warmup", "100ms", "--drain", "1s", "--json", "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines, got:\n%s", stdout.String())
	}
	for i, want := range []struct{ rooms, perClient, inRooms int }{{4, 2, 4}, {12, 4, 6}} {
		var r Report
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil {
			t.Fatal(err)
		}
		if r.Rooms != want.rooms || r.RoomsPerClient != want.perClient || r.ClientsInRooms != want.inRooms || r.Clients != 6 ||
			r.Workers != 2 || r.Deliveries == 0 || r.Deliveries != 2*r.Acked || r.failed() {
			t.Fatalf("step %d: %s; want %d rooms, %d per client, %d clients in rooms", i+1, lines[i], want.rooms, want.perClient, want.inRooms)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "sweep-rooms.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	col := slices.Index(csvHeader, "rooms")
	if err != nil || len(rows) != 3 || rows[1][col] != "4" || rows[2][col] != "12" {
		t.Fatalf("sweep-rooms.csv: %v\n%s", err, b)
	}
	if fi, err := os.Stat(filepath.Join(out, "sweep-rooms.svg")); err != nil || fi.Size() == 0 {
		t.Fatalf("sweep-rooms.svg: %v", err)
	}
	if code := realMain([]string{"--servers", srv.URL, "--sweep-rooms", "700", "--clients", "6", "--room-size", "1"}, io.Discard, &stderr); code != 2 {
		t.Fatalf("exit %d for 700 rooms in 6 clients (117 rooms each)", code)
	}
}

// TestBenchManyRooms runs more rooms than the clients may create at the
// server's limit of 50 channels per user: other users create the rest.
func TestBenchManyRooms(t *testing.T) {
	t.Parallel()
	f, srv := newFakeServer(t)
	f.maxRooms = 50
	r := mustRunBench(t, "--servers", srv.URL, "--clients", "2", "--rooms", "150", "--room-size", "1", "--rooms-per-client", "75",
		"--rate", "150", "--duration", "1s", "--warmup", "200ms", "--drain", "3s", "--inflight", "64")
	if r.Connected != 2 || r.RoomsPerClient != 75 || r.failed() || r.Deliveries == 0 || r.Deliveries != r.Acked {
		t.Fatalf("connected %d, rooms per client %d, deliveries %d, acked %d", r.Connected, r.RoomsPerClient, r.Deliveries, r.Acked)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.rooms) != 150 || len(f.created) != 3 {
		t.Fatalf("%d rooms created by %d users, want 150 by 3", len(f.rooms), len(f.created))
	}
}

// checkFakeEvents checks what the fake stored of the run's edits and
// reactions: each goes to a message of its sender's, a sender's events in
// a room alternate edit, reaction, edit, starting with an edit, and its
// reactions on one message toggle, starting with adding the emoji; no
// reaction changed nothing. It returns the edits and reactions stored.
func checkFakeEvents(t *testing.T, f *fakeServer) (edits, reactions int) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for name, rm := range f.rooms {
		if rm.noops != 0 {
			t.Errorf("room %s: %d reactions changed nothing", name, rm.noops)
		}
		lastType := map[string]string{}         // user -> type of their last event
		reacted := map[string]map[string]bool{} // user -> target -> on
		for _, e := range rm.events {
			fr := e.frame
			if i, ok := rm.byID[fr.ID]; !ok || rm.msgs[i].User != e.user {
				t.Fatalf("room %s: %s by %s on %s, not a message of theirs", name, fr.Type, e.user, fr.ID)
			}
			want := wire.TypeEdit
			if lastType[e.user] == wire.TypeEdit {
				want = wire.TypeReact
			}
			if fr.Type != want {
				t.Fatalf("room %s: %s's event after a %q is a %s, want %s", name, e.user, lastType[e.user], fr.Type, want)
			}
			lastType[e.user] = fr.Type
			if fr.Type == wire.TypeEdit {
				edits++
				continue
			}
			reactions++
			if reacted[e.user] == nil {
				reacted[e.user] = map[string]bool{}
			}
			on := fr.On == nil || *fr.On
			if on == reacted[e.user][fr.ID] || fr.Emoji != reactEmoji {
				t.Fatalf("room %s: %s reacts %q on=%v to %s, which it had at on=%v", name, e.user, fr.Emoji, on, fr.ID, reacted[e.user][fr.ID])
			}
			reacted[e.user][fr.ID] = on
		}
	}
	return edits, reactions
}

// TestBenchEvents runs with 30% of the slots editing or reacting and
// checks that every acked message and event reached every member of its
// room once, and that the slots still add up to the schedule.
func TestBenchEvents(t *testing.T) {
	t.Parallel()
	for _, batch := range []bool{false, true} {
		f, srv := newFakeServer(t)
		args := append([]string{"--servers", srv.URL, "--events", "0.3"}, quick...)
		if batch {
			args = append(args, "--batch")
		}
		r := mustRunBench(t, args...)
		if r.Connected != 20 || r.failed() || r.Lost != 0 || r.Dups != 0 || r.Reorders != 0 || r.Disconnects != 0 || r.BadFrames != 0 {
			t.Fatalf("batch %v: unexpected anomalies: %+v", batch, r)
		}
		if slots := r.Sent + r.EventsSent + r.Skipped; slots < 199 || slots > 201 {
			t.Fatalf("batch %v: %d sent + %d events + %d skipped, want 200 slots", batch, r.Sent, r.EventsSent, r.Skipped)
		}
		if share := float64(r.EventsSent) / float64(r.Sent+r.EventsSent); share < 0.25 || share > 0.35 {
			t.Fatalf("batch %v: %d of %d sends are events, want about 30%%", batch, r.EventsSent, r.Sent+r.EventsSent)
		}
		if r.EditsAcked == 0 || r.ReactionsAcked == 0 || r.EventsAcked != r.EventsSent || r.EventsNoop != 0 ||
			r.EventsRejected != 0 || r.EventsUnacked != 0 {
			t.Fatalf("batch %v: events sent %d, acked %d (%d edits, %d reactions), noop %d, rejected %d, unacked %d", batch,
				r.EventsSent, r.EventsAcked, r.EditsAcked, r.ReactionsAcked, r.EventsNoop, r.EventsRejected, r.EventsUnacked)
		}
		if r.EventDeliveries != 10*r.EventsAcked || r.EventsExpected != r.EventDeliveries || r.EventsMissing != 0 ||
			r.EventDups != 0 || r.EventReorders != 0 {
			t.Fatalf("batch %v: event deliveries %d of %d expected for %d acked; missing %d, dups %d, reorders %d", batch,
				r.EventDeliveries, r.EventsExpected, r.EventsAcked, r.EventsMissing, r.EventDups, r.EventReorders)
		}
		if r.Acked != r.Sent || r.Deliveries != 10*r.Acked || r.Expected != r.Deliveries {
			t.Fatalf("batch %v: messages sent %d acked %d deliveries %d expected %d", batch, r.Sent, r.Acked, r.Deliveries, r.Expected)
		}
		if r.EventP50Ms <= 0 || r.EventP99Ms < r.EventP50Ms || r.EventAckP50Ms <= 0 || r.EventAckP99Ms < r.EventAckP50Ms ||
			r.EventDeliveriesPerS != float64(r.EventDeliveries) {
			t.Fatalf("batch %v: event latency %v/%v, ack %v/%v, %v deliveries/s", batch, r.EventP50Ms, r.EventP99Ms,
				r.EventAckP50Ms, r.EventAckP99Ms, r.EventDeliveriesPerS)
		}
		// The warmup's events are stored too, so the server holds more.
		if edits, reactions := checkFakeEvents(t, f); int64(edits) < r.EditsAcked || int64(reactions) < r.ReactionsAcked {
			t.Fatalf("batch %v: the server stored %d edits and %d reactions, fewer than the %d and %d acked", batch, edits, reactions, r.EditsAcked, r.ReactionsAcked)
		}
	}
}

// TestBenchEventsDetectsLoss checks that event deliveries the server
// drops or doubles are reported, and fail the run, while the messages
// stay clean.
func TestBenchEventsDetectsLoss(t *testing.T) {
	t.Parallel()
	f, srv := newFakeServer(t)
	f.dropEventEvery = 7
	r := mustRunBench(t, append([]string{"--servers", srv.URL, "--events", "0.3"}, quick...)...)
	if r.EventsMissing == 0 || r.EventsMissing+r.EventDeliveries != r.EventsExpected || !r.failed() || r.Lost != 0 {
		t.Fatalf("dropped events: missing %d + delivered %d, expected %d; failed %v, lost messages %d",
			r.EventsMissing, r.EventDeliveries, r.EventsExpected, r.failed(), r.Lost)
	}
	if !slices.ContainsFunc(r.LostSample, func(s string) bool { return strings.Contains(s, " missed event ") }) {
		t.Fatalf("no missed event in the sample %q", r.LostSample)
	}
	f, srv = newFakeServer(t)
	f.dupEventEvery = 7
	r = mustRunBench(t, append([]string{"--servers", srv.URL, "--events", "0.3"}, quick...)...)
	if r.EventDups == 0 || r.EventsMissing != 0 || r.Dups != 0 || !r.failed() {
		t.Fatalf("doubled events: event dups %d, missing %d, message dups %d, failed %v", r.EventDups, r.EventsMissing, r.Dups, r.failed())
	}
}

// TestBenchEventsAfterKick checks that receivers kicked as slow rejoin
// with since and get the events they missed, once.
func TestBenchEventsAfterKick(t *testing.T) {
	t.Parallel()
	f, srv := newFakeServer(t)
	f.kickAfter = 30
	r := mustRunBench(t, append([]string{"--servers", srv.URL, "--events", "0.3"}, quick...)...)
	if r.Disconnects == 0 || r.ReconnectedClients == 0 {
		t.Fatalf("kicks not seen: disconnects %d, reconnected %d", r.Disconnects, r.ReconnectedClients)
	}
	if r.failed() || r.EventsMissingReconnected != 0 || r.EventDups != 0 || r.EventReorders != 0 || r.Reorders != 0 {
		t.Fatalf("rejoin with since: events missing %d/%d, dups %d, reorders %d; messages lost %d/%d, dups %d, reorders %d",
			r.EventsMissing, r.EventsMissingReconnected, r.EventDups, r.EventReorders, r.Lost, r.LostReconnected, r.Dups, r.Reorders)
	}
	if r.EventsAcked == 0 || r.EventDeliveries != r.EventsExpected {
		t.Fatalf("events acked %d, delivered %d of %d", r.EventsAcked, r.EventDeliveries, r.EventsExpected)
	}
}

package main

// Fault tests: chatd processes on one redis-server with append-only
// persistence carry steady traffic while Redis stops, pauses or crashes,
// or an instance is killed; afterwards every message is accounted for.
// The traffic harness (load) is shared with lb_test.go.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/redstream/chat/cmd/internal/chatdtest"
	"github.com/redstream/chat/store/storetest"
)

// faultSecret is the CHAT_JWT_SECRET every process of a test shares.
const faultSecret = "fault-tests-secret-fault-tests-secret-0123456789"

// wframe is any server frame, decoded loosely.
type wframe struct {
	Type      string          `json:"type"`
	Ref       json.RawMessage `json:"ref"`
	Room      string          `json:"room"`
	ID        string          `json:"id"`
	User      string          `json:"user"`
	ClientID  string          `json:"client_id"`
	LastID    string          `json:"last_id"`
	Recovered *bool           `json:"recovered"`
	State     string          `json:"state"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
}

// streamID is a parsed Redis stream ID, ordered as Redis orders them.
type streamID struct{ ms, seq uint64 }

func parseStreamID(s string) (streamID, bool) {
	a, b, ok := strings.Cut(s, "-")
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return streamID{ms, seq}, ok && err1 == nil && err2 == nil
}

// idAfter reports whether stream ID a comes after b; an unparsable ID
// comes after nothing.
func idAfter(a, b string) bool {
	x, ok1 := parseStreamID(a)
	y, ok2 := parseStreamID(b)
	return ok1 && ok2 && cmp.Or(cmp.Compare(x.ms, y.ms), cmp.Compare(x.seq, y.seq)) > 0
}

// dialWS opens a WebSocket to base with a bearer token.
func dialWS(ctx context.Context, base, token string) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, res, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(base, "http")+"/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		if res != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, res.StatusCode)
		}
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	return c, nil
}

func writeJSON(ctx context.Context, c *websocket.Conn, v any) error {
	b, _ := json.Marshal(v)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.Write(wctx, websocket.MessageText, b)
}

// closeReason names how a read ended: the close code, or "eof/reset".
func closeReason(err error) string {
	if code := websocket.CloseStatus(err); code != -1 {
		return strconv.Itoa(int(code))
	}
	return "no close frame"
}

// clientSpec is one traffic client: its name in reports, its user and
// token, and the servers it tries in order when it (re)connects. Each
// sender has a user of its own; receivers may share users.
type clientSpec struct {
	Name, User, Token string
	Bases             []string
}

// loadClient is what every traffic client records.
type loadClient struct {
	clientSpec
	mu       sync.Mutex
	connects int            // successful upgrades
	closes   map[string]int // how its sockets ended, by close code
	bad      []string       // protocol violations seen as they happened
}

func (c *loadClient) violation(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.bad) < 20 {
		c.bad = append(c.bad, c.Name+": "+fmt.Sprintf(format, args...))
	}
}

// connect dials the bases in turn, with backoff, until one accepts or ctx
// ends (nil).
func (c *loadClient) connect(ctx context.Context, next *int) *websocket.Conn {
	wait := 50 * time.Millisecond
	for ctx.Err() == nil {
		for range c.Bases {
			base := c.Bases[*next%len(c.Bases)]
			ws, err := dialWS(ctx, base, c.Token)
			if err == nil {
				c.mu.Lock()
				c.connects++
				c.mu.Unlock()
				return ws
			}
			*next++
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
	return nil
}

func (c *loadClient) closed(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closes[closeReason(err)]++
}

// closeCount is how many of the client's sockets ended.
func (c *loadClient) closeCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.closes {
		n += v
	}
	return n
}

func (c *loadClient) reconnects() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return max(0, c.connects-1)
}

// loadSender sends one message at a time with a client_id and retries the
// same client_id after an error frame or a lost socket until it is acked.
type loadSender struct {
	loadClient
	sent, attempts int
	acked          map[string]string // client_id → stream ID
	unacked        []string          // client_ids given up on at the end
	errs           map[string]int    // error frames by code
	maxErrWait     time.Duration     // longest send → error frame
	maxWait        time.Duration     // longest send → reply of any kind
}

// loadReceiver stays joined to the room and rejoins with since (its newest
// received ID) whenever its socket ends.
type loadReceiver struct {
	loadClient
	started  bool   // first join done
	start    string // last_id of the first join: it must get everything after
	got      []string
	joins    int
	presence []presenceEvent
}

type presenceEvent struct {
	user, state string
	at          time.Time
}

// load is steady chat traffic in one room.
type load struct {
	tb        testing.TB
	room      string
	every     time.Duration
	senders   []*loadSender
	receivers []*loadReceiver
	ctx       context.Context
	cancel    context.CancelFunc
	stop      chan struct{} // senders start no new message
	swg, rwg  sync.WaitGroup
}

// startLoad starts the receivers, waits for their first join, then starts
// the senders, each starting a new message every every.
func startLoad(tb testing.TB, room string, every time.Duration, senders, receivers []clientSpec) *load {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{tb: tb, room: room, every: every, ctx: ctx, cancel: cancel, stop: make(chan struct{})}
	tb.Cleanup(func() {
		l.cancel()
		if !waitGroupFor(&l.swg, 20*time.Second) || !waitGroupFor(&l.rwg, 20*time.Second) {
			tb.Errorf("traffic goroutines did not end")
		}
	})
	for _, spec := range receivers {
		r := &loadReceiver{loadClient: loadClient{clientSpec: spec, closes: map[string]int{}}}
		l.receivers = append(l.receivers, r)
		l.rwg.Go(func() { l.receive(r) })
	}
	storetest.CheckFor(tb, 30*time.Second, func() error {
		for _, r := range l.receivers {
			r.mu.Lock()
			ok := r.started
			r.mu.Unlock()
			if !ok {
				return fmt.Errorf("receiver %s has not joined %s", r.Name, room)
			}
		}
		return nil
	})
	for i, spec := range senders {
		s := &loadSender{loadClient: loadClient{clientSpec: spec, closes: map[string]int{}},
			acked: map[string]string{}, errs: map[string]int{}}
		l.senders = append(l.senders, s)
		// Spread the senders' ticks over the interval.
		delay := every * time.Duration(i) / time.Duration(len(senders))
		l.swg.Go(func() { l.send(s, delay) })
	}
	return l
}

func waitGroupFor(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func (l *load) send(s *loadSender, delay time.Duration) {
	var ws *websocket.Conn
	defer func() {
		if ws != nil {
			ws.CloseNow()
		}
	}()
	base := 0
	ref := 0
	next := time.Now().Add(delay)
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		case <-l.ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		next = next.Add(l.every)
		if now := time.Now(); next.Before(now) {
			next = now // behind after a fault: no burst to catch up
		}
		cid := fmt.Sprintf("%s-%d", s.Name, i)
		s.mu.Lock()
		s.sent++
		s.mu.Unlock()
		for {
			if ws == nil {
				if ws = s.connect(l.ctx, &base); ws == nil {
					s.mu.Lock()
					s.unacked = append(s.unacked, cid)
					s.mu.Unlock()
					return
				}
			}
			ref++
			sentAt := time.Now()
			err := writeJSON(l.ctx, ws, map[string]any{"type": "send", "room": l.room, "text": "load " + cid, "client_id": cid, "ref": ref})
			var f wframe
			if err == nil {
				f, err = readReply(l.ctx, ws, strconv.Itoa(ref), 20*time.Second)
			}
			if err != nil {
				if l.ctx.Err() == nil {
					s.closed(err)
				}
				ws.CloseNow()
				ws = nil
				continue
			}
			wait := time.Since(sentAt)
			s.mu.Lock()
			s.attempts++
			s.maxWait = max(s.maxWait, wait)
			if f.Type == "ack" {
				if prev, ok := s.acked[cid]; ok && prev != f.ID {
					s.bad = append(s.bad, fmt.Sprintf("%s: client_id %s acked as %s and as %s", s.Name, cid, prev, f.ID))
				}
				if f.ClientID != cid {
					s.bad = append(s.bad, fmt.Sprintf("%s: ack for client_id %s carries client_id %q", s.Name, cid, f.ClientID))
				}
				s.acked[cid] = f.ID
				s.mu.Unlock()
				break
			}
			s.errs[f.Code]++
			s.maxErrWait = max(s.maxErrWait, wait)
			s.mu.Unlock()
			select { // retry the same client_id
			case <-l.ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// readReply reads until the ack or error frame with ref.
func readReply(ctx context.Context, ws *websocket.Conn, ref string, timeout time.Duration) (wframe, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		_, data, err := ws.Read(rctx)
		if err != nil {
			return wframe{}, err
		}
		var f wframe
		if json.Unmarshal(data, &f) == nil && string(f.Ref) == ref && (f.Type == "ack" || f.Type == "error") {
			return f, nil
		}
	}
}

func (l *load) receive(r *loadReceiver) {
	base := 0
	for l.ctx.Err() == nil {
		ws := r.connect(l.ctx, &base)
		if ws == nil {
			return
		}
		err := l.receiveOn(r, ws)
		ws.CloseNow()
		if l.ctx.Err() != nil {
			return
		}
		r.closed(err)
	}
}

// receiveOn joins on ws (with since after the first join) and records
// frames until the socket ends.
func (l *load) receiveOn(r *loadReceiver, ws *websocket.Conn) error {
	join := func() error {
		r.mu.Lock()
		r.joins++
		m := map[string]any{"type": "join", "room": l.room, "ref": "join-" + strconv.Itoa(r.joins)}
		if r.started {
			since := r.start
			if len(r.got) > 0 {
				since = r.got[len(r.got)-1]
			}
			m["since"] = since
		}
		r.mu.Unlock()
		return writeJSON(l.ctx, ws, m)
	}
	if err := join(); err != nil {
		return err
	}
	for {
		_, data, err := ws.Read(l.ctx)
		if err != nil {
			return err
		}
		var f wframe
		if err := json.Unmarshal(data, &f); err != nil {
			r.violation("non-JSON frame %q", data)
			continue
		}
		switch f.Type {
		case "joined":
			r.mu.Lock()
			if !r.started {
				r.started, r.start = true, f.LastID
			} else if f.Recovered == nil || !*f.Recovered {
				r.bad = append(r.bad, fmt.Sprintf("%s: rejoin with since got recovered=%v", r.Name, f.Recovered))
			}
			r.mu.Unlock()
		case "message":
			if f.Room != l.room {
				continue
			}
			r.mu.Lock()
			prev := r.start
			if len(r.got) > 0 {
				prev = r.got[len(r.got)-1]
			}
			if !idAfter(f.ID, prev) {
				r.bad = append(r.bad, fmt.Sprintf("%s: got %s after %s (duplicate or out of order)", r.Name, f.ID, prev))
			}
			r.got = append(r.got, f.ID)
			r.mu.Unlock()
		case "presence":
			r.mu.Lock()
			r.presence = append(r.presence, presenceEvent{f.User, f.State, time.Now()})
			r.mu.Unlock()
		case "error":
			if strings.HasPrefix(strings.Trim(string(f.Ref), `"`), "join-") {
				// The join failed (Redis away): try again on this socket.
				select {
				case <-l.ctx.Done():
					return l.ctx.Err()
				case <-time.After(200 * time.Millisecond):
				}
				if err := join(); err != nil {
					return err
				}
			}
		}
	}
}

// received returns how many messages each receiver has got.
func (l *load) received() []int {
	out := make([]int, len(l.receivers))
	for i, r := range l.receivers {
		r.mu.Lock()
		out[i] = len(r.got)
		r.mu.Unlock()
	}
	return out
}

// waitFlowing waits until every receiver has got n more messages than now:
// traffic flows end to end through every instance the receivers are on.
func (l *load) waitFlowing(n int, timeout time.Duration) {
	l.tb.Helper()
	base := l.received()
	storetest.CheckFor(l.tb, timeout, func() error {
		for i, c := range l.received() {
			if c < base[i]+n {
				return fmt.Errorf("receiver %s got %d messages, waiting for %d", l.receivers[i].Name, c, base[i]+n)
			}
		}
		return nil
	})
}

// errCount is the number of error frames with code the senders got.
func (l *load) errCount(code string) int {
	n := 0
	for _, s := range l.senders {
		s.mu.Lock()
		n += s.errs[code]
		s.mu.Unlock()
	}
	return n
}

// loadFigures sum up a run.
type loadFigures struct {
	Sent, Attempts, Acked, Unacked, Delivered, History int
	SenderReconnects, ReceiverReconnects               int
	Lost, StoredTwice, Missed, Duplicated              int // acked not in history; extra copies stored; not delivered; delivered twice
	Errors                                             map[string]int
	Closes                                             map[string]int
	MaxErrWait, MaxWait                                time.Duration
}

func (f loadFigures) String() string {
	return fmt.Sprintf("sent %d (send frames %d), acked %d, unacked %d, in history %d, delivered %d; "+
		"lost %d, stored twice %d, deliveries missed %d, delivered twice %d; "+
		"reconnects: senders %d receivers %d; error frames %v; socket ends %v; longest send→error %v, send→reply %v",
		f.Sent, f.Attempts, f.Acked, f.Unacked, f.History, f.Delivered,
		f.Lost, f.StoredTwice, f.Missed, f.Duplicated,
		f.SenderReconnects, f.ReceiverReconnects,
		f.Errors, f.Closes, f.MaxErrWait.Round(time.Millisecond), f.MaxWait.Round(time.Millisecond))
}

// finish stops the senders (each finishes its current message), waits for
// every receiver to get the newest message, stops the receivers, and
// accounts for every message: every acked one is in history once under its
// client_id, nothing is stored twice, and each receiver got exactly the
// stored messages after its first join, once each, in stream-ID order.
func (l *load) finish(base, token string) loadFigures {
	tb := l.tb
	tb.Helper()
	close(l.stop)
	if !waitGroupFor(&l.swg, 45*time.Second) {
		tb.Errorf("senders did not get their last message acked within 45s")
		l.cancel()
		waitGroupFor(&l.swg, 10*time.Second)
	}
	hist := history(tb, base, token, l.room)
	histIDs := ids(hist)
	newest := ""
	if len(histIDs) > 0 {
		newest = histIDs[len(histIDs)-1]
	}
	err := func() error { // bounded wait for the receivers to catch up
		deadline := time.Now().Add(30 * time.Second)
		for {
			var lag []string
			for _, r := range l.receivers {
				r.mu.Lock()
				last := r.start
				if len(r.got) > 0 {
					last = r.got[len(r.got)-1]
				}
				if last != newest && idAfter(newest, last) {
					lag = append(lag, fmt.Sprintf("%s at %s", r.Name, last))
				}
				r.mu.Unlock()
			}
			if len(lag) == 0 {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("receivers did not get the newest message %s within 30s: %v", newest, lag)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	// Anything still arriving now would be a duplicate: give it a moment.
	time.Sleep(300 * time.Millisecond)
	l.cancel()
	if !waitGroupFor(&l.rwg, 20*time.Second) {
		tb.Errorf("receivers did not stop")
	}
	if err != nil {
		tb.Error(err)
	}

	fig := loadFigures{History: len(hist), Errors: map[string]int{}, Closes: map[string]int{}}
	for i := 1; i < len(histIDs); i++ {
		if !idAfter(histIDs[i], histIDs[i-1]) {
			tb.Errorf("history out of order at %d: %s after %s", i, histIDs[i], histIDs[i-1])
		}
	}
	type key struct{ user, cid string }
	stored := map[key][]string{}
	for _, m := range hist {
		stored[key{m.User, m.ClientID}] = append(stored[key{m.User, m.ClientID}], m.ID)
	}
	for k, v := range stored {
		if len(v) > 1 {
			fig.StoredTwice += len(v) - 1
			tb.Errorf("message of %s with client_id %q stored %d times: %v", k.user, k.cid, len(v), v)
		}
	}
	var bad []string
	for _, s := range l.senders {
		s.mu.Lock()
		fig.Sent += s.sent
		fig.Attempts += s.attempts
		fig.Acked += len(s.acked)
		fig.Unacked += len(s.unacked)
		fig.SenderReconnects += max(0, s.connects-1)
		fig.MaxErrWait = max(fig.MaxErrWait, s.maxErrWait)
		fig.MaxWait = max(fig.MaxWait, s.maxWait)
		for k, v := range s.errs {
			fig.Errors[k] += v
		}
		for k, v := range s.closes {
			fig.Closes[k] += v
		}
		bad = append(bad, s.bad...)
		lost := 0
		for cid, id := range s.acked {
			got := stored[key{s.User, cid}]
			switch {
			case len(got) == 0:
				lost++
				if lost <= 5 {
					tb.Errorf("LOST: %s's message %s was acked as %s but is not in history", s.Name, cid, id)
				}
			case got[0] != id:
				tb.Errorf("%s's message %s was acked as %s but is stored as %s", s.Name, cid, id, got[0])
			}
		}
		fig.Lost += lost
		if lost > 0 {
			tb.Errorf("%s: %d acked messages lost", s.Name, lost)
		}
		s.mu.Unlock()
	}
	senders := map[string]*loadSender{}
	for _, s := range l.senders {
		senders[s.User] = s
	}
	for k, v := range stored {
		s := senders[k.user]
		if s == nil {
			continue
		}
		s.mu.Lock()
		_, acked := s.acked[k.cid]
		s.mu.Unlock()
		if !acked && !slices.Contains(s.unacked, k.cid) {
			tb.Errorf("history has %s's message %q (%v), which was never sent", k.user, k.cid, v)
		}
	}
	for _, r := range l.receivers {
		r.mu.Lock()
		fig.Delivered += len(r.got)
		fig.ReceiverReconnects += max(0, r.connects-1)
		for k, v := range r.closes {
			fig.Closes[k] += v
		}
		bad = append(bad, r.bad...)
		var want []string
		for _, id := range histIDs {
			if idAfter(id, r.start) {
				want = append(want, id)
			}
		}
		if !slices.Equal(r.got, want) {
			missing, dups, desc := compareIDs(r.got, want)
			fig.Missed += missing
			fig.Duplicated += dups
			tb.Errorf("receiver %s (from %s): %s", r.Name, r.start, desc)
		}
		r.mu.Unlock()
	}
	for _, b := range bad {
		tb.Error(b)
	}
	return fig
}

// diffIDs describes how got differs from want.
func diffIDs(got, want []string) string {
	_, _, desc := compareIDs(got, want)
	return desc
}

// compareIDs counts the IDs of want missing from got and the repeats in
// got, and describes the difference.
func compareIDs(got, want []string) (missing, dups int, desc string) {
	wantSet := map[string]bool{}
	for _, id := range want {
		wantSet[id] = true
	}
	seen := map[string]int{}
	extra := 0
	for _, id := range got {
		seen[id]++
		if seen[id] == 2 {
			dups++
		}
		if !wantSet[id] {
			extra++
		}
	}
	var miss []string
	for _, id := range want {
		if seen[id] == 0 {
			miss = append(miss, id)
		}
	}
	first := -1
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			first = i
			break
		}
	}
	return len(miss), dups, fmt.Sprintf("got %d messages, want %d: %d missing (first: %v), %d duplicated, %d not in history, first difference at index %d",
		len(got), len(want), len(miss), miss[:min(5, len(miss))], dups, extra, first)
}

// readyWatch polls /readyz of an instance and keeps every answer.
type readyWatch struct {
	mu      sync.Mutex
	samples []readySample
}

type readySample struct {
	at     time.Time
	status int // 0: no answer
}

func watchReady(tb testing.TB, url string) *readyWatch {
	w := &readyWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	tb.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for ctx.Err() == nil {
			st := 0
			req, _ := http.NewRequestWithContext(ctx, "GET", url+"/readyz", nil)
			if res, err := c.Do(req); err == nil {
				st = res.StatusCode
				res.Body.Close()
			}
			w.mu.Lock()
			w.samples = append(w.samples, readySample{time.Now(), st})
			w.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return w
}

// first returns when /readyz first answered status after from.
func (w *readyWatch) first(status int, from time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.samples {
		if s.status == status && s.at.After(from) {
			return s.at, true
		}
	}
	return time.Time{}, false
}

// faultCluster is a redis-server with append-only persistence and two
// chatd processes on it, with users for traffic.
type faultCluster struct {
	srv  *storetest.Server
	a, b *chatdtest.Proc
	env  map[string]string
}

const faultRedisTimeout = time.Second

func startFaultCluster(t *testing.T, fsync string) *faultCluster {
	t.Helper()
	srv := storetest.Start(t, storetest.Options{AppendOnly: true, Fsync: fsync})
	srv.RequireReal(t)
	// Runs before storetest's kill: a paused server must not stay paused.
	t.Cleanup(func() {
		if srv.Proc != nil {
			_ = srv.Proc.Signal(syscall.SIGCONT)
		}
	})
	env := map[string]string{
		"REDIS_URL":           "redis://" + srv.Addr,
		"CHAT_JWT_SECRET":     faultSecret,
		"CHAT_SEND_RATE":      "1000",
		"CHAT_SEND_BURST":     "1000",
		"CHAT_REDIS_TIMEOUT":  faultRedisTimeout.String(),
		"CHAT_PRESENCE_TTL":   "2s",
		"CHAT_SHUTDOWN_GRACE": "2s",
		"CHAT_LOG_LEVEL":      "info",
	}
	c := &faultCluster{srv: srv, env: env}
	c.a = mustStartChatdProc(t, "a", env)
	c.b = mustStartChatdProc(t, "b", env)
	return c
}

// mustUsers registers and logs in users at once (argon2id makes each
// slow) and returns their tokens by name, as user does.
func mustUsers(tb testing.TB, base string, names ...string) map[string]string {
	tb.Helper()
	type result struct {
		name, token string
		err         error
	}
	out := make(chan result, len(names))
	for _, name := range names {
		go func() {
			r := result{name: name}
			creds := map[string]string{"username": name, "password": "pw-" + name + "-long"}
			r.err = postJSON(base+"/api/register", creds, nil, http.StatusCreated, http.StatusConflict)
			if r.err == nil {
				var tok struct{ Token string }
				r.err = postJSON(base+"/api/login", creds, &tok, http.StatusOK)
				r.token = tok.Token
			}
			out <- r
		}()
	}
	tokens := map[string]string{}
	for range names {
		r := <-out
		if r.err != nil {
			tb.Fatalf("user %s: %v", r.name, r.err)
		}
		tokens[r.name] = r.token
	}
	return tokens
}

// postJSON posts body and decodes the answer into out; any status but ok
// is an error.
func postJSON(url string, body, out any, ok ...int) error {
	b, _ := json.Marshal(body)
	c := &http.Client{Timeout: 60 * time.Second}
	res, err := c.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if !slices.Contains(ok, res.StatusCode) {
		return fmt.Errorf("POST %s: %d %s", url, res.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// traffic registers 4 users, each with a sender and a receiver socket,
// half starting on each instance and moving to the other when theirs is
// gone, and starts them.
func (c *faultCluster) traffic(t *testing.T) *load {
	t.Helper()
	tokens := mustUsers(t, c.a.URL, "user0", "user1", "user2", "user3")
	var senders, receivers []clientSpec
	for i := range 4 {
		bases := []string{c.a.URL, c.b.URL}
		if i%2 == 1 {
			bases = []string{c.b.URL, c.a.URL}
		}
		u := fmt.Sprintf("user%d", i)
		senders = append(senders, clientSpec{fmt.Sprintf("sender%d", i), u, tokens[u], bases})
		receivers = append(receivers, clientSpec{fmt.Sprintf("receiver%d", i), u, tokens[u], bases})
	}
	return startLoad(t, "general", 60*time.Millisecond, senders, receivers)
}

// TestFaultRedisStopped: Redis is stopped for about 3 s under traffic from
// two instances and started again on the same port and files.
func TestFaultRedisStopped(t *testing.T) {
	c := startFaultCluster(t, "")
	l := c.traffic(t)
	wa, wb := watchReady(t, c.a.URL), watchReady(t, c.b.URL)
	l.waitFlowing(60, 30*time.Second)

	unavailBefore, closesBefore := l.errCount("unavailable"), closeTotal(l)
	down := time.Now()
	if err := c.srv.Proc.Stop(); err != nil {
		t.Fatal(err)
	}
	storetest.CheckFor(t, 10*time.Second, func() error {
		if l.errCount("unavailable") == unavailBefore {
			return fmt.Errorf("no send got an unavailable error frame since Redis stopped")
		}
		return nil
	})
	firstErr := time.Since(down)
	time.Sleep(time.Until(down.Add(3 * time.Second)))
	up := time.Now()
	if err := c.srv.Proc.StartAgain(); err != nil {
		t.Fatal(err)
	}
	closesDuring := closeTotal(l) - closesBefore
	l.waitFlowing(60, 30*time.Second)
	for _, w := range []struct {
		name string
		w    *readyWatch
	}{{"a", wa}, {"b", wb}} {
		if at, ok := w.w.first(503, down); !ok || at.After(up.Add(2*faultRedisTimeout)) {
			t.Errorf("instance %s: /readyz did not answer 503 while Redis was down", w.name)
		} else {
			t.Logf("instance %s: /readyz 503 %v after Redis stopped", w.name, at.Sub(down).Round(time.Millisecond))
		}
	}
	storetest.CheckFor(t, 30*time.Second, func() error {
		for _, w := range []*readyWatch{wa, wb} {
			if _, ok := w.first(200, time.Now().Add(-time.Second)); !ok {
				return fmt.Errorf("/readyz not 200 again after Redis came back")
			}
		}
		return nil
	})
	fig := l.finish(c.b.URL, l.receivers[0].Token)
	t.Logf("Redis stopped %v: first unavailable %v after the stop; sockets closed by the server while Redis was down: %d",
		up.Sub(down).Round(time.Millisecond), firstErr.Round(time.Millisecond), closesDuring)
	t.Logf("figures: %v", fig)
	checkFaultFigures(t, fig)
	if closesDuring > 0 {
		t.Errorf("%d sockets were closed while Redis was down; they should stay open", closesDuring)
	}
}

func closeTotal(l *load) int {
	n := 0
	for _, s := range l.senders {
		n += s.closeCount()
	}
	for _, r := range l.receivers {
		n += r.closeCount()
	}
	return n
}

// checkFaultFigures: sends did not hang past the Redis timeout, and the
// only error code seen is unavailable.
func checkFaultFigures(t *testing.T, fig loadFigures) {
	t.Helper()
	// Each send makes a few Redis calls, each bounded by the timeout; the
	// margin is for a loaded machine.
	limit := 2*faultRedisTimeout + 4*time.Second
	if fig.MaxErrWait > limit {
		t.Errorf("a send waited %v for its error frame; want within %v (CHAT_REDIS_TIMEOUT %v)", fig.MaxErrWait, limit, faultRedisTimeout)
	}
	if fig.MaxWait > limit {
		t.Errorf("a send waited %v for its reply; want within %v", fig.MaxWait, limit)
	}
	for code := range fig.Errors {
		if code != "unavailable" {
			t.Errorf("error frames with code %q during the fault: %v", code, fig.Errors)
		}
	}
	if fig.Acked == 0 || fig.Delivered == 0 {
		t.Errorf("no traffic: %v", fig)
	}
}

// TestFaultInstanceKilled: one of two instances is killed with SIGKILL
// under traffic; its clients reconnect to the other and recover with
// since, and its users go offline for the others within the presence TTL.
func TestFaultInstanceKilled(t *testing.T) {
	c := startFaultCluster(t, "")
	ghostTok := user(t, c.a.URL, "ghost")
	l := c.traffic(t)
	ghost := connect(t, c.a.URL, ghostTok)
	ghost.send(map[string]any{"type": "join", "room": "general"})
	ghost.read("joined")
	l.waitFlowing(60, 30*time.Second)

	killed := time.Now()
	c.a.Kill(t)
	// Receivers 1 and 3 are on b, which stays up: they see ghost go.
	var offline time.Duration
	storetest.CheckFor(t, 20*time.Second, func() error {
		for _, r := range []*loadReceiver{l.receivers[1], l.receivers[3]} {
			r.mu.Lock()
			for _, p := range r.presence {
				if p.user == "ghost" && p.state == "offline" && p.at.After(killed) {
					offline = p.at.Sub(killed)
				}
			}
			r.mu.Unlock()
		}
		if offline == 0 {
			return fmt.Errorf("no offline presence for ghost on instance b since the kill")
		}
		return nil
	})
	// Presence TTL 2s: offline within TTL + TTL/4, plus a margin.
	if limit := 2500*time.Millisecond + 3*time.Second; offline > limit {
		t.Errorf("ghost went offline %v after the kill; want within %v", offline, limit)
	}
	l.waitFlowing(60, 30*time.Second)
	fig := l.finish(c.b.URL, l.receivers[1].Token)
	moved := 0
	for _, cl := range []*loadClient{&l.senders[0].loadClient, &l.senders[2].loadClient, &l.receivers[0].loadClient, &l.receivers[2].loadClient} {
		if cl.reconnects() == 0 {
			t.Errorf("%s was on the killed instance but never reconnected", cl.Name)
		} else {
			moved++
		}
	}
	t.Logf("instance a killed: %d clients moved to b; ghost offline on b %v after the kill (presence TTL 2s)", moved, offline.Round(time.Millisecond))
	t.Logf("figures: %v", fig)
	checkFaultFigures(t, fig)
}

// TestFaultRedisPaused: Redis is paused (SIGSTOP) past the timeouts for
// about 3 s and resumed.
func TestFaultRedisPaused(t *testing.T) {
	c := startFaultCluster(t, "")
	l := c.traffic(t)
	wa, wb := watchReady(t, c.a.URL), watchReady(t, c.b.URL)
	l.waitFlowing(60, 30*time.Second)

	unavailBefore, closesBefore := l.errCount("unavailable"), closeTotal(l)
	paused := time.Now()
	if err := c.srv.Proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	unavail := l.errCount("unavailable") - unavailBefore
	resumed := time.Now()
	if err := c.srv.Proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	closesDuring := closeTotal(l) - closesBefore
	l.waitFlowing(60, 30*time.Second)
	if unavail == 0 {
		t.Errorf("no send got an unavailable error frame during a 3s pause (CHAT_REDIS_TIMEOUT %v)", faultRedisTimeout)
	}
	for _, w := range []struct {
		name string
		w    *readyWatch
	}{{"a", wa}, {"b", wb}} {
		if at, ok := w.w.first(503, paused); !ok || at.After(resumed.Add(2*faultRedisTimeout)) {
			t.Errorf("instance %s: /readyz did not answer 503 while Redis was paused", w.name)
		}
	}
	storetest.CheckFor(t, 30*time.Second, func() error {
		for _, w := range []*readyWatch{wa, wb} {
			if _, ok := w.first(200, time.Now().Add(-time.Second)); !ok {
				return fmt.Errorf("/readyz not 200 again after Redis resumed")
			}
		}
		return nil
	})
	fig := l.finish(c.a.URL, l.receivers[0].Token)
	t.Logf("Redis paused %v: %d unavailable error frames during the pause; sockets closed by the server during it: %d",
		resumed.Sub(paused).Round(time.Millisecond), unavail, closesDuring)
	t.Logf("figures: %v", fig)
	checkFaultFigures(t, fig)
	if closesDuring > 0 {
		t.Errorf("%d sockets were closed while Redis was paused; they should stay open", closesDuring)
	}
}

// TestFaultRedisCrashFsyncAlways: Redis with appendfsync always is killed
// (SIGKILL, as a crash) under traffic and started again on its files: no
// acked message is lost.
func TestFaultRedisCrashFsyncAlways(t *testing.T) {
	c := startFaultCluster(t, "always")
	l := c.traffic(t)
	l.waitFlowing(60, 30*time.Second)
	ackedBefore := 0
	for _, s := range l.senders {
		s.mu.Lock()
		ackedBefore += len(s.acked)
		s.mu.Unlock()
	}
	if err := c.srv.Proc.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := c.srv.Proc.StartAgain(); err != nil {
		t.Fatal(err)
	}
	l.waitFlowing(60, 30*time.Second)
	fig := l.finish(c.a.URL, l.receivers[0].Token)
	t.Logf("Redis (appendfsync always) killed with %d messages acked and restarted; figures: %v", ackedBefore, fig)
	checkFaultFigures(t, fig)
}

// TestFaultRetention: with CHAT_HISTORY_MAXLEN=10, a join with a since that
// retention dropped gets recovered:false and then what is still kept; a
// since at or past the trimmed part gets recovered:true.
func TestFaultRetention(t *testing.T) {
	srv := storetest.Start(t, storetest.Options{AppendOnly: true})
	srv.RequireReal(t) // MAXLEN ~ trimming and the trimmed-ID bookkeeping are Redis's
	d := mustRunChatd(t, map[string]string{"REDIS_URL": "redis://" + srv.Addr, "CHAT_HISTORY_MAXLEN": "10",
		"CHAT_SEND_RATE": "1000", "CHAT_SEND_BURST": "1000"})
	tok := user(t, d.URL, "alice")
	// One message per millisecond at most, so that no two messages share
	// a stream-ID millisecond: the case "since = the last trimmed ID" is
	// then the same on every run.
	s := connect(t, d.URL, tok)
	var acked []string
	for i := range 300 {
		s.send(map[string]any{"type": "send", "room": "general", "text": fmt.Sprint("r ", i), "client_id": fmt.Sprint("r-", i)})
		acked = append(acked, s.read("ack").ID)
		time.Sleep(1200 * time.Microsecond)
	}
	kept := ids(history(t, d.URL, tok, "general"))
	if len(kept) == 0 || len(kept) >= 300 {
		t.Fatalf("history keeps %d of 300 messages with CHAT_HISTORY_MAXLEN=10", len(kept))
	}
	if !slices.Equal(kept, acked[300-len(kept):]) {
		t.Fatalf("history is not the newest %d acked messages", len(kept))
	}
	t.Logf("CHAT_HISTORY_MAXLEN=10: %d of 300 messages kept", len(kept))
	dropped := 300 - len(kept)
	cases := []struct {
		name, since string
		recovered   bool
		want        []string
	}{
		{"first message", acked[0], false, kept},
		{"the last but one trimmed", acked[dropped-2], false, kept},
		// Every message after the last trimmed one is kept.
		{"the last trimmed", acked[dropped-1], true, kept},
		{"oldest kept", kept[0], true, kept[1:]},
		{"newest", acked[299], true, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := connect(t, d.URL, tok)
			r.send(map[string]any{"type": "join", "room": "general", "since": tc.since})
			j := readFrame(t, r, "joined")
			if j.Recovered == nil || *j.Recovered != tc.recovered {
				t.Errorf("join since %s: recovered = %v, want %v", tc.since, fmtBool(j.Recovered), tc.recovered)
			}
			if j.LastID != acked[299] {
				t.Errorf("joined last_id = %s, want %s", j.LastID, acked[299])
			}
			var got []string
			for range tc.want {
				got = append(got, readFrame(t, r, "message").ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("replay after since %s: %s", tc.since, diffIDs(got, tc.want))
			}
			// Nothing more: a ping's pong comes next.
			r.send(map[string]any{"type": "ping", "ref": "end"})
			for {
				f := readFrame(t, r, "")
				if f.Type == "presence" {
					continue
				}
				if f.Type != "pong" {
					t.Errorf("after the replay got %s %s, want only the pong", f.Type, f.ID)
				}
				break
			}
		})
	}
}

func fmtBool(b *bool) string {
	if b == nil {
		return "absent"
	}
	return strconv.FormatBool(*b)
}

// readFrame reads the next frame of type typ (any type if empty) from s,
// failing on an error frame.
func readFrame(tb testing.TB, s *socket, typ string) wframe {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, data, err := s.c.Read(ctx)
		if err != nil {
			tb.Fatalf("read %s: %v", typ, err)
		}
		var f wframe
		_ = json.Unmarshal(data, &f)
		if f.Type == "error" {
			tb.Fatalf("error frame: %s", data)
		}
		if typ == "" || f.Type == typ {
			return f
		}
	}
}

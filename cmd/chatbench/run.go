package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxSocketsPerWorker keeps every process well below the machine's cap of
// 20,000 open files, leaving room for the HTTP and pipe descriptors.
const maxSocketsPerWorker = 15000

// sliceOf returns the half-open range of clients worker i of n handles.
func sliceOf(clients, i, n int) (lo, hi int) {
	return i * clients / n, (i + 1) * clients / n
}

// Result is what one worker measured, and after merging what the run
// measured. Counts of messages cover the measurement window only.
type Result struct {
	Clients            int              `json:"clients"`
	Connected          int              `json:"connected"`
	ConnectFailed      int              `json:"connect_failed"`
	ConnectError       string           `json:"connect_error,omitempty"`
	Sent               int64            `json:"sent"`
	Acked              int64            `json:"acked"`
	Skipped            int64            `json:"skipped"`
	Rejected           int64            `json:"rejected"`
	Unacked            int64            `json:"unacked"`
	Deliveries         int64            `json:"deliveries"`
	Expected           int64            `json:"expected"`
	Lost               int64            `json:"lost"`
	LostReconnected    int64            `json:"lost_reconnected"`
	Dups               int64            `json:"dups"`
	Reorders           int64            `json:"reorders"`
	Foreign            int64            `json:"foreign"`
	Disconnects        int64            `json:"disconnects"`
	ReconnectedClients int64            `json:"reconnected_clients"`
	Unrecovered        int64            `json:"unrecovered"`
	BadFrames          int64            `json:"bad_frames"`
	ErrCodes           map[string]int64 `json:"error_codes,omitempty"`
	CloseCodes         map[string]int64 `json:"close_codes,omitempty"`
	LostSample         []string         `json:"lost_sample,omitempty"`
	Latency            *Hist            `json:"latency"`
	AckLatency         *Hist            `json:"ack_latency"`

	EventCounts
	EventLatency    *Hist `json:"event_latency,omitempty"`
	EventAckLatency *Hist `json:"event_ack_latency,omitempty"`
	// GeneratorCPUS is the CPU seconds a worker process used in the
	// measured window; 0 for a worker inside the parent, whose process
	// the parent measures.
	GeneratorCPUS float64 `json:"generator_cpu_s,omitempty"`
}

// EventCounts are what a run counted of edits and reactions (--events),
// measured ones only: sent, acked with an event ID, acked without one (a
// reaction that changed nothing), refused and never answered; their
// deliveries to the members of their rooms, expected and missing as for
// messages; and events a member got twice or after a higher stream ID.
type EventCounts struct {
	EventsSent               int64 `json:"events_sent,omitempty"`
	EditsAcked               int64 `json:"edits_acked,omitempty"`
	ReactionsAcked           int64 `json:"reactions_acked,omitempty"`
	EventsNoop               int64 `json:"events_noop,omitempty"`
	EventsRejected           int64 `json:"events_rejected,omitempty"`
	EventsUnacked            int64 `json:"events_unacked,omitempty"`
	EventDeliveries          int64 `json:"event_deliveries,omitempty"`
	EventsExpected           int64 `json:"events_expected,omitempty"`
	EventsMissing            int64 `json:"events_missing,omitempty"`
	EventsMissingReconnected int64 `json:"events_missing_reconnected,omitempty"`
	EventDups                int64 `json:"event_dups,omitempty"`
	EventReorders            int64 `json:"event_reorders,omitempty"`
}

func (e *EventCounts) add(o *EventCounts) {
	e.EventsSent += o.EventsSent
	e.EditsAcked += o.EditsAcked
	e.ReactionsAcked += o.ReactionsAcked
	e.EventsNoop += o.EventsNoop
	e.EventsRejected += o.EventsRejected
	e.EventsUnacked += o.EventsUnacked
	e.EventDeliveries += o.EventDeliveries
	e.EventsExpected += o.EventsExpected
	e.EventsMissing += o.EventsMissing
	e.EventsMissingReconnected += o.EventsMissingReconnected
	e.EventDups += o.EventDups
	e.EventReorders += o.EventReorders
}

// merge adds o into r.
func (r *Result) merge(o *Result) {
	r.Clients += o.Clients
	r.Connected += o.Connected
	r.ConnectFailed += o.ConnectFailed
	if r.ConnectError == "" {
		r.ConnectError = o.ConnectError
	}
	r.Sent += o.Sent
	r.Acked += o.Acked
	r.Skipped += o.Skipped
	r.Rejected += o.Rejected
	r.Unacked += o.Unacked
	r.Deliveries += o.Deliveries
	r.Expected += o.Expected
	r.Lost += o.Lost
	r.LostReconnected += o.LostReconnected
	r.Dups += o.Dups
	r.Reorders += o.Reorders
	r.Foreign += o.Foreign
	r.Disconnects += o.Disconnects
	r.ReconnectedClients += o.ReconnectedClients
	r.Unrecovered += o.Unrecovered
	r.BadFrames += o.BadFrames
	r.ErrCodes = mergeCounts(r.ErrCodes, o.ErrCodes)
	r.CloseCodes = mergeCounts(r.CloseCodes, o.CloseCodes)
	for _, s := range o.LostSample {
		if len(r.LostSample) < 20 {
			r.LostSample = append(r.LostSample, s)
		}
	}
	if r.Latency == nil {
		r.Latency = &Hist{}
	}
	if r.AckLatency == nil {
		r.AckLatency = &Hist{}
	}
	r.Latency.Merge(o.Latency)
	r.AckLatency.Merge(o.AckLatency)
	r.EventCounts.add(&o.EventCounts)
	if o.EventLatency != nil {
		if r.EventLatency == nil {
			r.EventLatency = &Hist{}
		}
		r.EventLatency.Merge(o.EventLatency)
	}
	if o.EventAckLatency != nil {
		if r.EventAckLatency == nil {
			r.EventAckLatency = &Hist{}
		}
		r.EventAckLatency.Merge(o.EventAckLatency)
	}
	r.GeneratorCPUS += o.GeneratorCPUS
}

func mergeCounts(a, b map[string]int64) map[string]int64 {
	if len(b) == 0 {
		return a
	}
	if a == nil {
		a = make(map[string]int64, len(b))
	}
	for k, v := range b {
		a[k] += v
	}
	return a
}

// The worker protocol: newline-delimited JSON, worker messages on its
// stdout and parent messages on its stdin. A worker reports ready once its
// clients have joined; the parent answers with the common start time; the
// worker reports its acked messages and events when its senders are done;
// the parent answers with every worker's acked messages and events for the
// rooms, which is what each receiver must have; the worker reports its
// result.
type toParent struct {
	Ready    *readyInfo `json:"ready,omitempty"`
	SentDone bool       `json:"sent_done,omitempty"`
	Acked    [][]int64  `json:"acked,omitempty"`  // per room: flattened keys
	Events   [][]int64  `json:"events,omitempty"` // per room: flattened events
	Result   *Result    `json:"result,omitempty"`
	Err      string     `json:"err,omitempty"`
}

type readyInfo struct {
	Connected int    `json:"connected"`
	Failed    int    `json:"failed"`
	FirstErr  string `json:"first_err,omitempty"`
}

type toWorker struct {
	Start        int64     `json:"start,omitempty"` // Unix nanoseconds
	Expect       [][]int64 `json:"expect,omitempty"`
	ExpectEvents [][]int64 `json:"expect_events,omitempty"`
}

// link carries protocol messages as JSON lines. It is safe for concurrent
// use by one sender and one receiver.
type link struct {
	w       io.Writer
	wmu     sync.Mutex
	lines   chan []byte
	quit    chan struct{}
	quitOne sync.Once
}

func newLink(r io.Reader, w io.Writer) *link {
	l := &link{w: w, lines: make(chan []byte, 4), quit: make(chan struct{})}
	go func() {
		defer close(l.lines)
		br := bufio.NewReaderSize(r, 1<<16)
		for {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 {
				select {
				case l.lines <- line:
				case <-l.quit:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return l
}

// close stops the reader goroutine once its input has ended or it would
// block; it does not close the underlying reader or writer.
func (l *link) close() { l.quitOne.Do(func() { close(l.quit) }) }

func (l *link) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	_, err = l.w.Write(append(b, '\n'))
	return err
}

func (l *link) recv(ctx context.Context, v any) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case line, ok := <-l.lines:
		if !ok {
			return io.ErrUnexpectedEOF
		}
		return json.Unmarshal(line, v)
	}
}

// runWorker runs the clients of worker cfg.workerIndex, talking to the
// parent over ln. Its errors are also reported to the parent.
func runWorker(ctx context.Context, cfg *config, pl *plan, tokens map[string]string, ln *link, log *slog.Logger) (err error) {
	defer func() {
		if err != nil {
			_ = ln.send(toParent{Err: err.Error()})
		}
	}()
	lo, hi := sliceOf(pl.clients, cfg.workerIndex, cfg.workerCount)
	b := &bench{cfg: cfg, plan: pl, codec: newTextCodec(cfg.runID)}
	clients := make([]*client, 0, hi-lo)
	for i := lo; i < hi; i++ {
		tok, ok := tokens[pl.users[i]]
		if !ok {
			return fmt.Errorf("no token for %s", pl.users[i])
		}
		srv := cfg.servers[i%len(cfg.servers)]
		c := &client{
			b:       b,
			user:    pl.users[i],
			token:   tok,
			url:     wsURL(srv, cfg.batch),
			local:   sourceAddr(cfg, i),
			rooms:   pl.clientRooms[i],
			pos:     make(map[int]int, len(pl.clientRooms[i])),
			sender:  pl.senderOf[i],
			recv:    make([]roomRecv, len(pl.clientRooms[i])),
			pending: make(map[uint32]*pendingSend),
		}
		for p, r := range c.rooms {
			c.pos[r] = p
		}
		clients = append(clients, c)
	}

	connCtx, cancelConns := context.WithCancel(ctx)
	defer cancelConns()
	var conns sync.WaitGroup
	defer conns.Wait()
	defer cancelConns()
	conns.Go(func() { b.watchWrites(connCtx) })

	// Open connections at the ramp rate; this worker's share of it.
	firsts := make(chan error, len(clients))
	conns.Go(func() { // tracked, so its conns.Go never races conns.Wait
		rate := cfg.ramp / float64(cfg.workerCount)
		t0 := time.Now()
		for k, c := range clients {
			due := t0.Add(time.Duration(float64(k) / rate * float64(time.Second)))
			if d := time.Until(due); d > 0 && !sleepCtx(connCtx, d) {
				for range clients[k:] {
					firsts <- connCtx.Err()
				}
				return
			}
			conns.Go(func() { c.run(connCtx, firsts) })
		}
	})
	ready := readyInfo{}
	tick := time.NewTicker(5 * time.Second)
	for done := 0; done < len(clients); {
		select {
		case err := <-firsts:
			done++
			if err != nil {
				ready.Failed++
				if ready.FirstErr == "" {
					ready.FirstErr = err.Error()
				}
			} else {
				ready.Connected++
			}
		case <-tick.C:
			log.Info("connecting", "done", done, "of", len(clients), "failed", ready.Failed)
		case <-ctx.Done():
			tick.Stop()
			return ctx.Err()
		}
	}
	tick.Stop()
	if err := ln.send(toParent{Ready: &ready}); err != nil {
		return err
	}

	var start toWorker
	if err := ln.recv(ctx, &start); err != nil {
		return fmt.Errorf("waiting for start: %w", err)
	}
	b.start.Store(start.Start)
	b.measureStart.Store(start.Start + int64(cfg.warmup))
	b.sendEnd.Store(start.Start + int64(cfg.warmup) + int64(cfg.duration))
	sendEnd := b.sendEnd.Load()
	ownCPUDone := make(chan float64, 1)
	if cfg.workerCount > 1 { // a process of its own: measure it
		go func() { ownCPUDone <- cpuBetween(ctx, b.measureStart.Load(), sendEnd) }()
	} else {
		ownCPUDone <- 0
	}

	var senders sync.WaitGroup
	if !cfg.idle {
		for _, c := range clients {
			c.mu.Lock()
			ok := c.connected
			c.mu.Unlock()
			if c.sender >= 0 && ok {
				senders.Go(func() { c.sendLoop(connCtx) })
			}
		}
	}
	senders.Wait()
	if !sleepCtx(ctx, time.Until(time.Unix(0, sendEnd))) {
		return ctx.Err()
	}

	// Give unanswered sends until the drain deadline.
	drainEnd := time.Unix(0, sendEnd).Add(cfg.drain)
	for time.Now().Before(drainEnd) && slices.ContainsFunc(clients, func(c *client) bool { return c.pendingCount() > 0 }) {
		if !sleepCtx(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
	acked := make([][]msgKey, len(pl.rooms))
	ackedEvents := make([][]eventKey, len(pl.rooms))
	for _, c := range clients {
		c.abandon()
		c.mu.Lock()
		for _, a := range c.ackedMsgs {
			acked[a.room] = append(acked[a.room], a.key)
		}
		for _, a := range c.ackedEvents {
			ackedEvents[a.room] = append(ackedEvents[a.room], a.key)
		}
		c.mu.Unlock()
	}
	msg := toParent{SentDone: true, Acked: make([][]int64, len(acked)), Events: make([][]int64, len(acked))}
	for r, keys := range acked {
		msg.Acked[r] = flattenKeys(keys)
		msg.Events[r] = flattenEvents(ackedEvents[r])
	}
	if err := ln.send(msg); err != nil {
		return err
	}

	var exp toWorker
	if err := ln.recv(ctx, &exp); err != nil {
		return fmt.Errorf("waiting for the expected set: %w", err)
	}
	if len(exp.Expect) != len(pl.rooms) || len(exp.ExpectEvents) != len(pl.rooms) {
		return fmt.Errorf("expected set covers %d rooms and %d for events, want %d", len(exp.Expect), len(exp.ExpectEvents), len(pl.rooms))
	}
	expect := expected{msgs: make([][]msgKey, len(pl.rooms)), events: make([][]eventKey, len(pl.rooms))}
	for r, flat := range exp.Expect {
		if expect.msgs[r], err = unflattenKeys(flat); err != nil {
			return err
		}
		if expect.events[r], err = unflattenEvents(exp.ExpectEvents[r]); err != nil {
			return err
		}
	}

	// Wait for the deliveries still on their way, then account.
	deadline := drainEnd
	if min := time.Now().Add(500 * time.Millisecond); deadline.Before(min) {
		deadline = min
	}
	for time.Now().Before(deadline) && !allDelivered(clients, expect) {
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return ctx.Err()
		}
	}
	res := account(clients, expect, cfg.events > 0)

	// Close our own connections; the run goroutines then end.
	b.closing.Store(true)
	var closing sync.WaitGroup
	for _, c := range clients {
		closing.Go(c.close)
	}
	waitTimeout(&closing, 3*time.Second)
	cancelConns()
	conns.Wait()

	res.Clients = len(clients)
	res.Connected = ready.Connected
	res.ConnectFailed = ready.Failed
	res.ConnectError = ready.FirstErr
	res.Sent = b.sent.Load()
	res.Acked = b.acked.Load()
	res.Skipped = b.skipped.Load()
	res.Rejected = b.rejected.Load()
	res.Unacked = b.unacked.Load()
	res.Deliveries = b.deliveries.Load()
	res.Dups = b.dups.Load()
	res.Reorders = b.reorders.Load()
	res.Foreign = b.foreign.Load()
	res.Disconnects = b.disconnects.Load()
	res.Unrecovered = b.unrecovered.Load()
	res.BadFrames = b.badFrames.Load()
	b.mu.Lock()
	res.ErrCodes = b.errCodes
	res.CloseCodes = b.closeCodes
	b.mu.Unlock()
	res.Latency = b.lat.Snapshot()
	res.AckLatency = b.ackLat.Snapshot()
	res.EventsSent = b.eventsSent.Load()
	res.EditsAcked, res.ReactionsAcked = b.editsAcked.Load(), b.reactionsAcked.Load()
	res.EventsNoop, res.EventsRejected, res.EventsUnacked = b.eventsNoop.Load(), b.eventsRejected.Load(), b.eventsUnacked.Load()
	res.EventDups, res.EventReorders = b.eventDups.Load(), b.eventReorders.Load()
	if cfg.events > 0 {
		res.EventAckLatency = b.evAckLat.Snapshot()
	}
	if v := <-ownCPUDone; !math.IsNaN(v) {
		res.GeneratorCPUS = v
	}
	return ln.send(toParent{Result: res})
}

// cpuBetween returns the CPU seconds this process uses between two Unix
// nanosecond instants, or NaN if it cannot tell or ctx ends first.
func cpuBetween(ctx context.Context, from, to int64) float64 {
	if !sleepCtx(ctx, time.Until(time.Unix(0, from))) {
		return math.NaN()
	}
	a, ok1 := ownCPU()
	if !sleepCtx(ctx, time.Until(time.Unix(0, to))) {
		return math.NaN()
	}
	b, ok2 := ownCPU()
	if !ok1 || !ok2 {
		return math.NaN()
	}
	return b - a
}

// expected is what every member of a room must have received: the acked
// measured messages, and the acked measured events sorted by stream ID.
type expected struct {
	msgs   [][]msgKey
	events [][]eventKey
}

// allDelivered reports whether every connected client has every expected
// message and event of its rooms. It compares counts first, which is
// cheap, and checks the actual messages and events only when the counts
// say it could be so.
func allDelivered(clients []*client, expect expected) bool {
	for _, c := range clients {
		c.mu.Lock()
		if !c.connected {
			c.mu.Unlock()
			continue
		}
		for p, r := range c.rooms {
			rr := &c.recv[p]
			if rr.measured < int64(len(expect.msgs[r])) || len(rr.events) < len(expect.events[r]) {
				c.mu.Unlock()
				return false
			}
			if n, _ := rr.check(expect.msgs[r], 0); n > 0 {
				c.mu.Unlock()
				return false
			}
			if _, n, _ := rr.checkEvents(expect.events[r], nil, 0); n > 0 {
				c.mu.Unlock()
				return false
			}
		}
		c.mu.Unlock()
	}
	return true
}

// account counts, for every connected client and each of its rooms, the
// expected messages and events it did not receive: as lost (missing) when
// the client stayed connected throughout, as lost_reconnected (missing
// after a reconnect) when it had to rejoin. With events it also counts
// the expected events that arrived, and their latency from when they were
// due.
func account(clients []*client, expect expected, events bool) *Result {
	res := &Result{}
	if events {
		res.EventLatency = &Hist{}
	}
	for _, c := range clients {
		c.mu.Lock()
		if !c.connected {
			c.mu.Unlock()
			continue
		}
		if !c.stable {
			res.ReconnectedClients++
		}
		for p, r := range c.rooms {
			res.Expected += int64(len(expect.msgs[r]))
			n, sample := c.recv[p].check(expect.msgs[r], 3)
			got, missing, evSample := c.recv[p].checkEvents(expect.events[r], res.EventLatency, 3)
			res.EventsExpected += int64(len(expect.events[r]))
			res.EventDeliveries += got
			if c.stable {
				res.Lost += n
				res.EventsMissing += missing
			} else {
				res.LostReconnected += n
				res.EventsMissingReconnected += missing
			}
			for _, k := range sample {
				if len(res.LostSample) < 20 {
					res.LostSample = append(res.LostSample, fmt.Sprintf("%s missed %s in %s", c.user, k, c.b.plan.rooms[r]))
				}
			}
			for _, id := range evSample {
				if len(res.LostSample) < 20 {
					res.LostSample = append(res.LostSample, fmt.Sprintf("%s missed event %s in %s", c.user, id, c.b.plan.rooms[r]))
				}
			}
		}
		c.mu.Unlock()
	}
	return res
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// wsURL turns a server base URL into its /ws URL.
func wsURL(server string, batch bool) string {
	u, err := url.Parse(server)
	if err != nil {
		return server
	}
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/ws"
	if batch {
		u.RawQuery = "batch=1"
	}
	return u.String()
}

// sourceAddr returns the local address client i dials from: spread over
// --source-addrs (nil without), since binding sockets to several loopback
// addresses multiplies the ephemeral ports available towards one server.
func sourceAddr(cfg *config, i int) net.IP {
	if len(cfg.sourceAddrs) == 0 {
		return nil
	}
	return cfg.sourceAddrs[(i/len(cfg.servers))%len(cfg.sourceAddrs)]
}

// newRunID returns 6 random lowercase base-36 characters.
func newRunID() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [6]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = digits[int(b[i])%len(digits)]
	}
	return string(b[:])
}

// worker is the parent's handle on one worker: a child process, or a
// goroutine when one worker suffices.
type worker struct {
	ln   *link
	done chan struct{} // closed when the worker has ended
}

// startWorkers starts cfg.workerCount workers for one run: in this process
// when there is one, otherwise as child processes of this executable with
// the same flags and the hidden worker flags appended. The returned stop
// function ends them all; cancelling ctx kills child processes.
func startWorkers(ctx context.Context, cfg *config, pl *plan, tokens map[string]string, log *slog.Logger) ([]*worker, func(), error) {
	n := cfg.workerCount
	if n == 1 {
		pr, pw := io.Pipe() // parent -> worker
		wr, ww := io.Pipe() // worker -> parent
		w := &worker{ln: newLink(wr, pw), done: make(chan struct{})}
		wcfg := *cfg
		wcfg.workerIndex = 0
		wl := newLink(pr, ww)
		go func() {
			defer close(w.done)
			if err := runWorker(ctx, &wcfg, pl, tokens, wl, log); err != nil {
				log.Debug("worker ended", "err", err)
			}
		}()
		stop := func() {
			_ = pw.Close()
			_ = wr.CloseWithError(io.ErrClosedPipe)
			<-w.done
			w.ln.close()
			wl.close()
		}
		return []*worker{w}, stop, nil
	}

	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	tf, err := os.CreateTemp("", "chatbench-tokens-*.json")
	if err != nil {
		return nil, nil, err
	}
	tokenFile := tf.Name()
	if err := json.NewEncoder(tf).Encode(tokens); err != nil {
		_ = tf.Close()
		_ = os.Remove(tokenFile)
		return nil, nil, err
	}
	if err := tf.Close(); err != nil {
		_ = os.Remove(tokenFile)
		return nil, nil, err
	}
	type proc struct {
		w     *worker
		cmd   *exec.Cmd
		stdin *os.File
	}
	var procs []proc
	stop := func() {
		for _, p := range procs {
			_ = p.stdin.Close() // a waiting worker sees EOF and exits
		}
		for _, p := range procs {
			select {
			case <-p.w.done:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.w.done
			}
			p.w.ln.close()
		}
		_ = os.Remove(tokenFile)
	}
	for i := range n {
		// The step of a sweep (clients, rooms and what follows from them)
		// goes last, so it overrides the sweep's own flags.
		args := append(slices.Clone(cfg.args),
			"--clients", strconv.Itoa(cfg.clients),
			"--rooms", strconv.Itoa(cfg.rooms),
			"--rooms-per-client", strconv.Itoa(cfg.roomsPerClient),
			"--senders", strconv.Itoa(cfg.senders),
			"--user-prefix", cfg.userPrefix,
			"--run-id", cfg.runID,
			"--token-file", tokenFile,
			"--worker-index", strconv.Itoa(i),
			"--worker-count", strconv.Itoa(n))
		cmd := exec.Command(exe, args...)
		cmd.Stderr = os.Stderr
		// Own pipes rather than StdoutPipe: cmd.Wait would close that one
		// as soon as the process exits, possibly before its last line is read.
		inR, inW, err := os.Pipe()
		if err != nil {
			stop()
			return nil, nil, err
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			_ = inR.Close()
			_ = inW.Close()
			stop()
			return nil, nil, err
		}
		cmd.Stdin, cmd.Stdout = inR, outW
		err = cmd.Start()
		_ = inR.Close()
		_ = outW.Close()
		if err != nil {
			_ = inW.Close()
			_ = outR.Close()
			stop()
			return nil, nil, fmt.Errorf("start worker %d: %w", i, err)
		}
		w := &worker{ln: newLink(outR, inW), done: make(chan struct{})}
		go func() {
			err := cmd.Wait()
			if err != nil && ctx.Err() == nil {
				log.Warn("worker exited", "worker", i, "err", err)
			}
			close(w.done)
		}()
		go func() {
			select {
			case <-ctx.Done(): // a cancelled run ends its workers
				_ = cmd.Process.Kill()
			case <-w.done:
			}
		}()
		procs = append(procs, proc{w: w, cmd: cmd, stdin: inW})
	}
	ws := make([]*worker, len(procs))
	for i, p := range procs {
		ws[i] = p.w
	}
	log.Info("workers started", "count", n)
	return ws, stop, nil
}

// phase receives one message from every worker within d.
func phase(ctx context.Context, ws []*worker, d time.Duration, what string) ([]toParent, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	out := make([]toParent, len(ws))
	for i, w := range ws {
		if err := w.ln.recv(ctx, &out[i]); err != nil {
			return nil, fmt.Errorf("worker %d, waiting for %s: %w", i, what, err)
		}
		if out[i].Err != "" {
			return nil, fmt.Errorf("worker %d: %s", i, out[i].Err)
		}
	}
	return out, nil
}

// runOnce runs the benchmark once with cfg.clients clients and returns
// its report.
func runOnce(ctx context.Context, cfg *config, au *authState, log *slog.Logger) (*Report, error) {
	cfg.runID = newRunID()
	pl, err := newPlan(cfg)
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	if r := pl.maxSenderRate(cfg.rate); !cfg.idle && r > 20 {
		log.Warn("a sender sends more than 20 msg/s, the server's default per-user limit (CHAT_SEND_RATE)", "per_sender", r)
	}
	if !pl.spread {
		log.Warn("the rooms' members are not spread evenly over the servers: make --clients a multiple of the servers", "servers", pl.servers)
	}
	// The baseline is the lower of the samples before and after the logins:
	// argon2id's working memory can keep the server's RSS up for a while.
	rep := newReport(cfg)
	rep.RoomsPerClient, rep.ClientsInRooms, rep.Spread = pl.roomsPerClient, pl.inRooms, pl.spread
	rep.RSSBase = sampleRSS(ctx, cfg)
	tokens, logins, err := au.ensure(ctx, pl)
	if err != nil {
		return nil, err
	}
	rep.Logins = logins
	if after := sampleRSS(ctx, cfg); after.ok && (!rep.RSSBase.ok || after.bytes < rep.RSSBase.bytes) {
		rep.RSSBase = after
	}

	cfg.workerCount = cfg.workers
	if cfg.workerCount == 0 {
		cfg.workerCount = (cfg.clients + maxSocketsPerWorker - 1) / maxSocketsPerWorker
	}
	cfg.workerCount = max(1, min(cfg.workerCount, cfg.clients))
	rep.Workers = cfg.workerCount

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ws, stop, err := startWorkers(runCtx, cfg, pl, tokens, log)
	if err != nil {
		return nil, err
	}
	defer stop()
	defer cancel()

	rampTime := time.Duration(float64(cfg.clients) / cfg.ramp * float64(time.Second))
	readies, err := phase(ctx, ws, rampTime+3*cfg.connectTimeout+time.Minute, "ready")
	if err != nil {
		return nil, err
	}
	connected := 0
	for _, r := range readies {
		connected += r.Ready.Connected
		if r.Ready.FirstErr != "" {
			log.Warn("some clients did not connect", "failed", r.Ready.Failed, "first_err", r.Ready.FirstErr)
		}
	}
	if connected == 0 {
		return nil, errors.New("no client could connect")
	}
	log.Info("all clients ready", "connected", connected)
	rep.RSSReady = sampleRSS(ctx, cfg)

	start := time.Now().Add(500 * time.Millisecond)
	for _, w := range ws {
		if err := w.ln.send(toWorker{Start: start.UnixNano()}); err != nil {
			return nil, err
		}
	}
	rep.Start = start
	// CPU time is sampled at the start and the end of the measured window.
	measureStart, sendEnd := start.Add(cfg.warmup), start.Add(cfg.warmup+cfg.duration)
	cpuDone := make(chan [2]*cpuSample, 1)
	go func() {
		var s [2]*cpuSample
		for i, at := range []time.Time{measureStart, sendEnd} {
			if !sleepCtx(runCtx, time.Until(at)) {
				break
			}
			s[i] = sampleCPU(runCtx, cfg)
		}
		cpuDone <- s
	}()
	runLen := cfg.warmup + cfg.duration + cfg.drain
	dones, err := phase(ctx, ws, time.Until(start)+runLen+time.Minute, "the end of sending")
	if err != nil {
		return nil, err
	}
	rep.RSSEnd = sampleRSS(ctx, cfg)
	expect, expectEvents := make([][]int64, len(pl.rooms)), make([][]int64, len(pl.rooms))
	for _, d := range dones {
		if len(d.Acked) != len(pl.rooms) || len(d.Events) != len(pl.rooms) {
			return nil, fmt.Errorf("a worker reported acks for %d rooms and events for %d, want %d", len(d.Acked), len(d.Events), len(pl.rooms))
		}
		for r, flat := range d.Acked {
			expect[r] = append(expect[r], flat...)
			expectEvents[r] = append(expectEvents[r], d.Events[r]...)
		}
	}
	for _, w := range ws {
		if err := w.ln.send(toWorker{Expect: expect, ExpectEvents: expectEvents}); err != nil {
			return nil, err
		}
	}
	results, err := phase(ctx, ws, cfg.drain+time.Minute, "the result")
	if err != nil {
		return nil, err
	}
	total := &Result{}
	for _, r := range results {
		if r.Result == nil {
			return nil, errors.New("a worker sent no result")
		}
		total.merge(r.Result)
	}
	rep.fill(total)
	cpu := <-cpuDone
	generator := math.NaN()
	if cpu[0] != nil && cpu[1] != nil && cpu[0].ownOK && cpu[1].ownOK {
		generator = cpu[1].own - cpu[0].own
		if cfg.workerCount > 1 { // the workers are processes of their own
			generator += total.GeneratorCPUS
		}
	}
	rep.fillCPU(cfg, cpu[0], cpu[1], generator)
	return rep, nil
}

package main

import (
	"context"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// newSenderClient returns sender 0 of a one-sender bench whose slots are
// every spacing, slots of them from a start shortly after now, all
// measured.
func newSenderClient(spacing time.Duration, slots int, inflight int, ackTimeout time.Duration) *client {
	cfg := &config{senders: 1, rate: float64(time.Second) / float64(spacing), inflight: inflight, ackTimeout: ackTimeout}
	pl := &plan{rooms: []string{"r0"}, roomIndex: map[string]int{"r0": 0}, speaks: [][]speak{{{room: 0, turn: 0, of: 1}}}}
	b := &bench{cfg: cfg, plan: pl, codec: newTextCodec("t1")}
	start := time.Now().Add(50 * time.Millisecond).UnixNano()
	b.start.Store(start)
	b.measureStart.Store(start)
	b.sendEnd.Store(start + int64(slots)*int64(spacing))
	return &client{b: b, user: "u", rooms: []int{0}, pos: map[int]int{0: 0}, sender: 0, recv: make([]roomRecv, 1), pending: make(map[uint32]*pendingSend)}
}

func pendingSeqs(c *client) []uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []uint32
	for seq := range c.pending {
		out = append(out, seq)
	}
	return out
}

// TestSendLoopWaitsWhileFull checks that slots coming due while inflight
// sends are unanswered wait, at most inflight of them with the oldest
// skipped, and that the newest waiting slot is sent as soon as an ack
// frees a place.
func TestSendLoopWaitsWhileFull(t *testing.T) {
	t.Parallel()
	const spacing, slots = 50 * time.Millisecond, 20
	c := newSenderClient(spacing, slots, 1, time.Hour)
	start, sendEnd := c.b.start.Load(), c.b.sendEnd.Load()
	done := make(chan struct{})
	go func() { defer close(done); c.sendLoop(context.Background()) }()

	// One slot is sent (the first, unless the loop started late); a later
	// one finds it unanswered and the loop waits.
	for {
		c.mu.Lock()
		waiting := c.waiting
		c.mu.Unlock()
		if waiting {
			break
		}
		time.Sleep(time.Millisecond)
	}
	first := pendingSeqs(c)
	if len(first) != 1 {
		t.Fatalf("pending %v while waiting, want one send", first)
	}
	// The ack comes half-way between two slots, k and k+1: slot k has
	// pushed out the slots before it and goes out at once.
	k := (time.Now().UnixNano()-start)/int64(spacing) + 1
	ackAt := start + k*int64(spacing) + int64(spacing)/2
	if k+3 >= slots {
		t.Fatalf("the loop waited only from slot %d of %d", k-1, slots)
	}
	time.Sleep(time.Until(time.Unix(0, ackAt)))
	c.onAck([]byte(c.b.codec.clientID(0, first[0])), nil, nil, time.Now().UnixNano())
	select {
	case <-done:
	case <-time.After(time.Until(time.Unix(0, sendEnd)) + 5*time.Second):
		t.Fatal("the send loop did not end after sendEnd")
	}
	if l := time.Since(time.Unix(0, sendEnd)); l > time.Second {
		t.Errorf("the send loop ended %v after sendEnd", l)
	}
	if sent, skipped, acked := c.b.sent.Load(), c.b.skipped.Load(), c.b.acked.Load(); sent != 2 || skipped != slots-2 || acked != 1 {
		t.Fatalf("sent %d skipped %d acked %d, want 2, %d, 1", sent, skipped, acked, slots-2)
	}
	// Slot k, or a later one if this machine woke the loop that late.
	p := pendingSeqs(c)
	if len(p) != 1 || int64(p[0]) < k || int64(p[0]) > k+2 {
		t.Fatalf("pending %v, want slot %d", p, k)
	}
	c.mu.Lock()
	sentAt, intended := c.pending[p[0]].sentAt, c.pending[p[0]].intended
	c.mu.Unlock()
	if want := start + int64(p[0])*int64(spacing); intended != want || sentAt < ackAt {
		t.Fatalf("slot %d intended at +%v and sent at +%v, want +%v and after the ack at +%v",
			p[0], time.Duration(intended-start), time.Duration(sentAt-start), time.Duration(want-start), time.Duration(ackAt-start))
	}
}

func TestSendLoopEndsWithCtx(t *testing.T) {
	t.Parallel()
	c := newSenderClient(10*time.Millisecond, 100000, 1, time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.sendLoop(ctx) }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the send loop did not end with its ctx")
	}
}

// TestSendLoopExpires checks that a send unanswered for the ack timeout
// frees its inflight slot while the loop waits for one.
func TestSendLoopExpires(t *testing.T) {
	t.Parallel()
	srv := wsReader(t, nil)
	conn, err := dialWS(context.Background(), &net.Dialer{}, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()

	// A send expires 250 ms after it is written, which frees the place for
	// the newest slot waiting: slots 0, 2, 5 and 7 are sent, the others
	// skipped, and all but the last expire (the last too if the loop ends
	// late on a busy machine).
	const spacing = 100 * time.Millisecond
	c := newSenderClient(spacing, 10, 1, 250*time.Millisecond)
	c.cs = &connState{conn: conn}
	c.sendLoop(context.Background())
	sent, skipped, unacked := c.b.sent.Load(), c.b.skipped.Load(), c.b.unacked.Load()
	pending := int64(len(pendingSeqs(c)))
	if sent+skipped != 10 || sent < 3 || unacked < sent-1 || unacked+pending != sent {
		t.Fatalf("sent %d skipped %d unacked %d pending %v; want 10 slots, at least 3 sent, all but one expired",
			sent, skipped, unacked, pendingSeqs(c))
	}
	if cs := c.cs; cs.writesBegun.Load() != uint64(sent) || cs.writesEnded.Load() != uint64(sent) {
		t.Fatalf("%d writes begun, %d ended, want %d", cs.writesBegun.Load(), cs.writesEnded.Load(), sent)
	}
}

func TestStuckWrites(t *testing.T) {
	t.Parallel()
	b := &bench{}
	idle, busy, stuck := &connState{}, &connState{}, &connState{}
	for _, cs := range []*connState{idle, busy, stuck} {
		b.watch(cs)
	}
	t0 := time.Now().UnixNano()
	busy.writesBegun.Store(1)
	stuck.writesBegun.Store(1)
	at := func(d time.Duration) []*connState { return b.stuckWrites(t0 + int64(d)) }
	if s := at(writeTimeout / 2); len(s) != 0 {
		t.Fatalf("stuck after half the write timeout: %v", s)
	}
	busy.writesEnded.Store(1) // progress, and another write begins
	busy.writesBegun.Store(2)
	if s := at(writeTimeout + time.Second); len(s) != 1 || s[0] != stuck {
		t.Fatalf("stuck %v, want only the stuck connection", s)
	}
	// busy's progress was seen at writeTimeout+1s: stuck from then on.
	if s := at(2 * writeTimeout); len(s) != 1 || s[0] != stuck {
		t.Fatalf("stuck %v, want only the stuck connection", s)
	}
	if s := at(2*writeTimeout + time.Second); len(s) != 2 {
		t.Fatalf("stuck %v, want both busy connections", s)
	}
	b.unwatch(stuck)
	b.unwatch(busy)
	if s := at(time.Hour); len(s) != 0 {
		t.Fatalf("stuck %v after unwatch", s)
	}
}

func TestIsEventSlot(t *testing.T) {
	t.Parallel()
	for _, f := range []float64{0, 0.1, 0.25, 0.5, 0.9, 0.999} {
		var events []int64
		for n := range int64(1000) {
			if isEventSlot(n, f) {
				events = append(events, n)
			}
		}
		if want := int(f * 1000); len(events) < want-1 || len(events) > want+1 {
			t.Errorf("share %v: %d event slots of 1000, want %d", f, len(events), want)
		}
		// Evenly spread: the gaps differ by one slot at most.
		for i := 2; i < len(events); i++ {
			if d, e := events[i]-events[i-1], events[1]-events[0]; d < e-1 || d > e+1 {
				t.Errorf("share %v: gap %d after slot %d, first gap %d", f, d, events[i-1], e)
				break
			}
		}
	}
	if isEventSlot(9, 0.1) != true || isEventSlot(0, 0.1) || isEventSlot(8, 0.1) {
		t.Error("at 0.1 the 10th slot of a room should be its first event")
	}
}

// TestEventSlots checks what a sender's slots send with events on: a
// message until one is acked, then edits and reaction toggles in turn on
// the newest acked message, acked by ref; and that an ack without an ID
// counts as a reaction that changed nothing.
func TestEventSlots(t *testing.T) {
	t.Parallel()
	c := newSenderClient(time.Second, 10, 8, time.Hour)
	c.b.cfg.events = 0.5
	c.targets = map[int]*eventTarget{}
	c.b.plan.rooms = []string{"r0", "r1"}
	send := func(seq uint32, room int, event bool) *pendingSend {
		t.Helper()
		s := slot{seq: seq, room: room, due: c.b.measureStart.Load(), event: event}
		if n := c.sendSlots([]slot{s}, c.b.measureStart.Load()); n != 1 {
			t.Fatalf("slot %d not sent", seq)
		}
		return c.pending[seq]
	}
	ack := func(clientID, ref, id string) {
		c.onAck([]byte(clientID), []byte(ref), []byte(id), time.Now().UnixNano())
	}
	if p := send(0, 0, true); p.kind != sendMessage {
		t.Fatalf("an event slot before any ack sends %d, want a message", p.kind)
	}
	ack(c.b.codec.clientID(0, 0), "0", "5-0")
	if p := send(1, 0, false); p.kind != sendMessage {
		t.Fatalf("a message slot sends %d", p.kind)
	}
	if p := send(2, 1, true); p.kind != sendMessage {
		t.Fatal("an event slot in a room with no acked message does not send a message")
	}
	ack(c.b.codec.clientID(0, 1), "1", "7-0")
	ack(c.b.codec.clientID(0, 2), "2", "6-0")
	p := send(3, 0, true)
	if want := `{"type":"edit","ref":3,"room":"r0","text":"` + c.b.codec.format(0, 3, p.intended) + `","id":"7-0"}`; p.kind != sendEdit || string(p.frame) != want {
		t.Fatalf("first event: %d %s, want an edit %s", p.kind, p.frame, want)
	}
	want := []string{`"id":"7-0","emoji":"👍","on":true}`, "edit", `"id":"7-0","emoji":"👍","on":false}`, "edit", `"id":"7-0","emoji":"👍","on":true}`}
	for i, w := range want {
		p := send(uint32(4+i), 0, true)
		if w == "edit" && p.kind != sendEdit || w != "edit" && (p.kind != sendReact || !strings.HasSuffix(string(p.frame), w)) {
			t.Fatalf("event %d: %d %s, want %s", i+2, p.kind, p.frame, w)
		}
	}
	ack("", "3", "8-0")
	ack("", "4", "9-0")
	ack("", "6", "") // a reaction that changed nothing
	ack("", "99", "10-0")
	ack("x", "5", "11-0") // another sender's client_id: not this ack
	if c.b.editsAcked.Load() != 1 || c.b.reactionsAcked.Load() != 1 || c.b.eventsNoop.Load() != 1 || c.b.acked.Load() != 3 {
		t.Fatalf("acked %d edits, %d reactions, %d unchanged, %d messages; want 1, 1, 1, 3",
			c.b.editsAcked.Load(), c.b.reactionsAcked.Load(), c.b.eventsNoop.Load(), c.b.acked.Load())
	}
	wantEvents := []ackedEvent{{0, eventKey{streamID{8, 0}, c.b.measureStart.Load()}}, {0, eventKey{streamID{9, 0}, c.b.measureStart.Load()}}}
	if !slices.Equal(c.ackedEvents, wantEvents) || len(c.ackedMsgs) != 3 {
		t.Fatalf("acked events %v and %d messages; want %v and 3", c.ackedEvents, len(c.ackedMsgs), wantEvents)
	}
	if got := slices.Sorted(maps.Keys(c.pending)); !slices.Equal(got, []uint32{5, 7, 8}) {
		t.Fatalf("pending %v, want 5, 7, 8", got)
	}
	// A newer message becomes the target; the toggle starts over on it.
	ack(c.b.codec.clientID(0, 1), "1", "7-0") // a repeat: ignored
	c.pending[20] = &pendingSend{seq: 20, room: 0, measured: true}
	ack(c.b.codec.clientID(0, 20), "20", "12-0")
	if p := send(21, 0, true); p.kind != sendEdit || !strings.HasSuffix(string(p.frame), `"id":"12-0"}`) {
		t.Fatalf("after a newer ack: %s", p.frame)
	}
	if p := send(22, 0, true); !strings.HasSuffix(string(p.frame), `"id":"12-0","emoji":"👍","on":true}`) {
		t.Fatalf("the first reaction on a new target: %s", p.frame)
	}
	if s, e := c.b.sent.Load(), c.b.eventsSent.Load(); s != 3 || e != 8 {
		t.Fatalf("sent %d messages and %d events, want 3 and 8", s, e)
	}
}

// TestEventsGivenUpOnDisconnect checks that a reconnect writes pending
// sends again but not pending edits and reactions, which count as
// unacked.
func TestEventsGivenUpOnDisconnect(t *testing.T) {
	t.Parallel()
	c := newSenderClient(time.Second, 10, 8, time.Hour)
	c.pending[1] = &pendingSend{seq: 1, kind: sendMessage, measured: true, lastWrite: 1}
	c.pending[2] = &pendingSend{seq: 2, kind: sendEdit, measured: true, lastWrite: 1}
	c.pending[3] = &pendingSend{seq: 3, kind: sendReact, measured: false, lastWrite: 1}
	c.mu.Lock()
	c.dropEventsLocked()
	c.mu.Unlock()
	if got := slices.Sorted(maps.Keys(c.pending)); !slices.Equal(got, []uint32{1}) || c.pending[1].lastWrite != 0 {
		t.Fatalf("pending after a disconnect %v, want the send alone, waiting", got)
	}
	if n := c.b.eventsUnacked.Load(); n != 1 {
		t.Fatalf("%d events unacked, want the measured one", n)
	}
}

// TestReadLoopSendsFreed runs a sender against a server that answers
// every send: the places its acks free are taken by the slots waiting
// for them (the read loop sends those itself), every send is acked, and
// every slot of the schedule is sent or skipped, none lost in between.
func TestReadLoopSendsFreed(t *testing.T) {
	t.Parallel()
	f, srv := newFakeServer(t)
	f.mu.Lock()
	f.users["u"] = true
	f.rooms["r0"] = &fakeRoom{members: make(map[*fakeConn]bool), byID: make(map[string]int), reacts: make(map[string]bool)}
	f.mu.Unlock()
	const slots, inflight = 400, 4
	c := newSenderClient(time.Millisecond, slots, inflight, time.Hour)
	c.b.cfg.connectTimeout = 5 * time.Second
	c.token, c.url = "tok-u", wsURL(srv.URL, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cs, readDone, err := c.connect(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.cs = cs
	c.mu.Unlock()
	c.sendLoop(ctx)
	for deadline := time.Now().Add(5 * time.Second); c.pendingCount() > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	sent, acked, skipped := c.b.sent.Load(), c.b.acked.Load(), c.b.skipped.Load()
	if sent+skipped != slots || acked != sent || sent <= inflight || c.b.unacked.Load() != 0 {
		t.Fatalf("sent %d, acked %d, skipped %d, unacked %d of %d slots; want every slot sent or skipped, more than %d sent, all acked",
			sent, acked, skipped, c.b.unacked.Load(), slots, inflight)
	}
	f.mu.Lock()
	stored := len(f.rooms["r0"].msgs)
	f.mu.Unlock()
	if int64(stored) != sent {
		t.Fatalf("the server stored %d messages, chatbench sent %d", stored, sent)
	}
	cancel()
	<-readDone
}

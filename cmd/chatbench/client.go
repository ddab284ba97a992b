package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redstream/chat/transport/wire"
)

// readLimit bounds one incoming WebSocket message. A joined reply lists
// every online member of the room and a batched frame may hold many
// messages, so it is far above the server's 64 KiB limit for client frames.
const readLimit = 16 << 20

// writeTimeout bounds a write that makes no progress: the watchdog closes
// a connection on which writes have been stuck for this long (checked
// every writeCheck), as a per-write deadline would.
const (
	writeTimeout = 10 * time.Second
	writeCheck   = time.Second
)

// bench is what all clients of one worker share: the schedule, the
// histograms and the counters. Counters are atomics and the histograms
// are lock-free, so clients update them without coordination.
type bench struct {
	cfg   *config
	plan  *plan
	codec textCodec

	// The schedule, in Unix nanoseconds, set once when the parent says
	// start; read loops already running read it, hence atomics.
	start, measureStart, sendEnd atomic.Int64

	lat      AtomicHist // delivery latency of measured messages, µs
	ackLat   AtomicHist // send to ack of measured sends, µs
	evAckLat AtomicHist // send to ack of measured edits and reactions, µs

	closing atomic.Bool // set before the run closes its own connections

	sent, acked, skipped, rejected, unacked atomic.Int64
	deliveries, dups, reorders, foreign     atomic.Int64
	disconnects, unrecovered, badFrames     atomic.Int64

	// Edits and reactions (--events): measured ones sent, acked with an
	// event ID (edits and reactions), acked without one (a reaction that
	// changed nothing), refused, and never answered; and at receivers,
	// events seen twice or after a higher stream ID.
	eventsSent, editsAcked, reactionsAcked, eventsNoop atomic.Int64
	eventsRejected, eventsUnacked                      atomic.Int64
	eventDups, eventReorders                           atomic.Int64

	mu         sync.Mutex
	errCodes   map[string]int64 // error frame codes answering sends
	closeCodes map[string]int64 // why connections ended, by close status

	liveMu sync.Mutex
	live   map[*connState]struct{} // open connections, for watchWrites
}

// watch adds cs to the connections whose writes watchWrites checks.
func (b *bench) watch(cs *connState) {
	b.liveMu.Lock()
	if b.live == nil {
		b.live = make(map[*connState]struct{})
	}
	cs.seenEnded, cs.quietSince = cs.writesEnded.Load(), time.Now().UnixNano()
	b.live[cs] = struct{}{}
	b.liveMu.Unlock()
}

func (b *bench) unwatch(cs *connState) {
	b.liveMu.Lock()
	delete(b.live, cs)
	b.liveMu.Unlock()
}

// watchWrites bounds writes until ctx ends: every writeCheck it closes
// each connection on which a write has been in progress while no write
// finished for writeTimeout, which fails the stuck write. Writes carry no
// deadline of their own, which would cost a timer per frame.
func (b *bench) watchWrites(ctx context.Context) {
	t := time.NewTicker(writeCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, cs := range b.stuckWrites(time.Now().UnixNano()) {
			go cs.conn.CloseNow()
		}
	}
}

// stuckWrites returns the watched connections on which a write has been
// in progress at every check since writeTimeout before now while no write
// finished.
func (b *bench) stuckWrites(now int64) (stuck []*connState) {
	b.liveMu.Lock()
	defer b.liveMu.Unlock()
	for cs := range b.live {
		// quietSince is the last check that found no write in progress or
		// a write finished since the check before; with no write finished
		// since then, a write has been in progress all along.
		ended := cs.writesEnded.Load()
		if cs.writesBegun.Load() == ended || ended != cs.seenEnded {
			cs.seenEnded, cs.quietSince = ended, now // idle or progressing
		} else if now-cs.quietSince >= int64(writeTimeout) {
			stuck = append(stuck, cs)
		}
	}
	return stuck
}

func (b *bench) countErr(code string) {
	b.mu.Lock()
	if b.errCodes == nil {
		b.errCodes = make(map[string]int64)
	}
	b.errCodes[code]++
	b.mu.Unlock()
}

func (b *bench) countClose(err error) {
	key := "error"
	if s := closeStatus(err); s != -1 {
		key = strconv.Itoa(int(s))
	}
	b.mu.Lock()
	if b.closeCodes == nil {
		b.closeCodes = make(map[string]int64)
	}
	b.closeCodes[key]++
	b.mu.Unlock()
}

// What a slot sends.
const (
	sendMessage = iota
	sendEdit
	sendReact
)

// pendingSend is a send, edit or reaction not yet acknowledged. A send is
// written again, with the same client_id, after a reconnect; the server
// answers a repeat with the first ack and stores nothing new. An edit or
// reaction has no such key: it is given up when its connection fails.
type pendingSend struct {
	seq       uint32
	kind      uint8
	room      int // global room index
	intended  int64
	sentAt    int64 // first attempt; ack latency counts from here
	lastWrite int64 // last write on a live connection, 0 while it waits for one
	measured  bool
	frame     []byte
}

// client is one benchmark user with one WebSocket connection that it
// keeps open, rejoining with since after a disconnect. Its methods are
// safe for concurrent use: the read loop, the send loop and the worker's
// accounting meet under mu.
type client struct {
	b      *bench
	user   string
	token  string
	url    string      // ws:// or wss:// URL of /ws
	local  net.IP      // source address to dial from; nil for any
	rooms  []int       // global room indices, in join order
	pos    map[int]int // global room index -> position in rooms
	sender int         // sender index, -1 for a pure receiver

	// freed wakes the send loop while it waits for a free inflight place;
	// it has room for one signal. The send loop makes it, under mu.
	freed chan struct{}

	sendMu sync.Mutex // guards send; taken before mu
	send   *sendState // a sender's schedule, set by the send loop

	frames [][]byte // the send loop's list of frames to write, kept

	readBuf []byte // the read loop's buffer, kept for the next connection

	mu        sync.Mutex // guards the fields below
	cs        *connState // the live connection, nil between connections
	holdFrees bool       // the read loop sends what answers free once it has handled the frames at hand
	freedHeld bool       // with holdFrees: an answer freed a place a waiting slot can take
	recv      []roomRecv // parallel to rooms
	connected bool       // the first connection and all its joins succeeded
	stable    bool       // connected and never disconnected since
	pending   map[uint32]*pendingSend
	ackedMsgs []ackedMsg
	waiting   bool // the send loop waits for pending to drop below inflight

	targets     map[int]*eventTarget // a sender's, with --events: by global room index
	ackedEvents []ackedEvent
}

// ackedMsg is a measured message the server acknowledged.
type ackedMsg struct {
	room int
	key  msgKey
}

// ackedEvent is a measured edit or reaction the server acknowledged.
type ackedEvent struct {
	room int
	key  eventKey
}

// eventTarget is what a sender's edits and reactions in one room go to:
// its newest acked message there, and its reaction on the message it last
// reacted to, so that reactions toggle.
type eventTarget struct {
	newest    streamID
	has       bool     // a message was acked: newest is set
	reactedTo streamID // the message of the last reaction
	reacted   bool     // whether that reaction is on
	sent      int      // events sent into the room: even ones edit, odd ones react
}

// toggle returns whether the next reaction on the newest message adds
// the emoji, and records that it will.
func (t *eventTarget) toggle() bool {
	if t.reactedTo != t.newest {
		t.reactedTo, t.reacted = t.newest, false
	}
	t.reacted = !t.reacted
	return t.reacted
}

// connState belongs to one connection attempt: its socket, the channel
// on which its read loop reports join replies and its write progress.
type connState struct {
	conn   *wsConn
	joined chan error // one value per join reply or join error

	writesBegun, writesEnded atomic.Uint64 // counted by client.write

	// Owned by bench.watchWrites.
	seenEnded  uint64
	quietSince int64
}

// signal reports a join reply without ever blocking the read loop: once
// connect has its answers nobody reads the channel any more.
func (cs *connState) signal(err error) {
	select {
	case cs.joined <- err:
	default:
	}
}

// run connects, joins and then keeps the connection up until ctx ends. It
// sends the outcome of the first attempt (nil once every room is joined)
// on first, exactly once.
func (c *client) run(ctx context.Context, first chan<- error) {
	const firstAttempts = 3
	backoff := 100 * time.Millisecond
	isFirst := true
	for attempt := 1; ; attempt++ {
		cs, readDone, err := c.connect(ctx, !isFirst)
		if err != nil {
			if ctx.Err() != nil {
				if isFirst {
					first <- ctx.Err()
				}
				return
			}
			if isFirst && attempt >= firstAttempts {
				first <- err
				return
			}
			if !sleepCtx(ctx, jitter(backoff)) {
				if isFirst {
					first <- ctx.Err()
				}
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond

		c.mu.Lock()
		c.cs = cs
		resend := make([]*pendingSend, 0, len(c.pending))
		now := time.Now().UnixNano()
		for _, p := range c.pending {
			p.lastWrite = now
			resend = append(resend, p)
		}
		if isFirst {
			c.connected, c.stable = true, true
		}
		c.mu.Unlock()
		slices.SortFunc(resend, func(a, b *pendingSend) int { return int(a.seq) - int(b.seq) })
		frames := make([][]byte, len(resend))
		for i, p := range resend {
			frames[i] = p.frame
		}
		_ = c.write(cs, frames...) // on an error the read loop sees the closed connection
		if isFirst {
			first <- nil
			isFirst = false
		}

		err = <-readDone
		c.mu.Lock()
		c.cs = nil
		c.dropEventsLocked()
		c.mu.Unlock()
		_ = cs.conn.CloseNow()
		if ctx.Err() != nil || c.b.closing.Load() {
			return
		}
		c.mu.Lock()
		c.stable = false
		c.mu.Unlock()
		c.b.disconnects.Add(1)
		c.b.countClose(err)
		if !sleepCtx(ctx, jitter(backoff)) {
			return
		}
	}
}

// dropEventsLocked, with c.mu held, readies the pending sends of a
// connection that failed to be written again on the next one, and gives
// up the pending edits and reactions: they carry no client_id, so written
// again an edit would be stored twice and a reaction toggled back. The
// measured ones count as unacked.
func (c *client) dropEventsLocked() {
	var dropped int64
	for seq, p := range c.pending {
		if p.kind == sendMessage {
			p.lastWrite = 0 // the ack timeout restarts when it is written again
			continue
		}
		delete(c.pending, seq)
		if p.measured {
			dropped++
		}
	}
	c.freeLocked()
	c.b.eventsUnacked.Add(dropped)
}

// connect dials and joins every room, with since when rejoin is set. On
// success the read loop runs and readDone yields its end.
func (c *client) connect(ctx context.Context, rejoin bool) (*connState, <-chan error, error) {
	dctx, cancel := context.WithTimeout(ctx, c.b.cfg.connectTimeout)
	defer cancel()
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+c.token)
	d := &net.Dialer{Timeout: c.b.cfg.connectTimeout, KeepAlive: 30 * time.Second}
	if c.local != nil {
		d.LocalAddr = &net.TCPAddr{IP: c.local}
		d.Control = bindNoPort
	}
	conn, err := dialWS(dctx, d, c.url, hdr)
	if err != nil {
		var de *dialError
		if errors.As(err, &de) {
			return nil, nil, fmt.Errorf("dial %s as %s: HTTP %d", c.url, c.user, de.Status)
		}
		return nil, nil, fmt.Errorf("dial %s: %w", c.url, err)
	}
	conn.SetReadLimit(readLimit)
	cs := &connState{conn: conn, joined: make(chan error, len(c.rooms))}
	readDone := make(chan error, 1)
	// Reads and writes pass no ctx, which would arm a timer per frame:
	// the connection is closed once ctx ends instead, which ends both.
	stop := context.AfterFunc(ctx, func() { _ = conn.CloseNow() })
	c.b.watch(cs)
	go func() {
		err := c.readLoop(cs)
		c.b.unwatch(cs)
		stop()
		readDone <- err
	}()

	fail := func(err error) (*connState, <-chan error, error) {
		_ = conn.CloseNow()
		<-readDone
		return nil, nil, err
	}
	joins := make([][]byte, len(c.rooms))
	for i, r := range c.rooms {
		f := wire.ClientFrame{Type: wire.TypeJoin, Room: c.b.plan.rooms[r], Ref: json.RawMessage(strconv.Itoa(-1 - r))}
		if rejoin {
			c.mu.Lock()
			f.Since = c.recv[i].since()
			c.mu.Unlock()
		}
		joins[i], _ = json.Marshal(f)
	}
	if err := c.write(cs, joins...); err != nil {
		return fail(fmt.Errorf("join: %w", err))
	}
	for range c.rooms {
		select {
		case err := <-cs.joined:
			if err != nil {
				return fail(err)
			}
		case err := <-readDone:
			readDone <- err
			return fail(fmt.Errorf("connection closed while joining: %w", err))
		case <-dctx.Done():
			return fail(fmt.Errorf("join: %w", dctx.Err()))
		}
	}
	return cs, readDone, nil
}

// readLoop reads until the connection fails or is closed, as it is when
// the run's ctx ends. It is the only reader of cs.conn.
//
// A sender's read loop holds the wake-ups of its send loop: answers that
// free inflight places are noted, and once the frames one read from the
// socket brought are all handled, the read loop sends the slots waiting
// for those places itself (sendFreed), in one write, with no hand-over to
// the send loop.
func (c *client) readLoop(cs *connState) error {
	buf := c.readBuf[:0] // this client's buffer: one read loop at a time
	sender := c.sender >= 0
	if sender {
		c.mu.Lock()
		c.holdFrees = true
		c.mu.Unlock()
	}
	defer func() {
		c.readBuf = buf[:0]
		if sender {
			c.mu.Lock()
			c.holdFrees, c.freedHeld = false, false
			c.freeLocked()
			c.mu.Unlock()
		}
	}()
	var now int64
	reads := ^uint64(0)
	for {
		op, msg, err := cs.conn.readMessage(buf)
		buf = msg[:0]
		if err != nil {
			return err
		}
		// A message that came with the same read from the socket as the
		// one before arrived when that one did.
		if r := cs.conn.socketReads(); r != reads {
			now, reads = time.Now().UnixNano(), r
		}
		if op != opText {
			continue
		}
		data := msg
		if !c.b.cfg.batch {
			c.handle(cs, data, now)
		} else {
			for len(data) > 0 {
				line := data
				if i := bytes.IndexByte(data, wire.BatchSeparator); i >= 0 {
					line, data = data[:i], data[i+1:]
				} else {
					data = nil
				}
				if len(bytes.TrimSpace(line)) > 0 {
					c.handle(cs, line, now)
				}
			}
		}
		if sender && cs.conn.buffered() == 0 {
			c.mu.Lock()
			freed := c.freedHeld
			c.freedHeld = false
			c.mu.Unlock()
			if freed {
				c.sendFreed()
			}
		}
	}
}

// handle dispatches one server frame received at now (Unix nanoseconds).
// Message, ack, edit and reaction frames, the hot path, are decoded by
// decodeFast; other frames, and any decodeFast is unsure about, are
// decoded into serverFrame, and frames of other types again into their
// type.
func (c *client) handle(cs *connState, frame []byte, now int64) {
	var f fastFrame
	if decodeFast(frame, &f) {
		switch f.kind {
		case frameMessage:
			c.onMessage(f.room, f.id, f.text, now)
		case frameAck:
			c.onAck(f.clientID, f.ref, f.id, now)
		default:
			c.onEvent(f.room, f.id, now)
		}
		return
	}
	var m serverFrame
	if err := json.Unmarshal(frame, &m); err != nil {
		c.b.badFrames.Add(1)
		return
	}
	switch m.Type {
	case wire.TypeMessage:
		c.onMessage([]byte(m.Room), []byte(m.ID), []byte(m.Text), now)
	case wire.TypeAck:
		c.onAck([]byte(m.ClientID), m.Ref, []byte(m.ID), now)
	case wire.TypeEdit, wire.TypeReaction:
		c.onEvent([]byte(m.Room), []byte(m.ID), now)
	case wire.TypeJoined:
		var j wire.Joined
		if json.Unmarshal(frame, &j) != nil {
			c.b.badFrames.Add(1)
			return
		}
		c.onJoined(cs, &j)
	case wire.TypeError:
		var e wire.Error
		if json.Unmarshal(frame, &e) != nil {
			c.b.badFrames.Add(1)
			return
		}
		c.onError(cs, &e)
	}
}

// onMessage accounts for a message frame with the given fields. They may
// point into the read buffer and must not be kept.
func (c *client) onMessage(room, msgID, text []byte, now int64) {
	r, ok := c.b.plan.roomIndex[string(room)]
	if !ok {
		return
	}
	p, ok := c.pos[r]
	if !ok {
		return
	}
	id, ok := parseStreamID(msgID)
	if !ok {
		c.b.badFrames.Add(1)
		return
	}
	key, intended, isRun := parseText(c.b.codec, text)
	measured := isRun && intended >= c.b.measureStart.Load() && intended < c.b.sendEnd.Load()

	c.mu.Lock()
	rr := &c.recv[p]
	dup, reorder := rr.observe(id, key, isRun)
	if measured && !dup {
		rr.measured++
	}
	c.mu.Unlock()

	switch {
	case !isRun:
		c.b.foreign.Add(1)
	case dup:
		c.b.dups.Add(1)
	case measured:
		c.b.deliveries.Add(1)
		c.b.lat.Record((now - intended) / 1e3)
	}
	if reorder {
		c.b.reorders.Add(1)
	}
}

// onEvent accounts for an edit or reaction frame with the given fields,
// which may point into the read buffer.
func (c *client) onEvent(room, eventID []byte, now int64) {
	r, ok := c.b.plan.roomIndex[string(room)]
	if !ok {
		return
	}
	p, ok := c.pos[r]
	if !ok {
		return
	}
	id, ok := parseStreamID(eventID)
	if !ok {
		c.b.badFrames.Add(1)
		return
	}
	c.mu.Lock()
	dup, reorder := c.recv[p].observeEvent(id, now)
	c.mu.Unlock()
	if dup {
		c.b.eventDups.Add(1)
	}
	if reorder {
		c.b.eventReorders.Add(1)
	}
}

// onAck accounts for an ack frame with the given fields, which may point
// into the read buffer. A send's ack names its client_id; an edit's or a
// reaction's has none and is known by its ref, the slot number, as is any
// ack without a client_id. id is the stored entry's; a reaction that
// changed nothing has none.
func (c *client) onAck(clientID, ref, id []byte, now int64) {
	if c.sender < 0 {
		return
	}
	var seq uint32
	if len(clientID) > 0 {
		s, ok := parseClientID(c.b.codec, c.sender, clientID)
		if !ok {
			return
		}
		seq = s
	} else {
		s, ok := parseDecimal(ref, 32)
		if !ok {
			return
		}
		seq = uint32(s)
	}
	eid, hasID := parseStreamID(id)
	c.mu.Lock()
	p := c.pending[seq]
	if p == nil {
		c.mu.Unlock()
		return
	}
	delete(c.pending, seq)
	c.freeLocked()
	switch {
	case len(id) > 0 && !hasID:
	case p.kind == sendMessage:
		if p.measured {
			c.ackedMsgs = append(c.ackedMsgs, ackedMsg{room: p.room, key: msgKey{int32(c.sender), seq}})
		}
		if c.targets != nil && hasID {
			t := c.targets[p.room]
			if t == nil {
				t = &eventTarget{}
				c.targets[p.room] = t
			}
			if !t.has || t.newest.less(eid) {
				t.newest, t.has = eid, true
			}
		}
	case hasID && p.measured:
		c.ackedEvents = append(c.ackedEvents, ackedEvent{room: p.room, key: eventKey{id: eid, intended: p.intended}})
	}
	c.mu.Unlock()
	switch {
	case len(id) > 0 && !hasID:
		c.b.badFrames.Add(1)
	case !p.measured:
	case p.kind == sendMessage:
		c.b.acked.Add(1)
		c.b.ackLat.Record((now - p.sentAt) / 1e3)
	case !hasID:
		c.b.eventsNoop.Add(1)
		c.b.evAckLat.Record((now - p.sentAt) / 1e3)
	default:
		if p.kind == sendEdit {
			c.b.editsAcked.Add(1)
		} else {
			c.b.reactionsAcked.Add(1)
		}
		c.b.evAckLat.Record((now - p.sentAt) / 1e3)
	}
}

// freeLocked wakes the send loop, with c.mu held, if it waits for a free
// inflight place and pending now has one; while the read loop holds
// wake-ups it only notes that, and the read loop sends the freed slots
// once it has handled the frames at hand (see readLoop).
func (c *client) freeLocked() {
	if !c.waiting || len(c.pending) >= c.b.cfg.inflight {
		return
	}
	if c.holdFrees {
		c.freedHeld = true
		return
	}
	c.wakeSenderLocked()
}

// wakeSenderLocked, with c.mu held, wakes the send loop to step.
func (c *client) wakeSenderLocked() {
	c.waiting = false
	select {
	case c.freed <- struct{}{}:
	default:
	}
}

func (c *client) onJoined(cs *connState, j *wire.Joined) {
	r, ok := c.b.plan.roomIndex[j.Room]
	if !ok {
		return
	}
	p, ok := c.pos[r]
	if !ok {
		return
	}
	c.mu.Lock()
	if c.recv[p].joinedLast == "" {
		c.recv[p].joinedLast = j.LastID
	}
	c.mu.Unlock()
	if j.Recovered != nil && !*j.Recovered {
		c.b.unrecovered.Add(1)
	}
	cs.signal(nil)
}

func (c *client) onError(cs *connState, e *wire.Error) {
	ref, err := strconv.ParseInt(string(e.Ref), 10, 64)
	if err != nil {
		c.b.countErr(e.Code)
		return
	}
	if ref < 0 { // a join: ref is -1-room
		if -1-ref < int64(len(c.b.plan.rooms)) {
			cs.signal(fmt.Errorf("join %s: %s: %s", c.b.plan.rooms[-1-ref], e.Code, e.Message))
		}
		return
	}
	c.b.countErr(e.Code)
	c.mu.Lock()
	p := c.pending[uint32(ref)]
	delete(c.pending, uint32(ref))
	c.freeLocked()
	c.mu.Unlock()
	switch {
	case p == nil || !p.measured:
	case p.kind == sendMessage:
		c.b.rejected.Add(1)
	default:
		c.b.eventsRejected.Add(1)
	}
}

// slot is one send of the schedule: the sender's slot number seq, due at
// due (Unix nanoseconds), into room (a global room index). An event slot
// edits or reacts to the sender's newest acked message in the room, or
// sends a message while it has none.
type slot struct {
	seq   uint32
	room  int
	due   int64
	event bool
}

// sendLoop sends this sender's slots of the schedule (see slotGen) until
// sendEnd. A slot is sent when it comes due, whether or not earlier sends
// have been answered, and its latency counts from when it was due, so a
// stalled server shows up as latency instead of silently lowering the load
// (coordinated omission).
//
// At most --inflight sends are unanswered at a time. A slot that comes due
// while they are waits, and so do the slots after it, up to --inflight of
// them; beyond that the oldest waiting slot is skipped and counted. An
// answer frees a place and the waiting slots go out at once, as many as
// there are free places, in one write: a server slower than --rate is
// kept at --inflight sends per sender, with no pause between an answer
// and the next send, and the sends one read of answers frees leave
// together, as a client with messages queued would send them. The read
// loop sends those itself (sendFreed), stepping the same schedule under
// sendMu; the send loop wakes for slots coming due and for expiries.
func (c *client) sendLoop(ctx context.Context) {
	cfg := c.b.cfg
	c.mu.Lock()
	if c.freed == nil {
		c.freed = make(chan struct{}, 1)
	}
	if cfg.events > 0 && c.targets == nil {
		c.targets = make(map[int]*eventTarget, len(c.b.plan.speaks[c.sender]))
	}
	c.mu.Unlock()
	ss := &sendState{
		gen:          newSlotGen(len(c.b.plan.rooms), c.b.plan.speaks[c.sender]),
		start:        c.b.start.Load(),
		measureStart: c.b.measureStart.Load(),
		sendEnd:      c.b.sendEnd.Load(),
		backlog:      make([]slot, 0, 2*cfg.inflight),
	}
	ss.advance(cfg)
	ss.timer = time.NewTimer(time.Hour)
	c.sendMu.Lock()
	c.send = ss
	c.sendMu.Unlock()
	defer func() {
		c.sendMu.Lock()
		ss.done = true
		ss.timer.Stop()
		c.sendMu.Unlock()
	}()
	for {
		c.sendMu.Lock()
		wake, done := c.stepLocked(time.Now().UnixNano())
		if !done {
			ss.arm(wake)
		}
		c.sendMu.Unlock()
		if done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-c.freed:
		case <-ss.timer.C:
		}
	}
}

// sendState is a sender's place in the schedule, guarded by
// client.sendMu: the send loop steps it when a slot comes due or it is
// woken, the read loop when answers it has handled freed places.
type sendState struct {
	gen                          *slotGen
	start, measureStart, sendEnd int64
	seq                          uint32
	next                         slot        // the next slot to come due
	backlog                      []slot      // due and waiting for a free place
	expireAt                     int64       // no pending send can expire before this
	timer                        *time.Timer // wakes the send loop at armed
	armed                        int64       // when the send loop steps next unless woken
	done                         bool        // the send loop has ended: nothing more is sent
}

// arm sets the send loop's timer to wake it at wake (Unix nanoseconds).
// With the timer's channel unbuffered (Go 1.23), a Reset discards a firing
// not yet received, so the loop never wakes for an old time.
func (ss *sendState) arm(wake int64) {
	ss.timer.Reset(time.Until(time.Unix(0, wake)))
	ss.armed = wake
}

// advance makes next the following slot of the schedule.
func (ss *sendState) advance(cfg *config) {
	g, room, n, ok := ss.gen.next()
	if !ok {
		ss.next = slot{due: ss.sendEnd} // no room: nothing to send
		return
	}
	ss.next = slot{seq: ss.seq, room: room, due: ss.start + int64(float64(g)*1e9/cfg.rate), event: isEventSlot(n, cfg.events)}
	ss.seq++
}

// stepLocked, with c.sendMu held, takes the slots due by now into the
// backlog (skipping the oldest beyond --inflight), expires sends when one
// may have, and sends as many waiting slots as there are free places. It
// returns when the send loop must step next unless an answer wakes it,
// or done once sending has ended.
func (c *client) stepLocked(now int64) (wake int64, done bool) {
	ss, cfg := c.send, c.b.cfg
	if ss.done {
		return 0, true
	}
	for ss.next.due <= now && ss.next.due < ss.sendEnd {
		ss.backlog = append(ss.backlog, ss.next)
		ss.advance(cfg)
	}
	if over := len(ss.backlog) - cfg.inflight; over > 0 {
		c.skip(ss.backlog[:over], ss.measureStart)
		ss.backlog = append(ss.backlog[:0], ss.backlog[over:]...)
	}
	if now >= ss.expireAt {
		ss.expireAt = c.expire(now)
	}
	if n := c.sendSlots(ss.backlog, ss.measureStart); n > 0 {
		ss.backlog = append(ss.backlog[:0], ss.backlog[n:]...)
	}
	if now >= ss.sendEnd || ss.next.due >= ss.sendEnd && len(ss.backlog) == 0 {
		c.skip(ss.backlog, ss.measureStart) // due before the end and never sent
		ss.backlog, ss.done = nil, true
		return 0, true
	}
	wake = ss.next.due
	if len(ss.backlog) > 0 || ss.next.due >= ss.sendEnd {
		wake = min(ss.expireAt, ss.sendEnd) // or when an answer frees a place
	}
	return wake, false
}

// sendFreed is called by the read loop once it has handled the frames at
// hand and they freed inflight places: it steps the schedule itself and
// re-arms the send loop's timer, sparing the send loop a wake-up, unless
// the send loop is stepping at the time or sending has ended; then it
// wakes the send loop.
func (c *client) sendFreed() {
	if c.sendMu.TryLock() {
		ss := c.send
		wakeLoop := ss == nil // not started: the loop steps first thing anyway
		if ss != nil && !ss.done {
			wake, done := c.stepLocked(time.Now().UnixNano())
			if wakeLoop = done; !done && wake != ss.armed {
				ss.arm(wake)
			}
		}
		c.sendMu.Unlock()
		if !wakeLoop {
			return
		}
	}
	c.mu.Lock()
	c.wakeSenderLocked()
	c.mu.Unlock()
}

// skip counts the measured slots among slots as skipped.
func (c *client) skip(slots []slot, measureStart int64) {
	var n int64
	for _, s := range slots {
		if s.due >= measureStart {
			n++
		}
	}
	c.b.skipped.Add(n)
}

// sendSlots sends the first of slots, as many as there are free inflight
// places, in one write, and returns how many. When it cannot send them all
// it marks the send loop as waiting for a free place.
func (c *client) sendSlots(slots []slot, measureStart int64) int {
	if len(slots) == 0 {
		return 0
	}
	b := c.b
	c.mu.Lock()
	n := min(len(slots), b.cfg.inflight-len(c.pending))
	if n < len(slots) {
		c.waiting = true
		select {
		case <-c.freed: // a stale signal
		default:
		}
	}
	if n <= 0 {
		c.mu.Unlock()
		return 0
	}
	now := time.Now().UnixNano()
	cs := c.cs
	frames := c.frames[:0]
	var measured, measuredEvents int64
	for _, s := range slots[:n] {
		kind, frame := c.frameLocked(s)
		p := &pendingSend{seq: s.seq, kind: kind, room: s.room, intended: s.due, sentAt: now, measured: s.due >= measureStart, frame: frame}
		if cs != nil {
			p.lastWrite = now
		}
		c.pending[s.seq] = p
		frames = append(frames, frame)
		switch {
		case !p.measured:
		case kind == sendMessage:
			measured++
		default:
			measuredEvents++
		}
	}
	c.frames = frames
	c.mu.Unlock()
	b.sent.Add(measured)
	b.eventsSent.Add(measuredEvents)
	if cs != nil {
		_ = c.write(cs, frames...) // a failed write closes the conn; run resends after reconnecting
	}
	clear(frames) // the pending sends keep them; the list does not
	return n
}

// frameLocked returns what slot s sends, with c.mu held, and its frame: a
// message, or for an event slot an edit and a reaction toggle in turn on
// the sender's newest acked message in the room, once it has one.
func (c *client) frameLocked(s slot) (kind uint8, frame []byte) {
	b, buf := c.b, make([]byte, 0, 160)
	room := b.plan.rooms[s.room]
	if t := c.targets[s.room]; s.event && t != nil && t.has {
		t.sent++
		if t.sent%2 == 1 {
			return sendEdit, b.codec.appendEditFrame(buf, c.sender, s.seq, room, t.newest, s.due)
		}
		return sendReact, appendReactFrame(buf, s.seq, room, t.newest, t.toggle())
	}
	return sendMessage, b.codec.appendSendFrame(buf, c.sender, s.seq, room, s.due)
}

// isEventSlot reports whether a sender's n-th slot (from 0) in one room
// is an edit or reaction at the share f of slots: every slot where
// ⌊(n+1)·f⌋ steps up, so each sender's slots in each room get the share.
func isEventSlot(n int64, f float64) bool {
	return f > 0 && math.Floor(float64(n+1)*f) > math.Floor(float64(n)*f)
}

// write writes frames on cs in one system call. It has no deadline,
// which would cost a timer per write: the connection is closed when the
// run's ctx ends, and bench.watchWrites closes it when writes make no
// progress for writeTimeout, either of which ends a blocked write.
func (c *client) write(cs *connState, frames ...[]byte) error {
	cs.writesBegun.Add(1)
	defer cs.writesEnded.Add(1)
	return cs.conn.writeText(frames...)
}

// expire gives up on sends written to a live connection and unanswered
// for longer than the ack timeout, so they stop holding inflight slots; a
// measured one counts as unacked. Sends waiting for a reconnect do not
// expire: the server has not had them. It returns the earliest time a
// pending send can expire next (a send's last write only ever moves later,
// and a send not yet written gets at least now+ack timeout), so that the
// send loop need not call it again before then.
func (c *client) expire(now int64) (next int64) {
	timeout := int64(c.b.cfg.ackTimeout)
	limit := now - timeout
	next = now + timeout
	var n, events int64
	c.mu.Lock()
	for seq, p := range c.pending {
		switch {
		case p.lastWrite == 0:
		case p.lastWrite < limit:
			delete(c.pending, seq)
			switch {
			case !p.measured:
			case p.kind == sendMessage:
				n++
			default:
				events++
			}
		default:
			next = min(next, p.lastWrite+timeout+1) // the first instant it is over
		}
	}
	c.freeLocked()
	c.mu.Unlock()
	c.b.unacked.Add(n)
	c.b.eventsUnacked.Add(events)
	return next
}

// pendingCount returns the number of unanswered sends.
func (c *client) pendingCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// abandon drops every unanswered send at the end of the run; measured
// ones count as unacked.
func (c *client) abandon() {
	var n, events int64
	c.mu.Lock()
	for seq, p := range c.pending {
		delete(c.pending, seq)
		switch {
		case !p.measured:
		case p.kind == sendMessage:
			n++
		default:
			events++
		}
	}
	c.mu.Unlock()
	c.b.unacked.Add(n)
	c.b.eventsUnacked.Add(events)
}

// close ends the connection at the end of the run with a normal closure.
func (c *client) close() {
	c.mu.Lock()
	cs := c.cs
	c.mu.Unlock()
	if cs != nil {
		_ = cs.conn.Close(1000, "benchmark done")
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter spreads reconnects of many clients over [d/2, d*3/2).
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}

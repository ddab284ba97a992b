package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/redstream/chat/transport/wire"
)

// readLimit bounds one incoming WebSocket message. A joined reply lists
// every online member of the room and a batched frame may hold many
// messages, so it is far above the server's 64 KiB limit for client frames.
const readLimit = 16 << 20

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

	lat    AtomicHist // delivery latency of measured messages, µs
	ackLat AtomicHist // send to ack of measured sends, µs

	closing atomic.Bool // set before the run closes its own connections

	sent, acked, skipped, rejected, unacked atomic.Int64
	deliveries, dups, reorders, foreign     atomic.Int64
	disconnects, unrecovered, badFrames     atomic.Int64

	mu         sync.Mutex
	errCodes   map[string]int64 // error frame codes answering sends
	closeCodes map[string]int64 // why connections ended, by close status
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
	if s := websocket.CloseStatus(err); s != -1 {
		key = strconv.Itoa(int(s))
	}
	b.mu.Lock()
	if b.closeCodes == nil {
		b.closeCodes = make(map[string]int64)
	}
	b.closeCodes[key]++
	b.mu.Unlock()
}

// pendingSend is a send not yet acknowledged. It is written again, with
// the same client_id, after a reconnect; the server answers a repeat with
// the first ack and stores nothing new.
type pendingSend struct {
	seq       uint32
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
	url    string // ws:// or wss:// URL of /ws
	hc     *http.Client
	rooms  []int       // global room indices, in join order
	pos    map[int]int // global room index -> position in rooms
	sender int         // sender index, -1 for a pure receiver

	mu        sync.Mutex // guards the fields below
	conn      *websocket.Conn
	recv      []roomRecv // parallel to rooms
	connected bool       // the first connection and all its joins succeeded
	stable    bool       // connected and never disconnected since
	pending   map[uint32]*pendingSend
	ackedMsgs []ackedMsg
}

// ackedMsg is a measured message the server acknowledged.
type ackedMsg struct {
	room int
	key  msgKey
}

// connState belongs to one connection attempt: its socket and the channel
// on which its read loop reports join replies.
type connState struct {
	conn   *websocket.Conn
	joined chan error // one value per join reply or join error
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
		c.conn = cs.conn
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
		for _, p := range resend {
			if c.write(ctx, cs.conn, p.frame) != nil {
				break // the read loop sees the closed connection
			}
		}
		if isFirst {
			first <- nil
			isFirst = false
		}

		err = <-readDone
		c.mu.Lock()
		c.conn = nil
		for _, p := range c.pending {
			p.lastWrite = 0 // the ack timeout restarts when it is written again
		}
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

// connect dials and joins every room, with since when rejoin is set. On
// success the read loop runs and readDone yields its end.
func (c *client) connect(ctx context.Context, rejoin bool) (*connState, <-chan error, error) {
	dctx, cancel := context.WithTimeout(ctx, c.b.cfg.connectTimeout)
	defer cancel()
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+c.token)
	conn, resp, err := websocket.Dial(dctx, c.url, &websocket.DialOptions{
		HTTPClient:      c.hc,
		HTTPHeader:      hdr,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil {
			return nil, nil, fmt.Errorf("dial %s as %s: HTTP %d", c.url, c.user, resp.StatusCode)
		}
		return nil, nil, fmt.Errorf("dial %s: %w", c.url, err)
	}
	conn.SetReadLimit(readLimit)
	cs := &connState{conn: conn, joined: make(chan error, len(c.rooms))}
	readDone := make(chan error, 1)
	go func() { readDone <- c.readLoop(ctx, cs) }()

	fail := func(err error) (*connState, <-chan error, error) {
		_ = conn.CloseNow()
		<-readDone
		return nil, nil, err
	}
	for i, r := range c.rooms {
		f := wire.ClientFrame{Type: wire.TypeJoin, Room: c.b.plan.rooms[r], Ref: json.RawMessage(strconv.Itoa(-1 - r))}
		if rejoin {
			c.mu.Lock()
			f.Since = c.recv[i].since()
			c.mu.Unlock()
		}
		b, _ := json.Marshal(f)
		if err := conn.Write(dctx, websocket.MessageText, b); err != nil {
			return fail(fmt.Errorf("join %s: %w", f.Room, err))
		}
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

// readLoop reads until the connection fails or ctx ends. It is the only
// reader of cs.conn, as coder/websocket requires.
func (c *client) readLoop(ctx context.Context, cs *connState) error {
	var buf bytes.Buffer
	for {
		typ, r, err := cs.conn.Reader(ctx)
		if err != nil {
			return err
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return err
		}
		now := time.Now().UnixNano()
		if typ != websocket.MessageText {
			continue
		}
		data := buf.Bytes()
		if !c.b.cfg.batch {
			c.handle(cs, data, now)
			continue
		}
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
}

// handle dispatches one server frame received at now (Unix nanoseconds).
// Message frames, the hot path, are decoded once into wire.Message, whose
// fields also cover an ack; other frames are decoded again into their type.
func (c *client) handle(cs *connState, frame []byte, now int64) {
	var m wire.Message
	if err := json.Unmarshal(frame, &m); err != nil {
		c.b.badFrames.Add(1)
		return
	}
	switch m.Type {
	case wire.TypeMessage:
		c.onMessage(&m, now)
	case wire.TypeAck:
		c.onAck(m.ClientID, now)
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

func (c *client) onMessage(m *wire.Message, now int64) {
	r, ok := c.b.plan.roomIndex[m.Room]
	if !ok {
		return
	}
	p, ok := c.pos[r]
	if !ok {
		return
	}
	id, ok := parseStreamID(m.ID)
	if !ok {
		c.b.badFrames.Add(1)
		return
	}
	key, intended, isRun := c.b.codec.parse(m.Text)
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

func (c *client) onAck(clientID string, now int64) {
	if c.sender < 0 {
		return
	}
	seq, ok := c.b.codec.parseClientID(c.sender, clientID)
	if !ok {
		return
	}
	c.mu.Lock()
	p := c.pending[seq]
	if p != nil {
		delete(c.pending, seq)
		if p.measured {
			c.ackedMsgs = append(c.ackedMsgs, ackedMsg{room: p.room, key: msgKey{int32(c.sender), seq}})
		}
	}
	c.mu.Unlock()
	if p != nil && p.measured {
		c.b.acked.Add(1)
		c.b.ackLat.Record((now - p.sentAt) / 1e3)
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
	c.mu.Unlock()
	if p != nil && p.measured {
		c.b.rejected.Add(1)
	}
}

// sendLoop sends on the sender's fixed schedule until sendEnd: slot k is
// due at start + (sender + k*senders)/rate seconds, whether or not earlier
// messages have been answered. A slot that finds inflight sends still
// unacknowledged is skipped and counted; a late slot is sent at once, and
// its latency still counts from when it was due.
func (c *client) sendLoop(ctx context.Context) {
	cfg := c.b.cfg
	start, sendEnd := c.b.start.Load(), c.b.sendEnd.Load()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for k := uint32(0); ; k++ {
		slot := float64(c.sender) + float64(k)*float64(cfg.senders)
		due := start + int64(slot*1e9/cfg.rate)
		if due >= sendEnd {
			return
		}
		if d := time.Until(time.Unix(0, due)); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		c.expire(time.Now().UnixNano())
		c.trySend(ctx, k, due)
	}
}

func (c *client) trySend(ctx context.Context, seq uint32, due int64) {
	measured := due >= c.b.measureStart.Load()
	c.mu.Lock()
	if len(c.pending) >= c.b.cfg.inflight {
		c.mu.Unlock()
		if measured {
			c.b.skipped.Add(1)
		}
		return
	}
	room := c.rooms[int(seq)%len(c.rooms)]
	f := wire.ClientFrame{
		Type:     wire.TypeSend,
		Ref:      json.RawMessage(strconv.FormatUint(uint64(seq), 10)),
		Room:     c.b.plan.rooms[room],
		Text:     c.b.codec.format(c.sender, seq, due),
		ClientID: c.b.codec.clientID(c.sender, seq),
	}
	frame, _ := json.Marshal(f)
	p := &pendingSend{seq: seq, room: room, intended: due, sentAt: time.Now().UnixNano(), measured: measured, frame: frame}
	conn := c.conn
	if conn != nil {
		p.lastWrite = p.sentAt
	}
	c.pending[seq] = p
	c.mu.Unlock()
	if measured {
		c.b.sent.Add(1)
	}
	if conn != nil {
		_ = c.write(ctx, conn, frame) // a failed write closes conn; run resends after reconnecting
	}
}

func (c *client) write(ctx context.Context, conn *websocket.Conn, frame []byte) error {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return conn.Write(wctx, websocket.MessageText, frame)
}

// expire gives up on sends written to a live connection and unanswered
// for longer than the ack timeout, so they stop holding inflight slots; a
// measured one counts as unacked. Sends waiting for a reconnect do not
// expire: the server has not had them.
func (c *client) expire(now int64) {
	limit := now - int64(c.b.cfg.ackTimeout)
	var n int64
	c.mu.Lock()
	for seq, p := range c.pending {
		if p.lastWrite != 0 && p.lastWrite < limit {
			delete(c.pending, seq)
			if p.measured {
				n++
			}
		}
	}
	c.mu.Unlock()
	c.b.unacked.Add(n)
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
	var n int64
	c.mu.Lock()
	for seq, p := range c.pending {
		delete(c.pending, seq)
		if p.measured {
			n++
		}
	}
	c.mu.Unlock()
	c.b.unacked.Add(n)
}

// close ends the connection at the end of the run with a normal closure.
func (c *client) close() {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		_ = conn.Close(websocket.StatusNormalClosure, "benchmark done")
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

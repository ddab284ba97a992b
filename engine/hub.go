package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// shard is one tail loop's set of rooms.
//
// Wake protocol: the loop sets reading before it snapshots the rooms and
// reads; a room added after the snapshot therefore sees reading set and
// wakes the blocked read through Tail.Wake. A room added while the loop is
// idle only signals wake.
type shard struct {
	idx     int
	wake    chan struct{} // cap 1: the room set changed
	reading atomic.Bool
	lagMs   atomic.Int64 // now minus the newest delivered ID's time, at delivery; 0 once caught up
	errs    atomic.Int64 // consecutive failed reads
	since   atomic.Int64 // when the current read started (Unix ns), 0 when not reading

	mu    sync.Mutex
	rooms map[string]*room // started rooms with local subscribers
}

// room is the local state of one room with at least one local session.
type room struct {
	name  string
	shard *shard
	ready chan struct{} // closed once started (or failed: err set)
	err   error
	refs  int // guarded by Engine.mu: sessions joined or joining

	mu    sync.Mutex
	pos   StreamPos // newest position delivered by the tail loop
	subs  map[*Session]*sub
	users map[string]int // joined local sessions per user
}

// sub is one session's subscription to a room. Until live, messages the
// tail delivers are kept in buf; Join flushes those newer than pos.
//
// While the session has sends to the room in flight, live messages wait in
// held until the send's ack is queued, so a client always sees the ack of
// its send before the message itself.
type sub struct {
	live     bool
	pos      StreamPos
	buf      []pending
	inflight int
	held     []pending
}

// deliverLive passes one live message to s, or holds it while s has sends
// in flight. Called with the room's lock held.
func (e *Engine) deliverLive(s *Session, sb *sub, id StreamPos, frame []byte) {
	e.delivered.Add(1)
	switch {
	case sb.inflight == 0:
		s.push(Frame{frame, id.Ms})
	case len(sb.held) < e.opts.QueueLen:
		sb.held = append(sb.held, pending{id, frame})
	default:
		s.Kick(ErrSlowConsumer)
	}
}

// release passes on held messages up to acked (all of them once nothing is
// in flight). Called with the room's lock held, after the ack was queued.
func (sb *sub) release(s *Session, acked StreamPos) {
	n := 0
	for _, p := range sb.held {
		if sb.inflight > 0 && acked.Less(p.id) {
			break
		}
		s.push(Frame{p.frame, p.id.Ms})
		n++
	}
	sb.held = append(sb.held[:0], sb.held[n:]...)
}

type pending struct {
	id    StreamPos
	frame []byte
}

// acquire returns the started local room of name, starting it if this is
// its first local session: the tail begins at the stream's current end.
// Each successful acquire must be paired with release.
func (e *Engine) acquire(ctx context.Context, name string) (*room, error) {
	e.mu.Lock()
	r := e.rooms[name]
	creator := r == nil
	if creator {
		r = &room{
			name:  name,
			shard: e.shards[e.opts.Tail.Shard(name)],
			ready: make(chan struct{}),
			subs:  make(map[*Session]*sub),
			users: make(map[string]int),
		}
		e.rooms[name] = r
	}
	r.refs++
	e.mu.Unlock()

	if creator {
		cctx, cancel := e.callCtx(ctx)
		last, err := e.opts.Log.Last(cctx, name)
		if err == nil {
			err = e.opts.Bus.Subscribe(cctx, name)
		}
		cancel()
		if err != nil {
			r.err = unavailable(err)
			close(r.ready)
			e.release(r)
			return nil, r.err
		}
		r.mu.Lock()
		r.pos = last
		r.mu.Unlock()
		close(r.ready)
		e.startTail(ctx, r)
		return r, nil
	}
	select {
	case <-r.ready:
	case <-ctx.Done():
		e.release(r)
		return nil, unavailable(ctx.Err())
	}
	if r.err != nil {
		e.release(r)
		return nil, r.err
	}
	return r, nil
}

// startTail adds r to its shard's tail loop and wakes the loop.
func (e *Engine) startTail(ctx context.Context, r *room) {
	sh := r.shard
	sh.mu.Lock()
	sh.rooms[r.name] = r
	sh.mu.Unlock()
	select {
	case sh.wake <- struct{}{}:
	default:
	}
	if sh.reading.Load() {
		cctx, cancel := e.callCtx(ctx)
		if err := e.opts.Tail.Wake(cctx, sh.idx); err != nil {
			// The read returns by itself within TailBlock.
			e.log.Warn("wake tail", "room", r.name, "err", err)
		}
		cancel()
	}
}

// release drops one reference to r; the last one stops tailing it.
func (e *Engine) release(r *room) {
	e.mu.Lock()
	r.refs--
	last := r.refs == 0
	if last && e.rooms[r.name] == r {
		delete(e.rooms, r.name)
	}
	e.mu.Unlock()
	if !last {
		return
	}
	r.shard.mu.Lock()
	if r.shard.rooms[r.name] == r {
		delete(r.shard.rooms, r.name)
	}
	r.shard.mu.Unlock()
	if r.err == nil {
		ctx, cancel := e.callCtx(e.ctx)
		if err := e.opts.Bus.Unsubscribe(ctx, r.name); err != nil && e.ctx.Err() == nil {
			e.log.Warn("unsubscribe", "room", r.name, "err", err)
		}
		cancel()
	}
}

// tailLoop reads the shard's rooms from their last delivered positions and
// fans what it reads out to local sessions. Because it continues from a
// position, whatever arrived while Redis was unreachable is read on return.
func (e *Engine) tailLoop(sh *shard) {
	backoff := 50 * time.Millisecond
	var names []string
	var after []StreamPos
	var rooms []*room
	for {
		sh.reading.Store(true)
		select {
		case <-sh.wake:
		default:
		}
		names, after, rooms = names[:0], after[:0], rooms[:0]
		sh.mu.Lock()
		for name, r := range sh.rooms {
			r.mu.Lock()
			names, after, rooms = append(names, name), append(after, r.pos), append(rooms, r)
			r.mu.Unlock()
		}
		sh.mu.Unlock()
		if len(names) == 0 {
			sh.reading.Store(false)
			sh.lagMs.Store(0)
			select {
			case <-e.ctx.Done():
				return
			case <-sh.wake:
				continue
			}
		}
		// The deadline ends a read that hangs (a wedged connection, seen
		// after failovers in other systems); the loop then reads again.
		rctx, cancel := context.WithTimeout(e.ctx, e.opts.TailBlock+tailGrace)
		sh.since.Store(time.Now().UnixNano())
		msgs, err := e.opts.Tail.Read(rctx, sh.idx, names, after, e.opts.TailBlock)
		cancel()
		sh.since.Store(0)
		sh.reading.Store(false)
		if e.ctx.Err() != nil {
			return
		}
		if err != nil {
			if sh.errs.Add(1) == 1 {
				e.log.Warn("tail read", "shard", sh.idx, "err", err)
			}
			select {
			case <-e.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		if sh.errs.Swap(0) > 0 {
			e.log.Info("tail read recovered", "shard", sh.idx)
		}
		backoff = 50 * time.Millisecond
		if len(msgs) == 0 {
			sh.lagMs.Store(0) // caught up: the read waited for news
		}
		e.deliver(sh, msgs)
	}
}

// deliver hands messages read by a tail loop to the sessions of their
// rooms, each message encoded once for all of them.
func (e *Engine) deliver(sh *shard, msgs []Message) {
	e.tailRead.Add(int64(len(msgs)))
	var newest StreamPos
	for i := range msgs {
		m := &msgs[i]
		sh.mu.Lock()
		r := sh.rooms[m.Room]
		sh.mu.Unlock()
		if r == nil {
			continue
		}
		var frame []byte
		r.mu.Lock()
		if r.pos.Less(m.ID) {
			r.pos = m.ID
			frame = e.opts.Encoder.Message(*m)
			for s, sb := range r.subs {
				if sb.live {
					// The tail may lag behind where the session's join
					// started (its since or last_id): skip what it has.
					if sb.pos.Less(m.ID) {
						sb.pos = m.ID
						e.deliverLive(s, sb, m.ID, frame)
					}
				} else if len(sb.buf) < e.opts.QueueLen {
					sb.buf = append(sb.buf, pending{m.ID, frame})
				} else {
					s.Kick(ErrSlowConsumer)
				}
			}
		}
		r.mu.Unlock()
		if newest.Less(m.ID) {
			newest = m.ID
		}
	}
	if !newest.IsZero() {
		sh.lagMs.Store(max(0, e.opts.Now().UnixMilli()-int64(newest.Ms)))
	}
}

// tailGrace is how long past its block time a read may take before it is
// abandoned as wedged.
const tailGrace = 5 * time.Second

// probeTails is the self-probe: a read still blocked well past its block
// time is woken through Redis, and counted; if the wake does not reach it,
// its deadline ends it and the loop starts a new one.
func (e *Engine) probeTails() {
	now := time.Now().UnixNano()
	for _, sh := range e.shards {
		start := sh.since.Load()
		if start == 0 || time.Duration(now-start) < e.opts.TailBlock+time.Second {
			continue
		}
		e.tailProbes.Add(1)
		ctx, cancel := e.callCtx(e.ctx)
		if err := e.opts.Tail.Wake(ctx, sh.idx); err != nil && e.ctx.Err() == nil {
			e.log.Warn("tail probe", "shard", sh.idx, "err", err)
		}
		cancel()
	}
}

// Health reports why the fan-out cannot be trusted now, or nil: a shard
// whose reads keep failing, a read stuck past its deadline, or delivery
// lagging real time by more than maxLag.
func (e *Engine) Health(maxLag time.Duration) error {
	now := time.Now().UnixNano()
	for _, sh := range e.shards {
		if n := sh.errs.Load(); n > 2 {
			return fmt.Errorf("shard %d: %d reads failed in a row", sh.idx, n)
		}
		if start := sh.since.Load(); start != 0 && time.Duration(now-start) > e.opts.TailBlock+tailGrace+time.Second {
			return fmt.Errorf("shard %d: read stuck for %v", sh.idx, time.Duration(now-start).Round(time.Second))
		}
		if lag := time.Duration(sh.lagMs.Load()) * time.Millisecond; lag > maxLag {
			return fmt.Errorf("shard %d: delivery lags %v behind", sh.idx, lag)
		}
	}
	return nil
}

// TailLag returns, per shard with rooms, how far behind real time the
// newest delivered message was when delivered, and how many reads in a row
// failed.
func (e *Engine) TailLag() (lag []time.Duration, failing []int64) {
	for _, sh := range e.shards {
		lag = append(lag, time.Duration(sh.lagMs.Load())*time.Millisecond)
		failing = append(failing, sh.errs.Load())
	}
	return lag, failing
}

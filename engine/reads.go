package engine

import (
	"context"
	"sync"
	"time"
)

// readEvery is the least time between two writes of one user's read
// position in one room; the newest position asked for meanwhile wins.
const readEvery = time.Second

// readCoalescer turns a stream of read frames into at most one write a
// second per user and room.
type readCoalescer struct {
	mu      sync.Mutex
	pending map[string]pendingRead // user + "\x00" + room
	last    map[string]time.Time   // when each was last written
}

type pendingRead struct {
	room, user string
	id         StreamPos
	direct     bool
}

func (c *readCoalescer) init() {
	c.pending = make(map[string]pendingRead)
	c.last = make(map[string]time.Time)
}

// mark records a read; it is written at once if the last write of that
// user and room is older than readEvery, else by the read loop.
func (c *readCoalescer) mark(e *Engine, room, user string, id StreamPos, direct bool) {
	key := user + "\x00" + room
	now := e.opts.Now()
	c.mu.Lock()
	p, waiting := c.pending[key]
	if waiting && !p.id.Less(id) {
		c.mu.Unlock()
		return
	}
	p = pendingRead{room, user, id, direct}
	if now.Sub(c.last[key]) < readEvery {
		c.pending[key] = p
		c.mu.Unlock()
		return
	}
	delete(c.pending, key)
	c.last[key] = now
	c.mu.Unlock()
	e.writeRead(e.ctx, p)
}

// due takes the pending reads whose wait is over, and forgets old writes.
func (c *readCoalescer) due(now time.Time, all bool) []pendingRead {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []pendingRead
	for key, p := range c.pending {
		if all || now.Sub(c.last[key]) >= readEvery {
			out = append(out, p)
			delete(c.pending, key)
			c.last[key] = now
		}
	}
	for key, at := range c.last {
		if _, waiting := c.pending[key]; !waiting && now.Sub(at) >= readEvery {
			delete(c.last, key)
		}
	}
	return out
}

// flushAll writes every pending read (on Close).
func (c *readCoalescer) flushAll(e *Engine) {
	for _, p := range c.due(e.opts.Now(), true) {
		e.writeRead(context.Background(), p)
	}
}

func (e *Engine) writeRead(ctx context.Context, p pendingRead) {
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	if err := e.opts.Log.MarkRead(ctx, p.room, p.user, p.id, p.direct); err != nil && e.ctx.Err() == nil {
		e.log.Warn("mark read", "room", p.room, "user", p.user, "err", err)
	}
}

// readLoop writes coalesced reads as their wait ends.
func (e *Engine) readLoop() {
	t := time.NewTicker(readEvery / 4)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range e.reads.due(e.opts.Now(), false) {
			e.writeRead(e.ctx, p)
		}
	}
}

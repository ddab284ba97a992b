package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/engine"
)

// Webhook outbox. The room streams are the outbox: an entry of a kind
// that is delivered to the webhook is recorded, in the same script call
// that stores it, by adding its room to a pending set. On a cluster a
// script may touch only its own hash slot, so there is one pending set per
// slot, keyed with a tag chosen to hash to that slot (slotTags); in
// single mode one set serves every room.
//
// Beside each room's keys, in its slot: the delivery lease (one instance
// delivers a room at a time) and the cursor (the last entry handled, and
// its entry counter, which tells how many entries retention removed
// before they were delivered).
//
// A room leaves its pending set only in webhook.lua's advance, which checks
// in the same atomic step that the cursor reached the room's newest
// entry: an entry stored later marks the room again.
//
// Finding pending rooms on a cluster: reading 16,384 slot sets every poll
// would cost each instance 16,384 commands a poll. Instead every instance
// that stores an entry of a delivered kind also adds its room, a moment
// later and in batches, to one small hint set (keyWebhookHint), which the
// deliverers poll; the hint is best effort (an instance may die between
// the append and the hint), so one instance at a time, every sweep
// period, reads every slot set (16,384 cheap commands, pipelined per
// primary) and puts what it finds back into the hint.

const (
	keyWebhookPending = "chat:whq"
	// keyWebhookHint (cluster) lists rooms that may have undelivered
	// events, scored with the ms of one of their entries.
	keyWebhookHint = "chat:whh"
	// keyWebhookSweep (cluster) is held by the instance sweeping the slot
	// sets this period.
	keyWebhookSweep = "chat:whs"
)

// slotTags[s] is a short string whose hash slot is s.
var slotTags = func() []string {
	tags := make([]string, NumSlots)
	found := 0
	for i := 0; found < NumSlots; i++ {
		t := strconv.FormatInt(int64(i), 36)
		if s := Slot(t); tags[s] == "" {
			tags[s] = t
			found++
		}
	}
	return tags
}()

// webhookKey is the pending set of room's webhook events.
func (s *Store) webhookKey(room string) string {
	if s.cluster == nil {
		return keyWebhookPending
	}
	return slotPendingKey(Slot(streamKey(room)))
}

func slotPendingKey(slot int) string { return "chat:{" + slotTags[slot] + "}:whq" }

func leaseKey(room string) string  { return roomPrefix(room) + "whl" }
func cursorKey(room string) string { return roomPrefix(room) + "whc" }

var webhookScript = script("webhook.lua")

// The webhook script joins the set that a NOSCRIPT answer reloads; kept
// here, beside it, rather than in store.go's list.
func init() { allScripts = append(allScripts, webhookScript) }

// WebhookPending returns up to n rooms that may have undelivered webhook
// events, oldest first, and for each a time (Unix ms) it has been
// pending since at least. In single mode they are the pending set itself;
// on a cluster they come from the hint set, which may list a room with
// nothing pending (WebhookTake then says so and drops the hint) and may
// miss a pending room until the next sweep.
func (s *Store) WebhookPending(ctx context.Context, n int) ([]string, []int64, error) {
	key := keyWebhookPending
	if s.cluster != nil {
		key = keyWebhookHint
	}
	zs, err := s.rdb.ZRangeWithScores(ctx, key, 0, int64(n)-1).Result()
	if err != nil {
		return nil, nil, wrap("webhook pending", err)
	}
	rooms := make([]string, 0, len(zs))
	since := make([]int64, 0, len(zs))
	for _, z := range zs {
		if r, ok := z.Member.(string); ok {
			rooms = append(rooms, r)
			since = append(since, int64(z.Score))
		}
	}
	return rooms, since, nil
}

// WebhookTake takes room's delivery lease for owner, for lease. When ok,
// delivery continues after cursor, whose entry counter is q (0 when
// unknown). When another owner holds the lease, ok is false and held is
// how long it still does; when room has nothing pending, ok is false and
// held is 0 (on a cluster its hint is dropped then).
func (s *Store) WebhookTake(ctx context.Context, room, owner string, lease time.Duration) (cursor engine.StreamPos, q uint64, held time.Duration, ok bool, err error) {
	keys := []string{leaseKey(room), cursorKey(room), s.webhookKey(room), metaKey(room), streamKey(room)}
	vals, err := s.run(ctx, s.rdb, webhookScript, keys, "take", room, owner, lease.Milliseconds()).StringSlice()
	if err != nil {
		return cursor, 0, 0, false, wrap("webhook take "+room, err)
	}
	bad := fmt.Errorf("store: webhook take %s: reply %q: %w", room, vals, engine.ErrUnavailable)
	if len(vals) < 2 {
		return cursor, 0, 0, false, bad
	}
	switch vals[0] {
	case "ok":
		if len(vals) != 3 {
			return cursor, 0, 0, false, bad
		}
		if cursor, err = engine.ParsePos(vals[1]); err != nil {
			return cursor, 0, 0, false, bad
		}
		q, _ = strconv.ParseUint(vals[2], 10, 64)
		return cursor, q, 0, true, nil
	case "held":
		ms, _ := strconv.ParseInt(vals[1], 10, 64)
		return cursor, 0, max(time.Duration(ms)*time.Millisecond, time.Millisecond), false, nil
	case "idle":
		if s.cluster != nil {
			newest := ""
			if p, err := engine.ParsePos(vals[1]); err == nil {
				newest = strconv.FormatUint(p.Ms, 10)
			}
			if err := s.run(ctx, s.rdb, webhookScript, []string{keyWebhookHint}, "unhint", room, newest).Err(); err != nil {
				return cursor, 0, 0, false, wrap("webhook unhint "+room, err)
			}
		}
		return cursor, 0, 0, false, nil
	}
	return cursor, 0, 0, false, bad
}

// WebhookAdvance records, for owner's lease of room, that every entry up
// to to (whose entry counter is q) was handled, and extends the lease.
// With finish it also ends the delivery when to is the room's newest
// entry: the room leaves the pending set and the lease is released
// (done). lost reports that owner no longer holds the lease; nothing was
// recorded then.
func (s *Store) WebhookAdvance(ctx context.Context, room, owner string, to engine.StreamPos, q uint64, finish bool, lease time.Duration) (done, lost bool, err error) {
	if finish && s.cluster != nil {
		// Off the hint before the check: a room that gets an entry after
		// the check is hinted after it, so it is not lost; a room that
		// stays pending is hinted again below.
		if err := s.rdb.ZRem(ctx, keyWebhookHint, room).Err(); err != nil {
			return false, false, wrap("webhook unhint "+room, err)
		}
	}
	keys := []string{leaseKey(room), cursorKey(room), s.webhookKey(room), metaKey(room), streamKey(room)}
	res, err := s.run(ctx, s.rdb, webhookScript, keys, "advance", room, owner, to.String(), q, lease.Milliseconds(), flag(finish)).Text()
	if err == nil && finish && res != "done" && s.cluster != nil {
		err = s.rdb.ZAddArgs(ctx, keyWebhookHint, redis.ZAddArgs{GT: true, Members: []redis.Z{{Score: float64(to.Ms), Member: room}}}).Err()
	}
	if err != nil {
		return false, false, wrap("webhook advance "+room, err)
	}
	switch res {
	case "done":
		return true, false, nil
	case "lost":
		return false, true, nil
	case "more":
		return false, false, nil
	}
	return false, false, fmt.Errorf("store: webhook advance %s: reply %q: %w", room, res, engine.ErrUnavailable)
}

// WebhookRenew extends owner's leases of rooms; held[i] reports whether
// owner still held rooms[i].
func (s *Store) WebhookRenew(ctx context.Context, owner string, rooms []string, lease time.Duration) ([]bool, error) {
	cmds := make([]*redis.Cmd, len(rooms))
	_, err := s.pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range rooms {
			cmds[i] = webhookScript.EvalSha(ctx, p, []string{leaseKey(r)}, "renew", owner, lease.Milliseconds())
		}
		return nil
	})
	if err != nil {
		return nil, wrap("webhook renew", err)
	}
	held := make([]bool, len(rooms))
	for i, c := range cmds {
		n, err := c.Int64()
		if err != nil {
			return nil, wrap("webhook renew", err)
		}
		held[i] = n == 1
	}
	return held, nil
}

// WebhookRelease gives up owner's lease of room, if owner holds it.
func (s *Store) WebhookRelease(ctx context.Context, room, owner string) error {
	return wrap("webhook release "+room, s.run(ctx, s.rdb, webhookScript, []string{leaseKey(room)}, "release", owner).Err())
}

// webhookSweepPerSlot bounds the rooms one sweep takes from one slot's
// pending set; the next sweep takes the next ones.
const webhookSweepPerSlot = 100

// WebhookSweep (cluster mode) puts every room of the slot sets back into
// the hint set, unless another instance swept within every: owner then
// takes the sweep for the period. It returns how many rooms it found. In
// single mode there is nothing to sweep.
func (s *Store) WebhookSweep(ctx context.Context, owner string, every time.Duration) (int, error) {
	if s.cluster == nil {
		return 0, nil
	}
	mine, err := s.rdb.SetNX(ctx, keyWebhookSweep, owner, every).Result()
	if err != nil || !mine {
		return 0, wrap("webhook sweep", err)
	}
	cmds := make([]*redis.ZSliceCmd, NumSlots)
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for slot := range NumSlots {
			cmds[slot] = p.ZRangeWithScores(ctx, slotPendingKey(slot), 0, webhookSweepPerSlot-1)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, wrap("webhook sweep", err)
	}
	var found []redis.Z
	for _, c := range cmds {
		found = append(found, c.Val()...)
	}
	for len(found) > 0 {
		chunk := found[:min(len(found), 1000)]
		found = found[len(chunk):]
		if err := s.rdb.ZAddArgs(ctx, keyWebhookHint, redis.ZAddArgs{GT: true, Members: chunk}).Err(); err != nil {
			return 0, wrap("webhook sweep", err)
		}
	}
	n := 0
	for _, c := range cmds {
		n += len(c.Val())
	}
	return n, nil
}

// webhookHints collects, on a cluster, the rooms to add to the hint set
// after their entries were stored; a goroutine of the store adds them
// every hintEvery, so that the send path pays nothing for the hint.
type webhookHints struct {
	mu    sync.Mutex
	rooms map[string]uint64 // room -> ms of its newest entry stored
}

// hintEvery is how long a hint may wait before it is written: the delay
// it adds to the first delivery of a room that was idle.
const hintEvery = 10 * time.Millisecond

// maxHints bounds the hints kept between two writes; beyond it the
// sweep finds the rooms.
const maxHints = 100000

// webhookHint records that room has a delivered entry of time ms (cluster
// mode, webhooks on).
func (s *Store) webhookHint(room string, ms uint64) {
	if s.cluster == nil || len(s.opts.Webhooks) == 0 {
		return
	}
	h := &s.hints
	h.mu.Lock()
	if h.rooms == nil {
		h.rooms = make(map[string]uint64)
	}
	if len(h.rooms) < maxHints || h.rooms[room] != 0 {
		h.rooms[room] = max(h.rooms[room], ms)
	}
	h.mu.Unlock()
}

// hintLoop writes the hints collected until the store closes, then once
// more.
func (s *Store) hintLoop() {
	t := time.NewTicker(hintEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
			s.flushHints(ctx)
			cancel()
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(s.ctx, s.opts.Timeout)
			s.flushHints(ctx)
			cancel()
		}
	}
}

func (s *Store) flushHints(ctx context.Context) {
	h := &s.hints
	h.mu.Lock()
	rooms := h.rooms
	h.rooms = nil
	h.mu.Unlock()
	if len(rooms) == 0 {
		return
	}
	zs := make([]redis.Z, 0, len(rooms))
	for r, ms := range rooms {
		zs = append(zs, redis.Z{Score: float64(ms), Member: r})
	}
	for len(zs) > 0 {
		chunk := zs[:min(len(zs), 1000)]
		zs = zs[len(chunk):]
		if err := s.rdb.ZAddArgs(ctx, keyWebhookHint, redis.ZAddArgs{GT: true, Members: chunk}).Err(); err != nil {
			// The rooms are pending in their slot sets all the same; the
			// sweep finds them.
			s.log.Warn("webhook hints", "rooms", len(rooms), "err", err)
			return
		}
	}
}

// hintAppends hints the rooms of a batch's stored entries of delivered
// kinds.
func (s *Store) hintAppends(batch []appendReq, results []result) {
	if s.cluster == nil || len(s.opts.Webhooks) == 0 {
		return
	}
	for i := range results {
		r := &results[i]
		if r.err == nil && !r.res.Noop && !r.res.Duplicate && s.opts.Webhooks[batch[i].req.Kind] {
			s.webhookHint(r.room, r.res.Entry.ID.Ms)
		}
	}
}

// hintEntry hints room for the entry id that a room operation stored.
func (s *Store) hintEntry(room, id string) {
	if p, err := engine.ParsePos(id); err == nil {
		s.webhookHint(room, p.Ms)
	}
}

package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/engine"
)

type sendReq struct {
	req  engine.AppendRequest
	done func(engine.AppendResult, error)
}

// maxBatch bounds one batch of sends: enough to amortise a round trip and
// a script call over many sends, small enough that one batch holds Redis
// for well under a millisecond (a few µs a send).
const maxBatch = 128

// Append implements engine.Log. Sends queue per room-hashed worker; a
// worker stores all it has queued with one script call, so many sends in
// flight share round trips and script overhead, and one room's sends keep
// their order.
func (s *Store) Append(req engine.AppendRequest, done func(engine.AppendResult, error)) {
	q := s.queues[shardOf(req.Room)%len(s.queues)]
	select {
	case <-s.ctx.Done():
		go done(engine.AppendResult{}, fmt.Errorf("store: closed: %w", engine.ErrUnavailable))
	case q <- sendReq{req, done}:
	}
}

func (s *Store) sendLoop(q chan sendReq) {
	batch := make([]sendReq, 0, maxBatch)
	for {
		select {
		case <-s.ctx.Done():
			for {
				select {
				case r := <-q:
					r.done(engine.AppendResult{}, fmt.Errorf("store: closed: %w", engine.ErrUnavailable))
				default:
					return
				}
			}
		case r := <-q:
			batch = append(batch[:0], r)
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-q:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.sendBatch(batch)
		clear(batch)
	}
}

// sendCall builds the one script call that stores a batch: five keys and
// four arguments per send, after the batch-wide arguments.
func (s *Store) sendCall(batch []sendReq) ([]string, []any) {
	keys := make([]string, 0, 5*len(batch))
	args := make([]any, 0, 4+4*len(batch))
	args = append(args, s.opts.MaxLen, int64(s.opts.IdempotencyTTL/time.Second), s.opts.SendRate, s.opts.SendBurst)
	for _, b := range batch {
		r := b.req
		keys = append(keys, streamKey(r.Room), metaKey(r.Room), readKey(r.Room), idemKey(r.Room, r.User, r.ClientID), prefixRate+r.User)
		args = append(args, r.User, r.Text, r.ClientID, r.Now.UnixMilli())
	}
	return keys, args
}

// sendBatch stores a batch with one script call. After a Redis restart
// that lost the script cache, the call fails with NOSCRIPT before running
// anything, and Run loads the script and calls once more, so nothing is
// stored twice.
func (s *Store) sendBatch(batch []sendReq) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Timeout)
	defer cancel()
	keys, args := s.sendCall(batch)
	vals, err := sendScript.Run(ctx, s.send, keys, args...).StringSlice()
	if err == nil && len(vals) != 3*len(batch) {
		err = fmt.Errorf("store: send: %d values for %d sends: %w", len(vals), len(batch), engine.ErrUnavailable)
	}
	for i, r := range batch {
		if err != nil {
			r.done(engine.AppendResult{}, wrap("send "+r.req.Room, err))
			continue
		}
		r.done(sendResult(r.req, vals[3*i:3*i+3]))
	}
}

func sendResult(req engine.AppendRequest, vals []string) (engine.AppendResult, error) {
	switch vals[0] {
	case "rl":
		ms, _ := strconv.ParseInt(vals[1], 10, 64)
		return engine.AppendResult{}, &engine.RetryError{After: ms, Reason: "too many messages; slow down"}
	case "dup":
		id, err := engine.ParsePos(vals[1])
		if err != nil {
			return engine.AppendResult{}, fmt.Errorf("store: send %s: bad id %q: %w", req.Room, vals[1], engine.ErrUnavailable)
		}
		m := engine.Message{ID: id, Room: req.Room, User: req.User, Text: req.Text, TS: int64(id.Ms), ClientID: req.ClientID}
		return engine.AppendResult{Message: m, Duplicate: true}, nil
	}
	id, err := engine.ParsePos(vals[1])
	if err != nil || vals[0] != "ok" {
		return engine.AppendResult{}, fmt.Errorf("store: send %s: bad reply %q: %w", req.Room, vals, engine.ErrUnavailable)
	}
	n, _ := strconv.ParseUint(vals[2], 10, 64)
	return engine.AppendResult{Message: engine.Message{
		ID: id, Room: req.Room, User: req.User, Text: req.Text, TS: int64(id.Ms), ClientID: req.ClientID, Seq: n,
	}}, nil
}

func decode(room string, x redis.XMessage) (engine.Message, bool) {
	id, err := engine.ParsePos(x.ID)
	if err != nil {
		return engine.Message{}, false
	}
	m := engine.Message{ID: id, Room: room, TS: int64(id.Ms)}
	m.User, _ = x.Values["u"].(string)
	m.Text, _ = x.Values["t"].(string)
	m.ClientID, _ = x.Values["c"].(string)
	if n, ok := x.Values["n"].(string); ok {
		m.Seq, _ = strconv.ParseUint(n, 10, 64)
	}
	return m, true
}

func decodeAll(room string, xs []redis.XMessage) []engine.Message {
	out := make([]engine.Message, 0, len(xs))
	for _, x := range xs {
		if m, ok := decode(room, x); ok {
			out = append(out, m)
		}
	}
	return out
}

func next(p engine.StreamPos) string {
	if p.Seq == ^uint64(0) {
		return engine.StreamPos{Ms: p.Ms + 1}.String()
	}
	return engine.StreamPos{Ms: p.Ms, Seq: p.Seq + 1}.String()
}

func prev(p engine.StreamPos) string {
	if p.Seq == 0 {
		return engine.StreamPos{Ms: p.Ms - 1, Seq: ^uint64(0)}.String()
	}
	return engine.StreamPos{Ms: p.Ms, Seq: p.Seq - 1}.String()
}

// Range implements engine.Log.
func (s *Store) Range(ctx context.Context, room string, after engine.StreamPos, n int) ([]engine.Message, error) {
	if after.Ms == ^uint64(0) && after.Seq == ^uint64(0) {
		return nil, nil
	}
	xs, err := s.rdb.XRangeN(ctx, streamKey(room), next(after), "+", int64(n)).Result()
	if err != nil {
		return nil, wrap("xrange "+room, err)
	}
	return decodeAll(room, xs), nil
}

// RevRange implements engine.Log.
func (s *Store) RevRange(ctx context.Context, room string, before engine.StreamPos, n int) ([]engine.Message, error) {
	end := "+"
	if !before.IsZero() {
		end = prev(before)
	}
	xs, err := s.rdb.XRevRangeN(ctx, streamKey(room), end, "-", int64(n)).Result()
	if err != nil {
		return nil, wrap("xrevrange "+room, err)
	}
	return decodeAll(room, xs), nil
}

// Last implements engine.Log.
func (s *Store) Last(ctx context.Context, room string) (engine.StreamPos, error) {
	xs, err := s.rdb.XRevRangeN(ctx, streamKey(room), "+", "-", 1).Result()
	if err != nil {
		return engine.StreamPos{}, wrap("last "+room, err)
	}
	if len(xs) == 0 {
		return engine.StreamPos{}, nil
	}
	return engine.ParsePos(xs[0].ID)
}

// Get implements engine.Log.
func (s *Store) Get(ctx context.Context, room string, id engine.StreamPos) (engine.Message, error) {
	xs, err := s.rdb.XRangeN(ctx, streamKey(room), id.String(), id.String(), 1).Result()
	if err != nil {
		return engine.Message{}, wrap("get "+room, err)
	}
	if len(xs) == 0 {
		return engine.Message{}, fmt.Errorf("message %s: %w", id, engine.ErrNotFound)
	}
	m, _ := decode(room, xs[0])
	return m, nil
}

// Trimmed implements engine.Log: the send script records the last ID
// retention removed in the room's meta hash.
func (s *Store) Trimmed(ctx context.Context, room string) (engine.StreamPos, error) {
	v, err := s.rdb.HGet(ctx, metaKey(room), "trimmed").Result()
	if err == redis.Nil {
		return engine.StreamPos{}, nil
	}
	if err != nil {
		return engine.StreamPos{}, wrap("trimmed "+room, err)
	}
	return engine.ParsePos(v)
}

// tailCount bounds one XREAD: enough for a burst, small enough that a
// slow room cannot delay the others of its shard.
const tailCount = 512

// Shards implements engine.Tail: the engine's tail shards are this
// store's tail readers (Options.TailReaders), each reading a fixed set of
// key shards.
func (s *Store) Shards() int { return s.opts.TailReaders }

// Shard implements engine.Tail.
func (s *Store) Shard(room string) int { return shardOf(room) % s.opts.TailReaders }

// Read implements engine.Tail with one XREAD BLOCK over the shard's room
// streams and this instance's wake-up stream of the shard.
func (s *Store) Read(ctx context.Context, shard int, rooms []string, after []engine.StreamPos, block time.Duration) ([]engine.Message, error) {
	streams := make([]string, 0, 2*len(rooms)+2)
	for _, r := range rooms {
		streams = append(streams, streamKey(r))
	}
	wake := s.wakeKey(shard)
	streams = append(streams, wake)
	for _, p := range after {
		streams = append(streams, p.String())
	}
	s.wakeMu.Lock()
	streams = append(streams, s.wakeIDs[shard])
	s.wakeMu.Unlock()
	res, err := s.tail.XRead(ctx, &redis.XReadArgs{Streams: streams, Count: tailCount, Block: block}).Result()
	if err == redis.Nil {
		return nil, nil
	}
	if err != nil {
		return nil, wrap("xread", err)
	}
	var out []engine.Message
	for _, st := range res {
		if st.Stream == wake {
			if n := len(st.Messages); n > 0 {
				s.wakeMu.Lock()
				s.wakeIDs[shard] = st.Messages[n-1].ID
				s.wakeMu.Unlock()
			}
			continue
		}
		out = append(out, decodeAll(roomOfStream(st.Stream), st.Messages)...)
	}
	return out, nil
}

// Wake implements engine.Tail.
func (s *Store) Wake(ctx context.Context, shard int) error {
	key := s.wakeKey(shard)
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.XAdd(ctx, &redis.XAddArgs{Stream: key, MaxLen: 1, Values: []any{"w", "1"}})
		p.Expire(ctx, key, time.Hour)
		return nil
	})
	return wrap("wake", err)
}

var _ engine.JoinStater = (*Store)(nil)

// JoinState implements engine.JoinStater: the newest entry, presence and
// read-position scripts and the first entry, in one pipeline. EVALSHA in a
// pipeline fails with NOSCRIPT after a Redis restart; then the scripts are
// loaded and the pipeline runs once more (the scripts are idempotent).
func (s *Store) JoinState(ctx context.Context, room, user string, markOnline, markRead, withTrimmed bool, deadline time.Time) (engine.JoinState, error) {
	var st engine.JoinState
	for attempt := 0; ; attempt++ {
		var last *redis.XMessageSliceCmd
		var trimmed *redis.StringCmd
		var online *redis.Cmd
		op := "online"
		if markOnline {
			op = "join"
		}
		pkeys, pargs := presenceArgs(s.opts.Instance, op, room, []string{user}, deadline)
		if !markOnline {
			pargs = pargs[:6]
		}
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			last = p.XRevRangeN(ctx, streamKey(room), "+", "-", 1)
			online = presenceScript.EvalSha(ctx, p, pkeys, pargs...)
			if markRead {
				joinedScript.EvalSha(ctx, p, []string{metaKey(room), readKey(room)}, user)
			}
			if withTrimmed {
				trimmed = p.HGet(ctx, metaKey(room), "trimmed")
			}
			return nil
		})
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") && attempt == 0 {
			for _, sc := range []*redis.Script{presenceScript, joinedScript} {
				if err := sc.Load(ctx, s.rdb).Err(); err != nil {
					return st, wrap("load scripts", err)
				}
			}
			continue
		}
		if err != nil && err != redis.Nil {
			return st, wrap("join "+room, err)
		}
		if xs := last.Val(); len(xs) > 0 {
			st.Last, _ = engine.ParsePos(xs[0].ID)
		}
		st.Online, _ = online.StringSlice()
		if trimmed != nil && trimmed.Val() != "" {
			st.Trimmed, _ = engine.ParsePos(trimmed.Val())
		}
		return st, nil
	}
}

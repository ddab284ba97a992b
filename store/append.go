package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/engine"
)

type appendReq struct {
	req  engine.AppendRequest
	done func(engine.AppendResult, error)
}

// maxBatch bounds one batch of appends: enough to amortise a round trip
// and a script call over many appends, small enough that one batch holds
// Redis for well under a millisecond (a few µs an append).
const maxBatch = 128

// Append implements engine.Log. Appends queue on a worker chosen by the
// room's hash slot, so one room's appends keep their order; a worker
// stores everything it has queued with one script call per hash slot.
func (s *Store) Append(req engine.AppendRequest, done func(engine.AppendResult, error)) {
	q := s.queues[Slot(streamKey(req.Room))%len(s.queues)]
	select {
	case <-s.ctx.Done():
		go done(engine.AppendResult{}, fmt.Errorf("store: closed: %w", engine.ErrUnavailable))
	case q <- appendReq{req, done}:
	}
}

func (s *Store) appendLoop(q chan appendReq) {
	batch := make([]appendReq, 0, maxBatch)
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
		s.appendBatch(batch)
		clear(batch)
	}
}

// result is one append's outcome before its callback runs.
type result struct {
	res    engine.AppendResult
	err    error
	notice string // to publish after WAIT
	room   string
}

// appendBatch stores a batch: on a cluster, the per-user send rates first
// (another hash slot), then one script call per hash slot, the slots of
// one primary in one pipeline (with WAIT, when asked, on the same
// connection); then it answers every append and, when waiting for
// replicas, announces what was stored.
func (s *Store) appendBatch(batch []appendReq) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Timeout+s.waitTimeout())
	defer cancel()
	results := make([]result, len(batch))
	todo := make([]int, 0, len(batch))
	if s.cluster != nil {
		s.checkRates(ctx, batch, results)
	}
	for i := range batch {
		results[i].room = batch[i].req.Room
		if results[i].err == nil {
			todo = append(todo, i)
		}
	}
	s.storeBatch(ctx, batch, todo, results)
	for i, r := range batch {
		r.done(results[i].res, results[i].err)
	}
	s.hintAppends(batch, results)
	if s.opts.WaitReplicas > 0 {
		s.announce(results)
	}
}

// announceTimeout bounds the announcement of a batch: a notice may be
// lost (the next one, or the sweep, shows the gap), but a worker stuck
// on a primary that died would hold up every room of the worker.
const announceTimeout = 250 * time.Millisecond

func (s *Store) waitTimeout() time.Duration {
	if s.opts.WaitReplicas > 0 {
		return s.opts.WaitTimeout
	}
	return 0
}

// checkRates takes a token from each writer's rate bucket (cluster mode:
// the buckets live in the users' hash slots, not the rooms'), marking the
// appends that are over their rate: messages, edits, deletions and
// reactions alike, as append.lua does in single mode. A retried send pays
// for a token too;
// within its rate it gets the first send's ack back.
func (s *Store) checkRates(ctx context.Context, batch []appendReq, results []result) {
	bySlot := map[int][]int{}
	for i, r := range batch {
		if !r.req.RateExempt {
			slot := Slot(userRateKey(r.req.User))
			bySlot[slot] = append(bySlot[slot], i)
		}
	}
	if len(bySlot) == 0 {
		return
	}
	type call struct {
		idx []int
		cmd *redis.Cmd
	}
	var calls []call
	build := func(p redis.Pipeliner) error {
		calls = calls[:0]
		for _, is := range bySlot {
			keys := make([]string, len(is))
			for j, i := range is {
				keys[j] = userRateKey(batch[i].req.User)
			}
			calls = append(calls, call{is, rateScript.EvalSha(ctx, p, keys, s.opts.SendRate, s.opts.SendBurst)})
		}
		return nil
	}
	if _, err := s.send.Pipelined(ctx, build); err != nil && hasNoScriptCmds(calls, func(c call) *redis.Cmd { return c.cmd }) {
		if s.loadScripts(ctx) == nil {
			_, _ = s.send.Pipelined(ctx, build)
		}
	}
	for _, c := range calls {
		vals, err := c.cmd.Int64Slice()
		if err == nil && len(vals) != len(c.idx) {
			err = fmt.Errorf("rate: %d values for %d sends", len(vals), len(c.idx))
		}
		for j, i := range c.idx {
			switch {
			case err != nil:
				// Fail closed: a send whose rate cannot be checked is not stored.
				results[i].err = wrap("rate "+batch[i].req.User, err)
			case vals[j] > 0:
				results[i].err = &engine.RetryError{After: vals[j], Reason: "too many writes; slow down"}
			}
		}
	}
}

func hasNoScriptCmds[T any](xs []T, cmd func(T) *redis.Cmd) bool {
	for _, x := range xs {
		if err := cmd(x).Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			return true
		}
	}
	return false
}

// storeBatch runs append.lua for the appends todo (indexes into batch),
// grouped by primary and hash slot, retrying the groups a cluster
// redirected (the script did not run) until ctx ends.
func (s *Store) storeBatch(ctx context.Context, batch []appendReq, todo []int, results []result) {
	for attempt := 0; len(todo) > 0; attempt++ {
		var retry []int
		if s.cluster == nil {
			retry = s.storeOn(ctx, s.send.(*redis.Client), batch, [][]int{todo}, results)
		} else {
			groups, err := s.groupByNode(ctx, batch, todo)
			if err != nil {
				for _, i := range todo {
					results[i].err = wrap("append "+batch[i].req.Room, err)
				}
				return
			}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for node, slots := range groups {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := s.storeOn(ctx, node, batch, slots, results)
					mu.Lock()
					retry = append(retry, r...)
					mu.Unlock()
				}()
			}
			wg.Wait()
		}
		if len(retry) == 0 {
			return
		}
		// Redirected (a slot moved, a failover under way): the script
		// did not run. Learn the new layout and try again.
		if s.cluster != nil {
			s.cluster.ReloadState(ctx)
		}
		select {
		case <-ctx.Done():
			for _, i := range retry {
				results[i].err = fmt.Errorf("store: append %s: cluster did not settle: %w", batch[i].req.Room, engine.ErrUnavailable)
			}
			return
		case <-time.After(min(time.Duration(attempt+1)*50*time.Millisecond, 500*time.Millisecond)):
		}
		todo = retry
	}
}

// groupByNode maps each append of todo to the primary of its slot, and
// groups each primary's appends by slot.
func (s *Store) groupByNode(ctx context.Context, batch []appendReq, todo []int) (map[*redis.Client][][]int, error) {
	bySlot := map[int][]int{}
	var order []int
	for _, i := range todo {
		slot := Slot(streamKey(batch[i].req.Room))
		if _, ok := bySlot[slot]; !ok {
			order = append(order, slot)
		}
		bySlot[slot] = append(bySlot[slot], i)
	}
	send := s.send.(*redis.ClusterClient)
	out := map[*redis.Client][][]int{}
	for _, slot := range order {
		is := bySlot[slot]
		node, err := send.MasterForKey(ctx, streamKey(batch[is[0]].req.Room))
		if err != nil {
			return nil, err
		}
		out[node] = append(out[node], is)
	}
	return out, nil
}

// storeOn runs one append.lua call per group on node, in one pipeline,
// followed by WAIT when replicas must confirm. It returns the appends to
// retry because the cluster redirected them (nothing ran).
func (s *Store) storeOn(ctx context.Context, node *redis.Client, batch []appendReq, groups [][]int, results []result) (retry []int) {
	pub := s.pubcmd
	if s.opts.WaitReplicas > 0 {
		pub = "" // announce only what replicas hold
	}
	type call struct {
		idx []int
		cmd *redis.Cmd
	}
	calls := make([]call, 0, len(groups))
	var wait *redis.Cmd
	build := func(p redis.Pipeliner) error {
		calls = calls[:0]
		for _, g := range groups {
			keys, args := s.appendCall(batch, g, pub)
			calls = append(calls, call{g, appendScript.EvalSha(ctx, p, keys, args...)})
		}
		if s.opts.WaitReplicas > 0 {
			wait = p.Do(ctx, "wait", s.opts.WaitReplicas, s.opts.WaitTimeout.Milliseconds())
		}
		return nil
	}
	_, err := node.Pipelined(ctx, build)
	if err != nil && hasNoScriptCmds(calls, func(c call) *redis.Cmd { return c.cmd }) {
		// A restarted or promoted Redis has no scripts; NOSCRIPT means
		// nothing ran, so loading them and calling again stores once.
		if lerr := s.loadOn(ctx, node); lerr == nil {
			_, err = node.Pipelined(ctx, build)
		}
	}
	waitErr := error(nil)
	if wait != nil {
		n, werr := wait.Int64()
		switch {
		case werr != nil:
			waitErr = werr
		case n < int64(s.opts.WaitReplicas):
			waitErr = fmt.Errorf("%d of %d replicas confirmed within %v", n, s.opts.WaitReplicas, s.opts.WaitTimeout)
		}
	}
	for _, c := range calls {
		vals, cerr := c.cmd.Slice()
		if cerr != nil && redirected(cerr) {
			retry = append(retry, c.idx...)
			continue
		}
		if cerr == nil && len(vals) != 6*len(c.idx) {
			cerr = fmt.Errorf("%d values for %d appends", len(vals), len(c.idx))
		}
		for j, i := range c.idx {
			r := &results[i]
			if cerr != nil {
				r.err = wrap("append "+batch[i].req.Room, cerr)
				continue
			}
			r.res, r.notice, r.err = s.appendResult(batch[i].req, vals[6*j:6*j+6])
			if r.err == nil && waitErr != nil && !r.res.Noop {
				// Stored on the primary but not confirmed by replicas: not
				// acknowledged. A retry with the same client_id finds it.
				r.err = fmt.Errorf("store: append %s: %w: %v", batch[i].req.Room, engine.ErrUnavailable, waitErr)
				r.notice = ""
			}
		}
	}
	_ = err
	return retry
}

func (s *Store) loadOn(ctx context.Context, node *redis.Client) error {
	_, err := node.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, sc := range allScripts {
			p.ScriptLoad(ctx, sc.src)
		}
		return nil
	})
	return err
}

// redirected reports whether err says the command went to the wrong
// primary or the cluster is between states: nothing ran, try again.
func redirected(err error) bool {
	for _, p := range []string{"MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "READONLY", "LOADING", "MASTERDOWN"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// idemDigest names the idempotency key of (user, clientID) in a room:
// the parts are length-prefixed before hashing, so no two pairs meet.
func idemDigest(user, clientID string) string {
	h := sha256.New()
	h.Write([]byte(strconv.Itoa(len(user))))
	h.Write([]byte{':'})
	h.Write([]byte(user))
	h.Write([]byte(clientID))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func posArg(p engine.StreamPos) string {
	if p.IsZero() {
		return ""
	}
	return p.String()
}

// appendCall builds one append.lua call for the appends group.
func (s *Store) appendCall(batch []appendReq, group []int, pub string) ([]string, []any) {
	keys := make([]string, 0, len(group))
	args := make([]any, 0, 5+12*len(group))
	args = append(args, s.opts.MaxLen, int64(s.opts.IdempotencyTTL/time.Second), s.opts.SendRate, s.opts.SendBurst, pub)
	for _, i := range group {
		r := batch[i].req
		keys = append(keys, streamKey(r.Room))
		p := roomPrefix(r.Room)
		wh := ""
		if s.opts.Webhooks[r.Kind] {
			wh = s.webhookKey(r.Room)
		}
		// In cluster mode the rate was taken before (checkRates).
		rate := ""
		if s.cluster == nil && !r.RateExempt {
			rate = userRateKey(r.User)
		}
		var a []any
		switch r.Kind {
		case engine.EntryMessage:
			idem := ""
			if r.ClientID != "" {
				idem = idemDigest(r.User, r.ClientID)
			}
			a = []any{"m", p, r.User, flag(r.Admin), r.Text, r.ClientID, idem, posArg(r.ReplyTo), rate, wh, len(r.Mentions)}
			for _, m := range r.Mentions {
				a = append(a, m)
			}
		case engine.EntryEdit:
			a = []any{"e", p, r.User, flag(r.Admin), r.Target.String(), r.Text, r.EditWindow.Milliseconds(), wh, rate, len(r.Mentions)}
			for _, m := range r.Mentions {
				a = append(a, m)
			}
		case engine.EntryDelete:
			a = []any{"d", p, r.User, flag(r.Admin), r.Target.String(), wh, rate}
		case engine.EntryReaction:
			a = []any{"r", p, r.User, flag(r.Admin), r.Target.String(), r.Emoji, flag(r.On), wh, rate}
		}
		args = append(args, len(a))
		args = append(args, a...)
	}
	return keys, args
}

// appendResult turns append.lua's six values for one append into its
// result and, when the script did not publish, the notice to announce.
func (s *Store) appendResult(req engine.AppendRequest, vals []any) (engine.AppendResult, string, error) {
	str := func(i int) string { v, _ := vals[i].(string); return v }
	status := str(0)
	switch status {
	case "ok":
	case "dup":
		id, err := engine.ParsePos(str(1))
		if err != nil {
			return engine.AppendResult{}, "", fmt.Errorf("store: append %s: bad id %q: %w", req.Room, str(1), engine.ErrUnavailable)
		}
		return engine.AppendResult{Duplicate: true, Entry: engine.Entry{
			Kind: engine.EntryMessage, ID: id, Room: req.Room, User: req.User, Text: req.Text, ClientID: req.ClientID, ReplyTo: req.ReplyTo,
		}}, "", nil
	case "noop":
		return engine.AppendResult{Noop: true, Entry: engine.Entry{Kind: req.Kind, Room: req.Room, User: req.User,
			Target: req.Target, Emoji: req.Emoji, On: req.On}}, "", nil
	case "rl":
		ms, _ := strconv.ParseInt(str(1), 10, 64)
		return engine.AppendResult{}, "", &engine.RetryError{After: ms, Reason: "too many writes; slow down"}
	case "notfound":
		what := "room " + req.Room
		if req.Kind != engine.EntryMessage {
			what = "message " + req.Target.String()
		}
		return engine.AppendResult{}, "", fmt.Errorf("%s: %w", what, engine.ErrNotFound)
	case "noreply":
		return engine.AppendResult{}, "", fmt.Errorf("reply_to %s is not a message of %s: %w", req.ReplyTo, req.Room, engine.ErrNotFound)
	case "forbidden":
		return engine.AppendResult{}, "", fmt.Errorf("room %s: you may not write there now (banned, muted or not a member): %w", req.Room, engine.ErrForbidden)
	case "notyours":
		if req.Kind == engine.EntryEdit {
			return engine.AppendResult{}, "", fmt.Errorf("message %s: only its author may edit it: %w", req.Target, engine.ErrForbidden)
		}
		return engine.AppendResult{}, "", fmt.Errorf("message %s: only its author, the room's owners and moderators may delete it: %w", req.Target, engine.ErrForbidden)
	case "late":
		return engine.AppendResult{}, "", fmt.Errorf("message %s can no longer be edited (the edit window is %v): %w", req.Target, req.EditWindow, engine.ErrForbidden)
	case "invalid":
		return engine.AppendResult{}, "", fmt.Errorf("a message holds at most 50 distinct emoji: %w", engine.ErrInvalid)
	default:
		return engine.AppendResult{}, "", fmt.Errorf("store: append %s: reply %q: %w", req.Room, status, engine.ErrUnavailable)
	}
	id, err := engine.ParsePos(str(1))
	if err != nil {
		return engine.AppendResult{}, "", fmt.Errorf("store: append %s: bad id %q: %w", req.Room, str(1), engine.ErrUnavailable)
	}
	q, _ := strconv.ParseUint(str(2), 10, 64)
	n, _ := strconv.ParseUint(str(3), 10, 64)
	e := engine.Entry{Kind: req.Kind, ID: id, Room: req.Room, User: req.User, Q: q, N: n,
		Text: req.Text, ClientID: req.ClientID, ReplyTo: req.ReplyTo, Target: req.Target, Emoji: req.Emoji, On: req.On}
	if req.Kind == engine.EntryDelete || req.Kind == engine.EntryReaction {
		e.Text = ""
	}
	if m := str(4); m != "" {
		e.Mentions = strings.Fields(m)
	}
	return engine.AppendResult{Entry: e}, str(5), nil
}

// announce publishes, after replicas confirmed them, the notices of what
// a batch stored.
func (s *Store) announce(results []result) {
	any := false
	for i := range results {
		if results[i].notice != "" {
			any = true
			break
		}
	}
	if !any {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, announceTimeout)
	defer cancel()
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range results {
			if n := results[i].notice; n != "" {
				s.publishCmd(ctx, p, roomChannel(results[i].room), n)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		// The entries are stored; the next notice of each room, or the
		// fan-out's sweep, shows the gap and reads them.
		s.log.Warn("announce appends", "err", err)
	}
}

// publishCmd queues a PUBLISH (SPUBLISH on a cluster) on p.
func (s *Store) publishCmd(ctx context.Context, p redis.Pipeliner, channel, payload string) {
	if s.cluster != nil {
		p.SPublish(ctx, channel, payload)
	} else {
		p.Publish(ctx, channel, payload)
	}
}

package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures an Engine. The zero value of each field means its
// default, named in the field's comment; Log, Tail, Bus, Presence,
// Directory and Encoder are required.
type Options struct {
	Log       Log
	Tail      Tail
	Bus       Bus
	Presence  Presence
	Directory Directory
	Encoder   Encoder

	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now

	// MaxText is the longest message text in characters. Zero means 4000.
	MaxText int
	// QueueLen is how many frames a session may have queued for its
	// client before it is closed as too slow (ErrSlowConsumer). A client on
	// a healthy link drains its queue within a few milliseconds, so the
	// default of 1024 only fills when the client stopped reading for
	// seconds; a larger queue would only hide that and cost memory.
	QueueLen int
	// MaxQueueBytes bounds the bytes queued per session. Zero means 4 MiB.
	MaxQueueBytes int
	// MaxRoomsPerSession bounds the rooms one session may join. Zero means 100.
	MaxRoomsPerSession int
	// MaxSessionsPerUser bounds one user's sessions on this instance. Zero means 20.
	MaxSessionsPerUser int
	// PresenceTTL is how long presence lives without a heartbeat, so a dead
	// instance's users go offline by themselves. Zero means 40s; the
	// heartbeat runs every PresenceTTL/4.
	PresenceTTL time.Duration
	// TailBlock is how long one blocking read waits. Zero means 5s.
	TailBlock time.Duration
	// TypingEvery is the least time between two relayed typing events of
	// one user in one room. Zero means 2s.
	TypingEvery time.Duration
	// Timeout bounds each Redis call made for a client. Zero means 2s.
	Timeout time.Duration
	// ReplayPage is the page size of join-since replays. Zero means 200.
	ReplayPage int
	// MaxInflight bounds the unacknowledged sends of one session; the
	// session's reader waits beyond it. Zero means 32.
	MaxInflight int
}

func (o *Options) setDefaults() error {
	if o.Log == nil || o.Tail == nil || o.Bus == nil || o.Presence == nil || o.Directory == nil || o.Encoder == nil {
		return errors.New("engine: Log, Tail, Bus, Presence, Directory and Encoder are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxText, 4000)
	def(&o.QueueLen, 1024)
	def(&o.MaxQueueBytes, 4<<20)
	def(&o.MaxRoomsPerSession, 100)
	def(&o.MaxSessionsPerUser, 20)
	def(&o.ReplayPage, 200)
	def(&o.MaxInflight, 32)
	defd(&o.PresenceTTL, 40*time.Second)
	defd(&o.TailBlock, 5*time.Second)
	defd(&o.TypingEvery, 2*time.Second)
	defd(&o.Timeout, 2*time.Second)
	return nil
}

// Engine is one instance's chat core: it authorises room access, stores
// sends, tails the streams of the rooms its sessions joined and fans new
// messages and ephemeral events out to them. All methods may be called
// concurrently.
//
// Lock order: Engine.mu, then room.mu, then Session.mu.
type Engine struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine New starts
	closed atomic.Bool

	mu       sync.Mutex
	rooms    map[string]*room
	users    map[string]int                   // sessions per user
	tokens   map[string]map[*Session]struct{} // sessions per token ID
	sessions map[*Session]struct{}
	shards   []*shard

	channels sync.Map // channel names known to exist
	directs  sync.Map // direct rooms already in both members' lists

	typingMu sync.Mutex
	typing   map[string]time.Time // user + "\x00" + room → last relayed

	nextID atomic.Uint64

	// Counters for metrics; see Counters.
	delivered  atomic.Int64
	tailRead   atomic.Int64
	kicked     atomic.Int64
	tailProbes atomic.Int64
}

// Counters are totals since New, for metrics.
type Counters struct {
	TailRead   int64 // messages read by the tail loops
	Delivered  int64 // message frames queued to sessions
	SlowKicks  int64 // sessions closed for being too slow
	TailProbes int64 // tail reads found stuck and woken
}

// Counters returns the totals since New.
func (e *Engine) Counters() Counters {
	return Counters{TailRead: e.tailRead.Load(), Delivered: e.delivered.Load(), SlowKicks: e.kicked.Load(), TailProbes: e.tailProbes.Load()}
}

// New validates opts and starts the engine's background work: one tail
// loop per shard, the event loop and the presence heartbeat. Close stops them.
func New(opts Options) (*Engine, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		opts:     opts,
		log:      opts.Logger,
		ctx:      ctx,
		cancel:   cancel,
		rooms:    make(map[string]*room),
		users:    make(map[string]int),
		tokens:   make(map[string]map[*Session]struct{}),
		sessions: make(map[*Session]struct{}),
		typing:   make(map[string]time.Time),
	}
	for i := range opts.Tail.Shards() {
		sh := &shard{idx: i, wake: make(chan struct{}, 1), rooms: make(map[string]*room)}
		e.shards = append(e.shards, sh)
		e.goFunc(func() { e.tailLoop(sh) })
	}
	e.goFunc(e.eventLoop)
	e.goFunc(e.heartbeatLoop)
	return e, nil
}

func (e *Engine) goFunc(f func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
}

// Close marks every local user offline, stops the background work and
// waits for it. Sessions still open are kicked with ErrShutdown. Close is
// idempotent.
func (e *Engine) Close() error {
	if !e.closed.CompareAndSwap(false, true) {
		return nil
	}
	e.mu.Lock()
	sessions := make([]*Session, 0, len(e.sessions))
	for s := range e.sessions {
		sessions = append(sessions, s)
	}
	e.mu.Unlock()
	for _, s := range sessions {
		s.Kick(ErrShutdown)
		s.Close()
	}
	e.cancel()
	if c, ok := e.opts.Tail.(TailCloser); ok {
		_ = c.CloseTail() // ends blocked reads now rather than after TailBlock
	}
	e.wg.Wait()
	return nil
}

// Healthy reports whether the engine runs; the tail loops report Redis
// failures through Lag.
func (e *Engine) Healthy() bool { return !e.closed.Load() }

func (e *Engine) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.opts.Timeout)
}

// unavailable turns a Redis failure into ErrUnavailable, keeping the
// engine's own sentinels as they are.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range []error{ErrNotFound, ErrForbidden, ErrInvalid, ErrExists, ErrTooLarge, ErrRateLimited, ErrGap, ErrUnavailable} {
		if errors.Is(err, s) {
			return err
		}
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// Authorize returns the kind of room if user may use it. It is the one
// place that decides room access; every path (join, send, typing, read,
// history, REST post) goes through it. Errors: ErrInvalid (a name that is
// neither a channel nor a direct room name), ErrForbidden (someone else's
// direct room), ErrNotFound, ErrUnavailable.
func (e *Engine) Authorize(ctx context.Context, user, name string) (Kind, error) {
	if a, b, ok := parseDirect(name); ok {
		if user != a && user != b {
			return "", fmt.Errorf("room %s: %w", name, ErrForbidden)
		}
		if _, ok := e.directs.Load(name); ok {
			return KindDirect, nil
		}
		other := a
		if user == a {
			other = b
		}
		ctx, cancel := e.callCtx(ctx)
		defer cancel()
		exists, err := e.opts.Directory.UserExists(ctx, other)
		if err != nil {
			return "", unavailable(err)
		}
		if !exists {
			return "", fmt.Errorf("user %s: %w", other, ErrNotFound)
		}
		if err := e.opts.Directory.AddDirect(ctx, name, a, b); err != nil {
			return "", unavailable(err)
		}
		e.directs.Store(name, struct{}{})
		return KindDirect, nil
	}
	if err := ValidChannelName(name); err != nil {
		return "", err
	}
	if _, ok := e.channels.Load(name); ok {
		return KindChannel, nil
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	exists, err := e.opts.Directory.ChannelExists(ctx, name)
	if err != nil {
		return "", unavailable(err)
	}
	if !exists {
		return "", fmt.Errorf("room %s: %w", name, ErrNotFound)
	}
	e.channels.Store(name, struct{}{}) // channels are never deleted
	return KindChannel, nil
}

// CreateChannel creates a channel. Errors: ErrInvalid, ErrExists, ErrUnavailable.
func (e *Engine) CreateChannel(ctx context.Context, name string) error {
	if err := ValidChannelName(name); err != nil {
		return err
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	if err := e.opts.Directory.CreateChannel(ctx, name); err != nil {
		return unavailable(err)
	}
	e.channels.Store(name, struct{}{})
	return nil
}

// OpenDirect returns the direct room of user and other, recording it in
// both users' room lists. Errors: ErrInvalid (other is user or malformed),
// ErrNotFound (no such user), ErrUnavailable.
func (e *Engine) OpenDirect(ctx context.Context, user, other string) (string, error) {
	other, err := NormalizeUsername(other)
	if err != nil {
		return "", fmt.Errorf("user %q: %w", other, ErrNotFound)
	}
	if other == user {
		return "", fmt.Errorf("a direct room needs two different users: %w", ErrInvalid)
	}
	name := DirectRoom(user, other)
	if _, err := e.Authorize(ctx, user, name); err != nil {
		return "", err
	}
	return name, nil
}

// Rooms lists every channel and user's direct rooms with their newest
// message and user's unread count.
func (e *Engine) Rooms(ctx context.Context, user string) ([]RoomSummary, error) {
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	channels, err := e.opts.Directory.Channels(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	directs, err := e.opts.Directory.Directs(ctx, user)
	if err != nil {
		return nil, unavailable(err)
	}
	slices.Sort(channels)
	slices.Sort(directs)
	names := append(channels, directs...)
	kinds := make([]Kind, len(names))
	for i := range names {
		kinds[i] = KindChannel
		if i >= len(channels) {
			kinds[i] = KindDirect
		}
	}
	sums, err := e.opts.Directory.Summaries(ctx, user, names, kinds)
	return sums, unavailable(err)
}

// HistoryQuery selects one page of a room's history. At most one of Before
// and After is set; neither means the newest page.
type HistoryQuery struct {
	Before, After *StreamPos
	Limit         int
}

// History returns one page of room's messages, oldest first, and whether
// more exist beyond it in its direction. Errors: ErrInvalid, ErrForbidden,
// ErrNotFound, ErrUnavailable.
func (e *Engine) History(ctx context.Context, user, name string, q HistoryQuery) ([]Message, bool, error) {
	if q.Before != nil && q.After != nil {
		return nil, false, fmt.Errorf("before and after cannot be combined: %w", ErrInvalid)
	}
	if q.Limit < 1 || q.Limit > 200 {
		return nil, false, fmt.Errorf("limit must be 1 to 200: %w", ErrInvalid)
	}
	if _, err := e.Authorize(ctx, user, name); err != nil {
		return nil, false, err
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	var msgs []Message
	var err error
	if q.After != nil {
		msgs, err = e.opts.Log.Range(ctx, name, *q.After, q.Limit+1)
		if err != nil {
			return nil, false, unavailable(err)
		}
		more := len(msgs) > q.Limit
		if more {
			msgs = msgs[:q.Limit]
		}
		return msgs, more, nil
	}
	before := StreamPos{}
	if q.Before != nil {
		if q.Before.IsZero() {
			return []Message{}, false, nil
		}
		before = *q.Before
	}
	msgs, err = e.opts.Log.RevRange(ctx, name, before, q.Limit+1)
	if err != nil {
		return nil, false, unavailable(err)
	}
	more := len(msgs) > q.Limit
	if more {
		msgs = msgs[:q.Limit]
	}
	slices.Reverse(msgs)
	return msgs, more, nil
}

// Send validates and stores one message from user and calls done with the
// stored message (or, for a repeated clientID, the first one stored under
// it) once it is in Redis. Validation and authorization errors are returned
// at once and done is not called. Errors (returned or passed to done):
// ErrInvalid, ErrTooLarge, ErrForbidden, ErrNotFound, *RetryError,
// ErrUnavailable.
func (e *Engine) Send(ctx context.Context, user, name, text, clientID string, done func(AppendResult, error)) error {
	if err := ValidText(text, e.opts.MaxText); err != nil {
		return err
	}
	if err := validClientID(clientID); err != nil {
		return err
	}
	if _, err := e.Authorize(ctx, user, name); err != nil {
		return err
	}
	e.opts.Log.Append(AppendRequest{Room: name, User: user, Text: text, ClientID: clientID, Now: e.opts.Now()},
		func(r AppendResult, err error) { done(r, unavailable(err)) })
	return nil
}

// SendWait is Send for callers that wait for the result (REST).
func (e *Engine) SendWait(ctx context.Context, user, name, text, clientID string) (AppendResult, error) {
	type result struct {
		r   AppendResult
		err error
	}
	ch := make(chan result, 1)
	if err := e.Send(ctx, user, name, text, clientID, func(r AppendResult, err error) { ch <- result{r, err} }); err != nil {
		return AppendResult{}, err
	}
	select {
	case res := <-ch:
		return res.r, res.err
	case <-ctx.Done():
		return AppendResult{}, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
}

// Typing relays that user is typing in room to its other online members,
// at most once per TypingEvery per user and room. Errors: as Authorize.
func (e *Engine) Typing(ctx context.Context, user, name string) error {
	if _, err := e.Authorize(ctx, user, name); err != nil {
		return err
	}
	key := user + "\x00" + name
	now := e.opts.Now()
	e.typingMu.Lock()
	last, seen := e.typing[key]
	if seen && now.Sub(last) < e.opts.TypingEvery {
		e.typingMu.Unlock()
		return nil
	}
	e.typing[key] = now
	e.typingMu.Unlock()
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	return unavailable(e.opts.Bus.Typing(ctx, name, user, e.opts.TypingEvery))
}

// MarkRead moves user's read position in room forward to id. Errors: as
// Authorize, and ErrUnavailable.
func (e *Engine) MarkRead(ctx context.Context, user, name string, id StreamPos) error {
	kind, err := e.Authorize(ctx, user, name)
	if err != nil {
		return err
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	_, _, err = e.opts.Directory.MarkRead(ctx, name, user, id, kind == KindDirect)
	return unavailable(err)
}

// Get returns one stored message of a room user may read.
func (e *Engine) Get(ctx context.Context, user, name string, id StreamPos) (Message, error) {
	if _, err := e.Authorize(ctx, user, name); err != nil {
		return Message{}, err
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	m, err := e.opts.Log.Get(ctx, name, id)
	return m, unavailable(err)
}

// KickToken ends the local sessions opened with token ID jti (revoked).
func (e *Engine) KickToken(jti string) {
	e.mu.Lock()
	var victims []*Session
	for s := range e.tokens[jti] {
		victims = append(victims, s)
	}
	e.mu.Unlock()
	for _, s := range victims {
		s.Kick(ErrRevoked)
	}
}

// Stats is a snapshot of the engine's local state, for metrics.
type Stats struct {
	Sessions, Rooms, Subscriptions int
}

// Stats returns a snapshot of the local state.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Stats{Sessions: len(e.sessions), Rooms: len(e.rooms)}
	for _, r := range e.rooms {
		r.mu.Lock()
		st.Subscriptions += len(r.subs)
		r.mu.Unlock()
	}
	return st
}

// eventLoop delivers ephemeral events from the bus to local sessions.
func (e *Engine) eventLoop() {
	events := e.opts.Bus.Events()
	for {
		var ev Event
		select {
		case <-e.ctx.Done():
			return
		case ev = <-events:
		}
		if ev.Kind == EventRevoke {
			e.KickToken(ev.Token)
			continue
		}
		e.mu.Lock()
		r := e.rooms[ev.Room]
		e.mu.Unlock()
		if r == nil {
			continue
		}
		frame := e.opts.Encoder.Event(ev)
		r.mu.Lock()
		for s, sb := range r.subs {
			if sb.live && s.User != ev.User {
				s.push(Frame{Data: frame})
			}
		}
		r.mu.Unlock()
	}
}

// heartbeatLoop keeps this instance's presence entries alive, lets expired
// ones of dead instances go (the Presence implementation reaps them on each
// call) and forgets old typing throttles.
func (e *Engine) heartbeatLoop() {
	t := time.NewTicker(e.opts.PresenceTTL / 4)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		e.mu.Lock()
		type beat struct {
			room  string
			users []string
		}
		var beats []beat
		for name, r := range e.rooms {
			r.mu.Lock()
			users := make([]string, 0, len(r.users))
			for u := range r.users {
				users = append(users, u)
			}
			r.mu.Unlock()
			beats = append(beats, beat{name, users})
		}
		e.mu.Unlock()
		deadline := e.opts.Now().Add(e.opts.PresenceTTL)
		for _, b := range beats {
			ctx, cancel := e.callCtx(e.ctx)
			if _, err := e.opts.Presence.Join(ctx, b.room, b.users, deadline); err != nil && e.ctx.Err() == nil {
				e.log.Warn("presence heartbeat", "room", b.room, "err", err)
			}
			cancel()
		}
		e.probeTails()
		now := e.opts.Now()
		e.typingMu.Lock()
		for k, at := range e.typing {
			if now.Sub(at) >= e.opts.TypingEvery {
				delete(e.typing, k)
			}
		}
		e.typingMu.Unlock()
	}
}

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
// default, named in the field's comment; Log, Directory, Presence, Feed
// and Encoder are required.
type Options struct {
	Log       Log
	Directory Directory
	Presence  Presence
	Feed      Feed
	Encoder   Encoder

	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now

	// Admins have owner rights in every channel (CHAT_ADMINS).
	Admins []string
	// MaxText is the longest message text in characters. Zero means 4000.
	MaxText int
	// MaxTopic is the longest topic in characters. Zero means 250.
	MaxTopic int
	// MaxChannelsPerUser bounds the channels one user may create. Zero
	// means 50.
	MaxChannelsPerUser int
	// EditWindow is how long after sending an author may edit. Zero means
	// always.
	EditWindow time.Duration
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
	// PresenceTTL is how long a dead instance's users stay online. Zero
	// means 40s; the heartbeat runs every PresenceTTL/4.
	PresenceTTL time.Duration
	// TypingEvery is the least time between two relayed typing events of
	// one user in one room. Zero means 2s.
	TypingEvery time.Duration
	// Timeout bounds each Redis call made for a client. Zero means 2s.
	Timeout time.Duration
	// ReplayPage is the page size of join-since replays. Zero means 200.
	ReplayPage int
	// ReplayRate bounds the entries one user's sessions on this instance
	// may replay per second together (joins with since); a longer replay
	// is paced. Zero means 5000, with bursts of twice that.
	ReplayRate int
	// MaxInflight bounds the unacknowledged writes of one session; the
	// session's reader waits beyond it. Zero means 32.
	MaxInflight int
	// SweepEvery is how often every room with local sessions that has had
	// no notice for that long is read from its position, a safety net for
	// a lost last notice. Zero means 30s.
	SweepEvery time.Duration
}

func (o *Options) setDefaults() error {
	if o.Log == nil || o.Directory == nil || o.Presence == nil || o.Feed == nil || o.Encoder == nil {
		return errors.New("engine: Log, Directory, Presence, Feed and Encoder are required")
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
	def(&o.MaxTopic, 250)
	def(&o.MaxChannelsPerUser, 50)
	def(&o.QueueLen, 1024)
	def(&o.MaxQueueBytes, 4<<20)
	def(&o.MaxRoomsPerSession, 100)
	def(&o.MaxSessionsPerUser, 20)
	def(&o.ReplayPage, 200)
	def(&o.ReplayRate, 5000)
	def(&o.MaxInflight, 32)
	defd(&o.PresenceTTL, 40*time.Second)
	defd(&o.TypingEvery, 2*time.Second)
	defd(&o.Timeout, 2*time.Second)
	defd(&o.SweepEvery, 30*time.Second)
	return nil
}

// Engine is one instance's chat core: it decides who may do what in a
// room (Access.Permit), stores writes, learns from the Feed what every
// instance stored in the rooms its sessions joined, and fans entries and
// ephemeral events out to those sessions. All methods may be called
// concurrently.
//
// Lock order: Engine.mu, then room.mu, then Session.mu. No lock is held
// while a session's OnReady hook runs.
type Engine struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine New starts
	closed atomic.Bool
	admins map[string]bool

	mu       sync.Mutex
	rooms    map[string]*room
	users    map[string]map[*Session]struct{} // local sessions per user
	tokens   map[string]map[*Session]struct{} // sessions per token ID
	sessions map[*Session]struct{}
	replays  map[string]*replayBudget // per user with local sessions

	access accessCache
	known  knownUsers
	repair repairQueue
	reads  readCoalescer
	notify chan UserEvent // user events to publish, off the append workers

	typingMu sync.Mutex
	typing   map[string]time.Time // user + "\x00" + room → last relayed

	nextID atomic.Uint64

	// Counters for metrics; see Counters.
	delivered   atomic.Int64
	noticed     atomic.Int64
	repaired    atomic.Int64
	kicked      atomic.Int64
	readErrs    atomic.Int64 // repair reads failed in a row
	lastReadErr atomic.Pointer[error]
}

// Counters are totals since New, for metrics.
type Counters struct {
	Noticed   int64 // entries that arrived as notices
	Repaired  int64 // entries read from streams (a missed notice, a resync, a sweep)
	Delivered int64 // entry frames queued to sessions
	SlowKicks int64 // sessions closed for being too slow
}

// Counters returns the totals since New.
func (e *Engine) Counters() Counters {
	return Counters{Noticed: e.noticed.Load(), Repaired: e.repaired.Load(), Delivered: e.delivered.Load(), SlowKicks: e.kicked.Load()}
}

// New validates opts, attaches the engine to the feed and starts its
// background work: the repair reader, the sweep, the heartbeat, the read
// receipt writer and the user event publisher. Close stops them.
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
		admins:   make(map[string]bool),
		rooms:    make(map[string]*room),
		users:    make(map[string]map[*Session]struct{}),
		tokens:   make(map[string]map[*Session]struct{}),
		sessions: make(map[*Session]struct{}),
		replays:  make(map[string]*replayBudget),
		typing:   make(map[string]time.Time),
		notify:   make(chan UserEvent, 4096),
	}
	for _, a := range opts.Admins {
		e.admins[a] = true
	}
	e.access.init()
	e.known.init()
	e.repair.init()
	e.reads.init()
	opts.Feed.Attach(e)
	e.goFunc(e.repairLoop)
	e.goFunc(e.sweepLoop)
	e.goFunc(e.heartbeatLoop)
	e.goFunc(e.readLoop)
	e.goFunc(e.notifyLoop)
	return e, nil
}

func (e *Engine) goFunc(f func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
}

// Close kicks every session still open with ErrShutdown (they leave
// their rooms, so presence goes offline), stops the background work and
// waits for it. Close is idempotent.
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
	e.reads.flushAll(e)
	e.cancel()
	e.repair.wake()
	e.wg.Wait()
	return nil
}

func (e *Engine) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.opts.Timeout)
}

// unavailable turns a Redis failure into ErrUnavailable, keeping the
// engine's own sentinels as they are.
func unavailable(err error) error {
	if err == nil {
		return nil
	}
	for _, s := range []error{ErrNotFound, ErrForbidden, ErrInvalid, ErrExists, ErrBanned, ErrLastOwner,
		ErrTooLarge, ErrRateLimited, ErrUnavailable, ErrShutdown} {
		if errors.Is(err, s) {
			return err
		}
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// Stats is a snapshot of the engine's local state, for metrics.
type Stats struct {
	Sessions, Rooms, Subscriptions, Repairing int
}

// Stats returns a snapshot of the local state.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	rooms := make([]*room, 0, len(e.rooms))
	for _, r := range e.rooms {
		rooms = append(rooms, r)
	}
	st := Stats{Sessions: len(e.sessions), Rooms: len(e.rooms)}
	e.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		st.Subscriptions += len(r.subs)
		if r.repairing {
			st.Repairing++
		}
		r.mu.Unlock()
	}
	return st
}

// Health reports why the fan-out cannot be trusted now, or nil: the feed
// has rooms without a live subscription, or reading streams keeps failing.
func (e *Engine) Health() error {
	if err := e.opts.Feed.Healthy(); err != nil {
		return err
	}
	if n := e.readErrs.Load(); n > 2 {
		msg := "reading room streams failed"
		if p := e.lastReadErr.Load(); p != nil {
			msg = (*p).Error()
		}
		return fmt.Errorf("%d reads of room streams failed in a row: %s", n, msg)
	}
	return nil
}

// Online returns who is online in room, on any instance (the server
// API's presence route). Errors: ErrNotFound, ErrUnavailable.
func (e *Engine) Online(ctx context.Context, room string) ([]string, error) {
	if validRoomName(room) != nil {
		return nil, fmt.Errorf("room %q: %w", room, ErrNotFound) // no room has that name
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	acc, err := e.opts.Directory.Access(ctx, room, "")
	if err != nil {
		return nil, unavailable(err)
	}
	if acc.Kind == "" {
		return nil, fmt.Errorf("room %s: %w", room, ErrNotFound)
	}
	online, err := e.opts.Presence.Online(ctx, room)
	if err != nil {
		return nil, unavailable(err)
	}
	slices.Sort(online)
	return online, nil
}

// heartbeatLoop keeps this instance alive in the presence registry (and
// reaps dead instances' users) and forgets old typing throttles.
func (e *Engine) heartbeatLoop() {
	t := time.NewTicker(e.opts.PresenceTTL / 4)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := e.callCtx(e.ctx)
		if err := e.opts.Presence.Heartbeat(ctx); err != nil && e.ctx.Err() == nil {
			e.log.Warn("presence heartbeat", "err", err)
		}
		cancel()
		now := e.opts.Now()
		e.typingMu.Lock()
		for k, at := range e.typing {
			if now.Sub(at) >= e.opts.TypingEvery {
				delete(e.typing, k)
			}
		}
		e.typingMu.Unlock()
		e.access.expire(now)
		e.known.expire(now)
	}
}

// notifyLoop publishes user events queued by paths that must not wait
// for Redis (the append workers' callbacks).
func (e *Engine) notifyLoop() {
	for {
		select {
		case <-e.ctx.Done():
			return
		case ev := <-e.notify:
			ctx, cancel := e.callCtx(e.ctx)
			if err := e.opts.Feed.PublishUser(ctx, ev); err != nil && e.ctx.Err() == nil {
				e.log.Warn("publish user event", "user", ev.User, "err", err)
			}
			cancel()
		}
	}
}

// tell queues a user event for publishing; user events may be lost (they
// are at most once by contract), so a full queue drops it.
func (e *Engine) tell(ev UserEvent) {
	select {
	case e.notify <- ev:
	default:
		e.log.Warn("user event queue full; dropping", "user", ev.User, "kind", string(ev.Kind))
	}
}

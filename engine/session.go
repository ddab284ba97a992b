package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Session is one client connection's view of the engine: the rooms it
// joined and the queue of frames waiting for its writer. The engine never
// blocks on a session: a full queue kicks it with ErrSlowConsumer, and the
// client reconnects and resumes with since, so nothing is lost.
//
// All methods may be called concurrently. The connection's writer sets
// OnReady and, when it is called, takes the queued frames with More; it
// holds no goroutine while the queue is empty.
type Session struct {
	e      *Engine
	User   string
	id     uint64
	issued time.Time // when the session's token was issued

	mu       sync.Mutex
	queue    []Frame
	qbytes   int
	rooms    map[string]*room
	token    string
	closed   bool
	ready    func()        // see OnReady
	space    chan struct{} // cap 1: the writer took frames
	done     chan struct{} // closed by Kick
	doneErr  error
	inflight chan struct{} // write slots, made on first write
}

// Connect opens a session for user, whose token has ID token and was
// issued at issued. Errors: *RetryError when user already has
// MaxSessionsPerUser sessions here, ErrShutdown after Close.
func (e *Engine) Connect(user, token string, issued time.Time) (*Session, error) {
	s, err := e.connect(user, token, issued)
	if err != nil {
		return nil, err
	}
	// The user's first socket here waits (one round trip) until the
	// user's channel is subscribed, so that an event published once the
	// client holds its socket (a new DM, a mention) reaches it. Redis away
	// only delays the socket: it opens after the timeout.
	t := time.NewTimer(e.opts.Timeout)
	defer t.Stop()
	select {
	case <-e.opts.Feed.UserReady(user):
	case <-t.C:
	case <-s.done:
	}
	return s, nil
}

func (e *Engine) connect(user, token string, issued time.Time) (*Session, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return nil, ErrShutdown
	}
	if len(e.users[user]) >= e.opts.MaxSessionsPerUser {
		return nil, &RetryError{After: 1000, Reason: fmt.Sprintf("at most %d connections per user", e.opts.MaxSessionsPerUser)}
	}
	s := &Session{
		e:      e,
		User:   user,
		id:     e.nextID.Add(1),
		issued: issued,
		rooms:  make(map[string]*room),
		token:  token,
		space:  make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	set := e.users[user]
	if set == nil {
		set = make(map[*Session]struct{})
		e.users[user] = set
		e.opts.Feed.WatchUser(user) // under e.mu: the feed sees watches in order
	}
	set[s] = struct{}{}
	e.sessions[s] = struct{}{}
	e.addToken(s, token)
	return s, nil
}

func (e *Engine) addToken(s *Session, token string) {
	set := e.tokens[token]
	if set == nil {
		set = make(map[*Session]struct{})
		e.tokens[token] = set
	}
	set[s] = struct{}{}
}

func (e *Engine) removeToken(s *Session, token string) {
	if set := e.tokens[token]; set != nil {
		delete(set, s)
		if len(set) == 0 {
			delete(e.tokens, token)
		}
	}
}

// SetToken replaces the session's token (in-band re-auth).
func (s *Session) SetToken(token string, issued time.Time) {
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	s.e.removeToken(s, s.token)
	s.token, s.issued = token, issued
	s.e.addToken(s, token)
}

// OnReady sets f to be called whenever frames are queued and when the
// session is kicked. f runs on the caller's goroutine with no lock held
// and must not block: it should start or nudge the writer. Frames queued
// before f is set wait for the writer's first More.
func (s *Session) OnReady(f func()) {
	s.mu.Lock()
	s.ready = f
	s.mu.Unlock()
}

// wake calls the OnReady hook. No lock may be held.
func (s *Session) wake() {
	s.mu.Lock()
	ready := s.ready
	s.mu.Unlock()
	if ready != nil {
		ready()
	}
}

// Compact releases the memory an empty queue still holds from a burst,
// for a writer to call now and then (on its ping timer, say): an idle
// session then costs no more than a new one.
func (s *Session) Compact() {
	s.mu.Lock()
	if len(s.queue) == 0 {
		s.queue = nil
	}
	s.mu.Unlock()
}

// Done is closed when the session was kicked; Err says why.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session was kicked, or nil.
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.doneErr
	default:
		return nil
	}
}

// Kick ends the session with err (ErrSlowConsumer, ErrRevoked,
// ErrShutdown); only the first call counts.
func (s *Session) Kick(err error) {
	s.mu.Lock()
	select {
	case <-s.done:
		s.mu.Unlock()
		return
	default:
	}
	s.doneErr = err
	close(s.done)
	if errors.Is(err, ErrSlowConsumer) {
		s.e.kicked.Add(1)
	}
	ready := s.ready
	s.mu.Unlock()
	if ready != nil {
		// Kick may run under a room's lock (a full queue found while
		// fanning out); the hook must not block, as OnReady says.
		ready()
	}
}

// Frame is one queued frame for the client. Ms is the stream-ID time of a
// live entry (for the delivery latency metric), 0 for anything else.
type Frame struct {
	Data []byte
	Ms   uint64
}

// push queues frame without blocking; a full queue kicks the session. It
// reports whether the writer must be woken (the queue was empty), which
// the caller does once it holds no lock.
func (s *Session) push(frame Frame) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	if len(s.queue) >= s.e.opts.QueueLen || s.qbytes+len(frame.Data) > s.e.opts.MaxQueueBytes {
		s.mu.Unlock()
		s.Kick(ErrSlowConsumer)
		return false
	}
	wake := len(s.queue) == 0
	s.queue = append(s.queue, frame)
	s.qbytes += len(frame.Data)
	s.mu.Unlock()
	return wake
}

// Enqueue queues a reply frame for the client, in order with messages.
func (s *Session) Enqueue(data []byte) {
	if s.push(Frame{Data: data}) {
		s.wake()
	}
}

// pushWait queues frame, waiting while the queue is more than half full,
// so a long replay is paced by the client instead of overflowing.
func (s *Session) pushWait(ctx context.Context, frame Frame) error {
	for {
		s.mu.Lock()
		if len(s.queue) < s.e.opts.QueueLen/2 && s.qbytes+len(frame.Data) <= s.e.opts.MaxQueueBytes/2 {
			s.mu.Unlock()
			if s.push(frame) {
				s.wake()
			}
			return nil
		}
		s.mu.Unlock()
		select {
		case <-s.space:
		case <-s.done:
			return s.doneErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// More appends whatever is queued to buf without waiting.
func (s *Session) More(buf []Frame) []Frame {
	s.mu.Lock()
	buf = append(buf, s.queue...)
	if cap(s.queue) > 64 {
		s.queue = nil // a burst's backlog need not stay with an idle socket
	} else {
		clear(s.queue)
		s.queue = s.queue[:0]
	}
	s.qbytes = 0
	s.mu.Unlock()
	select {
	case s.space <- struct{}{}:
	default:
	}
	return buf
}

// Drain returns and forgets whatever is queued, for a last flush after
// the session was kicked.
func (s *Session) Drain() []Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queue
	s.queue, s.qbytes = nil, 0
	return q
}

// Inflight returns how many writes await their result.
func (s *Session) Inflight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inflight)
}

func (s *Session) joined(room string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.rooms[room]
	return ok
}

// Write stores a write like Engine.Post, but calls done (on another
// goroutine) instead of waiting, and waits while the session has
// MaxInflight writes unacknowledged, so one client cannot queue unbounded
// work. While a write to a joined room is in flight, that room's live
// entries for this session wait until done has queued the ack. Errors
// returned (done is not called then): as Engine.Post's validation and
// permission errors.
func (s *Session) Write(ctx context.Context, w Write, done func(AppendResult, error)) error {
	e := s.e
	req, err := e.prepare(ctx, s.User, w)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.inflight == nil {
		s.inflight = make(chan struct{}, e.opts.MaxInflight)
	}
	slots := s.inflight
	r := s.rooms[w.Room]
	s.mu.Unlock()
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
	var sb *sub
	if r != nil {
		r.mu.Lock()
		if sb = r.subs[s]; sb != nil && sb.live {
			sb.inflight++
		} else {
			sb = nil
		}
		r.mu.Unlock()
	}
	e.opts.Log.Append(req, func(res AppendResult, err error) {
		<-slots
		if err == nil {
			e.afterWrite(res)
		}
		done(res, unavailable(err))
		if sb == nil {
			return
		}
		r.mu.Lock()
		sb.inflight--
		wake := sb.release(s, res.Entry.ID)
		if sb.inflight == 0 && sb.kickFrame != nil {
			wake = s.push(Frame{Data: sb.kickFrame}) || wake
			sb.kickFrame = nil
		}
		r.mu.Unlock()
		if wake {
			s.wake()
		}
	})
	return nil
}

// JoinInfo is what a join reports before any entry is delivered.
type JoinInfo struct {
	Room      string
	LastID    StreamPos
	Online    []string
	Recovered *bool // set only when joining with since
}

// Join subscribes the session to room. It calls joined with the room's
// newest message and online users; then, with since, queues every stored
// message and event after since in order; then goes live. From the join
// (or since) on, the session gets every message and event of the room
// exactly once, in stream order, until it leaves or is removed from the
// room. Joining a room already joined starts its delivery over. Errors:
// as Permit, *RetryError (too many rooms), ErrUnavailable.
func (s *Session) Join(ctx context.Context, name string, since *StreamPos, joined func(JoinInfo)) error {
	e := s.e
	acc, err := e.authorize(ctx, name, s.User, ActRead, false)
	if err != nil {
		return err
	}
	s.mu.Lock()
	_, rejoin := s.rooms[name]
	tooMany := !rejoin && len(s.rooms) >= e.opts.MaxRoomsPerSession
	s.mu.Unlock()
	if tooMany {
		return &RetryError{Reason: fmt.Sprintf("at most %d rooms per connection", e.opts.MaxRoomsPerSession)}
	}
	if rejoin {
		s.leave(name, true)
	}

	r := e.acquire(name)
	sb := &sub{}
	r.mu.Lock()
	r.subs[s] = sb
	first := r.users[s.User] == 0
	r.users[s.User]++
	r.mu.Unlock()
	s.mu.Lock()
	s.rooms[name] = r
	s.mu.Unlock()

	// A channel's read position starts at the user's first join; a direct
	// room's at its beginning.
	markRead := acc.Kind != KindDirect
	if err := s.start(ctx, r, sb, JoinOptions{MarkOnline: first, MarkRead: markRead}, since, joined); err != nil {
		s.leave(name, rejoin)
		if errors.Is(err, errKickedAfterJoined) {
			return nil // the client has joined and kicked, as any joined socket
		}
		return err
	}
	return nil
}

// errKickedAfterJoined ends a join whose user was removed from the room
// after joined was sent: the session got a kicked frame instead of an
// error.
var errKickedAfterJoined = errors.New("removed from the room while joining")

// kickedAfterJoined queues the kicked frame of a join that was answered
// joined and then removed from the room, and ends the join.
func (s *Session) kickedAfterJoined(room, reason string) error {
	s.Enqueue(s.e.opts.Encoder.Kicked(room, reason))
	return errKickedAfterJoined
}

// start runs the part of Join after the session is registered (pending)
// with the room: the fan-out buffers new entries for it meanwhile.
func (s *Session) start(ctx context.Context, r *room, sb *sub, jo JoinOptions, since *StreamPos, joined func(JoinInfo)) error {
	e := s.e
	cctx, cancel := e.callCtx(ctx)
	// Read after registering: anything newer than what this reads reaches
	// sb through the fan-out. The access is read in the same round trip,
	// so a removal stored before it refuses the join, and one stored after
	// it reaches the fan-out, which takes the session out.
	st, err := e.opts.Log.JoinState(cctx, r.name, s.User, jo)
	cancel()
	if err != nil {
		return unavailable(err)
	}
	if err := e.permitRead(ctx, &st.Access, r.name, s.User); err != nil {
		return err
	}
	e.access.put(st.Access, e.opts.Now())
	var wakes wakeList
	r.mu.Lock()
	e.start(r, st.LastEntry, st.Q, &wakes)
	r.mu.Unlock()
	wakes.run()

	online := st.Online
	if !slices.Contains(online, s.User) {
		online = append(online, s.User)
	}
	slices.Sort(online)
	info := JoinInfo{Room: r.name, LastID: st.LastMsg, Online: online}
	pos := st.LastEntry
	if since != nil {
		recovered := !since.Less(st.Trimmed)
		info.Recovered = &recovered
	}
	joined(info)

	// From here on a removal ends the join as it ends a joined socket's
	// stay: with kicked, after what was stored before it.
	if since != nil {
		// Nothing is stored after a since ahead of the room's newest
		// entry; the live entries from the join on must still come.
		pos = *since
		if st.LastEntry.Less(pos) {
			pos = st.LastEntry
		}
		change, err := s.replayFrom(ctx, r, sb, &pos, st.LastEntry)
		if err != nil {
			return err
		}
		if change != "" {
			return s.kickedAfterJoined(r.name, change)
		}
	}

	r.mu.Lock()
	if sb.kicked != "" {
		reason := sb.kicked
		for _, p := range sb.buf {
			if pos.Less(p.id) && p.id.Less(sb.kickedAt) {
				wakes.add(s, e.deliverLive(s, sb, p.id, p.frame))
				pos = p.id
			}
		}
		r.mu.Unlock()
		wakes.run()
		return s.kickedAfterJoined(r.name, reason)
	}
	for _, p := range sb.buf {
		if pos.Less(p.id) {
			wakes.add(s, e.deliverLive(s, sb, p.id, p.frame))
			pos = p.id
		}
	}
	sb.pos = pos
	sb.buf, sb.live = nil, true
	r.mu.Unlock()
	wakes.run() // OnReady hooks never run under a lock
	return nil
}

// replayFrom queues every stored entry after *pos (member entries are not
// for clients), paced by the client and by its user's replay budget on
// this instance (many sockets joining with since at once share one).
// It stops early, returning the change, when the session's user is
// removed or banned: a removal stored after joined (after the join read
// the room at joinedAt) and met in the stream, or one the fan-out saw
// (sb.kicked) between pages, so a long replay does not keep a removed
// user reading.
func (s *Session) replayFrom(ctx context.Context, r *room, sb *sub, pos *StreamPos, joinedAt StreamPos) (string, error) {
	e := s.e
	for {
		if err := e.replayBudget(s.User).take(ctx, e.opts.ReplayRate, e.opts.ReplayPage, s.done); err != nil {
			return "", err
		}
		r.mu.Lock()
		kicked := sb.kicked
		r.mu.Unlock()
		if kicked != "" {
			return kicked, nil
		}
		pctx, cancel := e.callCtx(ctx)
		ents, err := e.opts.Log.Range(pctx, r.name, *pos, e.opts.ReplayPage)
		cancel()
		if err != nil {
			return "", unavailable(err)
		}
		for i := range ents {
			ent := &ents[i]
			*pos = ent.ID
			if ent.Kind == EntryMember {
				if ent.Member == s.User && joinedAt.Less(ent.ID) && (ent.Change == ChangeRemoved || ent.Change == ChangeBanned) {
					return ent.Change, nil
				}
				continue
			}
			if err := s.pushWait(ctx, Frame{Data: e.opts.Encoder.Entry(ent)}); err != nil {
				return "", err
			}
		}
		if len(ents) < e.opts.ReplayPage {
			return "", nil
		}
	}
}

// replayBudget is a token bucket of replayed entries per second, one per
// user with sessions on this instance.
type replayBudget struct {
	mu     sync.Mutex
	tokens float64
	at     time.Time
}

// replayBudget returns user's replay budget.
func (e *Engine) replayBudget(user string) *replayBudget {
	e.mu.Lock()
	defer e.mu.Unlock()
	b := e.replays[user]
	if b == nil {
		b = &replayBudget{}
		e.replays[user] = b
	}
	return b
}

// take waits until n entries may be replayed at rate per second, with a
// burst of twice the rate.
func (b *replayBudget) take(ctx context.Context, rate, n int, done <-chan struct{}) error {
	b.mu.Lock()
	now := time.Now()
	if b.at.IsZero() {
		b.tokens, b.at = float64(2*rate), now
	}
	b.tokens = min(float64(2*rate), b.tokens+now.Sub(b.at).Seconds()*float64(rate))
	b.at = now
	b.tokens -= float64(n)
	left := b.tokens
	b.mu.Unlock()
	if left >= 0 {
		return nil
	}
	wait := time.Duration(-left / float64(rate) * float64(time.Second))
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-done:
		return ErrShutdown
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Leave unsubscribes the session from room. Errors: ErrNotFound when the
// session has not joined it.
func (s *Session) Leave(name string) error {
	s.mu.Lock()
	_, ok := s.rooms[name]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("room %s not joined: %w", name, ErrNotFound)
	}
	s.leave(name, false)
	return nil
}

// leave removes the session from room; keepPresence leaves the user's
// presence as it is (a rejoin follows at once).
func (s *Session) leave(name string, keepPresence bool) {
	s.mu.Lock()
	r := s.rooms[name]
	delete(s.rooms, name)
	s.mu.Unlock()
	if r == nil {
		return
	}
	r.mu.Lock()
	gone := false
	if _, ok := r.subs[s]; ok {
		delete(r.subs, s)
		r.users[s.User]--
		gone = r.users[s.User] <= 0
		if gone {
			delete(r.users, s.User)
		}
	}
	r.mu.Unlock()
	if gone && !keepPresence {
		s.e.goodbye(name, s.User)
	}
	s.e.release(r)
}

// detach lets go of a room the session was kicked from (the fan-out
// already took its subscription out).
func (s *Session) detach(r *room) {
	s.mu.Lock()
	mine := s.rooms[r.name] == r
	if mine {
		delete(s.rooms, r.name)
	}
	s.mu.Unlock()
	if !mine {
		return
	}
	r.mu.Lock()
	gone := r.users[s.User] <= 0
	r.mu.Unlock()
	if gone {
		s.e.goodbye(r.name, s.User)
	}
	s.e.release(r)
}

// goodbye marks user offline in room from this instance. Not e.ctx: a
// goodbye must be said even while Close cancels it.
func (e *Engine) goodbye(room, user string) {
	ctx, cancel := e.callCtx(context.Background())
	defer cancel()
	if err := e.opts.Presence.Leave(ctx, room, []string{user}); err != nil {
		e.log.Warn("presence leave", "room", room, "user", user, "err", err)
	}
}

// Close leaves every room and forgets the session. Call it once the
// connection is gone; it is idempotent.
func (s *Session) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	names := make([]string, 0, len(s.rooms))
	for name := range s.rooms {
		names = append(names, name)
	}
	s.queue, s.qbytes = nil, 0
	s.mu.Unlock()
	for _, name := range names {
		s.leave(name, false)
	}
	e := s.e
	e.mu.Lock()
	if _, ok := e.sessions[s]; ok {
		delete(e.sessions, s)
		if set := e.users[s.User]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(e.users, s.User)
				delete(e.replays, s.User)
				e.opts.Feed.UnwatchUser(s.User)
			}
		}
		e.removeToken(s, s.token)
	}
	e.mu.Unlock()
}

// Typing relays that the session's user is typing in room to its other
// online members, at most once per TypingEvery per user and room.
// Errors: as Permit.
func (s *Session) Typing(ctx context.Context, room string) error {
	e := s.e
	if _, err := e.authorize(ctx, room, s.User, ActRead, false); err != nil {
		return err
	}
	key := s.User + "\x00" + room
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
	return unavailable(e.opts.Feed.Typing(ctx, room, s.User, e.opts.TypingEvery))
}

// MarkRead moves the user's read position in room forward to id. Reads
// are coalesced: the newest position of a user in a room wins, and is
// written at most once a second. Errors: as Permit.
func (s *Session) MarkRead(ctx context.Context, room string, id StreamPos) error {
	acc, err := s.e.authorize(ctx, room, s.User, ActRead, false)
	if err != nil {
		return err
	}
	s.e.reads.mark(s.e, room, s.User, id, acc.Kind == KindDirect)
	return nil
}

// KickToken ends the local sessions opened with token ID jti.
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

// RevokeToken ends the sessions opened with token jti of user, here at
// once and on every other instance through the user's channel.
func (e *Engine) RevokeToken(ctx context.Context, user, jti string) error {
	e.KickToken(jti)
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	return unavailable(e.opts.Feed.PublishUser(ctx, UserEvent{Kind: UserRevoke, User: user, Token: jti}))
}

// Disconnect ends every session of user on every instance (before zero)
// or those whose token was issued before before.
func (e *Engine) Disconnect(ctx context.Context, user string, before time.Time) error {
	ev := UserEvent{Kind: UserDisconnect, User: user}
	if !before.IsZero() {
		ev.Before = before.Unix() + 1 // tokens issued up to and including that second
	}
	e.UserEvent(ev)
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	return unavailable(e.opts.Feed.PublishUser(ctx, ev))
}

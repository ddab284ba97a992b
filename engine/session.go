package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
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
	e    *Engine
	User string
	id   uint64

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
	inflight chan struct{} // send slots, made on first send
}

// Connect opens a session for user, whose token has ID token. Errors:
// *RetryError when user already has MaxSessionsPerUser sessions here,
// ErrShutdown after Close.
func (e *Engine) Connect(user, token string) (*Session, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return nil, ErrShutdown
	}
	if e.users[user] >= e.opts.MaxSessionsPerUser {
		return nil, &RetryError{After: 1000, Reason: fmt.Sprintf("at most %d connections per user", e.opts.MaxSessionsPerUser)}
	}
	s := &Session{
		e:     e,
		User:  user,
		id:    e.nextID.Add(1),
		rooms: make(map[string]*room),
		token: token,
		space: make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	e.users[user]++
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

// SetToken replaces the ID of the session's token (in-band re-auth).
func (s *Session) SetToken(token string) {
	s.e.mu.Lock()
	defer s.e.mu.Unlock()
	s.e.removeToken(s, s.token)
	s.token = token
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
		ready()
	}
}

// Frame is one queued frame for the client. Ms is the stream-ID time of a
// live message (for the delivery latency metric), 0 for anything else.
type Frame struct {
	Data []byte
	Ms   uint64
}

// push queues frame without blocking; a full queue kicks the session.
func (s *Session) push(frame Frame) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= s.e.opts.QueueLen || s.qbytes+len(frame.Data) > s.e.opts.MaxQueueBytes {
		s.mu.Unlock()
		s.Kick(ErrSlowConsumer)
		return
	}
	s.queue = append(s.queue, frame)
	s.qbytes += len(frame.Data)
	ready := s.ready
	s.mu.Unlock()
	if ready != nil {
		ready()
	}
}

// Enqueue queues a reply frame for the client, in order with messages.
func (s *Session) Enqueue(data []byte) { s.push(Frame{Data: data}) }

// pushWait queues frame, waiting while the queue is more than half full,
// so a long replay is paced by the client instead of overflowing.
func (s *Session) pushWait(ctx context.Context, frame Frame) error {
	for {
		s.mu.Lock()
		if len(s.queue) < s.e.opts.QueueLen/2 && s.qbytes+len(frame.Data) <= s.e.opts.MaxQueueBytes/2 {
			s.mu.Unlock()
			s.push(frame)
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

// Inflight returns how many sends await their result.
func (s *Session) Inflight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inflight)
}

// Send stores a message like Engine.Send, but waits while the session has
// MaxInflight sends unacknowledged, so one client cannot queue unbounded
// work. done runs on another goroutine.
func (s *Session) Send(ctx context.Context, name, text, clientID string, done func(AppendResult, error)) error {
	s.mu.Lock()
	if s.inflight == nil {
		s.inflight = make(chan struct{}, s.e.opts.MaxInflight)
	}
	slots := s.inflight
	s.mu.Unlock()
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	// Hold this room's live messages for the session until the ack is
	// queued (see sub).
	s.mu.Lock()
	r := s.rooms[name]
	s.mu.Unlock()
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
	finish := func(acked StreamPos) {
		if sb == nil {
			return
		}
		r.mu.Lock()
		sb.inflight--
		sb.release(s, acked)
		r.mu.Unlock()
	}
	err := s.e.Send(ctx, s.User, name, text, clientID, func(res AppendResult, err error) {
		<-slots
		done(res, err)
		finish(res.Message.ID)
	})
	if err != nil {
		<-slots
		finish(StreamPos{})
	}
	return err
}

// JoinInfo is what a join reports before any message is delivered.
type JoinInfo struct {
	Room      string
	LastID    StreamPos
	Online    []string
	Recovered *bool // set only when joining with since
}

// Join subscribes the session to room. It calls joined with the room's
// newest position and online users; then, with since, queues every stored
// message after since in order; then goes live. From the join (or since)
// on, the session gets every message of the room exactly once, in stream
// order. Joining a room already joined starts that room's delivery over.
// Errors: as Authorize, *RetryError (too many rooms), ErrUnavailable.
func (s *Session) Join(ctx context.Context, name string, since *StreamPos, joined func(JoinInfo)) error {
	e := s.e
	kind, err := e.Authorize(ctx, s.User, name)
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

	r, err := e.acquire(ctx, name)
	if err != nil {
		return err
	}
	sb := &sub{}
	r.mu.Lock()
	r.subs[s] = sb
	first := r.users[s.User] == 0
	r.users[s.User]++
	r.mu.Unlock()
	s.mu.Lock()
	s.rooms[name] = r
	s.mu.Unlock()

	if err := s.start(ctx, r, sb, kind, first, since, joined); err != nil {
		s.leave(name, rejoin)
		return err
	}
	return nil
}

// start runs the part of Join after the session is registered (pending)
// with the room: the tail buffers new messages for it meanwhile.
func (s *Session) start(ctx context.Context, r *room, sb *sub, kind Kind, first bool, since *StreamPos, joined func(JoinInfo)) error {
	e := s.e
	cctx, cancel := e.callCtx(ctx)
	defer cancel()
	// Read after registering: anything newer than last reaches sb through
	// the tail, because the tail started at or before it.
	st, err := e.joinState(cctx, r.name, s.User, first, kind == KindChannel, since != nil)
	if err != nil {
		return unavailable(err)
	}
	online := st.Online
	if !slices.Contains(online, s.User) {
		online = append(online, s.User)
	}
	slices.Sort(online)
	info := JoinInfo{Room: r.name, LastID: st.Last, Online: online}
	pos := st.Last
	if since != nil {
		recovered := !since.Less(st.Trimmed)
		info.Recovered = &recovered
	}
	joined(info)

	if since != nil {
		pos = *since
		for {
			pctx, pcancel := e.callCtx(ctx)
			msgs, err := e.opts.Log.Range(pctx, r.name, pos, e.opts.ReplayPage)
			pcancel()
			if err != nil {
				return unavailable(err)
			}
			for i := range msgs {
				if err := s.pushWait(ctx, Frame{Data: e.opts.Encoder.Message(msgs[i])}); err != nil {
					return err
				}
				pos = msgs[i].ID
			}
			if len(msgs) < e.opts.ReplayPage {
				break
			}
		}
	}

	r.mu.Lock()
	for _, p := range sb.buf {
		if pos.Less(p.id) {
			e.deliverLive(s, sb, p.id, p.frame)
			pos = p.id
		}
	}
	sb.pos = pos
	sb.buf, sb.live = nil, true
	r.mu.Unlock()
	return nil
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
	e := s.e
	s.mu.Lock()
	r := s.rooms[name]
	delete(s.rooms, name)
	s.mu.Unlock()
	if r == nil {
		return
	}
	r.mu.Lock()
	delete(r.subs, s)
	r.users[s.User]--
	gone := r.users[s.User] <= 0
	if gone {
		delete(r.users, s.User)
	}
	r.mu.Unlock()
	if gone && !keepPresence {
		// Not e.ctx: a goodbye must be said even while Close cancels it.
		ctx, cancel := e.callCtx(context.Background())
		if err := e.opts.Presence.Leave(ctx, name, []string{s.User}); err != nil {
			e.log.Warn("presence leave", "room", name, "user", s.User, "err", err)
		}
		cancel()
	}
	e.release(r)
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
		e.users[s.User]--
		if e.users[s.User] <= 0 {
			delete(e.users, s.User)
		}
		e.removeToken(s, s.token)
	}
	e.mu.Unlock()
}

// joinState gathers what a join needs, in one round trip when the Log can.
func (e *Engine) joinState(ctx context.Context, room, user string, markOnline, markRead, withTrimmed bool) (JoinState, error) {
	deadline := e.opts.Now().Add(e.opts.PresenceTTL)
	if js, ok := e.opts.Log.(JoinStater); ok {
		return js.JoinState(ctx, room, user, markOnline, markRead, withTrimmed, deadline)
	}
	var st JoinState
	var err error
	if st.Last, err = e.opts.Log.Last(ctx, room); err != nil {
		return st, err
	}
	if markOnline {
		st.Online, err = e.opts.Presence.Join(ctx, room, []string{user}, deadline)
	} else {
		st.Online, err = e.opts.Presence.Online(ctx, room)
	}
	if err != nil {
		return st, err
	}
	if markRead {
		if err := e.opts.Directory.MarkJoined(ctx, room, user); err != nil {
			return st, err
		}
	}
	if withTrimmed {
		st.Trimmed, err = e.opts.Log.Trimmed(ctx, room)
	}
	return st, err
}

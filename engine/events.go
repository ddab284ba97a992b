package engine

import "time"

// presenceEvery is the least time between two presence frames of one
// user in one room: joins and leaves in a loop announce at most one
// change a second, and the latest state always within a second.
const presenceEvery = time.Second

// presenceDebounce is a room's memory of the presence it announced per
// user. Guarded by room.mu.
type presenceDebounce struct {
	users map[string]*presState
	timer *time.Timer
	due   time.Time // when the armed timer fires; zero when not armed
}

type presState struct {
	sent  time.Time
	state string // last announced
	want  string // to announce when presenceEvery has passed; "" none
}

func (p *presenceDebounce) stop() {
	if p.timer != nil {
		p.timer.Stop()
		p.due = time.Time{}
	}
}

// RoomEvent implements FeedHandler.
func (e *Engine) RoomEvent(ev Event) {
	r := e.room(ev.Room)
	if r == nil {
		return
	}
	var wakes wakeList
	r.mu.Lock()
	switch ev.Kind {
	case EventPresence:
		e.presence(r, ev.User, ev.State, time.Now(), &wakes)
	case EventTopic:
		e.broadcast(r, e.opts.Encoder.Event(ev), "", &wakes)
	default: // typing, read receipts: not to their own user
		e.broadcast(r, e.opts.Encoder.Event(ev), ev.User, &wakes)
	}
	r.mu.Unlock()
	wakes.run()
}

// broadcast queues frame to the room's live sessions but those of skip.
// Called with r.mu held.
func (e *Engine) broadcast(r *room, frame []byte, skip string, wakes *wakeList) {
	for s, sb := range r.subs {
		if sb.live && s.User != skip {
			wakes.add(s, s.push(Frame{Data: frame}))
		}
	}
}

// presence announces user's new state in r now, or, if the last
// announcement was less than presenceEvery ago, when it has passed.
// Called with r.mu held.
func (e *Engine) presence(r *room, user, state string, now time.Time, wakes *wakeList) {
	p := &r.pres
	if p.users == nil {
		p.users = make(map[string]*presState)
	}
	ps := p.users[user]
	if ps == nil {
		ps = &presState{}
		p.users[user] = ps
	}
	if now.Sub(ps.sent) >= presenceEvery {
		if ps.state != state {
			e.announce(r, user, state, wakes)
		}
		ps.sent, ps.state, ps.want = now, state, ""
		return
	}
	ps.want = state
	e.armPresence(r, ps.sent.Add(presenceEvery), now)
}

func (e *Engine) announce(r *room, user, state string, wakes *wakeList) {
	e.broadcast(r, e.opts.Encoder.Event(Event{Kind: EventPresence, Room: r.name, User: user, State: state}), user, wakes)
}

// armPresence makes sure the room's timer fires by due.
func (e *Engine) armPresence(r *room, due, now time.Time) {
	p := &r.pres
	if !p.due.IsZero() && !p.due.After(due) {
		return
	}
	p.due = due
	if p.timer == nil {
		p.timer = time.AfterFunc(due.Sub(now), func() { e.flushPresence(r) })
	} else {
		p.timer.Reset(due.Sub(now))
	}
}

// flushPresence announces the states that waited, and forgets users
// quiet for longer than presenceEvery.
func (e *Engine) flushPresence(r *room) {
	var wakes wakeList
	r.mu.Lock()
	p := &r.pres
	p.due = time.Time{}
	now := time.Now()
	var next time.Time
	for user, ps := range p.users {
		switch {
		case ps.want == "":
			if now.Sub(ps.sent) >= presenceEvery {
				delete(p.users, user)
			}
		case now.Sub(ps.sent) >= presenceEvery:
			if ps.want != ps.state {
				e.announce(r, user, ps.want, &wakes)
			}
			ps.sent, ps.state, ps.want = now, ps.want, ""
		default:
			if due := ps.sent.Add(presenceEvery); next.IsZero() || due.Before(next) {
				next = due
			}
		}
	}
	if !next.IsZero() && len(r.subs) > 0 {
		e.armPresence(r, next, now)
	}
	r.mu.Unlock()
	wakes.run()
}

// UserEvent implements FeedHandler.
func (e *Engine) UserEvent(ev UserEvent) {
	e.mu.Lock()
	sessions := make([]*Session, 0, len(e.users[ev.User]))
	for s := range e.users[ev.User] {
		sessions = append(sessions, s)
	}
	e.mu.Unlock()
	switch ev.Kind {
	case UserRevoke:
		e.KickToken(ev.Token)
		return
	case UserAccess:
		e.access.drop(ev.Room, ev.User)
		return
	case UserRoomAdded, UserRoomRemoved:
		// The user's sockets here may act on the room at once (join the
		// room they were added to; type in the one they were removed
		// from, which no local session may have joined, so no member
		// entry reaches this instance): forget the cached access before
		// they hear of it.
		e.access.drop(ev.Room, ev.User)
	case UserDisconnect:
		for _, s := range sessions {
			if ev.Before == 0 || s.issued.Unix() < ev.Before {
				s.Kick(ErrRevoked)
			}
		}
		return
	}
	frame := e.opts.Encoder.UserEvent(ev)
	for _, s := range sessions {
		if ev.Kind == UserMention && s.joined(ev.Room) {
			continue
		}
		if s.push(Frame{Data: frame}) {
			s.wake()
		}
	}
}

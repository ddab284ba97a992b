package engine

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Action is what a user wants to do in a room.
type Action int

// Actions, as the table "who may do what in a room" of the protocol
// names them.
const (
	// ActRead covers reading history, joining, typing, read receipts, the
	// member list and presence.
	ActRead Action = iota
	// ActWrite covers sending, replying and reacting.
	ActWrite
	// ActEdit is editing one's own message (the store checks authorship
	// and the edit window in the same step as the edit).
	ActEdit
	// ActDelete is deleting a message: one's own, or as owner, moderator
	// or admin anyone's (the store checks which, in the same step).
	ActDelete
	// ActManage covers the topic, adding and removing members, bans and
	// mutes.
	ActManage
	// ActRoles is changing members' roles.
	ActRoles
)

var actionNames = [...]string{"read", "write", "edit", "delete", "manage", "change roles"}

func (a Action) String() string { return actionNames[a] }

// Permit is the one rule of who may do what in a room, for every path
// (REST and WebSocket alike):
//
//	room             read, join, send, react, reply      edit     delete            topic, members, bans, mutes (roles)
//	public channel   anyone not banned (send, react:     author   author, owners,   owners, moderators, admins
//	                 not muted)                                   moderators, admins (roles: owners, admins)
//	private channel  members (send, react: not muted)    author   as above          as above
//	direct room      its two users                       author   author            nobody
//
// Admins have owner rights in every channel and cannot be banned or
// muted. Permit answers ErrNotFound for a room that does not exist and
// ErrForbidden for one that exists and is closed to the user; a private
// channel is closed to non-members on every path, so that they cannot
// tell it from any other room closed to them. Authorship and the edit
// window are checked by the store, atomically with the edit or deletion;
// so are bans, mutes and membership for writes, so that a change made on
// another instance a moment ago holds.
func (a Access) Permit(act Action, now time.Time) error {
	if a.Kind == "" {
		return fmt.Errorf("room %s: %w", a.Room, ErrNotFound)
	}
	deny := func(why string) error {
		return fmt.Errorf("room %s: %s: %w", a.Room, why, ErrForbidden)
	}
	if a.Kind == KindDirect {
		x, y, ok := parseDirect(a.Room)
		if !ok || (a.User != x && a.User != y) {
			return deny(closedToYou)
		}
		if act >= ActManage {
			return deny("a direct room has nothing to manage")
		}
		return nil
	}
	if a.Admin {
		return nil
	}
	if a.banned(now) {
		return deny("you are banned from it")
	}
	if a.Kind == KindPrivate && a.Role == "" {
		// Say nothing of what the room is: to a non-member a private
		// channel is only a room closed to them.
		return deny(closedToYou)
	}
	switch act {
	case ActWrite, ActEdit:
		if a.muted(now) {
			return deny("you are muted there")
		}
	case ActManage:
		if a.Role != RoleOwner && a.Role != RoleModerator {
			return deny("only its owners and moderators may " + act.String())
		}
	case ActRoles:
		if a.Role != RoleOwner {
			return deny("only its owners may change roles")
		}
	}
	return nil
}

// closedToYou is the one refusal of a room the user may not enter at all
// (someone else's direct room, a private channel they are not in), so
// that the answers cannot be told apart.
const closedToYou = "it is closed to you"

// Moderates reports whether the user may delete others' messages and
// manage the room: an owner, a moderator or an admin of a channel.
func (a Access) Moderates() bool {
	return a.Kind != KindDirect && (a.Admin || a.Role == RoleOwner || a.Role == RoleModerator)
}

// Owns reports whether the user has owner rights in the channel.
func (a Access) Owns() bool { return a.Kind != KindDirect && (a.Admin || a.Role == RoleOwner) }

func (a Access) banned(now time.Time) bool { return active(a.BannedUntil, now) }
func (a Access) muted(now time.Time) bool  { return active(a.MutedUntil, now) }

func active(until int64, now time.Time) bool {
	return until == -1 || (until > 0 && now.UnixMilli() < until)
}

// accessTTL is how long a cached Access is trusted for reads. Writes do
// not depend on it: the store re-checks the facts they need.
const accessTTL = 2 * time.Second

// accessCache keeps recent Access answers, including for rooms that do
// not exist, so that a stream of frames naming one room costs one lookup
// per accessTTL. Member entries seen by the fan-out drop the entries of
// their room and user at once.
type accessCache struct {
	mu sync.Mutex
	m  map[string]cachedAccess
}

type cachedAccess struct {
	acc Access
	at  time.Time
}

// maxCachedAccess bounds the cache; past it, it starts over.
const maxCachedAccess = 100000

func (c *accessCache) init() { c.m = make(map[string]cachedAccess) }

func (c *accessCache) get(room, user string, now time.Time) (Access, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ca, ok := c.m[room+"\x00"+user]
	if !ok || now.Sub(ca.at) >= accessTTL {
		return Access{}, false
	}
	return ca.acc, true
}

func (c *accessCache) put(acc Access, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedAccess {
		clear(c.m)
	}
	c.m[acc.Room+"\x00"+acc.User] = cachedAccess{acc, now}
}

func (c *accessCache) drop(room, user string) {
	c.mu.Lock()
	delete(c.m, room+"\x00"+user)
	c.mu.Unlock()
}

func (c *accessCache) expire(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, ca := range c.m {
		if now.Sub(ca.at) >= accessTTL {
			delete(c.m, k)
		}
	}
}

// accessOf returns user's access to room, from the cache when fresh
// enough unless fresh is set. A well-formed direct room that does not
// exist yet is opened when its other user exists (a DM can start with a
// join, a send or a history read). Errors: ErrInvalid (not a room name),
// ErrUnavailable.
func (e *Engine) accessOf(ctx context.Context, room, user string, fresh bool) (Access, error) {
	if err := validRoomName(room); err != nil {
		return Access{}, err
	}
	now := e.opts.Now()
	if !fresh {
		if acc, ok := e.access.get(room, user, now); ok {
			return acc, nil
		}
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	acc, err := e.opts.Directory.Access(ctx, room, user)
	if err != nil {
		return Access{}, unavailable(err)
	}
	acc.Room, acc.User = room, user
	if acc.Kind == "" {
		if acc, err = e.openImplicitDirect(ctx, acc); err != nil {
			return Access{}, err
		}
	}
	e.decorate(&acc)
	e.access.put(acc, now)
	return acc, nil
}

// decorate adds what the engine itself knows to an Access from the store.
func (e *Engine) decorate(acc *Access) {
	acc.Admin = acc.Kind != KindDirect && acc.Kind != "" && e.admins[acc.User]
}

// openImplicitDirect opens the direct room acc names if user is one of
// its users and the other exists; otherwise acc stays "no such room"
// (or, for someone else's direct room name, forbidden by Permit).
func (e *Engine) openImplicitDirect(ctx context.Context, acc Access) (Access, error) {
	a, b, ok := parseDirect(acc.Room)
	if !ok {
		return acc, nil
	}
	if acc.User != a && acc.User != b {
		acc.Kind = KindDirect // Permit refuses it: someone else's direct room
		return acc, nil
	}
	other := a
	if acc.User == a {
		other = b
	}
	exists, err := e.userExists(ctx, other)
	if err != nil {
		return acc, err
	}
	if !exists {
		return acc, nil
	}
	created, err := e.opts.Directory.OpenDirect(ctx, acc.Room, a, b)
	if err != nil {
		return acc, unavailable(err)
	}
	if created {
		e.announceDirect(acc.Room, a, b)
	}
	acc.Kind = KindDirect
	return acc, nil
}

// authorize returns user's access to room if user may do act there.
func (e *Engine) authorize(ctx context.Context, room, user string, act Action, fresh bool) (Access, error) {
	acc, err := e.accessOf(ctx, room, user, fresh)
	if err != nil {
		return acc, err
	}
	return acc, acc.Permit(act, e.opts.Now())
}

// knownUsers remembers which user names exist (users are never deleted)
// and, for a minute, which do not: mentions name users on every message.
type knownUsers struct {
	mu  sync.Mutex
	yes map[string]bool
	no  map[string]time.Time
}

const maxKnownUsers = 200000

func (k *knownUsers) init() {
	k.yes = make(map[string]bool)
	k.no = make(map[string]time.Time)
}

func (k *knownUsers) expire(now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for u, at := range k.no {
		if now.Sub(at) > time.Minute {
			delete(k.no, u)
		}
	}
}

func (e *Engine) userExists(ctx context.Context, name string) (bool, error) {
	now := e.opts.Now()
	k := &e.known
	k.mu.Lock()
	if k.yes[name] {
		k.mu.Unlock()
		return true, nil
	}
	if at, ok := k.no[name]; ok && now.Sub(at) < time.Minute {
		k.mu.Unlock()
		return false, nil
	}
	k.mu.Unlock()
	ok, err := e.opts.Directory.UserExists(ctx, name)
	if err != nil {
		return false, unavailable(err)
	}
	k.mu.Lock()
	if len(k.yes) >= maxKnownUsers {
		clear(k.yes)
	}
	if len(k.no) >= maxKnownUsers {
		clear(k.no)
	}
	if ok {
		k.yes[name] = true
		delete(k.no, name)
	} else {
		k.no[name] = now
	}
	k.mu.Unlock()
	return ok, nil
}

// UserRegistered tells the engine that name now exists (registration),
// so a mention or a direct room does not wait out a cached "no".
func (e *Engine) UserRegistered(name string) {
	e.known.mu.Lock()
	delete(e.known.no, name)
	e.known.mu.Unlock()
}

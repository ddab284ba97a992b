package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// validRoomName accepts a channel name or a well-formed direct room name.
func validRoomName(name string) error {
	if _, _, ok := parseDirect(name); ok {
		return nil
	}
	return ValidChannelName(name)
}

// ValidTopic checks a topic: at most max characters of valid UTF-8, no
// control characters. Errors wrap ErrInvalid.
func ValidTopic(topic string, max int) error {
	if utf8.RuneCountInString(topic) > max {
		return fmt.Errorf("topic is longer than %d characters: %w", max, ErrInvalid)
	}
	if !utf8.ValidString(topic) {
		return fmt.Errorf("topic is not valid UTF-8: %w", ErrInvalid)
	}
	for _, r := range topic {
		if unicode.IsControl(r) {
			return fmt.Errorf("topic holds a control character: %w", ErrInvalid)
		}
	}
	return nil
}

// CreateRoom creates a channel owned by user (the server API passes
// spec.Owner itself, possibly empty, and byAPI true: no per-user channel
// limit then). Errors: ErrInvalid, ErrExists, *RetryError (the user's
// channel limit), ErrNotFound (an owner or member that does not exist),
// ErrUnavailable.
func (e *Engine) CreateRoom(ctx context.Context, user string, spec RoomSpec, byAPI bool) error {
	if err := ValidChannelName(spec.Name); err != nil {
		return err
	}
	if err := ValidTopic(spec.Topic, e.opts.MaxTopic); err != nil {
		return err
	}
	if !byAPI {
		spec.Owner = user
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	seen := map[string]bool{}
	members := spec.Members[:0:0]
	check := func(name string) (string, error) {
		n, err := NormalizeUsername(name)
		if err != nil {
			return "", fmt.Errorf("user %q: %w", name, ErrNotFound)
		}
		ok, err := e.userExists(ctx, n)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", fmt.Errorf("user %s: %w", n, ErrNotFound)
		}
		return n, nil
	}
	if byAPI && spec.Owner != "" {
		// The caller of a user route holds a token: it exists. An owner
		// named by the server API must be checked.
		n, err := check(spec.Owner)
		if err != nil {
			return err
		}
		spec.Owner = n
	}
	seen[spec.Owner] = true
	for _, m := range spec.Members {
		n, err := check(m)
		if err != nil {
			return err
		}
		if !seen[n] {
			seen[n] = true
			members = append(members, n)
		}
	}
	spec.Members = members
	if !byAPI {
		ok, err := e.opts.Directory.CountChannel(ctx, user, e.opts.MaxChannelsPerUser)
		if err != nil {
			return unavailable(err)
		}
		if !ok {
			// A name that is taken is that whatever the count: a client
			// opens the existing channel on room_exists.
			acc, err := e.opts.Directory.Access(ctx, spec.Name, user)
			if err != nil {
				return unavailable(err)
			}
			if acc.Kind != "" {
				return fmt.Errorf("room %s: %w", spec.Name, ErrExists)
			}
			return &RetryError{After: 0, Reason: fmt.Sprintf("you may create at most %d channels", e.opts.MaxChannelsPerUser)}
		}
	}
	if err := e.opts.Directory.CreateRoom(ctx, spec); err != nil {
		if !byAPI {
			_ = e.opts.Directory.UncountChannel(ctx, user)
		}
		return unavailable(err)
	}
	kind := KindChannel
	if spec.Private {
		kind = KindPrivate
	}
	for _, m := range spec.Members {
		e.tell(UserEvent{Kind: UserRoomAdded, User: m, Room: spec.Name, RoomKind: kind})
	}
	return nil
}

// OpenDirect returns the direct room of user and other, creating and
// listing it for both if needed (both users' sockets then get
// room_added). Errors: ErrInvalid (other is user), ErrNotFound (no such
// user), ErrUnavailable.
func (e *Engine) OpenDirect(ctx context.Context, user, other string) (string, error) {
	other, err := NormalizeUsername(other)
	if err != nil {
		return "", fmt.Errorf("user %q: %w", other, ErrNotFound)
	}
	if other == user {
		return "", fmt.Errorf("a direct room needs two different users: %w", ErrInvalid)
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	ok, err := e.userExists(ctx, other)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("user %s: %w", other, ErrNotFound)
	}
	name := DirectRoom(user, other)
	a, b, _ := parseDirect(name)
	created, err := e.opts.Directory.OpenDirect(ctx, name, a, b)
	if err != nil {
		return "", unavailable(err)
	}
	if created {
		e.announceDirect(name, a, b)
	}
	return name, nil
}

func (e *Engine) announceDirect(room, a, b string) {
	for _, u := range []string{a, b} {
		e.tell(UserEvent{Kind: UserRoomAdded, User: u, Room: room, RoomKind: KindDirect})
	}
}

// Rooms lists, sorted by name and paged, the rooms user may see: the
// public channels, and the private channels and direct rooms user
// belongs to, with unread and mention counts. Errors: ErrInvalid,
// ErrUnavailable.
func (e *Engine) Rooms(ctx context.Context, user, after string, limit int) ([]RoomSummary, bool, error) {
	if limit < 1 || limit > 500 {
		return nil, false, fmt.Errorf("limit must be 1 to 500: %w", ErrInvalid)
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	sums, more, err := e.opts.Directory.Rooms(ctx, user, after, limit)
	return sums, more, unavailable(err)
}

// SetTopic sets a channel's topic; joined members get a room frame.
func (e *Engine) SetTopic(ctx context.Context, user, room, topic string) (Access, error) {
	if err := ValidTopic(topic, e.opts.MaxTopic); err != nil {
		return Access{}, err
	}
	acc, err := e.authorize(ctx, room, user, ActManage, true)
	if err != nil {
		return acc, err
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	if err := e.opts.Directory.SetTopic(ctx, room, topic, user); err != nil {
		return acc, unavailable(err)
	}
	acc.Topic = topic
	return acc, nil
}

// Members lists a room's members, sorted by name and paged, for a user
// who may read the room. Errors: ErrInvalid, ErrForbidden, ErrNotFound,
// ErrUnavailable.
func (e *Engine) Members(ctx context.Context, user, room, after string, limit int) ([]Member, bool, error) {
	if limit < 1 || limit > 1000 {
		return nil, false, fmt.Errorf("limit must be 1 to 1000: %w", ErrInvalid)
	}
	acc, err := e.authorize(ctx, room, user, ActRead, true)
	if err != nil {
		return nil, false, err
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	if acc.Kind == KindDirect {
		return e.directMembers(ctx, room, after, limit)
	}
	ms, more, err := e.opts.Directory.Members(ctx, room, after, limit)
	return ms, more, unavailable(err)
}

// directMembers lists a direct room's members: its two users, named by
// the room, which keeps no member list of its own.
func (e *Engine) directMembers(ctx context.Context, room, after string, limit int) ([]Member, bool, error) {
	a, b, _ := parseDirect(room)
	online, err := e.opts.Presence.Online(ctx, room)
	if err != nil {
		return nil, false, unavailable(err)
	}
	var ms []Member
	for _, u := range []string{a, b} { // a < b: sorted by name
		if u > after {
			ms = append(ms, Member{User: u, Role: RoleMember, Online: slices.Contains(online, u)})
		}
	}
	more := len(ms) > limit
	if more {
		ms = ms[:limit]
	}
	return ms, more, nil
}

// target checks a user named as the object of a management action and
// returns their access to room.
func (e *Engine) target(ctx context.Context, room, name string) (Access, error) {
	n, err := NormalizeUsername(name)
	if err != nil {
		return Access{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	ok, err := e.userExists(ctx, n)
	if err != nil {
		return Access{}, err
	}
	if !ok {
		return Access{}, fmt.Errorf("user %s: %w", n, ErrNotFound)
	}
	return e.accessOf(ctx, room, n, true)
}

// AddMember adds target to room. Owners and moderators add anyone; in a
// public channel anyone may add themself. The target's sockets get
// room_added. Errors: ErrForbidden, ErrNotFound, ErrBanned, ErrExists
// (already a member: the role is returned), ErrUnavailable.
func (e *Engine) AddMember(ctx context.Context, user, room, target string) (Role, error) {
	acc, err := e.authorize(ctx, room, user, ActRead, true)
	if err != nil {
		return "", err
	}
	t, err := e.target(ctx, room, target)
	if err != nil {
		return "", err
	}
	self := t.User == user
	if !(self && acc.Kind == KindChannel) {
		if err := acc.Permit(ActManage, e.opts.Now()); err != nil {
			return "", err
		}
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	role, err := e.opts.Directory.AddMember(ctx, room, t.User, user)
	if err != nil {
		return role, unavailable(err)
	}
	e.access.drop(room, t.User)
	e.tell(UserEvent{Kind: UserRoomAdded, User: t.User, Room: room, RoomKind: acc.Kind})
	return role, nil
}

// SetRole changes target's role in room; only owners (and admins) may.
// Errors: ErrInvalid, ErrForbidden, ErrNotFound, ErrLastOwner,
// ErrUnavailable.
func (e *Engine) SetRole(ctx context.Context, user, room, target string, role Role) error {
	if !ValidRole(role) {
		return fmt.Errorf("role must be owner, moderator or member: %w", ErrInvalid)
	}
	if _, err := e.authorize(ctx, room, user, ActRoles, true); err != nil {
		return err
	}
	t, err := e.target(ctx, room, target)
	if err != nil {
		return err
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	if err := e.opts.Directory.SetRole(ctx, room, t.User, role); err != nil {
		return unavailable(err)
	}
	e.access.drop(room, t.User)
	return nil
}

// RemoveMember removes target from room: the caller leaving, or an owner
// or moderator removing a member who is not an owner. The target's
// sockets get kicked from the room (on every instance: the removal is an
// entry of the room's stream) and room_removed. Errors: ErrForbidden,
// ErrNotFound, ErrLastOwner, ErrUnavailable.
func (e *Engine) RemoveMember(ctx context.Context, user, room, target string) error {
	acc, err := e.authorize(ctx, room, user, ActRead, true)
	if err != nil {
		return err
	}
	if acc.Kind == KindDirect {
		return fmt.Errorf("room %s: a direct room has no members to remove: %w", room, ErrForbidden)
	}
	t, err := e.target(ctx, room, target)
	if err != nil {
		return err
	}
	if t.User != user {
		if err := acc.Permit(ActManage, e.opts.Now()); err != nil {
			return err
		}
		if t.Role == RoleOwner && !acc.Admin {
			return fmt.Errorf("an owner cannot be removed by others: %w", ErrForbidden)
		}
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	if err := e.opts.Directory.RemoveMember(ctx, room, t.User, user); err != nil {
		return unavailable(err)
	}
	e.access.drop(room, t.User)
	e.tell(UserEvent{Kind: UserRoomRemoved, User: t.User, Room: room, Reason: ChangeRemoved})
	return nil
}

// MaxBanDuration bounds a timed ban or mute.
const MaxBanDuration = 365 * 24 * time.Hour

// Ban bans target from room for d (0: until lifted), removing them; never
// an owner or an admin. Their sockets get kicked and room_removed.
// Errors: ErrInvalid (d outside 1 s – 1 year), ErrForbidden, ErrNotFound,
// ErrUnavailable.
func (e *Engine) Ban(ctx context.Context, user, room, target string, d time.Duration) (time.Time, error) {
	return e.restrict(ctx, user, room, target, d, true)
}

// Mute mutes target in room for d (0: until lifted): they still read the
// room but may not send, edit or react there.
func (e *Engine) Mute(ctx context.Context, user, room, target string, d time.Duration) (time.Time, error) {
	return e.restrict(ctx, user, room, target, d, false)
}

func (e *Engine) restrict(ctx context.Context, user, room, target string, d time.Duration, ban bool) (time.Time, error) {
	if d != 0 && (d < time.Second || d > MaxBanDuration) {
		return time.Time{}, fmt.Errorf("seconds must be 1 to 31536000: %w", ErrInvalid)
	}
	acc, err := e.authorize(ctx, room, user, ActManage, true)
	if err != nil {
		return time.Time{}, err
	}
	t, err := e.target(ctx, room, target)
	if err != nil {
		return time.Time{}, err
	}
	if t.Admin || t.Role == RoleOwner {
		return time.Time{}, fmt.Errorf("owners and admins cannot be banned or muted: %w", ErrForbidden)
	}
	var until time.Time
	if d > 0 {
		until = e.opts.Now().Add(d).Truncate(time.Millisecond)
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	if ban {
		err = e.opts.Directory.Ban(ctx, room, t.User, user, until)
	} else {
		err = e.opts.Directory.Mute(ctx, room, t.User, until)
	}
	if err != nil {
		return time.Time{}, unavailable(err)
	}
	e.access.drop(room, t.User)
	if ban && acc.Kind != KindDirect {
		e.tell(UserEvent{Kind: UserRoomRemoved, User: t.User, Room: room, Reason: ChangeBanned})
	}
	return until, nil
}

// Lift ends a ban (or, with mute, a mute). Errors: ErrForbidden,
// ErrNotFound (none in force), ErrUnavailable.
func (e *Engine) Lift(ctx context.Context, user, room, target string, mute bool) error {
	if _, err := e.authorize(ctx, room, user, ActManage, true); err != nil {
		return err
	}
	n, err := NormalizeUsername(target)
	if err != nil {
		return fmt.Errorf("user %q: %w", target, ErrNotFound)
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	if mute {
		err = e.opts.Directory.Unmute(ctx, room, n)
	} else {
		err = e.opts.Directory.Unban(ctx, room, n)
	}
	e.access.drop(room, n)
	if err == nil {
		// Other instances cached the ban or mute; a lifted one must not
		// refuse the user there for the cache's lifetime.
		e.tell(UserEvent{Kind: UserAccess, User: n, Room: room})
	}
	return unavailable(err)
}

// Bans lists the bans (or mutes) in force in room, for its managers.
func (e *Engine) Bans(ctx context.Context, user, room string, mutes bool) ([]Ban, error) {
	if _, err := e.authorize(ctx, room, user, ActManage, true); err != nil {
		return nil, err
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	bans, err := e.opts.Directory.Bans(ctx, room, mutes)
	return bans, unavailable(err)
}

// IsAdmin reports whether user is in CHAT_ADMINS.
func (e *Engine) IsAdmin(user string) bool { return e.admins[strings.ToLower(user)] }

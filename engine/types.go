package engine

import (
	"context"
	"time"
)

// Kind says what sort of room a room is.
type Kind string

// Room kinds, as the REST API names them.
const (
	KindChannel Kind = "channel" // public: anyone not banned reads and writes
	KindPrivate Kind = "private" // members only
	KindDirect  Kind = "direct"  // its two users only
)

// Role is a member's role in a channel. The zero value means not a member.
type Role string

// Roles, from most to least rights.
const (
	RoleOwner     Role = "owner"
	RoleModerator Role = "moderator"
	RoleMember    Role = "member"
)

// ValidRole reports whether r names a role.
func ValidRole(r Role) bool { return r == RoleOwner || r == RoleModerator || r == RoleMember }

// EntryKind says what an entry of a room's stream records.
type EntryKind byte

// Entry kinds. Messages, edits, deletions and reactions reach clients;
// member entries only steer delivery (a removed user's sockets stop
// getting the room at the entry that removed them) and webhooks.
const (
	EntryMessage  EntryKind = 'm'
	EntryEdit     EntryKind = 'e'
	EntryDelete   EntryKind = 'd'
	EntryReaction EntryKind = 'r'
	EntryMember   EntryKind = 'M'
)

// Member changes recorded by member entries.
const (
	ChangeAdded   = "added"
	ChangeRemoved = "removed"
	ChangeBanned  = "banned"
)

// Entry is one entry of a room's stream: a message or an event about one.
type Entry struct {
	Kind EntryKind
	ID   StreamPos
	Room string
	// User wrote the message, or made the edit, deletion, reaction or
	// member change.
	User string
	// Q is the room's entry counter at this entry: 1 for the first and
	// contiguous over every entry, so a fan-out that sees Q jump knows an
	// entry's notice went missing. Zero for entries of the old layout.
	Q uint64
	// N is, for messages, the room's message counter (unread counts).
	N uint64

	Text     string    // message, edit
	ClientID string    // message
	ReplyTo  StreamPos // message: the message it answers, zero for none
	Mentions []string  // message, edit: users named with @, lowercase, each once

	Target StreamPos // edit, delete, reaction: the message acted on
	Emoji  string    // reaction
	On     bool      // reaction: added (true) or removed

	Member string // member entry: whose membership changed
	Change string // member entry: ChangeAdded, ChangeRemoved, ChangeBanned
}

// TS is the entry's server time in Unix milliseconds (its ID's time).
func (e *Entry) TS() int64 { return int64(e.ID.Ms) }

// Message is a message in its current state: edits, deletion, reactions
// and replies applied.
type Message struct {
	Entry
	EditedTS   int64 // Unix ms of the last edit, 0 if never edited
	Deleted    bool  // Text is empty and Mentions nil then
	Reactions  []Reaction
	ReplyCount int
}

// Reaction is one emoji on a message and who reacted with it, in order.
type Reaction struct {
	Emoji string
	Users []string
}

// EventKind names an ephemeral room event carried over pub/sub.
type EventKind string

// Ephemeral room events. They are never stored.
const (
	EventTyping   EventKind = "typing"
	EventPresence EventKind = "presence"
	EventRead     EventKind = "read"
	EventTopic    EventKind = "room"
)

// Event is an ephemeral event of a room: typing, a presence change, a read
// receipt, a new topic.
type Event struct {
	Kind  EventKind
	Room  string
	User  string
	State string    // presence: "online" or "offline"
	ID    StreamPos // read: the position read up to
	Topic string    // topic
}

// UserEventKind names an event addressed to one user's sockets.
type UserEventKind string

// User events. They are never stored; GET /api/rooms is the truth.
const (
	UserRoomAdded   UserEventKind = "room_added"
	UserRoomRemoved UserEventKind = "room_removed"
	UserMention     UserEventKind = "mention"
	// UserRevoke ends the sockets opened with one token (Token).
	UserRevoke UserEventKind = "revoke"
	// UserDisconnect ends every socket of the user; with Before set, only
	// those whose token was issued before it.
	UserDisconnect UserEventKind = "disconnect"
	// UserAccess says the user's access to Room changed in a way no other
	// user event tells (a ban or mute lifted): instances with the user's
	// sockets forget the access they cached. Never sent to clients.
	UserAccess UserEventKind = "access"
)

// UserEvent is an event for every socket of User, on any instance.
type UserEvent struct {
	Kind     UserEventKind
	User     string
	Room     string
	RoomKind Kind   // room_added
	Reason   string // room_removed: "removed", "banned"
	// mention: the message that named User.
	ID   StreamPos
	From string
	Text string
	// revoke: the token's ID; disconnect: tokens issued before this time
	// (Unix seconds) end, 0 means every socket.
	Token  string
	Before int64
}

// Access is what the engine knows of one user and one room, enough to
// decide what the user may do there (see Permit).
type Access struct {
	Room  string
	User  string
	Kind  Kind // empty: no such room
	Topic string
	Role  Role
	// BannedUntil and MutedUntil are Unix ms; 0 means not, -1 no end.
	BannedUntil int64
	MutedUntil  int64
	Admin       bool // CHAT_ADMINS: owner rights in every channel
}

// RoomSummary is a room as GET /api/rooms lists it for one user.
type RoomSummary struct {
	Name     string
	Kind     Kind
	LastID   StreamPos
	Unread   int64
	Mentions int64
	Topic    string
	Role     Role
}

// Member is one member of a room.
type Member struct {
	User   string
	Role   Role
	Online bool
}

// Ban is one ban or mute of a room. Until is Unix ms, 0 for no end.
type Ban struct {
	User  string
	Until int64
}

// RoomSpec describes a room to create.
type RoomSpec struct {
	Name    string
	Private bool
	Topic   string
	Owner   string   // empty: no owner (as the built-in channels)
	Members []string // added as members besides the owner
}

// AppendRequest is one entry to store: a message, or an edit, deletion
// or reaction of one.
type AppendRequest struct {
	Kind EntryKind // EntryMessage, EntryEdit, EntryDelete, EntryReaction
	Room string
	User string
	// Admin skips the store's re-check of bans, mutes, membership and
	// moderator role (the user is in CHAT_ADMINS).
	Admin bool

	Text     string
	ClientID string // message: empty means no idempotency
	ReplyTo  StreamPos
	// Mentions are candidates (existing users named with @); the store
	// keeps those who can read the room.
	Mentions []string
	// RateExempt skips the per-user send rate (the server API).
	RateExempt bool

	Target     StreamPos
	Emoji      string
	On         bool
	EditWindow time.Duration // edit: 0 means always
}

// AppendResult is what Append stored, or found stored under the same
// client ID.
type AppendResult struct {
	Entry     Entry
	Duplicate bool // the client ID was seen before; Entry.ID is the first send's
	Noop      bool // a reaction that changed nothing; nothing was stored
}

// JoinState is what a join reads in one round trip: the user's access,
// the room's newest message and newest entry, who is online (after
// marking the joiner, if asked) and the highest position retention
// removed.
type JoinState struct {
	Access    Access
	LastMsg   StreamPos
	LastEntry StreamPos
	Q         uint64
	Online    []string
	Trimmed   StreamPos
}

// JoinOptions say what a join writes besides reading.
type JoinOptions struct {
	MarkOnline bool // the user's first local session in the room
	MarkRead   bool // start the user's read position (channels, on first join)
}

// Page is one page of messages and whether more lie beyond it.
type Page struct {
	Messages []Message
	More     bool
}

// Log is the durable, ordered history of rooms: one Redis stream per
// room, with each message's current state beside it.
type Log interface {
	// Append stores req atomically (idempotency, send rate, the re-check
	// of bans, mutes and membership, counters, retention) and calls done
	// once, from another goroutine, with the result. Appends made in one
	// order for one room complete in that order. Errors: *RetryError
	// (ErrRateLimited), ErrForbidden, ErrNotFound (no room, or a target or
	// reply_to that is not a live message of the room), ErrInvalid (too
	// many distinct emoji), ErrUnavailable.
	Append(req AppendRequest, done func(AppendResult, error))
	// Range returns up to n entries after pos (exclusive), oldest first.
	Range(ctx context.Context, room string, after StreamPos, n int) ([]Entry, error)
	// History returns one page of messages in their current state and
	// user's access to room, read in one round trip. With after set, the
	// oldest n after it; else the newest n before before (zero: the
	// newest), oldest first either way.
	History(ctx context.Context, room, user string, before, after *StreamPos, n int) (Access, Page, error)
	// Message returns one message in its current state and user's access.
	// Errors: ErrNotFound (no such message; Access is still filled).
	Message(ctx context.Context, room, user string, id StreamPos) (Access, Message, error)
	// Replies returns the root message, up to n of its replies after
	// after (zero: from the first), and user's access.
	Replies(ctx context.Context, room, user string, root, after StreamPos, n int) (Access, Message, Page, error)
	// JoinState reads (and writes, per opts) what a join needs.
	JoinState(ctx context.Context, room, user string, opts JoinOptions) (JoinState, error)
	// MarkRead moves user's read position forward to the newest message
	// at or before id; in a direct room a move is published as EventRead.
	MarkRead(ctx context.Context, room, user string, id StreamPos, direct bool) error
}

// Directory knows rooms, members and users.
type Directory interface {
	// Access returns what user may rely on in room; Kind is empty for a
	// room that does not exist.
	Access(ctx context.Context, room, user string) (Access, error)
	// UserExists reports whether a user is registered.
	UserExists(ctx context.Context, name string) (bool, error)
	// CreateRoom creates a channel (public or private). Errors: ErrExists.
	CreateRoom(ctx context.Context, spec RoomSpec) error
	// OpenDirect creates the direct room of a and b if needed and lists it
	// for both; created reports whether it is new.
	OpenDirect(ctx context.Context, room, a, b string) (created bool, err error)
	// CountChannel counts one more channel created by user and reports
	// whether that stays within limit.
	CountChannel(ctx context.Context, user string, limit int) (ok bool, err error)
	// UncountChannel takes back a CountChannel whose room was not created.
	UncountChannel(ctx context.Context, user string) error
	// Rooms returns up to n rooms user may see, sorted by name, after the
	// name after: the public channels, and the private channels and direct
	// rooms user belongs to.
	Rooms(ctx context.Context, user, after string, n int) ([]RoomSummary, bool, error)
	// Members returns up to n members of room after the name after.
	Members(ctx context.Context, room, after string, n int) ([]Member, bool, error)
	// AddMember adds user to room as a member. Errors: ErrExists (already
	// a member; the role is returned), ErrBanned, ErrNotFound.
	AddMember(ctx context.Context, room, user, by string) (Role, error)
	// RemoveMember removes user from room (reason ChangeRemoved).
	// Errors: ErrNotFound (not a member), ErrLastOwner.
	RemoveMember(ctx context.Context, room, user, by string) error
	// SetRole changes a member's role. Errors: ErrNotFound, ErrLastOwner.
	SetRole(ctx context.Context, room, user string, role Role) error
	// Ban bans user from room until (zero: no end), removing them.
	Ban(ctx context.Context, room, user, by string, until time.Time) error
	// Unban lifts a ban. Errors: ErrNotFound.
	Unban(ctx context.Context, room, user string) error
	// Mute mutes user in room until (zero: no end).
	Mute(ctx context.Context, room, user string, until time.Time) error
	// Unmute lifts a mute. Errors: ErrNotFound.
	Unmute(ctx context.Context, room, user string) error
	// Bans lists the bans (or mutes) in force.
	Bans(ctx context.Context, room string, mutes bool) ([]Ban, error)
	// SetTopic sets room's topic and publishes EventTopic.
	SetTopic(ctx context.Context, room, topic, by string) error
}

// Presence tracks who is online in which room, across instances. A dead
// instance's entries are reaped by the others (see Heartbeat).
type Presence interface {
	// Join marks users online in room from this instance and returns
	// everyone online in room.
	Join(ctx context.Context, room string, users []string) ([]string, error)
	// Leave marks users as no longer online in room from this instance.
	Leave(ctx context.Context, room string, users []string) error
	// Online returns everyone online in room.
	Online(ctx context.Context, room string) ([]string, error)
	// Heartbeat keeps this instance alive in the registry and reaps the
	// entries of instances whose heartbeat stopped.
	Heartbeat(ctx context.Context) error
}

// RoomRead asks for the entries of Room after After.
type RoomRead struct {
	Room  string
	After StreamPos
	N     int
}

// Feed is how an instance learns what happens in its rooms and to its
// users: a notice per stored entry (pub/sub: may be lost; the Q counter
// shows a loss and Read repairs it), ephemeral events and user events.
type Feed interface {
	// Attach sets the handler the feed calls from its own goroutines. It
	// must be called once, before Watch.
	Attach(h FeedHandler)
	// Watch starts the notices and events of room. It does not block; the
	// handler's Resync is called once they flow, and again after any
	// interruption. Unwatch stops them. Calls for one room take effect in
	// the order made.
	Watch(room string)
	Unwatch(room string)
	// WatchUser and UnwatchUser do the same for user's events.
	WatchUser(user string)
	UnwatchUser(user string)
	// UserReady returns a channel closed once user's events flow (at once
	// if they do), or once they are no longer watched.
	UserReady(user string) <-chan struct{}
	// Read returns, for each read, up to N entries after After, oldest
	// first.
	Read(ctx context.Context, reads []RoomRead) ([][]Entry, error)
	// Typing relays that user types in room to every instance, at most
	// once per every per user and room across instances.
	Typing(ctx context.Context, room, user string, every time.Duration) error
	// PublishUser sends a user event to every instance with that user's
	// sockets.
	PublishUser(ctx context.Context, ev UserEvent) error
	// Healthy reports why the feed cannot be trusted now, or nil.
	Healthy() error
}

// FeedHandler receives what a Feed delivers. Its methods are called from
// the feed's goroutines and must not block on clients.
type FeedHandler interface {
	// Notice hands over one entry just stored in a watched room.
	Notice(e *Entry)
	// Resync says that notices of room may have been lost (the watch just
	// started or was interrupted): read the room from its position.
	Resync(room string)
	// RoomEvent hands over an ephemeral event of a watched room.
	RoomEvent(ev Event)
	// UserEvent hands over an event of a watched user.
	UserEvent(ev UserEvent)
}

// Encoder turns entries and events into wire frames, once per entry for
// all local sessions. transport supplies it; engine never sees JSON.
type Encoder interface {
	Entry(e *Entry) []byte
	Event(ev Event) []byte
	UserEvent(ev UserEvent) []byte
	Kicked(room, reason string) []byte
}

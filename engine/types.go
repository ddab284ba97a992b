package engine

import (
	"context"
	"time"
)

// Kind says whether a room is a public channel or a private direct room.
type Kind string

// Room kinds, as the REST API names them.
const (
	KindChannel Kind = "channel"
	KindDirect  Kind = "direct"
)

// Message is one stored chat message.
type Message struct {
	ID       StreamPos
	Room     string
	User     string
	Text     string
	TS       int64 // server time, Unix milliseconds (the ID's millisecond part)
	ClientID string
	Seq      uint64 // the room's message counter at this message; 1 for the first
}

// EventKind names an ephemeral event carried over pub/sub.
type EventKind string

// Ephemeral event kinds. They are never stored.
const (
	EventTyping   EventKind = "typing"
	EventPresence EventKind = "presence"
	EventRead     EventKind = "read"
	EventRevoke   EventKind = "revoke" // Token holds the revoked token's ID; Room is empty
)

// Event is an ephemeral event: typing, a presence change, a read receipt,
// or a token revocation. It reaches the local sessions of Room whose user is
// not User.
type Event struct {
	Kind  EventKind
	Room  string
	User  string
	State string    // presence: "online" or "offline"
	ID    StreamPos // read: the position read up to
	Token string    // revoke: the token ID
}

// RoomSummary is a room as GET /api/rooms lists it for one user.
type RoomSummary struct {
	Name   string
	Kind   Kind
	LastID StreamPos
	Unread int64
}

// AppendRequest is one message to store.
type AppendRequest struct {
	Room     string
	User     string
	Text     string
	ClientID string // empty: no idempotency
	Now      time.Time
}

// AppendResult is what Append stored, or found stored under the same client ID.
type AppendResult struct {
	Message   Message
	Duplicate bool // the client ID was seen before; Message is the first send's
}

// Log is the durable, ordered history of rooms: one Redis stream per room.
type Log interface {
	// Append stores req atomically with its idempotency check, the user's
	// send-rate check, retention trimming and the room's counters, and
	// calls done exactly once, from another goroutine, with the result.
	// Calls from one goroutine for one room complete in the order made.
	// Errors: *RetryError (ErrRateLimited), ErrUnavailable.
	Append(req AppendRequest, done func(AppendResult, error))
	// Range returns up to n messages after pos (exclusive), oldest first.
	Range(ctx context.Context, room string, after StreamPos, n int) ([]Message, error)
	// RevRange returns up to n messages before pos (exclusive; the zero
	// position means the newest), newest first.
	RevRange(ctx context.Context, room string, before StreamPos, n int) ([]Message, error)
	// Last returns the newest message's position, or 0-0 for an empty room.
	Last(ctx context.Context, room string) (StreamPos, error)
	// Trimmed returns the highest position retention removed, 0-0 if none.
	Trimmed(ctx context.Context, room string) (StreamPos, error)
	// Get returns one message. Errors: ErrNotFound.
	Get(ctx context.Context, room string, id StreamPos) (Message, error)
}

// Tail reads new messages of many rooms at once. Rooms fall into a fixed set
// of shards; one Read covers rooms of one shard only, so in Redis Cluster a
// shard's streams share a hash slot.
type Tail interface {
	// Shards returns the number of shards, fixed for the life of the data.
	Shards() int
	// Shard returns room's shard, in [0, Shards()).
	Shard(room string) int
	// Read blocks up to block for messages after after[i] in rooms[i] (all
	// of one shard), returning them in stream order per room. It also
	// returns, with no messages, soon after Wake(shard) is called.
	Read(ctx context.Context, shard int, rooms []string, after []StreamPos, block time.Duration) ([]Message, error)
	// Wake makes a blocked Read of shard on this instance return.
	Wake(ctx context.Context, shard int) error
}

// TailCloser is an optional capability of a Tail: CloseTail ends blocked
// Reads at once; Engine.Close calls it.
type TailCloser interface {
	CloseTail() error
}

// Bus carries ephemeral events between instances (Redis pub/sub: at most
// once, never stored).
type Bus interface {
	// Subscribe starts delivering the events of rooms to Events.
	Subscribe(ctx context.Context, rooms ...string) error
	// Unsubscribe stops delivering the events of rooms.
	Unsubscribe(ctx context.Context, rooms ...string) error
	// Events returns the channel of incoming events, including revocations.
	Events() <-chan Event
	// Typing relays a typing event for user in room, at most once per
	// every across all instances.
	Typing(ctx context.Context, room, user string, every time.Duration) error
}

// Presence tracks who is online in which room, across instances, with an
// expiry so a dead instance's users go offline by themselves. State changes
// are published as EventPresence by the implementation.
type Presence interface {
	// Join marks users online in room from this instance until deadline and
	// returns everyone online in room.
	Join(ctx context.Context, room string, users []string, deadline time.Time) ([]string, error)
	// Online returns everyone online in room.
	Online(ctx context.Context, room string) ([]string, error)
	// Leave marks users as no longer online in room from this instance.
	Leave(ctx context.Context, room string, users []string) error
}

// Directory knows rooms and read positions.
type Directory interface {
	// Channels returns every channel's name.
	Channels(ctx context.Context) ([]string, error)
	// ChannelExists reports whether a channel exists.
	ChannelExists(ctx context.Context, name string) (bool, error)
	// CreateChannel creates a channel. Errors: ErrExists.
	CreateChannel(ctx context.Context, name string) error
	// UserExists reports whether a user is registered.
	UserExists(ctx context.Context, name string) (bool, error)
	// AddDirect lists the direct room in both members' room lists.
	AddDirect(ctx context.Context, room, a, b string) error
	// Directs returns the direct rooms of user.
	Directs(ctx context.Context, user string) ([]string, error)
	// Summaries returns last_id and unread of rooms for user, in order.
	Summaries(ctx context.Context, user string, rooms []string, kinds []Kind) ([]RoomSummary, error)
	// MarkJoined sets user's read position in room to its newest message
	// if user has none yet.
	MarkJoined(ctx context.Context, room, user string) error
	// MarkRead moves user's read position in room forward to the newest
	// message at or before id and reports the position now held. For a
	// direct room that moved, it publishes an EventRead.
	MarkRead(ctx context.Context, room, user string, id StreamPos, direct bool) (StreamPos, bool, error)
}

// JoinState is what a join needs from Redis: the room's newest position,
// who is online (after marking the joiner, if asked), and with since the
// highest trimmed position.
type JoinState struct {
	Last    StreamPos
	Online  []string
	Trimmed StreamPos
}

// JoinStater is an optional capability of the Log: everything a join reads
// and writes in one round trip. markOnline marks user online until
// deadline (as Presence.Join); markRead starts user's read position (as
// Directory.MarkJoined); withTrimmed reads Trimmed too. Without it, the
// engine makes the separate calls.
type JoinStater interface {
	JoinState(ctx context.Context, room, user string, markOnline, markRead, withTrimmed bool, deadline time.Time) (JoinState, error)
}

// Encoder turns messages and events into wire frames, once per message for
// all local sessions. transport supplies it; engine never sees JSON.
type Encoder interface {
	Message(m Message) []byte
	Event(ev Event) []byte
}

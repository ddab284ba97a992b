package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// Client frame types.
const (
	TypeJoin   = "join"
	TypeLeave  = "leave"
	TypeSend   = "send"
	TypeTyping = "typing"
	TypeRead   = "read"
	TypePing   = "ping"
	TypeAuth   = "auth"
	TypeEdit   = "edit"   // also a server frame: a message was edited
	TypeDelete = "delete" // also a server frame: a message was deleted
	TypeReact  = "react"
)

// Server frame types (TypeTyping and TypeRead are shared with the client).
const (
	TypeJoined      = "joined"
	TypeLeft        = "left"
	TypeAck         = "ack"
	TypePong        = "pong"
	TypeAuthed      = "authed"
	TypeError       = "error"
	TypeMessage     = "message"
	TypePresence    = "presence"
	TypeReaction    = "reaction"
	TypeRoom        = "room"
	TypeKicked      = "kicked"
	TypeRoomAdded   = "room_added"
	TypeRoomRemoved = "room_removed"
	TypeMention     = "mention"
)

// Error codes carried by error frames and REST error bodies. They are API:
// clients switch on them, so a new or changed code is a protocol change.
const (
	CodeInvalid     = "invalid"      // a field is missing or malformed (not retryable)
	CodeBadFrame    = "bad_frame"    // not JSON, not an object, or unknown type (not retryable)
	CodeForbidden   = "forbidden"    // no permission for the room (not retryable)
	CodeNotFound    = "not_found"    // the room or user does not exist (not retryable)
	CodeTooLarge    = "too_large"    // text or body over its limit (not retryable)
	CodeRateLimited = "rate_limited" // over a rate or count limit (retryable later)
	CodeUnavailable = "unavailable"  // Redis did not answer in time (retryable)
	CodeInternal    = "internal"     // a bug; the detail is in the server log (retryable)

	// REST-only codes.
	CodeUnauthorized       = "unauthorized"
	CodeInvalidCredentials = "invalid_credentials"
	CodeTooManyAttempts    = "too_many_attempts"
	CodeUsernameTaken      = "username_taken"
	CodeRoomExists         = "room_exists"
	CodeBanned             = "banned"
)

// WebSocket close codes used by the server (RFC 6455 numbers).
const (
	CloseGoingAway     = 1001 // server shutting down: reconnect and join with since
	CloseInvalidData   = 1007 // a text frame that is not valid UTF-8
	ClosePolicy        = 1008 // token expired or revoked
	CloseTooBig        = 1009 // frame over the frame limit
	CloseInternal      = 1011
	CloseSlowConsumer  = 1013 // client too slow: reconnect with since, nothing is lost
	MaxNestingDepth    = 32   // deeper JSON is refused before it is decoded
	BatchSeparator     = '\n'
	BatchQueryParam    = "batch"
	TokenQueryParam    = "token"
	DefaultHistorySize = 50
	MaxHistorySize     = 200
)

// ClientFrame is any frame a client sends. Which fields matter depends on
// Type; unknown fields are ignored for forward compatibility.
type ClientFrame struct {
	Type     string          `json:"type"`
	Ref      json.RawMessage `json:"ref,omitempty"`
	Room     string          `json:"room,omitempty"`
	Since    string          `json:"since,omitempty"`
	Text     string          `json:"text,omitempty"`
	ClientID string          `json:"client_id,omitempty"`
	ID       string          `json:"id,omitempty"`
	Token    string          `json:"token,omitempty"`
	ReplyTo  string          `json:"reply_to,omitempty"`
	Emoji    string          `json:"emoji,omitempty"`
	On       *bool           `json:"on,omitempty"`
}

// Joined answers join.
type Joined struct {
	Type      string          `json:"type"`
	Ref       json.RawMessage `json:"ref,omitempty"`
	Room      string          `json:"room"`
	LastID    string          `json:"last_id"`
	Online    []string        `json:"online"`
	Recovered *bool           `json:"recovered,omitempty"`
}

// Left answers leave.
type Left struct {
	Type string          `json:"type"`
	Ref  json.RawMessage `json:"ref,omitempty"`
	Room string          `json:"room"`
}

// Ack answers send once the message is stored, and edit, delete and react
// once the event is (ID is then the event's; a reaction that changed
// nothing is acked without an ID).
type Ack struct {
	Type     string          `json:"type"`
	Ref      json.RawMessage `json:"ref,omitempty"`
	Room     string          `json:"room"`
	ID       string          `json:"id,omitempty"`
	ClientID string          `json:"client_id,omitempty"`
}

// Pong answers ping.
type Pong struct {
	Type string          `json:"type"`
	Ref  json.RawMessage `json:"ref,omitempty"`
}

// Authed answers auth.
type Authed struct {
	Type      string          `json:"type"`
	Ref       json.RawMessage `json:"ref,omitempty"`
	ExpiresAt string          `json:"expires_at"`
}

// Error reports a problem with one frame; the connection stays open.
type Error struct {
	Type    string          `json:"type"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
	Ref     json.RawMessage `json:"ref,omitempty"`
}

// Message is a stored chat message. As a frame it carries Type "message"
// and is the message as sent; in history pages, single-message reads and
// replies Type is empty and omitted, and the message is in its current
// state (EditedTS, Deleted, Reactions, ReplyCount).
type Message struct {
	Type       string              `json:"type,omitempty"`
	ID         string              `json:"id"`
	Room       string              `json:"room"`
	User       string              `json:"user"`
	Text       string              `json:"text"`
	TS         int64               `json:"ts"`
	ClientID   string              `json:"client_id,omitempty"`
	ReplyTo    string              `json:"reply_to,omitempty"`
	Mentions   []string            `json:"mentions,omitempty"`
	EditedTS   int64               `json:"edited_ts,omitempty"`
	Deleted    bool                `json:"deleted,omitempty"`
	Reactions  map[string][]string `json:"reactions,omitempty"`
	ReplyCount int                 `json:"reply_count,omitempty"`
}

// Edit says message Target now reads Text; ID is the event's own stream ID.
type Edit struct {
	Type   string `json:"type"`
	Room   string `json:"room"`
	ID     string `json:"id"`
	Target string `json:"target"`
	User   string `json:"user"`
	Text   string `json:"text"`
	TS     int64  `json:"ts"`
}

// Delete says message Target was deleted by User.
type Delete struct {
	Type   string `json:"type"`
	Room   string `json:"room"`
	ID     string `json:"id"`
	Target string `json:"target"`
	User   string `json:"user"`
	TS     int64  `json:"ts"`
}

// Reaction says User added (On) or removed Emoji on message Target.
type Reaction struct {
	Type   string `json:"type"`
	Room   string `json:"room"`
	ID     string `json:"id"`
	Target string `json:"target"`
	User   string `json:"user"`
	Emoji  string `json:"emoji"`
	On     bool   `json:"on"`
	TS     int64  `json:"ts"`
}

// RoomTopic says the room's topic changed (not stored in the stream).
type RoomTopic struct {
	Type  string `json:"type"`
	Room  string `json:"room"`
	Topic string `json:"topic"`
	User  string `json:"user"`
}

// Kicked says the socket is no longer in the room and gets nothing more of it.
type Kicked struct {
	Type   string `json:"type"`
	Room   string `json:"room"`
	Reason string `json:"reason"` // "removed" or "banned"
}

// RoomAdded is a user event: a room was opened with the user or the user
// was added to it.
type RoomAdded struct {
	Type string `json:"type"`
	Room string `json:"room"`
	Kind string `json:"kind"`
}

// RoomRemoved is a user event: the user was removed or banned from a room.
type RoomRemoved struct {
	Type   string `json:"type"`
	Room   string `json:"room"`
	Reason string `json:"reason"`
}

// Mention is a user event: a message in Room by User names the user, who
// has no socket joined to Room.
type Mention struct {
	Type string `json:"type"`
	Room string `json:"room"`
	ID   string `json:"id"`
	User string `json:"user"`
	Text string `json:"text"`
}

// Presence says a user came online in a room or went offline.
type Presence struct {
	Type  string `json:"type"`
	Room  string `json:"room"`
	User  string `json:"user"`
	State string `json:"state"` // "online" or "offline"
}

// Typing says a user is typing in a room.
type Typing struct {
	Type string `json:"type"`
	Room string `json:"room"`
	User string `json:"user"`
}

// Read says a user has read a room up to ID.
type Read struct {
	Type string `json:"type"`
	Room string `json:"room"`
	User string `json:"user"`
	ID   string `json:"id"`
}

// Presence states.
const (
	StateOnline  = "online"
	StateOffline = "offline"
)

// DecodeError is returned by Decode; Code is CodeBadFrame or CodeInvalid.
type DecodeError struct {
	Code string
	Msg  string
}

func (e *DecodeError) Error() string { return e.Code + ": " + e.Msg }

// ErrInvalidUTF8 is returned by Decode for a payload that is not UTF-8;
// RFC 6455 requires closing the connection with CloseInvalidData.
var ErrInvalidUTF8 = errors.New("wire: text frame is not valid UTF-8")

var knownTypes = map[string]bool{
	TypeJoin: true, TypeLeave: true, TypeSend: true, TypeTyping: true,
	TypeRead: true, TypePing: true, TypeAuth: true, TypeEdit: true,
	TypeDelete: true, TypeReact: true,
}

// Decode parses one client frame. It returns ErrInvalidUTF8, or a
// *DecodeError with CodeBadFrame (not JSON, not an object, too deeply
// nested, unknown type) or CodeInvalid (a known field of the wrong JSON
// type). When a *DecodeError carries CodeInvalid the returned frame holds
// what could be decoded, so the reply can still echo its ref.
func Decode(p []byte) (ClientFrame, error) {
	var f ClientFrame
	if !utf8.Valid(p) {
		return f, ErrInvalidUTF8
	}
	if err := checkShape(p); err != nil {
		return f, err
	}
	err := json.Unmarshal(p, &f)
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
	case errors.As(err, &typeErr):
		if typeErr.Field == "type" || !knownTypes[f.Type] {
			return f, &DecodeError{Code: CodeBadFrame, Msg: "type must be a known frame type"}
		}
		return f, &DecodeError{Code: CodeInvalid, Msg: "field " + typeErr.Field + " has the wrong type"}
	default:
		return f, &DecodeError{Code: CodeBadFrame, Msg: "frame is not valid JSON"}
	}
	if len(f.Ref) > 256 {
		f.Ref = nil
		return f, &DecodeError{Code: CodeInvalid, Msg: "ref is longer than 256 bytes"}
	}
	if !knownTypes[f.Type] {
		return f, &DecodeError{Code: CodeBadFrame, Msg: "unknown frame type"}
	}
	return f, nil
}

// checkShape refuses, without decoding, anything that is not a JSON object
// or nests deeper than MaxNestingDepth, so hostile input costs one pass.
func checkShape(p []byte) error {
	p = bytes.TrimLeft(p, " \t\r\n")
	if len(p) == 0 || p[0] != '{' {
		return &DecodeError{Code: CodeBadFrame, Msg: "frame must be a JSON object"}
	}
	depth, inString, escaped := 0, false, false
	for _, b := range p {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case b == '\\':
				escaped = true
			case b == '"':
				inString = false
			}
		case b == '"':
			inString = true
		case b == '{' || b == '[':
			depth++
			if depth > MaxNestingDepth {
				return &DecodeError{Code: CodeBadFrame, Msg: "frame nests too deeply"}
			}
		case b == '}' || b == ']':
			depth--
		}
	}
	return nil
}

// Encode marshals a server frame. Frames hold only strings, numbers and
// slices of strings, so it cannot fail for the types of this package.
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("wire: encode " + err.Error())
	}
	return b
}

// CheckJSONObject reports, without decoding, whether p looks like a JSON
// object nested no deeper than MaxNestingDepth; REST bodies use it.
func CheckJSONObject(p []byte) error { return checkShape(p) }

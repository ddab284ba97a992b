package engine

import "errors"

// Sentinel errors. Adapters wrap them with detail (fmt.Errorf("room %s: %w",
// name, ErrNotFound)); transport maps each to an HTTP status, a wire error
// code and, where it ends a connection, a WebSocket close code.
var (
	// ErrNotFound means the room, user or message does not exist.
	ErrNotFound = errors.New("not found")
	// ErrForbidden means the user may not do that in the room.
	ErrForbidden = errors.New("forbidden")
	// ErrInvalid means a name, cursor, text or field is malformed.
	ErrInvalid = errors.New("invalid")
	// ErrExists means a room or user of that name already exists.
	ErrExists = errors.New("already exists")
	// ErrBanned means the user is banned from the room (adding them is refused).
	ErrBanned = errors.New("banned")
	// ErrLastOwner means the change would leave a room without an owner.
	ErrLastOwner = errors.New("a room keeps at least one owner")
	// ErrTooLarge means text over the message limit.
	ErrTooLarge = errors.New("too large")
	// ErrRateLimited means the user is over a rate or count limit; see RetryError.
	ErrRateLimited = errors.New("rate limited")
	// ErrUnavailable means Redis did not answer in time; the call may be retried.
	ErrUnavailable = errors.New("unavailable")
	// ErrSlowConsumer ends a session whose client does not read fast enough.
	ErrSlowConsumer = errors.New("client too slow")
	// ErrRevoked ends a session whose token was revoked or expired.
	ErrRevoked = errors.New("token revoked or expired")
	// ErrShutdown ends sessions when the instance stops.
	ErrShutdown = errors.New("server shutting down")
)

// RetryError is an ErrRateLimited with the time after which a retry can succeed.
type RetryError struct {
	After  int64 // milliseconds
	Reason string
}

func (e *RetryError) Error() string { return "rate limited: " + e.Reason }

// Unwrap makes errors.Is(err, ErrRateLimited) true.
func (e *RetryError) Unwrap() error { return ErrRateLimited }

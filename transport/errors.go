package transport

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/transport/wire"
)

// Errors the transport decides itself, each a row of errorTable (which
// fills in its status and code). Return one as it is, or with the words
// of one occurrence: errorf(errNameTaken, "username %s is taken", name).
var (
	// errUnauthorized: no token, or one that is malformed, expired or revoked.
	errUnauthorized = &apiError{Message: "missing, invalid, expired or revoked token"}
	// errBadCredentials: a login of an unknown user or with a wrong
	// password, one answer for both.
	errBadCredentials = &apiError{Message: "wrong username or password"}
	// errTooManyAttempts: a login past the failed-login limits.
	errTooManyAttempts = &apiError{Message: "too many failed logins; retry later"}
	// errNameTaken: a new user of a name that exists (ignoring case).
	errNameTaken = &apiError{Message: "username is taken"}
	// errBodyTooLarge: a REST body over Options.MaxBody.
	errBodyTooLarge = &apiError{Message: "request body is too large"}
	// errHashBusy: every password-hash slot and waiting place is taken.
	errHashBusy = &apiError{Message: "too many password checks at once; retry shortly", Retry: 1}

	// Why the gateway ends a socket, besides the engine's kicks and the
	// library's ErrMessageTooBig.
	errExpired     = errors.New("token expired")
	errInvalidUTF8 = errors.New("text frame is not valid UTF-8")
)

// errorRow is what a client is told of one sentinel error.
type errorRow struct {
	err    error                // the sentinel: a row is for every error that errors.Is it
	status int                  // the REST status
	code   string               // the wire code, in REST bodies and error frames
	retry  bool                 // the same request may succeed later
	close  websocket.StatusCode // the close code when it ends a socket; 0: it never does
	reason string               // the close frame's reason
	hide   bool                 // its words may name Redis: clients get hiddenMessage
}

const hiddenMessage = "service unavailable, retry shortly"

// errorTable is the one place that decides what a client is told of an
// error: the REST status and body (Echo's error handler, toAPI), the code
// of an error frame (the gateway's fail) and the close code of a socket
// (closeOf). The first row whose sentinel the error is (errors.Is) wins;
// an error of no row is a 500 "internal error", or a 1011 close, and its
// detail goes only to the log. The codes are PROTOCOL.md's: changing one
// is a change of the contract.
var errorTable = withSentinels([]errorRow{
	// The engine's sentinels (engine/errors.go); a test fails when one
	// has no row.
	{err: engine.ErrInvalid, status: http.StatusBadRequest, code: wire.CodeInvalid},
	{err: engine.ErrForbidden, status: http.StatusForbidden, code: wire.CodeForbidden},
	{err: engine.ErrLastOwner, status: http.StatusForbidden, code: wire.CodeForbidden},
	{err: engine.ErrBanned, status: http.StatusConflict, code: wire.CodeBanned},
	{err: engine.ErrNotFound, status: http.StatusNotFound, code: wire.CodeNotFound},
	// The engine returns ErrExists for rooms only (CreateRoom; the REST
	// AddMember treats "already a member" as done); a taken username is
	// errNameTaken.
	{err: engine.ErrExists, status: http.StatusConflict, code: wire.CodeRoomExists},
	{err: engine.ErrTooLarge, status: http.StatusRequestEntityTooLarge, code: wire.CodeTooLarge},
	// A *engine.RetryError adds Retry-After.
	{err: engine.ErrRateLimited, status: http.StatusTooManyRequests, code: wire.CodeRateLimited, retry: true},
	{err: engine.ErrUnavailable, status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, retry: true, hide: true},
	{err: engine.ErrShutdown, status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, retry: true, hide: true,
		close: wire.CloseGoingAway, reason: "server going away; reconnect and join with since"},
	// Kicks: they end a socket. The status and code are for completeness;
	// no request is answered with them.
	{err: engine.ErrSlowConsumer, status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, retry: true,
		close: wire.CloseSlowConsumer, reason: "too slow to keep up; reconnect and join with since"},
	{err: engine.ErrRevoked, status: http.StatusUnauthorized, code: wire.CodeUnauthorized,
		close: wire.ClosePolicy, reason: "token revoked"},

	// The transport's own.
	{err: errUnauthorized, status: http.StatusUnauthorized, code: wire.CodeUnauthorized},
	{err: errBadCredentials, status: http.StatusUnauthorized, code: wire.CodeInvalidCredentials},
	{err: errTooManyAttempts, status: http.StatusTooManyRequests, code: wire.CodeTooManyAttempts, retry: true},
	{err: errNameTaken, status: http.StatusConflict, code: wire.CodeUsernameTaken},
	{err: errBodyTooLarge, status: http.StatusRequestEntityTooLarge, code: wire.CodeTooLarge},
	{err: errHashBusy, status: http.StatusServiceUnavailable, code: wire.CodeUnavailable, retry: true},
	{err: errExpired, status: http.StatusUnauthorized, code: wire.CodeUnauthorized,
		close: wire.ClosePolicy, reason: "token expired"},
	{err: errInvalidUTF8, status: http.StatusBadRequest, code: wire.CodeInvalid,
		close: wire.CloseInvalidData, reason: "text frame is not valid UTF-8"},

	// The libraries'. Echo's router answers a path of no route with
	// ErrNotFound and a method of none with ErrMethodNotAllowed; other
	// Echo errors take the code of the first row of their status.
	{err: echo.ErrNotFound, status: http.StatusNotFound, code: wire.CodeNotFound},
	{err: echo.ErrMethodNotAllowed, status: http.StatusMethodNotAllowed, code: wire.CodeInvalid},
	{err: websocket.ErrMessageTooBig, status: http.StatusRequestEntityTooLarge, code: wire.CodeTooLarge,
		close: wire.CloseTooBig, reason: "frame too large"},
})

// withSentinels gives the transport's sentinels in rows their status and
// code, so that they can be written as they are.
func withSentinels(rows []errorRow) []errorRow {
	for _, r := range rows {
		if a, ok := r.err.(*apiError); ok {
			a.Status, a.Code, a.Temporary = r.status, r.code, r.retry
		}
	}
	return rows
}

// rowOf returns the first row whose sentinel err is, or nil.
func rowOf(err error) *errorRow {
	for i := range errorTable {
		if errors.Is(err, errorTable[i].err) {
			return &errorTable[i]
		}
	}
	return nil
}

// apiError is what a client is told of an error, as the table decides.
// Values made by errorf also carry the sentinel (Unwrap), so errors.Is
// sees through them.
type apiError struct {
	Status    int
	Code      string
	Message   string
	Retry     int64 // Retry-After seconds; 0: none
	Temporary bool  // the same request may succeed later
	cause     error
}

func (e *apiError) Error() string {
	if e.cause == nil {
		return e.Message
	}
	return e.Message + ": " + e.cause.Error()
}

func (e *apiError) Unwrap() error { return e.cause }

// errorf is sentinel, a row of the table, told with the message
// fmt.Sprintf(format, args...).
func errorf(sentinel error, format string, args ...any) *apiError {
	a := *toAPI(sentinel)
	a.Message, a.cause = fmt.Sprintf(format, args...), sentinel
	return &a
}

func internalError() *apiError {
	return &apiError{Status: http.StatusInternalServerError, Code: wire.CodeInternal, Message: "internal error", Temporary: true}
}

// toAPI is what a client is told of err: the answer of err's row, with
// the message of human; a *engine.RetryError's reason and Retry-After;
// for Echo's errors the status text. Anything else is a 500 "internal
// error".
func toAPI(err error) *apiError {
	var a *apiError
	if errors.As(err, &a) && a.Status != 0 {
		return a
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return &apiError{Status: he.Code, Code: httpCode(he), Message: http.StatusText(he.Code)}
	}
	r := rowOf(err)
	if r == nil {
		return internalError()
	}
	a = &apiError{Status: r.status, Code: r.code, Message: human(err, r), Temporary: r.retry, cause: r.err}
	var re *engine.RetryError
	if errors.As(err, &re) {
		a.Retry = max(1, (re.After+999)/1000)
		a.Message = re.Reason
	}
	return a
}

// httpCode is the wire code of an Echo error: its row's, else that of the
// first row of its status, else internal.
func httpCode(he *echo.HTTPError) string {
	if r := rowOf(he); r != nil {
		return r.code
	}
	for _, r := range errorTable {
		if r.status == he.Code {
			return r.code
		}
	}
	return wire.CodeInternal
}

// human is what a client is told of err, of row r: err's words without
// the sentinel's that end them, which only repeat the code ("password
// must be 8 to 256 characters: invalid" is told "password must be 8 to
// 256 characters"). When the rest only names what the error is about,
// the sentinel's words are the sentence and stay ("room x: not found",
// "room x: a room keeps at least one owner"). Rows that hide their words
// tell hiddenMessage.
func human(err error, r *errorRow) string {
	if r.hide {
		return hiddenMessage
	}
	msg := err.Error()
	words, ok := strings.CutSuffix(msg, ": "+r.err.Error())
	if !ok || namesOnly(words) {
		return msg
	}
	return words
}

// namesOnly reports whether s is a kind and a name, such as `room x` or
// `user "bob"`, and no more.
func namesOnly(s string) bool {
	kind, name, ok := strings.Cut(s, " ")
	if !ok || kind == "" || name == "" {
		return false
	}
	if _, err := strconv.Unquote(name); err == nil && name[0] == '"' {
		return true
	}
	return !strings.Contains(name, " ")
}

// closeOf is the close code and reason of a socket that ends with err:
// those of err's row, else 1011 "internal error".
func closeOf(err error) (websocket.StatusCode, string) {
	if r := rowOf(err); r != nil && r.close != 0 {
		return r.close, r.reason
	}
	return wire.CloseInternal, "internal error"
}

func retryAfter(h http.Header, a *apiError) {
	if a.Retry > 0 {
		h.Set("Retry-After", strconv.FormatInt(a.Retry, 10))
	}
}

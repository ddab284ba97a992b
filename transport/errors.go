package transport

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/transport/wire"
)

// apiError is an error with its REST status and wire code decided.
type apiError struct {
	Status  int
	Code    string
	Message string
	Retry   int64 // Retry-After seconds, for 429
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newAPIError(status int, code, msg string) *apiError {
	return &apiError{Status: status, Code: code, Message: msg}
}

// codes maps engine sentinels to REST statuses and wire codes, in order:
// the first match wins. Anything unmapped is a 500 "internal error"; its
// detail goes only to the log.
var codes = []struct {
	err    error
	status int
	code   string
}{
	{engine.ErrInvalid, http.StatusBadRequest, wire.CodeInvalid},
	{engine.ErrForbidden, http.StatusForbidden, wire.CodeForbidden},
	{engine.ErrLastOwner, http.StatusForbidden, wire.CodeForbidden},
	{engine.ErrBanned, http.StatusConflict, wire.CodeBanned},
	{engine.ErrNotFound, http.StatusNotFound, wire.CodeNotFound},
	{engine.ErrTooLarge, http.StatusRequestEntityTooLarge, wire.CodeTooLarge},
	{engine.ErrRateLimited, http.StatusTooManyRequests, wire.CodeRateLimited},
	{engine.ErrUnavailable, http.StatusServiceUnavailable, wire.CodeUnavailable},
	{engine.ErrShutdown, http.StatusServiceUnavailable, wire.CodeUnavailable},
}

// toAPI classifies err. The message shown to clients is err's text for
// mapped errors (they describe the client's mistake) and "internal error"
// otherwise.
func toAPI(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			a := &apiError{Status: c.status, Code: c.code, Message: publicMessage(err, c.err)}
			var re *engine.RetryError
			if errors.As(err, &re) {
				a.Retry = max(1, (re.After+999)/1000)
				a.Message = re.Reason
			}
			return a
		}
	}
	return &apiError{Status: http.StatusInternalServerError, Code: wire.CodeInternal, Message: "internal error"}
}

// publicMessage hides Redis detail from unavailable errors.
func publicMessage(err, sentinel error) string {
	if sentinel == engine.ErrUnavailable || sentinel == engine.ErrShutdown {
		return "service unavailable, retry shortly"
	}
	return err.Error()
}

func retryAfter(h http.Header, a *apiError) {
	if a.Retry > 0 {
		h.Set("Retry-After", strconv.FormatInt(a.Retry, 10))
	}
}

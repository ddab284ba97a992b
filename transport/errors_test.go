package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/storetest"
	"github.com/redstream/chat/transport/wire"
)

// TestEveryEngineSentinelHasARow fails when an exported Err… variable of
// the engine package, or a sentinel declared in errors.go, is not the
// error of a row of errorTable: it would reach clients as a 500.
func TestEveryEngineSentinelHasARow(t *testing.T) {
	t.Parallel()
	inTable := tableSentinels(t)

	files, err := filepath.Glob("../engine/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("engine sources: %v %v", files, err)
	}
	var sentinels []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		for _, name := range errVars(t, f, "Err", func(string) bool { return true }) {
			sentinels = append(sentinels, "engine."+name)
		}
	}
	if !slices.Contains(sentinels, "engine.ErrNotFound") {
		t.Fatalf("found no engine.ErrNotFound among %v: the parse is broken", sentinels)
	}
	// The transport's own: the *apiError values declared in errors.go.
	for _, name := range errVars(t, "errors.go", "err", func(expr string) bool { return strings.HasPrefix(expr, "&apiError{") }) {
		sentinels = append(sentinels, name)
	}
	for _, s := range sentinels {
		if !inTable[s] {
			t.Errorf("%s has no row in errorTable (transport/errors.go): clients would get 500 internal for it", s)
		}
	}
	for _, r := range errorTable {
		if r.err == nil || r.status == 0 || r.code == "" || (r.close != 0) != (r.reason != "") {
			t.Errorf("row %+v is incomplete", r)
		}
	}
}

// errVars returns the variables named prefix… declared in file whose
// value's source keep accepts.
func errVars(tb testing.TB, file, prefix string, keep func(expr string) bool) []string {
	tb.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, src, 0)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.VAR {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, prefix) || i >= len(vs.Values) {
					continue
				}
				v := vs.Values[i]
				if keep(string(src[fset.Position(v.Pos()).Offset:fset.Position(v.End()).Offset])) {
					names = append(names, n.Name)
				}
			}
		}
	}
	return names
}

// tableSentinels returns the sentinels named in errorTable's literal, as
// written there ("engine.ErrNotFound", "errUnauthorized").
func tableSentinels(tb testing.TB) map[string]bool {
	tb.Helper()
	src, err := os.ReadFile("errors.go")
	if err != nil {
		tb.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "errors.go", src, 0)
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "errorTable" {
			return true
		}
		ast.Inspect(vs, func(n ast.Node) bool {
			kv, ok := n.(*ast.KeyValueExpr)
			if !ok {
				return true
			}
			if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "err" {
				out[string(src[fset.Position(kv.Value.Pos()).Offset:fset.Position(kv.Value.End()).Offset])] = true
			}
			return true
		})
		return false
	})
	if len(out) != len(errorTable) {
		tb.Fatalf("found %d sentinels in errorTable's source, it has %d rows: %v", len(out), len(errorTable), out)
	}
	return out
}

// errLog is a logger of warnings and errors to tb.
func errLog(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(errLogWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type errLogWriter struct{ tb testing.TB }

func (w errLogWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// rowCase is one row of the error table as PROTOCOL.md has it, written
// out here so that a change of the table shows as a failing test.
type rowCase struct {
	err    error
	status int
	code   string
	retry  bool
	close  websocket.StatusCode // 0: it does not close a socket (closeOf says 1011)
}

var rowCases = []rowCase{
	{engine.ErrInvalid, 400, "invalid", false, 0},
	{engine.ErrForbidden, 403, "forbidden", false, 0},
	{engine.ErrLastOwner, 403, "forbidden", false, 0},
	{engine.ErrBanned, 409, "banned", false, 0},
	{engine.ErrNotFound, 404, "not_found", false, 0},
	{engine.ErrExists, 409, "room_exists", false, 0},
	{engine.ErrTooLarge, 413, "too_large", false, 0},
	{engine.ErrRateLimited, 429, "rate_limited", true, 0},
	{engine.ErrUnavailable, 503, "unavailable", true, 0},
	{engine.ErrShutdown, 503, "unavailable", true, 1001},
	{engine.ErrSlowConsumer, 503, "unavailable", true, 1013},
	{engine.ErrRevoked, 401, "unauthorized", false, 1008},
	{errUnauthorized, 401, "unauthorized", false, 0},
	{errBadCredentials, 401, "invalid_credentials", false, 0},
	{errTooManyAttempts, 429, "too_many_attempts", true, 0},
	{errNameTaken, 409, "username_taken", false, 0},
	{errBodyTooLarge, 413, "too_large", false, 0},
	{errHashBusy, 503, "unavailable", true, 0},
	{errExpired, 401, "unauthorized", false, 1008},
	{errInvalidUTF8, 400, "invalid", false, 1007},
	{echo.ErrNotFound, 404, "not_found", false, 0},
	{echo.ErrMethodNotAllowed, 405, "invalid", false, 0},
	{websocket.ErrMessageTooBig, 413, "too_large", false, 1009},
}

// errorEcho is an Echo with the server's error handler whose route
// /fail/:i fails with fail(i).
func errorEcho(tb testing.TB, fail func(i int) error) *httptest.Server {
	tb.Helper()
	s := &Server{log: errLog(tb)}
	e := echo.New()
	e.HTTPErrorHandler = s.handleError
	e.GET("/fail/:i", func(c echo.Context) error {
		var i int
		fmt.Sscan(c.Param("i"), &i)
		return fail(i)
	})
	hs := httptest.NewServer(e)
	tb.Cleanup(hs.Close)
	return hs
}

type errAnswer struct {
	status  int
	header  http.Header
	code    string
	message string
}

func errCall(tb testing.TB, method, url, token string, body []byte) errAnswer {
	tb.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	a := errAnswer{status: res.StatusCode, header: res.Header}
	if res.StatusCode >= 400 {
		var e struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(data, &e); err != nil || e.Error.Code == "" {
			tb.Fatalf("%s %s: %d %s is not {\"error\":{…}}", method, url, res.StatusCode, data)
		}
		a.code, a.message = e.Error.Code, e.Error.Message
	}
	return a
}

// TestErrorTableRows sends every row's sentinel, wrapped as adapters
// wrap them, through Echo and the server's error handler, and checks the
// status, code, message and Retry-After a client gets, the row's retry
// mark and its close code.
func TestErrorTableRows(t *testing.T) {
	t.Parallel()
	if len(rowCases) != len(errorTable) {
		t.Fatalf("%d cases for %d rows: every row needs a case", len(rowCases), len(errorTable))
	}
	wrapped := func(i int) error {
		if _, ok := rowCases[i].err.(*apiError); ok {
			return rowCases[i].err
		}
		return fmt.Errorf("case %d has detail: %w", i, rowCases[i].err)
	}
	hs := errorEcho(t, wrapped)
	for i, tc := range rowCases {
		t.Run(fmt.Sprint(tc.err), func(t *testing.T) {
			if r := rowOf(tc.err); r == nil || r.err != tc.err {
				t.Fatalf("row of %v is %+v, want its own", tc.err, r)
			}
			a := errCall(t, "GET", fmt.Sprintf("%s/fail/%d", hs.URL, i), "", nil)
			if a.status != tc.status || a.code != tc.code {
				t.Errorf("REST: %d %s, want %d %s", a.status, a.code, tc.status, tc.code)
			}
			wantMsg := fmt.Sprintf("case %d has detail", i)
			switch {
			case tc.err == errHashBusy, tc.err == errUnauthorized, tc.err == errBadCredentials,
				tc.err == errTooManyAttempts, tc.err == errNameTaken, tc.err == errBodyTooLarge:
				wantMsg = tc.err.(*apiError).Message
			case tc.err == engine.ErrUnavailable || tc.err == engine.ErrShutdown:
				wantMsg = hiddenMessage
			case tc.err == echo.ErrNotFound || tc.err == echo.ErrMethodNotAllowed:
				wantMsg = http.StatusText(tc.status)
			}
			if a.message != wantMsg {
				t.Errorf("message %q, want %q", a.message, wantMsg)
			}
			wantRetryAfter := ""
			if tc.err == errHashBusy {
				wantRetryAfter = "1"
			}
			if got := a.header.Get("Retry-After"); got != wantRetryAfter {
				t.Errorf("Retry-After %q, want %q", got, wantRetryAfter)
			}
			if got := toAPI(wrapped(i)).Temporary; got != tc.retry {
				t.Errorf("retry %v, want %v", got, tc.retry)
			}
			wantClose := tc.close
			if wantClose == 0 {
				wantClose = wire.CloseInternal
			}
			if got, why := closeOf(fmt.Errorf("ended: %w", tc.err)); got != wantClose || why == "" {
				t.Errorf("close %d %q, want %d", got, why, wantClose)
			}
		})
	}
}

// TestErrorAnswers checks what the error handler makes of errors that are
// not a bare row: a retry time, Redis detail, an error of no row and an
// occurrence's own words.
func TestErrorAnswers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		err        error
		status     int
		code       string
		message    string
		retryAfter string
	}{
		{"a retry time", fmt.Errorf("send: %w", &engine.RetryError{After: 1500, Reason: "slow down"}), 429, "rate_limited", "slow down", "2"},
		{"redis detail", fmt.Errorf("%w: dial tcp 10.1.2.3:6379: connection refused", engine.ErrUnavailable), 503, "unavailable", hiddenMessage, ""},
		{"no row", errors.New("store: xadd chat:{r}:s: WRONGTYPE"), 500, "internal", "internal error", ""},
		{"a code at the end", fmt.Errorf("password must be 8 to 256 characters: %w", engine.ErrInvalid), 400, "invalid", "password must be 8 to 256 characters", ""},
		{"a sentence with a reason", fmt.Errorf("room launch: you are muted there: %w", engine.ErrForbidden), 403, "forbidden", "room launch: you are muted there", ""},
		{"only a name", fmt.Errorf("room nope: %w", engine.ErrNotFound), 404, "not_found", "room nope: not found", ""},
		{"only a quoted name", fmt.Errorf("user %q: %w", "x y", engine.ErrNotFound), 404, "not_found", `user "x y": not found`, ""},
		{"the sentinel's words", fmt.Errorf("room team: %w", engine.ErrLastOwner), 403, "forbidden", "room team: a room keeps at least one owner", ""},
		{"the bare sentinel", engine.ErrInvalid, 400, "invalid", "invalid", ""},
		{"errorf", errorf(engine.ErrInvalid, "limit must be a whole number from 1 to %d", 500), 400, "invalid", "limit must be a whole number from 1 to 500", ""},
		{"errorf wrapped", fmt.Errorf("more: %w", errorf(errNameTaken, "username %s is taken", "bob")), 409, "username_taken", "username bob is taken", ""},
		{"errorf of echo", errorf(echo.ErrNotFound, "no such API route"), 404, "not_found", "no such API route", ""},
		{"another echo error", echo.NewHTTPError(http.StatusRequestEntityTooLarge), 413, "too_large", "Request Entity Too Large", ""},
		{"an echo error of no row", echo.NewHTTPError(http.StatusTeapot), 418, "internal", "I'm a teapot", ""},
	}
	hs := errorEcho(t, func(i int) error { return cases[i].err })
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := errCall(t, "GET", fmt.Sprintf("%s/fail/%d", hs.URL, i), "", nil)
			if a.status != tc.status || a.code != tc.code || a.message != tc.message {
				t.Errorf("%d %s %q, want %d %s %q", a.status, a.code, a.message, tc.status, tc.code, tc.message)
			}
			if got := a.header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
		})
	}
	// What the sentinels of errorf answers are still is.
	if err := errorf(engine.ErrInvalid, "x"); !errors.Is(err, engine.ErrInvalid) {
		t.Errorf("errorf(ErrInvalid) is not ErrInvalid")
	}
}

// TestErrorsOfRoutes checks representative failures of real routes, on a
// server with an engine and a store, and Echo's own 404 and 405.
func TestErrorsOfRoutes(t *testing.T) {
	t.Parallel()
	base := errorsServer(t)
	post := func(path, token string, body any) errAnswer {
		t.Helper()
		b, _ := json.Marshal(body)
		return errCall(t, "POST", base+path, token, b)
	}
	if a := post("/api/register", "", map[string]string{"username": "alice", "password": "password-alice"}); a.status != 201 {
		t.Fatalf("register alice: %d %s", a.status, a.message)
	}
	if a := post("/api/register", "", map[string]string{"username": "bob", "password": "password-bob"}); a.status != 201 {
		t.Fatalf("register bob: %d %s", a.status, a.message)
	}
	var tok struct{ Token string }
	loginRes, _ := http.Post(base+"/api/login", "application/json", strings.NewReader(`{"username":"alice","password":"password-alice"}`))
	if err := json.NewDecoder(loginRes.Body).Decode(&tok); err != nil || tok.Token == "" {
		t.Fatalf("login: %d %v", loginRes.StatusCode, err)
	}
	loginRes.Body.Close()
	alice := tok.Token
	if a := post("/api/rooms", alice, map[string]string{"name": "team"}); a.status != 201 {
		t.Fatalf("create team: %d %s", a.status, a.message)
	}
	if a := post("/api/rooms/team/bans", alice, map[string]string{"user": "bob"}); a.status != 201 {
		t.Fatalf("ban bob: %d %s", a.status, a.message)
	}

	cases := []struct {
		name, method, path string
		token              string
		body               string
		status             int
		code, message      string
	}{
		{"short password", "POST", "/api/register", "", `{"username":"carol","password":"short"}`, 400, "invalid", "password must be 8 to 256 characters"},
		{"bad username", "POST", "/api/register", "", `{"username":"c","password":"password-carol"}`, 400, "invalid", "username must be 3 to 32 characters"},
		{"taken username", "POST", "/api/register", "", `{"username":"Alice","password":"password-alice"}`, 409, "username_taken", "username alice is taken"},
		{"not an object", "POST", "/api/register", "", `[1]`, 400, "invalid", "request body must be a JSON object"},
		{"body too large", "POST", "/api/register", "", `{"username":"` + strings.Repeat("a", 2000) + `"}`, 413, "too_large", "request body is too large"},
		{"wrong password", "POST", "/api/login", "", `{"username":"alice","password":"wrong-password"}`, 401, "invalid_credentials", "wrong username or password"},
		{"no token", "GET", "/api/me", "", "", 401, "unauthorized", "missing, invalid, expired or revoked token"},
		{"bad token", "GET", "/api/me", "nonsense", "", 401, "unauthorized", "missing, invalid, expired or revoked token"},
		{"room exists", "POST", "/api/rooms", alice, `{"name":"general"}`, 409, "room_exists", "room general exists"},
		{"bad room name", "POST", "/api/rooms", alice, `{"name":"No Spaces"}`, 400, "invalid", "room name may hold only lowercase letters, digits, '_' and '-'"},
		{"no such room", "GET", "/api/rooms/nope/messages", alice, "", 404, "not_found", "room nope: not found"},
		{"bad limit", "GET", "/api/rooms/general/messages?limit=0", alice, "", 400, "invalid", "limit must be a whole number from 1 to 200"},
		{"no such message", "GET", "/api/rooms/general/messages/x", alice, "", 404, "not_found", "no such message"},
		{"banned", "POST", "/api/rooms/team/members", alice, `{"user":"bob"}`, 409, "banned", "bob is banned from team"},
		{"last owner", "PUT", "/api/rooms/team/members/alice", alice, `{"role":"member"}`, 403, "forbidden", "room team: a room keeps at least one owner"},
		{"no API route", "GET", "/api/nope", alice, "", 404, "not_found", "no such API route"},
		{"server API off", "POST", "/api/server/users", "", `{}`, 404, "not_found", "the server API is off (no API keys are configured)"},
		{"echo: no route", "GET", "/nope", "", "", 404, "not_found", "Not Found"},
		{"echo: no such method", "POST", "/healthz", "", "", 405, "invalid", "Method Not Allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := errCall(t, tc.method, base+tc.path, tc.token, []byte(tc.body))
			if a.status != tc.status || a.code != tc.code || a.message != tc.message {
				t.Errorf("%s %s: %d %s %q, want %d %s %q", tc.method, tc.path, a.status, a.code, a.message, tc.status, tc.code, tc.message)
			}
		})
	}

	// The failed-login limit: 429 too_many_attempts with Retry-After.
	t.Run("too many attempts", func(t *testing.T) {
		var a errAnswer
		for range 3 {
			a = post("/api/login", "", map[string]string{"username": "bob", "password": "wrong-password"})
		}
		if a.status != 429 || a.code != "too_many_attempts" || a.message != "too many failed logins; retry later" || a.header.Get("Retry-After") == "" {
			t.Errorf("third failed login: %d %s %q Retry-After %q, want 429 too_many_attempts with Retry-After", a.status, a.code, a.message, a.header.Get("Retry-After"))
		}
	})
}

// errorsServer starts a server on a private Redis with a body limit of
// 1 KiB and two failed logins per user and address, and returns its URL.
func errorsServer(tb testing.TB) string {
	tb.Helper()
	srv := storetest.Start(tb, storetest.Options{})
	st, err := store.New(store.Options{Client: srv.UniversalClient(tb), SendRate: 1000, SendBurst: 1000, Logger: errLog(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	if err := st.Init(context.Background()); err != nil {
		tb.Fatal(err)
	}
	eng, err := engine.New(engine.Options{Log: st, Feed: st, Presence: st, Directory: st, Encoder: Encoder{}, Logger: errLog(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	s, err := New(Options{Engine: eng, Users: st, Tokens: st, Limits: st, Secret: []byte("0123456789abcdef0123456789abcdef-errors"),
		MaxBody: 1 << 10, LoginUserAddrLimit: 2,
		Argon2: &argon2id.Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}, Logger: errLog(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	hs := httptest.NewServer(s)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Drain(ctx, 0)
		hs.Close()
		_ = eng.Close()
		_ = st.Close()
	})
	return hs.URL
}

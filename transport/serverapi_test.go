package transport_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/storetest"
	"github.com/redstream/chat/transport"
)

// The server API (PROTOCOL.md "Server API"), through real instances on
// real Redis.

var (
	apiKey1 = "server-api-key-one-0123456789abcdef"
	apiKey2 = "server-api-key-two-0123456789abcdef"
)

// syncBuffer is a log sink tests read while instances write.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// apiInstance is an instance with the server API on (both keys); its
// transport logs at info level into log, and apiKeyFailures counts the
// refused keys it observed.
type apiInstance struct {
	*instance
	log      *syncBuffer
	failures atomic.Int64
}

func startAPI(tb testing.TB, srv *storetest.Server, mod func(*instanceOpts)) *apiInstance {
	tb.Helper()
	a := &apiInstance{log: &syncBuffer{}}
	o := instanceOpts{Transport: func(t *transport.Options) {
		t.APIKeys = []string{apiKey1, apiKey2}
		t.Logger = slog.New(slog.NewTextHandler(a.log, &slog.HandlerOptions{Level: slog.LevelInfo}))
		t.Observe.AuthFailure = func(reason string) {
			if reason == "api_key" {
				a.failures.Add(1)
			}
		}
	}}
	if mod != nil {
		mod(&o)
	}
	a.instance = startInstance(tb, srv, o)
	return a
}

func TestServerAPIOffWithoutKeys(t *testing.T) {
	t.Parallel()
	in := startInstance(t, storetest.Start(t, storetest.Options{}), instanceOpts{})
	tok := mustUser(t, in.URL, "alice")
	for _, r := range []struct{ method, path, token string }{
		{"POST", "/api/server/users", ""},
		{"POST", "/api/server/users", tok},
		{"POST", "/api/server/tokens", apiKey1},
		{"GET", "/api/server/rooms/general/presence", apiKey1},
		{"GET", "/api/server", ""},
		{"DELETE", "/api/server/anything/else", ""},
	} {
		var e errBody
		if st := api(t, in.URL, r.method, r.path, r.token, map[string]string{"username": "bot-1"}, &e); st != http.StatusNotFound || e.Error.Code != "not_found" {
			t.Errorf("%s %s without API keys: %d %+v, want 404 not_found", r.method, r.path, st, e)
		}
	}
}

// TestServerAPIKeysAndTokensApart: a missing or wrong key, or a user's
// token, is refused on every server route (401, counted); an API key is
// refused on the user routes and on /ws. Each call is logged with its
// key's position, never the key.
func TestServerAPIKeysAndTokensApart(t *testing.T) {
	t.Parallel()
	in := startAPI(t, storetest.Start(t, storetest.Options{}), nil)
	tok := mustUser(t, in.URL, "alice")
	routes := []struct{ method, path string }{
		{"POST", "/api/server/users"}, {"POST", "/api/server/tokens"}, {"POST", "/api/server/messages"},
		{"POST", "/api/server/rooms"}, {"POST", "/api/server/disconnect"}, {"GET", "/api/server/rooms/general/presence"},
		{"GET", "/api/server/no-such-route"},
	}
	refused := 0
	for _, r := range routes {
		for name, key := range map[string]string{"no key": "", "a user token": tok, "a wrong key": apiKey1 + "x",
			"a prefix of a key": apiKey1[:31], "the key in lower case": strings.ToLower(apiKey2) + "?"} {
			var e errBody
			if st := api(t, in.URL, r.method, r.path, key, map[string]string{"username": "alice"}, &e); st != http.StatusUnauthorized || e.Error.Code != "unauthorized" {
				t.Errorf("%s %s with %s: %d %+v, want 401 unauthorized", r.method, r.path, name, st, e)
			}
			refused++
		}
	}
	if got := in.failures.Load(); got != int64(refused) {
		t.Errorf("api_key auth failures counted: %d, want %d", got, refused)
	}
	for _, p := range []string{"/api/me", "/api/rooms", "/api/rooms/general/messages"} {
		var e errBody
		if st := api(t, in.URL, "GET", p, apiKey1, nil, &e); st != http.StatusUnauthorized || e.Error.Code != "unauthorized" {
			t.Errorf("GET %s with an API key: %d %+v, want 401", p, st, e)
		}
	}
	if _, err := dialErr(t, in.URL, apiKey1, ""); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("upgrade with an API key: %v, want HTTP 401", err)
	}
	// Both keys work; the log names them by position.
	var online struct{ Online []string }
	if st := api(t, in.URL, "GET", "/api/server/rooms/general/presence", apiKey2, nil, &online); st != http.StatusOK {
		t.Fatalf("presence with key 2: %d", st)
	}
	if st := api(t, in.URL, "POST", "/api/server/users", apiKey1, map[string]string{"username": "bot-1"}, nil); st != http.StatusCreated {
		t.Fatalf("create user with key 1: %d", st)
	}
	logs := in.log.String()
	for _, want := range []string{`msg="server api" key=2 method=GET route=/api/server/rooms/:room/presence status=200`,
		`msg="server api" key=1 method=POST route=/api/server/users status=201`, `msg="server api: refused"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	for _, secret := range []string{apiKey1, apiKey2, apiKey1[:31], tok} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds a key or token %q", secret)
		}
	}
}

// tokenClaims parses tok (signed with the test secret) into its claims.
func tokenClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parsed, err := jwt.ParseString(tok, jwt.WithKey(jwa.HS256, testSecret), jwt.WithValidate(true))
	if err != nil {
		t.Fatalf("token %q: %v", tok, err)
	}
	m, err := parsed.AsMap(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

type tokenBody struct {
	Token     string `json:"token"`
	TokenType string `json:"token_type"`
	ExpiresAt string `json:"expires_at"`
	Username  string `json:"username"`
}

func TestServerAPIUsersAndTokens(t *testing.T) {
	t.Parallel()
	in := startAPI(t, storetest.Start(t, storetest.Options{}), nil)
	post := func(path string, body any, out any) int {
		t.Helper()
		return api(t, in.URL, "POST", path, apiKey1, body, out)
	}
	var created struct{ Username string }
	if st := post("/api/server/users", map[string]string{"username": "Dana", "password": "password-dana"}, &created); st != http.StatusCreated || created.Username != "dana" {
		t.Fatalf("create dana: %d %+v", st, created)
	}
	if st := post("/api/server/users", map[string]string{"username": "Order-Bot"}, &created); st != http.StatusCreated || created.Username != "order-bot" {
		t.Fatalf("create a bot: %d %+v", st, created)
	}
	for _, c := range []struct {
		body   map[string]string
		status int
		code   string
	}{
		{map[string]string{"username": "DANA", "password": "password-dana"}, 409, "username_taken"},
		{map[string]string{"username": "order-bot"}, 409, "username_taken"},
		{map[string]string{"username": "x"}, 400, "invalid"},
		{map[string]string{"username": "has space"}, 400, "invalid"},
		{map[string]string{"username": "erin", "password": "short"}, 400, "invalid"},
		{map[string]string{"username": "erin", "password": strings.Repeat("p", 257)}, 400, "invalid"},
	} {
		var e errBody
		if st := post("/api/server/users", c.body, &e); st != c.status || e.Error.Code != c.code {
			t.Errorf("create %v: %d %+v, want %d %s", c.body, st, e, c.status, c.code)
		}
	}
	// Dana logs in with her password; the bot cannot log in at all, and
	// is answered like an unknown user.
	if st := api(t, in.URL, "POST", "/api/login", "", map[string]string{"username": "dana", "password": "password-dana"}, nil); st != http.StatusOK {
		t.Errorf("dana's login: %d", st)
	}
	for _, pw := range []string{"", "password-dana", "anything-at-all"} {
		var e errBody
		if st := api(t, in.URL, "POST", "/api/login", "", map[string]string{"username": "order-bot", "password": pw}, &e); st != http.StatusUnauthorized || e.Error.Code != "invalid_credentials" {
			t.Errorf("bot login with %q: %d %+v, want 401 invalid_credentials", pw, st, e)
		}
	}

	// A minted token is a login token: same claims, works on REST and /ws.
	var login tokenBody
	if st := api(t, in.URL, "POST", "/api/login", "", map[string]string{"username": "dana", "password": "password-dana"}, &login); st != http.StatusOK {
		t.Fatal(st)
	}
	var minted tokenBody
	if st := post("/api/server/tokens", map[string]string{"username": "ORDER-BOT"}, &minted); st != http.StatusOK ||
		minted.TokenType != "Bearer" || minted.Username != "order-bot" {
		t.Fatalf("mint for the bot: %d %+v", st, minted)
	}
	lc, mc := tokenClaims(t, login.Token), tokenClaims(t, minted.Token)
	if !slices.Equal(keysOf(lc), keysOf(mc)) || mc["sub"] != "order-bot" {
		t.Errorf("minted claims %v, login claims %v: want the same set", mc, lc)
	}
	exp, err := time.Parse(time.RFC3339, minted.ExpiresAt)
	if err != nil || exp.Sub(time.Now()) < 23*time.Hour || exp.Sub(time.Now()) > 24*time.Hour+time.Minute {
		t.Errorf("default expires_at %q: want the login TTL (24h) from now", minted.ExpiresAt)
	}
	var me struct{ Username string }
	if st := api(t, in.URL, "GET", "/api/me", minted.Token, nil, &me); st != http.StatusOK || me.Username != "order-bot" {
		t.Errorf("GET /api/me with the minted token: %d %+v", st, me)
	}
	bot := dial(t, in.URL, minted.Token, "")
	bot.join("general", "")
	if st := post("/api/server/tokens", map[string]string{"username": "dana", "ttl": "90m"}, &minted); st != http.StatusOK {
		t.Fatal(st)
	}
	if exp, _ := time.Parse(time.RFC3339, minted.ExpiresAt); exp.Sub(time.Now()) < 89*time.Minute || exp.Sub(time.Now()) > 91*time.Minute {
		t.Errorf("ttl 90m: expires_at %q", minted.ExpiresAt)
	}
	if st := post("/api/server/tokens", map[string]string{"username": "dana", "ttl": "720h"}, &minted); st != http.StatusOK {
		t.Errorf("ttl 720h (30 days): %d", st)
	}
	for _, c := range []struct {
		body   map[string]string
		status int
	}{
		{map[string]string{"username": "dana", "ttl": "59s"}, 400},
		{map[string]string{"username": "dana", "ttl": "721h"}, 400},
		{map[string]string{"username": "dana", "ttl": "a while"}, 400},
		{map[string]string{"username": "dana", "ttl": "-1h"}, 400},
		{map[string]string{"username": "nobody-here"}, 404},
		{map[string]string{"username": "x"}, 404},
		{map[string]string{}, 404},
	} {
		var e errBody
		if st := post("/api/server/tokens", c.body, &e); st != c.status {
			t.Errorf("mint %v: %d %+v, want %d", c.body, st, e, c.status)
		}
	}
	// Not JSON, or too large: as every route.
	if st := api(t, in.URL, "POST", "/api/server/users", apiKey1, "not an object", nil); st != http.StatusBadRequest {
		t.Errorf("a body that is not an object: %d, want 400", st)
	}
	if st := post("/api/server/users", map[string]string{"username": "big", "password": strings.Repeat("x", 70<<10)}, nil); st != http.StatusRequestEntityTooLarge {
		t.Errorf("a 70 KiB body: %d, want 413", st)
	}
}

func TestServerAPIMessages(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	// A send rate of 1 a second: the server API is not held to it.
	slow := func(o *instanceOpts) { o.Store = func(s *store.Options) { s.SendRate, s.SendBurst = 1, 1 } }
	a, b := startAPI(t, srv, slow), startAPI(t, srv, slow)
	alice := mustUser(t, b.URL, "alice")
	mustUser(t, b.URL, "bob")
	watch := dial(t, b.URL, alice, "")
	watch.join("general", "")
	post := func(body any, out any) int {
		t.Helper()
		return api(t, a.URL, "POST", "/api/server/messages", apiKey1, body, out)
	}
	var res struct {
		Message struct {
			ID, Room, User, Text string
			ClientID             string   `json:"client_id"`
			ReplyTo              string   `json:"reply_to"`
			Mentions             []string `json:"mentions"`
			TS                   int64
		}
	}
	if st := post(map[string]string{"room": "general", "user": "Bob", "text": "hello @alice", "client_id": "c-1"}, &res); st != http.StatusCreated {
		t.Fatalf("post as bob: %d", st)
	}
	m := res.Message
	if m.User != "bob" || m.Room != "general" || m.Text != "hello @alice" || m.ClientID != "c-1" || !slices.Equal(m.Mentions, []string{"alice"}) || m.ID == "" {
		t.Fatalf("posted %+v", m)
	}
	// Delivered live, on another instance, like bob's own send.
	if f := watch.next(5*time.Second, func(f frame) bool { return f.Type == "message" }); f.ID != m.ID || f.User != "bob" || f.Text != "hello @alice" {
		t.Fatalf("live frame %+v, want %s", f, m.ID)
	}
	// Idempotent by client_id: the first message comes back, nothing new.
	if st := post(map[string]string{"room": "general", "user": "bob", "text": "hello again", "client_id": "c-1"}, &res); st != http.StatusCreated || res.Message.ID != m.ID || res.Message.Text != "hello @alice" {
		t.Fatalf("repeat of c-1: %d %+v, want %s", st, res.Message, m.ID)
	}
	// A reply; and ten more at once, past bob's own send rate.
	if st := post(map[string]string{"room": "general", "user": "bob", "text": "a reply", "reply_to": m.ID}, &res); st != http.StatusCreated || res.Message.ReplyTo != m.ID {
		t.Fatalf("reply: %d %+v", st, res.Message)
	}
	for i := range 10 {
		if st := post(map[string]string{"room": "general", "user": "bob", "text": fmt.Sprint("burst ", i)}, nil); st != http.StatusCreated {
			t.Fatalf("burst %d: %d, want 201 (no per-user rate)", i, st)
		}
	}
	var page struct{ Messages []frame }
	if st := api(t, b.URL, "GET", "/api/rooms/general/messages?limit=50", alice, nil, &page); st != http.StatusOK || len(page.Messages) != 12 {
		t.Fatalf("history: %d, %d messages, want 12", st, len(page.Messages))
	}
	// The user's own rules apply: a private room bob is not in.
	if st := api(t, b.URL, "POST", "/api/rooms", alice, map[string]any{"name": "board", "private": true}, nil); st != http.StatusCreated {
		t.Fatal(st)
	}
	for _, c := range []struct {
		body   map[string]string
		status int
		code   string
	}{
		{map[string]string{"room": "board", "user": "bob", "text": "let me in"}, 403, "forbidden"},
		{map[string]string{"room": "no-such-room", "user": "bob", "text": "x"}, 404, "not_found"},
		{map[string]string{"room": "general", "user": "nobody-here", "text": "x"}, 404, "not_found"},
		{map[string]string{"room": "general", "text": "x"}, 404, "not_found"},
		{map[string]string{"user": "bob", "text": "x"}, 400, "invalid"},
		{map[string]string{"room": "Not A Room", "user": "bob", "text": "x"}, 400, "invalid"},
		{map[string]string{"room": "general", "user": "bob", "text": ""}, 400, "invalid"},
		{map[string]string{"room": "general", "user": "bob", "text": strings.Repeat("y", 4001)}, 413, "too_large"},
		{map[string]string{"room": "general", "user": "bob", "text": "x", "reply_to": "nonsense"}, 400, "invalid"},
		{map[string]string{"room": "general", "user": "bob", "text": "x", "reply_to": "1-1"}, 404, "not_found"},
	} {
		var e errBody
		if st := post(c.body, &e); st != c.status || e.Error.Code != c.code {
			t.Errorf("post %v: %d %+v, want %d %s", c.body, st, e, c.status, c.code)
		}
	}
	// The room's member may post.
	if st := post(map[string]string{"room": "board", "user": "alice", "text": "minutes"}, nil); st != http.StatusCreated {
		t.Errorf("post as a member: %d", st)
	}
}

func TestServerAPIRooms(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	one := func(o *instanceOpts) { o.Engine = func(e *engine.Options) { e.MaxChannelsPerUser = 1 } }
	in := startAPI(t, srv, one)
	alice := mustUser(t, in.URL, "alice")
	bob := mustUser(t, in.URL, "bob")
	bobWS := dial(t, in.URL, bob, "")
	post := func(body any, out any) int {
		t.Helper()
		return api(t, in.URL, "POST", "/api/server/rooms", apiKey1, body, out)
	}
	var room map[string]string
	if st := post(map[string]any{"name": "order-1042", "private": true, "topic": "Order 1042", "owner": "Alice", "members": []string{"bob", "BOB", "alice"}}, &room); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}
	if room["name"] != "order-1042" || room["kind"] != "private" || room["topic"] != "Order 1042" {
		t.Fatalf("created %v", room)
	}
	if f := bobWS.nextType("room_added"); f.Room != "order-1042" {
		t.Fatalf("bob's room_added: %+v", f)
	}
	var members struct {
		Members []struct{ User, Role string }
	}
	if st := api(t, in.URL, "GET", "/api/rooms/order-1042/members", alice, nil, &members); st != http.StatusOK ||
		len(members.Members) != 2 || members.Members[0].User != "alice" || members.Members[0].Role != "owner" ||
		members.Members[1].User != "bob" || members.Members[1].Role != "member" {
		t.Fatalf("members: %d %+v", st, members)
	}
	// Not held to the owner's channel limit (1 here).
	for i := range 3 {
		if st := post(map[string]any{"name": fmt.Sprint("order-", i), "owner": "alice"}, nil); st != http.StatusCreated {
			t.Fatalf("room %d owned by alice: %d", i, st)
		}
	}
	// Without an owner, like the built-in channels: anyone may join it.
	if st := post(map[string]any{"name": "announcements"}, &room); st != http.StatusCreated || room["kind"] != "channel" {
		t.Fatalf("ownerless channel: %d %v", st, room)
	}
	bobWS.join("announcements", "")
	for _, c := range []struct {
		body   map[string]any
		status int
		code   string
	}{
		{map[string]any{"name": "order-1042"}, 409, "room_exists"},
		{map[string]any{"name": "general"}, 409, "room_exists"},
		{map[string]any{"name": "Bad Name"}, 400, "invalid"},
		{map[string]any{"name": ""}, 400, "invalid"},
		{map[string]any{"name": "t1", "topic": strings.Repeat("t", 251)}, 400, "invalid"},
		{map[string]any{"name": "t2", "owner": "nobody-here"}, 404, "not_found"},
		{map[string]any{"name": "t3", "members": []string{"bob", "nobody-here"}}, 404, "not_found"},
		{map[string]any{"name": "t4", "members": make([]string, 1001)}, 400, "invalid"},
		{map[string]any{"name": "t5", "members": "bob"}, 400, "invalid"},
	} {
		var e errBody
		if st := post(c.body, &e); st != c.status || e.Error.Code != c.code {
			t.Errorf("create %v: %d %+v, want %d %s", c.body["name"], st, e, c.status, c.code)
		}
	}
	// A refused creation made nothing.
	if st := api(t, in.URL, "GET", "/api/rooms/t3/messages", alice, nil, nil); st != http.StatusNotFound {
		t.Errorf("t3 after a refused creation: %d, want 404", st)
	}
}

// TestServerAPIDisconnectAcrossInstances: the call on one instance closes
// the user's sockets on another with 1008; with revoke, the user's
// earlier tokens stop working there too, and a token minted at once after
// works at once.
func TestServerAPIDisconnectAcrossInstances(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	a, b := startAPI(t, srv, nil), startAPI(t, srv, nil)
	alice := mustUser(t, b.URL, "alice")
	bob := mustUser(t, b.URL, "bob")
	disconnect := func(body any) int {
		t.Helper()
		return api(t, a.URL, "POST", "/api/server/disconnect", apiKey1, body, nil)
	}
	s1, s2, other := dial(t, b.URL, alice, ""), dial(t, b.URL, alice, ""), dial(t, b.URL, bob, "")
	s1.join("general", "")
	other.join("general", "")
	if st := disconnect(map[string]any{"username": "Alice"}); st != http.StatusNoContent {
		t.Fatalf("disconnect: %d", st)
	}
	for i, s := range []*wsClient{s1, s2} {
		if code := s.waitClosed(5 * time.Second); code != websocket.StatusPolicyViolation {
			t.Errorf("alice's socket %d closed with %v, want 1008", i, code)
		}
	}
	// Without revoke the token still works: the client may come back.
	if st := api(t, b.URL, "GET", "/api/me", alice, nil, nil); st != http.StatusOK {
		t.Errorf("alice's token after a plain disconnect: %d, want 200", st)
	}
	s3 := dial(t, b.URL, alice, "")
	s3.join("general", "")

	var laterTok tokenBody
	if st := api(t, a.URL, "POST", "/api/server/tokens", apiKey1, map[string]string{"username": "alice"}, &laterTok); st != http.StatusOK {
		t.Fatal(st)
	}
	if st := disconnect(map[string]any{"username": "alice", "revoke": true}); st != http.StatusNoContent {
		t.Fatalf("disconnect with revoke: %d", st)
	}
	if code := s3.waitClosed(5 * time.Second); code != websocket.StatusPolicyViolation {
		t.Errorf("alice's socket closed with %v, want 1008", code)
	}
	for name, tok := range map[string]string{"login token": alice, "minted token": laterTok.Token} {
		for _, in := range []*apiInstance{a, b} {
			if st := api(t, in.URL, "GET", "/api/me", tok, nil, nil); st != http.StatusUnauthorized {
				t.Errorf("alice's %s after revoke: GET /api/me %d, want 401", name, st)
			}
			if _, err := dialErr(t, in.URL, tok, ""); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
				t.Errorf("alice's %s after revoke: upgrade %v, want HTTP 401", name, err)
			}
		}
	}
	// Bob was not touched.
	other.reply(map[string]any{"type": "ping"}, "still-here")
	if st := api(t, b.URL, "GET", "/api/me", bob, nil, nil); st != http.StatusOK {
		t.Errorf("bob after alice's revoke: %d", st)
	}
	// A token minted right after the revoke (the same second) works at once.
	var fresh tokenBody
	if st := api(t, a.URL, "POST", "/api/server/tokens", apiKey1, map[string]string{"username": "alice"}, &fresh); st != http.StatusOK {
		t.Fatal(st)
	}
	if st := api(t, b.URL, "GET", "/api/me", fresh.Token, nil, nil); st != http.StatusOK {
		t.Errorf("a token minted after the revoke: %d, want 200", st)
	}
	dial(t, b.URL, fresh.Token, "").join("general", "")
	for _, body := range []map[string]any{{"username": "nobody-here"}, {"username": "x", "revoke": true}, {}} {
		if st := disconnect(body); st != http.StatusNotFound {
			t.Errorf("disconnect %v: %d, want 404", body, st)
		}
	}
}

func TestServerAPIPresence(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	a, b := startAPI(t, srv, nil), startAPI(t, srv, nil)
	alice := mustUser(t, b.URL, "alice")
	bob := mustUser(t, a.URL, "bob")
	dial(t, b.URL, alice, "").join("general", "")
	dial(t, a.URL, bob, "").join("general", "")
	dm := mustDM(t, b.URL, alice, "bob")
	presence := func(base, room string) (int, []string) {
		t.Helper()
		var out struct{ Online []string }
		st := api(t, base, "GET", "/api/server/rooms/"+room+"/presence", apiKey1, nil, &out)
		return st, out.Online
	}
	if st, on := presence(a.URL, "general"); st != http.StatusOK || !slices.Equal(on, []string{"alice", "bob"}) {
		t.Errorf("general: %d %v, want alice and bob (two instances)", st, on)
	}
	if st, on := presence(b.URL, "support"); st != http.StatusOK || on == nil || len(on) != 0 {
		t.Errorf("support: %d %#v, want []", st, on)
	}
	if st, on := presence(a.URL, dm); st != http.StatusOK || len(on) != 0 {
		t.Errorf("%s: %d %v", dm, st, on)
	}
	for _, room := range []string{"no-such-room", "Bad%20Name", "dm:carol:dave", strings.Repeat("r", 65)} {
		var e errBody
		if st := api(t, a.URL, "GET", "/api/server/rooms/"+room+"/presence", apiKey1, nil, &e); st != http.StatusNotFound || e.Error.Code != "not_found" {
			t.Errorf("presence of %s: %d %+v, want 404", room, st, e)
		}
	}
}

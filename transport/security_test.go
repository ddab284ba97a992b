package transport_test

// Security tests of issue 6, "Abuse and bad input": tokens, logout across
// instances, login, registration and send limits shared through Redis,
// connection and room limits, forward compatibility, the web client's
// security headers and the absence of permissive CORS.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/storetest"
	"github.com/redstream/chat/transport"
	"github.com/redstream/chat/transport/web"
)

// signJWT builds a compact JWT with header alg and claims, signed with key
// by HMAC (HS256, HS384, HS512) or not at all (any other alg, such as
// "none": empty signature).
func signJWT(alg string, key []byte, claims map[string]any) string {
	b64 := base64.RawURLEncoding.EncodeToString
	header, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	payload, _ := json.Marshal(claims)
	input := b64(header) + "." + b64(payload)
	var h func() hash.Hash
	switch alg {
	case "HS256":
		h = sha256.New
	case "HS384":
		h = sha512.New384
	case "HS512":
		h = sha512.New
	default:
		return input + "."
	}
	mac := hmac.New(h, key)
	mac.Write([]byte(input))
	return input + "." + b64(mac.Sum(nil))
}

// goodClaims are the claims of a valid token for user.
func goodClaims(user string) map[string]any {
	now := time.Now()
	return map[string]any{"sub": user, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "jti-" + strconv.FormatInt(now.UnixNano(), 36)}
}

func without(m map[string]any, key string) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}

func with(m map[string]any, key string, v any) map[string]any {
	out := without(m, key)
	out[key] = v
	return out
}

// httpResult is a raw REST answer.
type httpResult struct {
	Status int
	Header http.Header
	Err    errBody
	Body   []byte
}

// rawCall sends a request with extra headers and returns status, headers
// and the decoded error body (if any).
func rawCall(tb testing.TB, method, url, token string, header http.Header, body any) httpResult {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	r := httpResult{Status: res.StatusCode, Header: res.Header, Body: data}
	_ = json.Unmarshal(data, &r.Err)
	return r
}

// upgradeStatus tries a WebSocket upgrade with token (in the Authorization
// header, or ?token= if query) and returns the HTTP status (101 on success).
func upgradeStatus(tb testing.TB, base, token string, query bool) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	h := http.Header{}
	if query {
		u += "?token=" + token
	} else {
		h.Set("Authorization", "Bearer "+token)
	}
	c, res, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
	if err == nil {
		c.CloseNow()
		return http.StatusSwitchingProtocols
	}
	if res == nil {
		tb.Fatalf("upgrade: %v", err)
	}
	return res.StatusCode
}

func TestSecurityTokens(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in := startInstance(t, srv, instanceOpts{})
	mustUser(t, in.URL, "alice")
	good := goodClaims("alice")
	otherKey := []byte("another-secret-another-secret-another-secret")

	// The crafting is right: a token made like the server's is accepted.
	ok := signJWT("HS256", testSecret, good)
	if st := api(t, in.URL, "GET", "/api/me", ok, nil, nil); st != http.StatusOK {
		t.Fatalf("hand-made HS256 token: GET /api/me %d, want 200 (the test's token crafting is wrong)", st)
	}
	if st := upgradeStatus(t, in.URL, ok, false); st != http.StatusSwitchingProtocols {
		t.Fatalf("hand-made HS256 token: upgrade %d, want 101", st)
	}

	past := time.Now().Add(-time.Hour)
	cases := []struct{ name, token string }{
		{"alg none", signJWT("none", nil, good)},
		{"alg None", signJWT("None", nil, good)},
		{"alg NONE", signJWT("NONE", nil, good)},
		{"alg none with a signature", signJWT("none", nil, good) + strings.Split(ok, ".")[2]},
		{"HS384 with the right key", signJWT("HS384", testSecret, good)},
		{"HS512 with the right key", signJWT("HS512", testSecret, good)},
		{"HS256 with another key", signJWT("HS256", otherKey, good)},
		{"HS256 with the key's first 32 bytes", signJWT("HS256", testSecret[:32], good)},
		{"exp in the past", signJWT("HS256", testSecret, with(with(good, "exp", past.Unix()), "iat", past.Add(-time.Hour).Unix()))},
		{"no exp", signJWT("HS256", testSecret, without(good, "exp"))},
		{"no jti", signJWT("HS256", testSecret, without(good, "jti"))},
		{"empty jti", signJWT("HS256", testSecret, with(good, "jti", ""))},
		{"no sub", signJWT("HS256", testSecret, without(good, "sub"))},
		{"sub too short", signJWT("HS256", testSecret, with(good, "sub", "al"))},
		{"sub with a space", signJWT("HS256", testSecret, with(good, "sub", "alice smith"))},
		{"sub with a slash", signJWT("HS256", testSecret, with(good, "sub", "../alice"))},
		{"sub too long", signJWT("HS256", testSecret, with(good, "sub", strings.Repeat("a", 33)))},
		{"tampered payload", func() string {
			parts := strings.Split(ok, ".")
			p, _ := json.Marshal(with(good, "sub", "bob"))
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(p) + "." + parts[2]
		}()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e errBody
			if st := api(t, in.URL, "GET", "/api/me", tc.token, nil, &e); st != http.StatusUnauthorized || e.Error.Code != "unauthorized" {
				t.Errorf("GET /api/me: %d %q, want 401 unauthorized", st, e.Error.Code)
			}
			if st := upgradeStatus(t, in.URL, tc.token, false); st != http.StatusUnauthorized {
				t.Errorf("upgrade with Authorization: %d, want 401", st)
			}
			if st := upgradeStatus(t, in.URL, tc.token, true); st != http.StatusUnauthorized {
				t.Errorf("upgrade with ?token=: %d, want 401", st)
			}
		})
	}
}

// TestSecurityLogoutAcrossInstances: logout on instance A closes the
// token's sockets on instance B with 1008 within a second; another token
// of the same user keeps its socket.
func TestSecurityLogoutAcrossInstances(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	a := startInstance(t, srv, instanceOpts{})
	b := startInstance(t, srv, instanceOpts{})
	tok := mustUser(t, a.URL, "alice")
	other := login(t, b.URL, "alice")
	onB := dial(t, b.URL, tok, "")
	onB.join("general", "")
	otherOnB := dial(t, b.URL, other, "")
	otherOnB.join("general", "")

	loggedOut := time.Now()
	if st := api(t, a.URL, "POST", "/api/logout", tok, nil, nil); st != http.StatusNoContent {
		t.Fatalf("logout on A: %d", st)
	}
	// PROTOCOL.md: within a second on every instance; the margin is for a
	// loaded machine.
	if code := onB.waitClosed(5 * time.Second); code != websocket.StatusPolicyViolation {
		t.Errorf("socket on B closed with %d, want 1008", code)
	}
	took := time.Since(loggedOut)
	t.Logf("logout on A closed the token's socket on B after %v", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("socket on B closed %v after logout on A; want within 1s (+1s margin)", took)
	}
	if st := api(t, b.URL, "GET", "/api/me", tok, nil, nil); st != http.StatusUnauthorized {
		t.Errorf("logged-out token on B: GET /api/me %d, want 401", st)
	}
	if st := upgradeStatus(t, b.URL, tok, false); st != http.StatusUnauthorized {
		t.Errorf("logged-out token on B: upgrade %d, want 401", st)
	}
	if f := otherOnB.reply(map[string]any{"type": "ping"}, "p"); f.Type != "pong" {
		t.Errorf("other token's socket: %+v, want pong", f)
	}
}

// TestSecurityLoginLimits: failed logins are counted per username and per
// client address in Redis, so every instance refuses with 429
// too_many_attempts and Retry-After, even the right password.
func TestSecurityLoginLimits(t *testing.T) {
	t.Parallel()
	check429 := func(t *testing.T, base, name, password, via string) {
		t.Helper()
		r := rawCall(t, "POST", base+"/api/login", "", nil, map[string]string{"username": name, "password": password})
		if r.Status != http.StatusTooManyRequests || r.Err.Error.Code != "too_many_attempts" {
			t.Errorf("login %s via %s: %d %s, want 429 too_many_attempts", name, via, r.Status, r.Body)
			return
		}
		ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || ra < 1 {
			t.Errorf("login %s via %s: Retry-After %q, want a positive number of seconds", name, via, r.Header.Get("Retry-After"))
		}
	}
	t.Run("per username", func(t *testing.T) {
		t.Parallel()
		srv := storetest.Start(t, storetest.Options{})
		a := startInstance(t, srv, instanceOpts{})
		b := startInstance(t, srv, instanceOpts{})
		mustUser(t, a.URL, "victim")
		mustUser(t, a.URL, "bystander")
		for i := range 10 {
			base := []string{a.URL, b.URL}[i%2]
			var e errBody
			if st := api(t, base, "POST", "/api/login", "", map[string]string{"username": "victim", "password": "wrong-password"}, &e); st != http.StatusUnauthorized || e.Error.Code != "invalid_credentials" {
				t.Fatalf("failed login %d: %d %+v, want 401 invalid_credentials", i+1, st, e)
			}
		}
		check429(t, b.URL, "victim", "password-victim", "B")
		check429(t, a.URL, "victim", "password-victim", "A")
		check429(t, a.URL, "VICTIM", "password-victim", "A, name in capitals")
		if st := api(t, b.URL, "POST", "/api/login", "", map[string]string{"username": "bystander", "password": "password-bystander"}, nil); st != http.StatusOK {
			t.Errorf("another username: login %d, want 200", st)
		}
	})
	t.Run("per address", func(t *testing.T) {
		t.Parallel()
		srv := storetest.Start(t, storetest.Options{})
		opts := instanceOpts{Transport: func(o *transport.Options) { o.LoginAddrLimit = 5 }}
		a := startInstance(t, srv, opts)
		b := startInstance(t, srv, opts)
		mustUser(t, a.URL, "carol") // a successful login is not counted
		for i := range 5 {
			base := []string{a.URL, b.URL}[i%2]
			name := fmt.Sprintf("nobody%d", i)
			if st := api(t, base, "POST", "/api/login", "", map[string]string{"username": name, "password": "whatever-password"}, nil); st != http.StatusUnauthorized {
				t.Fatalf("failed login %d: %d, want 401", i+1, st)
			}
		}
		check429(t, b.URL, "carol", "password-carol", "B")
		check429(t, a.URL, "carol", "password-carol", "A")
	})
}

// TestSecurityRegisterLimit: registrations per client address, counted in
// Redis for every instance.
func TestSecurityRegisterLimit(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	opts := instanceOpts{Transport: func(o *transport.Options) { o.RegisterAddrLimit = 3 }}
	a := startInstance(t, srv, opts)
	b := startInstance(t, srv, opts)
	for i := range 3 {
		base := []string{a.URL, b.URL}[i%2]
		if st := api(t, base, "POST", "/api/register", "", map[string]string{"username": fmt.Sprintf("new%d", i), "password": "password-new"}, nil); st != http.StatusCreated {
			t.Fatalf("registration %d: %d, want 201", i+1, st)
		}
	}
	for _, base := range []string{b.URL, a.URL} {
		r := rawCall(t, "POST", base+"/api/register", "", nil, map[string]string{"username": "new9", "password": "password-new"})
		if r.Status != http.StatusTooManyRequests || r.Err.Error.Code != "rate_limited" {
			t.Errorf("4th registration: %d %s, want 429 rate_limited", r.Status, r.Body)
		}
	}
}

// TestSecuritySendRateShared: one user's send budget (rate 2/s, burst 5)
// is shared by its sockets on both instances; over it, sends get
// rate_limited error frames, the sockets stay open and work again later.
func TestSecuritySendRateShared(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	opts := instanceOpts{Store: func(o *store.Options) { o.SendRate, o.SendBurst = 2, 5 }}
	a := startInstance(t, srv, opts)
	b := startInstance(t, srv, opts)
	tok := mustUser(t, a.URL, "alice")
	bob := dial(t, a.URL, mustUser(t, a.URL, "bob"), "")
	onA, onB := dial(t, a.URL, tok, ""), dial(t, b.URL, tok, "")

	start := time.Now()
	for i := range 3 {
		if f := onA.reply(map[string]any{"type": "send", "room": "general", "text": fmt.Sprint("a", i)}, fmt.Sprint("a", i)); f.Type != "ack" {
			t.Fatalf("send %d on A: %+v, want ack", i+1, f)
		}
	}
	const burst = 12
	for i := range burst {
		onB.send(map[string]any{"type": "send", "room": "general", "text": fmt.Sprint("b", i), "ref": fmt.Sprint("b", i)})
	}
	acked, limited := 0, 0
	for i := range burst {
		want := strconv.Quote(fmt.Sprint("b", i))
		f := onB.next(5*time.Second, func(f frame) bool { return string(f.Ref) == want })
		switch {
		case f.Type == "ack":
			acked++
		case f.Type == "error" && f.Code == "rate_limited":
			limited++
		default:
			t.Errorf("send b%d: %s %s, want ack or rate_limited", i, f.Type, f.Code)
		}
	}
	elapsed := time.Since(start)
	// 5 in the burst, plus what 2/s refilled meanwhile (and one for
	// rounding); 3 of them were spent on A.
	allowed := 5 + int(2*elapsed.Seconds()) + 1
	t.Logf("3 sends on A, then %d quick sends on B in %v: %d acked, %d rate_limited", burst, elapsed.Round(time.Millisecond), acked, limited)
	if 3+acked > allowed {
		t.Errorf("%d sends acked across both instances in %v; the shared budget allows at most %d", 3+acked, elapsed, allowed)
	}
	if limited == 0 {
		t.Errorf("no rate_limited error frame on B")
	}
	// Another user is not affected.
	if f := bob.reply(map[string]any{"type": "send", "room": "general", "text": "bob"}, "bob"); f.Type != "ack" {
		t.Errorf("another user's send: %+v, want ack", f)
	}
	// Both sockets are still open and can send once the bucket refills.
	for _, s := range []struct {
		name string
		w    *wsClient
	}{{"A", onA}, {"B", onB}} {
		n := 0
		storetest.CheckFor(t, 10*time.Second, func() error {
			n++
			f := s.w.reply(map[string]any{"type": "send", "room": "general", "text": "later"}, fmt.Sprint("later", n))
			if f.Type != "ack" {
				time.Sleep(200 * time.Millisecond)
				return fmt.Errorf("socket on %s: %s %s, want ack after waiting", s.name, f.Type, f.Code)
			}
			return nil
		})
	}
}

// TestSecurityConnectionLimits: sockets per user (429) and per instance
// (503); a closed socket frees its place.
func TestSecurityConnectionLimits(t *testing.T) {
	t.Parallel()
	statusOf := func(err error) string {
		if err == nil {
			return "101"
		}
		return err.Error()
	}
	t.Run("per user", func(t *testing.T) {
		t.Parallel()
		srv := storetest.Start(t, storetest.Options{})
		in := startInstance(t, srv, instanceOpts{Engine: func(o *engine.Options) { o.MaxSessionsPerUser = 3 }})
		tok := mustUser(t, in.URL, "alice")
		var socks []*wsClient
		for range 3 {
			socks = append(socks, dial(t, in.URL, tok, ""))
		}
		if _, err := dialErr(t, in.URL, tok, ""); err == nil || !strings.Contains(err.Error(), "HTTP 429") {
			t.Errorf("4th socket of one user: %s, want HTTP 429", statusOf(err))
		}
		dial(t, in.URL, mustUser(t, in.URL, "bob"), "") // another user is not affected
		socks[0].c.CloseNow()
		storetest.CheckFor(t, 5*time.Second, func() error {
			s, err := dialErr(t, in.URL, tok, "")
			if err != nil {
				return fmt.Errorf("after closing one of 3 sockets: %v", err)
			}
			s.c.CloseNow()
			return nil
		})
	})
	t.Run("per instance", func(t *testing.T) {
		t.Parallel()
		srv := storetest.Start(t, storetest.Options{})
		in := startInstance(t, srv, instanceOpts{Transport: func(o *transport.Options) { o.MaxConns = 2 }})
		first := dial(t, in.URL, mustUser(t, in.URL, "alice"), "")
		dial(t, in.URL, mustUser(t, in.URL, "bob"), "")
		carol := mustUser(t, in.URL, "carol")
		if _, err := dialErr(t, in.URL, carol, ""); err == nil || !strings.Contains(err.Error(), "HTTP 503") {
			t.Errorf("3rd socket of the instance: %s, want HTTP 503", statusOf(err))
		}
		first.c.CloseNow()
		storetest.CheckFor(t, 5*time.Second, func() error {
			s, err := dialErr(t, in.URL, carol, "")
			if err != nil {
				return fmt.Errorf("after closing one of 2 sockets: %v", err)
			}
			s.c.CloseNow()
			return nil
		})
	})
}

// TestSecurityRoomsPerConnection: a socket may join MaxRoomsPerSession
// rooms; one more is an error frame and the socket stays open.
func TestSecurityRoomsPerConnection(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in := startInstance(t, srv, instanceOpts{Engine: func(o *engine.Options) { o.MaxRoomsPerSession = 2 }})
	tok := mustUser(t, in.URL, "alice")
	for _, room := range []string{"extra1", "extra2"} {
		if st := api(t, in.URL, "POST", "/api/rooms", tok, map[string]string{"name": room}, nil); st != http.StatusCreated {
			t.Fatalf("create %s: %d", room, st)
		}
	}
	w := dial(t, in.URL, tok, "")
	w.join("general", "")
	w.join("extra1", "")
	f := w.reply(map[string]any{"type": "join", "room": "extra2"}, "third")
	if f.Type != "error" {
		t.Fatalf("joining a 3rd room with a limit of 2: %+v, want an error frame", f)
	}
	t.Logf("3rd room: error frame %s %q", f.Code, f.Message)
	if f := w.reply(map[string]any{"type": "ping"}, "still-open"); f.Type != "pong" {
		t.Fatalf("after the refused join: %+v, want pong", f)
	}
	// Leaving one makes room for another.
	if f := w.reply(map[string]any{"type": "leave", "room": "general"}, "leave"); f.Type != "left" {
		t.Fatalf("leave: %+v", f)
	}
	w.join("extra2", "")
	// Another socket has its own budget.
	dial(t, in.URL, tok, "").join("extra2", "")
}

// TestSecurityUnknownFieldsIgnored: fields a server does not know, in
// frames and REST bodies, are ignored (forward compatibility).
func TestSecurityUnknownFieldsIgnored(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in := startInstance(t, srv, instanceOpts{})
	extra := map[string]any{"v2": true, "nested": map[string]any{"a": []int{1, 2}}}
	if st := api(t, in.URL, "POST", "/api/register", "", map[string]any{"username": "alice", "password": "password-alice", "email": "a@example.com", "extra": extra}, nil); st != http.StatusCreated {
		t.Fatalf("register with unknown fields: %d", st)
	}
	var tok struct{ Token string }
	if st := api(t, in.URL, "POST", "/api/login", "", map[string]any{"username": "alice", "password": "password-alice", "remember": true}, &tok); st != http.StatusOK {
		t.Fatalf("login with unknown fields: %d", st)
	}
	if st := api(t, in.URL, "POST", "/api/rooms", tok.Token, map[string]any{"name": "newroom", "topic": "x"}, nil); st != http.StatusCreated {
		t.Errorf("create room with unknown fields: %d", st)
	}
	if st := api(t, in.URL, "POST", "/api/rooms/general/messages", tok.Token, map[string]any{"text": "hi", "format": "md"}, nil); st != http.StatusCreated {
		t.Errorf("post message with unknown fields: %d", st)
	}
	w := dial(t, in.URL, tok.Token, "")
	for _, tc := range []struct {
		frame map[string]any
		want  string
	}{
		{map[string]any{"type": "join", "room": "general", "mode": "fast", "extra": extra}, "joined"},
		{map[string]any{"type": "send", "room": "general", "text": "hello", "client_id": "c1", "mentions": []string{"bob"}, "extra": extra}, "ack"},
		{map[string]any{"type": "ping", "future": 1}, "pong"},
		{map[string]any{"type": "typing", "room": "general", "extra": extra}, ""},
		{map[string]any{"type": "leave", "room": "general", "why": "bye"}, "left"},
	} {
		if tc.want == "" {
			w.noReply(tc.frame, "noreply")
			continue
		}
		if f := w.reply(tc.frame, "r"); f.Type != tc.want {
			t.Errorf("frame %v: got %s %s %q, want %s", tc.frame, f.Type, f.Code, f.Message, tc.want)
		}
	}
}

// TestSecurityHeadersAndCORS: the web client is served with a CSP, no
// sniffing and no framing; REST answers cross-origin requests without any
// Access-Control-Allow-Origin.
func TestSecurityHeadersAndCORS(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	// chatd serves the web client through transport's Web option.
	in := startInstance(t, srv, instanceOpts{Transport: func(o *transport.Options) { o.Web = web.Handler() }})
	direct := httptest.NewServer(web.Handler())
	t.Cleanup(direct.Close)
	checkHeaders := func(url string) {
		t.Helper()
		r := rawCall(t, "GET", url, "", nil, nil)
		if r.Status != http.StatusOK {
			t.Errorf("GET %s: %d", url, r.Status)
			return
		}
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src") {
			t.Errorf("GET %s: Content-Security-Policy %q", url, csp)
		}
		if v := r.Header.Get("X-Content-Type-Options"); v != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", url, v)
		}
		if v := r.Header.Get("X-Frame-Options"); v != "DENY" {
			t.Errorf("GET %s: X-Frame-Options %q, want DENY", url, v)
		}
	}
	for _, base := range []string{in.URL, direct.URL} {
		checkHeaders(base + "/")
		checkHeaders(base + "/app.js")
	}

	tok := mustUser(t, in.URL, "alice")
	origin := http.Header{"Origin": {"https://evil.example.org"}}
	preflight := http.Header{"Origin": {"https://evil.example.org"}, "Access-Control-Request-Method": {"POST"},
		"Access-Control-Request-Headers": {"authorization, content-type"}}
	for _, tc := range []struct {
		method, path, token string
		header              http.Header
		body                any
	}{
		{"GET", "/api/me", tok, origin, nil},
		{"GET", "/api/rooms", tok, origin, nil},
		{"POST", "/api/login", "", origin, map[string]string{"username": "alice", "password": "password-alice"}},
		{"GET", "/api/me", "", origin, nil},
		{"OPTIONS", "/api/rooms", "", preflight, nil},
		{"OPTIONS", "/api/login", "", preflight, nil},
	} {
		r := rawCall(t, tc.method, in.URL+tc.path, tc.token, tc.header, tc.body)
		for _, h := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers", "Access-Control-Allow-Methods"} {
			if v := r.Header.Get(h); v != "" {
				t.Errorf("%s %s from a foreign origin (status %d): %s: %q, want no CORS header", tc.method, tc.path, r.Status, h, v)
			}
		}
	}
}

package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/alexedwards/argon2id"
	"github.com/labstack/echo/v4"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/transport/wire"
)

// UserStore keeps users and their password hashes.
type UserStore interface {
	// CreateUser stores a new user (name already normalised). Errors:
	// engine.ErrExists.
	CreateUser(ctx context.Context, name, hash string) error
	// PasswordHash returns the user's hash. Errors: engine.ErrNotFound.
	PasswordHash(ctx context.Context, name string) (string, error)
}

// TokenStore keeps revoked tokens.
type TokenStore interface {
	// Revoke marks jti revoked until until and tells every instance.
	Revoke(ctx context.Context, jti string, until time.Time) error
	// RevokeUser revokes every token of user issued before before (token
	// times have whole seconds: a token of before's second counts too).
	RevokeUser(ctx context.Context, user string, before time.Time) error
	// Revoked reports whether the token jti of user, issued at issued, was
	// revoked by Revoke or RevokeUser.
	Revoked(ctx context.Context, jti, user string, issued time.Time) (bool, error)
}

// Limiter counts attempts in fixed windows, shared by every instance.
type Limiter interface {
	// Attempt counts one attempt under every key at once, at most maxes[i]
	// per windows[i] under keys[i], unless a key is at its limit: then it
	// counts nothing, ok is false and retry is how long until the windows
	// of the full keys end. The check and the count are one atomic step,
	// so parallel attempts cannot all pass.
	Attempt(ctx context.Context, keys []string, maxes []int, windows []time.Duration) (ok bool, retry time.Duration, err error)
	// Release takes back one attempt counted under each key.
	Release(ctx context.Context, keys ...string) error
}

// claims is a verified token.
type claims struct {
	User    string
	ID      string // jti
	Issued  time.Time
	Expires time.Time
}

// issue signs a new token for user, valid for ttl.
func (s *Server) issue(user string, ttl time.Duration) (string, claims, error) {
	now := s.opts.Now()
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	c := claims{User: user, ID: hex.EncodeToString(jti), Issued: now.Truncate(time.Second), Expires: now.Add(ttl).Truncate(time.Second)}
	tok, err := jwt.NewBuilder().
		Subject(user).
		IssuedAt(c.Issued).
		Expiration(c.Expires).
		JwtID(c.ID).
		Build()
	if err != nil {
		return "", claims{}, err
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256, s.opts.Secret))
	if err != nil {
		return "", claims{}, err
	}
	return string(signed), c, nil
}

// verify checks a token: HS256 with our key only, not expired, carrying
// sub and jti, not revoked. Errors: errUnauthorized, or ErrUnavailable when
// the revocation list cannot be read.
func (s *Server) verify(ctx context.Context, token string) (claims, error) {
	tok, err := jwt.ParseString(token,
		jwt.WithKey(jwa.HS256, s.opts.Secret),
		jwt.WithValidate(true),
		jwt.WithClock(jwt.ClockFunc(s.opts.Now)),
		jwt.WithAcceptableSkew(5*time.Second))
	if err != nil {
		reason := "invalid_token"
		if errors.Is(err, jwt.ErrTokenExpired()) {
			reason = "expired"
		}
		s.opts.Observe.authFailure(reason)
		return claims{}, errUnauthorized
	}
	c := claims{User: tok.Subject(), ID: tok.JwtID(), Issued: tok.IssuedAt(), Expires: tok.Expiration()}
	if c.ID == "" || c.Expires.IsZero() {
		s.opts.Observe.authFailure("invalid_token")
		return claims{}, errUnauthorized
	}
	if u, err := engine.NormalizeUsername(c.User); err != nil || u != c.User {
		s.opts.Observe.authFailure("invalid_token")
		return claims{}, errUnauthorized
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	revoked, err := s.opts.Tokens.Revoked(ctx, c.ID, c.User, c.Issued)
	if err != nil {
		return claims{}, fmt.Errorf("%w: %v", engine.ErrUnavailable, err)
	}
	if revoked {
		s.opts.Observe.authFailure("revoked")
		return claims{}, errUnauthorized
	}
	return c, nil
}

// bearer extracts the token of a /ws upgrade: the Authorization header,
// or the token query parameter, because browsers cannot set headers on a
// WebSocket. Only /ws takes it from the query: URLs end up in proxy and
// access logs, so REST routes use headerToken.
func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		return headerToken(r)
	}
	return r.URL.Query().Get(wire.TokenQueryParam)
}

// headerToken extracts the token of a REST request: the Authorization
// header alone.
func headerToken(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(tok)
	}
	return ""
}

// requireAuth is the middleware of every /api route but register and login.
func (s *Server) requireAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok := headerToken(c.Request())
		if tok == "" {
			return errUnauthorized
		}
		cl, err := s.verify(c.Request().Context(), tok)
		if err != nil {
			return err
		}
		c.Set("claims", cl)
		return next(c)
	}
}

func claimsOf(c echo.Context) claims {
	cl, _ := c.Get("claims").(claims)
	return cl
}

type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type tokenResponse struct {
	Token     string `json:"token"`
	TokenType string `json:"token_type"`
	ExpiresAt string `json:"expires_at"`
	Username  string `json:"username"`
}

func tokenBody(tok string, c claims) tokenResponse {
	return tokenResponse{Token: tok, TokenType: "Bearer", ExpiresAt: c.Expires.UTC().Format(time.RFC3339), Username: c.User}
}

// clientAddr is the client's address as limits count it: the address the
// request came from, or the one X-Forwarded-For names when it came from a
// trusted proxy. An IPv6 client counts with its /64, the block one
// subscriber usually gets, so that walking through it buys no new budget.
func clientAddr(c echo.Context) string {
	return addrKey(c.RealIP())
}

// addrKey is ip as limits count it; see clientAddr.
func addrKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}

// limit is one of the counters an attempt is checked against.
type limit struct {
	key    string
	max    int
	window time.Duration
}

// attempt counts one attempt against limits (see Limiter.Attempt). It
// returns the keys counted, to release if the attempt turns out not to
// count, or, when a limit is reached, limited (a row of the error table)
// told with message and Retry-After.
func (s *Server) attempt(ctx context.Context, kind string, limited error, message string, limits ...limit) ([]string, error) {
	keys := make([]string, len(limits))
	maxes := make([]int, len(limits))
	windows := make([]time.Duration, len(limits))
	for i, l := range limits {
		keys[i], maxes[i], windows[i] = l.key, l.max, l.window
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	ok, retry, err := s.opts.Limits.Attempt(ctx, keys, maxes, windows)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", engine.ErrUnavailable, err)
	}
	if !ok {
		s.opts.Observe.rateLimited(kind)
		a := errorf(limited, "%s", message)
		a.Retry = retrySeconds(retry)
		return nil, a
	}
	return keys, nil
}

// release takes back an attempt that does not count. It runs after the
// request's own context may have ended, so it has a context of its own.
func (s *Server) release(keys []string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	if err := s.opts.Limits.Release(ctx, keys...); err != nil {
		s.log.Warn("limit release", "err", err)
	}
}

func (s *Server) register(c echo.Context) error {
	var req credentials
	if err := s.bind(c, &req); err != nil {
		return err
	}
	name, err := engine.NormalizeUsername(req.Username)
	if err != nil {
		return err
	}
	if n := utf8.RuneCountInString(req.Password); n < 8 || n > 256 {
		return fmt.Errorf("password must be 8 to 256 characters: %w", engine.ErrInvalid)
	}
	ctx := c.Request().Context()
	var counted []string
	if s.opts.RegisterAddrLimit > 0 {
		if counted, err = s.attempt(ctx, "register", engine.ErrRateLimited, "too many registrations from this address; retry later",
			limit{"register:" + clientAddr(c), s.opts.RegisterAddrLimit, s.opts.RegisterAddrWindow}); err != nil {
			return err
		}
	}
	if err := s.createUser(ctx, name, req.Password, func() {
		if counted != nil {
			s.release(counted) // nothing was registered: not the household's fault
		}
	}); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]string{"username": name})
}

// createUser stores a new user (name normalised) with a hash of
// password, or with none when password is empty: a user who cannot log
// in (see login). A taken name is answered before the expensive hash;
// CreateUser still decides a race between two creations of one name.
// busy runs when the hash pool turned the request away (nothing was
// stored). Errors: errNameTaken, errHashBusy, ErrUnavailable.
func (s *Server) createUser(ctx context.Context, name, password string, busy func()) error {
	if _, err := s.opts.Users.PasswordHash(ctx, name); err == nil {
		return errorf(errNameTaken, "username %s is taken", name)
	} else if !errors.Is(err, engine.ErrNotFound) {
		return err
	}
	hash := ""
	if password != "" {
		var err error
		if perr := s.registerHashes.run(ctx, func() { hash, err = argon2id.CreateHash(password, s.opts.Argon2) }); perr != nil {
			busy()
			return perr
		}
		if err != nil {
			return err
		}
	}
	if err := s.opts.Users.CreateUser(ctx, name, hash); err != nil {
		if errors.Is(err, engine.ErrExists) {
			return errorf(errNameTaken, "username %s is taken", name)
		}
		return err
	}
	// A cached "no such user" here must not outlive the user's creation
	// (mentions, direct rooms).
	s.opts.Engine.UserRegistered(name)
	return nil
}

// hashPool runs password hashes of one kind (logins, or registrations)
// with at most cap(slots) at once, because each takes argon2id's memory
// (64 MiB by default) and all the CPUs it is given. At most
// cap(tickets)-cap(slots) requests wait for a slot, each at most wait:
// beyond that the answer is 503 with Retry-After at once, so a flood is
// turned away quickly instead of queueing without end while every login
// in the queue times out. It is safe for concurrent use.
type hashPool struct {
	slots   chan struct{}
	tickets chan struct{}
	wait    time.Duration
}

func newHashPool(size, queue int, wait time.Duration) *hashPool {
	return &hashPool{slots: make(chan struct{}, size), tickets: make(chan struct{}, size+queue), wait: wait}
}

// run calls f in a slot. Errors: errHashBusy, or ErrUnavailable when ctx
// ends first.
func (p *hashPool) run(ctx context.Context, f func()) error {
	select {
	case p.tickets <- struct{}{}:
	default:
		return errHashBusy
	}
	defer func() { <-p.tickets }()
	select {
	case p.slots <- struct{}{}:
	default:
		t := time.NewTimer(p.wait)
		defer t.Stop()
		select {
		case p.slots <- struct{}{}:
		case <-t.C:
			return errHashBusy
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", engine.ErrUnavailable, ctx.Err())
		}
	}
	defer func() { <-p.slots }()
	f()
	return nil
}

func retrySeconds(d time.Duration) int64 { return max(1, int64((d+time.Second-1)/time.Second)) }

// login checks a password. Each attempt is counted before the password is
// checked, in one step against three limits: the username from this
// address, the username from anywhere (a higher ceiling against a guess
// spread over many addresses) and this address for any username. So
// parallel logins test no more passwords than the limits allow, a
// stranger's guesses do not lock the owner out from elsewhere, and a
// flood for one name costs a few hashes. A login that succeeds, or whose
// password was never checked, is taken back: successful logins are not
// limited.
func (s *Server) login(c echo.Context) error {
	if s.draining.Load() {
		return errorf(engine.ErrShutdown, "server is shutting down; retry")
	}
	var req credentials
	if err := s.bind(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	name := strings.ToLower(req.Username)
	if len(name) > 64 { // a key per garbage name is enough
		name = name[:64]
	}
	addr := clientAddr(c)
	counted, err := s.attempt(ctx, "login", errTooManyAttempts, errTooManyAttempts.Message,
		limit{"login-user-addr:" + addr + "|" + name, s.opts.LoginUserAddrLimit, s.opts.LoginUserAddrWindow},
		limit{"login-user:" + name, s.opts.LoginUserLimit, s.opts.LoginUserWindow},
		limit{"login-addr:" + addr, s.opts.LoginAddrLimit, s.opts.LoginAddrWindow})
	if err != nil {
		if errors.Is(err, errTooManyAttempts) {
			s.opts.Observe.authFailure("too_many_attempts")
		}
		return err
	}
	failed := false
	defer func() {
		if !failed {
			s.release(counted)
		}
	}()
	if _, err := engine.NormalizeUsername(req.Username); err != nil {
		failed = true
		s.opts.Observe.authFailure("invalid_credentials")
		return errBadCredentials
	}
	hash, err := s.opts.Users.PasswordHash(ctx, name)
	known := err == nil && hash != ""
	switch {
	case errors.Is(err, engine.ErrNotFound), err == nil && hash == "":
		// A user made by the server API without a password (a bot) cannot
		// log in; it is answered like an unknown user.
		// Spend the time a real check takes, so timing does not tell
		// unknown users from wrong passwords.
		hash = s.dummyHash
	case err != nil:
		return err
	}
	var ok bool
	if err := s.loginHashes.run(ctx, func() { ok, err = argon2id.ComparePasswordAndHash(req.Password, hash) }); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	if !ok || !known {
		failed = true
		s.opts.Observe.authFailure("invalid_credentials")
		return errBadCredentials
	}
	tok, cl, err := s.issue(name, s.opts.TokenTTL)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tokenBody(tok, cl))
}

// tokenLimit counts a refresh or logout against the user's limit: each
// logout stores a revocation for the token's lifetime, and each refresh
// mints a token that a logout can revoke.
func (s *Server) tokenLimit(c echo.Context, user string) error {
	_, err := s.attempt(c.Request().Context(), "refresh", engine.ErrRateLimited, "too many refreshes and logouts; retry later",
		limit{"token-user:" + user, s.opts.RefreshLimit, s.opts.RefreshWindow})
	return err
}

// logout revokes the token used or, with {"all":true}, every token of
// the user issued until now.
func (s *Server) logout(c echo.Context) error {
	cl := claimsOf(c)
	var req struct {
		All bool `json:"all"`
	}
	if c.Request().ContentLength != 0 {
		if err := s.bindOptional(c, &req); err != nil {
			return err
		}
	}
	if err := s.tokenLimit(c, cl.User); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.opts.Timeout)
	defer cancel()
	if req.All {
		now := s.opts.Now()
		if err := s.opts.Tokens.RevokeUser(ctx, cl.User, now); err != nil {
			return fmt.Errorf("%w: %v", engine.ErrUnavailable, err)
		}
		// Every socket of the user, on every instance, whose token was
		// issued until now (the user's channel carries it).
		if err := s.opts.Engine.Disconnect(ctx, cl.User, now); err != nil {
			return err
		}
	}
	// The token used is revoked by itself too: that closes its sockets on
	// every instance at once.
	if err := s.opts.Tokens.Revoke(ctx, cl.ID, cl.Expires); err != nil {
		return fmt.Errorf("%w: %v", engine.ErrUnavailable, err)
	}
	// At once here; other instances hear it on the user's channel.
	if err := s.opts.Engine.RevokeToken(ctx, cl.User, cl.ID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// bindOptional is bind for a body that may also be empty.
func (s *Server) bindOptional(c echo.Context, v any) error {
	r := c.Request()
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, s.opts.MaxBody))
	if err != nil {
		return s.bind(c, v) // answers the error in bind's words
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return s.bind(c, v)
}

func (s *Server) refresh(c echo.Context) error {
	user := claimsOf(c).User
	if err := s.tokenLimit(c, user); err != nil {
		return err
	}
	tok, cl, err := s.issue(user, s.opts.TokenTTL)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tokenBody(tok, cl))
}

func (s *Server) me(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"username": claimsOf(c).User})
}

// initAuth sets the defaults of the options of this file and builds the
// hash pools. New calls it.
func (s *Server) initAuth() error {
	o := &s.opts
	setDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	setInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	setInt(&o.LoginUserAddrLimit, 10)
	setDur(&o.LoginUserAddrWindow, 5*time.Minute)
	setInt(&o.LoginUserLimit, 100)
	setDur(&o.LoginUserWindow, 5*time.Minute)
	setInt(&o.LoginAddrLimit, 100)
	setDur(&o.LoginAddrWindow, time.Minute)
	setDur(&o.RegisterAddrWindow, time.Hour)
	setInt(&o.RefreshLimit, 30)
	setDur(&o.RefreshWindow, 5*time.Minute)
	setInt(&o.LoginHashes, runtime.GOMAXPROCS(0))
	setInt(&o.RegisterHashes, 1)
	setInt(&o.HashQueue, 64)
	setDur(&o.HashWait, 10*time.Second)
	if o.Argon2 == nil {
		o.Argon2 = argon2id.DefaultParams
	}
	s.loginHashes = newHashPool(o.LoginHashes, o.HashQueue, o.HashWait)
	s.registerHashes = newHashPool(o.RegisterHashes, o.HashQueue, o.HashWait)
	var err error
	s.dummyHash, err = argon2id.CreateHash("not a password of anyone", o.Argon2)
	return err
}

// LimitListener returns ln capped to max open connections per client
// address (an IPv6 address counts with its /64), HTTP and WebSocket
// alike: with the server's read timeout it keeps one machine from holding
// every file descriptor with connections that never finish a request. A
// connection over the cap is answered 429 with Retry-After and closed,
// and refused, if not nil, is called. Connections from trusted are not
// capped, since many clients share a proxy's address: cap them at the
// proxy (testdata/deploy/nginx.conf does). With max 0 it returns ln.
func LimitListener(ln net.Listener, max int, trusted []netip.Prefix, refused func()) net.Listener {
	if max <= 0 {
		return ln
	}
	if refused == nil {
		refused = func() {}
	}
	return &addrListener{Listener: ln, max: max, trusted: trusted, refused: refused,
		open: make(map[string]int), lingering: make(chan struct{}, 256)}
}

// addrListener is LimitListener's listener. It is safe for concurrent use.
type addrListener struct {
	net.Listener
	max       int
	trusted   []netip.Prefix
	refused   func()
	mu        sync.Mutex
	open      map[string]int // by addrKey; entries at 0 are deleted
	lingering chan struct{}  // bounds the goroutines that answer refused connections
}

func (l *addrListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
		if err != nil || l.isTrusted(ap.Addr()) {
			return c, nil
		}
		key := addrKey(ap.Addr().String())
		l.mu.Lock()
		if l.open[key] >= l.max {
			l.mu.Unlock()
			l.refused()
			l.refuse(c)
			continue
		}
		l.open[key]++
		l.mu.Unlock()
		return &addrConn{Conn: c, l: l, key: key}, nil
	}
}

func (l *addrListener) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range l.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (l *addrListener) done(key string) {
	l.mu.Lock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
	l.mu.Unlock()
}

// refusal is the whole answer to a connection over the cap: the error
// table's rate_limited, written before any HTTP server sees the request.
var refusal = func() []byte {
	a := errorf(engine.ErrRateLimited, "too many open connections from this address")
	body := string(wire.Encode(map[string]any{"error": map[string]string{"code": a.Code, "message": a.Message}}))
	return []byte("HTTP/1.1 " + strconv.Itoa(a.Status) + " " + http.StatusText(a.Status) +
		"\r\nContent-Type: application/json\r\nRetry-After: 10\r\n" +
		"Connection: close\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// refuse answers c with refusal and closes it. It lingers briefly to read
// what the client sent, since closing with unread data resets the
// connection and the client might never see the answer; when too many
// linger already, it closes at once.
func (l *addrListener) refuse(c net.Conn) {
	select {
	case l.lingering <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	go func() {
		defer func() { <-l.lingering }()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Write(refusal); err != nil {
			return
		}
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
}

// addrConn is a connection counted by an addrListener until it is closed.
// It passes on SyscallConn and CloseWrite, which the gateway and net/http
// look for.
type addrConn struct {
	net.Conn
	l    *addrListener
	key  string
	once sync.Once
}

func (c *addrConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.done(c.key) })
	return err
}

func (c *addrConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("transport: connection has no file descriptor")
	}
	return sc.SyscallConn()
}

func (c *addrConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

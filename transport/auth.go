package transport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
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

// TokenStore keeps revoked token IDs.
type TokenStore interface {
	// Revoke marks jti revoked until until and tells every instance.
	Revoke(ctx context.Context, jti string, until time.Time) error
	// Revoked reports whether jti was revoked.
	Revoked(ctx context.Context, jti string) (bool, error)
}

// Limiter counts events in fixed windows, shared by every instance.
type Limiter interface {
	// Hit counts one event under key and returns the count and the time
	// left in the window.
	Hit(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error)
	// Count returns the count under key and the time left in its window.
	Count(ctx context.Context, key string) (int64, time.Duration, error)
}

// claims is a verified token.
type claims struct {
	User    string
	ID      string // jti
	Issued  time.Time
	Expires time.Time
}

// issue signs a new token for user.
func (s *Server) issue(user string) (string, claims, error) {
	now := s.opts.Now()
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	c := claims{User: user, ID: hex.EncodeToString(jti), Issued: now.Truncate(time.Second), Expires: now.Add(s.opts.TokenTTL).Truncate(time.Second)}
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

var errUnauthorized = newAPIError(http.StatusUnauthorized, wire.CodeUnauthorized, "missing, invalid, expired or revoked token")

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
	revoked, err := s.opts.Tokens.Revoked(ctx, c.ID)
	if err != nil {
		return claims{}, fmt.Errorf("%w: %v", engine.ErrUnavailable, err)
	}
	if revoked {
		s.opts.Observe.authFailure("revoked")
		return claims{}, errUnauthorized
	}
	return c, nil
}

// bearer extracts the token of a request: the Authorization header, or
// the token query parameter (browsers cannot set headers on WebSockets).
func bearer(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	return r.URL.Query().Get(wire.TokenQueryParam)
}

// requireAuth is the middleware of every /api route but register and login.
func (s *Server) requireAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok := bearer(c.Request())
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
	if s.opts.RegisterAddrLimit > 0 {
		n, ttl, err := s.opts.Limits.Hit(ctx, "register:"+c.RealIP(), s.opts.RegisterAddrWindow)
		if err != nil {
			return fmt.Errorf("%w: %v", engine.ErrUnavailable, err)
		}
		if n > int64(s.opts.RegisterAddrLimit) {
			s.opts.Observe.rateLimited("register")
			return &apiError{Status: http.StatusTooManyRequests, Code: wire.CodeRateLimited,
				Message: "too many registrations from this address", Retry: retrySeconds(ttl)}
		}
	}
	hash, err := s.hash(ctx, req.Password)
	if err != nil {
		return err
	}
	if err := s.opts.Users.CreateUser(ctx, name, hash); err != nil {
		if errors.Is(err, engine.ErrExists) {
			return newAPIError(http.StatusConflict, wire.CodeUsernameTaken, "username "+name+" is taken")
		}
		return err
	}
	return c.JSON(http.StatusCreated, map[string]string{"username": name})
}

// hash runs argon2id with at most HashConcurrency hashes at once, so a
// burst of logins queues instead of exhausting memory (each hash uses
// Argon2's memory parameter, 64 MiB by default).
func (s *Server) hash(ctx context.Context, password string) (string, error) {
	if err := s.acquireHash(ctx); err != nil {
		return "", err
	}
	defer func() { <-s.hashSem }()
	return argon2id.CreateHash(password, s.opts.Argon2)
}

func (s *Server) compare(ctx context.Context, password, hash string) (bool, error) {
	if err := s.acquireHash(ctx); err != nil {
		return false, err
	}
	defer func() { <-s.hashSem }()
	return argon2id.ComparePasswordAndHash(password, hash)
}

func (s *Server) acquireHash(ctx context.Context) error {
	select {
	case s.hashSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %v", engine.ErrUnavailable, ctx.Err())
	}
}

var errBadCredentials = newAPIError(http.StatusUnauthorized, wire.CodeInvalidCredentials, "wrong username or password")

func retrySeconds(d time.Duration) int64 { return max(1, int64((d+time.Second-1)/time.Second)) }

func (s *Server) login(c echo.Context) error {
	if s.draining.Load() {
		return newAPIError(http.StatusServiceUnavailable, wire.CodeUnavailable, "server is shutting down; retry")
	}
	var req credentials
	if err := s.bind(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	name := strings.ToLower(req.Username)
	userKey, addrKey := "login-user:"+name, "login-addr:"+c.RealIP()
	if len(name) > 64 {
		userKey = "login-user:" + name[:64]
	}
	for _, l := range []struct {
		key   string
		limit int
	}{{userKey, s.opts.LoginUserLimit}, {addrKey, s.opts.LoginAddrLimit}} {
		n, ttl, err := s.opts.Limits.Count(ctx, l.key)
		if err != nil {
			return fmt.Errorf("%w: %v", engine.ErrUnavailable, err)
		}
		if n >= int64(l.limit) {
			s.opts.Observe.rateLimited("login")
			s.opts.Observe.authFailure("too_many_attempts")
			return &apiError{Status: http.StatusTooManyRequests, Code: wire.CodeTooManyAttempts,
				Message: "too many failed logins; retry later", Retry: retrySeconds(ttl)}
		}
	}
	fail := func() error {
		for _, hit := range []struct {
			key    string
			window time.Duration
		}{{userKey, s.opts.LoginUserWindow}, {addrKey, s.opts.LoginAddrWindow}} {
			if _, _, err := s.opts.Limits.Hit(ctx, hit.key, hit.window); err != nil {
				return fmt.Errorf("%w: %v", engine.ErrUnavailable, err)
			}
		}
		s.opts.Observe.authFailure("invalid_credentials")
		return errBadCredentials
	}
	if _, err := engine.NormalizeUsername(req.Username); err != nil {
		return fail()
	}
	hash, err := s.opts.Users.PasswordHash(ctx, name)
	switch {
	case errors.Is(err, engine.ErrNotFound):
		// Spend the time a real check takes, so timing does not tell
		// unknown users from wrong passwords.
		_, _ = s.compare(ctx, req.Password, s.dummyHash)
		return fail()
	case err != nil:
		return err
	}
	ok, err := s.compare(ctx, req.Password, hash)
	if err != nil {
		return err
	}
	if !ok {
		return fail()
	}
	tok, cl, err := s.issue(name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tokenBody(tok, cl))
}

func (s *Server) logout(c echo.Context) error {
	cl := claimsOf(c)
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.opts.Timeout)
	defer cancel()
	if err := s.opts.Tokens.Revoke(ctx, cl.ID, cl.Expires); err != nil {
		return fmt.Errorf("%w: %v", engine.ErrUnavailable, err)
	}
	// At once here; other instances hear it on the user's channel.
	if err := s.opts.Engine.RevokeToken(ctx, cl.User, cl.ID); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) refresh(c echo.Context) error {
	tok, cl, err := s.issue(claimsOf(c).User)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tokenBody(tok, cl))
}

func (s *Server) me(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"username": claimsOf(c).User})
}

package transport

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/redstream/chat/engine"
)

// The server API (PROTOCOL.md "Server API"): routes under /api/server
// for the application's own backend, authenticated with an API key
// (Options.APIKeys) instead of a user's token. A key is never a token
// and a token is never a key: a token does not match any key here, and
// a key is not a JWT on the user routes.

// Limits of the server API's bodies.
const (
	// maxAPIMembers bounds the members a room is created with: each is
	// looked up before the room is made.
	maxAPIMembers = 1000
	minTokenTTL   = time.Minute
	maxTokenTTL   = 30 * 24 * time.Hour
)

var errAPIKey = errorf(errUnauthorized, "missing or wrong API key")

// serverRoutes mounts the server API on api (the /api group), or, with
// no keys, answers 404 on all of it. Keys must be at least 32 bytes.
func (s *Server) serverRoutes(api *echo.Group) error {
	keys := make([][sha256.Size]byte, len(s.opts.APIKeys))
	for i, k := range s.opts.APIKeys {
		if len(k) < 32 {
			return fmt.Errorf("transport: API key %d of %d is %d bytes; each must be at least 32", i+1, len(s.opts.APIKeys), len(k))
		}
		keys[i] = sha256.Sum256([]byte(k))
	}
	if len(keys) == 0 {
		off := func(c echo.Context) error {
			return errorf(echo.ErrNotFound, "the server API is off (no API keys are configured)")
		}
		api.Any("/server", off)
		api.Any("/server/*", off)
		return nil
	}
	g := api.Group("/server", s.requireAPIKey(keys))
	g.POST("/users", s.apiCreateUser)
	g.POST("/tokens", s.apiToken)
	g.POST("/messages", s.apiPost)
	g.POST("/rooms", s.apiCreateRoom)
	g.POST("/disconnect", s.apiDisconnect)
	g.GET("/rooms/:room/presence", s.apiPresence)
	g.Any("/*", func(c echo.Context) error {
		return errorf(echo.ErrNotFound, "no such server API route")
	})
	return nil
}

// keyIndex returns the position (from 1) of the key tok is, or 0. Both
// sides are hashed first, so the comparison takes the same time whatever
// the lengths, and every key is compared: the time says nothing about
// which key, or how much of one, matched.
func keyIndex(keys [][sha256.Size]byte, tok string) int {
	sum := sha256.Sum256([]byte(tok))
	found := 0
	for i := range keys {
		eq := subtle.ConstantTimeCompare(sum[:], keys[i][:])
		found = subtle.ConstantTimeSelect(eq, i+1, found)
	}
	return found
}

// requireAPIKey is the middleware of the server API: it refuses a
// missing or wrong key with 401 (counted as auth failure "api_key") and
// logs every call with the key's position in the list, never the key.
func (s *Server) requireAPIKey(keys [][sha256.Size]byte) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			idx := 0
			if tok := headerToken(r); tok != "" {
				idx = keyIndex(keys, tok)
			}
			if idx == 0 {
				s.opts.Observe.authFailure("api_key")
				s.log.Warn("server api: refused", "method", r.Method, "path", r.URL.Path, "addr", c.RealIP(), "reason", "missing or wrong API key")
				return errAPIKey
			}
			began := s.opts.Now()
			err := next(c)
			status := c.Response().Status
			if err != nil {
				status = toAPI(err).Status
			}
			s.log.Info("server api", "key", idx, "method", r.Method, "route", c.Path(), "status", status,
				"took", s.opts.Now().Sub(began).Round(time.Microsecond))
			return err
		}
	}
}

// apiUser normalises a username that must name an existing user.
// Errors: 404 for anything else (a malformed name names nobody).
func (s *Server) apiUser(ctx context.Context, name string) (string, error) {
	u, err := engine.NormalizeUsername(name)
	if err != nil {
		return "", errorf(engine.ErrNotFound, "no such user %q", name)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	if _, err := s.opts.Users.PasswordHash(ctx, u); err != nil {
		if errors.Is(err, engine.ErrNotFound) {
			return "", errorf(engine.ErrNotFound, "no such user %s", u)
		}
		return "", err
	}
	return u, nil
}

// apiCreateUser creates a user, with a password (who can then log in) or
// without (a bot: tokens come only from the server API).
func (s *Server) apiCreateUser(c echo.Context) error {
	var req struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := s.bind(c, &req); err != nil {
		return err
	}
	name, err := engine.NormalizeUsername(req.Username)
	if err != nil {
		return err
	}
	if req.Password != "" {
		if n := utf8.RuneCountInString(req.Password); n < 8 || n > 256 {
			return fmt.Errorf("password must be 8 to 256 characters: %w", engine.ErrInvalid)
		}
	}
	if err := s.createUser(c.Request().Context(), name, req.Password, func() {}); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]string{"username": name})
}

// apiToken mints a token for a user, as a login would: the application
// logs its users in with its own login.
func (s *Server) apiToken(c echo.Context) error {
	var req struct {
		Username string `json:"username"`
		TTL      string `json:"ttl"`
	}
	if err := s.bind(c, &req); err != nil {
		return err
	}
	ttl := s.opts.TokenTTL
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d < minTokenTTL || d > maxTokenTTL {
			return errorf(engine.ErrInvalid, "ttl must be a duration from 1m to 720h (30 days), such as \"90m\"")
		}
		ttl = d
	}
	ctx := c.Request().Context()
	user, err := s.apiUser(ctx, req.Username)
	if err != nil {
		return err
	}
	tok, cl, err := s.issueLive(ctx, user, ttl)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tokenBody(tok, cl))
}

// issueLive issues a token that works at once. Token times have whole
// seconds, and revoking a user's tokens revokes those of the current
// second too; so a token minted in the second of a revocation (a
// disconnect with revoke, then a new login) would be dead on arrival.
// Such a token is minted again in the next second.
func (s *Server) issueLive(ctx context.Context, user string, ttl time.Duration) (string, claims, error) {
	for try := 0; ; try++ {
		tok, cl, err := s.issue(user, ttl)
		if err != nil {
			return "", claims{}, err
		}
		cctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		revoked, err := s.opts.Tokens.Revoked(cctx, cl.ID, cl.User, cl.Issued)
		cancel()
		if err != nil {
			return "", claims{}, fmt.Errorf("%w: %v", engine.ErrUnavailable, err)
		}
		if !revoked {
			return tok, cl, nil
		}
		if try > 0 {
			return "", claims{}, fmt.Errorf("a fresh token of %s reads as revoked: %w", user, engine.ErrUnavailable)
		}
		next := cl.Issued.Add(time.Second)
		t := time.NewTimer(max(time.Until(next), 0) + 10*time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", claims{}, fmt.Errorf("%w: %v", engine.ErrUnavailable, ctx.Err())
		case <-t.C:
		}
	}
}

// apiPost sends a message as a user, exactly like that user's own send
// (their rights in the room, idempotency by client_id), without the
// per-user send rate.
func (s *Server) apiPost(c echo.Context) error {
	var req struct {
		Room     string `json:"room"`
		User     string `json:"user"`
		Text     string `json:"text"`
		ClientID string `json:"client_id"`
		ReplyTo  string `json:"reply_to"`
	}
	if err := s.bind(c, &req); err != nil {
		return err
	}
	if req.Room == "" {
		return errorf(engine.ErrInvalid, "room is required")
	}
	user, err := s.apiUser(c.Request().Context(), req.User)
	if err != nil {
		return err
	}
	w, err := postBody{Text: req.Text, ClientID: req.ClientID, ReplyTo: req.ReplyTo}.write(req.Room)
	if err != nil {
		return err
	}
	w.RateExempt = true
	return s.post(c, user, w)
}

// apiCreateRoom creates a channel with an owner (or none, like the
// built-in channels) and members, without the per-user channel limit.
func (s *Server) apiCreateRoom(c echo.Context) error {
	var req createRoomBody
	if err := s.bind(c, &req); err != nil {
		return err
	}
	if len(req.Members) > maxAPIMembers {
		return errorf(engine.ErrInvalid, "at most %d members at creation; add more with the members route", maxAPIMembers)
	}
	spec := engine.RoomSpec{Name: req.Name, Private: req.Private, Topic: req.Topic, Owner: req.Owner, Members: req.Members}
	return s.doCreateRoom(c, "", spec, true)
}

// apiDisconnect closes every socket of a user on every instance (1008)
// and, with revoke, makes every token issued to them until now stop
// working, on every request and upgrade of every instance.
func (s *Server) apiDisconnect(c echo.Context) error {
	var req struct {
		Username string `json:"username"`
		Revoke   bool   `json:"revoke"`
	}
	if err := s.bind(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	user, err := s.apiUser(ctx, req.Username)
	if err != nil {
		return err
	}
	if req.Revoke {
		// Before the sockets close, so that a client reconnecting at once
		// finds its token refused.
		cctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		err := s.opts.Tokens.RevokeUser(cctx, user, s.opts.Now())
		cancel()
		if err != nil {
			return fmt.Errorf("%w: %v", engine.ErrUnavailable, err)
		}
	}
	if err := s.opts.Engine.Disconnect(ctx, user, time.Time{}); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// apiPresence lists who is online in a room, on any instance.
func (s *Server) apiPresence(c echo.Context) error {
	room, err := roomParam(c)
	if err != nil {
		return err
	}
	online, err := s.opts.Engine.Online(c.Request().Context(), room)
	if err != nil {
		return err
	}
	if online == nil {
		online = []string{}
	}
	return c.JSON(http.StatusOK, map[string]any{"online": online})
}

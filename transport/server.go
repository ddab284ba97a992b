package transport

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/labstack/echo/v4"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/transport/wire"
)

// Options configures a Server. The zero value of each field means its
// default, named in the field's comment; Engine, Users, Tokens, Limits and
// Secret are required.
type Options struct {
	Engine *engine.Engine
	Users  UserStore
	Tokens TokenStore
	Limits Limiter
	// Secret is the HS256 key, at least 32 bytes.
	Secret []byte
	// TokenTTL is a token's lifetime. Zero means 24h.
	TokenTTL time.Duration
	// AllowedOrigins are extra Origin host patterns allowed on /ws
	// (path.Match syntax); the same host is always allowed.
	AllowedOrigins []string
	// MaxFrame bounds a client frame in bytes. Zero means 64 KiB.
	MaxFrame int64
	// MaxBody bounds a REST body in bytes. Zero means 64 KiB.
	MaxBody int64
	// MaxConns bounds the sockets of this instance. Zero means 100000.
	MaxConns int
	// Failed-login limits: per username and client address (zero: 10 in
	// 5m), per username from anywhere (zero: 100 in 5m) and per address
	// (zero: 100 in 1m), the PROTOCOL.md defaults.
	LoginUserAddrLimit  int
	LoginUserAddrWindow time.Duration
	LoginUserLimit      int
	LoginUserWindow     time.Duration
	LoginAddrLimit      int
	LoginAddrWindow     time.Duration
	// RegisterAddrLimit bounds registrations per client address per
	// RegisterAddrWindow (zero: 1h). Zero means no limit.
	RegisterAddrLimit  int
	RegisterAddrWindow time.Duration
	// RefreshLimit bounds refreshes and logouts together per user per
	// RefreshWindow. Zero means 30 in 5m.
	RefreshLimit  int
	RefreshWindow time.Duration
	// WriteTimeout bounds one socket write. Zero means 10s.
	WriteTimeout time.Duration
	// PingInterval is how often idle sockets are pinged. Zero means 30s.
	PingInterval time.Duration
	// FrameRate and FrameBurst bound, per socket, the client frames other
	// than send, edit, delete and react (PROTOCOL.md): a token bucket of
	// FrameBurst frames refilled at FrameRate a second. A frame past it
	// gets rate_limited and is dropped. Zero means 50 a second and 200.
	FrameRate  float64
	FrameBurst int
	// Timeout bounds Redis calls of one request. Zero means 2s.
	Timeout time.Duration
	// TrustedProxies are the networks whose X-Forwarded-For is believed
	// for the client address. Empty means none: the peer address counts.
	TrustedProxies []netip.Prefix
	// Ready reports whether this instance can serve (Redis answers, fan-out
	// runs); /readyz uses it. Nil means always ready.
	Ready func(ctx context.Context) error
	// Web serves the web client at / and its files. Nil means 404.
	Web http.Handler
	// Observe receives events for metrics; nil fields are skipped.
	Observe Observer
	// APIKeys are the keys of the server API (/api/server), each at least
	// 32 bytes. None turns the server API off: its routes answer 404.
	APIKeys []string
	// Metrics serves /metrics. Nil means 404.
	Metrics http.Handler
	// Pprof mounts /debug/pprof.
	Pprof bool
	// Argon2 are the password hash parameters. Nil means argon2id.DefaultParams.
	Argon2 *argon2id.Params
	// LoginHashes bounds the password checks of logins at once. Zero means
	// GOMAXPROCS.
	LoginHashes int
	// RegisterHashes bounds the password hashes of registrations at once,
	// in a pool of their own so that they cannot starve logins. Zero means 1.
	RegisterHashes int
	// HashQueue is how many requests may wait for a slot of each pool, and
	// HashWait how long; beyond either they get 503 with Retry-After. Zero
	// means 64 and 10s.
	HashQueue int
	HashWait  time.Duration
	Logger    *slog.Logger     // nil: discard
	Now       func() time.Time // nil: time.Now
	// AfterFunc is the timer source of each socket's ping and token
	// expiry timers, so that a test can drive them with Now. Nil means
	// time.AfterFunc.
	AfterFunc func(d time.Duration, f func()) Timer
}

// Timer is what Options.AfterFunc returns; *time.Timer is one. Stop and
// Reset report whether the timer had been active, as time.Timer's do.
type Timer interface {
	Stop() bool
	Reset(d time.Duration) bool
}

// Observer receives what metrics count. Every field may be nil. The
// functions are called on hot paths: they must be quick and safe for
// concurrent use. Labels passed are from small fixed sets.
type Observer struct {
	// Ack gets the time from a send frame's arrival to its ack being queued.
	Ack func(time.Duration)
	// Delivery gets, per message written to a socket, the time from the
	// message's stream ID (when Redis stored it) to the write.
	Delivery func(time.Duration)
	// ErrorFrame counts error frames by wire code.
	ErrorFrame func(code string)
	// AuthFailure counts refused logins and tokens: "invalid_credentials",
	// "too_many_attempts", "invalid_token", "revoked", "expired", and
	// refused server API calls: "api_key".
	AuthFailure func(reason string)
	// RateLimited counts limit hits: "send", "login", "register",
	// "refresh" (refreshes and logouts), "conns_per_user",
	// "conns_per_instance", "conns_per_addr" (LimitListener, when the
	// caller passes it on), "rooms_per_conn", "frames" (the per-socket
	// frame rate).
	RateLimited func(kind string)
	// Closed counts closed sockets by close code.
	Closed func(code int)
}

func (o Observer) authFailure(reason string) {
	if o.AuthFailure != nil {
		o.AuthFailure(reason)
	}
}

func (o Observer) rateLimited(kind string) {
	if o.RateLimited != nil {
		o.RateLimited(kind)
	}
}

// Server serves the REST API, the WebSocket gateway and the web client.
type Server struct {
	opts           Options
	echo           *echo.Echo
	log            *slog.Logger
	loginHashes    *hashPool
	registerHashes *hashPool
	dummyHash      string
	draining       atomic.Bool

	conns    sync.WaitGroup // open sockets
	nconns   atomic.Int64
	nextConn atomic.Int64
	mu       sync.Mutex
	live     map[*conn]struct{}
}

// New validates opts and builds the routes.
func New(opts Options) (*Server, error) {
	if opts.Engine == nil || opts.Users == nil || opts.Tokens == nil || opts.Limits == nil {
		return nil, errors.New("transport: Engine, Users, Tokens and Limits are required")
	}
	if len(opts.Secret) < 32 {
		return nil, errors.New("transport: Secret must be at least 32 bytes")
	}
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
	setDur(&opts.TokenTTL, 24*time.Hour)
	setDur(&opts.WriteTimeout, 10*time.Second)
	setDur(&opts.PingInterval, 30*time.Second)
	if opts.FrameRate <= 0 {
		opts.FrameRate = 50
	}
	setInt(&opts.FrameBurst, 200)
	setDur(&opts.Timeout, 2*time.Second)
	setInt(&opts.MaxConns, 100000)
	if opts.MaxFrame <= 0 {
		opts.MaxFrame = 64 << 10
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 64 << 10
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.AfterFunc == nil {
		opts.AfterFunc = func(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
	}
	s := &Server{
		opts: opts,
		log:  opts.Logger,
		live: make(map[*conn]struct{}),
	}
	if err := s.initAuth(); err != nil {
		return nil, err
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = ipExtractor(opts.TrustedProxies)

	api := e.Group("/api")
	api.POST("/register", s.register)
	api.POST("/login", s.login)
	auth := api.Group("", s.requireAuth)
	auth.POST("/logout", s.logout)
	auth.POST("/refresh", s.refresh)
	auth.GET("/me", s.me)
	s.roomRoutes(auth)
	if err := s.serverRoutes(api); err != nil {
		return nil, err
	}
	api.Any("/*", func(c echo.Context) error {
		return errorf(echo.ErrNotFound, "no such API route")
	})

	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", s.readyz)
	if opts.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(opts.Metrics))
	}
	if opts.Pprof {
		e.GET("/debug/pprof/*", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
		e.GET("/debug/pprof/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)))
		e.GET("/debug/pprof/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
		e.GET("/debug/pprof/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
		e.GET("/debug/pprof/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
	}
	e.GET("/ws", echo.WrapHandler(http.HandlerFunc(s.serveWS)))
	if opts.Web != nil {
		e.Match([]string{http.MethodGet, http.MethodHead}, "/*", echo.WrapHandler(opts.Web))
	}
	s.echo = e
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// ipExtractor believes X-Forwarded-For only from trusted proxies.
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		_, n, err := net.ParseCIDR(p.String())
		if err == nil {
			opts = append(opts, echo.TrustIPRange(n))
		}
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

// handleError writes every error as {"error":{"code","message"}}, as
// the error table says (toAPI).
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	a := toAPI(err)
	if a.Status >= 500 && a.Code == wire.CodeInternal {
		s.log.Error("request", "method", c.Request().Method, "path", c.Path(), "err", err)
	}
	retryAfter(c.Response().Header(), a)
	_ = c.JSON(a.Status, map[string]any{"error": map[string]string{"code": a.Code, "message": a.Message}})
}

// bind decodes a JSON body of at most MaxBody bytes into v. Unknown fields
// are ignored; anything else wrong is 400 invalid, an oversized body 413.
func (s *Server) bind(c echo.Context, v any) error {
	r := c.Request()
	body := http.MaxBytesReader(c.Response(), r.Body, s.opts.MaxBody)
	data, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errBodyTooLarge
		}
		return errorf(engine.ErrInvalid, "cannot read request body")
	}
	if err := wire.CheckJSONObject(data); err != nil {
		return errorf(engine.ErrInvalid, "request body must be a JSON object")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return errorf(engine.ErrInvalid, "request body is not valid JSON of the expected shape")
	}
	return nil
}

func (s *Server) readyz(c echo.Context) error {
	if s.draining.Load() {
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "draining"})
	}
	if s.opts.Ready != nil {
		ctx, cancel := context.WithTimeout(c.Request().Context(), s.opts.Timeout)
		defer cancel()
		if err := s.opts.Ready(ctx); err != nil {
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

// Drain stops new logins and upgrades, makes /readyz fail, and closes every
// socket with 1001 (going away), spread over grace so clients do not all
// reconnect at once; it returns when all sockets are closed or ctx ends.
func (s *Server) Drain(ctx context.Context, grace time.Duration) {
	s.draining.Store(true)
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.live))
	for c := range s.live {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	spread := grace / 2
	var timers []*time.Timer
	defer func() {
		for _, t := range timers { // Drain owns its timers: none fires after it returns
			t.Stop()
		}
	}()
	for i, c := range conns {
		if spread > 0 && len(conns) > 1 {
			at := time.Duration(int64(spread) * int64(i) / int64(len(conns)))
			timers = append(timers, time.AfterFunc(at, func() { c.sess.Kick(engine.ErrShutdown) }))
		} else {
			c.sess.Kick(engine.ErrShutdown)
		}
	}
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// Conns returns the number of open sockets.
func (s *Server) Conns() int64 { return s.nconns.Load() }

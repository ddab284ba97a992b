// Command chatd is the chat server: REST API, WebSocket gateway and web
// client, on Redis. Without REDIS_URL it runs self-contained: a private
// redis-server with append-only persistence under CHAT_DATA_DIR when one is
// installed, else an in-process store that keeps nothing across restarts.
//
// Usage:
//
//	go run ./cmd/chatd            # http://localhost:8080
//	chatd -h                      # every setting, as flag and environment variable
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/redstream/chat/config"
	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/redisproc"
	"github.com/redstream/chat/transport"
	"github.com/redstream/chat/transport/web"
	"github.com/redstream/chat/transport/wire"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "chatd:", err)
		os.Exit(1)
	}
}

// Run runs chatd until ctx is cancelled, then drains and returns. ready, if
// not nil, is called with the listening address once requests are served.
//
// chatd listens before Redis answers: until it does, /healthz answers 200
// (the process is alive, do not restart it), /readyz 503 with the reason,
// and every other request waits a moment and then gets 503 with
// Retry-After.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready func(addr string)) error {
	sub := ""
	if len(args) > 0 && args[0] == "migrate" {
		sub, args = args[0], args[1:]
	}
	cfg, err := config.Load(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, config.Usage())
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr).With("instance", cfg.Instance)
	useRedisLogger(log)
	if sub == "migrate" {
		return migrate(ctx, cfg, stdout, log)
	}
	var proxies []netip.Prefix
	for _, p := range cfg.TrustedProxies {
		if pfx, err := netip.ParsePrefix(p); err == nil {
			proxies = append(proxies, pfx)
		}
	}

	rdb, mode, cleanup, err := openRedis(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer cleanup()

	met := newMetrics()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	boot := &starter{up: make(chan struct{})}
	boot.setReason("connecting to Redis")
	hs := &http.Server{
		Handler: boot,
		// Headers and body together: a body sent a byte at a time must not
		// hold a connection (hijacked sockets lose the deadline).
		ReadTimeout:       cfg.ReadTimeout,
		ReadHeaderTimeout: min(cfg.ReadTimeout, 10*time.Second),
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	obs := met.observer()
	limited := transport.LimitListener(ln, cfg.MaxConnsPerAddr, proxies, func() { obs.RateLimited("conns_per_addr") })
	go func() { serveErr <- hs.Serve(limited) }()
	log.Info("chatd listening", "url", "http://"+displayAddr(ln.Addr()), "redis", mode)
	stopServing := func() {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			_ = hs.Close()
		}
		<-serveErr
	}

	rdb.AddHook(redisHook{met})
	var hookKinds map[engine.EntryKind]bool // nil: webhooks off, no entry is recorded for them
	if cfg.WebhookURL != "" {
		if hookKinds, err = transport.WebhookKinds(cfg.WebhookEvents); err != nil {
			stopServing()
			return err
		}
	}
	st, err := store.New(store.Options{
		Client: rdb, Instance: cfg.Instance, MaxLen: cfg.HistoryMaxLen, SendRate: cfg.SendRate, SendBurst: cfg.SendBurst,
		Timeout: cfg.RedisTimeout, PresenceTTL: cfg.PresenceTTL, WaitReplicas: cfg.RedisWaitReplicas, WaitTimeout: cfg.RedisWaitTimeout,
		Webhooks: hookKinds, Logger: log.WithGroup("store"), Hooks: []redis.Hook{redisHook{met}},
	})
	if err != nil {
		stopServing()
		return err
	}
	defer st.Close()
	secret, err := waitRedis(ctx, cfg, st, boot, log)
	if err != nil {
		stopServing()
		if ctx.Err() != nil {
			log.Info("stopped before Redis answered")
			return nil
		}
		return err
	}

	eng, err := engine.New(engine.Options{
		Log: st, Feed: st, Presence: st, Directory: st, Encoder: transport.Encoder{},
		Logger: log.WithGroup("engine"), MaxText: cfg.MaxText, QueueLen: cfg.SendQueue,
		MaxRoomsPerSession: cfg.MaxRoomsPerConn, MaxSessionsPerUser: cfg.MaxConnsPerUser,
		PresenceTTL: cfg.PresenceTTL, Timeout: cfg.RedisTimeout,
		Admins: cfg.Admins, MaxChannelsPerUser: cfg.MaxChannelsPerUser, EditWindow: cfg.EditWindow,
	})
	if err != nil {
		stopServing()
		return err
	}
	defer eng.Close()

	srv, err := transport.New(transport.Options{
		Engine: eng, Users: st, Tokens: st, Limits: st, Secret: secret, TokenTTL: cfg.TokenTTL,
		AllowedOrigins: cfg.AllowedOrigins, MaxFrame: cfg.MaxFrame, MaxBody: cfg.MaxBody, MaxConns: cfg.MaxConns,
		LoginUserAddrLimit: cfg.LoginUserAddrLimit, LoginUserAddrWindow: cfg.LoginUserAddrWindow,
		LoginUserLimit: cfg.LoginUserLimit, LoginUserWindow: cfg.LoginUserWindow,
		LoginAddrLimit: cfg.LoginAddrLimit, LoginAddrWindow: cfg.LoginAddrWindow,
		RegisterAddrLimit: cfg.RegisterAddrLimit, RegisterAddrWindow: cfg.RegisterAddrWindow,
		RefreshLimit: cfg.RefreshLimit, RefreshWindow: cfg.RefreshWindow,
		LoginHashes: cfg.LoginHashes, RegisterHashes: cfg.RegisterHashes, HashQueue: cfg.HashQueue, HashWait: cfg.HashWait,
		WriteTimeout: cfg.WriteTimeout, PingInterval: cfg.PingInterval, Timeout: cfg.RedisTimeout,
		FrameRate: cfg.FrameRate, FrameBurst: cfg.FrameBurst,
		TrustedProxies: proxies, Ready: readiness(st, eng), Web: web.Handler(), Metrics: met.handler(), Observe: obs,
		APIKeys: cfg.APIKeys, Pprof: cfg.Pprof, Logger: log.WithGroup("http"),
	})
	if err != nil {
		stopServing()
		return err
	}
	met.watch(eng, srv)
	// Webhooks run beside the server and never in its way: readiness does
	// not depend on the receiver, and nothing a client waits for waits
	// for delivery.
	var hooks *transport.Webhooks
	if hookKinds != nil {
		hooks, err = transport.NewWebhooks(transport.WebhookOptions{
			Outbox: st, URL: cfg.WebhookURL, Secret: []byte(cfg.WebhookSecret), Kinds: hookKinds,
			Instance: cfg.Instance, MaxAge: cfg.WebhookMaxAge, RedisTimeout: cfg.RedisTimeout,
			Observe: met.webhookObserver(), Logger: log.WithGroup("webhook"),
		})
		if err != nil {
			stopServing()
			return err
		}
		defer hooks.Close()
		met.watchWebhooks(hooks)
		log.Info("webhooks on", "events", strings.Join(cfg.WebhookEvents, ","), "max_age", cfg.WebhookMaxAge)
	}
	boot.run(srv)
	log.Info("chatd serving")
	if ready != nil {
		ready(ln.Addr().String())
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	}

	// Drain: readiness fails, no new logins or upgrades, sockets closed
	// with 1001 spread over the grace period, then REST finishes.
	log.Info("draining", "grace", cfg.ShutdownGrace)
	grace, cancelGrace := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancelGrace()
	srv.Drain(grace, cfg.ShutdownGrace)
	if err := hs.Shutdown(grace); err != nil {
		_ = hs.Close()
	}
	<-serveErr
	if hooks != nil {
		_ = hooks.Close() // releases its rooms: another instance goes on at once
	}
	_ = eng.Close()
	_ = st.Close()
	log.Info("stopped")
	return nil
}

// starter is the HTTP handler from the moment chatd listens: until run
// hands it the server it answers by itself (see Run), then it passes
// every request on. It is safe for concurrent use.
type starter struct {
	srv    atomic.Pointer[transport.Server]
	up     chan struct{} // closed by run
	reason atomic.Pointer[string]
}

// startWait is how long a request that arrives while chatd starts waits
// for it: the gap between listening and serving is milliseconds when
// Redis answers, so clients that raced the start do not see an error.
const startWait = 2 * time.Second

func (b *starter) setReason(r string) { b.reason.Store(&r) }

func (b *starter) run(srv *transport.Server) {
	b.srv.Store(srv)
	close(b.up)
}

func (b *starter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if srv := b.srv.Load(); srv != nil {
		srv.ServeHTTP(w, r)
		return
	}
	reason := *b.reason.Load()
	switch r.URL.Path {
	case "/healthz":
		writeBody(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	case "/readyz":
		writeBody(w, http.StatusServiceUnavailable, map[string]string{"status": "starting", "reason": reason})
		return
	}
	t := time.NewTimer(startWait)
	defer t.Stop()
	select {
	case <-b.up:
		b.srv.Load().ServeHTTP(w, r)
		return
	case <-t.C:
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Retry-After", "1")
	writeBody(w, http.StatusServiceUnavailable, map[string]any{"error": map[string]string{
		"code": wire.CodeUnavailable, "message": "chatd is starting (" + reason + "); retry shortly"}})
}

func writeBody(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// waitRedis waits until Redis answers (it may be starting, as in compose,
// or down) and reads what chatd needs from it before serving: the default
// channels and the signing key. It retries until ctx ends, telling boot
// why it waits; the log says so at once and then every 30 s.
func waitRedis(ctx context.Context, cfg config.Config, st *store.Store, boot *starter, log *slog.Logger) ([]byte, error) {
	var logged time.Time
	var lastErr string
	began := time.Now()
	for wait := 100 * time.Millisecond; ; wait = min(wait*2, 2*time.Second) {
		secret, err := prepare(ctx, cfg, st)
		if errors.Is(err, store.ErrOldLayout) {
			return nil, err // waiting will not help: say how to migrate
		}
		if err == nil {
			if !logged.IsZero() {
				log.Info("redis answers", "waited", time.Since(began).Round(time.Millisecond))
			}
			return secret, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		reason := "redis does not answer: " + err.Error()
		boot.setReason(reason)
		if logged.IsZero() || time.Since(logged) >= 30*time.Second || err.Error() != lastErr {
			log.Warn("redis does not answer; /readyz says 503 until it does", "err", err, "waited", time.Since(began).Round(time.Second))
			logged, lastErr = time.Now(), err.Error()
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// prepare pings Redis, creates the default channels and returns the
// signing key: CHAT_JWT_SECRET, or the one kept in Redis.
func prepare(ctx context.Context, cfg config.Config, st *store.Store) ([]byte, error) {
	// Long enough for go-redis's own dial retries, so that the error is
	// the dial's ("connection refused") rather than our deadline's.
	ctx, cancel := context.WithTimeout(ctx, max(5*time.Second, 2*cfg.RedisTimeout))
	defer cancel()
	if err := st.Ping(ctx); err != nil {
		return nil, err
	}
	if err := st.Init(ctx); err != nil {
		return nil, err
	}
	if cfg.JWTSecret != "" {
		return []byte(cfg.JWTSecret), nil
	}
	return st.Secret(ctx)
}

// redisLogger receives go-redis's own log lines: redis.SetLogger is
// global, so the latest Run's logger gets them.
var (
	redisLogger   atomic.Pointer[slog.Logger]
	redisLoggerMu sync.Once
)

// redisLog puts go-redis's log lines into chatd's log, in its format and
// at debug level, instead of go-redis's own lines on stderr: they repeat,
// at every retry, what chatd reports itself (its warnings, /readyz and
// the Redis metrics).
type redisLog struct{}

func (redisLog) Printf(ctx context.Context, format string, v ...any) {
	if l := redisLogger.Load(); l != nil && l.Enabled(ctx, slog.LevelDebug) {
		l.Debug("redis client", "detail", strings.TrimSpace(fmt.Sprintf(format, v...)))
	}
}

func useRedisLogger(log *slog.Logger) {
	redisLogger.Store(log)
	redisLoggerMu.Do(func() { redis.SetLogger(redisLog{}) })
}

func displayAddr(a net.Addr) string {
	s := a.String()
	if strings.HasPrefix(s, "[::]:") {
		return "localhost:" + strings.TrimPrefix(s, "[::]:")
	}
	if strings.HasPrefix(s, "0.0.0.0:") {
		return "localhost:" + strings.TrimPrefix(s, "0.0.0.0:")
	}
	return s
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	hopts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, hopts))
	}
	return slog.New(slog.NewTextHandler(w, hopts))
}

// openRedis connects to REDIS_URL, or sets up self-contained mode. cleanup
// closes the client and stops a private server.
func openRedis(ctx context.Context, cfg config.Config, log *slog.Logger) (redis.UniversalClient, string, func(), error) {
	if cfg.RedisMode == "cluster" {
		return openCluster(cfg)
	}
	opts := &redis.Options{}
	mode := ""
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	if cfg.RedisURL != "" {
		var err error
		if opts, err = redis.ParseURL(cfg.RedisURL); err != nil {
			return nil, "", nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		mode = opts.Addr
	} else {
		dir, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			return nil, "", nil, err
		}
		// The Redis files hold the signing key and every password hash:
		// other local users must not read them, nor reach the socket.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, "", nil, fmt.Errorf("CHAT_DATA_DIR: %w", err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			// A directory of another owner (a volume); the redis directory
			// inside, which chatd creates, is made 0700 all the same.
			log.Warn("CHAT_DATA_DIR cannot be made private (0700); its redis directory is", "dir", dir, "err", err)
		}
		unlock, err := lockDir(dir)
		if err != nil {
			return nil, "", nil, err
		}
		cleanups = append(cleanups, unlock)
		if _, ok := redisproc.Available(); ok {
			p, err := redisproc.Start(redisproc.Options{Dir: filepath.Join(dir, "redis"), AppendOnly: true, Private: true})
			if err != nil {
				cleanup()
				return nil, "", nil, err
			}
			cleanups = append(cleanups, func() { _ = p.Stop() })
			opts.Network, opts.Addr, opts.Password = p.Network, p.Addr, p.Password
			mode = "self-contained redis-server on " + p.Network + " " + p.Addr + ", append-only files in " + filepath.Join(dir, "redis")
		} else {
			// It listens on loopback TCP, the only way miniredis listens, so a
			// random password keeps other local users out.
			m := miniredis.NewMiniRedis()
			pw := make([]byte, 32)
			_, _ = rand.Read(pw)
			opts.Password = hex.EncodeToString(pw)
			m.RequireAuth(opts.Password)
			if err := m.Start(); err != nil {
				cleanup()
				return nil, "", nil, fmt.Errorf("in-process store: %w", err)
			}
			stopClock := redisproc.RunClock(m)
			cleanups = append(cleanups, func() { stopClock(); m.Close() })
			opts.Addr = m.Addr()
			mode = "in-process store (memory only)"
			log.Warn("no redis-server on PATH and no REDIS_URL: using the in-process store; history will NOT survive a restart. Install redis-server or set REDIS_URL to keep it.")
		}
	}
	if opts.PoolSize == 0 {
		// Every upgrade and join makes a round trip or two; the default
		// (10 per CPU) queues them when thousands connect at once.
		opts.PoolSize = 128
	}
	opts.ContextTimeoutEnabled = true
	// CLIENT SETINFO needs Redis 7.2; Debian 12 ships 7.0.
	opts.DisableIdentity = true
	// A feature of Redis Enterprise; plain Redis does not have it.
	opts.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	opts.DialTimeout = cfg.RedisTimeout
	opts.ReadTimeout = cfg.RedisTimeout
	opts.WriteTimeout = cfg.RedisTimeout
	rdb := redis.NewClient(opts)
	cleanups = append(cleanups, func() { _ = rdb.Close() })
	return rdb, mode, cleanup, nil
}

// openCluster connects to the Redis Cluster of the REDIS_URL seed list.
func openCluster(cfg config.Config) (redis.UniversalClient, string, func(), error) {
	seeds, err := config.ParseRedisSeeds(cfg.RedisURL)
	if err != nil {
		return nil, "", nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	opts := &redis.ClusterOptions{
		Addrs: seeds.Addrs, Username: seeds.Username, Password: seeds.Password,
		PoolSize:              128,
		ContextTimeoutEnabled: true,
		DisableIdentity:       true,
		DialTimeout:           cfg.RedisTimeout,
		ReadTimeout:           cfg.RedisTimeout,
		WriteTimeout:          cfg.RedisTimeout,
		// After a failover the client keeps sending a slot's commands to
		// the dead primary until it reloads its slot map: by default
		// after 60 s, or on a MOVED that a dead node never sends.
		ClusterStateReloadInterval: time.Second,
		MaintNotificationsConfig:   &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if seeds.TLS {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	rdb := redis.NewClusterClient(opts)
	mode := "redis cluster, seeds " + strings.Join(seeds.Addrs, ",")
	return rdb, mode, func() { _ = rdb.Close() }, nil
}

// migrate converts data of the earlier key layout (chatd migrate).
func migrate(ctx context.Context, cfg config.Config, stdout io.Writer, log *slog.Logger) error {
	if cfg.RedisMode == "cluster" {
		return errors.New("chatd migrate: the earlier layout ran on a single Redis; run it with CHAT_REDIS_MODE=single against that Redis")
	}
	rdb, mode, cleanup, err := openRedis(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer cleanup()
	st, err := store.New(store.Options{Client: rdb, Instance: cfg.Instance, Timeout: cfg.RedisTimeout, Logger: log.WithGroup("store")})
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	fmt.Fprintln(stdout, "chatd migrate:", mode)
	return st.Migrate(ctx, func(line string) { fmt.Fprintln(stdout, "chatd migrate:", line) })
}

// lockDir keeps two self-contained chatd processes from sharing one data
// directory (and so one set of Redis files).
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "chatd.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("CHAT_DATA_DIR: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("CHAT_DATA_DIR %s is in use by another chatd; give each self-contained instance its own, or share a Redis with REDIS_URL", dir)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// readiness: Redis answers, no tail read is failing or stuck, and delivery
// is no more than 30 s behind.
func readiness(st *store.Store, eng *engine.Engine) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := st.Ping(ctx); err != nil {
			return fmt.Errorf("redis does not answer: %v", err)
		}
		return eng.Health()
	}
}

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
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready func(addr string)) error {
	cfg, err := config.Load(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, config.Usage())
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr).With("instance", cfg.Instance)

	rdb, mode, cleanup, err := openRedis(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer cleanup()

	met := newMetrics()
	rdb.AddHook(redisHook{met})
	st, err := store.New(store.Options{
		Client: rdb, Instance: cfg.Instance, MaxLen: cfg.HistoryMaxLen, SendRate: cfg.SendRate, SendBurst: cfg.SendBurst,
		Timeout: cfg.RedisTimeout, PresenceTTL: cfg.PresenceTTL, Logger: log.WithGroup("store"), Hooks: []redis.Hook{redisHook{met}},
	})
	if err != nil {
		return err
	}
	defer st.Close()
	initCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := waitRedis(initCtx, st, log); err != nil {
		return err
	}
	if err := st.Init(initCtx); err != nil {
		return err
	}
	secret := []byte(cfg.JWTSecret)
	if len(secret) == 0 {
		if secret, err = st.Secret(initCtx); err != nil {
			return err
		}
	}

	eng, err := engine.New(engine.Options{
		Log: st, Feed: st, Presence: st, Directory: st, Encoder: transport.Encoder{},
		Logger: log.WithGroup("engine"), MaxText: cfg.MaxText, QueueLen: cfg.SendQueue,
		MaxRoomsPerSession: cfg.MaxRoomsPerConn, MaxSessionsPerUser: cfg.MaxConnsPerUser,
		PresenceTTL: cfg.PresenceTTL, Timeout: cfg.RedisTimeout,
	})
	if err != nil {
		return err
	}
	defer eng.Close()

	var proxies []netip.Prefix
	for _, p := range cfg.TrustedProxies {
		if pfx, err := netip.ParsePrefix(p); err == nil {
			proxies = append(proxies, pfx)
		}
	}
	srv, err := transport.New(transport.Options{
		Engine: eng, Users: st, Tokens: st, Limits: st, Secret: secret, TokenTTL: cfg.TokenTTL,
		AllowedOrigins: cfg.AllowedOrigins, MaxFrame: cfg.MaxFrame, MaxBody: cfg.MaxBody, MaxConns: cfg.MaxConns,
		LoginUserLimit: cfg.LoginUserLimit, LoginUserWindow: cfg.LoginUserWindow,
		LoginAddrLimit: cfg.LoginAddrLimit, LoginAddrWindow: cfg.LoginAddrWindow,
		RegisterAddrLimit: cfg.RegisterAddrLimit, RegisterAddrWindow: cfg.RegisterAddrWindow,
		WriteTimeout: cfg.WriteTimeout, PingInterval: cfg.PingInterval, Timeout: cfg.RedisTimeout,
		TrustedProxies: proxies, Ready: readiness(st, eng), Web: web.Handler(), Metrics: met.handler(), Observe: met.observer(),
		Pprof: cfg.Pprof, Logger: log.WithGroup("http"),
	})
	if err != nil {
		return err
	}
	met.watch(eng, srv)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(ln) }()
	log.Info("chatd listening", "url", "http://"+displayAddr(ln.Addr()), "redis", mode)
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
	_ = eng.Close()
	_ = st.Close()
	log.Info("stopped")
	return nil
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
func openRedis(ctx context.Context, cfg config.Config, log *slog.Logger) (*redis.Client, string, func(), error) {
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
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, "", nil, fmt.Errorf("CHAT_DATA_DIR: %w", err)
		}
		unlock, err := lockDir(dir)
		if err != nil {
			return nil, "", nil, err
		}
		cleanups = append(cleanups, unlock)
		if _, ok := redisproc.Available(); ok {
			p, err := redisproc.Start(redisproc.Options{Dir: filepath.Join(dir, "redis"), AppendOnly: true})
			if err != nil {
				cleanup()
				return nil, "", nil, err
			}
			cleanups = append(cleanups, func() { _ = p.Stop() })
			opts.Addr = p.Addr
			mode = "self-contained redis-server, append-only files in " + filepath.Join(dir, "redis")
		} else {
			m := miniredis.NewMiniRedis()
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

// waitRedis waits for Redis at startup (it may still be starting, as in
// compose), giving up when ctx ends.
func waitRedis(ctx context.Context, st *store.Store, log *slog.Logger) error {
	for wait := 100 * time.Millisecond; ; wait = min(wait*2, 2*time.Second) {
		err := st.Ping(ctx)
		if err == nil {
			return nil
		}
		log.Warn("waiting for Redis", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis did not answer: %w", err)
		case <-time.After(wait):
		}
	}
}

// readiness: Redis answers, no tail read is failing or stuck, and delivery
// is no more than 30 s behind.
func readiness(st *store.Store, eng *engine.Engine) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := st.Ping(ctx); err != nil {
			return errors.New("redis does not answer")
		}
		return eng.Health()
	}
}

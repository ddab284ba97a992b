package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redstream/chat/engine"
)

// Config holds every setting of chatd. Build one with [Default] or [Load];
// a Config built by hand should be checked with [Config.Validate].
//
// Config is a plain value: copying it is cheap and it is safe to read from
// several goroutines, but nothing in it may be modified while others read it.
type Config struct {
	// Addr is the listen address, host:port (CHAT_ADDR, -addr; default ":8080").
	Addr string
	// RedisURL is redis://[user:pass@]host:port/db or rediss://…
	// (REDIS_URL, -redis-url; default empty, which means self-contained mode).
	RedisURL string
	// DataDir is where self-contained mode keeps its Redis files
	// (CHAT_DATA_DIR, -data-dir; default "./data").
	DataDir string
	// JWTSecret is the HMAC key that signs login tokens, at least 32 bytes
	// (CHAT_JWT_SECRET, -jwt-secret; default empty, which means a random key
	// created once and kept in Redis). A flag shows in ps: prefer the
	// variable or JWTSecretFile.
	JWTSecret string
	// JWTSecretFile names a file that holds JWTSecret (one trailing newline
	// is dropped); Load reads it into JWTSecret. Setting both is an error
	// (CHAT_JWT_SECRET_FILE, -jwt-secret-file; default empty).
	JWTSecretFile string
	// TokenTTL is the lifetime of a login token, 1m to 8760h
	// (CHAT_TOKEN_TTL, -token-ttl; default 24h).
	TokenTTL time.Duration
	// AllowedOrigins are extra Origin host patterns allowed on /ws, in
	// path.Match syntax such as "*.example.com" or "localhost:3000"; the same
	// host is always allowed (CHAT_ALLOWED_ORIGINS, -allowed-origins,
	// comma-separated; default none).
	AllowedOrigins []string
	// HistoryMaxLen is the approximate number of messages kept per room
	// (CHAT_HISTORY_MAXLEN, -history-maxlen; default 100000).
	HistoryMaxLen int64
	// Instance names this instance in logs and metrics: 1 to 64 ASCII
	// letters, digits, '.', '_' or '-' (CHAT_INSTANCE, -instance; default
	// hostname-pid).
	Instance string
	// ShutdownGrace is how long a stopping instance drains before it exits,
	// 0 to 10m (CHAT_SHUTDOWN_GRACE, -shutdown-grace; default 10s).
	ShutdownGrace time.Duration
	// SendRate is the number of sends per second allowed per user
	// (CHAT_SEND_RATE, -send-rate; default 20).
	SendRate float64
	// SendBurst is the number of sends a user may make above SendRate in a
	// burst (CHAT_SEND_BURST, -send-burst; default 50).
	SendBurst int
	// FrameRate is the number of client frames other than send, edit,
	// delete and react allowed per second per socket
	// (CHAT_FRAME_RATE, -frame-rate; default 50).
	FrameRate float64
	// FrameBurst is the number of such frames a socket may send above
	// FrameRate in a burst (CHAT_FRAME_BURST, -frame-burst; default 200).
	FrameBurst int
	// MaxText is the longest message text, in characters
	// (CHAT_MAX_TEXT, -max-text; default 4000).
	MaxText int
	// MaxFrame is the largest WebSocket frame a client may send, in bytes,
	// at least 1024 (CHAT_MAX_FRAME, -max-frame; default 65536).
	MaxFrame int64
	// MaxBody is the largest REST request body, in bytes, at least 1024
	// (CHAT_MAX_BODY, -max-body; default 65536).
	MaxBody int64
	// MaxRoomsPerConn is how many rooms one socket may join
	// (CHAT_MAX_ROOMS_PER_CONN, -max-rooms-per-conn; default 100).
	MaxRoomsPerConn int
	// MaxConnsPerUser is how many sockets one user may hold open
	// (CHAT_MAX_CONNS_PER_USER, -max-conns-per-user; default 20).
	MaxConnsPerUser int
	// MaxConns is how many sockets this instance accepts; more get 503
	// (CHAT_MAX_CONNS, -max-conns; default 100000).
	MaxConns int
	// LoginUserAddrLimit is how many failed logins one username may have
	// from one client address per LoginUserAddrWindow
	// (CHAT_LOGIN_USER_ADDR_LIMIT, -login-user-addr-limit; default 10).
	LoginUserAddrLimit int
	// LoginUserAddrWindow is the window of LoginUserAddrLimit, at least 1s
	// (CHAT_LOGIN_USER_ADDR_WINDOW, -login-user-addr-window; default 5m).
	LoginUserAddrWindow time.Duration
	// LoginUserLimit is how many failed logins one username may have from
	// all addresses together per LoginUserWindow: the ceiling that stops a
	// guess spread over many addresses. It locks the owner out too, so it
	// is higher than LoginUserAddrLimit (CHAT_LOGIN_USER_LIMIT,
	// -login-user-limit; default 100).
	LoginUserLimit int
	// LoginUserWindow is the window of LoginUserLimit, at least 1s
	// (CHAT_LOGIN_USER_WINDOW, -login-user-window; default 5m).
	LoginUserWindow time.Duration
	// LoginAddrLimit is how many failed logins one client address may have
	// per LoginAddrWindow (CHAT_LOGIN_ADDR_LIMIT, -login-addr-limit;
	// default 100).
	LoginAddrLimit int
	// LoginAddrWindow is the window of LoginAddrLimit, at least 1s
	// (CHAT_LOGIN_ADDR_WINDOW, -login-addr-window; default 1m).
	LoginAddrWindow time.Duration
	// RegisterAddrLimit is how many registrations one client address may
	// make per RegisterAddrWindow: more than a household ever makes, far
	// less than a script does; 0 means unlimited, for load tests
	// (CHAT_REGISTER_ADDR_LIMIT, -register-addr-limit; default 100).
	RegisterAddrLimit int
	// RegisterAddrWindow is the window of RegisterAddrLimit, at least 1s
	// (CHAT_REGISTER_ADDR_WINDOW, -register-addr-window; default 1h).
	RegisterAddrWindow time.Duration
	// RefreshLimit is how many refreshes and logouts together one user may
	// make per RefreshWindow; each logout stores a revocation for the
	// token's lifetime (CHAT_REFRESH_LIMIT, -refresh-limit; default 30).
	RefreshLimit int
	// RefreshWindow is the window of RefreshLimit, at least 1s
	// (CHAT_REFRESH_WINDOW, -refresh-window; default 5m).
	RefreshWindow time.Duration
	// LoginHashes is how many password checks of logins run at once; 0
	// means one per CPU (CHAT_LOGIN_HASHES, -login-hashes; default 0).
	LoginHashes int
	// RegisterHashes is how many password hashes of registrations run at
	// once, in a pool apart from the logins' so that registrations cannot
	// starve them, at least 1 (CHAT_REGISTER_HASHES, -register-hashes;
	// default 1).
	RegisterHashes int
	// HashQueue is how many logins (and, apart, registrations) may wait for
	// a hash slot, at least 1; more are answered 503 with Retry-After at
	// once (CHAT_HASH_QUEUE, -hash-queue; default 64).
	HashQueue int
	// HashWait is how long a login or registration waits for a hash slot
	// before it is answered 503 with Retry-After, 10ms to 1m
	// (CHAT_HASH_WAIT, -hash-wait; default 10s).
	HashWait time.Duration
	// ReadTimeout bounds reading one request, headers and body, so a body
	// sent a byte at a time cannot hold a connection; 1s to 10m
	// (CHAT_READ_TIMEOUT, -read-timeout; default 10s).
	ReadTimeout time.Duration
	// MaxConnsPerAddr is how many connections (HTTP and WebSocket) one
	// client address may hold open; an IPv6 address counts with its /64.
	// Connections from TrustedProxies are not capped, since many clients
	// share their address: cap at the proxy. 0 means no cap
	// (CHAT_MAX_CONNS_PER_ADDR, -max-conns-per-addr; default 256).
	MaxConnsPerAddr int
	// PresenceTTL bounds how long a dead instance's users stay online: they
	// go offline within PresenceTTL + PresenceTTL/4. 1s to 10m
	// (CHAT_PRESENCE_TTL, -presence-ttl; default 40s).
	PresenceTTL time.Duration
	// SendQueue is how many frames may queue for one socket before it is
	// closed as too slow (1013), at least 16 (CHAT_SEND_QUEUE, -send-queue;
	// default 1024).
	SendQueue int
	// WriteTimeout bounds each write to a socket, at least 100ms
	// (CHAT_WRITE_TIMEOUT, -write-timeout; default 10s).
	WriteTimeout time.Duration
	// PingInterval is how often the server pings each socket, at least 1s
	// (CHAT_PING_INTERVAL, -ping-interval; default 30s).
	PingInterval time.Duration
	// RedisTimeout bounds each Redis call made for a request, at least 100ms
	// (CHAT_REDIS_TIMEOUT, -redis-timeout; default 2s).
	RedisTimeout time.Duration
	// TrustedProxies are the CIDR prefixes, such as "10.0.0.0/8", whose
	// X-Forwarded-For header is believed when finding a client's address
	// (CHAT_TRUSTED_PROXIES, -trusted-proxies, comma-separated; default none).
	TrustedProxies []string
	// LogFormat is "text" or "json" (CHAT_LOG_FORMAT, -log-format;
	// default "text").
	LogFormat string
	// LogLevel is "debug", "info", "warn" or "error"
	// (CHAT_LOG_LEVEL, -log-level; default "info").
	LogLevel string
	// Pprof mounts net/http/pprof under /debug/pprof
	// (CHAT_PPROF, -pprof; default false).
	Pprof bool

	// RedisMode is "single" (one Redis, or a primary with replicas behind
	// one address) or "cluster" (a Redis Cluster; RedisURL is then a seed
	// list, see [ParseRedisSeeds]) (CHAT_REDIS_MODE, -redis-mode; default
	// "single").
	RedisMode string
	// RedisWaitReplicas is how many replicas must hold a message before it
	// is acked (Redis WAIT), at least 0 (CHAT_REDIS_WAIT_REPLICAS,
	// -redis-wait-replicas; default 0).
	RedisWaitReplicas int
	// RedisWaitTimeout is how long an ack waits for those replicas, 10ms
	// to 1m (CHAT_REDIS_WAIT_TIMEOUT, -redis-wait-timeout; default 1s).
	RedisWaitTimeout time.Duration
	// Admins are usernames, lowercased, with owner rights in every room
	// (CHAT_ADMINS, -admins, comma-separated; default none).
	Admins []string
	// MaxChannelsPerUser is how many channels, public and private, one user
	// may create, at least 1 (CHAT_MAX_CHANNELS_PER_USER,
	// -max-channels-per-user; default 50).
	MaxChannelsPerUser int
	// EditWindow is how long after sending an author may edit a message; 0
	// means always (CHAT_EDIT_WINDOW, -edit-window; default 0).
	EditWindow time.Duration
	// APIKeys are the keys of the server API, each at least 32 bytes of
	// printable ASCII; none turns the server API off (CHAT_API_KEYS,
	// -api-keys, comma-separated; default none).
	APIKeys []string
	// WebhookURL is where events are POSTed, an http or https URL; empty
	// turns webhooks off (CHAT_WEBHOOK_URL, -webhook-url; default empty).
	WebhookURL string
	// WebhookSecret is the HMAC-SHA256 key of webhook signatures, at least
	// 32 bytes, required with WebhookURL (CHAT_WEBHOOK_SECRET,
	// -webhook-secret; default empty).
	WebhookSecret string
	// WebhookEvents are the event types POSTed: any of message, edit,
	// delete, reaction and member (CHAT_WEBHOOK_EVENTS, -webhook-events,
	// comma-separated; default message,edit,delete).
	WebhookEvents []string
	// WebhookMaxAge is how long an undelivered event is retried before it
	// is dropped, 1s to 720h (CHAT_WEBHOOK_MAX_AGE, -webhook-max-age;
	// default 24h).
	WebhookMaxAge time.Duration
}

// Default returns the configuration used when nothing is set. Its Instance
// is derived from os.Hostname and the process ID, made to pass Validate.
func Default() Config {
	return Config{
		Addr:                ":8080",
		DataDir:             "./data",
		TokenTTL:            24 * time.Hour,
		HistoryMaxLen:       100000,
		Instance:            defaultInstance(),
		ShutdownGrace:       10 * time.Second,
		SendRate:            20,
		SendBurst:           50,
		FrameRate:           50,
		FrameBurst:          200,
		MaxText:             4000,
		MaxFrame:            64 << 10,
		MaxBody:             64 << 10,
		MaxRoomsPerConn:     100,
		MaxConnsPerUser:     20,
		MaxConns:            100000,
		LoginUserAddrLimit:  10,
		LoginUserAddrWindow: 5 * time.Minute,
		LoginUserLimit:      100,
		LoginUserWindow:     5 * time.Minute,
		LoginAddrLimit:      100,
		LoginAddrWindow:     time.Minute,
		RegisterAddrLimit:   100,
		RegisterAddrWindow:  time.Hour,
		RefreshLimit:        30,
		RefreshWindow:       5 * time.Minute,
		RegisterHashes:      1,
		HashQueue:           64,
		HashWait:            10 * time.Second,
		ReadTimeout:         10 * time.Second,
		MaxConnsPerAddr:     256,
		PresenceTTL:         40 * time.Second,
		SendQueue:           1024,
		WriteTimeout:        10 * time.Second,
		PingInterval:        30 * time.Second,
		RedisTimeout:        2 * time.Second,
		LogFormat:           "text",
		LogLevel:            "info",
		RedisMode:           "single",
		RedisWaitTimeout:    time.Second,
		MaxChannelsPerUser:  50,
		WebhookEvents:       []string{"message", "edit", "delete"},
		WebhookMaxAge:       24 * time.Hour,
	}
}

// maxInstanceLen is the longest Instance name Validate accepts.
const maxInstanceLen = 64

// defaultInstance returns "hostname-pid" for this process.
func defaultInstance() string {
	host, err := os.Hostname()
	if err != nil {
		host = ""
	}
	return instanceName(host, os.Getpid())
}

// instanceName returns host-pid with characters Validate would refuse
// replaced by '-' and host shortened to fit maxInstanceLen, so that Default
// validates whatever the machine is called.
func instanceName(host string, pid int) string {
	if host == "" {
		host = "chatd"
	}
	suffix := "-" + strconv.Itoa(pid)
	host = strings.Map(func(r rune) rune {
		if !instanceRune(r) {
			return '-'
		}
		return r
	}, host) // all ASCII now, so cutting bytes below cuts characters
	if n := maxInstanceLen - len(suffix); len(host) > n {
		host = host[:n]
	}
	return host + suffix
}

// instanceRune reports whether r may appear in an Instance name.
func instanceRune(c rune) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// Load builds the configuration: it starts from Default, applies every
// environment variable that getenv reports as non-empty, then the flags in
// args (the command line without the program name, as in os.Args[1:]), and
// finally calls Validate. A flag wins over its variable, and a variable
// that cannot be parsed is not an error when its flag replaces it. A nil
// getenv means an empty environment; Load never reads os.Getenv itself.
//
// Load returns flag.ErrHelp, unwrapped, when args ask for help (-h or
// -help); the caller then prints [Usage]. Otherwise every error names the
// variable or flag at fault, and all problems found are joined with
// errors.Join, and the Config returned with an error is the zero value.
// Load prints nothing.
func Load(args []string, getenv func(string) string) (Config, error) {
	c := Default()

	envErrs := map[string]error{} // by flag name, so a flag can clear its variable's error
	if getenv != nil {
		for _, s := range settings {
			raw := getenv(s.env)
			if raw == "" {
				continue
			}
			if err := s.bind(&c).Set(raw); err != nil {
				envErrs[s.flag] = fmt.Errorf("config: %s: %w", s.env, err)
			}
		}
	}

	fs := flag.NewFlagSet("chatd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var flagErr error // the first bad flag value, in our words rather than package flag's
	for _, s := range settings {
		fs.Var(&flagValue{value: s.bind(&c), name: s.flag, err: &flagErr}, s.flag, s.usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, flag.ErrHelp
		}
		if flagErr != nil {
			return Config{}, flagErr
		}
		return Config{}, fmt.Errorf("config: %w", err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("config: unexpected argument %q (settings are flags such as -addr=:8080)", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { delete(envErrs, f.Name) })

	var errs []error
	for _, s := range settings { // in table order, for a stable message
		if err := envErrs[s.flag]; err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	if err := c.readSecretFile(); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// readSecretFile reads JWTSecretFile, if set, into JWTSecret.
func (c *Config) readSecretFile() error {
	if c.JWTSecretFile == "" {
		return nil
	}
	name := displayName("CHAT_JWT_SECRET_FILE")
	if c.JWTSecret != "" {
		return fmt.Errorf("config: %s: CHAT_JWT_SECRET is set too; set one of them", name)
	}
	b, err := os.ReadFile(c.JWTSecretFile)
	if err != nil {
		return fmt.Errorf("config: %s: %v", name, err)
	}
	// Editors and echo end the file with a newline that is no part of the key.
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return fmt.Errorf("config: %s: %s is empty", name, c.JWTSecretFile)
	}
	c.JWTSecret = string(b)
	return nil
}

// flagValue adapts a value to package flag and keeps the value's own error,
// because package flag reports it as "invalid value … for flag …" without
// wrapping it.
type flagValue struct {
	value
	name string
	err  *error
}

func (f *flagValue) Set(s string) error {
	err := f.value.Set(s)
	if err != nil && *f.err == nil {
		*f.err = fmt.Errorf("config: -%s: %w", f.name, err)
	}
	return err
}

func (f *flagValue) IsBoolFlag() bool {
	b, ok := f.value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// Validate reports every setting that is out of range or malformed, each in
// its own error naming the variable and its flag, joined with errors.Join.
// It returns nil if c is usable. Secrets are never quoted in its errors.
func (c Config) Validate() error {
	var p problems

	if c.Addr == "" {
		p.add("CHAT_ADDR", "must not be empty")
	} else if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		p.add("CHAT_ADDR", "%q is not a host:port listen address", c.Addr)
	}
	if c.RedisURL != "" {
		if err := checkRedisURL(c.RedisURL, c.RedisMode == "cluster"); err != nil {
			p.add("REDIS_URL", "%v", err)
		}
	}
	if c.DataDir == "" {
		p.add("CHAT_DATA_DIR", "must not be empty")
	}
	secretVar := "CHAT_JWT_SECRET"
	if c.JWTSecretFile != "" {
		secretVar = "CHAT_JWT_SECRET_FILE"
	}
	switch n := len(c.JWTSecret); {
	case n > 0 && n < minSecretLen:
		p.add(secretVar, "is %d bytes; it must be empty or at least %d bytes", n, minSecretLen)
	case slices.Contains(publicSecrets, c.JWTSecret):
		p.add(secretVar, "is the example secret an earlier compose.yaml shipped with; it is public, so anyone could sign tokens for any user. Set a random one (openssl rand -base64 48) or leave it empty")
	}
	p.duration("CHAT_TOKEN_TTL", c.TokenTTL, time.Minute, 8760*time.Hour)
	for _, o := range c.AllowedOrigins {
		if err := checkOriginPattern(o); err != nil {
			p.add("CHAT_ALLOWED_ORIGINS", "%q %v", o, err)
		}
	}
	p.atLeast("CHAT_HISTORY_MAXLEN", c.HistoryMaxLen, 1)
	switch {
	case c.Instance == "":
		p.add("CHAT_INSTANCE", "must not be empty")
	case len(c.Instance) > maxInstanceLen:
		p.add("CHAT_INSTANCE", "is %d characters; at most %d are allowed", len(c.Instance), maxInstanceLen)
	case strings.IndexFunc(c.Instance, func(r rune) bool { return !instanceRune(r) }) >= 0:
		p.add("CHAT_INSTANCE", "%q may hold only ASCII letters, digits, '.', '_' and '-'", c.Instance)
	}
	p.duration("CHAT_SHUTDOWN_GRACE", c.ShutdownGrace, 0, 10*time.Minute)
	if !(c.SendRate > 0) || math.IsInf(c.SendRate, 0) {
		p.add("CHAT_SEND_RATE", "%v must be a finite number greater than 0", c.SendRate)
	}
	p.atLeast("CHAT_SEND_BURST", int64(c.SendBurst), 1)
	if !(c.FrameRate > 0) || math.IsInf(c.FrameRate, 0) {
		p.add("CHAT_FRAME_RATE", "%v must be a finite number greater than 0", c.FrameRate)
	}
	p.atLeast("CHAT_FRAME_BURST", int64(c.FrameBurst), 1)
	p.atLeast("CHAT_MAX_TEXT", int64(c.MaxText), 1)
	p.atLeast("CHAT_MAX_FRAME", c.MaxFrame, 1024)
	p.atLeast("CHAT_MAX_BODY", c.MaxBody, 1024)
	p.atLeast("CHAT_MAX_ROOMS_PER_CONN", int64(c.MaxRoomsPerConn), 1)
	p.atLeast("CHAT_MAX_CONNS_PER_USER", int64(c.MaxConnsPerUser), 1)
	p.atLeast("CHAT_MAX_CONNS", int64(c.MaxConns), 1)
	p.atLeast("CHAT_LOGIN_USER_ADDR_LIMIT", int64(c.LoginUserAddrLimit), 1)
	p.duration("CHAT_LOGIN_USER_ADDR_WINDOW", c.LoginUserAddrWindow, time.Second, 0)
	p.atLeast("CHAT_LOGIN_USER_LIMIT", int64(c.LoginUserLimit), 1)
	p.duration("CHAT_LOGIN_USER_WINDOW", c.LoginUserWindow, time.Second, 0)
	p.atLeast("CHAT_LOGIN_ADDR_LIMIT", int64(c.LoginAddrLimit), 1)
	p.duration("CHAT_LOGIN_ADDR_WINDOW", c.LoginAddrWindow, time.Second, 0)
	p.atLeast("CHAT_REGISTER_ADDR_LIMIT", int64(c.RegisterAddrLimit), 0)
	p.duration("CHAT_REGISTER_ADDR_WINDOW", c.RegisterAddrWindow, time.Second, 0)
	p.atLeast("CHAT_REFRESH_LIMIT", int64(c.RefreshLimit), 1)
	p.duration("CHAT_REFRESH_WINDOW", c.RefreshWindow, time.Second, 0)
	p.atLeast("CHAT_LOGIN_HASHES", int64(c.LoginHashes), 0)
	p.atLeast("CHAT_REGISTER_HASHES", int64(c.RegisterHashes), 1)
	p.atLeast("CHAT_HASH_QUEUE", int64(c.HashQueue), 1)
	p.duration("CHAT_HASH_WAIT", c.HashWait, 10*time.Millisecond, time.Minute)
	p.duration("CHAT_READ_TIMEOUT", c.ReadTimeout, time.Second, 10*time.Minute)
	p.atLeast("CHAT_MAX_CONNS_PER_ADDR", int64(c.MaxConnsPerAddr), 0)
	p.duration("CHAT_PRESENCE_TTL", c.PresenceTTL, time.Second, 10*time.Minute)
	p.atLeast("CHAT_SEND_QUEUE", int64(c.SendQueue), 16)
	p.duration("CHAT_WRITE_TIMEOUT", c.WriteTimeout, 100*time.Millisecond, 0)
	p.duration("CHAT_PING_INTERVAL", c.PingInterval, time.Second, 0)
	p.duration("CHAT_REDIS_TIMEOUT", c.RedisTimeout, 100*time.Millisecond, 0)
	for _, s := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(s); err != nil {
			p.add("CHAT_TRUSTED_PROXIES", "%q is not a CIDR prefix such as 10.0.0.0/8", s)
		}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		p.add("CHAT_LOG_FORMAT", "%q must be text or json", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p.add("CHAT_LOG_LEVEL", "%q must be debug, info, warn or error", c.LogLevel)
	}
	c.validateFeatures(&p)
	return errors.Join(p...)
}

// validateFeatures checks the settings of cluster mode, replication,
// rooms, the server API and webhooks.
func (c Config) validateFeatures(p *problems) {
	switch c.RedisMode {
	case "single":
	case "cluster":
		if c.RedisURL == "" {
			p.add("CHAT_REDIS_MODE", "cluster needs REDIS_URL, a seed list such as redis://host1:6379?addr=host2:6379; self-contained mode is one server")
		}
	default:
		p.add("CHAT_REDIS_MODE", "%q must be single or cluster", c.RedisMode)
	}
	p.atLeast("CHAT_REDIS_WAIT_REPLICAS", int64(c.RedisWaitReplicas), 0)
	p.duration("CHAT_REDIS_WAIT_TIMEOUT", c.RedisWaitTimeout, 10*time.Millisecond, time.Minute)
	for _, a := range c.Admins {
		if err := checkUsername(a); err != nil {
			p.add("CHAT_ADMINS", "%q %v", a, err)
		}
	}
	p.atLeast("CHAT_MAX_CHANNELS_PER_USER", int64(c.MaxChannelsPerUser), 1)
	p.duration("CHAT_EDIT_WINDOW", c.EditWindow, 0, 0)
	for i, k := range c.APIKeys {
		switch {
		case len(k) < minSecretLen:
			p.add("CHAT_API_KEYS", "key %d of %d is %d bytes; each must be at least %d", i+1, len(c.APIKeys), len(k), minSecretLen)
		case strings.IndexFunc(k, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0:
			p.add("CHAT_API_KEYS", "key %d of %d holds a space or a character that is not printable ASCII; a key travels in the Authorization header", i+1, len(c.APIKeys))
		}
	}
	if c.WebhookURL != "" {
		if err := checkWebhookURL(c.WebhookURL); err != nil {
			p.add("CHAT_WEBHOOK_URL", "%v", err)
		}
		if c.WebhookSecret == "" {
			p.add("CHAT_WEBHOOK_SECRET", "is required with CHAT_WEBHOOK_URL: receivers check every event's signature with it")
		}
	}
	if n := len(c.WebhookSecret); n > 0 && n < minSecretLen {
		p.add("CHAT_WEBHOOK_SECRET", "is %d bytes; it must be at least %d bytes", n, minSecretLen)
	}
	if len(c.WebhookEvents) == 0 {
		p.add("CHAT_WEBHOOK_EVENTS", "must name at least one of %s", strings.Join(webhookEvents, ", "))
	}
	for _, e := range c.WebhookEvents {
		if !slices.Contains(webhookEvents, e) {
			p.add("CHAT_WEBHOOK_EVENTS", "%q is not one of %s", e, strings.Join(webhookEvents, ", "))
		}
	}
	p.duration("CHAT_WEBHOOK_MAX_AGE", c.WebhookMaxAge, time.Second, 720*time.Hour)
}

// webhookEvents are the event types a webhook may receive.
var webhookEvents = []string{"message", "edit", "delete", "reaction", "member"}

// publicSecrets are signing keys that were published as examples; a
// deployment that kept one lets anyone sign tokens.
var publicSecrets = []string{"change-me-to-a-long-random-secret-of-32-bytes-or-more"}

// checkUsername applies the username rule of PROTOCOL.md.
func checkUsername(name string) error {
	if _, err := engine.NormalizeUsername(name); err != nil {
		return errors.New("is not a username (3 to 32 of letters, digits, '_', '-' and '.')")
	}
	return nil
}

// checkWebhookURL checks u without quoting it: it may carry credentials.
func checkWebhookURL(u string) error {
	p, err := url.Parse(u)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("is not a valid URL: %v", err)
	}
	if p.Scheme != "http" && p.Scheme != "https" {
		return errors.New("must be an http:// or https:// URL")
	}
	if p.Host == "" {
		return errors.New("has no host")
	}
	return nil
}

// RedisSeeds is REDIS_URL in cluster mode: where to find the cluster and
// how to authenticate to every node of it.
type RedisSeeds struct {
	// Addrs are host:port seed addresses, the URL's host first, each once.
	Addrs []string
	// Username and Password are the URL's credentials, empty if none.
	Username, Password string
	// TLS is set for rediss://.
	TLS bool
}

// ParseRedisSeeds parses REDIS_URL for CHAT_REDIS_MODE=cluster:
// redis://[user:pass@]host:port?addr=host2:port2&addr=… (or rediss://).
// A cluster has only database 0, so a path other than /0 is an error, as
// is any query parameter but addr. Errors never quote the URL, which may
// hold a password.
func ParseRedisSeeds(u string) (RedisSeeds, error) {
	if err := checkRedisURL(u, true); err != nil {
		return RedisSeeds{}, err
	}
	p, _ := url.Parse(u) // checked above
	s := RedisSeeds{TLS: p.Scheme == "rediss", Username: p.User.Username()}
	s.Password, _ = p.User.Password()
	for _, a := range append([]string{p.Host}, p.Query()["addr"]...) {
		if !slices.Contains(s.Addrs, a) {
			s.Addrs = append(s.Addrs, a)
		}
	}
	return s, nil
}

// minSecretLen is the shortest non-empty JWTSecret: HS256 wants a key at
// least as long as its 256-bit hash (RFC 7518 section 3.2).
const minSecretLen = 32

// checkRedisURL checks u, a single server's URL or, with cluster, a seed
// list, without quoting it, since it may hold a password.
func checkRedisURL(u string, cluster bool) error {
	if !strings.HasPrefix(u, "redis://") && !strings.HasPrefix(u, "rediss://") {
		return errors.New("must start with redis:// or rediss://")
	}
	p, err := url.Parse(u)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password and all
		}
		return fmt.Errorf("is not a valid URL: %v", err)
	}
	db := strings.TrimPrefix(p.Path, "/")
	if db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return fmt.Errorf("database %q must be a number, as in redis://host:6379/0", db)
		}
	}
	q := p.Query()
	if !cluster {
		if q.Has("addr") {
			return errors.New("holds addr= seed addresses, which only cluster mode reads: set CHAT_REDIS_MODE=cluster")
		}
		return nil
	}
	if db != "" && db != "0" {
		return fmt.Errorf("names database %s; a Redis Cluster has only database 0", db)
	}
	for k := range q {
		if k != "addr" {
			return fmt.Errorf("has the parameter %q; in cluster mode only addr= (more seed addresses) is understood", k)
		}
	}
	if p.Host == "" {
		return errors.New("has no host:port")
	}
	for _, a := range append([]string{p.Host}, q["addr"]...) {
		host, port, err := net.SplitHostPort(a)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return fmt.Errorf("seed address %q must be host:port", a)
		}
	}
	return nil
}

// checkOriginPattern checks a pattern matched against an Origin's host[:port].
func checkOriginPattern(o string) error {
	if strings.Contains(o, "/") {
		return errors.New("must be a host pattern such as *.example.com, without scheme or path")
	}
	if _, err := path.Match(o, ""); err != nil {
		return errors.New("is not a valid pattern (path.Match syntax)")
	}
	return nil
}

// problems collects Validate's findings.
type problems []error

func (p *problems) add(env, format string, args ...any) {
	*p = append(*p, fmt.Errorf("config: %s: %s", displayName(env), fmt.Sprintf(format, args...)))
}

func (p *problems) atLeast(env string, v, min int64) {
	if v < min {
		p.add(env, "%d is less than the minimum %d", v, min)
	}
}

// duration checks min <= v and, when max is not 0, v <= max.
func (p *problems) duration(env string, v, min, max time.Duration) {
	switch {
	case v < min:
		p.add(env, "%s is less than the minimum %s", formatDuration(v), formatDuration(min))
	case max != 0 && v > max:
		p.add(env, "%s is more than the maximum %s", formatDuration(v), formatDuration(max))
	}
}

// displayName returns "CHAT_X (-x)" for a variable of the settings table.
func displayName(env string) string {
	for _, s := range settings {
		if s.env == env {
			return s.env + " (-" + s.flag + ")"
		}
	}
	return env
}

// formatDuration writes d as people do, 24h rather than 24h0m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// LogValue returns every setting, keyed by flag name, with the JWT and
// webhook secrets, the API keys and any password in a URL redacted, so
// that a Config can be logged at startup.
func (c Config) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, len(settings))
	for _, s := range settings {
		v := s.bind(&c).String()
		switch s.flag {
		case "jwt-secret", "webhook-secret", "api-keys":
			if v != "" {
				v = "[redacted]"
			}
		case "redis-url", "webhook-url":
			if u, err := url.Parse(v); err == nil {
				v = u.Redacted()
			} else {
				v = "[unparsable]"
			}
		}
		attrs = append(attrs, slog.String(s.flag, v))
	}
	return slog.GroupValue(attrs...)
}

// Usage returns the help text for chatd -h: one line per setting with its
// flag, variable, default and meaning.
func Usage() string {
	var b strings.Builder
	b.WriteString("Usage: chatd [flags]          serve\n       chatd migrate [flags]  convert data of the earlier key layout, then exit\n\n")
	b.WriteString("Every setting is read from an environment variable and may be overridden by\n")
	b.WriteString("its flag (-flag=value). Durations look like 500ms, 10s, 5m, 24h; lists are\n")
	b.WriteString("comma-separated; booleans are true or false.\n\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FLAG\tVARIABLE\tDEFAULT\tMEANING")
	for _, s := range settings {
		def := s.def
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(tw, "-%s\t%s\t%s\t%s\n", s.flag, s.env, def, s.usage)
	}
	tw.Flush()
	return b.String()
}

// setting ties one Config field to its variable, flag and help.
type setting struct {
	env   string
	flag  string
	def   string // the default as shown by Usage
	usage string
	bind  func(*Config) value
}

// settings lists every setting in the order Usage shows them.
var settings = []setting{
	{"CHAT_ADDR", "addr", ":8080", "listen address, host:port",
		func(c *Config) value { return (*stringValue)(&c.Addr) }},
	{"REDIS_URL", "redis-url", "", "redis://[user:pass@]host:port/db or rediss://…; empty: self-contained mode (a password in the flag shows in ps)",
		func(c *Config) value { return (*stringValue)(&c.RedisURL) }},
	{"CHAT_REDIS_MODE", "redis-mode", "single", "single, or cluster: REDIS_URL is then redis://[user:pass@]host:port?addr=host2:port2&addr=…",
		func(c *Config) value { return (*lowerValue)(&c.RedisMode) }},
	{"CHAT_REDIS_WAIT_REPLICAS", "redis-wait-replicas", "0", "an ack waits until this many replicas hold the message, at least 0",
		func(c *Config) value { return (*intValue)(&c.RedisWaitReplicas) }},
	{"CHAT_REDIS_WAIT_TIMEOUT", "redis-wait-timeout", "1s", "how long an ack waits for replicas, 10ms to 1m",
		func(c *Config) value { return (*durationValue)(&c.RedisWaitTimeout) }},
	{"CHAT_DATA_DIR", "data-dir", "./data", "where self-contained mode keeps its Redis files and socket (made 0700)",
		func(c *Config) value { return (*stringValue)(&c.DataDir) }},
	{"CHAT_JWT_SECRET", "jwt-secret", "", "token signing key, at least 32 bytes; empty: a random key kept in Redis (the flag shows in ps: prefer the variable or CHAT_JWT_SECRET_FILE)",
		func(c *Config) value { return (*stringValue)(&c.JWTSecret) }},
	{"CHAT_JWT_SECRET_FILE", "jwt-secret-file", "", "a file holding the token signing key (one trailing newline dropped)",
		func(c *Config) value { return (*stringValue)(&c.JWTSecretFile) }},
	{"CHAT_TOKEN_TTL", "token-ttl", "24h", "lifetime of a login token, 1m to 8760h",
		func(c *Config) value { return (*durationValue)(&c.TokenTTL) }},
	{"CHAT_ALLOWED_ORIGINS", "allowed-origins", "", "extra Origin host patterns allowed on /ws, e.g. *.example.com,localhost:3000",
		func(c *Config) value { return (*listValue)(&c.AllowedOrigins) }},
	{"CHAT_ADMINS", "admins", "", "usernames with owner rights in every room, comma-separated",
		func(c *Config) value { return (*lowerListValue)(&c.Admins) }},
	{"CHAT_HISTORY_MAXLEN", "history-maxlen", "100000", "messages kept per room (approximate), at least 1",
		func(c *Config) value { return (*int64Value)(&c.HistoryMaxLen) }},
	{"CHAT_EDIT_WINDOW", "edit-window", "0s", "how long after sending an author may edit a message; 0: always",
		func(c *Config) value { return (*durationValue)(&c.EditWindow) }},
	{"CHAT_INSTANCE", "instance", "hostname-pid", "this instance's name in logs and metrics: up to 64 of letters, digits . _ -",
		func(c *Config) value { return (*stringValue)(&c.Instance) }},
	{"CHAT_SHUTDOWN_GRACE", "shutdown-grace", "10s", "how long a stopping instance drains, 0 to 10m",
		func(c *Config) value { return (*durationValue)(&c.ShutdownGrace) }},
	{"CHAT_SEND_RATE", "send-rate", "20", "sends (and edits, deletes, reactions) per second per user, more than 0",
		func(c *Config) value { return (*floatValue)(&c.SendRate) }},
	{"CHAT_SEND_BURST", "send-burst", "50", "sends per user allowed in a burst above the rate, at least 1",
		func(c *Config) value { return (*intValue)(&c.SendBurst) }},
	{"CHAT_FRAME_RATE", "frame-rate", "50", "other client frames per second per socket, more than 0",
		func(c *Config) value { return (*floatValue)(&c.FrameRate) }},
	{"CHAT_FRAME_BURST", "frame-burst", "200", "other client frames per socket allowed in a burst above the rate, at least 1",
		func(c *Config) value { return (*intValue)(&c.FrameBurst) }},
	{"CHAT_MAX_TEXT", "max-text", "4000", "characters per message, at least 1",
		func(c *Config) value { return (*intValue)(&c.MaxText) }},
	{"CHAT_MAX_FRAME", "max-frame", "65536", "bytes per WebSocket frame from a client, at least 1024",
		func(c *Config) value { return (*int64Value)(&c.MaxFrame) }},
	{"CHAT_MAX_BODY", "max-body", "65536", "bytes per REST request body, at least 1024",
		func(c *Config) value { return (*int64Value)(&c.MaxBody) }},
	{"CHAT_READ_TIMEOUT", "read-timeout", "10s", "bound on reading one request, headers and body, 1s to 10m",
		func(c *Config) value { return (*durationValue)(&c.ReadTimeout) }},
	{"CHAT_MAX_CHANNELS_PER_USER", "max-channels-per-user", "50", "channels one user may create, at least 1",
		func(c *Config) value { return (*intValue)(&c.MaxChannelsPerUser) }},
	{"CHAT_MAX_ROOMS_PER_CONN", "max-rooms-per-conn", "100", "rooms one socket may join, at least 1",
		func(c *Config) value { return (*intValue)(&c.MaxRoomsPerConn) }},
	{"CHAT_MAX_CONNS_PER_USER", "max-conns-per-user", "20", "sockets one user may hold open, at least 1",
		func(c *Config) value { return (*intValue)(&c.MaxConnsPerUser) }},
	{"CHAT_MAX_CONNS_PER_ADDR", "max-conns-per-addr", "256", "connections one client address (IPv6: its /64) may hold open; trusted proxies are not capped; 0: no cap",
		func(c *Config) value { return (*intValue)(&c.MaxConnsPerAddr) }},
	{"CHAT_MAX_CONNS", "max-conns", "100000", "sockets per instance, at least 1; more get 503",
		func(c *Config) value { return (*intValue)(&c.MaxConns) }},
	{"CHAT_LOGIN_USER_ADDR_LIMIT", "login-user-addr-limit", "10", "failed logins per username and client address per window, at least 1",
		func(c *Config) value { return (*intValue)(&c.LoginUserAddrLimit) }},
	{"CHAT_LOGIN_USER_ADDR_WINDOW", "login-user-addr-window", "5m", "window of the per-username-and-address login limit, at least 1s",
		func(c *Config) value { return (*durationValue)(&c.LoginUserAddrWindow) }},
	{"CHAT_LOGIN_USER_LIMIT", "login-user-limit", "100", "failed logins per username from all addresses per window, at least 1",
		func(c *Config) value { return (*intValue)(&c.LoginUserLimit) }},
	{"CHAT_LOGIN_USER_WINDOW", "login-user-window", "5m", "window of the per-username login limit, at least 1s",
		func(c *Config) value { return (*durationValue)(&c.LoginUserWindow) }},
	{"CHAT_LOGIN_ADDR_LIMIT", "login-addr-limit", "100", "failed logins per client address per window, at least 1",
		func(c *Config) value { return (*intValue)(&c.LoginAddrLimit) }},
	{"CHAT_LOGIN_ADDR_WINDOW", "login-addr-window", "1m", "window of the per-address login limit, at least 1s",
		func(c *Config) value { return (*durationValue)(&c.LoginAddrWindow) }},
	{"CHAT_REGISTER_ADDR_LIMIT", "register-addr-limit", "100", "registrations per client address per window; 0: unlimited (load tests)",
		func(c *Config) value { return (*intValue)(&c.RegisterAddrLimit) }},
	{"CHAT_REGISTER_ADDR_WINDOW", "register-addr-window", "1h", "window of the registration limit, at least 1s",
		func(c *Config) value { return (*durationValue)(&c.RegisterAddrWindow) }},
	{"CHAT_REFRESH_LIMIT", "refresh-limit", "30", "refreshes and logouts per user per window, at least 1",
		func(c *Config) value { return (*intValue)(&c.RefreshLimit) }},
	{"CHAT_REFRESH_WINDOW", "refresh-window", "5m", "window of the refresh and logout limit, at least 1s",
		func(c *Config) value { return (*durationValue)(&c.RefreshWindow) }},
	{"CHAT_LOGIN_HASHES", "login-hashes", "0", "password checks of logins at once; 0: one per CPU",
		func(c *Config) value { return (*intValue)(&c.LoginHashes) }},
	{"CHAT_REGISTER_HASHES", "register-hashes", "1", "password hashes of registrations at once, apart from logins, at least 1",
		func(c *Config) value { return (*intValue)(&c.RegisterHashes) }},
	{"CHAT_HASH_QUEUE", "hash-queue", "64", "logins (and, apart, registrations) waiting for a hash, at least 1; more get 503 with Retry-After",
		func(c *Config) value { return (*intValue)(&c.HashQueue) }},
	{"CHAT_HASH_WAIT", "hash-wait", "10s", "longest wait for a hash before 503 with Retry-After, 10ms to 1m",
		func(c *Config) value { return (*durationValue)(&c.HashWait) }},
	{"CHAT_PRESENCE_TTL", "presence-ttl", "40s", "a dead instance's users go offline within TTL + TTL/4; 1s to 10m",
		func(c *Config) value { return (*durationValue)(&c.PresenceTTL) }},
	{"CHAT_SEND_QUEUE", "send-queue", "1024", "frames queued per socket before it is closed as too slow, at least 16",
		func(c *Config) value { return (*intValue)(&c.SendQueue) }},
	{"CHAT_WRITE_TIMEOUT", "write-timeout", "10s", "bound on each write to a socket, at least 100ms",
		func(c *Config) value { return (*durationValue)(&c.WriteTimeout) }},
	{"CHAT_PING_INTERVAL", "ping-interval", "30s", "how often each socket is pinged, at least 1s",
		func(c *Config) value { return (*durationValue)(&c.PingInterval) }},
	{"CHAT_REDIS_TIMEOUT", "redis-timeout", "2s", "bound on each Redis call made for a request, at least 100ms",
		func(c *Config) value { return (*durationValue)(&c.RedisTimeout) }},
	{"CHAT_TRUSTED_PROXIES", "trusted-proxies", "", "CIDR prefixes of your own proxies, whose X-Forwarded-For is believed, e.g. 10.0.0.5/32",
		func(c *Config) value { return (*listValue)(&c.TrustedProxies) }},
	{"CHAT_API_KEYS", "api-keys", "", "keys of the server API, each at least 32 bytes, comma-separated; empty: no server API (the flag shows in ps)",
		func(c *Config) value { return (*listValue)(&c.APIKeys) }},
	{"CHAT_WEBHOOK_URL", "webhook-url", "", "http or https URL that events are POSTed to; empty: no webhooks",
		func(c *Config) value { return (*stringValue)(&c.WebhookURL) }},
	{"CHAT_WEBHOOK_SECRET", "webhook-secret", "", "HMAC-SHA256 key of webhook signatures, at least 32 bytes (the flag shows in ps)",
		func(c *Config) value { return (*stringValue)(&c.WebhookSecret) }},
	{"CHAT_WEBHOOK_EVENTS", "webhook-events", "message,edit,delete", "events POSTed: any of message, edit, delete, reaction, member",
		func(c *Config) value { return (*lowerListValue)(&c.WebhookEvents) }},
	{"CHAT_WEBHOOK_MAX_AGE", "webhook-max-age", "24h", "how long an undelivered event is retried, 1s to 720h",
		func(c *Config) value { return (*durationValue)(&c.WebhookMaxAge) }},
	{"CHAT_LOG_FORMAT", "log-format", "text", "log format: text or json",
		func(c *Config) value { return (*lowerValue)(&c.LogFormat) }},
	{"CHAT_LOG_LEVEL", "log-level", "info", "log level: debug, info, warn or error",
		func(c *Config) value { return (*lowerValue)(&c.LogLevel) }},
	{"CHAT_PPROF", "pprof", "false", "mount /debug/pprof (do not expose it publicly)",
		func(c *Config) value { return (*boolValue)(&c.Pprof) }},
}

// value is a Config field as text, shared by variables and flags so both
// parse alike. Set's errors quote the input but not the setting's name,
// which the caller adds.
type value interface {
	String() string
	Set(string) error
}

type stringValue string

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }

// lowerValue is a keyword, compared without regard to case or spaces.
type lowerValue string

func (v *lowerValue) String() string { return string(*v) }
func (v *lowerValue) Set(s string) error {
	*v = lowerValue(strings.ToLower(strings.TrimSpace(s)))
	return nil
}

type durationValue time.Duration

func (v *durationValue) String() string { return formatDuration(time.Duration(*v)) }
func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a duration (such as 500ms, 10s, 5m, 24h)", s)
	}
	*v = durationValue(d)
	return nil
}

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return numError(s, "an integer", err)
	}
	*v = intValue(n)
	return nil
}

type int64Value int64

func (v *int64Value) String() string { return strconv.FormatInt(int64(*v), 10) }
func (v *int64Value) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return numError(s, "an integer", err)
	}
	*v = int64Value(n)
	return nil
}

type floatValue float64

func (v *floatValue) String() string { return strconv.FormatFloat(float64(*v), 'g', -1, 64) }
func (v *floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return numError(s, "a number", err)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("%q is not a finite number", s)
	}
	*v = floatValue(f)
	return nil
}

func numError(s, kind string, err error) error {
	if errors.Is(err, strconv.ErrRange) {
		return fmt.Errorf("%q is out of range", s)
	}
	return fmt.Errorf("%q is not %s", s, kind)
}

type boolValue bool

func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a boolean (true or false)", s)
	}
	*v = boolValue(b)
	return nil
}

// listValue is a comma-separated list. Set replaces the whole list, so a
// flag replaces its variable rather than adding to it, and an empty value
// clears it.
type listValue []string

func (v *listValue) String() string { return strings.Join(*v, ",") }
func (v *listValue) Set(s string) error {
	var l []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			l = append(l, item)
		}
	}
	*v = l
	return nil
}

// lowerListValue is a listValue of keywords or usernames, lowercased.
type lowerListValue []string

func (v *lowerListValue) String() string { return (*listValue)(v).String() }
func (v *lowerListValue) Set(s string) error {
	return (*listValue)(v).Set(strings.ToLower(s))
}

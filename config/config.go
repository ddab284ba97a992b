package config

import (
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
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
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
	// created once and kept in Redis).
	JWTSecret string
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
	// LoginUserLimit is how many failed logins one username may have per
	// LoginUserWindow (CHAT_LOGIN_USER_LIMIT, -login-user-limit; default 10).
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
	// make per RegisterAddrWindow; 0 means unlimited
	// (CHAT_REGISTER_ADDR_LIMIT, -register-addr-limit; default 10000).
	RegisterAddrLimit int
	// RegisterAddrWindow is the window of RegisterAddrLimit, at least 1s
	// (CHAT_REGISTER_ADDR_WINDOW, -register-addr-window; default 1h).
	RegisterAddrWindow time.Duration
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
}

// Default returns the configuration used when nothing is set. Its Instance
// is derived from os.Hostname and the process ID, made to pass Validate.
func Default() Config {
	return Config{
		Addr:               ":8080",
		DataDir:            "./data",
		TokenTTL:           24 * time.Hour,
		HistoryMaxLen:      100000,
		Instance:           defaultInstance(),
		ShutdownGrace:      10 * time.Second,
		SendRate:           20,
		SendBurst:          50,
		MaxText:            4000,
		MaxFrame:           64 << 10,
		MaxBody:            64 << 10,
		MaxRoomsPerConn:    100,
		MaxConnsPerUser:    20,
		MaxConns:           100000,
		LoginUserLimit:     10,
		LoginUserWindow:    5 * time.Minute,
		LoginAddrLimit:     100,
		LoginAddrWindow:    time.Minute,
		RegisterAddrLimit:  10000,
		RegisterAddrWindow: time.Hour,
		PresenceTTL:        40 * time.Second,
		SendQueue:          1024,
		WriteTimeout:       10 * time.Second,
		PingInterval:       30 * time.Second,
		RedisTimeout:       2 * time.Second,
		LogFormat:          "text",
		LogLevel:           "info",
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

// FromEnv is Load without command-line flags.
func FromEnv(getenv func(string) string) (Config, error) {
	return Load(nil, getenv)
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
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
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
		if err := checkRedisURL(c.RedisURL); err != nil {
			p.add("REDIS_URL", "%v", err)
		}
	}
	if c.DataDir == "" {
		p.add("CHAT_DATA_DIR", "must not be empty")
	}
	if n := len(c.JWTSecret); n > 0 && n < minSecretLen {
		p.add("CHAT_JWT_SECRET", "is %d bytes; it must be empty or at least %d bytes", n, minSecretLen)
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
	p.atLeast("CHAT_MAX_TEXT", int64(c.MaxText), 1)
	p.atLeast("CHAT_MAX_FRAME", c.MaxFrame, 1024)
	p.atLeast("CHAT_MAX_BODY", c.MaxBody, 1024)
	p.atLeast("CHAT_MAX_ROOMS_PER_CONN", int64(c.MaxRoomsPerConn), 1)
	p.atLeast("CHAT_MAX_CONNS_PER_USER", int64(c.MaxConnsPerUser), 1)
	p.atLeast("CHAT_MAX_CONNS", int64(c.MaxConns), 1)
	p.atLeast("CHAT_LOGIN_USER_LIMIT", int64(c.LoginUserLimit), 1)
	p.duration("CHAT_LOGIN_USER_WINDOW", c.LoginUserWindow, time.Second, 0)
	p.atLeast("CHAT_LOGIN_ADDR_LIMIT", int64(c.LoginAddrLimit), 1)
	p.duration("CHAT_LOGIN_ADDR_WINDOW", c.LoginAddrWindow, time.Second, 0)
	p.atLeast("CHAT_REGISTER_ADDR_LIMIT", int64(c.RegisterAddrLimit), 0)
	p.duration("CHAT_REGISTER_ADDR_WINDOW", c.RegisterAddrWindow, time.Second, 0)
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
	return errors.Join(p...)
}

// minSecretLen is the shortest non-empty JWTSecret: HS256 wants a key at
// least as long as its 256-bit hash (RFC 7518 section 3.2).
const minSecretLen = 32

// checkRedisURL checks u without quoting it, since it may hold a password.
func checkRedisURL(u string) error {
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
	if db := strings.TrimPrefix(p.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return fmt.Errorf("database %q must be a number, as in redis://host:6379/0", db)
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

// LogValue returns every setting, keyed by flag name, with the JWT secret
// and any Redis password redacted, so that a Config can be logged at startup.
func (c Config) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, len(settings))
	for _, s := range settings {
		v := s.bind(&c).String()
		switch s.flag {
		case "jwt-secret":
			if v != "" {
				v = "[redacted]"
			}
		case "redis-url":
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
	b.WriteString("Usage: chatd [flags]\n\n")
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
	{"REDIS_URL", "redis-url", "", "redis://[user:pass@]host:port/db or rediss://…; empty: self-contained mode",
		func(c *Config) value { return (*stringValue)(&c.RedisURL) }},
	{"CHAT_DATA_DIR", "data-dir", "./data", "where self-contained mode keeps its Redis files",
		func(c *Config) value { return (*stringValue)(&c.DataDir) }},
	{"CHAT_JWT_SECRET", "jwt-secret", "", "token signing key, at least 32 bytes; empty: a random key kept in Redis (prefer the variable: flags show in ps)",
		func(c *Config) value { return (*stringValue)(&c.JWTSecret) }},
	{"CHAT_TOKEN_TTL", "token-ttl", "24h", "lifetime of a login token, 1m to 8760h",
		func(c *Config) value { return (*durationValue)(&c.TokenTTL) }},
	{"CHAT_ALLOWED_ORIGINS", "allowed-origins", "", "extra Origin host patterns allowed on /ws, e.g. *.example.com,localhost:3000",
		func(c *Config) value { return (*listValue)(&c.AllowedOrigins) }},
	{"CHAT_HISTORY_MAXLEN", "history-maxlen", "100000", "messages kept per room (approximate), at least 1",
		func(c *Config) value { return (*int64Value)(&c.HistoryMaxLen) }},
	{"CHAT_INSTANCE", "instance", "hostname-pid", "this instance's name in logs and metrics: up to 64 of letters, digits . _ -",
		func(c *Config) value { return (*stringValue)(&c.Instance) }},
	{"CHAT_SHUTDOWN_GRACE", "shutdown-grace", "10s", "how long a stopping instance drains, 0 to 10m",
		func(c *Config) value { return (*durationValue)(&c.ShutdownGrace) }},
	{"CHAT_SEND_RATE", "send-rate", "20", "sends per second per user, more than 0",
		func(c *Config) value { return (*floatValue)(&c.SendRate) }},
	{"CHAT_SEND_BURST", "send-burst", "50", "sends per user allowed in a burst above the rate, at least 1",
		func(c *Config) value { return (*intValue)(&c.SendBurst) }},
	{"CHAT_MAX_TEXT", "max-text", "4000", "characters per message, at least 1",
		func(c *Config) value { return (*intValue)(&c.MaxText) }},
	{"CHAT_MAX_FRAME", "max-frame", "65536", "bytes per WebSocket frame from a client, at least 1024",
		func(c *Config) value { return (*int64Value)(&c.MaxFrame) }},
	{"CHAT_MAX_BODY", "max-body", "65536", "bytes per REST request body, at least 1024",
		func(c *Config) value { return (*int64Value)(&c.MaxBody) }},
	{"CHAT_MAX_ROOMS_PER_CONN", "max-rooms-per-conn", "100", "rooms one socket may join, at least 1",
		func(c *Config) value { return (*intValue)(&c.MaxRoomsPerConn) }},
	{"CHAT_MAX_CONNS_PER_USER", "max-conns-per-user", "20", "sockets one user may hold open, at least 1",
		func(c *Config) value { return (*intValue)(&c.MaxConnsPerUser) }},
	{"CHAT_MAX_CONNS", "max-conns", "100000", "sockets per instance, at least 1; more get 503",
		func(c *Config) value { return (*intValue)(&c.MaxConns) }},
	{"CHAT_LOGIN_USER_LIMIT", "login-user-limit", "10", "failed logins per username per window, at least 1",
		func(c *Config) value { return (*intValue)(&c.LoginUserLimit) }},
	{"CHAT_LOGIN_USER_WINDOW", "login-user-window", "5m", "window of the per-username login limit, at least 1s",
		func(c *Config) value { return (*durationValue)(&c.LoginUserWindow) }},
	{"CHAT_LOGIN_ADDR_LIMIT", "login-addr-limit", "100", "failed logins per client address per window, at least 1",
		func(c *Config) value { return (*intValue)(&c.LoginAddrLimit) }},
	{"CHAT_LOGIN_ADDR_WINDOW", "login-addr-window", "1m", "window of the per-address login limit, at least 1s",
		func(c *Config) value { return (*durationValue)(&c.LoginAddrWindow) }},
	{"CHAT_REGISTER_ADDR_LIMIT", "register-addr-limit", "10000", "registrations per client address per window; 0: unlimited",
		func(c *Config) value { return (*intValue)(&c.RegisterAddrLimit) }},
	{"CHAT_REGISTER_ADDR_WINDOW", "register-addr-window", "1h", "window of the registration limit, at least 1s",
		func(c *Config) value { return (*durationValue)(&c.RegisterAddrWindow) }},
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
	{"CHAT_TRUSTED_PROXIES", "trusted-proxies", "", "CIDR prefixes whose X-Forwarded-For is trusted, e.g. 10.0.0.0/8,192.168.0.0/16",
		func(c *Config) value { return (*listValue)(&c.TrustedProxies) }},
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

package config

import (
	"bytes"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// env returns a getenv over m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// wantErrs fails tb unless err joins exactly the messages in want.
func wantErrs(tb testing.TB, err error, want ...string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("err = nil, want %q", want)
	}
	var got []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			got = append(got, e.Error())
		}
	} else {
		got = []string{err.Error()}
	}
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("errors:\n got %q\nwant %q", got, want)
	}
}

func TestDefault(t *testing.T) {
	t.Parallel()
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if !strings.HasSuffix(d.Instance, "-"+strconv.Itoa(os.Getpid())) {
		t.Errorf("Instance = %q, want hostname-%d", d.Instance, os.Getpid())
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"Addr", d.Addr, ":8080"},
		{"RedisURL", d.RedisURL, ""},
		{"DataDir", d.DataDir, "./data"},
		{"JWTSecret", d.JWTSecret, ""},
		{"TokenTTL", d.TokenTTL, 24 * time.Hour},
		{"AllowedOrigins", d.AllowedOrigins, []string(nil)},
		{"HistoryMaxLen", d.HistoryMaxLen, int64(100000)},
		{"ShutdownGrace", d.ShutdownGrace, 10 * time.Second},
		{"SendRate", d.SendRate, 20.0},
		{"SendBurst", d.SendBurst, 50},
		{"MaxText", d.MaxText, 4000},
		{"MaxFrame", d.MaxFrame, int64(65536)},
		{"MaxBody", d.MaxBody, int64(65536)},
		{"MaxRoomsPerConn", d.MaxRoomsPerConn, 100},
		{"MaxConnsPerUser", d.MaxConnsPerUser, 20},
		{"MaxConns", d.MaxConns, 100000},
		{"LoginUserAddrLimit", d.LoginUserAddrLimit, 10},
		{"LoginUserAddrWindow", d.LoginUserAddrWindow, 5 * time.Minute},
		{"LoginUserLimit", d.LoginUserLimit, 100},
		{"LoginUserWindow", d.LoginUserWindow, 5 * time.Minute},
		{"LoginAddrLimit", d.LoginAddrLimit, 100},
		{"LoginAddrWindow", d.LoginAddrWindow, time.Minute},
		{"RegisterAddrLimit", d.RegisterAddrLimit, 100},
		{"RegisterAddrWindow", d.RegisterAddrWindow, time.Hour},
		{"RefreshLimit", d.RefreshLimit, 30},
		{"RefreshWindow", d.RefreshWindow, 5 * time.Minute},
		{"LoginHashes", d.LoginHashes, 0},
		{"RegisterHashes", d.RegisterHashes, 1},
		{"HashQueue", d.HashQueue, 64},
		{"HashWait", d.HashWait, 10 * time.Second},
		{"ReadTimeout", d.ReadTimeout, 10 * time.Second},
		{"MaxConnsPerAddr", d.MaxConnsPerAddr, 256},
		{"JWTSecretFile", d.JWTSecretFile, ""},
		{"FrameRate", d.FrameRate, 50.0},
		{"FrameBurst", d.FrameBurst, 200},
		{"RedisMode", d.RedisMode, "single"},
		{"RedisWaitReplicas", d.RedisWaitReplicas, 0},
		{"RedisWaitTimeout", d.RedisWaitTimeout, time.Second},
		{"Admins", d.Admins, []string(nil)},
		{"MaxChannelsPerUser", d.MaxChannelsPerUser, 50},
		{"EditWindow", d.EditWindow, time.Duration(0)},
		{"APIKeys", d.APIKeys, []string(nil)},
		{"WebhookURL", d.WebhookURL, ""},
		{"WebhookSecret", d.WebhookSecret, ""},
		{"WebhookEvents", d.WebhookEvents, []string{"message", "edit", "delete"}},
		{"WebhookMaxAge", d.WebhookMaxAge, 24 * time.Hour},
		{"PresenceTTL", d.PresenceTTL, 40 * time.Second},
		{"SendQueue", d.SendQueue, 1024},
		{"WriteTimeout", d.WriteTimeout, 10 * time.Second},
		{"PingInterval", d.PingInterval, 30 * time.Second},
		{"RedisTimeout", d.RedisTimeout, 2 * time.Second},
		{"TrustedProxies", d.TrustedProxies, []string(nil)},
		{"LogFormat", d.LogFormat, "text"},
		{"LogLevel", d.LogLevel, "info"},
		{"Pprof", d.Pprof, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("%s = %#v, want %#v", tt.name, tt.got, tt.want)
			}
		})
	}
}

// TestSettings pins every variable to its flag and checks that the table
// covers each Config field exactly once.
func TestSettings(t *testing.T) {
	t.Parallel()
	want := map[string]string{
		"CHAT_ADDR": "addr", "REDIS_URL": "redis-url", "CHAT_DATA_DIR": "data-dir",
		"CHAT_JWT_SECRET": "jwt-secret", "CHAT_TOKEN_TTL": "token-ttl",
		"CHAT_ALLOWED_ORIGINS": "allowed-origins", "CHAT_HISTORY_MAXLEN": "history-maxlen",
		"CHAT_INSTANCE": "instance", "CHAT_SHUTDOWN_GRACE": "shutdown-grace",
		"CHAT_SEND_RATE": "send-rate", "CHAT_SEND_BURST": "send-burst", "CHAT_MAX_TEXT": "max-text",
		"CHAT_MAX_FRAME": "max-frame", "CHAT_MAX_BODY": "max-body",
		"CHAT_MAX_ROOMS_PER_CONN": "max-rooms-per-conn", "CHAT_MAX_CONNS_PER_USER": "max-conns-per-user",
		"CHAT_MAX_CONNS": "max-conns", "CHAT_LOGIN_USER_LIMIT": "login-user-limit",
		"CHAT_LOGIN_USER_WINDOW": "login-user-window", "CHAT_LOGIN_ADDR_LIMIT": "login-addr-limit",
		"CHAT_LOGIN_ADDR_WINDOW": "login-addr-window", "CHAT_REGISTER_ADDR_LIMIT": "register-addr-limit",
		"CHAT_REGISTER_ADDR_WINDOW": "register-addr-window", "CHAT_PRESENCE_TTL": "presence-ttl",
		"CHAT_SEND_QUEUE": "send-queue", "CHAT_WRITE_TIMEOUT": "write-timeout",
		"CHAT_PING_INTERVAL": "ping-interval", "CHAT_REDIS_TIMEOUT": "redis-timeout",
		"CHAT_TRUSTED_PROXIES": "trusted-proxies", "CHAT_LOG_FORMAT": "log-format",
		"CHAT_LOG_LEVEL": "log-level", "CHAT_PPROF": "pprof",
		"CHAT_JWT_SECRET_FILE": "jwt-secret-file", "CHAT_FRAME_RATE": "frame-rate", "CHAT_FRAME_BURST": "frame-burst",
		"CHAT_LOGIN_USER_ADDR_LIMIT": "login-user-addr-limit", "CHAT_LOGIN_USER_ADDR_WINDOW": "login-user-addr-window",
		"CHAT_REFRESH_LIMIT": "refresh-limit", "CHAT_REFRESH_WINDOW": "refresh-window",
		"CHAT_LOGIN_HASHES": "login-hashes", "CHAT_REGISTER_HASHES": "register-hashes",
		"CHAT_HASH_QUEUE": "hash-queue", "CHAT_HASH_WAIT": "hash-wait", "CHAT_READ_TIMEOUT": "read-timeout",
		"CHAT_MAX_CONNS_PER_ADDR": "max-conns-per-addr", "CHAT_REDIS_MODE": "redis-mode",
		"CHAT_REDIS_WAIT_REPLICAS": "redis-wait-replicas", "CHAT_REDIS_WAIT_TIMEOUT": "redis-wait-timeout",
		"CHAT_ADMINS": "admins", "CHAT_MAX_CHANNELS_PER_USER": "max-channels-per-user", "CHAT_EDIT_WINDOW": "edit-window",
		"CHAT_API_KEYS": "api-keys", "CHAT_WEBHOOK_URL": "webhook-url", "CHAT_WEBHOOK_SECRET": "webhook-secret",
		"CHAT_WEBHOOK_EVENTS": "webhook-events", "CHAT_WEBHOOK_MAX_AGE": "webhook-max-age",
	}
	got := map[string]string{}
	var c Config
	fields := map[string]bool{} // field names bound so far
	cv := reflect.ValueOf(&c).Elem()
	for _, s := range settings {
		if _, dup := got[s.env]; dup {
			t.Errorf("%s listed twice", s.env)
		}
		got[s.env] = s.flag
		p := reflect.ValueOf(s.bind(&c)).Pointer()
		for i := range cv.NumField() {
			if cv.Field(i).Addr().Pointer() == p {
				name := cv.Type().Field(i).Name
				if fields[name] {
					t.Errorf("%s: field %s bound twice", s.env, name)
				}
				fields[name] = true
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("settings:\n got %v\nwant %v", got, want)
	}
	if len(fields) != cv.NumField() {
		t.Errorf("settings bind %d of %d Config fields", len(fields), cv.NumField())
	}
}

func TestLoadNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		getenv func(string) string
	}{
		{"nil env", nil, nil},
		{"empty env", []string{}, env(nil)},
		{"empty values are unset", nil, env(map[string]string{"CHAT_ADDR": "", "CHAT_TOKEN_TTL": ""})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Load(tt.args, tt.getenv)
			if err != nil {
				t.Fatal(err)
			}
			if want := Default(); !reflect.DeepEqual(got, want) {
				t.Errorf("Load = %+v\nwant %+v", got, want)
			}
		})
	}
}

// everything sets every variable away from its default; everythingWant is
// the Config it gives.
var everything = map[string]string{
	"CHAT_ADDR":                 "127.0.0.1:9000",
	"REDIS_URL":                 "rediss://u:p@redis.internal:6380/2",
	"CHAT_DATA_DIR":             "/var/lib/chatd",
	"CHAT_JWT_SECRET":           strings.Repeat("s", 32),
	"CHAT_TOKEN_TTL":            "1h30m",
	"CHAT_ALLOWED_ORIGINS":      " *.example.com, ,localhost:3000,",
	"CHAT_HISTORY_MAXLEN":       "5000",
	"CHAT_INSTANCE":             "chatd-1.eu_west",
	"CHAT_SHUTDOWN_GRACE":       "0",
	"CHAT_SEND_RATE":            "2.5",
	"CHAT_SEND_BURST":           "7",
	"CHAT_MAX_TEXT":             "100",
	"CHAT_MAX_FRAME":            "1024",
	"CHAT_MAX_BODY":             "2048",
	"CHAT_MAX_ROOMS_PER_CONN":   "3",
	"CHAT_MAX_CONNS_PER_USER":   "4",
	"CHAT_MAX_CONNS":            "5",
	"CHAT_LOGIN_USER_LIMIT":     "6",
	"CHAT_LOGIN_USER_WINDOW":    "2m",
	"CHAT_LOGIN_ADDR_LIMIT":     "8",
	"CHAT_LOGIN_ADDR_WINDOW":    "3s",
	"CHAT_REGISTER_ADDR_LIMIT":  "0",
	"CHAT_REGISTER_ADDR_WINDOW": "24h",
	"CHAT_PRESENCE_TTL":         "10m",
	"CHAT_SEND_QUEUE":           "16",
	"CHAT_WRITE_TIMEOUT":        "100ms",
	"CHAT_PING_INTERVAL":        " 1s ",
	"CHAT_REDIS_TIMEOUT":        "250ms",
	"CHAT_TRUSTED_PROXIES":      "10.0.0.0/8, fd00::/8",
	"CHAT_LOG_FORMAT":           "JSON",
	"CHAT_LOG_LEVEL":            "Debug",
	"CHAT_PPROF":                "1",

	"CHAT_FRAME_RATE":             "12.5",
	"CHAT_FRAME_BURST":            "9",
	"CHAT_LOGIN_USER_ADDR_LIMIT":  "3",
	"CHAT_LOGIN_USER_ADDR_WINDOW": "90s",
	"CHAT_REFRESH_LIMIT":          "4",
	"CHAT_REFRESH_WINDOW":         "10m",
	"CHAT_LOGIN_HASHES":           "6",
	"CHAT_REGISTER_HASHES":        "2",
	"CHAT_HASH_QUEUE":             "3",
	"CHAT_HASH_WAIT":              "750ms",
	"CHAT_READ_TIMEOUT":           "30s",
	"CHAT_MAX_CONNS_PER_ADDR":     "0",
	"CHAT_REDIS_MODE":             "Single",
	"CHAT_REDIS_WAIT_REPLICAS":    "1",
	"CHAT_REDIS_WAIT_TIMEOUT":     "250ms",
	"CHAT_ADMINS":                 "Alice, bob.smith",
	"CHAT_MAX_CHANNELS_PER_USER":  "7",
	"CHAT_EDIT_WINDOW":            "15m",
	"CHAT_API_KEYS":               strings.Repeat("k", 32) + "," + strings.Repeat("K", 40),
	"CHAT_WEBHOOK_URL":            "https://hooks:pw@app.example/chat",
	"CHAT_WEBHOOK_SECRET":         strings.Repeat("w", 32),
	"CHAT_WEBHOOK_EVENTS":         "Message, member",
	"CHAT_WEBHOOK_MAX_AGE":        "1h",
}

var everythingWant = Config{
	Addr:                "127.0.0.1:9000",
	RedisURL:            "rediss://u:p@redis.internal:6380/2",
	DataDir:             "/var/lib/chatd",
	JWTSecret:           strings.Repeat("s", 32),
	TokenTTL:            90 * time.Minute,
	AllowedOrigins:      []string{"*.example.com", "localhost:3000"},
	HistoryMaxLen:       5000,
	Instance:            "chatd-1.eu_west",
	ShutdownGrace:       0,
	SendRate:            2.5,
	SendBurst:           7,
	MaxText:             100,
	MaxFrame:            1024,
	MaxBody:             2048,
	MaxRoomsPerConn:     3,
	MaxConnsPerUser:     4,
	MaxConns:            5,
	FrameRate:           12.5,
	FrameBurst:          9,
	LoginUserAddrLimit:  3,
	LoginUserAddrWindow: 90 * time.Second,
	RefreshLimit:        4,
	RefreshWindow:       10 * time.Minute,
	LoginHashes:         6,
	RegisterHashes:      2,
	HashQueue:           3,
	HashWait:            750 * time.Millisecond,
	ReadTimeout:         30 * time.Second,
	MaxConnsPerAddr:     0,
	RedisMode:           "single",
	RedisWaitReplicas:   1,
	RedisWaitTimeout:    250 * time.Millisecond,
	Admins:              []string{"alice", "bob.smith"},
	MaxChannelsPerUser:  7,
	EditWindow:          15 * time.Minute,
	APIKeys:             []string{strings.Repeat("k", 32), strings.Repeat("K", 40)},
	WebhookURL:          "https://hooks:pw@app.example/chat",
	WebhookSecret:       strings.Repeat("w", 32),
	WebhookEvents:       []string{"message", "member"},
	WebhookMaxAge:       time.Hour,
	LoginUserLimit:      6,
	LoginUserWindow:     2 * time.Minute,
	LoginAddrLimit:      8,
	LoginAddrWindow:     3 * time.Second,
	RegisterAddrLimit:   0,
	RegisterAddrWindow:  24 * time.Hour,
	PresenceTTL:         10 * time.Minute,
	SendQueue:           16,
	WriteTimeout:        100 * time.Millisecond,
	PingInterval:        time.Second,
	RedisTimeout:        250 * time.Millisecond,
	TrustedProxies:      []string{"10.0.0.0/8", "fd00::/8"},
	LogFormat:           "json",
	LogLevel:            "debug",
	Pprof:               true,
}

func TestLoadEnv(t *testing.T) {
	t.Parallel()
	t.Run("every variable", func(t *testing.T) {
		t.Parallel()
		// CHAT_JWT_SECRET_FILE cannot be set with CHAT_JWT_SECRET; it
		// is tested apart.
		if len(everything) != len(settings)-1 {
			t.Fatalf("test sets %d variables, want all %d but CHAT_JWT_SECRET_FILE", len(everything), len(settings))
		}
		got, err := Load(nil, env(everything))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, everythingWant) {
			t.Errorf("Load =\n%+v\nwant\n%+v", got, everythingWant)
		}
	})

	tests := []struct {
		name  string
		env   map[string]string
		check func(Config) bool
	}{
		{"bool true", map[string]string{"CHAT_PPROF": "true"}, func(c Config) bool { return c.Pprof }},
		{"bool T", map[string]string{"CHAT_PPROF": "T"}, func(c Config) bool { return c.Pprof }},
		{"bool false", map[string]string{"CHAT_PPROF": "0"}, func(c Config) bool { return !c.Pprof }},
		{"list of blanks is nil", map[string]string{"CHAT_ALLOWED_ORIGINS": " , ,"}, func(c Config) bool { return c.AllowedOrigins == nil }},
		{"single origin", map[string]string{"CHAT_ALLOWED_ORIGINS": "chat.example.com"}, func(c Config) bool {
			return reflect.DeepEqual(c.AllowedOrigins, []string{"chat.example.com"})
		}},
		{"redis without db", map[string]string{"REDIS_URL": "redis://localhost:6379"}, func(c Config) bool { return c.RedisURL == "redis://localhost:6379" }},
		{"secret kept verbatim", map[string]string{"CHAT_JWT_SECRET": " " + strings.Repeat("x", 31) + " "}, func(c Config) bool {
			return c.JWTSecret == " "+strings.Repeat("x", 31)+" "
		}},
		{"integer send rate", map[string]string{"CHAT_SEND_RATE": "100"}, func(c Config) bool { return c.SendRate == 100 }},
		{"duration at max", map[string]string{"CHAT_TOKEN_TTL": "8760h"}, func(c Config) bool { return c.TokenTTL == 8760*time.Hour }},
		{"ipv6 listen address", map[string]string{"CHAT_ADDR": "[::1]:8080"}, func(c Config) bool { return c.Addr == "[::1]:8080" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Load(nil, env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(got) {
				t.Errorf("Load(%v) = %+v", tt.env, got)
			}
		})
	}
}

func TestFlagsOverrideEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		check func(Config) bool
	}{
		{"string", map[string]string{"CHAT_ADDR": ":1"}, []string{"-addr", ":2"},
			func(c Config) bool { return c.Addr == ":2" }},
		{"double dash and equals", map[string]string{"CHAT_ADDR": ":1"}, []string{"--addr=:3"},
			func(c Config) bool { return c.Addr == ":3" }},
		{"duration", map[string]string{"CHAT_TOKEN_TTL": "1h"}, []string{"-token-ttl=2h"},
			func(c Config) bool { return c.TokenTTL == 2*time.Hour }},
		{"int", map[string]string{"CHAT_MAX_TEXT": "10"}, []string{"-max-text", "20"},
			func(c Config) bool { return c.MaxText == 20 }},
		{"int64", map[string]string{"CHAT_MAX_FRAME": "2000"}, []string{"-max-frame=3000"},
			func(c Config) bool { return c.MaxFrame == 3000 }},
		{"float", map[string]string{"CHAT_SEND_RATE": "1"}, []string{"-send-rate=0.5"},
			func(c Config) bool { return c.SendRate == 0.5 }},
		{"bare bool flag", map[string]string{"CHAT_PPROF": "false"}, []string{"-pprof"},
			func(c Config) bool { return c.Pprof }},
		{"bool flag false", map[string]string{"CHAT_PPROF": "true"}, []string{"-pprof=false"},
			func(c Config) bool { return !c.Pprof }},
		{"list replaced, not appended", map[string]string{"CHAT_TRUSTED_PROXIES": "10.0.0.0/8"},
			[]string{"-trusted-proxies=192.168.0.0/16"},
			func(c Config) bool { return reflect.DeepEqual(c.TrustedProxies, []string{"192.168.0.0/16"}) }},
		{"empty flag clears list", map[string]string{"CHAT_ALLOWED_ORIGINS": "a.example"}, []string{"-allowed-origins="},
			func(c Config) bool { return c.AllowedOrigins == nil }},
		{"empty flag selects self-contained mode", map[string]string{"REDIS_URL": "redis://r:6379/0"}, []string{"-redis-url="},
			func(c Config) bool { return c.RedisURL == "" }},
		{"last flag wins", nil, []string{"-log-level=warn", "-log-level=error"},
			func(c Config) bool { return c.LogLevel == "error" }},
		{"flag replaces unparsable variable", map[string]string{"CHAT_TOKEN_TTL": "abc"}, []string{"-token-ttl=1h"},
			func(c Config) bool { return c.TokenTTL == time.Hour }},
		{"flag replaces invalid variable", map[string]string{"CHAT_JWT_SECRET": "short"}, []string{"-jwt-secret=" + strings.Repeat("k", 40)},
			func(c Config) bool { return c.JWTSecret == strings.Repeat("k", 40) }},
		{"other variables kept", map[string]string{"CHAT_ADDR": ":1", "CHAT_MAX_TEXT": "10"}, []string{"-addr=:2"},
			func(c Config) bool { return c.Addr == ":2" && c.MaxText == 10 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Load(tt.args, env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(got) {
				t.Errorf("Load(%q, %v) = %+v", tt.args, tt.env, got)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"env duration", map[string]string{"CHAT_TOKEN_TTL": "abc"}, nil,
			[]string{`config: CHAT_TOKEN_TTL: "abc" is not a duration (such as 500ms, 10s, 5m, 24h)`}},
		{"env int", map[string]string{"CHAT_MAX_TEXT": "4k"}, nil,
			[]string{`config: CHAT_MAX_TEXT: "4k" is not an integer`}},
		{"env int64 out of range", map[string]string{"CHAT_MAX_FRAME": "99999999999999999999"}, nil,
			[]string{`config: CHAT_MAX_FRAME: "99999999999999999999" is out of range`}},
		{"env float", map[string]string{"CHAT_SEND_RATE": "fast"}, nil,
			[]string{`config: CHAT_SEND_RATE: "fast" is not a number`}},
		{"env float infinite", map[string]string{"CHAT_SEND_RATE": "Inf"}, nil,
			[]string{`config: CHAT_SEND_RATE: "Inf" is not a finite number`}},
		{"env bool", map[string]string{"CHAT_PPROF": "yes"}, nil,
			[]string{`config: CHAT_PPROF: "yes" is not a boolean (true or false)`}},
		{"every bad variable reported", map[string]string{"CHAT_PPROF": "yes", "CHAT_SEND_BURST": "x"}, nil,
			[]string{`config: CHAT_SEND_BURST: "x" is not an integer`, `config: CHAT_PPROF: "yes" is not a boolean (true or false)`}},
		{"flag duration", nil, []string{"-token-ttl=abc"},
			[]string{`config: -token-ttl: "abc" is not a duration (such as 500ms, 10s, 5m, 24h)`}},
		{"flag int", nil, []string{"-send-queue", "many"},
			[]string{`config: -send-queue: "many" is not an integer`}},
		{"flag bool", nil, []string{"-pprof=maybe"},
			[]string{`config: -pprof: "maybe" is not a boolean (true or false)`}},
		{"flag missing value", nil, []string{"-addr"},
			[]string{`config: flag needs an argument: -addr`}},
		{"unknown flag", nil, []string{"-port=80"},
			[]string{`config: flag provided but not defined: -port`}},
		{"positional argument", nil, []string{"serve"},
			[]string{`config: unexpected argument "serve" (settings are flags such as -addr=:8080)`}},
		{"flag valid but out of range", nil, []string{"-token-ttl=30s"},
			[]string{`config: CHAT_TOKEN_TTL (-token-ttl): 30s is less than the minimum 1m`}},
		{"validation reports all", map[string]string{"CHAT_MAX_TEXT": "0"}, []string{"-log-format=xml"},
			[]string{`config: CHAT_MAX_TEXT (-max-text): 0 is less than the minimum 1`,
				`config: CHAT_LOG_FORMAT (-log-format): "xml" must be text or json`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(tt.args, env(tt.env))
			wantErrs(t, err, tt.want...)
			if !reflect.DeepEqual(c, Config{}) {
				t.Errorf("Load returned %+v with its error, want the zero Config", c)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	tests := [][]string{{"-h"}, {"-help"}, {"--help"}, {"-addr=:1", "-h"}}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			// A broken environment must not hide the help.
			_, err := Load(args, env(map[string]string{"CHAT_TOKEN_TTL": "abc"}))
			if err != flag.ErrHelp {
				t.Errorf("Load(%q) error = %v, want flag.ErrHelp", args, err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*Config)
		want   string // the only error; "" for none
	}{
		{"empty addr", func(c *Config) { c.Addr = "" }, `config: CHAT_ADDR (-addr): must not be empty`},
		{"addr without port", func(c *Config) { c.Addr = "localhost" }, `config: CHAT_ADDR (-addr): "localhost" is not a host:port listen address`},
		{"redis scheme", func(c *Config) { c.RedisURL = "http://u:hunter2@r:6379" }, `config: REDIS_URL (-redis-url): must start with redis:// or rediss://`},
		{"redis bare host", func(c *Config) { c.RedisURL = "redis-host:6379" }, `config: REDIS_URL (-redis-url): must start with redis:// or rediss://`},
		{"redis unparsable", func(c *Config) { c.RedisURL = "redis://u:hunter2@r:port/0" }, `config: REDIS_URL (-redis-url): is not a valid URL: invalid port ":port" after host`},
		{"redis db", func(c *Config) { c.RedisURL = "redis://r:6379/main" }, `config: REDIS_URL (-redis-url): database "main" must be a number, as in redis://host:6379/0`},
		{"redis ok", func(c *Config) { c.RedisURL = "redis://:pw@r:6379/15" }, ""},
		{"empty data dir", func(c *Config) { c.DataDir = "" }, `config: CHAT_DATA_DIR (-data-dir): must not be empty`},
		{"short secret", func(c *Config) { c.JWTSecret = strings.Repeat("a", 31) }, `config: CHAT_JWT_SECRET (-jwt-secret): is 31 bytes; it must be empty or at least 32 bytes`},
		{"secret counted in bytes", func(c *Config) { c.JWTSecret = strings.Repeat("é", 16) }, ""},
		{"token ttl low", func(c *Config) { c.TokenTTL = 59 * time.Second }, `config: CHAT_TOKEN_TTL (-token-ttl): 59s is less than the minimum 1m`},
		{"token ttl high", func(c *Config) { c.TokenTTL = 8761 * time.Hour }, `config: CHAT_TOKEN_TTL (-token-ttl): 8761h is more than the maximum 8760h`},
		{"origin with scheme", func(c *Config) { c.AllowedOrigins = []string{"https://a.example"} }, `config: CHAT_ALLOWED_ORIGINS (-allowed-origins): "https://a.example" must be a host pattern such as *.example.com, without scheme or path`},
		{"origin bad pattern", func(c *Config) { c.AllowedOrigins = []string{"[a-"} }, `config: CHAT_ALLOWED_ORIGINS (-allowed-origins): "[a-" is not a valid pattern (path.Match syntax)`},
		{"history", func(c *Config) { c.HistoryMaxLen = 0 }, `config: CHAT_HISTORY_MAXLEN (-history-maxlen): 0 is less than the minimum 1`},
		{"empty instance", func(c *Config) { c.Instance = "" }, `config: CHAT_INSTANCE (-instance): must not be empty`},
		{"long instance", func(c *Config) { c.Instance = strings.Repeat("i", 65) }, `config: CHAT_INSTANCE (-instance): is 65 characters; at most 64 are allowed`},
		{"instance of 64", func(c *Config) { c.Instance = strings.Repeat("i", 64) }, ""},
		{"instance charset", func(c *Config) { c.Instance = "chat d" }, `config: CHAT_INSTANCE (-instance): "chat d" may hold only ASCII letters, digits, '.', '_' and '-'`},
		{"instance non-ASCII", func(c *Config) { c.Instance = "chätd" }, `config: CHAT_INSTANCE (-instance): "chätd" may hold only ASCII letters, digits, '.', '_' and '-'`},
		{"grace negative", func(c *Config) { c.ShutdownGrace = -time.Second }, `config: CHAT_SHUTDOWN_GRACE (-shutdown-grace): -1s is less than the minimum 0s`},
		{"grace high", func(c *Config) { c.ShutdownGrace = 11 * time.Minute }, `config: CHAT_SHUTDOWN_GRACE (-shutdown-grace): 11m is more than the maximum 10m`},
		{"send rate zero", func(c *Config) { c.SendRate = 0 }, `config: CHAT_SEND_RATE (-send-rate): 0 must be a finite number greater than 0`},
		{"send burst", func(c *Config) { c.SendBurst = 0 }, `config: CHAT_SEND_BURST (-send-burst): 0 is less than the minimum 1`},
		{"max text", func(c *Config) { c.MaxText = -1 }, `config: CHAT_MAX_TEXT (-max-text): -1 is less than the minimum 1`},
		{"max frame", func(c *Config) { c.MaxFrame = 1023 }, `config: CHAT_MAX_FRAME (-max-frame): 1023 is less than the minimum 1024`},
		{"max body", func(c *Config) { c.MaxBody = 1000 }, `config: CHAT_MAX_BODY (-max-body): 1000 is less than the minimum 1024`},
		{"rooms per conn", func(c *Config) { c.MaxRoomsPerConn = 0 }, `config: CHAT_MAX_ROOMS_PER_CONN (-max-rooms-per-conn): 0 is less than the minimum 1`},
		{"conns per user", func(c *Config) { c.MaxConnsPerUser = 0 }, `config: CHAT_MAX_CONNS_PER_USER (-max-conns-per-user): 0 is less than the minimum 1`},
		{"max conns", func(c *Config) { c.MaxConns = 0 }, `config: CHAT_MAX_CONNS (-max-conns): 0 is less than the minimum 1`},
		{"login user limit", func(c *Config) { c.LoginUserLimit = 0 }, `config: CHAT_LOGIN_USER_LIMIT (-login-user-limit): 0 is less than the minimum 1`},
		{"login user window", func(c *Config) { c.LoginUserWindow = 999 * time.Millisecond }, `config: CHAT_LOGIN_USER_WINDOW (-login-user-window): 999ms is less than the minimum 1s`},
		{"login addr limit", func(c *Config) { c.LoginAddrLimit = 0 }, `config: CHAT_LOGIN_ADDR_LIMIT (-login-addr-limit): 0 is less than the minimum 1`},
		{"login addr window", func(c *Config) { c.LoginAddrWindow = 0 }, `config: CHAT_LOGIN_ADDR_WINDOW (-login-addr-window): 0s is less than the minimum 1s`},
		{"register limit negative", func(c *Config) { c.RegisterAddrLimit = -1 }, `config: CHAT_REGISTER_ADDR_LIMIT (-register-addr-limit): -1 is less than the minimum 0`},
		{"register limit unlimited", func(c *Config) { c.RegisterAddrLimit = 0 }, ""},
		{"register window", func(c *Config) { c.RegisterAddrWindow = 0 }, `config: CHAT_REGISTER_ADDR_WINDOW (-register-addr-window): 0s is less than the minimum 1s`},
		{"presence ttl low", func(c *Config) { c.PresenceTTL = 500 * time.Millisecond }, `config: CHAT_PRESENCE_TTL (-presence-ttl): 500ms is less than the minimum 1s`},
		{"presence ttl high", func(c *Config) { c.PresenceTTL = 10*time.Minute + time.Second }, `config: CHAT_PRESENCE_TTL (-presence-ttl): 10m1s is more than the maximum 10m`},
		{"send queue", func(c *Config) { c.SendQueue = 15 }, `config: CHAT_SEND_QUEUE (-send-queue): 15 is less than the minimum 16`},
		{"write timeout", func(c *Config) { c.WriteTimeout = 99 * time.Millisecond }, `config: CHAT_WRITE_TIMEOUT (-write-timeout): 99ms is less than the minimum 100ms`},
		{"ping interval", func(c *Config) { c.PingInterval = 0 }, `config: CHAT_PING_INTERVAL (-ping-interval): 0s is less than the minimum 1s`},
		{"redis timeout", func(c *Config) { c.RedisTimeout = time.Millisecond }, `config: CHAT_REDIS_TIMEOUT (-redis-timeout): 1ms is less than the minimum 100ms`},
		{"trusted proxy", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "10.0.0.1"} }, `config: CHAT_TRUSTED_PROXIES (-trusted-proxies): "10.0.0.1" is not a CIDR prefix such as 10.0.0.0/8`},
		{"log format", func(c *Config) { c.LogFormat = "logfmt" }, `config: CHAT_LOG_FORMAT (-log-format): "logfmt" must be text or json`},
		{"log level", func(c *Config) { c.LogLevel = "trace" }, `config: CHAT_LOG_LEVEL (-log-level): "trace" must be debug, info, warn or error`},
		{"log level case is the parser's job", func(c *Config) { c.LogLevel = "INFO" }, `config: CHAT_LOG_LEVEL (-log-level): "INFO" must be debug, info, warn or error`},

		{"public secret", func(c *Config) { c.JWTSecret = "change-me-to-a-long-random-secret-of-32-bytes-or-more" }, `config: CHAT_JWT_SECRET (-jwt-secret): is the example secret an earlier compose.yaml shipped with; it is public, so anyone could sign tokens for any user. Set a random one (openssl rand -base64 48) or leave it empty`},
		{"short secret from a file", func(c *Config) { c.JWTSecretFile, c.JWTSecret = "/run/secrets/jwt", "short" }, `config: CHAT_JWT_SECRET_FILE (-jwt-secret-file): is 5 bytes; it must be empty or at least 32 bytes`},
		{"frame rate zero", func(c *Config) { c.FrameRate = 0 }, `config: CHAT_FRAME_RATE (-frame-rate): 0 must be a finite number greater than 0`},
		{"frame burst", func(c *Config) { c.FrameBurst = 0 }, `config: CHAT_FRAME_BURST (-frame-burst): 0 is less than the minimum 1`},
		{"login user addr limit", func(c *Config) { c.LoginUserAddrLimit = 0 }, `config: CHAT_LOGIN_USER_ADDR_LIMIT (-login-user-addr-limit): 0 is less than the minimum 1`},
		{"login user addr window", func(c *Config) { c.LoginUserAddrWindow = time.Millisecond }, `config: CHAT_LOGIN_USER_ADDR_WINDOW (-login-user-addr-window): 1ms is less than the minimum 1s`},
		{"refresh limit", func(c *Config) { c.RefreshLimit = 0 }, `config: CHAT_REFRESH_LIMIT (-refresh-limit): 0 is less than the minimum 1`},
		{"refresh window", func(c *Config) { c.RefreshWindow = 0 }, `config: CHAT_REFRESH_WINDOW (-refresh-window): 0s is less than the minimum 1s`},
		{"login hashes negative", func(c *Config) { c.LoginHashes = -1 }, `config: CHAT_LOGIN_HASHES (-login-hashes): -1 is less than the minimum 0`},
		{"register hashes", func(c *Config) { c.RegisterHashes = 0 }, `config: CHAT_REGISTER_HASHES (-register-hashes): 0 is less than the minimum 1`},
		{"hash queue", func(c *Config) { c.HashQueue = 0 }, `config: CHAT_HASH_QUEUE (-hash-queue): 0 is less than the minimum 1`},
		{"hash wait low", func(c *Config) { c.HashWait = time.Millisecond }, `config: CHAT_HASH_WAIT (-hash-wait): 1ms is less than the minimum 10ms`},
		{"hash wait high", func(c *Config) { c.HashWait = 2 * time.Minute }, `config: CHAT_HASH_WAIT (-hash-wait): 2m is more than the maximum 1m`},
		{"read timeout low", func(c *Config) { c.ReadTimeout = 500 * time.Millisecond }, `config: CHAT_READ_TIMEOUT (-read-timeout): 500ms is less than the minimum 1s`},
		{"read timeout high", func(c *Config) { c.ReadTimeout = time.Hour }, `config: CHAT_READ_TIMEOUT (-read-timeout): 1h is more than the maximum 10m`},
		{"conns per addr negative", func(c *Config) { c.MaxConnsPerAddr = -1 }, `config: CHAT_MAX_CONNS_PER_ADDR (-max-conns-per-addr): -1 is less than the minimum 0`},
		{"conns per addr off", func(c *Config) { c.MaxConnsPerAddr = 0 }, ""},
		{"redis mode", func(c *Config) { c.RedisMode = "sentinel" }, `config: CHAT_REDIS_MODE (-redis-mode): "sentinel" must be single or cluster`},
		{"cluster without url", func(c *Config) { c.RedisMode = "cluster" }, `config: CHAT_REDIS_MODE (-redis-mode): cluster needs REDIS_URL, a seed list such as redis://host1:6379?addr=host2:6379; self-contained mode is one server`},
		{"cluster seed list", func(c *Config) {
			c.RedisMode, c.RedisURL = "cluster", "redis://u:hunter2@r1:7000?addr=r2:7001&addr=[::1]:7002"
		}, ""},
		{"cluster database", func(c *Config) { c.RedisMode, c.RedisURL = "cluster", "redis://:hunter2@r1:7000/3" }, `config: REDIS_URL (-redis-url): names database 3; a Redis Cluster has only database 0`},
		{"cluster bad seed", func(c *Config) { c.RedisMode, c.RedisURL = "cluster", "redis://:hunter2@r1:7000?addr=r2" }, `config: REDIS_URL (-redis-url): seed address "r2" must be host:port`},
		{"cluster seed port", func(c *Config) { c.RedisMode, c.RedisURL = "cluster", "redis://:hunter2@r1:7000?addr=r2:0" }, `config: REDIS_URL (-redis-url): seed address "r2:0" must be host:port`},
		{"cluster unknown parameter", func(c *Config) { c.RedisMode, c.RedisURL = "cluster", "redis://:hunter2@r1:7000?dial_timeout=1" }, `config: REDIS_URL (-redis-url): has the parameter "dial_timeout"; in cluster mode only addr= (more seed addresses) is understood`},
		{"cluster no host", func(c *Config) { c.RedisMode, c.RedisURL = "cluster", "redis://:hunter2@?addr=r2:7000" }, `config: REDIS_URL (-redis-url): has no host:port`},
		{"seed list without cluster mode", func(c *Config) { c.RedisURL = "redis://:hunter2@r1:7000?addr=r2:7001" }, `config: REDIS_URL (-redis-url): holds addr= seed addresses, which only cluster mode reads: set CHAT_REDIS_MODE=cluster`},
		{"wait replicas", func(c *Config) { c.RedisWaitReplicas = -1 }, `config: CHAT_REDIS_WAIT_REPLICAS (-redis-wait-replicas): -1 is less than the minimum 0`},
		{"wait timeout zero", func(c *Config) { c.RedisWaitTimeout = 0 }, `config: CHAT_REDIS_WAIT_TIMEOUT (-redis-wait-timeout): 0s is less than the minimum 10ms`},
		{"wait timeout high", func(c *Config) { c.RedisWaitTimeout = 2 * time.Minute }, `config: CHAT_REDIS_WAIT_TIMEOUT (-redis-wait-timeout): 2m is more than the maximum 1m`},
		{"admin name", func(c *Config) { c.Admins = []string{"alice", "al"} }, `config: CHAT_ADMINS (-admins): "al" is not a username (3 to 32 of letters, digits, '_', '-' and '.')`},
		{"admin with a space", func(c *Config) { c.Admins = []string{"alice smith"} }, `config: CHAT_ADMINS (-admins): "alice smith" is not a username (3 to 32 of letters, digits, '_', '-' and '.')`},
		{"channels per user", func(c *Config) { c.MaxChannelsPerUser = 0 }, `config: CHAT_MAX_CHANNELS_PER_USER (-max-channels-per-user): 0 is less than the minimum 1`},
		{"edit window negative", func(c *Config) { c.EditWindow = -time.Second }, `config: CHAT_EDIT_WINDOW (-edit-window): -1s is less than the minimum 0s`},
		{"short api key", func(c *Config) { c.APIKeys = []string{strings.Repeat("k", 32), "hunter2-hunter2"} }, `config: CHAT_API_KEYS (-api-keys): key 2 of 2 is 15 bytes; each must be at least 32`},
		{"api key with a space", func(c *Config) { c.APIKeys = []string{"hunter2 " + strings.Repeat("k", 32)} }, `config: CHAT_API_KEYS (-api-keys): key 1 of 1 holds a space or a character that is not printable ASCII; a key travels in the Authorization header`},
		{"webhook scheme", func(c *Config) { c.WebhookURL, c.WebhookSecret = "ftp://u:hunter2@h/x", strings.Repeat("w", 32) }, `config: CHAT_WEBHOOK_URL (-webhook-url): must be an http:// or https:// URL`},
		{"webhook bare host", func(c *Config) { c.WebhookURL, c.WebhookSecret = "hooks.example/chat", strings.Repeat("w", 32) }, `config: CHAT_WEBHOOK_URL (-webhook-url): must be an http:// or https:// URL`},
		{"webhook no host", func(c *Config) { c.WebhookURL, c.WebhookSecret = "https:///hook", strings.Repeat("w", 32) }, `config: CHAT_WEBHOOK_URL (-webhook-url): has no host`},
		{"webhook unparsable", func(c *Config) { c.WebhookURL, c.WebhookSecret = "https://u:hunter2@h:port/", strings.Repeat("w", 32) }, `config: CHAT_WEBHOOK_URL (-webhook-url): is not a valid URL: invalid port ":port" after host`},
		{"webhook without secret", func(c *Config) { c.WebhookURL = "https://hooks.example/chat" }, `config: CHAT_WEBHOOK_SECRET (-webhook-secret): is required with CHAT_WEBHOOK_URL: receivers check every event's signature with it`},
		{"webhook short secret", func(c *Config) { c.WebhookURL, c.WebhookSecret = "http://hooks.internal:8000/", "hunter2" }, `config: CHAT_WEBHOOK_SECRET (-webhook-secret): is 7 bytes; it must be at least 32 bytes`},
		{"webhook ok", func(c *Config) {
			c.WebhookURL, c.WebhookSecret = "http://hooks.internal:8000/", strings.Repeat("w", 32)
		}, ""},
		{"webhook events unknown", func(c *Config) { c.WebhookEvents = []string{"message", "typing"} }, `config: CHAT_WEBHOOK_EVENTS (-webhook-events): "typing" is not one of message, edit, delete, reaction, member`},
		{"webhook events none", func(c *Config) { c.WebhookEvents = nil }, `config: CHAT_WEBHOOK_EVENTS (-webhook-events): must name at least one of message, edit, delete, reaction, member`},
		{"webhook max age", func(c *Config) { c.WebhookMaxAge = 721 * time.Hour }, `config: CHAT_WEBHOOK_MAX_AGE (-webhook-max-age): 721h is more than the maximum 720h`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			tt.change(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			wantErrs(t, err, tt.want)
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q reveals a password or key", err)
			}
		})
	}
}

func TestShortSecretRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret string
		ok     bool
	}{
		{"empty", "", true},
		{"1 byte", "x", false},
		{"31 bytes", strings.Repeat("k", 31), false},
		{"32 bytes", strings.Repeat("k", 32), true},
		{"64 bytes", strings.Repeat("k", 64), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, src := range []struct {
				args []string
				env  map[string]string
			}{
				{nil, map[string]string{"CHAT_JWT_SECRET": tt.secret}},
				{[]string{"-jwt-secret=" + tt.secret}, nil},
			} {
				_, err := Load(src.args, env(src.env))
				if tt.ok {
					if err != nil {
						t.Errorf("Load(%q, %v) = %v, want nil", src.args, src.env, err)
					}
					continue
				}
				wantErrs(t, err, "config: CHAT_JWT_SECRET (-jwt-secret): is "+strconv.Itoa(len(tt.secret))+" bytes; it must be empty or at least 32 bytes")
				if strings.Contains(err.Error(), tt.secret) {
					t.Errorf("error %q quotes the secret", err)
				}
			}
		})
	}
}

func TestJWTSecretFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := strings.Repeat("f", 40)
	lf, crlf, bare := write("lf", key+"\n"), write("crlf", key+"\r\n"), write("bare", key)
	spaces := write("spaces", " "+key+" \n")
	short, empty := write("short", "hunter2\n"), write("empty", "\n")
	missing := filepath.Join(dir, "missing")
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
		want string // the secret, or the error
		ok   bool
	}{
		{"variable, newline dropped", map[string]string{"CHAT_JWT_SECRET_FILE": lf}, nil, key, true},
		{"flag, CRLF dropped", nil, []string{"-jwt-secret-file=" + crlf}, key, true},
		{"no newline", map[string]string{"CHAT_JWT_SECRET_FILE": bare}, nil, key, true},
		{"spaces kept", map[string]string{"CHAT_JWT_SECRET_FILE": spaces}, nil, " " + key + " ", true},
		{"both", map[string]string{"CHAT_JWT_SECRET_FILE": lf, "CHAT_JWT_SECRET": key}, nil,
			"config: CHAT_JWT_SECRET_FILE (-jwt-secret-file): CHAT_JWT_SECRET is set too; set one of them", false},
		{"missing", map[string]string{"CHAT_JWT_SECRET_FILE": missing}, nil,
			"config: CHAT_JWT_SECRET_FILE (-jwt-secret-file): open " + missing + ": no such file or directory", false},
		{"empty", map[string]string{"CHAT_JWT_SECRET_FILE": empty}, nil,
			"config: CHAT_JWT_SECRET_FILE (-jwt-secret-file): " + empty + " is empty", false},
		{"short", map[string]string{"CHAT_JWT_SECRET_FILE": short}, nil,
			"config: CHAT_JWT_SECRET_FILE (-jwt-secret-file): is 7 bytes; it must be empty or at least 32 bytes", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(tt.args, env(tt.env))
			if !tt.ok {
				wantErrs(t, err, tt.want)
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error %q quotes the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.JWTSecret != tt.want {
				t.Errorf("JWTSecret = %q, want %q", c.JWTSecret, tt.want)
			}
		})
	}
}

func TestParseRedisSeeds(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		url  string
		want RedisSeeds
	}{
		{"redis://r1:7000", RedisSeeds{Addrs: []string{"r1:7000"}}},
		{"redis://r1:7000/0?addr=r2:7001&addr=r3:7002&addr=r2:7001",
			RedisSeeds{Addrs: []string{"r1:7000", "r2:7001", "r3:7002"}}},
		{"rediss://chat:s3cret@r1:7000?addr=[fd00::2]:7001",
			RedisSeeds{Addrs: []string{"r1:7000", "[fd00::2]:7001"}, Username: "chat", Password: "s3cret", TLS: true}},
		{"redis://:p%40ss@10.0.0.1:6379", RedisSeeds{Addrs: []string{"10.0.0.1:6379"}, Password: "p@ss"}},
	} {
		got, err := ParseRedisSeeds(tt.url)
		if err != nil {
			t.Errorf("ParseRedisSeeds(%q): %v", tt.url, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseRedisSeeds(%q) = %+v, want %+v", tt.url, got, tt.want)
		}
	}
	for _, bad := range []string{"", "http://r1:7000", "redis://r1", "redis://r1:7000/1", "redis://r1:7000?addr=:7001", "redis://r1:7000?password=x"} {
		if _, err := ParseRedisSeeds(bad); err == nil {
			t.Errorf("ParseRedisSeeds(%q) = nil error", bad)
		}
	}
	// Load reads the mode and the seed list together.
	c, err := Load([]string{"-redis-mode=CLUSTER"}, env(map[string]string{"REDIS_URL": "redis://r1:7000?addr=r2:7001"}))
	if err != nil || c.RedisMode != "cluster" {
		t.Fatalf("Load: %+v %v", c.RedisMode, err)
	}
}

func TestInstanceName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host string
		pid  int
		want string
	}{
		{"web-1", 42, "web-1-42"},
		{"", 7, "chatd-7"},
		{"host.example.com", 1, "host.example.com-1"},
		{"bad host/ä", 3, "bad-host---3"},
		{strings.Repeat("h", 100), 12345, strings.Repeat("h", 58) + "-12345"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			got := instanceName(tt.host, tt.pid)
			if got != tt.want {
				t.Errorf("instanceName(%q, %d) = %q, want %q", tt.host, tt.pid, got, tt.want)
			}
			c := Default()
			c.Instance = got
			if err := c.Validate(); err != nil {
				t.Errorf("instanceName gave an invalid name: %v", err)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	u := Usage()
	d := Default()
	for _, s := range settings {
		t.Run(s.env, func(t *testing.T) {
			t.Parallel()
			line := ""
			for l := range strings.Lines(u) {
				if strings.HasPrefix(l, "-"+s.flag+" ") {
					line = l
				}
			}
			if line == "" || !strings.Contains(line, " "+s.env+" ") {
				t.Fatalf("Usage has no line for -%s %s:\n%s", s.flag, s.env, u)
			}
			if s.env == "CHAT_INSTANCE" {
				return // computed per process
			}
			// The default Usage shows must be the one Default sets.
			var c Config
			if err := s.bind(&c).Set(s.def); err != nil {
				t.Fatalf("Usage default %q does not parse: %v", s.def, err)
			}
			if got, want := s.bind(&c).String(), s.bind(&d).String(); got != want {
				t.Errorf("Usage shows default %q, Default has %q", got, want)
			}
		})
	}
}

func TestLogValueRedacts(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("start", "config", everythingWant)
	out := buf.String()
	for _, secret := range append([]string{everythingWant.JWTSecret, everythingWant.WebhookSecret, "u:p@", "hooks:pw@"}, everythingWant.APIKeys...) {
		if strings.Contains(out, secret) {
			t.Errorf("log reveals %q: %s", secret, out)
		}
	}
	for _, want := range []string{"config.token-ttl=1h30m", "config.jwt-secret=[redacted]", "config.redis-url=rediss://u:xxxxx@redis.internal:6380/2", "config.allowed-origins=*.example.com,localhost:3000",
		"config.api-keys=[redacted]", "config.webhook-secret=[redacted]", "config.webhook-url=https://hooks:xxxxx@app.example/chat"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q: %s", want, out)
		}
	}
}

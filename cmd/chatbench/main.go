package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the parsed command line. Workers receive the same flags plus
// the hidden ones, so they derive the same plan as the parent.
type config struct {
	args []string // the command line, passed on to workers

	servers         []string
	cpuProfile      string
	clients         int
	rooms           int
	roomSize        int
	roomsPerClient  int // 0 when not given
	senders         int // 0 on the command line: chosen by resolve
	rate            float64
	events          float64 // the share of slots that edit or react instead of sending
	inflight        int
	duration        time.Duration
	warmup          time.Duration
	drain           time.Duration
	ackTimeout      time.Duration
	connectTimeout  time.Duration
	ramp            float64
	batch           bool
	userPrefix      string
	reuseUsers      bool
	password        string
	sourceAddrs     []net.IP
	workers         int
	serverPIDs      []int
	jsonOnly        bool
	sweep           []int
	sweepRooms      []int
	redisAddrs      []string
	redisPassword   string
	out             string
	idle            bool
	authConcurrency int
	tokenCache      string
	tokenSecret     string

	// Hidden, set by the parent for its workers.
	workerIndex int
	workerCount int
	runID       string
	tokenFile   string
}

// usageError is a bad command line; the process exits with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

var hiddenFlags = map[string]bool{"worker-index": true, "worker-count": true, "run-id": true, "token-file": true}

// parseFlags parses args (without the program name).
func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{args: args}
	fs := flag.NewFlagSet("chatbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var servers, sourceAddrs, pids, sweep, sweepRooms, redisAddrs string
	fs.StringVar(&servers, "servers", "http://127.0.0.1:8080", "comma-separated base URLs of the chat servers; connections are spread round-robin")
	fs.IntVar(&cfg.clients, "clients", 100, "number of users, one WebSocket connection each")
	fs.IntVar(&cfg.rooms, "rooms", 10, "number of rooms")
	fs.IntVar(&cfg.roomSize, "room-size", 10, "clients per room")
	fs.IntVar(&cfg.roomsPerClient, "rooms-per-client", 0, fmt.Sprintf("rooms each client's socket joins, at most %d (default 1, or when --rooms × --room-size exceeds --clients as many as that takes); the clients needed are ⌈rooms × room-size / this⌉, the rest hold sockets in no room", maxRoomsPerSocket))
	fs.IntVar(&cfg.senders, "senders", 0, "how many clients send (default: one per room, more if that is needed to stay under 10 msg/s each)")
	fs.Float64Var(&cfg.rate, "rate", 100, "messages per second in total, on a fixed schedule")
	fs.Float64Var(&cfg.events, "events", 0, "share of the schedule's slots, from 0 to below 1, that edit the sender's newest acked message in the room or toggle a reaction on it, in turn, instead of sending a message")
	fs.IntVar(&cfg.inflight, "inflight", 8, "max unacknowledged sends per sender; a slot that finds this many is skipped")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured sending time (after the warmup); the hold time with --idle")
	fs.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "sending time before measuring starts")
	fs.DurationVar(&cfg.drain, "drain", 5*time.Second, "how long to wait after sending for acks and deliveries")
	fs.DurationVar(&cfg.ackTimeout, "ack-timeout", 10*time.Second, "a send unacknowledged for this long is given up and counted as unacked")
	fs.DurationVar(&cfg.connectTimeout, "connect-timeout", 15*time.Second, "limit for dialling and joining")
	fs.Float64Var(&cfg.ramp, "ramp", 500, "connections opened per second")
	fs.BoolVar(&cfg.batch, "batch", false, "connect with ?batch=1 and split incoming frames on newlines")
	fs.StringVar(&cfg.userPrefix, "user-prefix", "", "username prefix; users are <prefix>0000001… (default: random per run)")
	fs.BoolVar(&cfg.reuseUsers, "reuse-users", false, "log in existing users, registering only unknown ones")
	fs.StringVar(&cfg.password, "password", "chatbench-password", "password of every benchmark user")
	fs.StringVar(&sourceAddrs, "source-addrs", "", "local addresses to spread sockets over, e.g. 127.0.0.1-127.0.0.8 or a comma-separated list")
	fs.IntVar(&cfg.workers, "workers", 0, fmt.Sprintf("worker processes (default: enough that each holds at most %d sockets)", maxSocketsPerWorker))
	fs.StringVar(&pids, "server-pid", "", "comma-separated PIDs of the servers, to read their RSS and CPU time from /proc (default: /metrics)")
	fs.StringVar(&redisAddrs, "redis-addrs", "", "comma-separated host:port of the Redis servers (every primary of a cluster) whose CPU time over the measured window to report, from INFO cpu")
	fs.StringVar(&cfg.redisPassword, "redis-password", "", "password for --redis-addrs (AUTH), if they need one")
	fs.BoolVar(&cfg.jsonOnly, "json", false, "print only the JSON result line")
	fs.StringVar(&sweep, "sweep", "", "comma-separated client counts to run one after another, writing sweep.csv and sweep.svg to --out")
	fs.StringVar(&sweepRooms, "sweep-rooms", "", "comma-separated room counts to run one after another at the same --rate, writing sweep-rooms.csv and sweep-rooms.svg to --out; --clients is the most sockets a step may use (--rooms-per-client is chosen to fit, unless given)")
	fs.StringVar(&cfg.out, "out", ".", "directory for the --sweep and --sweep-rooms outputs")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (the load generator itself) to this file")
	fs.BoolVar(&cfg.idle, "idle", false, "connect and join, then hold for --duration without sending")
	fs.IntVar(&cfg.authConcurrency, "auth-concurrency", 4, "concurrent register/login requests (argon2id is slow: about 2x the server's cores)")
	fs.StringVar(&cfg.tokenCache, "token-cache", "", "JSON file caching tokens across runs")
	fs.StringVar(&cfg.tokenSecret, "token-secret", "", "the deployment's CHAT_JWT_SECRET: sign tokens locally instead of registering and logging in (no argon2id cost on the server)")
	fs.IntVar(&cfg.workerIndex, "worker-index", -1, "internal")
	fs.IntVar(&cfg.workerCount, "worker-count", 0, "internal")
	fs.StringVar(&cfg.runID, "run-id", "", "internal")
	fs.StringVar(&cfg.tokenFile, "token-file", "", "internal")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: chatbench [flags]\n\nchatbench measures delivery latency and loss of a chat deployment. Flags:\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			if hiddenFlags[f.Name] {
				return
			}
			name, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(fs.Output(), "  --%s\n    \t%s", strings.TrimSpace(f.Name+" "+name), usage)
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				fmt.Fprintf(fs.Output(), " (default %s)", f.DefValue)
			}
			fmt.Fprintln(fs.Output())
		})
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q", fs.Arg(0))
	}

	for _, s := range strings.Split(servers, ",") {
		s = strings.TrimSuffix(strings.TrimSpace(s), "/")
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, usagef("--servers: %q is not an http:// or https:// URL", s)
		}
		cfg.servers = append(cfg.servers, s)
	}
	var err error
	if cfg.sourceAddrs, err = parseAddrs(sourceAddrs); err != nil {
		return nil, usagef("--source-addrs: %v", err)
	}
	if cfg.serverPIDs, err = parseInts(pids); err != nil {
		return nil, usagef("--server-pid: %v", err)
	}
	if cfg.sweep, err = parseInts(sweep); err != nil {
		return nil, usagef("--sweep: %v", err)
	}
	if cfg.sweepRooms, err = parseInts(sweepRooms); err != nil {
		return nil, usagef("--sweep-rooms: %v", err)
	}
	for _, a := range strings.Split(redisAddrs, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			return nil, usagef("--redis-addrs: %q is not host:port", a)
		}
		cfg.redisAddrs = append(cfg.redisAddrs, a)
	}
	if cfg.userPrefix == "" {
		if cfg.workerIndex >= 0 {
			return nil, usagef("a worker needs --user-prefix")
		}
		cfg.userPrefix = "cb" + newRunID() + "_"
	}
	cfg.userPrefix = strings.ToLower(cfg.userPrefix)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (cfg *config) validate() error {
	switch {
	case cfg.clients < 1:
		return usagef("--clients must be at least 1")
	case cfg.rooms < 0 || (cfg.rooms == 0 && !cfg.idle):
		return usagef("--rooms must be at least 1")
	case cfg.roomSize < 1:
		return usagef("--room-size must be at least 1")
	case !cfg.idle && !(cfg.rate > 0) || math.IsInf(cfg.rate, 0):
		return usagef("--rate must be positive")
	case !(cfg.events >= 0 && cfg.events < 1):
		return usagef("--events must be from 0 to below 1")
	case cfg.inflight < 1:
		return usagef("--inflight must be at least 1")
	case cfg.duration <= 0:
		return usagef("--duration must be positive")
	case cfg.warmup < 0 || cfg.drain < 0:
		return usagef("--warmup and --drain must not be negative")
	case cfg.ackTimeout <= 0 || cfg.connectTimeout <= 0:
		return usagef("--ack-timeout and --connect-timeout must be positive")
	case !(cfg.ramp > 0):
		return usagef("--ramp must be positive")
	case cfg.workers < 0:
		return usagef("--workers must not be negative")
	case cfg.authConcurrency < 1:
		return usagef("--auth-concurrency must be at least 1")
	case len(cfg.password) < 8 || len(cfg.password) > 256:
		return usagef("--password must have 8 to 256 characters")
	case cfg.senders < 0:
		return usagef("--senders must not be negative")
	case cfg.roomsPerClient < 0 || cfg.roomsPerClient > maxRoomsPerSocket:
		return usagef("--rooms-per-client must be from 1 to %d, the server's limit per socket", maxRoomsPerSocket)
	case len(cfg.sweep) > 0 && len(cfg.sweepRooms) > 0:
		return usagef("--sweep and --sweep-rooms do not go together")
	}
	if len(cfg.userPrefix)+7 > 32 {
		return usagef("--user-prefix is longer than 25 characters")
	}
	for _, r := range cfg.userPrefix {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return usagef("--user-prefix may hold only letters, digits, '_', '-' and '.'")
		}
	}
	for _, n := range cfg.sweep {
		if n < 1 {
			return usagef("--sweep values must be at least 1")
		}
	}
	for _, n := range cfg.sweepRooms {
		if n < 1 {
			return usagef("--sweep-rooms values must be at least 1")
		}
	}
	if cfg.workerIndex >= 0 && (cfg.workerIndex >= cfg.workerCount || cfg.runID == "" || cfg.tokenFile == "") {
		return usagef("bad worker flags")
	}
	return nil
}

// resolve fills the defaults that depend on the client count and checks
// the layout, for one run.
func (cfg *config) resolve() error {
	sockets, _, err := layout(cfg)
	if err != nil {
		return err
	}
	inRooms := min(sockets, cfg.rooms*cfg.roomSize)
	if cfg.idle {
		cfg.senders, cfg.warmup = 0, 0 // the hold is exactly --duration
		return nil
	}
	if cfg.senders == 0 {
		cfg.senders = min(inRooms, max(cfg.rooms, int(math.Ceil(cfg.rate/10))))
	}
	if cfg.senders > inRooms {
		return usagef("--senders %d exceeds the %d clients that are in a room", cfg.senders, inRooms)
	}
	return nil
}

// parseAddrs parses "a-b" ranges of IPv4 addresses and single addresses,
// comma-separated.
func parseAddrs(s string) ([]net.IP, error) {
	var out []net.IP
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a := net.ParseIP(strings.TrimSpace(lo))
		if a == nil {
			return nil, fmt.Errorf("%q is not an IP address", lo)
		}
		if !isRange {
			out = append(out, a)
			continue
		}
		b := net.ParseIP(strings.TrimSpace(hi))
		a4, b4 := a.To4(), b.To4()
		if a4 == nil || b4 == nil {
			return nil, fmt.Errorf("range %q must be of IPv4 addresses", part)
		}
		x, y := ipv4Int(a4), ipv4Int(b4)
		if y < x || y-x >= 1024 {
			return nil, fmt.Errorf("range %q is empty or longer than 1024", part)
		}
		for v := x; v <= y; v++ {
			out = append(out, net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)))
		}
	}
	return out, nil
}

func ipv4Int(ip net.IP) uint32 {
	return uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n, err := strconv.Atoi(part)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", part)
		}
		out = append(out, n)
	}
	return out, nil
}

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain runs chatbench and returns the exit status: 0 when every
// acknowledged message was delivered once, 1 on loss, duplicates or a
// failed run, 2 on a usage error.
func realMain(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "chatbench:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if cfg.workerIndex >= 0 {
		log = log.With("worker", cfg.workerIndex)
	}
	limit, err := raiseNoFile()
	if err != nil {
		log.Warn("open-file limit not raised", "err", err)
	}
	if cfg.cpuProfile != "" && cfg.workerIndex < 0 {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "chatbench:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "chatbench:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if cfg.workerIndex >= 0 {
		if err := workerMain(ctx, cfg, log); err != nil {
			log.Error("worker failed", "err", err)
			return 1
		}
		return 0
	}
	perWorker := cfg.clients
	if cfg.workers > 0 {
		perWorker = (cfg.clients + cfg.workers - 1) / cfg.workers
	}
	if limit > 0 && cfg.workers > 0 && uint64(perWorker)+200 > limit {
		log.Warn("workers may run out of file descriptors", "sockets_per_worker", perWorker, "limit", limit)
	}

	au := newAuthState(cfg, log)
	if len(cfg.sweep) > 0 || len(cfg.sweepRooms) > 0 {
		return runSweep(ctx, cfg, au, log, stdout, stderr)
	}
	if err := cfg.resolve(); err != nil {
		fmt.Fprintln(stderr, "chatbench:", err)
		return 2
	}
	rep, err := runOnce(ctx, cfg, au, log)
	if err != nil {
		fmt.Fprintln(stderr, "chatbench:", err)
		var ue *usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	if err := printReport(stdout, cfg, rep); err != nil {
		fmt.Fprintln(stderr, "chatbench:", err)
		return 1
	}
	if rep.failed() {
		return 1
	}
	return 0
}

func printReport(w io.Writer, cfg *config, rep *Report) error {
	if !cfg.jsonOnly {
		if err := rep.writeTable(w); err != nil {
			return err
		}
	}
	return rep.writeJSON(w)
}

// runSweep runs once per --sweep client count or --sweep-rooms room count
// and writes sweep.csv and sweep.svg, or sweep-rooms.csv and
// sweep-rooms.svg, to --out.
func runSweep(ctx context.Context, cfg *config, au *authState, log *slog.Logger, stdout, stderr io.Writer) int {
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		fmt.Fprintln(stderr, "chatbench:", err)
		return 1
	}
	byRooms := len(cfg.sweepRooms) > 0
	steps, name := cfg.sweep, "sweep"
	if byRooms {
		steps, name = cfg.sweepRooms, "sweep-rooms"
	}
	var reps []*Report
	status := 0
	for i, n := range steps {
		c := *cfg
		step := fmt.Sprintf("%d clients", n)
		if byRooms {
			c.rooms, step = n, fmt.Sprintf("%d rooms", n)
			if err := c.fitRooms(); err != nil {
				fmt.Fprintf(stderr, "chatbench: sweep step %s: %v\n", step, err)
				return 2
			}
		} else {
			c.clients = n
		}
		if err := c.resolve(); err != nil {
			fmt.Fprintf(stderr, "chatbench: sweep step %s: %v\n", step, err)
			return 2
		}
		log.Info("sweep step", "clients", c.clients, "rooms", c.rooms, "rooms_per_client", c.roomsPerClient)
		rep, err := runOnce(ctx, &c, au, log)
		if err != nil {
			fmt.Fprintf(stderr, "chatbench: sweep step %s: %v\n", step, err)
			var ue *usageError
			if errors.As(err, &ue) {
				return 2
			}
			status = 1
			break
		}
		if i > 0 {
			// The server keeps memory the previous step's connections
			// used for a while, so only the first step has a baseline.
			rep.ServerRSSBaseBytes, rep.ServerRSSPerConnBytes = 0, 0
		}
		if err := printReport(stdout, &c, rep); err != nil {
			fmt.Fprintln(stderr, "chatbench:", err)
			return 1
		}
		if !c.jsonOnly {
			fmt.Fprintln(stdout)
		}
		if rep.failed() {
			status = 1
		}
		reps = append(reps, rep)
	}
	if len(reps) == 0 {
		return 1
	}
	title := fmt.Sprintf("chatbench: %d rooms × %d, %g msg/s", cfg.rooms, cfg.roomSize, cfg.rate)
	if byRooms {
		title = fmt.Sprintf("chatbench: rooms of %d, %g msg/s, at most %d sockets", cfg.roomSize, cfg.rate, cfg.clients)
	}
	csvPath, svgPath := filepath.Join(cfg.out, name+".csv"), filepath.Join(cfg.out, name+".svg")
	if err := writeFile(csvPath, func(w io.Writer) error { return writeCSV(w, reps) }); err != nil {
		fmt.Fprintln(stderr, "chatbench:", err)
		return 1
	}
	if err := writeFile(svgPath, func(w io.Writer) error { return writeSVG(w, reps, title, byRooms) }); err != nil {
		fmt.Fprintln(stderr, "chatbench:", err)
		return 1
	}
	log.Info("sweep written", "csv", csvPath, "svg", svgPath)
	return status
}

// fitRooms chooses, for a step of --sweep-rooms without --rooms-per-client,
// the fewest rooms per client that fit the step's rooms in --clients.
func (cfg *config) fitRooms() error {
	if cfg.roomsPerClient > 0 {
		return nil
	}
	k := max(1, ceilDiv(cfg.rooms*cfg.roomSize, cfg.clients))
	if k > maxRoomsPerSocket {
		return usagef("%d rooms of %d need more than %d rooms per client in %d clients: raise --clients to at least %d",
			cfg.rooms, cfg.roomSize, maxRoomsPerSocket, cfg.clients, ceilDiv(cfg.rooms*cfg.roomSize, maxRoomsPerSocket))
	}
	cfg.roomsPerClient = k
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// workerMain is the body of a worker process: the parent's flags plus the
// hidden worker flags, tokens from --token-file, the protocol on stdio.
func workerMain(ctx context.Context, cfg *config, log *slog.Logger) error {
	if err := cfg.resolve(); err != nil {
		return err
	}
	b, err := os.ReadFile(cfg.tokenFile)
	if err != nil {
		return err
	}
	var tokens map[string]string
	if err := json.Unmarshal(b, &tokens); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	pl, err := newPlan(cfg)
	if err != nil {
		return err
	}
	ln := newLink(os.Stdin, os.Stdout)
	defer ln.close()
	return runWorker(ctx, cfg, pl, tokens, ln, log)
}

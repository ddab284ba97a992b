package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/redstream/chat/store/redisproc"
)

// Slots is the number of hash slots of a Redis Cluster.
const Slots = 16384

// Time bounds of the cluster helper. They are generous because five
// engineers share two cores: a settle that takes 1 s idle can take 10 s
// under load, and a test that fails on a slow machine is worse than one
// that waits.
const (
	settleTimeout   = 60 * time.Second // creation, add-node, rebalance, restart
	failoverTimeout = 60 * time.Second // node-timeout detection plus election
	cliTimeout      = 2 * time.Minute  // one redis-cli --cluster run
	pollEvery       = 25 * time.Millisecond
	startAttempts   = 8 // fresh ports each time; a port can be taken between pick and bind
)

// ClusterOptions of StartCluster. The zero value of each field means its
// default.
type ClusterOptions struct {
	// Primaries is the number of primaries. Zero means 3, the least that
	// redis-cli --cluster create accepts.
	Primaries int
	// Replicas is the number of replicas of each primary. Zero means 1;
	// negative means none.
	Replicas int
	// NodeTimeout is cluster-node-timeout: how long a node may be
	// unreachable before it is failed over. Zero means 1 s.
	NodeTimeout time.Duration
	// AppendOnly turns on append-only persistence on every node. Without
	// it a stopped node comes back empty (and a primary restarted before
	// its replica took over makes that replica empty too).
	AppendOnly bool
	// Fsync is appendfsync; empty means everysec.
	Fsync string
}

// Cluster is a local Redis Cluster started for one test: redis-server
// processes on loopback, each with its own directory, joined by
// redis-cli. All its methods may be called concurrently; those that
// change the cluster (kill, stop, restart, add, rebalance, move) should
// not overlap one another, since each waits for a state the other
// disturbs.
type Cluster struct {
	// Addrs are the seed addresses: every node StartCluster started, the
	// primaries first (in the order redis-cli gave them slots 0 up).
	Addrs []string

	opts ClusterOptions
	cli  string // redis-cli
	root string // parent of the node directories

	mu    sync.Mutex
	nodes []*clusterNode
}

type clusterNode struct {
	addr  string
	dir   string
	proc  *redisproc.Server
	admin *redis.Client
	up    bool // guarded by Cluster.mu
}

// StartCluster starts a Redis Cluster for tb: opts.Primaries primaries
// with opts.Replicas replicas each, joined with redis-cli --cluster
// create, and returns once every node says cluster_state:ok, all 16,384
// slots are served, every node sees the same slot map and every replica's
// link to its primary is up. tb.Cleanup kills every node. Without
// redis-server or redis-cli it skips tb, or fails it when
// CHAT_REQUIRE_REDIS is set.
func StartCluster(tb testing.TB, opts ClusterOptions) *Cluster {
	tb.Helper()
	if opts.Primaries == 0 {
		opts.Primaries = 3
	}
	if opts.Primaries < 3 {
		tb.Fatalf("storetest: a Redis Cluster needs at least 3 primaries, not %d", opts.Primaries)
	}
	switch {
	case opts.Replicas == 0:
		opts.Replicas = 1
	case opts.Replicas < 0:
		opts.Replicas = 0
	}
	if opts.NodeTimeout == 0 {
		opts.NodeTimeout = time.Second
	}
	_, okServer := redisproc.Available()
	cli, errCli := exec.LookPath("redis-cli")
	if !okServer || errCli != nil {
		if os.Getenv("CHAT_REQUIRE_REDIS") != "" {
			tb.Fatal("storetest: CHAT_REQUIRE_REDIS is set but redis-server or redis-cli is not on PATH")
		}
		tb.Skip("SKIPPED: needs redis-server and redis-cli on PATH (Redis Cluster); the in-process store has no cluster mode")
	}

	c := &Cluster{opts: opts, cli: cli, root: tb.TempDir()}
	// Registered after TempDir, so it runs before the directories go.
	tb.Cleanup(c.close)

	n := opts.Primaries * (1 + opts.Replicas)
	nodes := make([]*clusterNode, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() { nodes[i], errs[i] = c.startNode() })
	}
	wg.Wait()
	for _, nd := range nodes {
		if nd != nil {
			c.nodes = append(c.nodes, nd)
			c.Addrs = append(c.Addrs, nd.addr)
		}
	}
	if err := errors.Join(errs...); err != nil {
		tb.Fatalf("storetest: start cluster nodes: %v", err)
	}

	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(opts.Replicas), "--cluster-yes")
	if out, err := c.runCLI(args...); err != nil {
		c.fail(tb, "redis-cli --cluster create: %v\n%s", err, out)
	}
	c.WaitOK(tb)
	return c
}

// nodeArgs are the cluster settings of every node. The replica validity
// factor 0 lets a replica take over however long it was cut off, so a
// failover test never hangs on a slow machine's replication lag; a zero
// diskless-sync delay starts a replica's first sync at once instead of
// after 5 s.
func (c *Cluster) nodeArgs(dir string, busPort int) []string {
	return []string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.FormatInt(c.opts.NodeTimeout.Milliseconds(), 10),
		"--cluster-port", strconv.Itoa(busPort),
		"--cluster-replica-validity-factor", "0",
		"--repl-diskless-sync-delay", "0",
		"--logfile", filepath.Join(dir, "redis.log"),
	}
}

// startNode starts one empty cluster node on fresh ports. Each attempt
// gets a fresh directory, so a node that died at start (its bus port was
// taken) leaves no nodes.conf behind for the next.
func (c *Cluster) startNode() (*clusterNode, error) {
	var lastErr error
	for range startAttempts {
		dir, err := os.MkdirTemp(c.root, "node-")
		if err != nil {
			return nil, fmt.Errorf("storetest: %w", err)
		}
		port, err := pickPort()
		if err != nil {
			return nil, err
		}
		bus, err := pickPort()
		if err != nil {
			return nil, err
		}
		p, err := redisproc.Start(redisproc.Options{Dir: dir, Port: port,
			AppendOnly: c.opts.AppendOnly, Fsync: c.opts.Fsync, Args: c.nodeArgs(dir, bus)})
		if err != nil {
			lastErr = err
			continue
		}
		nd := &clusterNode{addr: p.Addr, dir: dir, proc: p, admin: adminClient(p.Addr), up: true}
		if err := nd.checkIdentity(); err != nil {
			_ = p.Kill()
			_ = nd.admin.Close()
			lastErr = err
			continue
		}
		return nd, nil
	}
	return nil, fmt.Errorf("storetest: start cluster node (%d attempts): %w", startAttempts, lastErr)
}

// checkIdentity makes sure the server answering at nd.addr is the one
// started in nd.dir: redisproc's PING would also succeed against another
// test's server that won the race for the port.
func (nd *clusterNode) checkIdentity() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := nd.admin.ConfigGet(ctx, "dir").Result()
	if err != nil {
		return fmt.Errorf("storetest: %s: config get dir: %w", nd.addr, err)
	}
	want, err := filepath.EvalSymlinks(nd.dir)
	if err != nil {
		return fmt.Errorf("storetest: %w", err)
	}
	if g, _ := filepath.EvalSymlinks(got["dir"]); g != want {
		return fmt.Errorf("storetest: %s is another server (dir %q, want %q)", nd.addr, got["dir"], want)
	}
	return nil
}

// adminClient is a client of one node for the helper's own commands: no
// retries and short timeouts, so a poll of a busy node fails fast and is
// simply tried again.
func adminClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr,
		DialTimeout: time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		MaxRetries: -1, DialerRetries: 1, PoolSize: 2,
		ContextTimeoutEnabled: true, DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
}

var (
	portsMu sync.Mutex
	portsIn = map[int]bool{} // ports this process handed out; never handed out twice
)

// pickPort returns a free loopback port below the kernel's ephemeral
// range when it can. Ports from 127.0.0.1:0 are ephemeral ones, which
// every outgoing connection of every test on the machine also takes as
// its local port; a node restarted on its old port would then often find
// it taken.
func pickPort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	lo, hi := 20000, ephemeralLow()
	for range 200 {
		if hi-lo < 1000 {
			break
		}
		p := lo + rand.IntN(hi-lo)
		if portsIn[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		_ = l.Close()
		portsIn[p] = true
		return p, nil
	}
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("storetest: free port: %w", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !portsIn[p] {
			portsIn[p] = true
			return p, nil
		}
	}
	return 0, errors.New("storetest: no free port")
}

// ephemeralLow is the lowest ephemeral port (Linux); 32768 elsewhere.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return n
}

func (c *Cluster) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nd := range c.nodes {
		_ = nd.admin.Close()
		_ = nd.proc.Kill()
		nd.up = false
	}
}

// runCLI runs redis-cli with args, bounded by cliTimeout, and returns its
// combined output.
func (c *Cluster) runCLI(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.cli, args...)
	cmd.Env = append(os.Environ(), "TERM=dumb") // no colour codes in the output we quote
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v", cliTimeout)
	}
	return out.String(), err
}

// fail ends tb with the message and the tail of every node's log, which
// is what tells a port clash from a crash from a slow election.
func (c *Cluster) fail(tb testing.TB, format string, args ...any) {
	tb.Helper()
	c.mu.Lock()
	nodes := slices.Clone(c.nodes)
	c.mu.Unlock()
	var b strings.Builder
	for _, nd := range nodes {
		log, _ := os.ReadFile(filepath.Join(nd.dir, "redis.log"))
		lines := strings.Split(strings.TrimRight(string(log), "\n"), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Fprintf(&b, "\n--- %s (up %v), last lines of redis.log:\n%s", nd.addr, nd.isUp(c), strings.Join(lines, "\n"))
	}
	tb.Fatalf("storetest: "+format+"%s", append(args, b.String())...)
}

func (nd *clusterNode) isUp(c *Cluster) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return nd.up
}

// Client returns a cluster client of c seeded with every address, closed
// by tb.Cleanup, configured as Server.Client configures its client. It
// also reloads its slot map every second: by default go-redis keeps
// sending a failed-over slot to the dead primary for up to a minute (see
// docs/cluster-facts.md), and a test that checks data after a failover
// would wait that long.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	rdb := redis.NewClusterClient(c.ClientOptions())
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// ClientOptions are the options Client uses, for a test that needs a
// variant (hooks, other timeouts).
func (c *Cluster) ClientOptions() *redis.ClusterOptions {
	return &redis.ClusterOptions{Addrs: slices.Clone(c.Addrs), ContextTimeoutEnabled: true, DisableIdentity: true,
		ClusterStateReloadInterval: time.Second,
		MaintNotificationsConfig:   &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}}
}

// NodeClient returns a client of the one node at addr (for INFO, CLIENT
// KILL, CLUSTER commands), closed by tb.Cleanup.
func (c *Cluster) NodeClient(tb testing.TB, addr string) *redis.Client {
	tb.Helper()
	if c.node(addr) == nil {
		tb.Fatalf("storetest: %s is not a node of this cluster", addr)
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func (c *Cluster) node(addr string) *clusterNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nd := range c.nodes {
		if nd.addr == addr {
			return nd
		}
	}
	return nil
}

// live returns the nodes that are running, and all nodes' addresses.
func (c *Cluster) live() (up []*clusterNode, all []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, nd := range c.nodes {
		all = append(all, nd.addr)
		if nd.up {
			up = append(up, nd)
		}
	}
	return up, all
}

// Slot is the hash slot of key, as Redis Cluster computes it: CRC16 of
// the key, or of its hash tag (the text between the first "{" and the
// next "}", when not empty), modulo 16,384.
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % Slots)
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, zero start), the checksum
// Redis Cluster uses for key slots.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// clusterView is one node's CLUSTER NODES, parsed.
type clusterView struct {
	self   viewNode
	byAddr map[string]viewNode
	owner  [Slots]string // slot → address of the primary serving it
}

type viewNode struct {
	id, addr, master string // master: the primary's ID, "-" for a primary
	flags            string
	link             string // connected or disconnected
	slots            []string
}

func (v viewNode) primary() bool { return strings.Contains(","+v.flags+",", ",master,") }

func (v viewNode) failing() bool {
	for _, f := range strings.Split(v.flags, ",") {
		switch f {
		case "fail", "fail?", "handshake", "noaddr":
			return true
		}
	}
	return false
}

func parseView(text string) (*clusterView, error) {
	v := &clusterView{byAddr: map[string]viewNode{}}
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("storetest: bad CLUSTER NODES line %q", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		n := viewNode{id: f[0], addr: addr, flags: f[2], master: f[3], link: f[7], slots: f[8:]}
		if strings.Contains(n.flags, "myself") {
			n.flags = strings.TrimPrefix(strings.ReplaceAll(n.flags, "myself", ""), ",")
			v.self = n
		}
		v.byAddr[addr] = n
		for _, s := range n.slots {
			if strings.HasPrefix(s, "[") { // an open slot, [slot->-id] or [slot-<-id]
				continue
			}
			a, b, isRange := strings.Cut(s, "-")
			lo, err := strconv.Atoi(a)
			if err != nil {
				return nil, fmt.Errorf("storetest: bad slot %q in %q", s, line)
			}
			hi := lo
			if isRange {
				if hi, err = strconv.Atoi(b); err != nil {
					return nil, fmt.Errorf("storetest: bad slot %q in %q", s, line)
				}
			}
			for i := lo; i <= hi && i < Slots; i++ {
				v.owner[i] = addr
			}
		}
	}
	if v.self.id == "" {
		return nil, errors.New("storetest: CLUSTER NODES has no myself line")
	}
	return v, nil
}

// view returns nd's CLUSTER NODES, parsed.
func (nd *clusterNode) view(ctx context.Context) (*clusterView, error) {
	text, err := nd.admin.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("%s: cluster nodes: %w", nd.addr, err)
	}
	return parseView(text)
}

// settled reports why the cluster is not yet in the state every helper
// waits for, or nil: every running node says cluster_state:ok with all
// slots ok, sees every running node connected and healthy and every
// stopped one without slots, has no slot open for migration, agrees with
// the others on who serves which slot and who replicates whom, and, if a
// replica, has its replication link up.
func (c *Cluster) settled(ctx context.Context) error {
	up, all := c.live()
	if len(up) == 0 {
		return errors.New("no node is running")
	}
	running := map[string]bool{}
	for _, nd := range up {
		running[nd.addr] = true
	}
	var first *clusterView
	var firstAddr string
	for _, nd := range up {
		info, err := nd.admin.ClusterInfo(ctx).Result()
		if err != nil {
			return fmt.Errorf("%s: cluster info: %w", nd.addr, err)
		}
		if st := infoField(info, "cluster_state"); st != "ok" {
			return fmt.Errorf("%s: cluster_state:%s", nd.addr, st)
		}
		if ok := infoField(info, "cluster_slots_ok"); ok != strconv.Itoa(Slots) {
			return fmt.Errorf("%s: cluster_slots_ok:%s", nd.addr, ok)
		}
		v, err := nd.view(ctx)
		if err != nil {
			return err
		}
		for _, s := range v.self.slots {
			if strings.HasPrefix(s, "[") {
				return fmt.Errorf("%s: slot open for migration: %s", nd.addr, s)
			}
		}
		for _, addr := range all {
			n, known := v.byAddr[addr]
			switch {
			case running[addr] && !known:
				return fmt.Errorf("%s does not know %s yet", nd.addr, addr)
			case running[addr] && (n.failing() || n.link != "connected"):
				return fmt.Errorf("%s sees %s as %s, %s", nd.addr, addr, n.flags, n.link)
			case !running[addr] && known && len(n.slots) > 0:
				return fmt.Errorf("%s sees stopped %s still serving slots", nd.addr, addr)
			}
		}
		if first == nil {
			first, firstAddr = v, nd.addr
		} else if err := sameMap(first, v, running); err != nil {
			return fmt.Errorf("%s and %s disagree: %w", firstAddr, nd.addr, err)
		}
		if !v.self.primary() {
			repl, err := nd.admin.Info(ctx, "replication").Result()
			if err != nil {
				return fmt.Errorf("%s: info replication: %w", nd.addr, err)
			}
			if st := infoField(repl, "master_link_status"); st != "up" {
				return fmt.Errorf("%s: master_link_status:%s", nd.addr, st)
			}
		}
	}
	return nil
}

// sameMap reports how two views differ in slot owners or in the roles of
// running nodes.
func sameMap(a, b *clusterView, running map[string]bool) error {
	for s := range a.owner {
		if a.owner[s] != b.owner[s] {
			return fmt.Errorf("slot %d on %q or %q", s, a.owner[s], b.owner[s])
		}
	}
	for addr := range running {
		x, y := a.byAddr[addr], b.byAddr[addr]
		if x.primary() != y.primary() || x.master != y.master {
			return fmt.Errorf("role of %s", addr)
		}
	}
	return nil
}

func infoField(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// waitSettled polls settled until it holds or within passes.
func (c *Cluster) waitSettled(tb testing.TB, within time.Duration, what string) {
	tb.Helper()
	deadline := time.Now().Add(within)
	var err error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = c.settled(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(pollEvery)
	}
	c.fail(tb, "%s: cluster not ok after %v: %v", what, within, err)
}

// WaitOK waits until the cluster is healthy and every node agrees on its
// slot map (see StartCluster), and fails tb after a minute.
func (c *Cluster) WaitOK(tb testing.TB) {
	tb.Helper()
	c.waitSettled(tb, settleTimeout, "wait")
}

// anyView returns the view of the first running node that answers.
func (c *Cluster) anyView(ctx context.Context) (*clusterView, error) {
	up, _ := c.live()
	var errs []error
	for _, nd := range up {
		v, err := nd.view(ctx)
		if err == nil {
			return v, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("no running node answers: %w", errors.Join(errs...))
}

// PrimaryOf returns the address of the primary serving key's slot, as
// the first running node sees it.
func (c *Cluster) PrimaryOf(tb testing.TB, key string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := c.anyView(ctx)
	if err != nil {
		tb.Fatalf("storetest: primary of %q: %v", key, err)
	}
	addr := v.owner[Slot(key)]
	if addr == "" {
		tb.Fatalf("storetest: primary of %q: slot %d is not served", key, Slot(key))
	}
	return addr
}

// Primaries returns the addresses of the primaries that serve slots, in
// slot order, as the first running node sees them.
func (c *Cluster) Primaries(tb testing.TB) []string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := c.anyView(ctx)
	if err != nil {
		tb.Fatalf("storetest: primaries: %v", err)
	}
	var out []string
	for _, addr := range v.owner {
		if addr != "" && !slices.Contains(out, addr) {
			out = append(out, addr)
		}
	}
	return out
}

// KillPrimaryOf kills (SIGKILL, as a crash would) the primary serving
// key's slot and returns its address. Its directory stays, for
// RestartNode.
func (c *Cluster) KillPrimaryOf(tb testing.TB, key string) string {
	tb.Helper()
	addr := c.PrimaryOf(tb, key)
	nd := c.node(addr)
	c.mu.Lock()
	nd.up = false
	c.mu.Unlock()
	_ = nd.proc.Kill()
	return addr
}

// WaitFailover waits until key's slot is served by a running node (the
// killed primary's replica, promoted) and the cluster is ok again, then
// returns the new primary's address. It fails tb after a minute.
func (c *Cluster) WaitFailover(tb testing.TB, key string) string {
	tb.Helper()
	c.waitSettled(tb, failoverTimeout, "failover of "+key)
	return c.PrimaryOf(tb, key)
}

// StopNode stops the node at addr gracefully (SIGTERM: with AppendOnly it
// flushes its file). The cluster fails it over after NodeTimeout if it
// was a primary with a replica.
func (c *Cluster) StopNode(tb testing.TB, addr string) {
	tb.Helper()
	nd := c.node(addr)
	if nd == nil {
		tb.Fatalf("storetest: %s is not a node of this cluster", addr)
	}
	c.mu.Lock()
	nd.up = false
	c.mu.Unlock()
	if err := nd.proc.Stop(); err != nil {
		tb.Fatalf("storetest: stop %s: %v", addr, err)
	}
}

// RestartNode starts the stopped or killed node at addr again, on the
// same port and directory, and waits until the cluster is ok with it: a
// primary that was failed over rejoins as a replica of its successor.
func (c *Cluster) RestartNode(tb testing.TB, addr string) {
	tb.Helper()
	nd := c.node(addr)
	if nd == nil {
		tb.Fatalf("storetest: %s is not a node of this cluster", addr)
	}
	if nd.isUp(c) {
		tb.Fatalf("storetest: restart %s: it is running", addr)
	}
	if err := nd.proc.StartAgain(); err != nil {
		c.fail(tb, "restart %s: %v", addr, err)
	}
	if err := nd.checkIdentity(); err != nil {
		c.fail(tb, "restart %s: %v", addr, err)
	}
	c.mu.Lock()
	nd.up = true
	c.mu.Unlock()
	c.waitSettled(tb, settleTimeout, "restart of "+addr)
}

// AddPrimary starts an empty node, joins it with redis-cli --cluster
// add-node, waits until every node knows it and returns its address. It
// serves no slots until Rebalance or MoveSlot gives it some.
func (c *Cluster) AddPrimary(tb testing.TB) string {
	tb.Helper()
	nd, err := c.startNode()
	if err != nil {
		tb.Fatalf("storetest: add primary: %v", err)
	}
	up, _ := c.live()
	c.mu.Lock()
	c.nodes = append(c.nodes, nd)
	c.mu.Unlock()
	if len(up) == 0 {
		c.fail(tb, "add primary: no node is running")
	}
	if out, err := c.runCLI("--cluster", "add-node", nd.addr, up[0].addr); err != nil {
		c.fail(tb, "redis-cli --cluster add-node: %v\n%s", err, out)
	}
	c.waitSettled(tb, settleTimeout, "add-node "+nd.addr)
	return nd.addr
}

// Rebalance runs redis-cli --cluster rebalance --cluster-use-empty-masters,
// which moves slots (and their keys) until every primary serves about as
// many, and waits until every node agrees on the new map.
func (c *Cluster) Rebalance(tb testing.TB) {
	tb.Helper()
	up, _ := c.live()
	if len(up) == 0 {
		c.fail(tb, "rebalance: no node is running")
	}
	if out, err := c.runCLI("--cluster", "rebalance", up[0].addr, "--cluster-use-empty-masters"); err != nil {
		c.fail(tb, "redis-cli --cluster rebalance: %v\n%s", err, out)
	}
	c.waitSettled(tb, settleTimeout, "rebalance")
}

// MoveSlot moves one slot, with its keys, to the primary at to, the way
// redis-cli reshards (SETSLOT IMPORTING and MIGRATING, MIGRATE of every
// key, SETSLOT NODE), and waits until every node agrees. Clients that
// still route the slot to its old primary get MOVED.
func (c *Cluster) MoveSlot(tb testing.TB, slot int, to string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	if err := c.moveSlot(ctx, slot, to); err != nil {
		c.fail(tb, "move slot %d to %s: %v", slot, to, err)
	}
	c.waitSettled(tb, settleTimeout, fmt.Sprintf("move of slot %d", slot))
}

func (c *Cluster) moveSlot(ctx context.Context, slot int, to string) error {
	if slot < 0 || slot >= Slots {
		return fmt.Errorf("no slot %d", slot)
	}
	v, err := c.anyView(ctx)
	if err != nil {
		return err
	}
	from := v.owner[slot]
	if from == to {
		return nil
	}
	src, dst := c.node(from), c.node(to)
	if src == nil || dst == nil || !v.byAddr[to].primary() {
		return fmt.Errorf("%s or %s is not a primary of this cluster", from, to)
	}
	srcID, dstID := v.byAddr[from].id, v.byAddr[to].id
	if err := dst.admin.Do(ctx, "cluster", "setslot", slot, "importing", srcID).Err(); err != nil {
		return fmt.Errorf("setslot importing: %w", err)
	}
	if err := src.admin.Do(ctx, "cluster", "setslot", slot, "migrating", dstID).Err(); err != nil {
		return fmt.Errorf("setslot migrating: %w", err)
	}
	host, port, _ := net.SplitHostPort(to)
	for {
		keys, err := src.admin.ClusterGetKeysInSlot(ctx, slot, 100).Result()
		if err != nil {
			return fmt.Errorf("getkeysinslot: %w", err)
		}
		if len(keys) == 0 {
			break
		}
		args := []any{"migrate", host, port, "", 0, 10000, "keys"}
		for _, k := range keys {
			args = append(args, k)
		}
		if err := src.admin.Do(ctx, args...).Err(); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	// The destination first, so that the slot is never served by nobody
	// (the order redis-cli uses); then every other primary, so that the
	// new map is known at once rather than by gossip.
	if err := dst.admin.Do(ctx, "cluster", "setslot", slot, "node", dstID).Err(); err != nil {
		return fmt.Errorf("setslot node on %s: %w", to, err)
	}
	up, _ := c.live()
	for _, nd := range up {
		if nd == dst || !v.byAddr[nd.addr].primary() {
			continue
		}
		if err := nd.admin.Do(ctx, "cluster", "setslot", slot, "node", dstID).Err(); err != nil {
			return fmt.Errorf("setslot node on %s: %w", nd.addr, err)
		}
	}
	return nil
}

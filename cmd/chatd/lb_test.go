package main

// The compose topology from local processes: redis-server, three chatd
// processes and Debian's nginx with testdata/deploy/nginx.conf, the file
// compose mounts. Clients reach chatd only through nginx; a rolling
// restart moves them between instances and loses nothing.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redstream/chat/cmd/internal/chatdtest"
	"github.com/redstream/chat/store/storetest"
)

// nginxProc is nginx started with a copy of the deploy config.
type nginxProc struct {
	URL string
	// Rejoin is how long nginx's passive checks may keep a server that
	// failed out of rotation: fail_timeout of the upstream server lines
	// (nginx's default 10s), or 0 with max_fails=0.
	Rejoin time.Duration
}

// rejoinAfter reads max_fails and fail_timeout from upstream server options.
func rejoinAfter(tb testing.TB, opts string) time.Duration {
	tb.Helper()
	maxFails, timeout := "1", "10s"
	for _, o := range strings.Fields(opts) {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "max_fails":
			maxFails = v
		case "fail_timeout":
			timeout = v
		}
	}
	if maxFails == "0" {
		return 0
	}
	d, err := time.ParseDuration(timeout)
	if err != nil {
		if n, err2 := strconv.Atoi(timeout); err2 == nil {
			d = time.Duration(n) * time.Second // nginx: a bare number is seconds
		} else {
			tb.Fatalf("nginx.conf: fail_timeout=%s: %v", timeout, err)
		}
	}
	return d
}

// lbConfig rewrites the deploy config for local processes: the upstream
// server lines between the markers point at upstreams (keeping their
// options, also returned), and nginx listens on listen.
func lbConfig(tb testing.TB, conf string, upstreams []string, listen string) (string, string) {
	tb.Helper()
	lines := strings.Split(conf, "\n")
	var out []string
	var opts string
	begin, end, listens := -1, -1, 0
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "# upstream-servers-begin":
			begin = i
			out = append(out, line)
			continue
		case trimmed == "# upstream-servers-end":
			end = i
			if begin < 0 {
				tb.Fatal("nginx.conf: upstream-servers-end before -begin")
			}
			var indent string
			for _, l := range lines[begin+1 : i] {
				f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(l), ";"))
				if len(f) >= 2 && f[0] == "server" {
					opts = strings.Join(f[2:], " ")
					indent = l[:len(l)-len(strings.TrimLeft(l, " \t"))]
				}
			}
			if indent == "" {
				tb.Fatal("nginx.conf: no server line between the upstream markers")
			}
			for _, u := range upstreams {
				out = append(out, strings.TrimRight(indent+"server "+u+" "+opts, " ")+";")
			}
			out = append(out, line)
			continue
		case begin >= 0 && end < 0:
			continue // an original server line
		case trimmed == "listen 8080;":
			listens++
			out = append(out, strings.Replace(line, "listen 8080;", "listen "+listen+";", 1))
			continue
		}
		out = append(out, line)
	}
	if begin < 0 || end < 0 || listens != 1 {
		tb.Fatalf("nginx.conf: markers or the single \"listen 8080;\" line not found (begin %d, end %d, listen lines %d)", begin, end, listens)
	}
	return strings.Join(out, "\n"), opts
}

// mustStartNginx runs nginx in front of upstreams and waits until a request
// through it reaches chatd. tb.Cleanup stops it.
func mustStartNginx(tb testing.TB, bin string, upstreams []string) *nginxProc {
	tb.Helper()
	conf, err := os.ReadFile(filepath.Join("..", "..", "testdata", "deploy", "nginx.conf"))
	if err != nil {
		tb.Fatal(err)
	}
	// nginx started as root runs its workers as nobody: they must be able
	// to reach the prefix, so it is a world-traversable directory of its own.
	dir, err := os.MkdirTemp("", "chatd-lb-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(chatdtest.FreePort(tb)))
	confPath := filepath.Join(dir, "nginx.conf")
	newConf, opts := lbConfig(tb, string(conf), upstreams, listen)
	if err := os.WriteFile(confPath, []byte(newConf), 0o644); err != nil {
		tb.Fatal(err)
	}
	log := &chatdtest.Log{}
	cmd := exec.Command(bin, "-c", confPath, "-p", dir+"/",
		"-g", "daemon off; pid "+filepath.Join(dir, "nginx.pid")+"; error_log stderr;")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.WaitDelay = 5 * time.Second
	// SIGTERM if the test binary dies first: the master then stops its
	// workers, which a SIGKILL would leave running.
	cmd.SysProcAttr = chatdtest.ChildAttr(syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	tb.Cleanup(func() {
		// SIGTERM: the master stops its workers; then make sure of the group.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			tb.Errorf("nginx did not stop within 10s of SIGTERM")
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if tb.Failed() {
			tb.Logf("nginx stderr:\n%s", log.Tail(16<<10))
		}
	})
	n := &nginxProc{URL: "http://" + listen, Rejoin: rejoinAfter(tb, opts)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := chatdtest.Status(n.URL + "/healthz")
		if err == nil && st == 200 {
			return n
		}
		select {
		case <-done:
			tb.Fatalf("nginx exited at start:\n%s", log.Tail(8<<10))
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("nginx: /healthz through it: %d %v\n%s", st, err, log.Tail(8<<10))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// restPoller GETs a REST route through the balancer every 50 ms on a new
// connection each time (so that every nginx worker sees some) and counts
// the answers.
type restPoller struct {
	mu     sync.Mutex
	status map[int]int
}

func (p *restPoller) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("REST requests through nginx by status: %v", p.status)
}

func pollThrough(tb testing.TB, url, token string) *restPoller {
	p := &restPoller{status: map[int]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	tb.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			st := 0
			if res, err := c.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				st = res.StatusCode
			}
			if ctx.Err() == nil {
				p.mu.Lock()
				p.status[st]++
				p.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return p
}

// TestLoadBalancerRollingRestart: twelve clients chat through nginx in
// front of three instances; each instance in turn is stopped with SIGTERM
// (its sockets close with 1001, the clients come back through nginx to the
// others and recover with since) and started again. Nothing is lost or
// delivered twice.
func TestLoadBalancerRollingRestart(t *testing.T) {
	bin := requireTool(t, "nginx", "CHAT_REQUIRE_NGINX", "/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin")
	srv := storetest.Start(t, storetest.Options{AppendOnly: true})
	srv.RequireReal(t)
	env := map[string]string{
		"REDIS_URL":            "redis://" + srv.Addr,
		"CHAT_JWT_SECRET":      faultSecret,
		"CHAT_TRUSTED_PROXIES": "127.0.0.1/32",
		"CHAT_SHUTDOWN_GRACE":  "2s",
		"CHAT_SEND_RATE":       "1000",
		"CHAT_SEND_BURST":      "1000",
	}
	var procs []*chatdtest.Proc
	var addrs []string
	for i := range 3 {
		p := mustStartChatdProc(t, fmt.Sprintf("chatd%d", i+1), env)
		procs = append(procs, p)
		addrs = append(addrs, p.Addr)
	}
	lb := mustStartNginx(t, bin, addrs)

	// Register and log in through nginx; every socket goes through it.
	// Twelve sockets of six users: users 0-3 each send on one socket and
	// receive on another, users 4 and 5 receive on two sockets each.
	var names []string
	for i := range 6 {
		names = append(names, fmt.Sprintf("lbuser%d", i))
	}
	tokens := mustUsers(t, lb.URL, names...)
	var senders, receivers []clientSpec
	for i := range 12 {
		u := names[i%6]
		spec := clientSpec{fmt.Sprintf("client%d(%s)", i, u), u, tokens[u], []string{lb.URL}}
		if i < 4 {
			senders = append(senders, spec)
		} else {
			receivers = append(receivers, spec)
		}
	}
	l := startLoad(t, "general", 50*time.Millisecond, senders, receivers)
	clients := make([]*loadClient, 0, 12)
	for _, s := range l.senders {
		clients = append(clients, &s.loadClient)
	}
	for _, r := range l.receivers {
		clients = append(clients, &r.loadClient)
	}
	// Browsers also load rooms and history over REST; nginx's passive
	// checks only learn that a restarted instance is healthy again from
	// requests that complete, and a WebSocket completes only when it closes.
	rest := pollThrough(t, lb.URL+"/api/rooms", l.receivers[0].Token)
	l.waitFlowing(10, 30*time.Second)

	var moved []int
	for k, p := range procs {
		before := make([]int, len(clients))
		connsBefore := make([]int, len(clients))
		for i, c := range clients {
			before[i] = c.closeCount()
			c.mu.Lock()
			connsBefore[i] = c.connects
			c.mu.Unlock()
		}
		took := p.Stop(t)
		// Every client whose socket the stop closed is back. Two ready
		// instances in nginx's rotation are left, so 10s is a generous
		// bound; the wait goes on to 30s so that the figures are still
		// reported.
		stopped := time.Now()
		n := 0
		storetest.CheckFor(t, 30*time.Second, func() error {
			n = 0
			for i, c := range clients {
				closed := c.closeCount() - before[i]
				if closed == 0 {
					continue
				}
				n++
				c.mu.Lock()
				back := c.connects - connsBefore[i]
				c.mu.Unlock()
				if back < closed {
					return fmt.Errorf("%s has not reconnected through nginx", c.Name)
				}
			}
			return nil
		})
		backIn := time.Since(stopped)
		moved = append(moved, n)
		t.Logf("%s stopped with SIGTERM in %v: %d of %d clients moved, all back through nginx %v after it exited",
			p.Name, took.Round(time.Millisecond), n, len(clients), backIn.Round(time.Millisecond))
		if n == 0 {
			t.Errorf("stopping %s closed no client socket: nginx sent no clients to it", p.Name)
		}
		if backIn > 10*time.Second {
			t.Errorf("after stopping %s, its clients needed %v to get back in through nginx; want within 10s", p.Name, backIn.Round(time.Millisecond))
		}
		p.Start(t)
		l.waitFlowing(10, 30*time.Second)
		if k < len(procs)-1 {
			// Back in rotation. /readyz is 200 at once, but nginx skips a
			// server that failed (while it was down) for fail_timeout, and
			// learns that it is healthy again only from a request that
			// completes (a WebSocket completes when it closes); the REST
			// poller makes those. Stopping the next instance sooner (the
			// README only says to wait for /readyz) left its clients with
			// "no live upstreams" for up to 10s with this REST traffic,
			// and over 25s without it.
			time.Sleep(lb.Rejoin + time.Second)
		}
	}
	fig := l.finish(lb.URL, l.receivers[0].Token)
	for code, n := range fig.Closes {
		if code != "1001" {
			t.Errorf("%d sockets ended with %s during the rolling restart; want only 1001 (going away)", n, code)
		}
	}
	t.Logf("rolling restart through nginx: clients moved per restart %v; %v; %v", moved, fig, rest)
}

package main

// The attacks of issue 14 (findings 1, 3, 5, 6, 7, 9, 10, 11 and 13) and
// the startup of issue 18 point 11, each made against a real chatd on a
// real Redis the way the finding describes, over loopback only, in bounded
// loops. Linux routes all of 127.0.0.0/8 to the loopback device, so the
// tests play several machines by binding their clients to 127.0.0.2,
// 127.0.0.3 and so on. Each test logs its figure, so the closing note of
// the issue can quote before and after.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/redis/go-redis/v9"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/redstream/chat/cmd/internal/chatdtest"
	"github.com/redstream/chat/config"
	"github.com/redstream/chat/store/redisproc"
	"github.com/redstream/chat/store/storetest"
)

// abuseSecret is the CHAT_JWT_SECRET of these tests, so that they can sign
// tokens themselves where a real login would only cost time.
const abuseSecret = "abuse-secret-abuse-secret-abuse-secret-01"

// abuseChatd runs chatd on a real Redis with env on top of REDIS_URL and
// CHAT_JWT_SECRET; its log is shown if the test fails.
func abuseChatd(t *testing.T, env map[string]string) (*chatd, *storetest.Server) {
	t.Helper()
	srv := storetest.Start(t, storetest.Options{})
	e := map[string]string{"REDIS_URL": "redis://" + srv.Addr, "CHAT_JWT_SECRET": abuseSecret}
	maps.Copy(e, env)
	d := mustRunChatd(t, e)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(d.logText())
		}
	})
	return d, srv
}

// abuseClient is an HTTP client whose connections come from the loopback
// address from (127.0.0.x), with up to conns of them open at once.
func abuseClient(tb testing.TB, from string, conns int) *http.Client {
	tb.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, MaxConnsPerHost: conns, MaxIdleConnsPerHost: conns, DisableCompression: true}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// abuseAnswer is what a client saw of one request.
type abuseAnswer struct {
	Status     int
	Code       string // the error code, if any
	RetryAfter string
	Token      string
	Body       string
	Took       time.Duration
	Err        error
}

// abuseDo sends one request; it may run in any goroutine.
func abuseDo(c *http.Client, method, url, token string, body any, header ...string) abuseAnswer {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return abuseAnswer{Err: err}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	start := time.Now()
	res, err := c.Do(req)
	if err != nil {
		return abuseAnswer{Err: err, Took: time.Since(start)}
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	a := abuseAnswer{Status: res.StatusCode, RetryAfter: res.Header.Get("Retry-After"), Body: string(data), Took: time.Since(start)}
	var v struct {
		Token string `json:"token"`
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(data, &v)
	a.Token, a.Code = v.Token, v.Error.Code
	return a
}

func creds(name, password string) map[string]string {
	return map[string]string{"username": name, "password": password}
}

// abuseParallel runs n calls of f at once (released together) and returns
// their answers in call order.
func abuseParallel(n int, f func(i int) abuseAnswer) []abuseAnswer {
	out := make([]abuseAnswer, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			out[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return out
}

// tally counts answers by status (0: no answer).
func tally(as []abuseAnswer) map[int]int {
	m := map[int]int{}
	for _, a := range as {
		m[a.Status]++
	}
	return m
}

func slowest(as []abuseAnswer) time.Duration {
	var m time.Duration
	for _, a := range as {
		m = max(m, a.Took)
	}
	return m
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// checkRetryAfter reports an answer that is not status with code and a
// positive Retry-After.
func checkRetryAfter(t *testing.T, what string, a abuseAnswer, status int, code string) {
	t.Helper()
	n, err := strconv.Atoi(a.RetryAfter)
	if a.Status != status || a.Code != code || err != nil || n < 1 {
		t.Errorf("%s: %d %q Retry-After %q (%v), want %d %s with a positive Retry-After", what, a.Status, a.Code, a.RetryAfter, a.Err, status, code)
	}
}

func mustRegister(t *testing.T, c *http.Client, base, name, password string) {
	t.Helper()
	if a := abuseDo(c, "POST", base+"/api/register", "", creds(name, password)); a.Status != http.StatusCreated {
		t.Fatalf("register %s: %d %s %v", name, a.Status, a.Body, a.Err)
	}
}

// signToken signs a token for user as chatd would, with abuseSecret.
func signToken(tb testing.TB, secret, user string, issued time.Time) string {
	tb.Helper()
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	tok, err := jwt.NewBuilder().Subject(user).IssuedAt(issued).Expiration(issued.Add(time.Hour)).JwtID(hex.EncodeToString(jti)).Build()
	if err != nil {
		tb.Fatal(err)
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256, []byte(secret)))
	if err != nil {
		tb.Fatal(err)
	}
	return string(signed)
}

// TestAbuseParallelLoginsCountedFirst, finding 1: a login attempt is
// counted before its password is checked, so a burst of parallel logins
// tests no more passwords than the failed-login limit (10 per username and
// address) allows, and a flood for an unknown name costs ten hashes, not a
// thousand, so a real user's login meanwhile stays quick.
func TestAbuseParallelLoginsCountedFirst(t *testing.T) {
	d, _ := abuseChatd(t, map[string]string{"CHAT_MAX_CONNS_PER_ADDR": "0"})
	c := abuseClient(t, "127.0.0.1", 1000)
	mustRegister(t, c, d.URL, "victim", "right-password-victim")
	mustRegister(t, c, d.URL, "owner", "right-password-owner")

	answers := abuseParallel(300, func(i int) abuseAnswer {
		pw := "wrong-password"
		if i == 289 {
			pw = "right-password-victim"
		}
		return abuseDo(c, "POST", d.URL+"/api/login", "", creds("victim", pw))
	})
	got := tally(answers)
	tested := got[http.StatusUnauthorized] + got[http.StatusOK]
	t.Logf("300 parallel logins for one user (the 290th with the right password): %d answered 401, %d 200, %d 429: %d passwords tested",
		got[401], got[200], got[429], tested)
	if tested > 10 {
		t.Errorf("%d passwords were tested (%v); the limit is 10 failed logins per username and address", tested, got)
	}
	for i, a := range answers {
		if a.Status != http.StatusUnauthorized && a.Status != http.StatusOK {
			checkRetryAfter(t, fmt.Sprintf("login %d", i+1), a, http.StatusTooManyRequests, "too_many_attempts")
			break
		}
	}

	// 1,000 parallel logins for a name nobody has; the owner logs in meanwhile.
	var own abuseAnswer
	var wg sync.WaitGroup
	wg.Go(func() {
		time.Sleep(100 * time.Millisecond)
		own = abuseDo(abuseClient(t, "127.0.0.1", 1), "POST", d.URL+"/api/login", "", creds("owner", "right-password-owner"))
	})
	flood := abuseParallel(1000, func(int) abuseAnswer {
		return abuseDo(c, "POST", d.URL+"/api/login", "", creds("ghost", "any-password"))
	})
	wg.Wait()
	got = tally(flood)
	t.Logf("1,000 parallel logins for an unknown user: %d answered 401 (hashed), %d 429, slowest %v; a real user's login meanwhile: %d in %v",
		got[401], got[429], slowest(flood).Round(time.Millisecond), own.Status, own.Took.Round(time.Millisecond))
	if got[401] > 10 {
		t.Errorf("%d logins for an unknown user were hashed; want at most 10", got[401])
	}
	// The owner waits behind the flood's requests (a Redis call each, 1 to
	// 4 s on this 2-core machine under load), not behind 1,000 hashes.
	if own.Status != http.StatusOK || own.Took > 10*time.Second {
		t.Errorf("the owner's login during the flood: %d in %v, want 200 within 10s", own.Status, own.Took)
	}
}

// TestAbuseHashWaitBounded, finding 1: with the attempt limits out of the
// way (a distributed attack looks like this), a flood of logins does not
// queue for a password-hash slot without end: past CHAT_HASH_QUEUE waiters
// or CHAT_HASH_WAIT, a login is answered 503 unavailable with Retry-After at
// once, and a real user's login is answered within the bound too.
func TestAbuseHashWaitBounded(t *testing.T) {
	d, _ := abuseChatd(t, map[string]string{
		"CHAT_MAX_CONNS_PER_ADDR":    "0",
		"CHAT_LOGIN_USER_ADDR_LIMIT": "100000",
		"CHAT_LOGIN_USER_LIMIT":      "100000",
		"CHAT_LOGIN_ADDR_LIMIT":      "100000",
		"CHAT_HASH_WAIT":             "1s",
	})
	c := abuseClient(t, "127.0.0.1", 1000)
	mustRegister(t, c, d.URL, "owner", "right-password-owner")
	var own abuseAnswer
	var wg sync.WaitGroup
	wg.Go(func() {
		time.Sleep(200 * time.Millisecond)
		own = abuseDo(abuseClient(t, "127.0.0.2", 1), "POST", d.URL+"/api/login", "", creds("owner", "right-password-owner"))
	})
	flood := abuseParallel(600, func(i int) abuseAnswer {
		return abuseDo(c, "POST", d.URL+"/api/login", "", creds(fmt.Sprintf("ghost%03d", i), "any-password"))
	})
	wg.Wait()
	got := tally(flood)
	t.Logf("600 parallel logins of unknown users: %v, slowest answer %v; a real user's login meanwhile: %d in %v",
		got, slowest(flood).Round(time.Millisecond), own.Status, own.Took.Round(time.Millisecond))
	if s := slowest(flood); s > 4*time.Second {
		t.Errorf("the slowest login was answered after %v; want within CHAT_HASH_WAIT (1s) and a hash or two", s)
	}
	if got[http.StatusServiceUnavailable] == 0 {
		t.Errorf("no login was turned away (%v): the wait for a hash slot is not bounded", got)
	}
	for _, a := range flood {
		if a.Status == http.StatusServiceUnavailable {
			checkRetryAfter(t, "a login turned away", a, http.StatusServiceUnavailable, "unavailable")
			break
		}
		if a.Status != http.StatusUnauthorized {
			t.Errorf("a login of an unknown user: %d %s %v, want 401 or 503", a.Status, a.Body, a.Err)
			break
		}
	}
	if own.Took > 4*time.Second || (own.Status != http.StatusOK && own.Status != http.StatusServiceUnavailable) {
		t.Errorf("the owner's login during the flood: %d in %v, want 200 (or 503 with Retry-After) within 4s", own.Status, own.Took)
	}
}

// TestAbuseRefreshAndLogoutLimited, finding 3: refreshes and logouts are
// limited per user like failed logins (CHAT_REFRESH_LIMIT, 30 in 5
// minutes), so one user cannot fill Redis with revocation keys.
func TestAbuseRefreshAndLogoutLimited(t *testing.T) {
	d, srv := abuseChatd(t, nil)
	c := abuseClient(t, "127.0.0.1", 4)
	tok := user(t, d.URL, "alice")
	ok := 0
	var last abuseAnswer
	for range 100 {
		if a := abuseDo(c, "POST", d.URL+"/api/refresh", tok, nil); a.Status == http.StatusOK {
			ok++
		} else {
			last = a
		}
	}
	t.Logf("100 refreshes in a row: %d answered 200", ok)
	if ok > 30 {
		t.Errorf("%d of 100 refreshes succeeded; want at most 30 (CHAT_REFRESH_LIMIT)", ok)
	}
	checkRetryAfter(t, "a refresh past the limit", last, http.StatusTooManyRequests, "rate_limited")
	if a := abuseDo(c, "GET", d.URL+"/api/me", tok, nil); a.Status != http.StatusOK {
		t.Errorf("GET /api/me after the refreshes: %d, want 200 (a limited refresh changes nothing)", a.Status)
	}

	// Logouts: 300 tokens of bob, signed here (logins are not limited, but
	// this spares 300 password hashes), each logged out.
	user(t, d.URL, "bob")
	rdb := srv.Client(t)
	ctx := context.Background()
	before, _ := rdb.DBSize(ctx).Result()
	started := time.Now()
	out := 0
	var refused abuseAnswer
	for range 300 {
		if a := abuseDo(c, "POST", d.URL+"/api/logout", signToken(t, abuseSecret, "bob", time.Now()), nil); a.Status == http.StatusNoContent {
			out++
		} else {
			refused = a
		}
	}
	after, _ := rdb.DBSize(ctx).Result()
	t.Logf("300 logouts of one user in %v: %d answered 204; Redis keys %d -> %d", time.Since(started).Round(time.Millisecond), out, before, after)
	if out > 30 || after-before > 32 {
		t.Errorf("%d logouts stored %d keys; want at most 30 logouts per user in 5 minutes", out, after-before)
	}
	checkRetryAfter(t, "a logout past the limit", refused, http.StatusTooManyRequests, "rate_limited")
}

// abuseRaw dials chatd from a loopback address and watches the
// connection: closed is set once the server ends it.
type abuseRaw struct {
	c      net.Conn
	mu     sync.Mutex
	closed time.Time
	got    bytes.Buffer
}

func dialFrom(tb testing.TB, from, addr string) (*abuseRaw, error) {
	tb.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { c.Close() })
	r := &abuseRaw{c: c}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			r.mu.Lock()
			r.got.Write(buf[:n])
			if err != nil {
				r.closed = time.Now()
				r.mu.Unlock()
				return
			}
			r.mu.Unlock()
		}
	}()
	return r, nil
}

func (r *abuseRaw) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.closed.IsZero()
}

func (r *abuseRaw) received() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got.String()
}

// TestAbuseSlowBodiesAndConnsPerAddr, finding 5: a body sent one byte at a
// time is cut off after CHAT_READ_TIMEOUT (3s here), one address holds at most
// CHAT_MAX_CONNS_PER_ADDR connections, other addresses are served
// meanwhile, and a trusted proxy (many clients behind one address) is not
// capped.
func TestAbuseSlowBodiesAndConnsPerAddr(t *testing.T) {
	d, _ := abuseChatd(t, map[string]string{
		"CHAT_READ_TIMEOUT":       "3s",
		"CHAT_MAX_CONNS_PER_ADDR": "20",
		"CHAT_TRUSTED_PROXIES":    "127.0.0.3/32",
	})
	addr := strings.TrimPrefix(d.URL, "http://")
	const n = 100
	var slow []*abuseRaw
	stop := make(chan struct{})
	var drips sync.WaitGroup
	t.Cleanup(func() { close(stop); drips.Wait() })
	start := time.Now()
	for range n {
		r, err := dialFrom(t, "127.0.0.2", addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		slow = append(slow, r)
		drips.Go(func() {
			head := "POST /api/login HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"
			if _, err := io.WriteString(r.c, head); err != nil {
				return
			}
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					if _, err := r.c.Write([]byte(" ")); err != nil {
						return
					}
				}
			}
		})
	}
	open := func() int {
		k := 0
		for _, r := range slow {
			if !r.isClosed() {
				k++
			}
		}
		return k
	}
	// Those over the cap are answered at once; the others are cut off
	// when the read timeout ends, not before.
	time.Sleep(time.Second)
	early := open()
	// Another address is served while the slow connections hold.
	other := abuseDo(abuseClient(t, "127.0.0.4", 1), "GET", d.URL+"/healthz", "", nil)
	// So is a trusted proxy with more connections than the cap.
	var proxied []*abuseRaw
	for range 40 {
		r, err := dialFrom(t, "127.0.0.3", addr)
		if err != nil {
			t.Fatalf("dial from the proxy: %v", err)
		}
		if _, err := io.WriteString(r.c, "GET /healthz HTTP/1.1\r\nHost: "+addr+"\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		proxied = append(proxied, r)
	}
	storetest.CheckFor(t, 5*time.Second, func() error {
		for i, r := range proxied {
			if !strings.HasPrefix(r.received(), "HTTP/1.1 200") {
				return fmt.Errorf("proxied connection %d: %q", i, r.received())
			}
		}
		return nil
	})
	var last time.Duration
	deadline := time.Now().Add(8 * time.Second)
	for open() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, r := range slow {
		r.mu.Lock()
		if !r.closed.IsZero() {
			last = max(last, r.closed.Sub(start))
		}
		r.mu.Unlock()
	}
	t.Logf("%d connections from one address dripping a login body: %d open after 1s, %d after %v (the last closed after %v); /healthz from another address: %d in %v; 40 connections of a trusted proxy served",
		n, early, open(), time.Since(start).Round(time.Millisecond), last.Round(time.Millisecond), other.Status, other.Took.Round(time.Millisecond))
	if early > 20 {
		t.Errorf("%d connections from one address open; want at most 20 (CHAT_MAX_CONNS_PER_ADDR)", early)
	}
	if k := open(); k > 0 {
		t.Errorf("%d slow bodies still open after 8s; CHAT_READ_TIMEOUT is 3s", k)
	}
	if early < 20 || last < 2*time.Second {
		t.Errorf("%d connections open after 1s, the last closed after %v: the cap admits 20, and the read timeout (3s) should end them", early, last)
	}
	if other.Status != http.StatusOK || other.Took > time.Second {
		t.Errorf("/healthz from another address: %d in %v, want 200 at once", other.Status, other.Took)
	}
	for _, r := range slow {
		if got := r.received(); strings.HasPrefix(got, "HTTP/1.1 429") {
			if !strings.Contains(got, "Retry-After:") {
				t.Errorf("a connection over the cap was answered %q, want a Retry-After", got)
			}
			break
		}
	}
}

// redisChild finds the redis-server that chatd started with its files in
// dir (its working directory: redis-server rewrites its command line) and
// returns its process ID.
func redisChild(tb testing.TB, dir string) int {
	tb.Helper()
	var pid int
	storetest.CheckFor(tb, 10*time.Second, func() error {
		cwds, _ := filepath.Glob("/proc/[0-9]*/cwd")
		for _, p := range cwds {
			if cwd, err := os.Readlink(p); err != nil || cwd != dir {
				continue
			}
			if comm, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "comm")); !strings.HasPrefix(string(comm), "redis-server") {
				continue
			}
			pid, _ = strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return nil
		}
		return fmt.Errorf("no redis-server works in %s", dir)
	})
	return pid
}

// tcpListeners returns the TCP ports process pid listens on, from its
// sockets' inodes in /proc/net/tcp and tcp6.
func tcpListeners(tb testing.TB, pid int) []int {
	tb.Helper()
	inodes := map[string]bool{}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] { // 0A: LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			if port, err := strconv.ParseInt(hexPort, 16, 32); err == nil {
				ports = append(ports, int(port))
			}
		}
	}
	return ports
}

// respCommand sends one RESP command over c and returns the first line of
// the reply.
func respCommand(c net.Conn, args ...string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, b.String()); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// TestAbuseSelfContainedRedisIsPrivate, finding 6: the Redis of
// self-contained mode holds the signing key, so no other local user may
// reach it: the private redis-server listens on a unix socket inside the
// 0700 data directory and on no TCP port, and the in-process store asks
// for a password nobody else knows.
func TestAbuseSelfContainedRedisIsPrivate(t *testing.T) {
	t.Run("redis-server", func(t *testing.T) {
		srv := storetest.Start(t, storetest.Options{})
		srv.RequireReal(t)
		dir := t.TempDir()
		d := mustRunChatd(t, map[string]string{"CHAT_DATA_DIR": dir})
		user(t, d.URL, "alice") // the key exists once a token was signed
		pid := redisChild(t, filepath.Join(dir, "redis"))
		ports := tcpListeners(t, pid)
		t.Logf("chatd's redis-server (pid %d) listens on TCP ports %v", pid, ports)
		for _, port := range ports {
			// Open on TCP: then only with a password.
			c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
			if err != nil {
				t.Fatalf("redis-server listens on %d but does not answer there: %v", port, err)
			}
			defer c.Close()
			reply, err := respCommand(c, "GET", "chat:jwt-secret")
			t.Logf("GET chat:jwt-secret on 127.0.0.1:%d without a password: %.20q… %v", port, reply, err)
			if !strings.HasPrefix(reply, "-NOAUTH") {
				t.Errorf("another local user reads the signing key over TCP: %.20q…", reply)
			}
		}
		if len(ports) > 0 {
			return
		}
		sock := filepath.Join(dir, "redis", "redis.sock")
		fi, err := os.Stat(filepath.Dir(sock))
		if err != nil {
			t.Fatalf("redis-server listens on no TCP port and %s is missing: %v", sock, err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v; other users may enter it", filepath.Dir(sock), perm)
		}
		if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("the data directory has mode %v, want 0700", fi.Mode().Perm())
		}
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatalf("the unix socket: %v", err)
		}
		defer c.Close()
		if reply, err := respCommand(c, "PING"); reply != "+PONG" {
			t.Fatalf("PING on the socket: %q %v", reply, err)
		}
		// As another user, which root can play: the socket is out of reach.
		if os.Getuid() == 0 {
			cli, err := exec.LookPath("redis-cli")
			if err != nil {
				t.Logf("no redis-cli: not trying as another user")
				return
			}
			cmd := exec.Command(cli, "-s", sock, "GET", "chat:jwt-secret")
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			out, err := cmd.CombinedOutput()
			t.Logf("redis-cli -s %s GET chat:jwt-secret as nobody: %q %v", sock, strings.TrimSpace(string(out)), err)
			if err == nil && !strings.Contains(string(out), "denied") && !strings.Contains(string(out), "Could not connect") {
				t.Errorf("another user reached the socket: %q", out)
			}
		}
	})
	t.Run("in-process store", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir()) // no redis-server
		cfg, err := config.Load(nil, func(k string) string {
			return map[string]string{"CHAT_DATA_DIR": t.TempDir()}[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		rdb, _, cleanup, err := openRedis(context.Background(), cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer cleanup()
		o := rdb.(*redis.Client).Options()
		addr, network := o.Addr, o.Network
		if network == "" {
			network = "tcp"
		}
		c, err := net.DialTimeout(network, addr, time.Second)
		if err != nil {
			t.Logf("the in-process store cannot be dialled at %s: %v", addr, err)
			return
		}
		defer c.Close()
		reply, err := respCommand(c, "GET", "chat:jwt-secret")
		t.Logf("GET chat:jwt-secret on the in-process store (%s) without a password: %q %v", addr, reply, err)
		if !strings.HasPrefix(reply, "-NOAUTH") {
			t.Errorf("another local user reads the in-process store: %q", reply)
		}
		if err := rdb.Ping(context.Background()).Err(); err != nil {
			t.Errorf("chatd's own client: %v", err)
		}
	})
}

// publicSecret is the default secret compose.yaml used to fall back to;
// it is public, so anyone could sign tokens with it.
const publicSecret = "change-me-to-a-long-random-secret-of-32-bytes-or-more"

// TestAbuseForwardedForFromOwnProxyOnly, finding 7: a client cannot pick
// its own address with X-Forwarded-For to escape per-address limits. The
// deploy nginx.conf replaces the header with the address it saw, compose
// trusts only that nginx, and chatd refuses the secret compose used to
// fall back to.
func TestAbuseForwardedForFromOwnProxyOnly(t *testing.T) {
	t.Run("compose", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join("..", "..", "compose.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		compose := string(b)
		if strings.Contains(compose, publicSecret) || regexp.MustCompile(`CHAT_JWT_SECRET:-[^}]`).MatchString(compose) {
			t.Errorf("compose.yaml falls back to a public default secret")
		}
		trusted := regexp.MustCompile(`CHAT_TRUSTED_PROXIES:\s*"?([^"\s]+)`).FindStringSubmatch(compose)
		lb := regexp.MustCompile(`ipv4_address:\s*"?([0-9.]+)`).FindStringSubmatch(compose)
		if trusted == nil || lb == nil || trusted[1] != lb[1]+"/32" {
			t.Errorf("compose.yaml trusts X-Forwarded-For from %q; want exactly its nginx's address (%q)/32", trusted, lb)
		}
		err = Run(context.Background(), nil, func(k string) string {
			return map[string]string{"CHAT_JWT_SECRET": publicSecret, "REDIS_URL": "redis://127.0.0.1:1"}[k]
		}, io.Discard, io.Discard, nil)
		t.Logf("chatd with the old compose default secret: %v", err)
		if err == nil || !strings.Contains(err.Error(), "CHAT_JWT_SECRET") {
			t.Errorf("chatd started with the public example secret (%v); want it refused, naming CHAT_JWT_SECRET", err)
		}
	})
	t.Run("nginx", func(t *testing.T) {
		bin := requireTool(t, "nginx", "CHAT_REQUIRE_NGINX", "/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin")
		// Trusting all of 127.0.0.0/8 is as broad as compose's old "every
		// private range" was for a client on the LAN: the client itself is
		// inside the trusted range.
		d, _ := abuseChatd(t, map[string]string{"CHAT_TRUSTED_PROXIES": "127.0.0.0/8", "CHAT_REGISTER_ADDR_LIMIT": "2"})
		lb := mustStartNginx(t, bin, []string{strings.TrimPrefix(d.URL, "http://")})
		got := registerForging(t, lb.URL, "203.0.113.%d")
		t.Logf("4 registrations through nginx, each with a new forged X-Forwarded-For, limit 2: %v", got)
		if !slices.Equal(got, []int{201, 201, 429, 429}) {
			t.Errorf("registrations answered %v, want [201 201 429 429]: the forged addresses escaped the limit", got)
		}
	})
	t.Run("direct", func(t *testing.T) {
		d, _ := abuseChatd(t, map[string]string{"CHAT_TRUSTED_PROXIES": "127.0.0.1/32", "CHAT_REGISTER_ADDR_LIMIT": "2"})
		got := registerForging(t, d.URL, "127.0.0.1, 203.0.113.%d")
		t.Logf("4 registrations from an untrusted address with forged X-Forwarded-For, limit 2: %v", got)
		if !slices.Equal(got, []int{201, 201, 429, 429}) {
			t.Errorf("registrations answered %v, want [201 201 429 429]", got)
		}
	})
}

// registerForging registers 4 users from 127.0.0.2 through base, each
// request with X-Forwarded-For set by xff (a format of the request's
// number, 1 to 4), and returns the statuses.
func registerForging(t *testing.T, base, xff string) []int {
	t.Helper()
	c := abuseClient(t, "127.0.0.2", 1)
	var got []int
	for i := range 4 {
		a := abuseDo(c, "POST", base+"/api/register", "", creds(fmt.Sprintf("forger%d", i), "password-forger"),
			"X-Forwarded-For", fmt.Sprintf(xff, i+1))
		got = append(got, a.Status)
	}
	return got
}

// TestAbuseStrangerCannotLockOutOwner, finding 9: failed logins are
// counted per username and address (10 in 5 minutes), per username alone
// with a higher ceiling (CHAT_LOGIN_USER_LIMIT, lowered here to 25) and per
// address (CHAT_LOGIN_ADDR_LIMIT, lowered to 12); a stranger's guesses do
// not lock the owner out from elsewhere, and successful logins are not
// limited.
func TestAbuseStrangerCannotLockOutOwner(t *testing.T) {
	d, _ := abuseChatd(t, map[string]string{"CHAT_LOGIN_USER_LIMIT": "25", "CHAT_LOGIN_ADDR_LIMIT": "12"})
	base := d.URL + "/api/login"
	mustRegister(t, abuseClient(t, "127.0.0.1", 1), d.URL, "owner", "right-password-owner")
	mustRegister(t, abuseClient(t, "127.0.0.1", 1), d.URL, "carol", "right-password-carol")

	stranger := abuseClient(t, "127.0.0.2", 1)
	for i := range 10 {
		if a := abuseDo(stranger, "POST", base, "", creds("owner", "guess")); a.Status != http.StatusUnauthorized {
			t.Fatalf("the stranger's guess %d: %d %s", i+1, a.Status, a.Body)
		}
	}
	checkRetryAfter(t, "the stranger's 11th guess", abuseDo(stranger, "POST", base, "", creds("owner", "guess")), http.StatusTooManyRequests, "too_many_attempts")
	own := abuseDo(abuseClient(t, "127.0.0.3", 1), "POST", base, "", creds("owner", "right-password-owner"))
	t.Logf("after a stranger's 10 wrong passwords, the owner from another address: %d %s", own.Status, own.Code)
	if own.Status != http.StatusOK {
		t.Errorf("the owner from another address: %d %s, want 200", own.Status, own.Body)
	}

	// A guess spread over addresses (5 each, under the per-address
	// limits) stops at the username's ceiling: 10 + 15 = 25.
	for k := range 3 {
		c := abuseClient(t, fmt.Sprintf("127.0.0.%d", 10+k), 1)
		for range 5 {
			if a := abuseDo(c, "POST", base, "", creds("owner", "guess")); a.Status != http.StatusUnauthorized {
				t.Fatalf("distributed guess from 127.0.0.%d: %d %s", 10+k, a.Status, a.Body)
			}
		}
	}
	ceiling := abuseDo(abuseClient(t, "127.0.0.20", 1), "POST", base, "", creds("owner", "guess"))
	t.Logf("after 25 wrong passwords from 4 addresses, a 26th from a fifth: %d %s", ceiling.Status, ceiling.Code)
	checkRetryAfter(t, "a guess past the username's ceiling", ceiling, http.StatusTooManyRequests, "too_many_attempts")

	// Successful logins are not counted: 15 in a row, more than the
	// per-username-and-address limit of 10.
	c := abuseClient(t, "127.0.0.5", 1)
	for i := range 15 {
		if a := abuseDo(c, "POST", base, "", creds("carol", "right-password-carol")); a.Status != http.StatusOK {
			t.Fatalf("carol's successful login %d: %d %s", i+1, a.Status, a.Body)
		}
	}
	// Per address: 12 failures for 12 names, then even carol's right
	// password from that address waits.
	c = abuseClient(t, "127.0.0.6", 1)
	for i := range 12 {
		if a := abuseDo(c, "POST", base, "", creds(fmt.Sprintf("nobody%d", i), "guess")); a.Status != http.StatusUnauthorized {
			t.Fatalf("failure %d from one address: %d %s", i+1, a.Status, a.Body)
		}
	}
	checkRetryAfter(t, "a login from an address past its limit", abuseDo(c, "POST", base, "", creds("carol", "right-password-carol")), http.StatusTooManyRequests, "too_many_attempts")
}

// TestAbuseMassRegistration, finding 10: registrations per address have a
// limit a household never reaches (CHAT_REGISTER_ADDR_LIMIT, lowered here
// to 5), and argon2id work for registrations runs in a pool of its own, so
// a flood of them does not starve logins.
func TestAbuseMassRegistration(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		d, _ := abuseChatd(t, map[string]string{"CHAT_REGISTER_ADDR_LIMIT": "5"})
		c := abuseClient(t, "127.0.0.2", 1)
		for i := range 5 {
			mustRegister(t, c, d.URL, fmt.Sprintf("script%d", i), "password-script")
		}
		checkRetryAfter(t, "the 6th registration", abuseDo(c, "POST", d.URL+"/api/register", "", creds("script5", "password-script")), http.StatusTooManyRequests, "rate_limited")
		mustRegister(t, abuseClient(t, "127.0.0.3", 1), d.URL, "neighbour", "password-neighbour")
	})
	t.Run("logins stay quick", func(t *testing.T) {
		d, _ := abuseChatd(t, map[string]string{"CHAT_REGISTER_ADDR_LIMIT": "0", "CHAT_MAX_CONNS_PER_ADDR": "0", "CHAT_HASH_WAIT": "2s"})
		login := abuseClient(t, "127.0.0.3", 1)
		mustRegister(t, login, d.URL, "owner", "right-password-owner")
		timeLogins := func() []time.Duration {
			var ds []time.Duration
			for range 7 {
				a := abuseDo(login, "POST", d.URL+"/api/login", "", creds("owner", "right-password-owner"))
				if a.Status != http.StatusOK {
					t.Errorf("login: %d %s", a.Status, a.Body)
				}
				ds = append(ds, a.Took)
			}
			return ds
		}
		idle := median(timeLogins())
		// 32 registrations at a time, for as long as the logins take.
		c := abuseClient(t, "127.0.0.2", 64)
		stop := make(chan struct{})
		var mu sync.Mutex
		var regs []abuseAnswer
		var wg sync.WaitGroup
		for w := range 32 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					a := abuseDo(c, "POST", d.URL+"/api/register", "", creds(fmt.Sprintf("bulk%d-%d", w, i), "password-bulk"))
					mu.Lock()
					regs = append(regs, a)
					mu.Unlock()
				}
			})
		}
		time.Sleep(300 * time.Millisecond)
		busy := median(timeLogins())
		close(stop)
		wg.Wait()
		got := tally(regs)
		t.Logf("login median %v idle, %v while 32 registrations ran at a time (%d registrations: %v, slowest %v)",
			idle.Round(time.Millisecond), busy.Round(time.Millisecond), len(regs), got, slowest(regs).Round(time.Millisecond))
		if limit := max(400*time.Millisecond, 6*idle); busy > limit {
			t.Errorf("logins took %v (median) while registrations ran, %v idle; want at most %v", busy, idle, limit)
		}
		if s := slowest(regs); s > 5*time.Second {
			t.Errorf("a registration waited %v; the wait for a hash slot must be bounded (CHAT_HASH_WAIT 2s)", s)
		}
		for _, a := range regs {
			if a.Status == http.StatusServiceUnavailable {
				checkRetryAfter(t, "a registration turned away", a, http.StatusServiceUnavailable, "unavailable")
				break
			}
		}
	})
}

// TestAbuseInvisibleText, finding 11: text that is empty once invisible
// characters are removed is refused, and so are the bidi controls that
// reorder what others see (U+202A–U+202E, U+2066–U+2069) and the line and
// paragraph separators U+2028 and U+2029, on a socket and over REST. Joiners
// inside visible text (emoji sequences) stay.
func TestAbuseInvisibleText(t *testing.T) {
	d, _ := abuseChatd(t, nil)
	tok := user(t, d.URL, "alice")
	s := connect(t, d.URL, tok)
	c := abuseClient(t, "127.0.0.1", 1)
	refused := []string{"\u200b", "\u200b\u200d\u2060\ufeff", " \u3164 ", "\u2800", "\u00ad\u034f\ufe0f", "\u202eevil", "ab\u2066cd\u2069", "one\u2028two", "one\u2029two", "\U000e0041"}
	for _, text := range refused {
		s.send(map[string]any{"type": "send", "room": "general", "text": text, "ref": 1})
		var f msg
		for {
			_, data, err := s.c.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			_ = json.Unmarshal(data, &f)
			if f.Type == "error" || f.Type == "ack" {
				break
			}
		}
		a := abuseDo(c, "POST", d.URL+"/api/rooms/general/messages", tok, map[string]string{"text": text})
		if f.Type != "error" || f.Code != "invalid" || a.Status != http.StatusBadRequest {
			t.Errorf("text %+q: socket answered %s %s, REST %d; want invalid and 400", text, f.Type, f.Code, a.Status)
		}
	}
	for _, text := range []string{"hi \U0001F469\u200d\U0001F4bb", "\u05e9\u05dc\u05d5\u05dd \u200fok", "tab\there", "line\nbreak"} {
		if a := abuseDo(c, "POST", d.URL+"/api/rooms/general/messages", tok, map[string]string{"text": text}); a.Status != http.StatusCreated {
			t.Errorf("text %+q: %d %s, want 201", text, a.Status, a.Body)
		}
	}
}

// TestAbuseTokenOnlyInHeaderForREST, finding 13: ?token= works on /ws
// only (it ends up in proxy logs), REST takes the Authorization header
// alone; the signing key can come from CHAT_JWT_SECRET_FILE, so it shows
// neither in ps nor in the environment.
func TestAbuseTokenOnlyInHeaderForREST(t *testing.T) {
	file := filepath.Join(t.TempDir(), "jwt-secret")
	secret := "file-secret-file-secret-file-secret-0123456"
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := storetest.Start(t, storetest.Options{})
	d := mustRunChatd(t, map[string]string{"REDIS_URL": "redis://" + srv.Addr, "CHAT_JWT_SECRET_FILE": file})
	c := abuseClient(t, "127.0.0.1", 1)
	tok := signToken(t, secret, "alice", time.Now())
	if a := abuseDo(c, "GET", d.URL+"/api/me", tok, nil); a.Status != http.StatusOK {
		t.Fatalf("a token signed with the key of CHAT_JWT_SECRET_FILE: GET /api/me %d %s", a.Status, a.Body)
	}
	q := abuseDo(c, "GET", d.URL+"/api/me?token="+tok, "", nil)
	t.Logf("GET /api/me?token=…: %d", q.Status)
	if q.Status != http.StatusUnauthorized {
		t.Errorf("GET /api/me?token=…: %d, want 401", q.Status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(d.URL, "http")+"/ws?token="+tok, nil)
	if err != nil {
		t.Fatalf("/ws?token=…: %v", err)
	}
	ws.CloseNow()
	usage := config.Usage()
	if !regexp.MustCompile(`-jwt-secret\s.*ps`).MatchString(usage) || !strings.Contains(usage, "CHAT_JWT_SECRET_FILE") {
		t.Errorf("chatd -h does not warn that -jwt-secret shows in ps, or lacks CHAT_JWT_SECRET_FILE:\n%s", usage)
	}
}

// TestLogoutEverywhere: POST /api/logout {"all":true} ends every token of
// the user (issued until then), not other users' tokens; a login after it
// works.
func TestLogoutEverywhere(t *testing.T) {
	d, _ := abuseChatd(t, nil)
	c := abuseClient(t, "127.0.0.1", 2)
	phone := user(t, d.URL, "alice")
	laptop := signToken(t, abuseSecret, "alice", time.Now())
	bob := user(t, d.URL, "bob")
	if a := abuseDo(c, "POST", d.URL+"/api/logout", phone, map[string]bool{"all": true}); a.Status != http.StatusNoContent {
		t.Fatalf("logout all: %d %s", a.Status, a.Body)
	}
	for name, tok := range map[string]string{"the token used": phone, "another token": laptop} {
		if a := abuseDo(c, "GET", d.URL+"/api/me", tok, nil); a.Status != http.StatusUnauthorized {
			t.Errorf("%s after logout all: GET /api/me %d, want 401", name, a.Status)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(d.URL, "http")+"/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
		cancel()
		if err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s after logout all: upgrade %v, want 401", name, err)
		}
	}
	if a := abuseDo(c, "GET", d.URL+"/api/me", bob, nil); a.Status != http.StatusOK {
		t.Errorf("another user's token: %d, want 200", a.Status)
	}
	// Token times have whole seconds: a token of the second of the logout
	// counts as issued before it.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	fresh := user(t, d.URL, "alice")
	if a := abuseDo(c, "GET", d.URL+"/api/me", fresh, nil); a.Status != http.StatusOK {
		t.Errorf("a login after logout all: GET /api/me %d, want 200", a.Status)
	}
}

// TestStartupWithoutRedis, issue 18 point 11: with REDIS_URL unreachable
// chatd listens at once, /healthz answers 200 and /readyz 503 with the
// reason; once Redis comes, chatd serves. Every line chatd writes is its
// own (slog), none of go-redis's.
func TestStartupWithoutRedis(t *testing.T) {
	// The second half starts a redis-server where chatd was told to look.
	requireTool(t, "redis-server", "CHAT_REQUIRE_REDIS")
	redisPort := chatdtest.FreePort(t)
	bin := mustBuildChatd(t)
	started := time.Now()
	// Started once it listens: /healthz 200, while /readyz is 503.
	d := chatdtest.Start(t, bin, chatdtest.Options{Name: "startup", Ready: "/healthz", Env: map[string]string{
		"REDIS_URL": "redis://127.0.0.1:" + strconv.Itoa(redisPort), "CHAT_JWT_SECRET": abuseSecret,
		"CHAT_REDIS_TIMEOUT": "200ms", "CHAT_INSTANCE": "startup"}})
	addr := d.Addr
	c := abuseClient(t, "127.0.0.1", 2)
	health := abuseDo(c, "GET", "http://"+addr+"/healthz", "", nil)
	listening := time.Since(started)
	ready := abuseDo(c, "GET", "http://"+addr+"/readyz", "", nil)
	login := abuseDo(c, "POST", "http://"+addr+"/api/login", "", creds("alice", "password-alice"))
	t.Logf("Redis unreachable: /healthz %d after %v; /readyz %d %s; login %d %s in %v",
		health.Status, listening.Round(time.Millisecond), ready.Status, strings.TrimSpace(ready.Body), login.Status, login.Code, login.Took.Round(time.Millisecond))
	if health.Status != http.StatusOK {
		t.Errorf("/healthz without Redis: %d %v, want 200", health.Status, health.Err)
	}
	if ready.Status != http.StatusServiceUnavailable || !strings.Contains(strings.ToLower(ready.Body), "redis") {
		t.Errorf("/readyz without Redis: %d %s, want 503 naming Redis", ready.Status, ready.Body)
	}
	if login.Status != http.StatusServiceUnavailable || login.Code != "unavailable" || login.RetryAfter == "" {
		t.Errorf("login without Redis: %d %s (Retry-After %q), want 503 unavailable with Retry-After", login.Status, login.Body, login.RetryAfter)
	}
	time.Sleep(time.Second) // a few retries' worth of log
	ready = abuseDo(c, "GET", "http://"+addr+"/readyz", "", nil)
	t.Logf("a second later: /readyz %d %s", ready.Status, strings.TrimSpace(ready.Body))
	if ready.Status != http.StatusServiceUnavailable || !strings.Contains(ready.Body, "does not answer") {
		t.Errorf("/readyz a second without Redis: %d %s, want 503 saying that Redis does not answer", ready.Status, ready.Body)
	}

	p, err := redisproc.Start(redisproc.Options{Dir: t.TempDir(), Port: redisPort})
	if err != nil {
		t.Fatalf("redis-server on port %d: %v", redisPort, err)
	}
	defer p.Kill()
	storetest.CheckFor(t, 15*time.Second, func() error {
		if a := abuseDo(c, "GET", "http://"+addr+"/readyz", "", nil); a.Status != http.StatusOK {
			return fmt.Errorf("/readyz after Redis came: %d %s", a.Status, a.Body)
		}
		return nil
	})
	user(t, "http://"+addr, "alice")
	d.Stop(t) // fails the test unless chatd drains and exits 0
	slogLine := regexp.MustCompile(`^time=\S+ level=(DEBUG|INFO|WARN|ERROR) `)
	out := d.Log.String()
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if !slogLine.MatchString(line) {
			t.Errorf("a line not in chatd's log format: %q", line)
		}
	}
	if !strings.Contains(strings.ToLower(out), "redis") {
		t.Errorf("the log does not say that Redis does not answer:\n%s", out)
	}
}

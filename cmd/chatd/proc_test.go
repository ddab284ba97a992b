package main

// chatd, Redis and nginx as real processes, for the fault and
// load-balancer tests: the binary is built once per test binary, every
// process is killed in tb.Cleanup, and what a process wrote to stderr is
// shown when the test fails.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// chatdBinary is the chatd binary shared by every test of this test binary.
var chatdBinary struct {
	once sync.Once
	path string
	err  error
}

// mustBuildChatd builds cmd/chatd with go build -o once per test binary and
// returns the binary's path. It is built with -race when the test binary
// is: the packages are then already compiled, and the fault tests check
// the server for data races too.
func mustBuildChatd(tb testing.TB) string {
	tb.Helper()
	chatdBinary.once.Do(func() {
		dir, err := binDir()
		if err != nil {
			chatdBinary.err = err
			return
		}
		path := filepath.Join(dir, "chatd")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		args := []string{"build", "-o", path}
		if raceEnabled() {
			args = append(args, "-race")
		}
		cmd := exec.CommandContext(ctx, goTool(), append(args, ".")...)
		cmd.WaitDelay = 5 * time.Second
		if out, err := cmd.CombinedOutput(); err != nil {
			chatdBinary.err = fmt.Errorf("go build ./cmd/chatd: %v\n%s", err, out)
			return
		}
		chatdBinary.path = path
	})
	if chatdBinary.err != nil {
		tb.Fatal(chatdBinary.err)
	}
	return chatdBinary.path
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// binDir is a new directory for the binary. Under go test the test binary
// lives in go's temporary work directory, which go test removes when the
// run ends, so the chatd binary goes next to it; a test binary run by hand
// leaves one directory under os.TempDir.
func binDir() (string, error) {
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		if strings.Contains(dir, "go-build") && strings.HasPrefix(dir, os.TempDir()) {
			return os.MkdirTemp(dir, "chatd-bin-")
		}
	}
	return os.MkdirTemp("", "chatd-test-bin-")
}

func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// tail returns at most the last n bytes written.
func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// chatdProc is chatd running as a child process on a fixed address, so
// that it comes back on the same port after Stop or Kill.
type chatdProc struct {
	tb   testing.TB
	Name string
	Addr string // 127.0.0.1:port
	URL  string // http://Addr
	env  map[string]string
	log  *lockedBuffer // stderr of every run, marked per start

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
	err  error         // cmd.Wait's result, valid once done is closed
	runs int
}

// mustStartChatdProc starts chatd as a process with env (plus CHAT_ADDR on a
// free port and CHAT_INSTANCE=name) and waits until /readyz answers 200.
// tb.Cleanup kills it and, if the test failed, logs its stderr.
func mustStartChatdProc(tb testing.TB, name string, env map[string]string) *chatdProc {
	tb.Helper()
	bin := mustBuildChatd(tb)
	e := map[string]string{}
	for k, v := range env {
		e[k] = v
	}
	if e["CHAT_ADDR"] == "" {
		e["CHAT_ADDR"] = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(tb)))
	}
	if e["CHAT_INSTANCE"] == "" {
		e["CHAT_INSTANCE"] = name
	}
	p := &chatdProc{tb: tb, Name: name, Addr: e["CHAT_ADDR"], URL: "http://" + e["CHAT_ADDR"], env: e, log: &lockedBuffer{}}
	tb.Cleanup(func() {
		p.Kill()
		if strings.Contains(p.log.tail(1<<30), "WARNING: DATA RACE") {
			tb.Errorf("chatd %s reported a data race", p.Name)
		}
		if tb.Failed() {
			tb.Logf("stderr of chatd %s:\n%s", p.Name, p.log.tail(48<<10))
		}
	})
	p.startBin(bin)
	return p
}

// Start starts a stopped or killed chatd again on its address.
func (p *chatdProc) Start() {
	p.tb.Helper()
	p.startBin(mustBuildChatd(p.tb))
}

func (p *chatdProc) startBin(bin string) {
	p.tb.Helper()
	if p.Running() {
		p.tb.Fatalf("chatd %s: started twice", p.Name)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	keys := make([]string, 0, len(p.env))
	for k := range p.env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, k+"="+p.env[k])
	}
	var err error
	// The port was free when picked; a restart may find it briefly busy.
	for try := 0; try < 20; try++ {
		p.runs++
		fmt.Fprintf(p.log, "---- start %d of chatd %s at %s\n", p.runs, p.Name, time.Now().Format("15:04:05.000"))
		cmd := exec.Command(bin)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = p.log, p.log
		cmd.WaitDelay = 5 * time.Second
		// Own process group; dies with the test binary's thread if that
		// goes first.
		cmd.SysProcAttr = childAttr(syscall.SIGKILL)
		if err = cmd.Start(); err != nil {
			p.tb.Fatalf("chatd %s: %v", p.Name, err)
		}
		done := make(chan struct{})
		p.cmd, p.done = cmd, done
		go func() { p.err = cmd.Wait(); close(done) }()
		if err = p.waitReady(60 * time.Second); err == nil {
			return
		}
		if p.Running() {
			break // it runs but is not ready: no point in retrying
		}
		if !strings.Contains(p.log.tail(2000), "address already in use") {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	p.Kill()
	p.tb.Fatalf("chatd %s did not become ready: %v\n%s", p.Name, err, p.log.tail(16<<10))
}

// waitReady polls /readyz until it answers 200.
func (p *chatdProc) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := errors.New("no answer")
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v", p.err)
		default:
		}
		st, err := httpStatus(p.URL + "/readyz")
		if err == nil && st == http.StatusOK {
			return nil
		}
		if err != nil {
			last = err
		} else {
			last = fmt.Errorf("/readyz %d", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return last
}

// httpStatus GETs url on a connection of its own and returns the status.
func httpStatus(url string) (int, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

// Running reports whether the process has been started and not yet exited.
func (p *chatdProc) Running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits for chatd to drain and exit (bounded by
// CHAT_SHUTDOWN_GRACE plus a margin); it returns how long that took and
// fails the test if chatd had to be killed or exited with an error.
func (p *chatdProc) Stop() time.Duration {
	p.tb.Helper()
	if !p.Running() {
		return 0
	}
	grace := 10 * time.Second
	if g, err := time.ParseDuration(p.env["CHAT_SHUTDOWN_GRACE"]); err == nil {
		grace = g
	}
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace + 15*time.Second):
		p.Kill()
		p.tb.Errorf("chatd %s did not exit within %v of SIGTERM", p.Name, grace+15*time.Second)
	}
	took := time.Since(start)
	if p.err != nil {
		p.tb.Errorf("chatd %s exited after SIGTERM with %v", p.Name, p.err)
	}
	p.cmd = nil
	return took
}

// Kill ends chatd with SIGKILL, as kill -9 would, and waits for it.
func (p *chatdProc) Kill() {
	if p.cmd == nil {
		return
	}
	if p.Running() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		_ = p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.tb.Errorf("chatd %s: not reaped 15s after SIGKILL", p.Name)
	}
	p.cmd = nil
}

// requireTool finds a binary on PATH (or in dirs) for tests that need it:
// missing, it fails the test when requireEnv is set in the environment and
// skips it otherwise.
func requireTool(tb testing.TB, name, requireEnv string, dirs ...string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range dirs {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	if os.Getenv(requireEnv) != "" {
		tb.Fatalf("%s is set but %s is not installed", requireEnv, name)
	}
	tb.Skipf("SKIPPED: needs %s (set %s=1 to make this a failure)", name, requireEnv)
	return ""
}

// Package chatdtest runs this module's programs as real processes for the
// tests of cmd/chat, cmd/chatd and cmd/chatbench: it builds a binary once
// per test binary, starts chatd with an environment of the test's making on
// a free loopback port, waits until it answers, stops it with SIGTERM or
// kill -9, and shows what it wrote when the test fails.
//
// A Proc started with Start belongs to its test: tb.Cleanup kills it,
// fails the test if it reported a data race, and logs its output if the
// test failed. One started with Launch outlives any one test (a server that
// a package's tests share); the caller ends it with Terminate.
package chatdtest

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

// Import paths of the programs, for Build.
const (
	Chatd     = "github.com/redstream/chat/cmd/chatd"
	Chat      = "github.com/redstream/chat/cmd/chat"
	Chatbench = "github.com/redstream/chat/cmd/chatbench"
)

// BuildOptions of Build.
type BuildOptions struct {
	// Race builds with -race when this test binary was built with it: the
	// packages are compiled with it already, and a Proc of the binary that
	// reports a data race fails its test.
	Race bool
}

type buildKey struct {
	pkg  string
	race bool
}

type build struct {
	once sync.Once
	path string
	err  error
}

var builds struct {
	mu   sync.Mutex
	dir  string
	byID map[buildKey]*build
}

// Build builds the main package pkg (an import path, such as Chatd) with
// go build once per test binary and options, and returns the binary's
// path. A failed build fails every test that asks for it.
func Build(tb testing.TB, pkg string, opts BuildOptions) string {
	tb.Helper()
	key := buildKey{pkg, opts.Race && RaceEnabled()}
	builds.mu.Lock()
	if builds.byID == nil {
		builds.byID = map[buildKey]*build{}
	}
	b := builds.byID[key]
	if b == nil {
		b = &build{}
		builds.byID[key] = b
	}
	builds.mu.Unlock()
	b.once.Do(func() { b.path, b.err = goBuild(key) })
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.path
}

func goBuild(key buildKey) (string, error) {
	dir, err := binaryDir()
	if err != nil {
		return "", err
	}
	name := filepath.Base(key.pkg)
	args := []string{"build", "-o"}
	if key.race {
		name += "-race"
		args = append(args, filepath.Join(dir, name), "-race")
	} else {
		args = append(args, filepath.Join(dir, name))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), append(args, key.pkg)...)
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", key.pkg, err, out)
	}
	return filepath.Join(dir, name), nil
}

// binaryDir is the directory of every binary Build makes, made on first
// use. Under go test the test binary lives in go's temporary work
// directory, which go test removes when the run ends, so the binaries go
// next to it; a test binary run by hand makes one under os.TempDir, which
// RemoveBinaries removes.
func binaryDir() (string, error) {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		return builds.dir, nil
	}
	parent := ""
	if exe, err := os.Executable(); err == nil {
		if d := filepath.Dir(exe); strings.Contains(d, "go-build") && strings.HasPrefix(d, os.TempDir()) {
			parent = d
		}
	}
	dir, err := os.MkdirTemp(parent, "chatdtest-bin-")
	if err != nil {
		return "", err
	}
	builds.dir = dir
	return dir, nil
}

// RemoveBinaries removes what Build made; TestMain calls it after m.Run.
func RemoveBinaries() {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
		builds.dir, builds.byID = "", nil
	}
}

// RaceEnabled reports whether this test binary was built with -race.
func RaceEnabled() bool {
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

// FreePort returns a port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeAddr returns 127.0.0.1:port with a port that was free a moment ago.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(tb)))
}

// Status GETs url on a connection of its own (5 s at most) and returns
// the status code.
func Status(url string) (int, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

// Log collects a process's output; it is safe for concurrent use.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything written.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Tail returns at most the last n bytes written, marked "…" if cut.
func (l *Log) Tail(n int) string {
	s := l.String()
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

// raceReport is what the race detector writes on finding a data race.
const raceReport = "WARNING: DATA RACE"

// Options of Start and Launch.
type Options struct {
	// Name names the process in messages and its log; default "chatd".
	Name string
	// Env is the process's environment besides PATH, HOME and TMPDIR,
	// which come from the test's (and nothing else does). CHAT_ADDR
	// defaults to a free loopback port, kept across restarts.
	Env map[string]string
	// Ready is the path that must answer 200 before the process counts as
	// started; default "/readyz" (it listens and its Redis answers).
	// "/healthz" waits only until it listens.
	Ready string
	// ReadyTimeout bounds that wait; default 60 s.
	ReadyTimeout time.Duration
}

// Proc is a program of ours (chatd) running as a child process on a fixed
// address, so that it comes back on the same port after Stop or Kill.
// It runs in a process group of its own, killed whole by Kill.
type Proc struct {
	Name string
	Addr string // host:port, CHAT_ADDR
	URL  string // http://Addr
	Log  *Log   // stdout and stderr of every run; each restart begins with a "---- start N" line

	bin   string
	env   []string
	ready string
	wait  time.Duration
	grace time.Duration // CHAT_SHUTDOWN_GRACE, for Stop

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
	err  error         // cmd.Wait's result, valid once done is closed
	runs int
}

func newProc(bin string, opts Options) (*Proc, error) {
	e := map[string]string{}
	for k, v := range opts.Env {
		e[k] = v
	}
	if e["CHAT_ADDR"] == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		e["CHAT_ADDR"] = l.Addr().String()
		l.Close()
	}
	p := &Proc{Name: opts.Name, Addr: e["CHAT_ADDR"], URL: "http://" + e["CHAT_ADDR"], Log: &Log{},
		bin: bin, ready: opts.Ready, wait: opts.ReadyTimeout, grace: 10 * time.Second}
	if p.Name == "" {
		p.Name = "chatd"
	}
	if p.ready == "" {
		p.ready = "/readyz"
	}
	if p.wait <= 0 {
		p.wait = 60 * time.Second
	}
	if g, err := time.ParseDuration(e["CHAT_SHUTDOWN_GRACE"]); err == nil {
		p.grace = g
	}
	p.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir()}
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p.env = append(p.env, k+"="+e[k])
	}
	return p, nil
}

// Start starts bin with opts and waits until it is ready, failing tb if it
// is not. tb.Cleanup kills it, fails tb if it reported a data race, and
// logs the end of its output if tb failed.
func Start(tb testing.TB, bin string, opts Options) *Proc {
	tb.Helper()
	p, err := newProc(bin, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := p.kill(); err != nil {
			tb.Error(err)
		}
		if strings.Contains(p.Log.String(), raceReport) {
			tb.Errorf("%s reported a data race:\n%s", p.Name, p.Log.Tail(48<<10))
		} else if tb.Failed() {
			tb.Logf("output of %s:\n%s", p.Name, p.Log.Tail(48<<10))
		}
	})
	if err := p.start(); err != nil {
		tb.Fatal(err)
	}
	return p
}

// Launch is Start for a process that outlives the test that starts it:
// nothing stops it but the caller's Terminate or Kill. On an error the
// process has been killed.
func Launch(bin string, opts Options) (*Proc, error) {
	p, err := newProc(bin, opts)
	if err != nil {
		return nil, err
	}
	if err := p.start(); err != nil {
		return nil, err
	}
	return p, nil
}

// Start starts a stopped or killed process again on its address.
func (p *Proc) Start(tb testing.TB) {
	tb.Helper()
	if err := p.start(); err != nil {
		tb.Fatal(err)
	}
}

func (p *Proc) start() error {
	if p.Running() {
		return fmt.Errorf("%s: started twice", p.Name)
	}
	var err error
	// The port was free when picked; a restart may find it briefly busy.
	for try := 0; try < 20; try++ {
		p.runs++
		if p.runs > 1 {
			fmt.Fprintf(p.Log, "---- start %d of %s at %s\n", p.runs, p.Name, time.Now().Format("15:04:05.000"))
		}
		mark := len(p.Log.String())
		cmd := exec.Command(p.bin)
		cmd.Env = p.env
		cmd.Stdout, cmd.Stderr = p.Log, p.Log
		cmd.WaitDelay = 5 * time.Second
		cmd.SysProcAttr = childAttr(syscall.SIGKILL)
		if err = cmd.Start(); err != nil {
			return fmt.Errorf("%s: %v", p.Name, err)
		}
		done := make(chan struct{})
		p.cmd, p.done = cmd, done
		go func() { p.err = cmd.Wait(); close(done) }()
		if err = p.waitReady(); err == nil {
			return nil
		}
		if p.Running() {
			break // it runs but is not ready: no point in retrying
		}
		if !strings.Contains(p.Log.String()[mark:], "address already in use") {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	killErr := p.kill()
	return errors.Join(fmt.Errorf("%s did not answer 200 at %s: %v\n%s", p.Name, p.ready, err, p.Log.Tail(16<<10)), killErr)
}

// waitReady polls the ready path until it answers 200.
func (p *Proc) waitReady() error {
	deadline := time.Now().Add(p.wait)
	last := errors.New("no answer")
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v", p.err)
		default:
		}
		st, err := Status(p.URL + p.ready)
		if err == nil && st == http.StatusOK {
			return nil
		}
		if err != nil {
			last = err
		} else {
			last = fmt.Errorf("%s answered %d", p.ready, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("within %v: %w", p.wait, last)
}

// Running reports whether the process has been started and not yet exited.
func (p *Proc) Running() bool {
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

// PID is the process's id, 0 when it is not started.
func (p *Proc) PID() int {
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Stop is Terminate, failing tb on its error.
func (p *Proc) Stop(tb testing.TB) time.Duration {
	tb.Helper()
	took, err := p.Terminate()
	if err != nil {
		tb.Error(err)
	}
	return took
}

// Terminate sends SIGTERM and waits for the process to drain and exit,
// bounded by its CHAT_SHUTDOWN_GRACE (10 s if unset) plus 15 s, after
// which it is killed. It returns how long that took, and an error if the
// process had to be killed or exited with an error. A process already
// ended is fine.
func (p *Proc) Terminate() (time.Duration, error) {
	if !p.Running() {
		p.cmd = nil
		return 0, nil
	}
	start := time.Now()
	var err error
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			err = fmt.Errorf("%s exited after SIGTERM with %v", p.Name, p.err)
		}
	case <-time.After(p.grace + 15*time.Second):
		err = errors.Join(fmt.Errorf("%s did not exit within %v of SIGTERM", p.Name, p.grace+15*time.Second), p.kill())
	}
	took := time.Since(start)
	p.cmd = nil
	return took, err
}

// Kill ends the process and its group with SIGKILL, as kill -9 would, and
// waits for it; it fails tb if the process is not reaped.
func (p *Proc) Kill(tb testing.TB) {
	tb.Helper()
	if err := p.kill(); err != nil {
		tb.Error(err)
	}
}

func (p *Proc) kill() error {
	if p.cmd == nil {
		return nil
	}
	if p.Running() {
		killGroup(p.cmd.Process.Pid)
		_ = p.cmd.Process.Kill()
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		return fmt.Errorf("%s: not reaped 15 s after SIGKILL", p.Name)
	}
	p.cmd = nil
	return nil
}

// Package redisproc runs a private redis-server child process: chatd's
// self-contained mode and the tests use it. It only starts, stops and
// restarts the process; clients connect to Addr themselves.
package redisproc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configures a server. The zero value of each field means its default.
type Options struct {
	// Bin is the redis-server binary. Empty means the one on PATH.
	Bin string
	// Dir is the working directory for its data files. Required.
	Dir string
	// Port to listen on, on 127.0.0.1. Zero means a free one.
	Port int
	// AppendOnly turns on append-only persistence.
	AppendOnly bool
	// Fsync is appendfsync: "everysec" (default), "always" or "no".
	Fsync string
	// Output receives the server's log. Nil discards it.
	Output io.Writer
	// Args are extra redis-server arguments, given last so that they win
	// (the cluster test helper passes --cluster-enabled and its bus port).
	Args []string
}

// Server is a running redis-server. Its methods are not safe for
// concurrent use.
type Server struct {
	opts Options
	Addr string // host:port
	cmd  *exec.Cmd
	done chan struct{}
}

// Available returns the redis-server binary on PATH, if there is one.
func Available() (string, bool) {
	p, err := exec.LookPath("redis-server")
	return p, err == nil
}

// Start runs redis-server and waits until it answers PING.
func Start(opts Options) (*Server, error) {
	if opts.Bin == "" {
		bin, ok := Available()
		if !ok {
			return nil, errors.New("redisproc: no redis-server on PATH")
		}
		opts.Bin = bin
	}
	if opts.Dir == "" {
		return nil, errors.New("redisproc: Dir is required")
	}
	if opts.Fsync == "" {
		opts.Fsync = "everysec"
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("redisproc: %w", err)
	}
	s := &Server{opts: opts}
	var err error
	for range 5 { // a port picked free can be taken before redis binds it
		port := opts.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		if err = s.start(port); err == nil {
			s.opts.Port = port
			return s, nil
		}
		if opts.Port != 0 {
			break
		}
	}
	return nil, err
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("redisproc: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start(port int) error {
	aof := "no"
	if s.opts.AppendOnly {
		aof = "yes"
	}
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--dir", s.opts.Dir, "--save", "", "--appendonly", aof,
		"--appendfsync", s.opts.Fsync, "--protected-mode", "yes"}
	cmd := exec.Command(s.opts.Bin, append(args, s.opts.Args...)...)
	cmd.Stdout, cmd.Stderr = s.opts.Output, s.opts.Output
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redisproc: start: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("redisproc: redis-server on port %d exited at start", port)
		default:
		}
		if ping(s.Addr) == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = s.Kill()
	return fmt.Errorf("redisproc: redis-server on port %d did not answer", port)
}

// ping sends PING over a plain connection (RESP inline command).
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("redisproc: PING answered %q", line)
	}
	return nil
}

// Stop ends the server gracefully (SIGTERM: it flushes its append-only
// file) and waits up to 10 s, then kills it.
func (s *Server) Stop() error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(stopSignal)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
	return nil
}

// Kill ends the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
	return nil
}

// Restart stops the server and starts it again on the same port and data
// directory.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.StartAgain()
}

// StartAgain starts a stopped server on its port and data directory.
func (s *Server) StartAgain() error {
	var err error
	for range 50 { // the port may linger briefly after the old process
		if err = s.start(s.opts.Port); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// Signal sends sig to the server (SIGSTOP and SIGCONT pause and resume it).
func (s *Server) Signal(sig os.Signal) error {
	if s.cmd == nil {
		return errors.New("redisproc: not running")
	}
	return s.cmd.Process.Signal(sig)
}

// FastForwarder is the in-process store (miniredis), whose keys age only
// when told to.
type FastForwarder interface {
	FastForward(time.Duration)
}

// RunClock makes the in-process store's TTLs expire in real time, by
// advancing its clock every 100 ms, until the returned stop is called.
// Without it, throttles, lockouts and revocations there would never end.
func RunClock(m FastForwarder) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				m.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-finished }) }
}

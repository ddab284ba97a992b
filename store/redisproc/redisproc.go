// Package redisproc runs a private redis-server child process: chatd's
// self-contained mode and the tests use it. It only starts, stops and
// restarts the process; clients connect to Network and Addr themselves,
// with Password if there is one.
package redisproc

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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
	// Private makes the server reachable by this OS user alone, for a
	// Redis that holds secrets (chatd's signing key, password hashes). It
	// listens on no TCP port but on the unix socket redis.sock in Dir,
	// which is made 0700, so other local users cannot even reach the
	// socket. Where that path is too long for a socket address, it listens
	// on 127.0.0.1 with a random password instead, handed to redis-server
	// on its standard input so that ps does not show it. Port is ignored.
	Private bool
}

// Server is a running redis-server. Its methods are not safe for
// concurrent use.
type Server struct {
	opts     Options
	Network  string // "tcp" or "unix"
	Addr     string // host:port, or the socket's path
	Password string // empty unless the server asks for one
	cmd      *exec.Cmd
	done     chan struct{}
}

// maxSocketPath is the longest unix socket path used: sun_path holds 108
// bytes on Linux and 104 on the BSDs and macOS, terminator included.
const maxSocketPath = 100

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
	s := &Server{opts: opts, Network: "tcp"}
	if opts.Private {
		// MkdirAll leaves an existing directory's mode as it was.
		if err := os.Chmod(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("redisproc: %w", err)
		}
		dir, err := filepath.Abs(opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("redisproc: %w", err)
		}
		if sock := filepath.Join(dir, "redis.sock"); len(sock) <= maxSocketPath {
			s.Network, s.Addr = "unix", sock
			if err := s.start(0); err != nil {
				return nil, err
			}
			return s, nil
		}
		pw := make([]byte, 32)
		_, _ = rand.Read(pw)
		s.Password = hex.EncodeToString(pw)
	}
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
	// The settings that must not show in ps (the password) go on standard
	// input, which "redis-server -" reads as its configuration file.
	var conf strings.Builder
	if s.Network == "unix" {
		fmt.Fprintf(&conf, "port 0\nunixsocket %s\nunixsocketperm 700\n", quoteConf(s.Addr))
	} else {
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		fmt.Fprintf(&conf, "bind 127.0.0.1\nport %d\n", port)
	}
	if s.Password != "" {
		fmt.Fprintf(&conf, "requirepass %s\n", s.Password)
	}
	args := []string{"-", "--dir", s.opts.Dir, "--save", "", "--appendonly", aof,
		"--appendfsync", s.opts.Fsync, "--protected-mode", "yes"}
	cmd := exec.Command(s.opts.Bin, append(args, s.opts.Args...)...)
	cmd.Stdin = strings.NewReader(conf.String())
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
			return fmt.Errorf("redisproc: redis-server on %s exited at start", s.Addr)
		default:
		}
		if s.ping() == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = s.Kill()
	return fmt.Errorf("redisproc: redis-server on %s did not answer", s.Addr)
}

// quoteConf quotes a value of a redis.conf line.
func quoteConf(v string) string { return strconv.Quote(v) }

// ping sends PING, after AUTH if the server has a password, over a plain
// connection (RESP inline commands).
func (s *Server) ping() error {
	c, err := net.DialTimeout(s.Network, s.Addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	cmds := "PING\r\n"
	if s.Password != "" {
		cmds = "AUTH " + s.Password + "\r\n" + cmds
	}
	if _, err := io.WriteString(c, cmds); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	if s.Password != "" {
		if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
			return fmt.Errorf("redisproc: AUTH answered %q %v", line, err)
		}
	}
	line, err := r.ReadString('\n')
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

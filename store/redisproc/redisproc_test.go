package redisproc

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func requireRedis(t *testing.T) {
	t.Helper()
	if _, ok := Available(); !ok {
		if os.Getenv("CHAT_REQUIRE_REDIS") != "" {
			t.Fatal("CHAT_REQUIRE_REDIS is set but no redis-server is on PATH")
		}
		t.Skip("SKIPPED: needs redis-server on PATH")
	}
}

// send writes one inline command on a new connection and returns the
// first line of the reply.
func send(t *testing.T, network, addr, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(line, "*") { // an array: its first element
		_, _ = r.ReadString('\n')
		line, _ = r.ReadString('\n')
		_, _ = r.ReadString('\n')
		line, _ = r.ReadString('\n')
	}
	return strings.TrimSpace(line)
}

// TestPrivateListensOnASocketOnly: a private server listens on redis.sock
// in its 0700 directory, with mode 0700, and on no TCP port; it comes back
// on the same socket after a restart.
func TestPrivateListensOnASocketOnly(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	dir := filepath.Join(t.TempDir(), "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil { // an older, wider directory
		t.Fatal(err)
	}
	s, err := Start(Options{Dir: dir, Private: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Kill() })
	if s.Network != "unix" || s.Addr != filepath.Join(dir, "redis.sock") || s.Password != "" {
		t.Fatalf("Network %q Addr %q Password set %v, want the unix socket redis.sock in Dir", s.Network, s.Addr, s.Password != "")
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, s.Addr: 0o700} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
	if got := send(t, "unix", s.Addr, "CONFIG GET port"); got != "0" {
		t.Errorf("CONFIG GET port = %q, want 0 (no TCP listener)", got)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := send(t, "unix", s.Addr, "PING"); got != "+PONG" {
		t.Errorf("PING after a restart: %q", got)
	}
}

// TestPrivateFallsBackToAPassword: where the socket path would be too long
// for the system, a private server listens on loopback TCP with a random
// password that is not on its command line.
func TestPrivateFallsBackToAPassword(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", maxSocketPath))
	s, err := Start(Options{Dir: dir, Private: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Kill() })
	if s.Network != "tcp" || len(s.Password) != 64 {
		t.Fatalf("Network %q, password of %d characters; want tcp with a 64-character password", s.Network, len(s.Password))
	}
	if slices.ContainsFunc(s.cmd.Args, func(a string) bool { return strings.Contains(a, s.Password) }) {
		t.Errorf("the password is on redis-server's command line, which ps shows: %q", s.cmd.Args)
	}
	if got := send(t, "tcp", s.Addr, "GET anything"); !strings.HasPrefix(got, "-NOAUTH") {
		t.Errorf("GET without the password: %q, want -NOAUTH", got)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := s.ping(); err != nil {
		t.Errorf("PING with the password after a restart: %v", err)
	}
}

// TestDefaultIsTCP: without Private the server listens on loopback TCP
// with no password, as the tests want.
func TestDefaultIsTCP(t *testing.T) {
	t.Parallel()
	requireRedis(t)
	s, err := Start(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Kill() })
	if s.Network != "tcp" || s.Password != "" || !strings.HasPrefix(s.Addr, "127.0.0.1:") {
		t.Fatalf("Network %q Addr %q password set %v", s.Network, s.Addr, s.Password != "")
	}
	if got := send(t, "tcp", s.Addr, "PING"); got != "+PONG" {
		t.Errorf("PING: %q", got)
	}
}

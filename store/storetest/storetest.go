// Package storetest starts a Redis for tests: a private redis-server on a
// free loopback port when one is on PATH, else the in-process store
// (miniredis) so that `go test ./...` passes on a machine with only Go.
// Set CHAT_REQUIRE_REDIS=1 (CI does) to make a missing redis-server fail
// the run instead; tests that need a real server (restart, persistence)
// call RequireReal, which skips loudly without one.
//
// With CHAT_TEST_CLUSTER=1, Start starts a local Redis Cluster instead (3
// primaries, 3 replicas; see StartCluster), so that a package's tests run
// again in cluster mode: their clients come from UniversalClient. Tests
// that restart or pause the one server (Proc) call RequireSingle, which
// skips loudly in cluster mode.
package storetest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/redstream/chat/store/redisproc"
)

// Server is a Redis started for one test.
type Server struct {
	Addr    string
	Real    bool // a real redis-server, not the in-process store
	Proc    *redisproc.Server
	Cluster *Cluster // set in cluster mode (CHAT_TEST_CLUSTER); then Proc is nil
	mini    *miniredis.Miniredis
}

// ClusterMode reports whether Start starts clusters (CHAT_TEST_CLUSTER).
func ClusterMode() bool { return os.Getenv("CHAT_TEST_CLUSTER") != "" }

// Options of Start.
type Options struct {
	AppendOnly bool   // append-only persistence (real server only)
	Fsync      string // appendfsync; empty means everysec
}

// Start starts a Redis for tb, stopped by tb.Cleanup.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if ClusterMode() {
		c := StartCluster(tb, ClusterOptions{AppendOnly: opts.AppendOnly, Fsync: opts.Fsync, NodeTimeout: 3 * time.Second})
		return &Server{Addr: c.Addrs[0], Real: true, Cluster: c}
	}
	if _, ok := redisproc.Available(); !ok {
		if os.Getenv("CHAT_REQUIRE_REDIS") != "" {
			tb.Fatal("storetest: CHAT_REQUIRE_REDIS is set but no redis-server is on PATH")
		}
		m := miniredis.NewMiniRedis()
		if err := m.Start(); err != nil {
			tb.Fatalf("storetest: miniredis: %v", err)
		}
		stop := redisproc.RunClock(m)
		tb.Cleanup(func() { stop(); m.Close() })
		return &Server{Addr: m.Addr(), mini: m}
	}
	p, err := redisproc.Start(redisproc.Options{Dir: tb.TempDir(), AppendOnly: opts.AppendOnly, Fsync: opts.Fsync})
	if err != nil {
		tb.Fatalf("storetest: %v", err)
	}
	tb.Cleanup(func() { _ = p.Kill() })
	return &Server{Addr: p.Addr, Real: true, Proc: p}
}

// Redis starts a Redis for tb and returns a client of it.
func Redis(tb testing.TB) *redis.Client {
	tb.Helper()
	return Start(tb, Options{}).Client(tb)
}

// UniversalClient returns a new client of s, closed by tb.Cleanup: a
// *redis.ClusterClient in cluster mode, else a *redis.Client.
func (s *Server) UniversalClient(tb testing.TB) redis.UniversalClient {
	tb.Helper()
	if s.Cluster != nil {
		return s.Cluster.Client(tb)
	}
	return s.Client(tb)
}

// RequireSingle skips tb, loudly, in cluster mode: tb needs the one server
// (to restart or pause it); cluster mode has its own failover tests.
func (s *Server) RequireSingle(tb testing.TB) {
	tb.Helper()
	if s.Cluster != nil {
		tb.Skip("SKIPPED in cluster mode (CHAT_TEST_CLUSTER): needs the one redis-server (restart, pause); see the cluster failover tests")
	}
}

// Client returns a new client of s, closed by tb.Cleanup. In cluster mode
// it fails tb: use UniversalClient.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	if s.Cluster != nil {
		tb.Fatal("storetest: Client of a cluster; use UniversalClient")
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr, ContextTimeoutEnabled: true, DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	tb.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		tb.Fatalf("storetest: ping %s: %v", s.Addr, err)
	}
	return rdb
}

// RequireReal skips tb, loudly, unless s is a real redis-server.
func (s *Server) RequireReal(tb testing.TB) {
	tb.Helper()
	if !s.Real {
		tb.Skip("SKIPPED: needs a real redis-server on PATH (restart, persistence); the in-process store cannot do this")
	}
}

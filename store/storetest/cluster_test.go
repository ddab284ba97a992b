package storetest_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/store/storetest"
)

// Tests of the cluster helper.

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually retries f every 50 ms until it succeeds or within passes.
func eventually(t *testing.T, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// keysOn returns n keys whose slots the primary at addr serves, each in a
// different slot, made from format and a number.
func keysOn(t *testing.T, c *storetest.Cluster, addr, format string, n int) []string {
	t.Helper()
	var out []string
	seen := map[int]bool{}
	for i := 0; len(out) < n && i < 100000; i++ {
		k := fmt.Sprintf(format, i)
		if s := storetest.Slot(k); !seen[s] && c.PrimaryOf(t, k) == addr {
			seen[s] = true
			out = append(out, k)
		}
	}
	if len(out) < n {
		t.Fatalf("found %d keys on %s, want %d", len(out), addr, n)
	}
	return out
}

// setReplicated sets key on its primary and waits until its replica has
// it (WAIT 1 on the same connection).
func setReplicated(t *testing.T, rdb *redis.ClusterClient, key, val string) {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	m, err := rdb.MasterForKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var wait *redis.Cmd
	if _, err := m.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, val, 0)
		wait = p.Do(ctx, "wait", 1, 5000)
		return nil
	}); err != nil || wait.Val() != int64(1) {
		t.Fatalf("SET %s and WAIT 1: %v, %v replicas", key, err, wait.Val())
	}
}

func role(t *testing.T, c *storetest.Cluster, addr string) string {
	t.Helper()
	info, err := c.NodeClient(t, addr).Info(ctxT(t, 5*time.Second), "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "role:"); ok {
			return v
		}
	}
	t.Fatalf("%s: no role in INFO replication", addr)
	return ""
}

func TestStartCluster(t *testing.T) {
	start := time.Now()
	c := storetest.StartCluster(t, storetest.ClusterOptions{})
	t.Logf("StartCluster (3 primaries, 3 replicas) took %v", time.Since(start))

	primaries := c.Primaries(t)
	if len(primaries) != 3 || len(c.Addrs) != 6 {
		t.Fatalf("primaries %v of nodes %v, want 3 of 6", primaries, c.Addrs)
	}
	for _, a := range c.Addrs {
		want := "slave"
		if slices.Contains(primaries, a) {
			want = "master"
		}
		if got := role(t, c, a); got != want {
			t.Errorf("%s: role %s, want %s", a, got, want)
		}
	}

	rdb := c.Client(t)
	ctx := ctxT(t, 20*time.Second)
	for i := range 300 {
		if err := rdb.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range primaries {
		n, err := c.NodeClient(t, p).DBSize(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n < 50 {
			t.Errorf("primary %s holds %d of 300 keys", p, n)
		}
	}

	for _, k := range []string{"", "a", "general", "{a}b", "a{b}c{d}", "{}x", "x{}{y}", "{", "}{", "x{y",
		"chat:{general}:log", "chat:{dm:alice:bob}:seq", "{{a}}", "ü{é}"} {
		want, err := rdb.ClusterKeySlot(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := storetest.Slot(k); got != int(want) {
			t.Errorf("Slot(%q) = %d, CLUSTER KEYSLOT says %d", k, got, want)
		}
	}
}

func TestClusterNoReplicas(t *testing.T) {
	c := storetest.StartCluster(t, storetest.ClusterOptions{Primaries: 4, Replicas: -1})
	if p := c.Primaries(t); len(p) != 4 || len(c.Addrs) != 4 {
		t.Fatalf("primaries %v of nodes %v, want 4 of 4", p, c.Addrs)
	}
}

func TestClusterKillPrimaryFailover(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t, storetest.ClusterOptions{})
	rdb := c.Client(t)
	ctx := ctxT(t, 2*time.Minute)
	const key = "chat:{general}:log"
	setReplicated(t, rdb, key, "kept")

	old := c.KillPrimaryOf(t, key)
	start := time.Now()
	promoted := c.WaitFailover(t, key)
	t.Logf("failover of %s to %s took %v", old, promoted, time.Since(start))
	if promoted == old {
		t.Fatalf("slot still on the killed %s", old)
	}
	eventually(t, 20*time.Second, func() error {
		v, err := rdb.Get(ctx, key).Result()
		if err == nil && v != "kept" {
			t.Fatalf("after failover %s = %q, want kept", key, v)
		}
		return err
	})

	c.RestartNode(t, old)
	if r := role(t, c, old); r != "slave" {
		t.Errorf("restarted old primary %s has role %s, want slave of %s", old, r, promoted)
	}
}

func TestClusterStopRestartAppendOnly(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t, storetest.ClusterOptions{Replicas: -1, AppendOnly: true, Fsync: "always"})
	rdb := c.Client(t)
	ctx := ctxT(t, 2*time.Minute)
	const key = "chat:{support}:log"
	if err := rdb.Set(ctx, key, "durable", 0).Err(); err != nil {
		t.Fatal(err)
	}
	p := c.PrimaryOf(t, key)
	c.StopNode(t, p)
	c.RestartNode(t, p)
	if got := c.PrimaryOf(t, key); got != p {
		t.Fatalf("after restart %s is served by %s, want %s", key, got, p)
	}
	eventually(t, 20*time.Second, func() error {
		v, err := rdb.Get(ctx, key).Result()
		if err == nil && v != "durable" {
			t.Fatalf("after restart %s = %q, want durable", key, v)
		}
		return err
	})
}

func TestClusterAddPrimaryRebalance(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t, storetest.ClusterOptions{Replicas: -1})
	rdb := c.Client(t)
	ctx := ctxT(t, 3*time.Minute)
	const n = 2000
	for i := range n {
		if err := rdb.Set(ctx, fmt.Sprintf("room-%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	added := c.AddPrimary(t)
	t.Logf("AddPrimary took %v", time.Since(start))
	if slices.Contains(c.Primaries(t), added) {
		t.Fatalf("new primary %s serves slots before Rebalance", added)
	}
	start = time.Now()
	c.Rebalance(t)
	t.Logf("Rebalance of %d keys took %v", n, time.Since(start))

	primaries := c.Primaries(t)
	if len(primaries) != 4 || !slices.Contains(primaries, added) {
		t.Fatalf("primaries after rebalance %v, want 4 with %s", primaries, added)
	}
	keys, err := c.NodeClient(t, added).DBSize(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if keys < n/8 {
		t.Errorf("new primary holds %d of %d keys, want about a quarter", keys, n)
	}
	for i := range n {
		k := fmt.Sprintf("room-%d", i)
		v, err := rdb.Get(ctx, k).Int()
		if err != nil || v != i {
			t.Fatalf("after rebalance %s = %d, %v; want %d", k, v, err, i)
		}
	}
}

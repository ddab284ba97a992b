package storetest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/store/storetest"
)

// The first half of this file tests the cluster helper; the second half
// (TestFact…) pins down the Redis 7.0 and go-redis behaviour that cluster
// mode relies on, as docs/cluster-facts.md describes. A fact test that
// fails means that behaviour changed: re-read the fact before mending the
// test.

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

// --- Facts ---------------------------------------------------------------

// errorLog collects errors in order, runs of one message counted once.
type errorLog struct {
	msgs []string
	n    []int
}

func (l *errorLog) add(err error) {
	if err == nil {
		return
	}
	if k := len(l.msgs); k > 0 && l.msgs[k-1] == err.Error() {
		l.n[k-1]++
		return
	}
	l.msgs, l.n = append(l.msgs, err.Error()), append(l.n, 1)
}

func (l *errorLog) String() string {
	var b strings.Builder
	for i, m := range l.msgs {
		fmt.Fprintf(&b, "[%d× %q] ", l.n[i], m)
	}
	return strings.TrimSpace(b.String())
}

// receive returns what ps yields next within d: a *redis.Subscription, a
// *redis.Message or an error. ReceiveTimeout, not a context deadline: a
// context that expires makes go-redis drop the connection and subscribe
// again.
func receive(t *testing.T, ps *redis.PubSub, d time.Duration) (any, error) {
	t.Helper()
	return ps.ReceiveTimeout(context.Background(), d)
}

func wantSub(t *testing.T, ps *redis.PubSub, kind, channel string, count int) {
	t.Helper()
	m, err := receive(t, ps, 5*time.Second)
	if err != nil {
		t.Fatalf("want %s %s, got error %v", kind, channel, err)
	}
	s, ok := m.(*redis.Subscription)
	if !ok || s.Kind != kind || s.Channel != channel || s.Count != count {
		t.Fatalf("want %s %s count %d, got %#v", kind, channel, count, m)
	}
}

func wantMsg(t *testing.T, ps *redis.PubSub, channel, payload string) {
	t.Helper()
	m, err := receive(t, ps, 5*time.Second)
	if err != nil {
		t.Fatalf("want message on %s, got error %v", channel, err)
	}
	msg, ok := m.(*redis.Message)
	if !ok || msg.Channel != channel || msg.Payload != payload {
		t.Fatalf("want message %q on %s, got %#v", payload, channel, m)
	}
}

func wantErr(t *testing.T, ps *redis.PubSub, prefix string) {
	t.Helper()
	m, err := receive(t, ps, 5*time.Second)
	if err == nil || !strings.HasPrefix(err.Error(), prefix) {
		t.Fatalf("want error %s…, got %#v, %v", prefix, m, err)
	}
	t.Logf("error, as expected: %v", err)
}

func wantSilence(t *testing.T, ps *redis.PubSub, d time.Duration) {
	t.Helper()
	m, err := receive(t, ps, d)
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("want nothing for %v, got %#v, %v", d, m, err)
	}
}

func TestFactSSubscribeCrossSlot(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t, storetest.ClusterOptions{Replicas: -1})
	rdb := c.Client(t)
	ctx := ctxT(t, time.Minute)
	p := c.Primaries(t)[0]
	on := keysOn(t, c, p, "notice:%d", 2)
	a, b := on[0], on[1]
	other := keysOn(t, c, c.Primaries(t)[1], "notice:%d", 1)[0]
	node := c.NodeClient(t, p)

	t.Run("one command, two slots, cluster", func(t *testing.T) {
		ps := node.SSubscribe(ctx, a, b)
		defer ps.Close()
		wantErr(t, ps, "CROSSSLOT")
		ps2 := rdb.SSubscribe(ctx, a, b)
		defer ps2.Close()
		wantErr(t, ps2, "CROSSSLOT")
	})

	t.Run("one command per slot on one connection", func(t *testing.T) {
		ps := node.SSubscribe(ctx, a)
		defer ps.Close()
		wantSub(t, ps, "ssubscribe", a, 1)
		if err := ps.SSubscribe(ctx, b); err != nil {
			t.Fatal(err)
		}
		wantSub(t, ps, "ssubscribe", b, 2)
		for _, ch := range []string{a, b} {
			if err := rdb.SPublish(ctx, ch, "hi "+ch).Err(); err != nil {
				t.Fatal(err)
			}
			wantMsg(t, ps, ch, "hi "+ch)
		}
	})

	t.Run("a context deadline on Receive resubscribes", func(t *testing.T) {
		ps := rdb.SSubscribe(ctx, a)
		defer ps.Close()
		wantSub(t, ps, "ssubscribe", a, 1)
		if err := ps.SSubscribe(ctx, b); err != nil {
			t.Fatal(err)
		}
		wantSub(t, ps, "ssubscribe", b, 2)
		// With ContextTimeoutEnabled the context's deadline is the read's,
		// and go-redis counts a read timeout under Receive as a broken
		// connection: it dials again and re-sends one SSUBSCRIBE of both
		// channels. (ReceiveTimeout's own timeout does not count.)
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		m, err := ps.Receive(short)
		cancel()
		var ne interface{ Timeout() bool }
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Receive with an expiring context: %#v, %v; want a timeout", m, err)
		}
		wantErr(t, ps, "CROSSSLOT")
	})

	t.Run("a channel of another node", func(t *testing.T) {
		ps := rdb.SSubscribe(ctx, a)
		defer ps.Close()
		wantSub(t, ps, "ssubscribe", a, 1)
		if err := ps.SSubscribe(ctx, other); err != nil {
			t.Fatal(err)
		}
		wantErr(t, ps, "MOVED")
	})
}

func TestFactSSubscribeStandalone(t *testing.T) {
	t.Parallel()
	s := storetest.Start(t, storetest.Options{})
	s.RequireReal(t)
	rdb := s.Client(t)
	ctx := ctxT(t, time.Minute)
	a, b := "notice:0", "notice:1"
	if storetest.Slot(a) == storetest.Slot(b) {
		t.Fatal("channels share a slot")
	}
	ps := rdb.SSubscribe(ctx, a, b)
	defer ps.Close()
	m1, _ := receive(t, ps, 5*time.Second)
	m2, _ := receive(t, ps, 5*time.Second)
	got := []string{fmt.Sprint(m1), fmt.Sprint(m2)}
	slices.Sort(got)
	if want := []string{"ssubscribe: " + a, "ssubscribe: " + b}; !slices.Equal(got, want) {
		t.Fatalf("SSUBSCRIBE of two slots on a standalone server: got %q, want %q", got, want)
	}
	for _, ch := range []string{a, b} {
		if err := rdb.SPublish(ctx, ch, "hi").Err(); err != nil {
			t.Fatal(err)
		}
		wantMsg(t, ps, ch, "hi")
	}
}

func otherPrimary(t *testing.T, c *storetest.Cluster, not string) string {
	t.Helper()
	for _, p := range c.Primaries(t) {
		if p != not {
			return p
		}
	}
	t.Fatalf("no primary but %s", not)
	return ""
}

func TestFactSlotMigratedAway(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t, storetest.ClusterOptions{Replicas: -1})
	rdb := c.Client(t)
	ctx := ctxT(t, time.Minute)
	const ch = "chat:{general}:notice"
	src := c.PrimaryOf(t, ch)
	dst := otherPrimary(t, c, src)

	ps := rdb.SSubscribe(ctx, ch)
	defer ps.Close()
	wantSub(t, ps, "ssubscribe", ch, 1)
	// The same through go-redis's Go channels: Channel drops subscription
	// news, ChannelWithSubscriptions passes it on.
	quiet := rdb.SSubscribe(ctx, ch)
	defer quiet.Close()
	wantSub(t, quiet, "ssubscribe", ch, 1)
	quietCh := quiet.Channel()
	told := rdb.SSubscribe(ctx, ch)
	defer told.Close()
	wantSub(t, told, "ssubscribe", ch, 1)
	toldCh := told.ChannelWithSubscriptions()

	c.MoveSlot(t, storetest.Slot(ch), dst)

	select {
	case m := <-toldCh:
		if s, ok := m.(*redis.Subscription); !ok || s.Kind != "sunsubscribe" || s.Channel != ch {
			t.Fatalf("ChannelWithSubscriptions after the move: %#v, want sunsubscribe %s", m, ch)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ChannelWithSubscriptions told nothing of the move")
	}
	select {
	case m := <-quietCh:
		t.Fatalf("Channel after the move: %#v, want nothing", m)
	case <-time.After(300 * time.Millisecond):
	}

	// The old owner tells the subscriber it is no longer subscribed.
	wantSub(t, ps, "sunsubscribe", ch, 0)
	// go-redis does not subscribe again by itself: what is published on
	// the new owner never arrives.
	if err := rdb.SPublish(ctx, ch, "lost").Err(); err != nil {
		t.Fatal(err)
	}
	wantSilence(t, ps, 500*time.Millisecond)
	// Subscribing again on the same PubSub goes to the old owner's
	// connection, which answers MOVED.
	if err := ps.SSubscribe(ctx, ch); err != nil {
		t.Fatal(err)
	}
	wantErr(t, ps, "MOVED")

	// A new PubSub reaches the new owner.
	ps2 := rdb.SSubscribe(ctx, ch)
	defer ps2.Close()
	wantSub(t, ps2, "ssubscribe", ch, 1)
	if err := rdb.SPublish(ctx, ch, "found").Err(); err != nil {
		t.Fatal(err)
	}
	wantMsg(t, ps2, ch, "found")
}

func TestFactFailoverSubscriber(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t, storetest.ClusterOptions{})
	rdb := c.Client(t)
	ctx := ctxT(t, 2*time.Minute)
	p := c.Primaries(t)[0]
	on := keysOn(t, c, p, "notice:%d", 3)
	a, b, single := on[0], on[1], on[2]

	two := rdb.SSubscribe(ctx, a) // then b on the same connection: allowed
	defer two.Close()
	wantSub(t, two, "ssubscribe", a, 1)
	if err := two.SSubscribe(ctx, b); err != nil {
		t.Fatal(err)
	}
	wantSub(t, two, "ssubscribe", b, 2)
	one := rdb.SSubscribe(ctx, single)
	defer one.Close()
	wantSub(t, one, "ssubscribe", single, 1)

	c.KillPrimaryOf(t, a)
	start := time.Now()
	c.WaitFailover(t, a)
	t.Logf("failover took %v", time.Since(start))

	// The subscriber sees its connection fail, then go-redis dials the
	// slot's primary again (once its slot map is fresh) and re-sends one
	// SSUBSCRIBE naming every channel, which crosses slots. A dial that
	// fails returns at once, so a loop of Receive must pause on errors.
	var seen errorLog
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, err := receive(t, two, time.Second)
		seen.add(err)
		if err != nil && strings.HasPrefix(err.Error(), "CROSSSLOT") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CROSSSLOT within 30 s; got %#v and errors %v", m, &seen)
		}
		if err != nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("two-slot subscriber saw, in order: %v", &seen)
	if err := rdb.SPublish(ctx, a, "lost").Err(); err != nil {
		t.Fatal(err)
	}
	wantSilence(t, two, 500*time.Millisecond)

	// One channel: the re-sent SSUBSCRIBE succeeds on the promoted replica.
	seen = errorLog{}
	deadline = time.Now().Add(30 * time.Second)
	for {
		m, err := receive(t, one, time.Second)
		seen.add(err)
		if s, ok := m.(*redis.Subscription); ok && s.Kind == "ssubscribe" && s.Channel == single {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no resubscription within 30 s; got %#v and errors %v", m, &seen)
		}
		if err != nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.Logf("one-slot subscriber saw %v, then ssubscribe %s", &seen, single)
	if err := rdb.SPublish(ctx, single, "kept").Err(); err != nil {
		t.Fatal(err)
	}
	wantMsg(t, one, single, "kept")
}

// defaultClient is a cluster client with go-redis's defaults but for the
// settings every client of ours has.
func defaultClient(t *testing.T, c *storetest.Cluster) *redis.ClusterClient {
	t.Helper()
	opts := c.ClientOptions()
	opts.ClusterStateReloadInterval = 0 // go-redis's default: 60 s
	rdb := redis.NewClusterClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func TestFactClientAfterFailover(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t, storetest.ClusterOptions{})
	rdb := defaultClient(t, c)
	ctx := ctxT(t, 2*time.Minute)
	const key = "chat:{general}:log"
	setReplicated(t, rdb, key, "v")
	dead := c.KillPrimaryOf(t, key)
	c.WaitFailover(t, key)

	// With its slot map from before the failover, the client keeps going
	// to the dead primary: a refused dial is retried, never a reason to
	// reload the map. It reloads only on MOVED or after
	// ClusterStateReloadInterval (60 s by default).
	until := time.Now().Add(3 * time.Second)
	for time.Now().Before(until) {
		err := rdb.Get(ctx, key).Err()
		if err == nil || !strings.Contains(err.Error(), dead) {
			t.Fatalf("GET after failover: %v; want a dial error to %s", err, dead)
		}
	}
	rdb.ReloadState(ctx) // in the background: it returns before the map is new
	eventually(t, 10*time.Second, func() error {
		v, err := rdb.Get(ctx, key).Result()
		if err == nil && v != "v" {
			t.Fatalf("GET after ReloadState: %q", v)
		}
		return err
	})
}

// commandCalls returns how often each node ran cmd (INFO commandstats).
func commandCalls(t *testing.T, c *storetest.Cluster, cmd string) map[string]int {
	t.Helper()
	ctx := ctxT(t, 10*time.Second)
	out := map[string]int{}
	for _, a := range c.Addrs {
		info, err := c.NodeClient(t, a).Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(info) {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls="); ok {
				n, _, _ := strings.Cut(rest, ",")
				v, err := strconv.Atoi(n)
				if err != nil {
					t.Fatalf("%s: bad commandstats line %q", a, line)
				}
				out[a] = v
			}
		}
	}
	return out
}

func TestFactWait(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t, storetest.ClusterOptions{})
	rdb := c.Client(t)
	ctx := ctxT(t, time.Minute)
	const key = "chat:{general}:log"

	t.Run("pipeline on the primary's client", func(t *testing.T) {
		m, err := rdb.MasterForKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			replicas int
			want     int64
		}{{1, 1}, {2, 1}} { // one replica: asking for two times out and says 1
			var wait *redis.Cmd
			start := time.Now()
			if _, err := m.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, "x", 0)
				wait = p.Do(ctx, "wait", tc.replicas, 300)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			if wait.Val() != tc.want {
				t.Errorf("WAIT %d 300: %v, want %d", tc.replicas, wait.Val(), tc.want)
			}
			if tc.replicas > 1 && took < 300*time.Millisecond {
				t.Errorf("WAIT %d 300 with one replica answered in %v, before its timeout", tc.replicas, took)
			}
			t.Logf("SET + WAIT %d 300 answered %v in %v", tc.replicas, wait.Val(), took)
		}
	})

	// WAIT has no key, and go-redis knows no routing policy for it (its
	// table covers only FT.*), so the cluster client sends it to the next
	// primary in turn, in a pipeline or alone: not the key's primary, and
	// never on the connection that wrote.
	ranOn := func(f func() (int64, error)) string {
		t.Helper()
		before := commandCalls(t, c, "wait")
		if n, err := f(); err != nil || n != 1 {
			t.Fatalf("WAIT 1: %d, %v", n, err)
		}
		var ran []string
		for a, n := range commandCalls(t, c, "wait") {
			if n > before[a] {
				ran = append(ran, a)
			}
		}
		if len(ran) != 1 {
			t.Fatalf("one WAIT ran on %v", ran)
		}
		return ran[0]
	}
	for _, tc := range []struct {
		name string
		wait func() (int64, error)
	}{
		{"in a cluster pipeline", func() (int64, error) {
			var wait *redis.Cmd
			_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, "y", 0)
				wait = p.Do(ctx, "wait", 1, 300)
				return nil
			})
			n, _ := wait.Val().(int64)
			return n, err
		}},
		{"alone", func() (int64, error) { return rdb.Wait(ctx, 1, 300*time.Millisecond).Result() }},
	} {
		t.Run("keyless WAIT "+tc.name, func(t *testing.T) {
			nodes := map[string]bool{}
			for range 3 {
				nodes[ranOn(tc.wait)] = true
			}
			if len(nodes) < 2 {
				t.Fatalf("three keyless WAITs all ran on %v; want them spread over the primaries", nodes)
			}
			t.Logf("three keyless WAITs ran on %d primaries (the key's is %s): %v", len(nodes), c.PrimaryOf(t, key), nodes)
		})
	}
}

func scriptExists(t *testing.T, c *storetest.Cluster, addr, sha string) bool {
	t.Helper()
	ok, err := c.NodeClient(t, addr).ScriptExists(ctxT(t, 5*time.Second), sha).Result()
	if err != nil {
		t.Fatalf("%s: script exists: %v", addr, err)
	}
	return ok[0]
}

// listedReplicas returns the replicas that CLUSTER SLOTS on rdb names,
// which is where go-redis learns of them.
func listedReplicas(t *testing.T, rdb redis.UniversalClient) []string {
	t.Helper()
	slots, err := rdb.ClusterSlots(ctxT(t, 5*time.Second)).Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range slots {
		for _, n := range s.Nodes[1:] {
			out = append(out, n.Addr)
		}
	}
	slices.Sort(out)
	return out
}

func replOffset(t *testing.T, c *storetest.Cluster, addr string) int64 {
	t.Helper()
	info, err := c.NodeClient(t, addr).Info(ctxT(t, 5*time.Second), "replication").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "slave_repl_offset:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("%s: slave_repl_offset:%s", addr, v)
			}
			return n
		}
	}
	t.Fatalf("%s: no slave_repl_offset", addr)
	return 0
}

func TestFactScriptCache(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t, storetest.ClusterOptions{})
	rdb := c.Client(t)
	ctx := ctxT(t, 2*time.Minute)
	primaries := c.Primaries(t)
	var replicas []string
	for _, a := range c.Addrs {
		if !slices.Contains(primaries, a) {
			replicas = append(replicas, a)
		}
	}
	const key = "chat:{general}:log"

	// CLUSTER SLOTS leaves out a replica whose replication offset is still
	// 0: on a new cluster, every replica until its primary has written
	// something (or sent its first replication PING, 10 s on).
	var listed []string
	for _, r := range replicas {
		listed = listedReplicas(t, c.NodeClient(t, r)) // a replica knows its own offset at once
		if off := replOffset(t, c, r); (off > 0) != slices.Contains(listed, r) {
			t.Errorf("replica %s at offset %d; its CLUSTER SLOTS lists %v", r, off, listed)
		}
	}
	listed = listedReplicas(t, rdb)
	t.Logf("new cluster: CLUSTER SLOTS lists replicas %v of %v", listed, replicas)

	// ClusterClient.ScriptLoad loads on every node of the client's slot map,
	// so on a new cluster only on the primaries and the listed replicas.
	early, err := rdb.ScriptLoad(ctx, "return 1").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range c.Addrs {
		want := !slices.Contains(replicas, a) || slices.Contains(listed, a)
		if got := scriptExists(t, c, a, early); got != want {
			t.Errorf("ScriptLoad on a new cluster: loaded on %s: %v, want %v", a, got, want)
		}
	}

	// Once every primary has written, the replicas are listed, and a
	// reloaded client loads scripts on them too.
	for _, p := range primaries {
		k := keysOn(t, c, p, "warm:%d", 1)[0]
		setReplicated(t, rdb, k, "1")
	}
	eventually(t, 20*time.Second, func() error {
		for _, a := range c.Addrs { // go-redis asks any node
			if got := listedReplicas(t, c.NodeClient(t, a)); len(got) != len(replicas) {
				return fmt.Errorf("CLUSTER SLOTS on %s lists replicas %v of %v", a, got, replicas)
			}
		}
		return nil
	})
	const script = "return redis.call('INCR', KEYS[1])"
	sha, err := rdb.ScriptLoad(ctx, script).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range c.Addrs {
		if !scriptExists(t, c, a, sha) {
			t.Errorf("ScriptLoad with replicas listed did not load on %s", a)
		}
	}

	// A script loaded on a primary alone is not replicated.
	const primaryOnly = "return redis.call('INCRBY', KEYS[1], 2)"
	p := c.PrimaryOf(t, key)
	sha2, err := c.NodeClient(t, p).ScriptLoad(ctx, primaryOnly).Result()
	if err != nil {
		t.Fatal(err)
	}
	setReplicated(t, rdb, key, "0") // the replication stream has moved past the load
	for _, a := range c.Addrs {
		if a != p && scriptExists(t, c, a, sha2) {
			t.Errorf("SCRIPT LOAD on %s reached %s", p, a)
		}
	}

	// After a failover the promoted replica knows only what was loaded on
	// it: EVALSHA of the primary-only script says NOSCRIPT.
	dead := c.KillPrimaryOf(t, key)
	promoted := c.WaitFailover(t, key)
	eventually(t, 20*time.Second, func() error { return rdb.EvalSha(ctx, sha, []string{key}).Err() })
	err = rdb.EvalSha(ctx, sha2, []string{key}).Err()
	if err == nil || !strings.HasPrefix(err.Error(), "NOSCRIPT") {
		t.Fatalf("EVALSHA of a primary-only script on promoted %s: %v, want NOSCRIPT", promoted, err)
	}
	// In a pipeline NOSCRIPT is that command's error, not retried; the
	// others succeed. Script.Run in a pipeline cannot fall back: the error
	// is not known until Exec.
	var bad, good *redis.Cmd
	if _, err := rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		bad = redis.NewScript(primaryOnly).Run(ctx, pl, []string{key})
		good = pl.EvalSha(ctx, sha, []string{key})
		return nil
	}); err == nil || bad.Err() == nil || !strings.HasPrefix(bad.Err().Error(), "NOSCRIPT") || good.Err() != nil {
		t.Fatalf("pipeline after failover: %v; primary-only script %v, want NOSCRIPT; loaded script %v", err, bad.Err(), good.Err())
	}
	// redis.Script.Run alone falls back to EVAL on NOSCRIPT, which also
	// loads the script.
	if err := redis.NewScript(primaryOnly).Run(ctx, rdb, []string{key}).Err(); err != nil {
		t.Fatalf("Script.Run after failover: %v", err)
	}
	if !scriptExists(t, c, promoted, sha2) {
		t.Errorf("EVAL did not load the script on %s", promoted)
	}

	// The script cache is memory only: the old primary, restarted (now a
	// replica), has lost every script.
	c.RestartNode(t, dead)
	if scriptExists(t, c, dead, sha) {
		t.Errorf("restarted %s still has the script", dead)
	}
}

func TestFactSPublishInScript(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t, storetest.ClusterOptions{Replicas: -1})
	rdb := c.Client(t)
	ctx := ctxT(t, time.Minute)
	const key = "chat:{general}:log"
	p := c.PrimaryOf(t, key)
	sameSlot := "chat:{general}:notice"
	otherSlotHere := keysOn(t, c, p, "notice:%d", 1)[0]
	otherNode := keysOn(t, c, otherPrimary(t, c, p), "notice:%d", 1)[0]
	send := redis.NewScript("redis.call('SET', KEYS[1], ARGV[2]) return redis.call('SPUBLISH', ARGV[1], ARGV[2])")
	if err := send.Load(ctx, rdb).Err(); err != nil {
		t.Fatal(err)
	}

	ps := rdb.SSubscribe(ctx, sameSlot)
	defer ps.Close()
	wantSub(t, ps, "ssubscribe", sameSlot, 1)
	n, err := send.EvalSha(ctx, rdb, []string{key}, sameSlot, "hi").Int()
	if err != nil || n != 1 {
		t.Fatalf("SPUBLISH to the key's slot from EVALSHA: %d receivers, %v", n, err)
	}
	wantMsg(t, ps, sameSlot, "hi")

	// Redis 7.0 checks a script's SPUBLISH only for being local to the
	// node, not for its slot: another slot of the same node is published.
	ps2 := rdb.SSubscribe(ctx, otherSlotHere)
	defer ps2.Close()
	wantSub(t, ps2, "ssubscribe", otherSlotHere, 1)
	n, err = send.EvalSha(ctx, rdb, []string{key}, otherSlotHere, "here").Int()
	if err != nil || n != 1 {
		t.Fatalf("SPUBLISH to another slot of the same node from EVALSHA: %d receivers, %v", n, err)
	}
	wantMsg(t, ps2, otherSlotHere, "here")

	// A channel of another node is an error, raised where the script calls
	// SPUBLISH: what the script wrote before it stays written.
	err = send.EvalSha(ctx, rdb, []string{key}, otherNode, "partial").Err()
	if err == nil || !strings.Contains(err.Error(), "non local key") {
		t.Fatalf("SPUBLISH to another node's slot from EVALSHA: %v, want a non-local-key error", err)
	}
	t.Logf("error, as expected: %v", err)
	if v, _ := rdb.Get(ctx, key).Result(); v != "partial" {
		t.Errorf("%s = %q after the failed script, want its write before SPUBLISH", key, v)
	}
}

// slowPipelines makes each node's part of a cluster pipeline take at
// least delay, and records it.
type slowPipelines struct {
	delay time.Duration
	mu    sync.Mutex
	runs  []pipelineRun
}

type pipelineRun struct {
	addr string
	cmds int
}

// nodeHook is the go-redis hook that slowPipelines puts on one node's
// client.
type nodeHook struct {
	addr string
	rec  *slowPipelines
}

func (h nodeHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h nodeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h nodeHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		time.Sleep(h.rec.delay)
		h.rec.mu.Lock()
		h.rec.runs = append(h.rec.runs, pipelineRun{addr: h.addr, cmds: len(cmds)})
		h.rec.mu.Unlock()
		return next(ctx, cmds)
	}
}

// errorCount returns how often addr answered with an error of this prefix
// (INFO errorstats).
func errorCount(t *testing.T, c *storetest.Cluster, addr, prefix string) int {
	t.Helper()
	info, err := c.NodeClient(t, addr).Info(ctxT(t, 5*time.Second), "errorstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "errorstat_"+prefix+":count="); ok {
			n, err := strconv.Atoi(rest)
			if err != nil {
				t.Fatalf("%s: bad errorstats line %q", addr, line)
			}
			return n
		}
	}
	return 0
}

func TestFactPipelineOfScripts(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t, storetest.ClusterOptions{Replicas: -1})
	ctx := ctxT(t, 2*time.Minute)
	const delay = 300 * time.Millisecond
	hook := &slowPipelines{}
	opts := c.ClientOptions()
	opts.ClusterStateReloadInterval = 0 // go-redis's default: a stale map stays stale
	rdb := redis.NewClusterClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.OnNewNode(func(n *redis.Client) { n.AddHook(nodeHook{n.Options().Addr, hook}) })
	incr := redis.NewScript("return redis.call('INCR', KEYS[1])")
	if err := incr.Load(ctx, rdb).Err(); err != nil {
		t.Fatal(err)
	}
	primaries := c.Primaries(t)
	var keys []string // four on each primary, each in its own slot
	for _, p := range primaries {
		keys = append(keys, keysOn(t, c, p, "chat:{room-%d}:log", 4)...)
	}
	run := func() ([]*redis.Cmd, time.Duration, error) {
		var out []*redis.Cmd
		start := time.Now()
		_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				out = append(out, incr.EvalSha(ctx, p, []string{k}))
			}
			return nil
		})
		return out, time.Since(start), err
	}

	t.Run("one sub-pipeline per node, run at once", func(t *testing.T) {
		hook.delay = delay
		hook.runs = nil
		cmds, took, err := run()
		if err != nil {
			t.Fatal(err)
		}
		for i, cmd := range cmds {
			if n, _ := cmd.Int(); n != 1 {
				t.Errorf("EVALSHA on %s: %v, %v", keys[i], cmd.Val(), cmd.Err())
			}
		}
		perNode := map[string]int{}
		for _, r := range hook.runs {
			perNode[r.addr] += r.cmds
		}
		for _, p := range primaries {
			if perNode[p] != 4 {
				t.Errorf("node %s got %d commands in its pipeline, want its 4", p, perNode[p])
			}
		}
		if took > 2*delay {
			t.Errorf("three nodes' pipelines, each %v, took %v together: not concurrent", delay, took)
		}
		t.Logf("%d EVALSHA on %d nodes, each node's pipeline held %v: %v in all", len(keys), len(primaries), delay, took)
		hook.delay = 0
	})

	key := keys[0]
	slot := storetest.Slot(key)
	src := c.PrimaryOf(t, key)
	dst := otherPrimary(t, c, src)

	t.Run("MOVED after a reshard is followed", func(t *testing.T) {
		c.MoveSlot(t, slot, dst)
		before := errorCount(t, c, src, "MOVED")
		cmds, _, err := run()
		if err != nil {
			t.Fatalf("pipeline after the slot moved: %v", err)
		}
		if n, _ := cmds[0].Int(); n != 2 {
			t.Fatalf("EVALSHA on moved %s: %v, %v; want 2", key, cmds[0].Val(), cmds[0].Err())
		}
		if moved := errorCount(t, c, src, "MOVED") - before; moved != 1 {
			t.Fatalf("old owner %s answered MOVED %d times, want 1 (the client's map was stale)", src, moved)
		}
	})

	// Another key of the same room, so of the same slot, on dst before the
	// slot opens.
	sibling := strings.Replace(key, ":log", ":seq", 1)
	if err := rdb.Set(ctx, sibling, 0, 0).Err(); err != nil {
		t.Fatal(err)
	}

	// Now key lives on dst. Open its slot for migration back to src, the
	// state a reshard is in while it copies keys.
	srcID := nodeID(t, c, src)
	dstID := nodeID(t, c, dst)
	setslot := func(addr string, args ...any) {
		t.Helper()
		if err := c.NodeClient(t, addr).Do(ctx, append([]any{"cluster", "setslot", slot}, args...)...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	setslot(src, "importing", dstID)
	setslot(dst, "migrating", srcID)
	t.Run("ASK during a migration is followed", func(t *testing.T) {
		// Move key itself; the slot stays open, owned by dst.
		host, port, _ := strings.Cut(src, ":")
		if err := c.NodeClient(t, dst).Migrate(ctx, host, port, key, 0, 5*time.Second).Err(); err != nil {
			t.Fatal(err)
		}
		before := errorCount(t, c, dst, "ASK")
		cmds, _, err := run()
		if err != nil {
			t.Fatalf("pipeline during the migration: %v", err)
		}
		if n, _ := cmds[0].Int(); n != 3 {
			t.Fatalf("EVALSHA on migrated %s: %v, %v; want 3", key, cmds[0].Val(), cmds[0].Err())
		}
		if ask := errorCount(t, c, dst, "ASK") - before; ask != 1 {
			t.Fatalf("owner %s answered ASK %d times, want 1", dst, ask)
		}
	})

	t.Run("TRYAGAIN of a half-moved slot is retried, then surfaced", func(t *testing.T) {
		// key has moved to src, sibling has not: a script needing both
		// cannot run on either node until the migration ends.
		both := redis.NewScript("return redis.call('INCR', KEYS[1]) + redis.call('INCR', KEYS[2])")
		if err := both.Load(ctx, rdb).Err(); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			run  func() error
		}{
			{"alone", func() error { return both.EvalSha(ctx, rdb, []string{key, sibling}).Err() }},
			{"in a pipeline", func() error {
				var cmd *redis.Cmd
				_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
					cmd = both.EvalSha(ctx, p, []string{key, sibling})
					return nil
				})
				return cmd.Err()
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := errorCount(t, c, dst, "TRYAGAIN")
				start := time.Now()
				err := tc.run()
				if err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
					t.Fatalf("script over a half-moved slot: %v, want TRYAGAIN", err)
				}
				// 1 + ClusterOptions.MaxRedirects (3), with backoff between.
				if tries := errorCount(t, c, dst, "TRYAGAIN") - before; tries != 4 {
					t.Fatalf("TRYAGAIN answered %d times, want 4", tries)
				}
				t.Logf("%s: 4 tries in %v, then %v", tc.name, time.Since(start), err)
			})
		}
	})

	// End the migration (as redis-cli would) so that the cluster is ok.
	host, port, _ := strings.Cut(src, ":")
	if err := c.NodeClient(t, dst).Migrate(ctx, host, port, sibling, 0, 5*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	setslot(src, "node", srcID)
	setslot(dst, "node", srcID)
	c.WaitOK(t)
	if v, err := rdb.Get(ctx, sibling).Result(); err != nil || v != "0" {
		t.Fatalf("after the migration %s = %q, %v", sibling, v, err)
	}
}

func nodeID(t *testing.T, c *storetest.Cluster, addr string) string {
	t.Helper()
	id, err := c.NodeClient(t, addr).ClusterMyID(ctxT(t, 5*time.Second)).Result()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// roomNames returns n room names of the shapes a chat server sees: the
// built-in channels, team channels, one-to-one rooms and project rooms.
func roomNames(n int) []string {
	names := []string{"general", "support", "tech", "random", "announcements"}
	for i := 1; len(names) < n && i <= 3000; i++ {
		names = append(names, fmt.Sprintf("team-%d", i))
	}
	users := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"}
	for i := range 90 {
		users = append(users, fmt.Sprintf("user%d", i))
	}
	for i := 0; i < len(users) && len(names) < n; i++ {
		for j := i + 1; j < len(users) && len(names) < n && len(names) < 7005; j++ {
			a, b := min(users[i], users[j]), max(users[i], users[j])
			names = append(names, "dm:"+a+":"+b)
		}
	}
	for i := 1; len(names) < n; i++ {
		names = append(names, fmt.Sprintf("project-%d", i))
	}
	return names
}

func TestFactRoomSlotBalance(t *testing.T) {
	t.Parallel()
	c := storetest.StartCluster(t, storetest.ClusterOptions{Replicas: -1})
	rdb := c.Client(t)
	slots, err := rdb.ClusterSlots(ctxT(t, 5*time.Second)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(slots) != 3 {
		t.Fatalf("CLUSTER SLOTS has %d ranges, want 3", len(slots))
	}
	rooms := roomNames(10000)
	if len(rooms) != 10000 || len(slices.Compact(slices.Sorted(slices.Values(rooms)))) != 10000 {
		t.Fatalf("want 10,000 distinct room names, have %d", len(rooms))
	}
	perSlot := map[int]int{}
	for _, r := range rooms {
		perSlot[storetest.Slot("chat:{"+r+"}:log")]++
	}
	slices.SortFunc(slots, func(a, b redis.ClusterSlot) int { return a.Start - b.Start })
	even := float64(len(rooms)) / 3
	var shares []string
	for _, r := range slots {
		n := 0
		for s := r.Start; s <= r.End; s++ {
			n += perSlot[s]
		}
		ratio := float64(n) / even
		if ratio > 1.2 || ratio < 1/1.2 {
			t.Errorf("primary %s (slots %d-%d) holds %d rooms, %.3f× an even share", r.Nodes[0].Addr, r.Start, r.End, n, ratio)
		}
		shares = append(shares, fmt.Sprintf("slots %d-%d: %d (%.3f×)", r.Start, r.End, n, ratio))
	}
	busiest := 0
	for _, n := range perSlot {
		busiest = max(busiest, n)
	}
	t.Logf("10,000 rooms on 3 primaries (even %.0f): %s; %d distinct slots, at most %d rooms in one", even, strings.Join(shares, ", "), len(perSlot), busiest)

	// The same rooms on more primaries, slots split as redis-cli create
	// splits them (contiguous, equal ranges).
	for n := 4; n <= 8; n++ {
		counts := make([]int, n)
		for _, r := range rooms {
			counts[storetest.Slot("chat:{"+r+"}:log")*n/storetest.Slots]++
		}
		lo, hi := slices.Min(counts), slices.Max(counts)
		t.Logf("on %d primaries: %v, from %.3f× to %.3f× an even share", n, counts, float64(lo)*float64(n)/10000, float64(hi)*float64(n)/10000)
	}
}

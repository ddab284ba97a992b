package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redstream/chat/store/storetest"
)

// Cluster mode end to end: chatd processes on a local Redis Cluster (3
// primaries with a replica each), under the fault tests' traffic.

var errNotReady = errors.New("/readyz not 200 again after the failover")

// startClusterFaults starts a cluster with append-only persistence and two
// chatd processes on it in cluster mode, waiting for one replica per ack.
func startClusterFaults(t *testing.T) (*storetest.Cluster, *faultCluster) {
	t.Helper()
	c := storetest.StartCluster(t, storetest.ClusterOptions{AppendOnly: true, NodeTimeout: 2 * time.Second})
	url := "redis://" + c.Addrs[0]
	if len(c.Addrs) > 1 {
		url += "?addr=" + strings.Join(c.Addrs[1:], "&addr=")
	}
	env := map[string]string{
		"CHAT_REDIS_MODE":          "cluster",
		"REDIS_URL":                url,
		"CHAT_REDIS_WAIT_REPLICAS": "1",
		"CHAT_JWT_SECRET":          faultSecret,
		"CHAT_SEND_RATE":           "1000",
		"CHAT_SEND_BURST":          "1000",
		"CHAT_REDIS_TIMEOUT":       faultRedisTimeout.String(),
		"CHAT_PRESENCE_TTL":        "2s",
		"CHAT_SHUTDOWN_GRACE":      "2s",
		"CHAT_LOG_LEVEL":           "info",
	}
	fc := &faultCluster{env: env}
	fc.a = mustStartChatdProc(t, "a", env)
	fc.b = mustStartChatdProc(t, "b", env)
	return c, fc
}

// TestClusterFaultPrimaryKilled: under traffic from two instances, the
// primary serving the busy room is killed with SIGKILL and its replica
// promoted, then the old primary comes back as a replica. With
// CHAT_REDIS_WAIT_REPLICAS=1, no acked message is lost or stored twice,
// every receiver gets every message once and in order, readiness goes
// 503 while the slot has no primary and 200 after, and every client
// continues.
func TestClusterFaultPrimaryKilled(t *testing.T) {
	c, fc := startClusterFaults(t)
	l := fc.traffic(t)
	wa, wb := watchReady(t, fc.a.URL), watchReady(t, fc.b.URL)
	l.waitFlowing(60, 30*time.Second)

	key := "chat:{general}:s"
	down := time.Now()
	old := c.KillPrimaryOf(t, key)
	c.WaitFailover(t, key)
	promoted := time.Now()
	// Until the old primary is back as a replica, WAIT 1 cannot pass on
	// that slot: sends there fail with unavailable and are retried.
	c.RestartNode(t, old)
	l.waitFlowing(60, 60*time.Second)
	storetest.CheckFor(t, 30*time.Second, func() error {
		for _, w := range []*readyWatch{wa, wb} {
			if _, ok := w.first(200, time.Now().Add(-time.Second)); !ok {
				return errNotReady
			}
		}
		return nil
	})
	fig := l.finish(fc.b.URL, l.receivers[0].Token)
	t.Logf("primary %s killed; replica promoted after %v; figures: %v", old, promoted.Sub(down).Round(time.Millisecond), fig)
	for _, w := range []struct {
		name string
		w    *readyWatch
	}{{"a", wa}, {"b", wb}} {
		if at, ok := w.w.first(503, down); ok {
			t.Logf("instance %s: /readyz 503 %v after the kill", w.name, at.Sub(down).Round(time.Millisecond))
		}
	}
	if fig.Lost > 0 || fig.StoredTwice > 0 || fig.Missed > 0 || fig.Duplicated > 0 {
		t.Errorf("across the failover: %v", fig)
	}
	if fig.Acked == 0 || fig.Delivered == 0 {
		t.Errorf("no traffic: %v", fig)
	}
	for code := range fig.Errors {
		if code != "unavailable" {
			t.Errorf("error frames with code %q: %v", code, fig.Errors)
		}
	}
}

// TestClusterInstancesAndRestart: the traffic of the fault tests on a
// cluster across two instances, with one instance restarted meanwhile
// (its clients move and resume with since): every message once, in order.
func TestClusterInstancesAndRestart(t *testing.T) {
	_, fc := startClusterFaults(t)
	l := fc.traffic(t)
	l.waitFlowing(60, 30*time.Second)
	fc.a.Stop(t)
	l.waitFlowing(60, 30*time.Second)
	fc.a.Start(t)
	l.waitFlowing(60, 30*time.Second)
	fig := l.finish(fc.a.URL, l.receivers[1].Token)
	t.Logf("figures: %v", fig)
	if fig.Lost > 0 || fig.StoredTwice > 0 || fig.Missed > 0 || fig.Duplicated > 0 || fig.Acked == 0 {
		t.Errorf("across a restart in cluster mode: %v", fig)
	}
}

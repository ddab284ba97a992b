//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer collects a child's output from its copying goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// mustBuild builds pkg into dir and returns the binary's path.
func mustBuild(tb testing.TB, dir, pkg string) string {
	tb.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, "go", "build", "-o", out, pkg).CombinedOutput()
	if err != nil {
		tb.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// checkFor calls f every interval until it succeeds or total has passed.
func checkFor(tb testing.TB, total, every time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: %v", total, err)
		}
		time.Sleep(every)
	}
}

// mustStartChatd starts chatd on a free port with its own data directory
// and returns its base URL. Cleanup stops it with SIGTERM, then kills its
// process group (chatd may have started a redis-server) if it lingers.
func mustStartChatd(tb testing.TB, bin string) string {
	tb.Helper()
	addr := freeAddr(tb)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"CHAT_ADDR="+addr,
		"CHAT_DATA_DIR="+filepath.Join(tb.TempDir(), "data"),
		"CHAT_SEND_RATE=1000",
		"CHAT_SEND_BURST=1000",
	)
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			tb.Log("chatd did not stop within 15s of SIGTERM; killing its process group")
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if tb.Failed() {
			tb.Logf("chatd output:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	hc := &http.Client{Timeout: time.Second}
	checkFor(tb, 30*time.Second, 100*time.Millisecond, func() error {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("chatd exited: %v\n%s", err, logs.String())
		default:
		}
		resp, err := hc.Get(base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz: %s", resp.Status)
		}
		return nil
	})
	return base
}

// TestEndToEnd runs the real chatbench binary against a real chatd.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts chatd")
	}
	dir := t.TempDir()
	chatd := mustBuild(t, dir, "github.com/redstream/chat/cmd/chatd")
	bench := mustBuild(t, dir, "github.com/redstream/chat/cmd/chatbench")
	base := mustStartChatd(t, chatd)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bench, "--servers", base, "--clients", "20", "--rooms", "2", "--room-size", "10",
		"--senders", "4", "--rate", "40", "--duration", "3s", "--json")
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("chatbench stderr:\n%s", stderr.String())
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
		t.Fatalf("chatbench: %v", err)
	}
	var r Report
	if err := json.Unmarshal(bytes.TrimSpace([]byte(stdout.String())), &r); err != nil {
		t.Fatalf("chatbench output is not one JSON line: %v\n%s", err, stdout.String())
	}
	t.Logf("result: %s", stdout.String())
	if r.Deliveries <= 0 || r.Lost != 0 || r.Dups != 0 {
		t.Fatalf("deliveries %d, lost %d, dups %d; want > 0, 0, 0", r.Deliveries, r.Lost, r.Dups)
	}
	if r.LostReconnected != 0 || r.Reorders != 0 || r.Connected != 20 {
		t.Errorf("lost after reconnect %d, reorders %d, connected %d", r.LostReconnected, r.Reorders, r.Connected)
	}
	if err != nil {
		t.Fatalf("chatbench exited with %v", err)
	}
}

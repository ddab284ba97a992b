package chatdtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain makes the test binary a stand-in server when CHATDTEST_CHILD is
// set: it listens on CHAT_ADDR, answers /readyz 200 once CHILD_READY_AFTER
// has passed, and on SIGTERM exits with CHILD_EXIT. With CHILD_FAIL it
// writes that and exits 3 at once.
func TestMain(m *testing.M) {
	if os.Getenv("CHATDTEST_CHILD") == "1" {
		os.Exit(child())
	}
	code := m.Run()
	RemoveBinaries()
	os.Exit(code)
}

func child() int {
	if msg := os.Getenv("CHILD_FAIL"); msg != "" {
		fmt.Fprintln(os.Stderr, msg)
		return 3
	}
	readyAfter, _ := time.ParseDuration(os.Getenv("CHILD_READY_AFTER"))
	began := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if time.Since(began) < readyAfter {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, strings.Join(os.Environ(), "\n"))
	})
	srv := &http.Server{Addr: os.Getenv("CHAT_ADDR"), Handler: mux}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	fmt.Fprintln(os.Stderr, "child listening on", srv.Addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintln(os.Stderr, "child got SIGTERM")
	code, _ := strconv.Atoi(os.Getenv("CHILD_EXIT"))
	return code
}

func self(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func get(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStartStopRestartKill(t *testing.T) {
	t.Setenv("CHAT_SECRET_OF_THE_TEST", "leaks")
	p := Start(t, self(t), Options{Name: "child", Env: map[string]string{
		"CHATDTEST_CHILD": "1", "CHILD_READY_AFTER": "300ms", "CHAT_SHUTDOWN_GRACE": "1s"}})
	// Start returned only once /readyz said 200.
	if st, err := Status(p.URL + "/readyz"); err != nil || st != http.StatusOK {
		t.Fatalf("after Start: /readyz %d %v", st, err)
	}
	env := get(t, p.URL+"/env")
	if !strings.Contains(env, "CHAT_ADDR="+p.Addr) || !strings.Contains(env, "PATH=") || strings.Contains(env, "CHAT_SECRET_OF_THE_TEST") {
		t.Errorf("the child's environment is not only PATH, HOME, TMPDIR and Env:\n%s", env)
	}
	if !p.Running() || p.PID() == 0 {
		t.Fatalf("running %v, pid %d", p.Running(), p.PID())
	}
	took, err := p.Terminate()
	if err != nil || took > 5*time.Second || p.Running() {
		t.Fatalf("Terminate: %v after %v, running %v", err, took, p.Running())
	}
	if !strings.Contains(p.Log.String(), "child got SIGTERM") {
		t.Errorf("log lacks the child's last words:\n%s", p.Log)
	}

	addr := p.Addr
	p.Start(t)
	if p.Addr != addr || !p.Running() {
		t.Fatalf("restarted at %s (running %v), want %s", p.Addr, p.Running(), addr)
	}
	if !strings.Contains(p.Log.String(), "---- start 2 of child") {
		t.Errorf("the restart is not marked in the log:\n%s", p.Log)
	}
	p.Kill(t)
	if p.Running() {
		t.Fatal("running after Kill")
	}
	if _, err := Status(p.URL + "/readyz"); err == nil {
		t.Fatal("still answering after Kill")
	}
}

func TestExitAfterSIGTERMWithAnErrorIsReported(t *testing.T) {
	p, err := Launch(self(t), Options{Name: "child", Env: map[string]string{"CHATDTEST_CHILD": "1", "CHILD_EXIT": "5"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Terminate(); err == nil || !strings.Contains(err.Error(), "exit status 5") {
		t.Fatalf("Terminate of a process exiting 5: %v", err)
	}
}

func TestStartupFailureShowsTheOutput(t *testing.T) {
	_, err := Launch(self(t), Options{Name: "child", Env: map[string]string{"CHATDTEST_CHILD": "1", "CHILD_FAIL": "cannot open the data dir"}})
	if err == nil || !strings.Contains(err.Error(), "cannot open the data dir") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Launch of a process that fails at once: %v", err)
	}
}

func TestNotReadyInTime(t *testing.T) {
	start := time.Now()
	_, err := Launch(self(t), Options{Name: "child", ReadyTimeout: 500 * time.Millisecond,
		Env: map[string]string{"CHATDTEST_CHILD": "1", "CHILD_READY_AFTER": "1h"}})
	if err == nil || !strings.Contains(err.Error(), "/readyz answered 503") {
		t.Fatalf("Launch of a process never ready: %v", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("gave up after %v", took)
	}
}

func TestFreeAddrIsFree(t *testing.T) {
	addr := FreeAddr(t)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("FreeAddr %q", addr)
	}
	if _, err := Status("http://" + addr + "/"); err == nil {
		t.Fatalf("something answers at %s", addr)
	}
}

package main

// chatd as a real process, for the fault, webhook and load-balancer
// tests, through chatdtest: the binary is built once per test binary
// (with -race when the test binary has it, so that the server is checked
// for data races too), every process is killed in tb.Cleanup, and what it
// wrote is shown when the test fails.

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/redstream/chat/cmd/internal/chatdtest"
)

// mustBuildChatd builds cmd/chatd once per test binary and returns the
// binary's path.
func mustBuildChatd(tb testing.TB) string {
	tb.Helper()
	return chatdtest.Build(tb, chatdtest.Chatd, chatdtest.BuildOptions{Race: true})
}

// mustStartChatdProc starts chatd as a process with env (plus CHAT_ADDR on a
// free port and CHAT_INSTANCE=name) and waits until /readyz answers 200.
// tb.Cleanup kills it and, if the test failed, logs its output.
func mustStartChatdProc(tb testing.TB, name string, env map[string]string) *chatdtest.Proc {
	tb.Helper()
	e := map[string]string{}
	for k, v := range env {
		e[k] = v
	}
	if e["CHAT_INSTANCE"] == "" {
		e["CHAT_INSTANCE"] = name
	}
	return chatdtest.Start(tb, mustBuildChatd(tb), chatdtest.Options{Name: name, Env: e})
}

// requireTool finds a binary on PATH (or in dirs) for tests that need it:
// missing, it fails the test when requireEnv is set in the environment and
// skips it otherwise.
func requireTool(tb testing.TB, name, requireEnv string, dirs ...string) string {
	tb.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range dirs {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	if os.Getenv(requireEnv) != "" {
		tb.Fatalf("%s is set but %s is not installed", requireEnv, name)
	}
	tb.Skipf("SKIPPED: needs %s (set %s=1 to make this a failure)", name, requireEnv)
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

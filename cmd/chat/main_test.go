package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redstream/chat/cmd/internal/chatdtest"
)

// TestMain stops the shared chatd and removes the shared build once every
// test has run.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		if _, err := shared.srv.Terminate(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	chatdtest.RemoveBinaries()
	os.Exit(code)
}

// sharedAdmin is the username with admin rights on the shared server
// (CHAT_ADMINS); only TestEndToEndRooms registers it.
const sharedAdmin = "e2e-admin"

// shared is one chatd that the end-to-end tests of the commands share:
// starting one (and its redis-server) per test costs more than the tests.
// Each test registers users and creates rooms of its own (uniq), so the
// tests do not see each other.
var shared struct {
	once sync.Once
	dir  string
	srv  *chatdtest.Proc
	err  error
}

// sharedServer returns the shared chatd, starting it on first use.
func sharedServer(tb testing.TB) (e2eBinaries, *chatdtest.Proc) {
	tb.Helper()
	bins := mustBuild(tb)
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "chat-e2e-data-")
		if shared.err != nil {
			return
		}
		shared.srv, shared.err = chatdtest.Launch(bins.chatd, chatdOptions(chatdtest.FreeAddr(tb), filepath.Join(shared.dir, "data"), "CHAT_ADMINS="+sharedAdmin))
	})
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			lines := strings.Split(strings.TrimSuffix(shared.srv.Log.String(), "\n"), "\n")
			tb.Logf("the shared chatd's last log lines:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	return bins, shared.srv
}

var uniqSeq atomic.Int64

// uniq makes a username or room name that no other test uses.
func uniq(prefix string) string {
	return prefix + strconv.FormatInt(uniqSeq.Add(1), 10)
}

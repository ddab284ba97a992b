package main

// End-to-end tests: build cmd/chat and cmd/chatd, start chatd in
// self-contained mode and drive the client as a user would, through
// pipes. They are skipped with -short.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redstream/chat/cmd/internal/chatdtest"
	"github.com/redstream/chat/store/storetest"
	"github.com/redstream/chat/transport/wire"
)

// e2eBinaries are the built programs.
type e2eBinaries struct{ chat, chatd string }

// mustBuild builds the client and the server, once per test binary.
func mustBuild(tb testing.TB) e2eBinaries {
	tb.Helper()
	if testing.Short() {
		tb.Skip("end-to-end test skipped in -short mode")
	}
	return e2eBinaries{
		chat:  chatdtest.Build(tb, chatdtest.Chat, chatdtest.BuildOptions{}),
		chatd: chatdtest.Build(tb, chatdtest.Chatd, chatdtest.BuildOptions{}),
	}
}

// cleanEnv is the test's environment without anything that would point
// the programs elsewhere.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CHAT_") || strings.HasPrefix(kv, "REDIS_URL=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// chatdOptions runs chatd self-contained on addr with its data in dataDir,
// a short drain, and the extra environment env ("K=V").
func chatdOptions(addr, dataDir string, env ...string) chatdtest.Options {
	e := map[string]string{"CHAT_ADDR": addr, "CHAT_DATA_DIR": dataDir, "CHAT_SHUTDOWN_GRACE": "2s"}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		e[k] = v
	}
	return chatdtest.Options{Env: e}
}

// mustStartChatd starts chatd on addr with its data in dataDir and waits until
// it is ready. t.Cleanup stops it.
func mustStartChatd(tb testing.TB, bin, addr, dataDir string) *chatdtest.Proc {
	tb.Helper()
	return chatdtest.Start(tb, bin, chatdOptions(addr, dataDir))
}

// e2eUser runs the client binary for one user with its own config dir.
type e2eUser struct {
	bin, server, configDir string
}

func newUser(tb testing.TB, bins e2eBinaries, server string) *e2eUser {
	return &e2eUser{bin: bins.chat, server: server, configDir: tb.TempDir()}
}

func (u *e2eUser) env() []string {
	return cleanEnv("CHAT_SERVER="+u.server, "CHAT_CONFIG_DIR="+u.configDir)
}

// run runs one client command to completion (at most 30 s).
func (u *e2eUser) run(tb testing.TB, stdin string, args ...string) cmdResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, u.bin, args...)
	cmd.Env = u.env()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := cmdResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		tb.Fatalf("chat %q: %v", args, err)
	}
	if ctx.Err() != nil {
		tb.Fatalf("chat %q did not finish within 30 s", args)
	}
	return res
}

// must runs a command that has to succeed and returns its stdout.
func (u *e2eUser) must(tb testing.TB, stdin string, args ...string) string {
	tb.Helper()
	res := u.run(tb, stdin, args...)
	if res.code != 0 {
		tb.Fatalf("chat %q: exit %d\nstdout: %s\nstderr: %s", args, res.code, res.stdout, res.stderr)
	}
	return res.stdout
}

// signup registers and logs in name with a fixed password.
func (u *e2eUser) signup(tb testing.TB, name string) {
	tb.Helper()
	if out := u.must(tb, "correct horse battery\n", "register", name); out != "registered "+name+"\n" {
		tb.Fatalf("register printed %q", out)
	}
	if out := u.must(tb, "correct horse battery\n", "login", name); !strings.HasPrefix(out, "logged in as "+name+" (token expires ") {
		tb.Fatalf("login printed %q", out)
	}
}

// history returns the texts of the newest messages of room, via --json.
func (u *e2eUser) history(tb testing.TB, room string) []wire.Message {
	tb.Helper()
	var page HistoryPage
	out := u.must(tb, "", "history", room, "--limit", "200", "--json")
	if err := json.Unmarshal([]byte(out), &page); err != nil {
		tb.Fatalf("history --json printed %q: %v", out, err)
	}
	return page.Messages
}

func hasText(msgs []wire.Message, text string) bool {
	for _, m := range msgs {
		if m.Text == text {
			return true
		}
	}
	return false
}

// e2eJoin is a running `chat join`.
type e2eJoin struct {
	stdin    io.WriteCloser
	out, err *lineLog
	done     chan struct{}
	cmd      *exec.Cmd
}

func (u *e2eUser) join(tb testing.TB, room string) *e2eJoin {
	tb.Helper()
	j := &e2eJoin{out: newLineLog(), err: newLineLog(), done: make(chan struct{})}
	j.cmd = exec.Command(u.bin, "join", room)
	j.cmd.Env = u.env()
	j.cmd.Stdout, j.cmd.Stderr = j.out, j.err
	stdin, err := j.cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	j.stdin = stdin
	if err := j.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { _ = j.cmd.Wait(); close(j.done) }()
	tb.Cleanup(func() {
		j.stdin.Close()
		select {
		case <-j.done:
		case <-time.After(5 * time.Second):
			_ = j.cmd.Process.Kill()
			<-j.done
		}
		if tb.Failed() {
			tb.Logf("chat join %s stdout:\n%s\nstderr:\n%s", room, j.out, j.err)
		}
	})
	return j
}

func (j *e2eJoin) typeLine(tb testing.TB, line string) {
	tb.Helper()
	if _, err := io.WriteString(j.stdin, line+"\n"); err != nil {
		tb.Fatalf("typing into join: %v", err)
	}
}

// exit closes stdin and returns the exit status.
func (j *e2eJoin) exit(tb testing.TB) int {
	tb.Helper()
	j.stdin.Close()
	select {
	case <-j.done:
		return j.cmd.ProcessState.ExitCode()
	case <-time.After(10 * time.Second):
		tb.Fatalf("join still running 10 s after its stdin closed")
		return -1
	}
}

var streamID = regexp.MustCompile(`^\d+-\d+$`)

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	bins := mustBuild(t)
	srv := mustStartChatd(t, bins.chatd, chatdtest.FreeAddr(t), t.TempDir())
	alice := newUser(t, bins, srv.URL)
	bob := newUser(t, bins, srv.URL)
	alice.signup(t, "alice")
	bob.signup(t, "bob")

	st, err := os.Stat(filepath.Join(alice.configDir, tokenFileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token.json: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	if out := alice.must(t, "", "whoami"); out != "alice on "+srv.URL+"\n" {
		t.Errorf("whoami printed %q", out)
	}

	id := strings.TrimSpace(alice.must(t, "", "send", "general", "hello"))
	if !streamID.MatchString(id) {
		t.Fatalf("send printed %q, want a stream id", id)
	}
	msgs := bob.history(t, "general")
	if len(msgs) == 0 || msgs[len(msgs)-1].ID != id || msgs[len(msgs)-1].Text != "hello" || msgs[len(msgs)-1].User != "alice" {
		t.Fatalf("history --json ends with %+v, want alice's hello %s", msgs, id)
	}
	if out := bob.must(t, "", "history", "general"); !strings.HasSuffix(out, "  alice: hello\n") {
		t.Errorf("history printed %q", out)
	}
	rooms := bob.must(t, "", "rooms")
	for _, want := range []string{"NAME", "general", "support", "tech"} {
		if !strings.Contains(rooms, want) {
			t.Errorf("rooms lacks %q:\n%s", want, rooms)
		}
	}
	if out := alice.must(t, "", "dm", "Bob"); out != "dm:alice:bob\n" {
		t.Errorf("dm printed %q", out)
	}

	// Errors come out as "chat: <message>" with status 1: a sentence, not
	// the code again (issue 18: "…: invalid (invalid)").
	for _, tc := range []struct {
		stdin  string
		args   []string
		stderr string
	}{
		{"", []string{"send", "no-such-room", "hi"}, "chat: no room named no-such-room\n"},
		{"wrong password\n", []string{"login", "alice"}, ""},
		{"correct horse battery\n", []string{"register", "ALICE"}, ""},
		{"short\n", []string{"register", "erin"}, "chat: password must be 8 to 256 characters\n"},
		{"", []string{"dm", "nosuchuser"}, "chat: no user named nosuchuser\n"},
	} {
		res := alice.run(t, tc.stdin, tc.args...)
		if res.code != 1 || (tc.stderr != "" && res.stderr != tc.stderr) {
			t.Errorf("%q: %+v, want exit 1 and %q", tc.args, res, tc.stderr)
		}
		for _, code := range []string{"not_found", "invalid", "invalid_credentials", "username_taken"} {
			if strings.Contains(res.stderr, code) {
				t.Errorf("%q: stderr %q names the code %s", tc.args, res.stderr, code)
			}
		}
	}

	// Interactive: the tail, live messages both ways, presence.
	j := alice.join(t, "general")
	j.out.waitFor(t, "* joined general; online: alice", waitLong)
	j.out.waitFor(t, "  alice: hello", waitLong)

	bob.must(t, "", "send", "general", "hi", "from", "bob")
	j.out.waitFor(t, "  bob: hi from bob", waitLong)

	bj := bob.join(t, "general")
	bj.out.waitFor(t, "* joined general", waitLong)
	j.out.waitFor(t, "* bob is online", waitLong)

	j.typeLine(t, "typed in join")
	j.out.waitFor(t, "  alice: typed in join", waitLong)
	bj.out.waitFor(t, "  alice: typed in join", waitLong)
	storetest.CheckFor(t, waitLong, func() error {
		if !hasText(bob.history(t, "general"), "typed in join") {
			return errors.New("the line typed into join is not in history")
		}
		return nil
	})

	if code := bj.exit(t); code != 0 {
		t.Errorf("bob's join exited %d:\n%s", code, bj.err)
	}
	j.out.waitFor(t, "* bob went offline", waitLong)
	if code := j.exit(t); code != 0 {
		t.Errorf("alice's join exited %d:\n%s", code, j.err)
	}
	for _, text := range []string{"alice: hello", "bob: hi from bob", "alice: typed in join"} {
		if n := j.out.count(text); n != 1 {
			t.Errorf("join showed %q %d times:\n%s", text, n, j.out)
		}
	}

	alice.must(t, "", "logout")
	if res := alice.run(t, "", "rooms"); res.code != 1 || res.stderr != "chat: not logged in; run chat login USER\n" {
		t.Errorf("rooms after logout: %+v", res)
	}
}

func TestEndToEndServerRestart(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("needs redis-server on PATH: without it chatd keeps history in memory only")
	}
	bins := mustBuild(t)
	addr, data := chatdtest.FreeAddr(t), t.TempDir()
	srv := mustStartChatd(t, bins.chatd, addr, data)
	alice := newUser(t, bins, srv.URL)
	bob := newUser(t, bins, srv.URL)
	alice.signup(t, "alice")
	bob.signup(t, "bob")

	j := alice.join(t, "general")
	j.out.waitFor(t, "* joined general", waitLong)
	bob.must(t, "", "send", "general", "before restart")
	j.out.waitFor(t, "bob: before restart", waitLong)

	srv.Stop(t)
	j.err.waitFor(t, "* reconnecting…", waitLong)
	j.typeLine(t, "typed while down")

	srv.Start(t) // on the same address, with the same data
	j.err.waitFor(t, "* reconnected", 20*time.Second)
	j.out.waitFor(t, "alice: typed while down", waitLong)
	bob.must(t, "", "send", "general", "after restart")
	j.out.waitFor(t, "bob: after restart", waitLong)
	if code := j.exit(t); code != 0 {
		t.Errorf("join exited %d", code)
	}
	for _, text := range []string{"bob: before restart", "alice: typed while down", "bob: after restart"} {
		if n := j.out.count(text); n != 1 {
			t.Errorf("join showed %q %d times:\n%s", text, n, j.out)
		}
	}
	msgs := bob.history(t, "general")
	var texts []string
	for _, m := range msgs {
		texts = append(texts, m.Text)
	}
	if strings.Join(texts, "|") != "before restart|typed while down|after restart" {
		t.Errorf("history after the restart: %q", texts)
	}
}

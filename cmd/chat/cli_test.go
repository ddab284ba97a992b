package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redstream/chat/cmd/internal/chatdtest"
	"github.com/redstream/chat/transport/wire"
)

func TestParseArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		args      []string
		stopAfter int
		wantPos   []string
		wantLimit int
		wantJSON  bool
		wantErr   bool
	}{
		{name: "flags after the argument", args: []string{"general", "--limit", "10", "--json"}, wantPos: []string{"general"}, wantLimit: 10, wantJSON: true},
		{name: "flags before the argument", args: []string{"-limit=5", "general"}, wantPos: []string{"general"}, wantLimit: 5},
		{name: "flags between arguments", args: []string{"a", "--json", "b"}, wantPos: []string{"a", "b"}, wantJSON: true},
		{name: "double dash ends flags", args: []string{"a", "--", "--json"}, wantPos: []string{"a", "--json"}},
		{name: "double dash after the room is dropped", args: []string{"general", "--", "--json"}, stopAfter: 1, wantPos: []string{"general", "--json"}},
		{name: "stop after the room", args: []string{"general", "--json", "hi"}, stopAfter: 1, wantPos: []string{"general", "--json", "hi"}},
		{name: "flags before the room still parsed", args: []string{"--json", "general", "-x"}, stopAfter: 1, wantPos: []string{"general", "-x"}, wantJSON: true},
		{name: "unknown flag", args: []string{"general", "--nope"}, wantErr: true},
		{name: "missing value", args: []string{"general", "--limit"}, wantErr: true},
		{name: "bad value", args: []string{"general", "--limit", "ten"}, wantErr: true},
		{name: "nothing", args: nil, wantPos: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			limit := fs.Int("limit", 0, "")
			js := fs.Bool("json", false, "")
			pos, err := parseArgs(fs, tt.args, tt.stopAfter)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if !reflect.DeepEqual(pos, tt.wantPos) || *limit != tt.wantLimit || *js != tt.wantJSON {
				t.Errorf("got pos=%q limit=%d json=%v, want pos=%q limit=%d json=%v",
					pos, *limit, *js, tt.wantPos, tt.wantLimit, tt.wantJSON)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	env := map[string]string{"CHAT_CONFIG_DIR": t.TempDir()}
	tests := []struct {
		args     []string
		code     int
		inStderr string
	}{
		{nil, exitUsage, "no command given"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"--bogus", "rooms"}, exitUsage, "flag provided but not defined"},
		{[]string{"history"}, exitUsage, "usage: chat history ROOM"},
		{[]string{"history", "a", "b"}, exitUsage, `unexpected argument "b"`},
		{[]string{"history", "general", "--limit", "x"}, exitUsage, "invalid value"},
		{[]string{"history", "general", "--before", "1-0", "--after", "2-0"}, exitUsage, "exclude each other"},
		{[]string{"history", "general", "--limit", "0"}, exitUsage, "--limit must be a positive number"},
		{[]string{"send", "general"}, exitUsage, "usage: chat send ROOM TEXT..."},
		{[]string{"send", "general", "  "}, exitUsage, "empty message"},
		{[]string{"login"}, exitUsage, "usage: chat login USER"},
		{[]string{"register", "a", "b"}, exitUsage, "unexpected argument"},
		{[]string{"join"}, exitUsage, "usage: chat join ROOM"},
		{[]string{"rooms", "extra"}, exitUsage, "unexpected argument"},
		{[]string{"--server", "ftp://x", "login", "alice"}, exitUsage, "scheme must be http or https"},
		// The new commands check their arguments before the login.
		{[]string{"edit", "general", "1-0", " "}, exitUsage, "empty text"},
		{[]string{"edit", "general", "last", "x"}, exitUsage, `"last" is not a message id`},
		{[]string{"reply", "general", "1-0"}, exitUsage, "usage: chat reply ROOM ID TEXT..."},
		{[]string{"react", "general", "1-0", "a\tb"}, exitUsage, "may not hold whitespace"},
		{[]string{"react", "general", "1-0", strings.Repeat("x", 33)}, exitUsage, "1 to 32 bytes"},
		{[]string{"thread", "general", "1-0", "--after", "x"}, exitUsage, "is not a message id"},
		{[]string{"role", "team", "bob", "admin"}, exitUsage, `"admin" is not a role`},
		{[]string{"ban", "team", "bob", "--for", "1y"}, exitUsage, "want a duration from 1s to 365d"},
		{[]string{"mute", "team", "bob", "--for"}, exitUsage, "flag needs an argument"},
		{[]string{"create", "a", "b"}, exitUsage, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			res := runChat(t, env, "password1\n", tt.args...)
			if res.code != tt.code || !strings.Contains(res.stderr, tt.inStderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", res.code, res.stderr, tt.code, tt.inStderr)
			}
			if res.stdout != "" {
				t.Errorf("stdout %q, want nothing", res.stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"history", "-h"}} {
		res := runChat(t, nil, "", args...)
		if res.code != exitOK || !strings.Contains(res.stdout, "usage: chat") {
			t.Errorf("%q: exit %d, stdout %q", args, res.code, res.stdout)
		}
	}
}

func TestLoginSavesPrivateTokenFile(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	dir := filepath.Join(t.TempDir(), "nested", "chat")
	env := map[string]string{"CHAT_SERVER": f.URL() + "/", "CHAT_CONFIG_DIR": dir}

	res := runChat(t, env, "password1\r\n", "login", "Alice")
	if res.code != exitOK || !strings.HasPrefix(res.stdout, "logged in as alice (token expires ") {
		t.Fatalf("login: exit %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	st, err := os.Stat(filepath.Join(dir, tokenFileName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("token.json mode %v, want 0600", st.Mode().Perm())
	}
	if dst, err := os.Stat(dir); err != nil || dst.Mode().Perm() != 0o700 {
		t.Errorf("config dir: %v, mode %v, want 0700", err, dst.Mode().Perm())
	}
	data, err := os.ReadFile(filepath.Join(dir, tokenFileName))
	if err != nil {
		t.Fatal(err)
	}
	var saved map[string]string
	if err := json.Unmarshal(data, &saved); err != nil {
		t.Fatal(err)
	}
	want := []string{"server", "username", "token", "expires_at"}
	for _, k := range want {
		if saved[k] == "" {
			t.Errorf("token.json lacks %q: %s", k, data)
		}
	}
	if saved["server"] != f.URL() || saved["username"] != "alice" || saved["token"] != "tok-alice" {
		t.Errorf("token.json = %s", data)
	}

	// A file left with loose permissions is replaced by a private one.
	if err := os.Chmod(filepath.Join(dir, tokenFileName), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := runChat(t, env, "password1\n", "login", "alice"); res.code != exitOK {
		t.Fatalf("second login: %+v", res)
	}
	if st, _ := os.Stat(filepath.Join(dir, tokenFileName)); st.Mode().Perm() != 0o600 {
		t.Errorf("after re-login token.json mode %v, want 0600", st.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("config dir holds %d entries, want only token.json", len(entries))
	}

	// whoami uses the saved token; the server comes from the file when
	// neither --server nor CHAT_SERVER is given.
	res = runChat(t, map[string]string{"CHAT_CONFIG_DIR": dir}, "", "whoami")
	if res.code != exitOK || res.stdout != "alice on "+f.URL()+"\n" {
		t.Errorf("whoami: %+v", res)
	}
	res = runChat(t, env, "", "whoami", "--json")
	if res.code != exitOK || strings.TrimSpace(res.stdout) != `{"username":"alice"}` {
		t.Errorf("whoami --json: %+v", res)
	}
}

func TestRegister(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	env := f.env(t, "")
	res := runChat(t, env, "secret pass\n", "register", "Carol")
	if res.code != exitOK || res.stdout != "registered carol\n" {
		t.Fatalf("register: %+v", res)
	}
	// The password is the whole line, spaces included, without the newline.
	if res := runChat(t, env, "secret pass", "login", "carol"); res.code != exitOK {
		t.Errorf("login with the registered password: %+v", res)
	}
	res = runChat(t, env, "secret pass\n", "register", "carol")
	if res.code != exitError || res.stderr != "chat: username is taken\n" {
		t.Errorf("second register: %+v", res)
	}
	res = runChat(t, env, "", "register", "dave")
	if res.code != exitError || !strings.Contains(res.stderr, "no password") {
		t.Errorf("register without a password: %+v", res)
	}
}

func TestErrorFormatting(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	env := f.env(t, "alice")
	f.set(func(f *fakeServer) {
		f.restError["GET /api/rooms/tech/messages"] = fakeError{403, "forbidden", "not your room"}
		f.restError["POST /api/dms"] = fakeError{502, "", ""}
	})
	tests := []struct {
		args   []string
		stderr string
	}{
		{[]string{"history", "nope"}, "chat: no such room\n"},
		{[]string{"history", "tech"}, "chat: not your room\n"},
		{[]string{"dm", "zed"}, "chat: the server answered 502 Bad Gateway\n"}, // no code in the body
		{[]string{"send", "nope", "hi"}, "chat: no such room\n"},
	}
	for _, tt := range tests {
		res := runChat(t, env, "", tt.args...)
		want := tt.stderr
		if res.code != exitError || res.stderr != want || res.stdout != "" {
			t.Errorf("%q: exit %d stdout %q stderr %q; want exit 1 and stderr %q", tt.args, res.code, res.stdout, res.stderr, want)
		}
	}

	res := runChat(t, env, "wrong-password\n", "login", "alice")
	if res.code != exitError || res.stderr != "chat: invalid username or password\n" {
		t.Errorf("bad login: %+v", res)
	}

	// A revoked token: the server's message, then a hint.
	f.set(func(f *fakeServer) { delete(f.tokens, "tok-alice") })
	res = runChat(t, env, "", "rooms")
	if res.code != exitError || !strings.HasPrefix(res.stderr, "chat: missing or invalid token\n") ||
		!strings.Contains(res.stderr, "chat login") {
		t.Errorf("revoked token: %+v", res)
	}
}

func TestNotLoggedIn(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	env := f.env(t, "")
	for _, args := range [][]string{{"rooms"}, {"whoami"}, {"history", "general"}, {"send", "general", "hi"}, {"dm", "bob"}, {"join", "general"}} {
		res := runChat(t, env, "", args...)
		if res.code != exitError || res.stderr != "chat: not logged in; run chat login USER\n" {
			t.Errorf("%q: %+v", args, res)
		}
	}

	// A token for one server is never sent to another.
	env = f.env(t, "alice")
	env["CHAT_SERVER"] = "http://127.0.0.1:1"
	res := runChat(t, env, "", "rooms")
	if res.code != exitError || !strings.Contains(res.stderr, "not logged in to http://127.0.0.1:1") {
		t.Errorf("other server: %+v", res)
	}

	// An expired saved login is reported without asking the server.
	dir := t.TempDir()
	if err := saveLogin(dir, &savedLogin{Server: f.URL(), Username: "alice", Token: "tok-alice", ExpiresAt: "2001-01-01T00:00:00Z"}); err != nil {
		t.Fatal(err)
	}
	res = runChat(t, map[string]string{"CHAT_CONFIG_DIR": dir}, "", "rooms")
	if res.code != exitError || !strings.Contains(res.stderr, "expired; run chat login") {
		t.Errorf("expired: %+v", res)
	}
}

func TestServerUnreachable(t *testing.T) {
	t.Parallel()
	addr := chatdtest.FreeAddr(t)
	server := "http://" + addr
	dir := t.TempDir()
	if err := saveLogin(dir, &savedLogin{Server: server, Username: "alice", Token: "t", ExpiresAt: time.Now().Add(time.Hour).Format(time.RFC3339)}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CHAT_CONFIG_DIR": dir, "CHAT_SERVER": addr} // no scheme: http is assumed
	for _, args := range [][]string{{"login", "alice"}, {"rooms"}, {"join", "general"}} {
		res := runChat(t, env, "password1\n", args...)
		if res.code != exitError || !strings.HasPrefix(res.stderr, "chat: cannot reach the server at "+server+": ") {
			t.Errorf("%q: %+v", args, res)
		}
	}
}

func TestRooms(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	env := f.env(t, "alice")
	m := f.post("general", "bob", "hi")
	res := runChat(t, env, "", "rooms")
	if res.code != exitOK {
		t.Fatalf("rooms: %+v", res)
	}
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	// ROLE is "-" where alice is no member; the real server's roles,
	// mentions and topics are in TestEndToEndRooms.
	want := [][]string{
		{"NAME", "KIND", "ROLE", "UNREAD", "MENTIONS", "LAST_ID", "TOPIC"},
		{"dm:alice:bob", "direct", "-", "0", "0", "0-0"},
		{"general", "channel", "-", "1", "0", m.ID},
		{"support", "channel", "-", "0", "0", "0-0"},
	}
	if len(lines) != len(want) {
		t.Fatalf("rooms printed %q", res.stdout)
	}
	for i, line := range lines {
		if got := strings.Fields(line); !reflect.DeepEqual(got, want[i]) {
			t.Errorf("line %d = %q, want fields %q", i, line, want[i])
		}
	}
	// Columns line up.
	if strings.Index(lines[0], "KIND") != strings.Index(lines[2], "channel") {
		t.Errorf("columns not aligned:\n%s", res.stdout)
	}

	res = runChat(t, env, "", "--json", "rooms")
	var body struct {
		Rooms []RoomInfo `json:"rooms"`
	}
	if res.code != exitOK || json.Unmarshal([]byte(res.stdout), &body) != nil || len(body.Rooms) != 3 {
		t.Errorf("rooms --json: %+v", res)
	}
}

// TestRoomsPages: chat rooms lists every room, however many pages of
// GET /api/rooms that takes, and --json prints them as one answer.
func TestRoomsPages(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	env := f.env(t, "alice")
	f.set(func(f *fakeServer) {
		for i := range 1234 {
			f.rooms[fmt.Sprintf("room-%04d", i)] = nil
		}
	})
	res := runChat(t, env, "", "rooms")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.code != exitOK || len(lines) != 1+1234+3 || !strings.HasPrefix(lines[1], "dm:alice:bob ") ||
		!strings.HasPrefix(lines[1236], "room-1233 ") || !strings.HasPrefix(lines[1237], "support ") {
		t.Fatalf("rooms printed %d lines, from %q to %q (exit %d, stderr %q)", len(lines), lines[0], lines[len(lines)-1], res.code, res.stderr)
	}
	res = runChat(t, env, "", "rooms", "--json")
	var body struct {
		Rooms   []RoomInfo `json:"rooms"`
		HasMore *bool      `json:"has_more"`
	}
	if res.code != exitOK || json.Unmarshal([]byte(res.stdout), &body) != nil || len(body.Rooms) != 1237 || body.HasMore == nil || *body.HasMore {
		t.Errorf("rooms --json: %d rooms, has_more %v", len(body.Rooms), body.HasMore)
	}
	f.mu.Lock()
	var pages []string
	for _, r := range f.requests {
		if strings.HasPrefix(r, "GET /api/rooms?") {
			pages = append(pages, r)
		}
	}
	f.mu.Unlock()
	want := []string{"GET /api/rooms?limit=500", "GET /api/rooms?after=room-0497&limit=500", "GET /api/rooms?after=room-0997&limit=500"}
	if len(pages) != 6 || !reflect.DeepEqual(pages[:3], want) {
		t.Errorf("requests %q, want each listing as %q", pages, want)
	}
}

func TestHistory(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	env := f.env(t, "alice")
	var ids []string
	for i := range 12 {
		ids = append(ids, f.post("general", "bob", "message "+string(rune('a'+i))).ID)
	}
	f.post("general", "mallory", "evil\x1b[2Jtext\nsecond line")

	res := runChat(t, env, "", "history", "general", "--limit", "3", "--before", ids[11])
	if res.code != exitOK {
		t.Fatalf("history: %+v", res)
	}
	// Each message is led by its id, padded so that the times line up.
	var want strings.Builder
	for i := 8; i < 11; i++ {
		ts := time.UnixMilli(1700000000000 + int64(i+1)*1000).Local().Format("15:04:05")
		want.WriteString(fmt.Sprintf("%-16s  %s  bob: message %c\n", ids[i], ts, 'a'+i))
	}
	if res.stdout != want.String() {
		t.Errorf("stdout:\n%s\nwant:\n%s", res.stdout, want.String())
	}
	if res.stderr != "more: chat history general --before "+ids[8]+"\n" {
		t.Errorf("stderr = %q, want a --before hint", res.stderr)
	}

	res = runChat(t, env, "", "history", "general", "--after", ids[9], "--limit", "1")
	if res.code != exitOK || !strings.HasSuffix(res.stdout, "bob: message k\n") ||
		res.stderr != "more: chat history general --after "+ids[10]+"\n" {
		t.Errorf("history --after: %+v", res)
	}

	// Control characters are dropped and later lines indented.
	res = runChat(t, env, "", "history", "general", "--limit", "1")
	if res.code != exitOK || strings.Contains(res.stdout, "\x1b") ||
		!strings.HasSuffix(res.stdout, "mallory: evil[2Jtext\n"+strings.Repeat(" ", 16+2+8+2)+"second line\n") {
		t.Errorf("history of a hostile message: %q", res.stdout)
	}

	// --json prints the body as the server sent it.
	res = runChat(t, env, "", "history", "general", "--json", "--limit", "2")
	var page HistoryPage
	if res.code != exitOK || json.Unmarshal([]byte(res.stdout), &page) != nil ||
		len(page.Messages) != 2 || !page.HasMore || page.Messages[0].ID != ids[11] {
		t.Errorf("history --json: %+v", res)
	}

	// The room is escaped as one path segment.
	runChat(t, env, "", "history", "we ird/room")
	runChat(t, env, "", "history", "dm:alice:bob")
	f.mu.Lock()
	reqs := strings.Join(f.requests, "\n")
	f.mu.Unlock()
	for _, want := range []string{
		"GET /api/rooms/general/messages?before=" + ids[11] + "&limit=3",
		"GET /api/rooms/we%20ird%2Froom/messages?",
		"GET /api/rooms/dm:alice:bob/messages?",
	} {
		if !strings.Contains(reqs, want) {
			t.Errorf("no request %q in:\n%s", want, reqs)
		}
	}
}

func TestSendAndDM(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	env := f.env(t, "alice")
	res := runChat(t, env, "", "send", "general", "hello", "--json", "world")
	if res.code != exitOK || !strings.HasPrefix(res.stdout, "1700000000000-") || strings.Count(res.stdout, "\n") != 1 {
		t.Fatalf("send: %+v", res)
	}
	runChat(t, env, "", "send", "general", "again")
	if got := f.texts("general"); !reflect.DeepEqual(got, []string{"hello --json world", "again"}) {
		t.Errorf("stored %q", got)
	}
	f.mu.Lock()
	var clientIDs []string
	for _, m := range f.rooms["general"] {
		clientIDs = append(clientIDs, m.ClientID)
	}
	f.mu.Unlock()
	if clientIDs[0] == "" || clientIDs[0] == clientIDs[1] {
		t.Errorf("client ids %q: want random and distinct", clientIDs)
	}

	res = runChat(t, env, "", "dm", "Bob")
	if res.code != exitOK || res.stdout != "dm:alice:bob\n" {
		t.Errorf("dm: %+v", res)
	}
	res = runChat(t, env, "", "dm", "nobody")
	if res.code != exitError || res.stderr != "chat: no such user\n" {
		t.Errorf("dm to nobody: %+v", res)
	}
}

func TestLogout(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	env := f.env(t, "alice")
	res := runChat(t, env, "", "logout")
	if res.code != exitOK || res.stdout != "logged out\n" {
		t.Fatalf("logout: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(env["CHAT_CONFIG_DIR"], tokenFileName)); !os.IsNotExist(err) {
		t.Errorf("token.json still there: %v", err)
	}
	f.mu.Lock()
	_, still := f.tokens["tok-alice"]
	f.mu.Unlock()
	if still {
		t.Error("the server was not told")
	}
	// A token the server already refuses is forgotten too.
	env = f.env(t, "alice")
	res = runChat(t, env, "", "logout")
	if res.code != exitOK {
		t.Errorf("logout with a dead token: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(env["CHAT_CONFIG_DIR"], tokenFileName)); !os.IsNotExist(err) {
		t.Errorf("token.json still there: %v", err)
	}
}

func TestNewerID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want bool
	}{
		{"1-0", "", true},
		{"", "", false},
		{"1-1", "1-0", true},
		{"1-0", "1-0", false},
		{"1-10", "1-9", true}, // numeric, not lexical
		{"10-0", "9-5", true},
		{"9-5", "10-0", false},
		{"5", "4-9", true},
	}
	for _, tt := range tests {
		if got := newerID(tt.a, tt.b); got != tt.want {
			t.Errorf("newerID(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestFormatMessage(t *testing.T) {
	t.Parallel()
	m := wire.Message{ID: "1-0", User: "bob", Text: "a\r\nb\x07", TS: 1700000000000}
	ts := time.UnixMilli(m.TS).Local().Format("15:04:05")
	if got, want := formatMessage(m, false), ts+"  bob: a\n          b"; got != want {
		t.Errorf("plain: %q, want %q", got, want)
	}
	if got := formatMessage(m, true); !strings.Contains(got, ansiBold+"bob"+ansiReset) {
		t.Errorf("color: %q", got)
	}
}

// TestRenderMessage: a message in its current state, a reply, an action
// and a mention of the reader, as history, thread and chat join show them.
func TestRenderMessage(t *testing.T) {
	t.Parallel()
	ts := time.UnixMilli(1700000000000).Local().Format("15:04:05")
	pad := strings.Repeat(" ", len("1-0  ")+len(ts)+2)
	many := map[string][]string{"👍": {"a", "b", "c", "d", "e"}, "🎉": {"z"}, "👀": {"y"}, "x": {}}
	roots := func(id string) string {
		if id == "1-0" {
			return `bob "hi"`
		}
		return ""
	}
	for _, tc := range []struct {
		name string
		m    wire.Message
		v    view
		want string
	}{
		{"edited, reactions, replies", wire.Message{ID: "1-0", User: "bob", Text: "hi\nthere", TS: 1700000000000, EditedTS: 1, Reactions: many, ReplyCount: 2},
			view{lead: "1-0  ", state: true, threadHint: func(id string) string { return "chat thread r " + id }},
			"1-0  " + ts + "  bob: hi\n" + pad + "there (edited)\n" + pad + "👍 5 (a, b, c, +2)  🎉 1 (z)  👀 1 (y)\n" + pad + "↳ 2 replies (chat thread r 1-0)"},
		{"as sent, the state is not shown", wire.Message{ID: "1-0", User: "bob", Text: "hi", TS: 1700000000000, EditedTS: 1, ReplyCount: 1},
			view{}, ts + "  bob: hi"},
		{"deleted", wire.Message{ID: "1-0", User: "bob", TS: 1700000000000, Deleted: true, EditedTS: 1, Reactions: many, ReplyCount: 1},
			view{state: true}, ts + "  bob: (deleted)\n" + pad[5:] + "↳ 1 reply"},
		{"a reply to a known message", wire.Message{ID: "2-0", User: "carol", Text: "yes", TS: 1700000000000, ReplyTo: "1-0"},
			view{root: roots}, ts + `  carol ↳ bob "hi": yes`},
		{"a reply to an unknown one", wire.Message{ID: "3-0", User: "carol", Text: "/me nods", TS: 1700000000000, ReplyTo: "9-0"},
			view{root: roots}, ts + "  * carol nods"},
		{"a reply, no root known", wire.Message{ID: "3-0", User: "carol", Text: "ok", TS: 1700000000000, ReplyTo: "9-0"},
			view{root: roots}, ts + "  carol ↳ 9-0: ok"},
		{"a mention of the reader stands out", wire.Message{ID: "4-0", User: "bob", Text: "@alice hi", TS: 1700000000000, Mentions: []string{"alice"}},
			view{color: true, self: "alice"}, ansiDim + ts + ansiReset + "  " + ansiBold + "bob" + ansiReset + ": " + ansiMention + "@alice hi" + ansiReset},
		{"someone else's does not", wire.Message{ID: "4-0", User: "bob", Text: "@carol hi", TS: 1700000000000, Mentions: []string{"carol"}},
			view{color: true, self: "alice"}, ansiDim + ts + ansiReset + "  " + ansiBold + "bob" + ansiReset + ": @carol hi"},
	} {
		if got := renderMessage(tc.m, tc.v); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
	for text, want := range map[string]string{"short": `"short"`, "a\nb": `"a…"`, "exactly twenty-four char": `"exactly twenty-four char"`,
		"twenty-five characters!!": `"twenty-five characters!!"`, "this one is longer than that": `"this one is longer than…"`, "\x1b[2Jx": `"[2Jx"`} {
		if got := quote(text); got != want {
			t.Errorf("quote(%q) = %s, want %s", text, got, want)
		}
	}
}

func TestParseFor(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"1s": time.Second, "10m": 10 * time.Minute, "7d": 7 * 24 * time.Hour,
		"1d12h": 36 * time.Hour, "1.5s": 2 * time.Second, "365d": 365 * 24 * time.Hour, "0s": 0, "366d": 0, "1y": 0, "-1h": 0, "d": 0, "": 0, "1d-1h": 0} {
		got, err := parseFor(in)
		if got != want || (err != nil) != (want == 0) {
			t.Errorf("parseFor(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestNormalizeServer(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"http://localhost:8080", "http://localhost:8080"},
		{"HTTP://Example.COM/", "http://example.com"},
		{"localhost:9000", "http://localhost:9000"},
		{"https://chat.example/prefix/", "https://chat.example/prefix"},
		{"ftp://x", ""},
		{"http://", ""},
		{"http://x/?q=1", ""},
	}
	for _, tt := range tests {
		got, err := normalizeServer(tt.in)
		if (err != nil) != (tt.want == "") || got != tt.want {
			t.Errorf("normalizeServer(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if got := webSocketURL("https://chat.example/prefix"); got != "wss://chat.example/prefix/ws" {
		t.Errorf("webSocketURL = %q", got)
	}
	if got := webSocketURL("http://127.0.0.1:1"); got != "ws://127.0.0.1:1/ws" {
		t.Errorf("webSocketURL = %q", got)
	}
}

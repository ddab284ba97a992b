package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/redstream/chat/transport/wire"
)

const waitLong = 10 * time.Second

func TestJoinShowsTailThenLiveAndSends(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	for i := 1; i <= 25; i++ {
		f.post("general", "bob", fmt.Sprintf("old %d", i))
	}
	j := mustStartJoin(t, f.env(t, "alice"), "general")
	j.out.waitFor(t, "* joined general; online: alice", waitLong)
	j.out.waitFor(t, "bob: old 25", waitLong)
	if j.out.count("bob: old 5") != 0 || j.out.count("bob: old 6") != 1 {
		t.Errorf("want exactly the last 20 messages:\n%s", j.out)
	}
	lines := j.out.Lines()
	if !strings.HasPrefix(lines[0], "* joined general") || !strings.HasSuffix(lines[1], "bob: old 6") {
		t.Errorf("want the joined line, then the tail oldest first:\n%s", j.out)
	}

	f.post("general", "bob", "live one")
	j.out.waitFor(t, "bob: live one", waitLong)

	j.typeLine(t, "hello from alice")
	j.typeLine(t, "")
	j.out.waitFor(t, "alice: hello from alice", waitLong)
	j.stdin.Close()
	if code := j.wait(t, waitLong); code != exitOK {
		t.Errorf("exit %d, stderr %s", code, j.err)
	}
	if got := f.texts("general"); got[len(got)-1] != "hello from alice" || len(got) != 27 {
		t.Errorf("stored %q", got[25:])
	}
	if n := j.out.count("hello from alice"); n != 1 {
		t.Errorf("own message shown %d times", n)
	}
	f.mu.Lock()
	reads := append([]wire.ClientFrame(nil), f.reads...)
	newest := f.rooms["general"][26].ID
	f.mu.Unlock()
	if len(reads) == 0 || reads[len(reads)-1].ID != newest {
		t.Errorf("read frames %+v: want the newest shown id reported before leaving", reads)
	}
	if j.err.String() != "\n" {
		t.Errorf("stderr: %q", j.err)
	}
}

func TestJoinReconnectsWithoutLossOrRepeat(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	f.post("general", "bob", "before")
	j := mustStartJoin(t, f.env(t, "alice"), "general")
	j.out.waitFor(t, "bob: before", waitLong)
	last := f.post("general", "bob", "live before the outage")
	j.out.waitFor(t, "live before the outage", waitLong)

	// The server goes away (1001) and refuses sockets for a while.
	f.set(func(f *fakeServer) { f.wsDown = true })
	f.kick(websocket.StatusGoingAway)
	j.err.waitFor(t, "* reconnecting…", waitLong)
	f.post("general", "bob", "sent during the outage")
	j.typeLine(t, "typed during the outage")
	time.Sleep(600 * time.Millisecond) // a few failed attempts
	f.set(func(f *fakeServer) { f.wsDown = false })

	j.out.waitFor(t, "bob: sent during the outage", waitLong)
	j.out.waitFor(t, "alice: typed during the outage", waitLong)
	j.err.waitFor(t, "* reconnected", waitLong)

	joins := f.joinFrames()
	if len(joins) != 2 || joins[0].Since != "" || joins[1].Since != last.ID {
		t.Errorf("join frames %+v: want a first join without since, then since=%s", joins, last.ID)
	}
	for _, text := range []string{"bob: before", "live before the outage", "sent during the outage", "typed during the outage"} {
		if n := j.out.count(text); n != 1 {
			t.Errorf("%q shown %d times:\n%s", text, n, j.out)
		}
	}
	want := []string{"before", "live before the outage", "sent during the outage", "typed during the outage"}
	if got := f.texts("general"); !reflect.DeepEqual(got, want) {
		t.Errorf("stored %q, want %q", got, want)
	}

	// A second drop, from a 1013 this time, is handled the same way.
	f.kick(websocket.StatusTryAgainLater)
	f.post("general", "bob", "after 1013")
	j.out.waitFor(t, "bob: after 1013", waitLong)
	j.stdin.Close()
	if code := j.wait(t, waitLong); code != exitOK {
		t.Errorf("exit %d", code)
	}
}

func TestJoinResendsWhenTheAckIsLost(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	j := mustStartJoin(t, f.env(t, "alice"), "--verbose", "general")
	j.out.waitFor(t, "* joined general", waitLong)
	f.set(func(f *fakeServer) { f.loseAckOnce = true })
	j.typeLine(t, "only once please")
	j.err.waitFor(t, "* reconnected", waitLong)
	j.out.waitFor(t, "✓", waitLong)
	j.stdin.Close()
	if code := j.wait(t, waitLong); code != exitOK {
		t.Errorf("exit %d", code)
	}
	if got := f.texts("general"); !reflect.DeepEqual(got, []string{"only once please"}) {
		t.Errorf("stored %q: the retry must reuse the client_id", got)
	}
	if n := j.out.count("alice: only once please"); n != 1 {
		t.Errorf("shown %d times:\n%s", n, j.out)
	}
}

func TestJoinEndsWhenTheTokenIsRefused(t *testing.T) {
	t.Parallel()
	t.Run("close 1008", func(t *testing.T) {
		t.Parallel()
		f := newFakeServer(t)
		j := mustStartJoin(t, f.env(t, "alice"), "general")
		j.out.waitFor(t, "* joined general", waitLong)
		f.kick(websocket.StatusPolicyViolation)
		if code := j.wait(t, waitLong); code != exitError {
			t.Errorf("exit %d, want 1", code)
		}
		if got := j.err.String(); got != "chat: token expired or revoked; run chat login\n" {
			t.Errorf("stderr %q", got)
		}
	})
	t.Run("401 on reconnect", func(t *testing.T) {
		t.Parallel()
		f := newFakeServer(t)
		j := mustStartJoin(t, f.env(t, "alice"), "general")
		j.out.waitFor(t, "* joined general", waitLong)
		f.set(func(f *fakeServer) { delete(f.tokens, "tok-alice") })
		f.kick(websocket.StatusGoingAway)
		if code := j.wait(t, waitLong); code != exitError {
			t.Errorf("exit %d, want 1", code)
		}
		j.err.waitFor(t, "chat: token expired or revoked; run chat login", time.Second)
	})
	t.Run("401 at once", func(t *testing.T) {
		t.Parallel()
		f := newFakeServer(t)
		env := f.env(t, "alice")
		f.set(func(f *fakeServer) { delete(f.tokens, "tok-alice") })
		res := runChat(t, env, "", "join", "general")
		if res.code != exitError || res.stderr != "chat: token expired or revoked; run chat login\n" {
			t.Errorf("%+v", res)
		}
	})
}

func TestJoinUnknownRoom(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	res := runChat(t, f.env(t, "alice"), "", "join", "nope")
	if res.code != exitError || res.stderr != "chat: no such room\n" {
		t.Errorf("%+v", res)
	}
}

func TestJoinPresenceTypingAndErrors(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	j := mustStartJoin(t, f.env(t, "alice"), "general")
	j.out.waitFor(t, "* joined general", waitLong)

	f.broadcast("general", wire.Presence{Type: wire.TypePresence, Room: "general", User: "alice", State: "online"})
	f.broadcast("general", wire.Presence{Type: wire.TypePresence, Room: "general", User: "bob", State: "online"})
	for range 3 {
		f.broadcast("general", wire.Typing{Type: wire.TypeTyping, Room: "general", User: "bob"})
	}
	f.broadcast("general", wire.Typing{Type: wire.TypeTyping, Room: "general", User: "carol"})
	f.broadcast("general", wire.Presence{Type: wire.TypePresence, Room: "general", User: "bob", State: "offline"})
	j.out.waitFor(t, "* bob went offline", waitLong)
	want := []string{"* bob is online", "* bob is typing…", "* carol is typing…", "* bob went offline"}
	if got := j.out.Lines()[1:]; !reflect.DeepEqual(got, want) {
		t.Errorf("lines %q, want %q (own presence hidden, typing once per 3 s)", got, want)
	}

	// A refused line is reported and not waited for at the end.
	j.typeLine(t, "ratelimit")
	j.out.waitFor(t, "! not sent: slow down: ratelimit", waitLong)
	j.typeLine(t, "/quit now")
	if code := j.wait(t, time.Second); code != exitOK {
		t.Errorf("exit %d, stderr %s", code, j.err)
	}
}

func TestJoinJSON(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	f.post("general", "bob", "old")
	j := mustStartJoin(t, f.env(t, "alice"), "general", "--json")
	j.out.waitFor(t, `"text":"old"`, waitLong)
	f.broadcast("general", wire.Typing{Type: wire.TypeTyping, Room: "general", User: "bob"})
	j.typeLine(t, "hi")
	j.out.waitFor(t, `"type":"ack"`, waitLong)
	j.out.waitFor(t, `"text":"hi"`, waitLong)
	j.stdin.Close()
	j.wait(t, waitLong)

	var types []string
	for _, line := range j.out.Lines() {
		var fr map[string]any
		if err := json.Unmarshal([]byte(line), &fr); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		types = append(types, fr["type"].(string))
	}
	if len(types) != 5 || types[0] != "joined" || types[1] != "message" || types[2] != "typing" {
		t.Errorf("frame types %q", types)
	}
}

func TestJoinDrainsThenGivesUp(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	j := mustStartJoin(t, f.env(t, "alice"), "general")
	j.out.waitFor(t, "* joined general", waitLong)
	f.set(func(f *fakeServer) { f.wsDown = true })
	f.kick(websocket.StatusGoingAway)
	j.err.waitFor(t, "* reconnecting…", waitLong)
	j.typeLine(t, "never delivered")
	start := time.Now()
	j.stdin.Close()
	if code := j.wait(t, waitLong); code != exitError {
		t.Errorf("exit %d, want 1", code)
	}
	if d := time.Since(start); d < 1500*time.Millisecond || d > 5*time.Second {
		t.Errorf("gave up after %v, want about 2 s", d)
	}
	j.err.waitFor(t, "chat: 1 line(s) not confirmed by the server", time.Second)
}

func TestJoinKeepalive(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	f.set(func(f *fakeServer) { f.noPong = true })
	out, errl := newLineLog(), newLineLog()
	s := newSession(&Client{Server: f.URL(), Token: "tok-alice"}, "general", "alice", out, errl,
		joinOptions{PingEvery: 40 * time.Millisecond, MinBackoff: 10 * time.Millisecond})
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	con := newPlainConsole(pr, out, errl)
	defer con.Close()
	go func() { done <- s.run(ctx, con) }()
	errl.waitFor(t, "* reconnecting…", waitLong) // a silent server is given up on
	errl.waitFor(t, "* reconnected", waitLong)
	cancel() // like Ctrl-C
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(waitLong):
		t.Fatal("run did not return after its context ended")
	}
	pw.Close()
	if joins := f.joinFrames(); len(joins) < 2 || joins[1].Since != "0-0" {
		t.Errorf("joins %+v: want a rejoin since 0-0 for an empty room", joins)
	}
}

// TestJoinSlashCommands: /help, /who, /me and /quit are commands, not
// messages (issue 18: /help and /who were posted to the room); an unknown
// one is refused and "//" sends a line that starts with a slash.
func TestJoinSlashCommands(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	j := mustStartJoin(t, f.env(t, "alice"), "general")
	j.out.waitFor(t, "* joined general; online: alice", waitLong)

	j.typeLine(t, "/help")
	j.out.waitFor(t, "*   /quit", waitLong)
	for _, want := range []string{"* commands:", "*   /help", "*   /who", "*   /me TEXT", "//text sends /text"} {
		if j.out.count(want) != 1 {
			t.Errorf("/help lacks %q:\n%s", want, j.out)
		}
	}

	f.broadcast("general", wire.Presence{Type: wire.TypePresence, Room: "general", User: "bob", State: "online"})
	f.broadcast("general", wire.Presence{Type: wire.TypePresence, Room: "general", User: "carol", State: "online"})
	f.broadcast("general", wire.Presence{Type: wire.TypePresence, Room: "general", User: "carol", State: "offline"})
	j.out.waitFor(t, "* carol went offline", waitLong)
	j.typeLine(t, "/who")
	j.out.waitFor(t, "* in general now (2): alice, bob", waitLong)

	j.typeLine(t, "/me waves")
	j.out.waitFor(t, "  * alice waves", waitLong)
	j.typeLine(t, "/nope")
	j.out.waitFor(t, "! unknown command /nope; /help lists them", waitLong)
	j.typeLine(t, "//etc/hosts is a file")
	j.out.waitFor(t, "alice: /etc/hosts is a file", waitLong)
	j.typeLine(t, "/me")
	j.out.waitFor(t, "! /me needs something to do", waitLong)

	j.typeLine(t, "/QUIT")
	if code := j.wait(t, waitLong); code != exitOK {
		t.Errorf("exit %d, stderr %s", code, j.err)
	}
	if got, want := f.texts("general"), []string{"/me waves", "/etc/hosts is a file"}; !reflect.DeepEqual(got, want) {
		t.Errorf("stored %q, want %q: commands must not be posted", got, want)
	}
}

func TestCompleteSlash(t *testing.T) {
	t.Parallel()
	for line, want := range map[string]string{"/h": "/help ", "/wh": "/who ", "/q": "/quit ", "/": "", "/x": "", "hi": "", "/who ": "",
		"/th": "/thread ", "/un": "/unreact ", "/ed": "/edit ", "/de": "/delete ", "/re": "", "/rep": "/reply ", "/rea": "/react "} {
		got, ok := completeSlash(line)
		if got != want || ok != (want != "") {
			t.Errorf("completeSlash(%q) = %q, %v; want %q", line, got, ok, want)
		}
	}
}

func TestHumanError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ code, msg, want string }{
		{"invalid", "password must be 8 to 256 characters: invalid", "password must be 8 to 256 characters"},
		{"not_found", "user nosuchuser: not found", "no user named nosuchuser"},
		{"not_found", `user "x y": not found`, `user "x y"`},
		{"not_found", "room nope: not found", "no room named nope"},
		{"forbidden", "room dm:a:b: forbidden", "you do not have access to dm:a:b"},
		{"rate_limited", "slow down", "slow down"},
		{"unavailable", "", "unavailable"},
		{"", "cannot reach the server", "cannot reach the server"},
	} {
		if got := humanError(tc.code, tc.msg); got != tc.want {
			t.Errorf("humanError(%q, %q) = %q, want %q", tc.code, tc.msg, got, tc.want)
		}
	}
}

// TestJoinEventsShownOnce: an edit, deletion or reaction shows once. A
// repeat of one shown (a replay after a reconnect) is not shown again,
// and neither is one that the history tail, being in its current state,
// already shows.
func TestJoinEventsShownOnce(t *testing.T) {
	t.Parallel()
	for _, asJSON := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", asJSON), func(t *testing.T) {
			t.Parallel()
			out, errl := newLineLog(), newLineLog()
			s := newSession(&Client{}, "general", "alice", out, errl, joinOptions{JSON: asJSON})
			s.show(wire.Message{ID: "10-0", Room: "general", User: "bob", Text: "fixed", TS: 10, EditedTS: 11,
				Reactions: map[string][]string{"👍": {"carol"}}}, nil, true)
			frame := func(v any) []byte { return wire.Encode(v) }
			edit := func(id, text string) []byte {
				return frame(wire.Edit{Type: wire.TypeEdit, Room: "general", ID: id, Target: "10-0", User: "bob", Text: text, TS: 20})
			}
			react := func(id, emoji string, on bool) []byte {
				return frame(wire.Reaction{Type: wire.TypeReaction, Room: "general", ID: id, Target: "10-0", User: "carol", Emoji: emoji, On: on, TS: 20})
			}
			for _, p := range [][]byte{
				edit("11-0", "fixed"),           // what the tail shows already
				react("12-0", "👍", true),        // likewise
				edit("13-0", "fixed again"),     // new
				edit("13-0", "fixed again"),     // a replay
				edit("9-0", "older than shown"), // a replay from before the tail
				react("14-0", "👍", false),       // new
				react("15-0", "🎉", true),        // new
				frame(wire.Delete{Type: wire.TypeDelete, Room: "general", ID: "16-0", Target: "10-0", User: "bob", TS: 20}),
				frame(wire.Delete{Type: wire.TypeDelete, Room: "general", ID: "17-0", Target: "10-0", User: "bob", TS: 20}),
				frame(wire.Edit{Type: wire.TypeEdit, Room: "other", ID: "18-0", Target: "1-0", User: "bob", Text: "x", TS: 20}),
				frame(wire.Reaction{Type: wire.TypeReaction, Room: "general", ID: "19-0", Target: "5-0", User: "bob", Emoji: "👀", On: true, TS: 20}),
			} {
				s.handle(p)
			}
			lines := out.Lines()
			if asJSON {
				var ids []string
				for _, l := range lines {
					var f struct{ ID string }
					if err := json.Unmarshal([]byte(l), &f); err != nil {
						t.Fatalf("line %q: %v", l, err)
					}
					ids = append(ids, f.ID)
				}
				if want := []string{"10-0", "11-0", "12-0", "13-0", "14-0", "15-0", "16-0", "17-0", "19-0"}; !reflect.DeepEqual(ids, want) {
					t.Errorf("frames printed: %q, want %q (each id once, in order)", ids, want)
				}
			} else {
				if lines[0] != time.UnixMilli(10).Local().Format("15:04:05")+"  bob: fixed (edited)" || !strings.HasSuffix(lines[1], "  👍 1 (carol)") {
					t.Errorf("the tail shows %q", lines[:2])
				}
				var got []string
				for _, l := range lines[2:] {
					_, ev, _ := strings.Cut(l, "  ")
					got = append(got, ev)
				}
				want := []string{
					`* bob edited "fixed": fixed again`,
					`* carol removed 👍 from bob's "fixed again"`,
					`* carol reacted 🎉 to bob's "fixed again"`,
					`* bob deleted their "fixed again"`,
					`* bob reacted 👀 to message 5-0`,
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("shown:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			}
			if s.newest != "19-0" {
				t.Errorf("newest = %s, want 19-0: a reconnect must resume after the last event", s.newest)
			}
		})
	}
}

// TestJoinResumesAfterEvents: the join after a reconnect starts after the
// newest event shown, not only the newest message, so that events are not
// replayed.
func TestJoinResumesAfterEvents(t *testing.T) {
	t.Parallel()
	f := newFakeServer(t)
	m := f.post("general", "bob", "typo")
	j := mustStartJoin(t, f.env(t, "alice"), "general")
	j.out.waitFor(t, "bob: typo", waitLong)
	f.broadcast("general", wire.Edit{Type: wire.TypeEdit, Room: "general", ID: "1800000000000-0", Target: m.ID, User: "bob", Text: "fixed", TS: 1800000000000})
	j.out.waitFor(t, `* bob edited "typo": fixed`, waitLong)
	f.kick(websocket.StatusGoingAway)
	j.err.waitFor(t, "* reconnected", waitLong)
	if joins := f.joinFrames(); len(joins) != 2 || joins[1].Since != "1800000000000-0" {
		t.Errorf("join frames %+v: want the second since the edit", joins)
	}
	j.stdin.Close()
	j.wait(t, waitLong)
}

// TestJoinRefs: slash commands name messages by ^N, by id, or by default
// the newest (one's own newest for /edit and /delete).
func TestJoinRefs(t *testing.T) {
	t.Parallel()
	s := newSession(&Client{}, "general", "alice", newLineLog(), newLineLog(), joinOptions{})
	for i, u := range []string{"alice", "bob", "alice", "bob"} {
		s.show(wire.Message{ID: fmt.Sprintf("%d-0", i+1), Room: "general", User: u, Text: "t", TS: 1}, nil, false)
	}
	s.seenByID["4-0"].Deleted = true
	for _, tc := range []struct {
		ref  string
		own  bool
		want string
		err  string
	}{
		{"", false, "3-0", ""}, // the newest that is not deleted
		{"", true, "3-0", ""},
		{"^", false, "4-0", ""}, // what the screen shows, deleted or not
		{"^2", true, "3-0", ""},
		{"^4", false, "1-0", ""},
		{"^5", false, "", "^5: only 4 message(s) shown"},
		{"1700000000000-3", false, "1700000000000-3", ""},
	} {
		got, err := s.resolve(tc.ref, tc.own)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("resolve(%q, %v) = %q, %v; want %q, %q", tc.ref, tc.own, got, err, tc.want, tc.err)
		}
	}
	for word, want := range map[string]bool{"^": true, "^3": true, "^0": false, "^x": false, "12-3": true, "12": false, "abc-1": false, "2": false} {
		if isRef(word) != want {
			t.Errorf("isRef(%q) = %v", word, !want)
		}
	}
	for args, want := range map[string][2]string{"^2 hi there": {"^2", "hi there"}, "hi there": {"", "hi there"}, "1-2  x": {"1-2", "x"}, "^": {"^", ""}} {
		if ref, rest := splitRef(args); ref != want[0] || rest != want[1] {
			t.Errorf("splitRef(%q) = %q, %q; want %q", args, ref, rest, want)
		}
	}
	empty := newSession(&Client{}, "general", "alice", newLineLog(), newLineLog(), joinOptions{})
	if _, err := empty.resolve("", true); err == nil {
		t.Error("resolve in an empty session: no error")
	}
}

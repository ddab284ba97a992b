package main

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"reflect"
	"testing"

	"github.com/redstream/chat/transport/web"
)

// btRequireChromium skips (or, with CHAT_REQUIRE_CHROMIUM, fails) a test
// on a machine without the browser.
func btRequireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(btChromium); err != nil {
		if os.Getenv("CHAT_REQUIRE_CHROMIUM") != "" {
			t.Fatalf("CHAT_REQUIRE_CHROMIUM is set but %s is missing: %v", btChromium, err)
		}
		t.Skipf("SKIPPED: %s not found (install the Debian chromium package): %v", btChromium, err)
	}
}

// TestBrowserClientText checks, in the browser's own JavaScript engine and
// locale (en-US), how the web client words and splits what it shows:
// times without a leading zero, channel names made from what people type,
// error messages without their code, links and mentions found in a text,
// and distinct avatar colours for the names people see side by side.
func TestBrowserClientText(t *testing.T) {
	btRequireChromium(t)
	srv := httptest.NewServer(web.Handler())
	t.Cleanup(srv.Close)
	b := newChromeUser(t, "helpers", "", 800, 600, t.TempDir())
	b.do("open the page", btNavigate(srv.URL+"/"))

	// Each case is a JS expression over the client's own modules and the
	// JSON it must produce.
	cases := []struct{ name, expr, want string }{
		{"a morning time", `u.formatTime(new Date(2026, 0, 5, 6, 15).getTime(), new Date(2026, 0, 5, 9).getTime()).short`, `"6:15 AM"`},
		{"an evening time", `u.formatTime(new Date(2026, 0, 5, 18, 5).getTime(), new Date(2026, 0, 5, 20).getTime()).short`, `"6:05 PM"`},
		{"an older day", `u.formatTime(new Date(2026, 0, 3, 9, 30).getTime(), new Date(2026, 0, 5, 9).getTime()).short`, `"Jan 3, 9:30 AM"`},
		{"a name with spaces", `u.channelName("Design Review")`, `"design-review"`},
		{"a name with marks", `u.channelName("  #Café & Bar!! ")`, `"cafe-bar"`},
		{"a valid name", `u.channelName("ops_2026-q1")`, `"ops_2026-q1"`},
		{"nothing usable", `u.channelName("!!!")`, `""`},
		{"a long name", `u.channelName("x".repeat(80)).length`, `64`},
		{"a password error", `u.errorText("invalid", "password must be 8 to 256 characters: invalid")`, `"Password must be 8 to 256 characters."`},
		{"an unknown user", `u.errorText("not_found", "user nosuchuser: not found")`, `"There is no user named nosuchuser."`},
		{"a closed room", `u.errorText("forbidden", "room dm:a:b: forbidden")`, `"You do not have access to dm:a:b."`},
		{"muted", `u.errorText("forbidden", "room launch: you are muted there: forbidden")`, `"You are muted in #launch."`},
		{"banned", `u.errorText("forbidden", "room launch: you are banned from it: forbidden")`, `"You are banned from #launch."`},
		{"not a member", `u.errorText("forbidden", "room team: it is closed to you: forbidden")`,
			`"#team is closed to you."`},
		{"not a manager", `u.errorText("forbidden", "room team: only its owners and moderators may manage: forbidden")`,
			`"Only #team's owners and moderators may manage."`},
		{"a message already a sentence", `u.errorText("rate_limited", "slow down!")`, `"Slow down!"`},
		{"no message", `u.errorText("unavailable", "")`, `"Unavailable."`},
		{"a link in a sentence", `u.textParts("see https://example.com/a?b=1, then (https://en.wikipedia.org/wiki/Go_(game)).")`,
			`[{"text":"see "},{"link":"https://example.com/a?b=1","text":"https://example.com/a?b=1"},{"text":", then ("},` +
				`{"link":"https://en.wikipedia.org/wiki/Go_(game)","text":"https://en.wikipedia.org/wiki/Go_(game)"},{"text":")."}]`},
		{"no javascript links", `u.textParts("javascript:alert(1) ftp://x")`, `[{"text":"javascript:alert(1) ftp://x"}]`},
		{"mentions", `u.textParts("@Bob and carol@example.com, @ali. @al")`,
			`[{"mention":"bob","text":"@Bob"},{"text":" and carol@example.com, "},{"mention":"ali","text":"@ali"},{"text":". @al"}]`},
		{"mentions me from text", `u.mentionsMe({text: "ping @frank"}, "frank")`, `true`},
		{"mentions me from the server", `u.mentionsMe({text: "ping @frank", mentions: ["bob"]}, "frank")`, `false`},
		{"an action", `u.actionText("/me waves")`, `"waves"`},
		{"not an action", `u.actionText("/meh")`, `null`},
		{"one author in a row", `u.continuesGroup({user: "a", text: "x", ts: 0}, {user: "a", text: "y", ts: 60000})`, `true`},
		{"too far apart", `u.continuesGroup({user: "a", text: "x", ts: 0}, {user: "a", text: "y", ts: 6 * 60000})`, `false`},
		{"another author", `u.continuesGroup({user: "a", text: "x", ts: 0}, {user: "b", text: "y", ts: 1})`, `false`},
		// Issue 18 saw three users with one colour; these are the names
		// of the README, the tests and the screenshots.
		{"avatar colours", `new Set(["alice", "bob", "carol", "dave", "erin", "frank"].map((n) => u.hueIndex(n, 24))).size`, `6`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := b.evalAsync(`import('/util.js').then((u) => JSON.stringify(` + tc.expr + `))`)
			var g, w any
			if err := json.Unmarshal([]byte(got), &g); err != nil {
				t.Fatalf("%s gave %s: %v", tc.expr, got, err)
			}
			if err := json.Unmarshal([]byte(tc.want), &w); err != nil {
				t.Fatalf("bad want %s: %v", tc.want, err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s\n got %s\nwant %s", tc.expr, got, tc.want)
			}
		})
	}
}

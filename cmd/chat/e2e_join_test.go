package main

import (
	"strings"
	"testing"
)

// env is the in-process client's environment for u.
func (u *e2eUser) envMap() map[string]string {
	return map[string]string{"CHAT_SERVER": u.server, "CHAT_CONFIG_DIR": u.configDir}
}

// step types a line into the session and waits for a line it shows
// afterwards that holds want.
func (p *joinProc) step(tb testing.TB, line, want string) string {
	tb.Helper()
	n := len(p.out.Lines())
	p.typeLine(tb, line)
	return p.out.waitFrom(tb, n, want, waitLong)
}

// TestEndToEndJoinLive: in chat join, edits, deletions, reactions,
// replies, mentions, topics and room changes show as they happen, whoever
// makes them; the slash commands make them; refusals say why; and a ban
// ends the session.
func TestEndToEndJoinLive(t *testing.T) {
	t.Parallel()
	bins, srv := sharedServer(t)
	aliceName, bobName := uniq("alice"), uniq("bob")
	alice, bob := newUser(t, bins, srv.URL), newUser(t, bins, srv.URL)
	alice.signup(t, aliceName)
	bob.signup(t, bobName)
	room, other, priv := uniq("live"), uniq("other"), uniq("priv")
	bob.must(t, "", "create", room)
	bob.must(t, "", "create", other)
	bob.must(t, "", "create", priv, "--private")

	j := mustStartJoin(t, alice.envMap(), room)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("alice's join printed:\n%s\nstderr:\n%s", j.out, j.err)
		}
	})
	j.out.waitFor(t, "* joined "+room+"; online: "+aliceName, waitLong)

	// Someone else's message, reaction and edit.
	id := strings.TrimSpace(bob.must(t, "", "send", room, "how is the build"))
	j.out.waitFor(t, "  "+bobName+": how is the build", waitLong)
	bob.must(t, "", "react", room, id, "🎉")
	j.out.waitFor(t, "  * "+bobName+` reacted 🎉 to their "how is the build"`, waitLong)

	// Reacting from the session; a reaction that changes nothing says so.
	j.step(t, "/react 👍", "  * "+aliceName+` reacted 👍 to `+bobName+`'s "how is the build"`)
	j.step(t, "/react ^ 👍", "* you had already reacted 👍 there")
	j.step(t, "/unreact 🎉", "* you had not reacted 🎉 there")

	// A reply names what it answers.
	j.step(t, "/reply green, shipping", "  "+aliceName+" ↳ "+bobName+` "how is the build": green, shipping`)
	bob.must(t, "", "edit", room, id, "how is the build now?")
	j.out.waitFor(t, "  * "+bobName+` edited "how is the build": how is the build now?`, waitLong)

	// Editing: someone else's is refused with the reason; one's own
	// newest is the default.
	j.step(t, "/edit ^2 hijacked", "! not edited: message ")
	j.step(t, "/edit green, shipping it", "  * "+aliceName+` edited "green, shipping": green, shipping it`)
	if got := bob.message(t, room, id).Text; got != "how is the build now?" {
		t.Errorf("bob's message reads %q after alice's refused edit", got)
	}

	// A thread, from a reply (its root's thread) and from the root.
	j.step(t, "/thread", "* thread of "+bobName+", 1 reply:")
	lineWith(t, j.out.String(), "  ", bobName+": how is the build now? (edited)")
	lineWith(t, j.out.String(), "    ", aliceName+": green, shipping it (edited)")
	bob.must(t, "", "reply", room, id, "thanks")
	j.out.waitFor(t, "  "+bobName+" ↳ "+bobName+` "how is the build now?": thanks`, waitLong)

	// Deleting: one's own newest by default, others' as they happen.
	j.step(t, "/delete ^2", "  * "+aliceName+` deleted their "green, shipping it"`)
	bob.must(t, "", "delete", room, id)
	j.out.waitFor(t, "  * "+bobName+` deleted their "how is the build now?"`, waitLong)
	j.step(t, "/delete ^9", "! not deleted: ^9: only 3 message(s) shown")
	j.step(t, "/react "+id+" 👍", "! no reaction: message "+id+" does not exist or was deleted")
	j.step(t, "/reply 1-0 hi", "! not sent: there is no message 1-0 in "+room+" to reply to: hi")

	// The topic, a mention elsewhere, being added to and removed from
	// rooms, a new direct room.
	bob.must(t, "", "topic", room, "release day")
	j.out.waitFor(t, "* "+bobName+" set the topic: release day", waitLong)
	bob.must(t, "", "send", other, "@"+aliceName, "see this")
	j.out.waitFor(t, "* "+bobName+" mentioned you in "+other+": @"+aliceName+" see this", waitLong)
	bob.must(t, "", "add", priv, aliceName)
	j.out.waitFor(t, "* you were added to "+priv+" (private)", waitLong)
	bob.must(t, "", "remove", priv, aliceName)
	j.out.waitFor(t, "* you were removed from "+priv, waitLong)
	dm := strings.TrimSpace(bob.must(t, "", "dm", aliceName))
	j.out.waitFor(t, "* new direct room: "+dm, waitLong)

	// Muted: lines and reactions are refused with the reason, and come
	// back once the mute is lifted.
	bob.must(t, "", "mute", room, aliceName)
	mid := strings.TrimSpace(bob.must(t, "", "send", room, "quiet please"))
	j.out.waitFor(t, bobName+": quiet please", waitLong)
	j.step(t, "but why", "! not sent: room "+room+": you are muted there: but why")
	j.step(t, "/react 😢", "! no reaction: room "+room+": you are muted there")
	bob.must(t, "", "unmute", room, aliceName)
	j.step(t, "ok then", "  "+aliceName+": ok then")
	j.step(t, "/react ^2 🙏", "  * "+aliceName+` reacted 🙏 to `+bobName+`'s "quiet please"`)
	if got := bob.message(t, room, mid).Reactions; len(got) != 1 || len(got["🙏"]) != 1 {
		t.Errorf("reactions on %s: %v, want only alice's 🙏", mid, got)
	}

	// Each event was shown once.
	for _, line := range []string{
		`reacted 🎉 to their "how is the build"`, `edited "how is the build"`, `deleted their "green, shipping it"`,
		"set the topic: release day", "mentioned you in " + other, "you were added to " + priv,
	} {
		if n := j.out.count(line); n != 1 {
			t.Errorf("%q shown %d times", line, n)
		}
	}

	// A ban ends the session: nothing more of the room comes.
	bob.must(t, "", "ban", room, aliceName, "--for", "1m")
	if code := j.wait(t, waitLong); code != exitError {
		t.Errorf("join exited %d after the ban, want 1", code)
	}
	if got := j.err.String(); got != "chat: you were banned from "+room+"\n" {
		t.Errorf("stderr after the ban: %q", got)
	}

	// So does being removed from a private room; joining it again is
	// refused.
	bob.must(t, "", "add", priv, aliceName)
	j2 := mustStartJoin(t, alice.envMap(), priv)
	j2.out.waitFor(t, "* joined "+priv, waitLong)
	bob.must(t, "", "remove", priv, aliceName)
	if code := j2.wait(t, waitLong); code != exitError || j2.err.String() != "chat: you were removed from "+priv+"\n" {
		t.Errorf("join after removal: exit %d, stderr %q", code, j2.err)
	}
	res := runChat(t, alice.envMap(), "", "join", priv)
	if res.code != exitError || res.stderr != "chat: room "+priv+": it is closed to you\n" {
		t.Errorf("joining again: %+v", res)
	}
}

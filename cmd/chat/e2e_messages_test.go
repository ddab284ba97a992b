package main

// End-to-end tests of the commands that act on messages and rooms: the
// built client against the shared chatd, as a user types them.

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/redstream/chat/transport/wire"
)

// fails runs a command that the server or the client must refuse with
// status 1 and exactly the line "chat: <msg>" on stderr.
func (u *e2eUser) fails(tb testing.TB, msg string, args ...string) {
	tb.Helper()
	res := u.run(tb, "", args...)
	if res.code != exitError || res.stderr != "chat: "+msg+"\n" || res.stdout != "" {
		tb.Errorf("chat %q: exit %d, stdout %q, stderr %q; want exit 1 and stderr %q",
			args, res.code, res.stdout, res.stderr, "chat: "+msg+"\n")
	}
}

// misused runs a command the client must refuse as a usage error before
// asking the server; the first line of stderr holds msg.
func (u *e2eUser) misused(tb testing.TB, msg string, args ...string) {
	tb.Helper()
	res := u.run(tb, "", args...)
	first, _, _ := strings.Cut(res.stderr, "\n")
	if res.code != exitUsage || !strings.Contains(first, msg) || !strings.Contains(res.stderr, "usage: chat "+args[0]) {
		tb.Errorf("chat %q: exit %d, stderr %q; want exit 2 and %q with the usage", args, res.code, res.stderr, msg)
	}
}

// lineWith returns the one line of out that holds every part; it fails
// the test if there is none.
func lineWith(tb testing.TB, out string, parts ...string) string {
	tb.Helper()
	for _, line := range strings.Split(out, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return line
		}
	}
	tb.Errorf("no line holds %q in:\n%s", parts, out)
	return ""
}

// message reads one message in its current state.
func (u *e2eUser) message(tb testing.TB, room, id string) wire.Message {
	tb.Helper()
	for _, m := range u.history(tb, room) {
		if m.ID == id {
			return m
		}
	}
	tb.Fatalf("message %s is not in the history of %s", id, room)
	return wire.Message{}
}

func TestEndToEndMessages(t *testing.T) {
	t.Parallel()
	bins, srv := sharedServer(t)
	aliceName, bobName, carolName := uniq("alice"), uniq("bob"), uniq("carol")
	alice, bob, carol := newUser(t, bins, srv.URL), newUser(t, bins, srv.URL), newUser(t, bins, srv.URL)
	alice.signup(t, aliceName)
	bob.signup(t, bobName)
	carol.signup(t, carolName)
	room := uniq("msgs")
	alice.must(t, "", "create", room)

	id := strings.TrimSpace(alice.must(t, "", "send", room, "hello", "@"+bobName))
	if !streamID.MatchString(id) {
		t.Fatalf("send printed %q", id)
	}

	// Reactions: on, off, on again; "." and ".." are emoji like any other
	// and must reach the server as such, not as a path.
	if out := bob.must(t, "", "react", room, id, "👍"); out != "reacted 👍 to "+id+"\n" {
		t.Errorf("react printed %q", out)
	}
	carol.must(t, "", "react", room, id, "..")
	carol.must(t, "", "react", room, id, "🎉")
	if out := carol.must(t, "", "react", room, id, "🎉", "--off"); out != "removed 🎉 from "+id+"\n" {
		t.Errorf("react --off printed %q", out)
	}
	if got := alice.message(t, room, id).Reactions; len(got) != 2 || strings.Join(got["👍"], ",") != bobName || strings.Join(got[".."], ",") != carolName {
		t.Errorf("reactions %v, want 👍 by %s and .. by %s", got, bobName, carolName)
	}
	bob.misused(t, "an emoji may not hold whitespace", "react", room, id, "a b")
	bob.misused(t, "is not a message id", "react", room, "latest", "👍")
	bob.fails(t, "message 1-0 does not exist or was deleted", "react", room, "1-0", "👍")

	// Someone else's message is not theirs to edit or delete, and the
	// server's reason says so.
	bob.fails(t, "message "+id+": only its author may edit it", "edit", room, id, "mine now")
	bob.fails(t, "message "+id+": only its author, the room's owners and moderators may delete it", "delete", room, id)

	// A reply, and replies to what is not there.
	reply := strings.TrimSpace(bob.must(t, "", "reply", room, id, "sure", "--json", "thing"))
	if !streamID.MatchString(reply) {
		t.Fatalf("reply printed %q", reply)
	}
	if m := alice.message(t, room, reply); m.ReplyTo != id || m.Text != "sure --json thing" {
		t.Errorf("the reply is %+v", m)
	}
	bob.fails(t, "there is no message 1-0 in "+room+" to reply to", "reply", room, "1-0", "hi")
	bob.fails(t, "there is no message "+id+" in support to reply to", "reply", "support", id, "hi")
	bob.misused(t, "empty message", "reply", room, id, " ")

	// The author edits; edit prints the message as it now reads.
	out := alice.must(t, "", "edit", room, id, "hello", "@"+bobName+"!")
	if !strings.HasPrefix(out, id+"  ") || !strings.Contains(out, aliceName+": hello @"+bobName+"! (edited)") {
		t.Errorf("edit printed %q", out)
	}
	// After the id everything is text, flags too; before it, --json is
	// the flag.
	lineWith(t, alice.must(t, "", "edit", room, id, "again", "--json"), aliceName+": again --json (edited)")
	res := alice.run(t, "", "--json", "edit", room, id, "hello again")
	var edited struct{ Message wire.Message }
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &edited) != nil || edited.Message.Text != "hello again" || edited.Message.EditedTS == 0 {
		t.Errorf("edit --json: %+v", res)
	}
	alice.misused(t, "empty text", "edit", room, id, "")

	// History shows the current state: the edit, the reactions, the
	// thread and what the reply answers; thread shows the replies.
	hist := carol.must(t, "", "history", room)
	lineWith(t, hist, id+"  ", aliceName+": hello again (edited)")
	lineWith(t, hist, "👍 1 ("+bobName+")", ".. 1 ("+carolName+")")
	lineWith(t, hist, "↳ 1 reply (chat thread "+room+" "+id+")")
	lineWith(t, hist, reply+"  ", bobName+` ↳ `+aliceName+` "hello again": sure --json thing`)
	thread := carol.must(t, "", "thread", room, id)
	if lines := strings.Split(strings.TrimSuffix(thread, "\n"), "\n"); len(lines) != 4 ||
		!strings.HasPrefix(lines[0], id+"  ") || !strings.HasPrefix(lines[3], "  "+reply+"  ") ||
		!strings.HasSuffix(lines[3], "  "+bobName+": sure --json thing") {
		t.Errorf("thread printed:\n%s", thread)
	}
	res = carol.run(t, "", "thread", room, id, "--json")
	var tp ThreadPage
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &tp) != nil || tp.Root.ID != id || len(tp.Messages) != 1 || tp.Messages[0].ID != reply {
		t.Errorf("thread --json: %+v", res)
	}
	if res := carol.run(t, "", "thread", room, reply); res.code != 0 || res.stderr != "no replies yet\n" {
		t.Errorf("thread of a message without replies: %+v", res)
	}
	carol.fails(t, "message 1-0 does not exist or was deleted", "thread", room, "1-0")

	// The author deletes; the message stays in history as deleted, and is
	// no longer there to edit, react to or delete.
	if out := alice.must(t, "", "delete", room, id); out != "deleted "+id+"\n" {
		t.Errorf("delete printed %q", out)
	}
	lineWith(t, carol.must(t, "", "history", room), id+"  ", aliceName+": (deleted)")
	if m := carol.message(t, room, id); !m.Deleted || m.Text != "" {
		t.Errorf("deleted message in history: %+v", m)
	}
	alice.fails(t, "message "+id+" does not exist or was deleted", "edit", room, id, "back")
	alice.fails(t, "message "+id+" does not exist or was deleted", "delete", room, id)
	bob.fails(t, "message "+id+" does not exist or was deleted", "react", room, id, "👍")

	// An owner may delete anyone's message; a direct room is its two
	// users' only.
	other := strings.TrimSpace(bob.must(t, "", "send", room, "spam"))
	alice.must(t, "", "delete", room, other)
	dm := strings.TrimSpace(alice.must(t, "", "dm", bobName))
	dmID := strings.TrimSpace(alice.must(t, "", "send", dm, "just us"))
	bob.fails(t, "message "+dmID+": only its author, the room's owners and moderators may delete it", "delete", dm, dmID)
	carol.fails(t, "room "+dm+": it is closed to you", "react", dm, dmID, "👀")
	carol.fails(t, "room "+dm+": it is closed to you", "thread", dm, dmID)

	for _, args := range [][]string{{"edit", room, id}, {"delete", room}, {"react", room, id}, {"reply", room, id}, {"thread", room}} {
		alice.misused(t, "missing argument", args...)
	}
	alice.misused(t, "unexpected argument", "delete", room, id, "extra")
	alice.misused(t, "--limit must be a positive number", "thread", room, reply, "--limit", "0")
}

// roomRow returns the fields of room's row in chat rooms.
func roomRow(tb testing.TB, u *e2eUser, room string) []string {
	tb.Helper()
	out := u.must(tb, "", "rooms")
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == room {
			return f
		}
	}
	tb.Fatalf("rooms has no row for %s:\n%s", room, out)
	return nil
}

func TestEndToEndRooms(t *testing.T) {
	t.Parallel()
	bins, srv := sharedServer(t)
	aliceName, bobName, carolName := uniq("alice"), uniq("bob"), uniq("carol")
	alice, bob, carol := newUser(t, bins, srv.URL), newUser(t, bins, srv.URL), newUser(t, bins, srv.URL)
	alice.signup(t, aliceName)
	bob.signup(t, bobName)
	carol.signup(t, carolName)
	team, pub := uniq("team"), uniq("pub")

	// Creating: private or public, with a topic; names are checked.
	if out := alice.must(t, "", "create", team, "--private", "--topic", "the team"); out != "created "+team+", a private channel you own\n" {
		t.Errorf("create printed %q", out)
	}
	if out := alice.must(t, "", "create", "--topic", "open to all", pub); out != "created "+pub+", a public channel you own\n" {
		t.Errorf("create printed %q", out)
	}
	alice.fails(t, "room "+team+" exists", "create", team)
	alice.fails(t, "room name may hold only lowercase letters, digits, '_' and '-'", "create", "Bad Name")
	if got, want := roomRow(t, alice, team), []string{team, "private", "owner", "0", "0", "0-0", "the", "team"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("alice's row of %s: %q, want %q", team, got, want)
	}

	// A private channel is closed to others until they are added, and
	// only its owners and moderators add.
	bob.fails(t, "room "+team+": it is closed to you", "history", team)
	bob.fails(t, "room "+team+": it is closed to you", "add", team, carolName)
	alice.fails(t, "no user named nobody-here", "add", team, "nobody-here")
	alice.fails(t, "no room named no-such-room", "members", "no-such-room")
	if out := alice.must(t, "", "add", team, strings.ToUpper(bobName)); out != "added "+bobName+" to "+team+" as member\n" {
		t.Errorf("add printed %q", out)
	}
	members := bob.must(t, "", "members", team)
	lines := strings.Split(strings.TrimSpace(members), "\n")
	if len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "USER ROLE ONLINE" ||
		strings.Join(strings.Fields(lines[1]), " ") != aliceName+" owner no" ||
		strings.Join(strings.Fields(lines[2]), " ") != bobName+" member no" {
		t.Errorf("members printed:\n%s", members)
	}
	res := bob.run(t, "", "members", team, "--json")
	var mj struct{ Members []Member }
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &mj) != nil || len(mj.Members) != 2 {
		t.Errorf("members --json: %+v", res)
	}

	// Roles: members may not manage, moderators may; a role is one of three.
	bob.fails(t, "room "+team+": only its owners and moderators may manage", "topic", team, "mine")
	bob.fails(t, "room "+team+": only its owners may change roles", "role", team, bobName, "owner")
	alice.misused(t, `"boss" is not a role`, "role", team, bobName, "boss")
	if out := alice.must(t, "", "role", team, bobName, "Moderator"); out != bobName+" is now moderator of "+team+"\n" {
		t.Errorf("role printed %q", out)
	}
	if out := bob.must(t, "", "topic", team, "a", "new", "topic"); out != "set the topic of "+team+"\n" {
		t.Errorf("topic printed %q", out)
	}

	// chat rooms: kind, role, unread messages and mentions, topic. (In
	// a channel, counting starts at one's first join; in a direct room at
	// its beginning.)
	if got := roomRow(t, bob, team); strings.Join(got[:3], " ") != team+" private moderator" || strings.Join(got[6:], " ") != "a new topic" {
		t.Errorf("bob's row of %s: %q, want private, moderator, a new topic", team, got)
	}
	dm := strings.TrimSpace(alice.must(t, "", "dm", bobName))
	alice.must(t, "", "send", dm, "@"+bobName, "look at this")
	last := strings.TrimSpace(alice.must(t, "", "send", dm, "and this"))
	if got, want := roomRow(t, bob, dm), []string{dm, "direct", "-", "2", "1", last}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("bob's row of %s: %q, want %q", dm, got, want)
	}
	if got := roomRow(t, bob, pub); strings.Join(got[:5], " ") != pub+" channel - 0 0" || strings.Join(got[6:], " ") != "open to all" {
		t.Errorf("bob's row of %s: %q", pub, got)
	}
	res = bob.run(t, "", "rooms", "--json")
	var rj struct {
		Rooms   []RoomInfo
		HasMore bool `json:"has_more"`
	}
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &rj) != nil || rj.HasMore || len(rj.Rooms) < 5 {
		t.Errorf("rooms --json: %+v", res)
	}

	// Mutes: the muted user reads but does not write, until unmuted.
	alice.must(t, "", "add", team, carolName)
	out := bob.must(t, "", "mute", team, carolName, "--for", "10m")
	if !strings.HasPrefix(out, "muted "+carolName+" in "+team+" until 20") {
		t.Errorf("mute printed %q", out)
	}
	carol.fails(t, "room "+team+": you are muted there", "send", team, "hi")
	carol.must(t, "", "history", team)
	if out := bob.must(t, "", "unmute", team, carolName); out != "lifted the mute of "+carolName+" in "+team+"\n" {
		t.Errorf("unmute printed %q", out)
	}
	carol.must(t, "", "send", team, "hi again")
	bob.fails(t, carolName+" is not banned or muted in "+team, "unmute", team, carolName)

	// Bans: out at once, listed, refused on adding, lifted; never against
	// an owner; the duration is checked before anything is sent.
	out = bob.must(t, "", "ban", team, carolName, "--for", "1d12h")
	if !strings.HasPrefix(out, "banned "+carolName+" from "+team+" until 20") {
		t.Errorf("ban printed %q", out)
	}
	carol.fails(t, "room "+team+": you are banned from it", "history", team)
	bans := alice.must(t, "", "bans", team)
	if lines := strings.Split(strings.TrimSpace(bans), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], carolName+" ") {
		t.Errorf("bans printed:\n%s", bans)
	}
	alice.fails(t, carolName+" is banned from "+team+"; chat unban "+team+" "+carolName+" lifts the ban", "add", team, carolName)
	alice.must(t, "", "unban", team, carolName)
	if res := alice.run(t, "", "bans", team); res.code != 0 || res.stdout != "" || res.stderr != "nobody is banned from "+team+"\n" {
		t.Errorf("bans after unban: %+v", res)
	}
	carol.fails(t, "room "+team+": it is closed to you", "history", team)
	out = alice.must(t, "", "ban", pub, carolName)
	if out != "banned "+carolName+" from "+pub+" until lifted (chat unban "+pub+" "+carolName+")\n" {
		t.Errorf("ban until lifted printed %q", out)
	}
	carol.fails(t, "room "+pub+": you are banned from it", "send", pub, "hi")
	bob.fails(t, "owners and admins cannot be banned or muted", "ban", team, aliceName)
	for _, d := range []string{"0s", "500ms", "366d", "2y", "-1h", "d"} {
		bob.misused(t, "want a duration from 1s to 365d", "ban", team, carolName, "--for", d)
	}

	// Leaving and removing; a room keeps an owner.
	alice.fails(t, team+" needs an owner: make someone else owner first (chat role "+team+" USER owner)", "leave", team)
	bob.fails(t, "an owner cannot be removed by others", "remove", team, aliceName)
	if out := alice.must(t, "", "remove", team, bobName); out != "removed "+bobName+" from "+team+"\n" {
		t.Errorf("remove printed %q", out)
	}
	bob.fails(t, "room "+team+": it is closed to you", "members", team)
	alice.fails(t, bobName+" is not a member of "+team, "remove", team, bobName)
	alice.must(t, "", "add", team, bobName)
	if out := bob.must(t, "", "leave", team); out != "left "+team+"\n" {
		t.Errorf("leave printed %q", out)
	}

	// Clearing a topic; the built-in channels are the admins' to manage.
	if out := alice.must(t, "", "topic", team, ""); out != "cleared the topic of "+team+"\n" {
		t.Errorf("topic \"\" printed %q", out)
	}
	if got := roomRow(t, alice, team); len(got) != 6 {
		t.Errorf("row after clearing the topic: %q", got)
	}
	alice.fails(t, "room tech: only its owners and moderators may manage", "topic", "tech", "mine")
	admin := newUser(t, bins, srv.URL)
	admin.signup(t, sharedAdmin)
	admin.must(t, "", "topic", "tech", "all things tech")
	admin.must(t, "", "topic", "tech", "")

	for _, args := range [][]string{{"create"}, {"topic", team}, {"members"}, {"add", team}, {"remove", team}, {"leave"},
		{"role", team, bobName}, {"ban", team}, {"unban", team}, {"mute", team}, {"unmute", team}, {"bans"}} {
		alice.misused(t, "missing argument", args...)
	}
}

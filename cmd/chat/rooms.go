package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/redstream/chat/transport/wire"
)

// Roles a member of a channel can have.
var roles = []string{"owner", "moderator", "member"}

// maxTopicColumn is how much of a topic chat rooms shows.
const maxTopicColumn = 40

func (c *cli) cmdRooms(args []string) error {
	if _, err := c.args("rooms", c.flagSet("rooms"), args, 0, 0, 0); err != nil {
		return err
	}
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	raws, rooms, err := cl.Rooms(context.Background())
	if err != nil {
		return err
	}
	if c.json {
		return c.writeList("rooms", raws)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tROLE\tUNREAD\tMENTIONS\tLAST_ID\tTOPIC")
	for _, r := range rooms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", oneLine(r.Name), oneLine(r.Kind), orDash(r.Role),
			r.Unread, r.Mentions, oneLine(r.LastID), truncate(oneLine(r.Topic), maxTopicColumn))
	}
	return tw.Flush()
}

// writeList prints the items of a list collected over several pages as
// one answer of the server's shape: {"<key>":[…],"has_more":false}.
func (c *cli) writeList(key string, raws []json.RawMessage) error {
	if raws == nil {
		raws = []json.RawMessage{}
	}
	b, err := json.Marshal(map[string]any{key: raws, "has_more": false})
	if err != nil {
		return err
	}
	return c.writeRaw(b)
}

// orDash is a table cell that may be empty: "-" keeps the columns
// countable for awk and cut.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return oneLine(s)
}

// truncate shortens s to n characters, marking a cut with "…".
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func (c *cli) cmdCreate(args []string) error {
	fs := c.flagSet("create")
	private := fs.Bool("private", false, "only members may read it")
	topic := fs.String("topic", "", "the room's topic")
	pos, err := c.args("create", fs, args, 0, 1, 1)
	if err != nil {
		return err
	}
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	r, err := cl.CreateRoom(context.Background(), pos[0], *private, *topic)
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == wire.CodeRateLimited {
		// The only limit on creating is the number of channels a user
		// may have; waiting does not lift it, whatever Retry-After says.
		c2 := *ae
		c2.RetryAfter = ""
		return &c2
	}
	if err != nil {
		return err
	}
	what := "a public channel"
	if r.Kind == "private" {
		what = "a private channel"
	}
	fmt.Fprintf(c.stdout, "created %s, %s you own\n", oneLine(r.Name), what)
	return nil
}

func (c *cli) cmdTopic(args []string) error {
	pos, err := c.args("topic", c.flagSet("topic"), args, 1, 2, -1)
	if err != nil {
		return err
	}
	room, topic := pos[0], strings.TrimSpace(strings.Join(pos[1:], " "))
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	if err := cl.SetTopic(context.Background(), room, topic); err != nil {
		return err
	}
	if topic == "" {
		fmt.Fprintf(c.stdout, "cleared the topic of %s\n", oneLine(room))
	} else {
		fmt.Fprintf(c.stdout, "set the topic of %s\n", oneLine(room))
	}
	return nil
}

func (c *cli) cmdMembers(args []string) error {
	pos, err := c.args("members", c.flagSet("members"), args, 0, 1, 1)
	if err != nil {
		return err
	}
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	raws, members, err := cl.Members(context.Background(), pos[0])
	if err != nil {
		return err
	}
	if c.json {
		return c.writeList("members", raws)
	}
	if len(members) == 0 {
		fmt.Fprintf(c.stderr, "%s has no members\n", oneLine(pos[0]))
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tROLE\tONLINE")
	for _, m := range members {
		online := "no"
		if m.Online {
			online = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", oneLine(m.User), orDash(m.Role), online)
	}
	return tw.Flush()
}

func (c *cli) cmdAdd(args []string) error {
	pos, err := c.args("add", c.flagSet("add"), args, 0, 2, 2)
	if err != nil {
		return err
	}
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	room, user := pos[0], pos[1]
	m, err := cl.AddMember(context.Background(), room, user)
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == wire.CodeBanned {
		c2 := *ae
		c2.Message = humanError(ae.Code, ae.Message) + "; chat unban " + oneLine(room) + " " + oneLine(user) + " lifts the ban"
		return &c2
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "added %s to %s as %s\n", oneLine(m.User), oneLine(room), orDash(m.Role))
	return nil
}

func (c *cli) cmdRemove(args []string) error {
	pos, err := c.args("remove", c.flagSet("remove"), args, 0, 2, 2)
	if err != nil {
		return err
	}
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	room, user := pos[0], pos[1]
	if err := cl.RemoveMember(context.Background(), room, user); err != nil {
		return lastOwner(err, room)
	}
	fmt.Fprintf(c.stdout, "removed %s from %s\n", oneLine(strings.ToLower(user)), oneLine(room))
	return nil
}

func (c *cli) cmdLeave(args []string) error {
	pos, err := c.args("leave", c.flagSet("leave"), args, 0, 1, 1)
	if err != nil {
		return err
	}
	cl, saved, err := c.authClient()
	if err != nil {
		return err
	}
	room := pos[0]
	if err := cl.RemoveMember(context.Background(), room, saved.Username); err != nil {
		return lastOwner(err, room)
	}
	fmt.Fprintf(c.stdout, "left %s\n", oneLine(room))
	return nil
}

func (c *cli) cmdRole(args []string) error {
	pos, err := c.args("role", c.flagSet("role"), args, 0, 3, 3)
	if err != nil {
		return err
	}
	room, user, role := pos[0], pos[1], strings.ToLower(pos[2])
	if !slices.Contains(roles, role) {
		return &usageError{cmd: "role", msg: fmt.Sprintf("%q is not a role; a role is owner, moderator or member", pos[2])}
	}
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	if err := cl.SetRole(context.Background(), room, user, role); err != nil {
		return lastOwner(err, room)
	}
	fmt.Fprintf(c.stdout, "%s is now %s of %s\n", oneLine(strings.ToLower(user)), role, oneLine(room))
	return nil
}

// lastOwner adds the way out to the refusal to leave a room without an
// owner.
func lastOwner(err error, room string) error {
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == wire.CodeForbidden && strings.HasSuffix(ae.Message, "a room keeps at least one owner") {
		c2 := *ae
		c2.Message = oneLine(room) + " needs an owner: make someone else owner first (chat role " + oneLine(room) + " USER owner)"
		return &c2
	}
	return err
}

// maxFor is the longest ban or mute the server takes.
const maxFor = 365 * 24 * time.Hour

// parseFor reads the value of --for: a Go duration ("10m", "1h30m") with
// days allowed in front ("7d", "1d12h"), from 1s to 365d. A fraction of a
// second is rounded up, since the server counts whole seconds.
func parseFor(s string) (time.Duration, error) {
	bad := fmt.Errorf("--for %q: want a duration from 1s to 365d such as 30s, 10m, 2h or 7d", s)
	rest := strings.TrimSpace(s)
	var d time.Duration
	if i := strings.IndexByte(rest, 'd'); i >= 0 {
		n, err := strconv.Atoi(rest[:i])
		if err != nil || n < 0 || n > 366 {
			return 0, bad
		}
		d, rest = time.Duration(n)*24*time.Hour, rest[i+1:]
	}
	if rest != "" {
		more, err := time.ParseDuration(rest)
		if err != nil || more < 0 {
			return 0, bad
		}
		d += more
	}
	if d < time.Second || d > maxFor {
		return 0, bad
	}
	return (d + time.Second - 1).Truncate(time.Second), nil
}

// restrict is ban and mute.
func (c *cli) restrict(cmd string, mute bool, args []string) error {
	fs := c.flagSet(cmd)
	forStr := fs.String("for", "", "how long (10m, 2h, 7d); without it, until lifted")
	pos, err := c.args(cmd, fs, args, 0, 2, 2)
	if err != nil {
		return err
	}
	var d time.Duration
	if flagGiven(fs, "for") {
		if d, err = parseFor(*forStr); err != nil {
			return &usageError{cmd: cmd, msg: err.Error()}
		}
	}
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	room, user := pos[0], pos[1]
	b, err := cl.Restrict(context.Background(), room, user, mute, d)
	if err != nil {
		return err
	}
	verb, undo := "banned "+oneLine(b.User)+" from ", "unban"
	if mute {
		verb, undo = "muted "+oneLine(b.User)+" in ", "unmute"
	}
	if b.Until == "" {
		fmt.Fprintf(c.stdout, "%s%s until lifted (chat %s %s %s)\n", verb, oneLine(room), undo, oneLine(room), oneLine(b.User))
		return nil
	}
	fmt.Fprintf(c.stdout, "%s%s until %s\n", verb, oneLine(room), localTime(b.Until))
	return nil
}

func (c *cli) cmdBan(args []string) error  { return c.restrict("ban", false, args) }
func (c *cli) cmdMute(args []string) error { return c.restrict("mute", true, args) }

// lift is unban and unmute.
func (c *cli) lift(cmd string, mute bool, args []string) error {
	pos, err := c.args(cmd, c.flagSet(cmd), args, 0, 2, 2)
	if err != nil {
		return err
	}
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	room, user := pos[0], pos[1]
	if err := cl.Lift(context.Background(), room, user, mute); err != nil {
		return err
	}
	what := "ban"
	if mute {
		what = "mute"
	}
	fmt.Fprintf(c.stdout, "lifted the %s of %s in %s\n", what, oneLine(strings.ToLower(user)), oneLine(room))
	return nil
}

func (c *cli) cmdUnban(args []string) error  { return c.lift("unban", false, args) }
func (c *cli) cmdUnmute(args []string) error { return c.lift("unmute", true, args) }

func (c *cli) cmdBans(args []string) error {
	pos, err := c.args("bans", c.flagSet("bans"), args, 0, 1, 1)
	if err != nil {
		return err
	}
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	raw, bans, err := cl.Bans(context.Background(), pos[0])
	if err != nil {
		return err
	}
	if c.json {
		return c.writeRaw(raw)
	}
	if len(bans) == 0 {
		fmt.Fprintf(c.stderr, "nobody is banned from %s\n", oneLine(pos[0]))
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tUNTIL")
	for _, b := range bans {
		until := "lifted"
		if b.Until != "" {
			until = localTime(b.Until)
		}
		fmt.Fprintf(tw, "%s\t%s\n", oneLine(b.User), until)
	}
	return tw.Flush()
}

// localTime shows an RFC 3339 time from the server in local time, or as
// it came if it does not parse.
func localTime(s string) string {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return oneLine(s)
	}
	return t.Local().Format("2006-01-02 15:04 MST")
}

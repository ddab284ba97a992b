package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/redstream/chat/transport/wire"
)

// messageID is the shape of a stream ID as the server hands them out
// ("1796295170222-0"); the sequence may be left off.
var messageID = regexp.MustCompile(`^[0-9]{1,20}(-[0-9]{1,20})?$`)

// checkID refuses, before asking the server, an ID that cannot be one.
func checkID(cmd, id string) error {
	if !messageID.MatchString(id) {
		return &usageError{cmd: cmd, msg: fmt.Sprintf("%q is not a message id; ids look like 1796295170222-0 (chat history ROOM shows them)", id)}
	}
	return nil
}

// historyView is how history and thread print messages: each with its id
// first, in its current state.
func historyView(room string, page []wire.Message) view {
	return view{
		state: true,
		root:  rootIn(page),
		threadHint: func(id string) string {
			return "chat thread " + oneLine(room) + " " + id
		},
	}
}

// rootIn describes, for a reply, the message it answers when that is
// among msgs.
func rootIn(msgs []wire.Message) func(string) string {
	byID := make(map[string]*wire.Message, len(msgs))
	for i := range msgs {
		byID[msgs[i].ID] = &msgs[i]
	}
	return func(id string) string {
		m := byID[id]
		if m == nil {
			return ""
		}
		if m.Deleted {
			return oneLine(m.User) + " (deleted)"
		}
		return oneLine(m.User) + " " + quote(m.Text)
	}
}

// printStored prints messages in their current state, each line led by
// its id, as history and thread do. The ids are padded to one width so
// that the timestamps line up.
func (c *cli) printStored(v view, msgs []wire.Message, indent string) {
	width := 0
	for _, m := range msgs {
		width = max(width, len(m.ID))
	}
	for _, m := range msgs {
		v.lead = fmt.Sprintf("%s%-*s  ", indent, width, oneLine(m.ID))
		fmt.Fprintln(c.stdout, renderMessage(m, v))
	}
}

// idText parses the ROOM ID TEXT... of edit and reply: everything after
// the id is text, flags included; empty is refused with emptyMsg.
func (c *cli) idText(cmd string, args []string, emptyMsg string) (room, id, text string, err error) {
	pos, err := c.args(cmd, c.flagSet(cmd), args, 2, 3, -1)
	if err != nil {
		return "", "", "", err
	}
	room, id, text = pos[0], pos[1], strings.Join(pos[2:], " ")
	if err := checkID(cmd, id); err != nil {
		return "", "", "", err
	}
	if strings.TrimSpace(text) == "" {
		return "", "", "", &usageError{cmd: cmd, msg: emptyMsg}
	}
	return room, id, text, nil
}

func (c *cli) cmdEdit(args []string) error {
	room, id, text, err := c.idText("edit", args, "empty text; to remove a message use chat delete ROOM ID")
	if err != nil {
		return err
	}
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	raw, m, err := cl.Edit(context.Background(), room, id, text)
	if err != nil {
		return refusal(err, actEdit, room)
	}
	if c.json {
		return c.writeRaw(raw)
	}
	c.printStored(historyView(room, nil), []wire.Message{*m}, "")
	return nil
}

func (c *cli) cmdDelete(args []string) error {
	pos, err := c.args("delete", c.flagSet("delete"), args, 0, 2, 2)
	if err != nil {
		return err
	}
	room, id := pos[0], pos[1]
	if err := checkID("delete", id); err != nil {
		return err
	}
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	if err := cl.Delete(context.Background(), room, id); err != nil {
		return refusal(err, actDelete, room)
	}
	fmt.Fprintf(c.stdout, "deleted %s\n", id)
	return nil
}

func (c *cli) cmdReact(args []string) error {
	fs := c.flagSet("react")
	off := fs.Bool("off", false, "remove the reaction")
	pos, err := c.args("react", fs, args, 0, 3, 3)
	if err != nil {
		return err
	}
	room, id, emoji := pos[0], pos[1], pos[2]
	if err := checkID("react", id); err != nil {
		return err
	}
	if err := checkEmoji(emoji); err != nil {
		return &usageError{cmd: "react", msg: err.Error()}
	}
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	if err := cl.React(context.Background(), room, id, emoji, !*off); err != nil {
		return refusal(err, actReact, room)
	}
	if *off {
		fmt.Fprintf(c.stdout, "removed %s from %s\n", oneLine(emoji), id)
	} else {
		fmt.Fprintf(c.stdout, "reacted %s to %s\n", oneLine(emoji), id)
	}
	return nil
}

// checkEmoji applies the protocol's rule for an emoji (1–32 bytes of
// UTF-8, no whitespace or control characters) so that a typo is caught
// before it is sent; the server checks again.
func checkEmoji(emoji string) error {
	if emoji == "" || len(emoji) > 32 {
		return errors.New("an emoji is 1 to 32 bytes")
	}
	if strings.ContainsFunc(emoji, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return errors.New("an emoji may not hold whitespace or control characters")
	}
	return nil
}

func (c *cli) cmdReply(args []string) error {
	room, id, text, err := c.idText("reply", args, "empty message")
	if err != nil {
		return err
	}
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	m, err := cl.Send(context.Background(), room, text, newClientID(), id)
	if err != nil {
		return refusal(err, actSend, room)
	}
	fmt.Fprintln(c.stdout, m.ID)
	return nil
}

func (c *cli) cmdThread(args []string) error {
	fs := c.flagSet("thread")
	after := fs.String("after", "", "replies newer than this id")
	limit := fs.Int("limit", 0, "replies per page (1-200)")
	pos, err := c.args("thread", fs, args, 0, 2, 2)
	if err != nil {
		return err
	}
	room, id := pos[0], pos[1]
	if err := checkID("thread", id); err != nil {
		return err
	}
	if *after != "" {
		if err := checkID("thread", *after); err != nil {
			return err
		}
	}
	if *limit < 0 || (*limit == 0 && flagGiven(fs, "limit")) {
		return &usageError{cmd: "thread", msg: "--limit must be a positive number"}
	}
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	raw, page, err := cl.Replies(context.Background(), room, id, *after, *limit)
	if err != nil {
		return err
	}
	if c.json {
		if err := c.writeRaw(raw); err != nil {
			return err
		}
	} else {
		v := historyView(room, nil)
		v.threadHint = nil // this is the thread
		if *after == "" {
			c.printStored(v, []wire.Message{page.Root}, "")
		}
		// A reply names its root, which is the message above; leave it off.
		replies := make([]wire.Message, len(page.Messages))
		for i, m := range page.Messages {
			m.ReplyTo = ""
			replies[i] = m
		}
		c.printStored(v, replies, "  ")
		if len(page.Messages) == 0 && *after == "" {
			fmt.Fprintln(c.stderr, "no replies yet")
		}
	}
	if page.HasMore && len(page.Messages) > 0 {
		fmt.Fprintf(c.stderr, "more: chat thread %s %s --after %s\n", room, id, page.Messages[len(page.Messages)-1].ID)
	}
	return nil
}

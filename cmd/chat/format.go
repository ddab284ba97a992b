package main

import (
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redstream/chat/transport/wire"
)

// ANSI styles, used only when stdout is a terminal.
const (
	ansiDim     = "\x1b[2m"
	ansiBold    = "\x1b[1m"
	ansiMention = "\x1b[1;33m" // a message that names the reader: bold yellow
	ansiReset   = "\x1b[0m"
)

// formatMessage renders a message as it was sent, "15:04:05  user: text"
// in local time; see renderMessage.
func formatMessage(m wire.Message, color bool) string {
	return renderMessage(m, view{color: color})
}

// view says how renderMessage shows a message.
type view struct {
	color bool
	// self is the logged-in user: a message that mentions them stands
	// out (on a terminal).
	self string
	// lead goes before the timestamp: history puts the message's id
	// there, so that it can be named in edit, react, reply and thread.
	lead string
	// state says m is in its current state (history, a thread, the tail
	// chat join starts with): edits, a deletion, reactions and replies
	// are shown. A message frame is the message as sent and has none.
	state bool
	// root describes the message a reply answers (`bob "hi there"`), or
	// returns "" when it is not known; nil means never known.
	root func(id string) string
	// threadHint says how to read the replies to id; nil: nothing.
	threadHint func(id string) string
}

// renderMessage renders a message as "15:04:05  user: text" in local
// time, with v.lead before it. Text from the server is cleaned of control
// characters, so another user cannot move the cursor or recolour the
// terminal. A message "/me waves" is an action, "15:04:05  * bob waves";
// a reply names what it answers, "15:04:05  carol ↳ bob "hi": sure". In
// its current state a message may read "(deleted)" or end in "(edited)",
// and be followed by a line of reactions and one that counts its replies,
// indented under the text like the lines of a multi-line message.
func renderMessage(m wire.Message, v view) string {
	ts := time.UnixMilli(m.TS).Local().Format("15:04:05")
	indent := "\n" + strings.Repeat(" ", utf8.RuneCountInString(v.lead)+len(ts)+2)
	body := m.Text
	action := false
	if rest, ok := strings.CutPrefix(body, "/me "); ok && strings.TrimSpace(rest) != "" {
		body, action = strings.TrimLeft(rest, " "), true
	}
	deleted := v.state && m.Deleted
	text := multiline(body, indent)
	switch {
	case deleted:
		text, action = "(deleted)", false
		if v.color {
			text = ansiDim + text + ansiReset
		}
	case v.color && v.self != "" && slices.Contains(m.Mentions, v.self):
		text = ansiMention + text + ansiReset
	}
	if v.state && m.EditedTS != 0 && !deleted {
		text += " (edited)"
	}
	user := clean(m.User)
	if v.color {
		ts, user = ansiDim+ts+ansiReset, ansiBold+user+ansiReset
	}
	var b strings.Builder
	b.WriteString(v.lead + ts + "  ")
	switch {
	case action:
		b.WriteString("* " + user + " " + text)
	case m.ReplyTo != "":
		root := ""
		if v.root != nil {
			root = v.root(m.ReplyTo)
		}
		if root == "" {
			root = m.ReplyTo
		}
		b.WriteString(user + " ↳ " + root + ": " + text)
	default:
		b.WriteString(user + ": " + text)
	}
	if v.state && !deleted && len(m.Reactions) > 0 {
		b.WriteString(indent + reactionSummary(m.Reactions))
	}
	if v.state && m.ReplyCount > 0 {
		line := "↳ " + plural(m.ReplyCount, "reply", "replies")
		if v.threadHint != nil {
			line += " (" + v.threadHint(m.ID) + ")"
		}
		b.WriteString(indent + line)
	}
	return b.String()
}

// multiline cleans text and indents its second and later lines by indent.
func multiline(text, indent string) string {
	return strings.ReplaceAll(clean(strings.ReplaceAll(text, "\r\n", "\n")), "\n", indent)
}

// maxReactors is how many users a reaction names before it only counts.
const maxReactors = 3

// reactionSummary renders reactions as "👍 2 (bob, carol)  🎉 1 (alice)",
// the most used first, naming at most maxReactors users per emoji.
func reactionSummary(r map[string][]string) string {
	emoji := make([]string, 0, len(r))
	for e, users := range r {
		if len(users) > 0 {
			emoji = append(emoji, e)
		}
	}
	slices.SortFunc(emoji, func(a, b string) int {
		if d := len(r[b]) - len(r[a]); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(emoji))
	for i, e := range emoji {
		users := r[e]
		names := make([]string, 0, maxReactors+1)
		for _, u := range users[:min(len(users), maxReactors)] {
			names = append(names, oneLine(u))
		}
		if len(users) > maxReactors {
			names = append(names, "+"+strconv.Itoa(len(users)-maxReactors))
		}
		parts[i] = oneLine(e) + " " + strconv.Itoa(len(users)) + " (" + strings.Join(names, ", ") + ")"
	}
	return strings.Join(parts, "  ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// quoteLen is how many characters of a message quote() keeps.
const quoteLen = 24

// quote is the start of a message's first line in quotes, to name it in
// a line about an edit, a deletion, a reaction or a reply.
func quote(text string) string {
	line, _, more := strings.Cut(strings.TrimSpace(clean(text)), "\n")
	r := []rune(strings.TrimSpace(strings.ReplaceAll(line, "\t", " ")))
	if len(r) > quoteLen {
		r, more = r[:quoteLen], true
	}
	s := string(r)
	if more {
		s = strings.TrimRight(s, " ") + "…"
	}
	return `"` + s + `"`
}

// clean drops control characters other than newline and tab.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return r
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return -1
		}
		return r
	}, s)
}

// oneLine is clean for fields that must not break the line.
func oneLine(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(clean(s), "\n", " "), "\t", " ")
}

// newerID reports whether stream ID a ("ms-seq") is after b. An empty b
// is before everything. IDs that do not parse compare as strings, which
// keeps the order total.
func newerID(a, b string) bool {
	if b == "" {
		return a != ""
	}
	am, as, aok := splitID(a)
	bm, bs, bok := splitID(b)
	if !aok || !bok {
		return a > b
	}
	if am != bm {
		return am > bm
	}
	return as > bs
}

func splitID(id string) (ms, seq uint64, ok bool) {
	l, r, found := strings.Cut(id, "-")
	ms, err := strconv.ParseUint(l, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	if !found {
		return ms, 0, true
	}
	seq, err = strconv.ParseUint(r, 10, 64)
	return ms, seq, err == nil
}

package main

import (
	"strconv"
	"strings"
	"time"

	"github.com/redstream/chat/transport/wire"
)

// ANSI styles, used only when stdout is a terminal.
const (
	ansiDim   = "\x1b[2m"
	ansiBold  = "\x1b[1m"
	ansiReset = "\x1b[0m"
)

// continuation indents the second and later lines of a multi-line message
// under its text, so every output line still starts with a timestamp or
// with blanks.
const continuation = "\n          "

// formatMessage renders a message as "15:04:05  user: text" in local
// time. Text from the server is cleaned of control characters, so another
// user cannot move the cursor or recolour the terminal.
// A message "/me waves" is an action, shown as "15:04:05  * bob waves".
func formatMessage(m wire.Message, color bool) string {
	ts := time.UnixMilli(m.TS).Local().Format("15:04:05")
	body := m.Text
	action := false
	if rest, ok := strings.CutPrefix(body, "/me "); ok && strings.TrimSpace(rest) != "" {
		body, action = strings.TrimLeft(rest, " "), true
	}
	text := strings.ReplaceAll(clean(strings.ReplaceAll(body, "\r\n", "\n")), "\n", continuation)
	user := clean(m.User)
	if color {
		ts, user = ansiDim+ts+ansiReset, ansiBold+user+ansiReset
	}
	if action {
		return ts + "  * " + user + " " + text
	}
	return ts + "  " + user + ": " + text
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

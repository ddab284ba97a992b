package store

import (
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/engine"
)

// Stream entry fields. A message has no "k" (entries of the old layout
// are messages too); an event names its kind.
//
//	message   u user, t text, n message counter, q entry counter, c client_id, r reply_to, m mentions
//	edit      k=e, u, x target, t text, q, m mentions
//	delete    k=d, u, x target, q
//	reaction  k=r, u, x target, j emoji, o on (1|0), q
//	member    k=M, u who made the change, w whose membership, g change, q

// decodeEntry turns a stream entry of room into an Entry; ok is false for
// an entry it cannot read.
func decodeEntry(room string, x redis.XMessage) (engine.Entry, bool) {
	id, err := engine.ParsePos(x.ID)
	if err != nil {
		return engine.Entry{}, false
	}
	f := func(k string) string { v, _ := x.Values[k].(string); return v }
	e := engine.Entry{ID: id, Room: room, User: f("u"), Kind: engine.EntryMessage}
	e.Q, _ = strconv.ParseUint(f("q"), 10, 64)
	switch k := f("k"); k {
	case "", "m":
		e.Text, e.ClientID = f("t"), f("c")
		e.N, _ = strconv.ParseUint(f("n"), 10, 64)
		if e.Q == 0 {
			// Old layout: every entry was a message, so the message
			// counter was the entry counter.
			e.Q = e.N
		}
		e.ReplyTo, _ = engine.ParsePos(f("r"))
		e.Mentions = fields(f("m"))
	case "e":
		e.Kind, e.Text, e.Mentions = engine.EntryEdit, f("t"), fields(f("m"))
		e.Target, _ = engine.ParsePos(f("x"))
	case "d":
		e.Kind = engine.EntryDelete
		e.Target, _ = engine.ParsePos(f("x"))
	case "r":
		e.Kind, e.Emoji, e.On = engine.EntryReaction, f("j"), f("o") == "1"
		e.Target, _ = engine.ParsePos(f("x"))
	case "M":
		e.Kind, e.Member, e.Change = engine.EntryMember, f("w"), f("g")
	default:
		return engine.Entry{}, false
	}
	return e, true
}

func decodeEntries(room string, xs []redis.XMessage) []engine.Entry {
	out := make([]engine.Entry, 0, len(xs))
	for _, x := range xs {
		if e, ok := decodeEntry(room, x); ok {
			out = append(out, e)
		}
	}
	return out
}

func fields(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Fields(s)
}

// Notices: what append.lua and room.lua publish on a room's channel for
// every entry they store, and what presence, read receipts, typing and
// topics publish there. Fields are separated by \x1f, which no text can
// hold (control characters are refused); the text, when there is one,
// comes last.
//
//	m id q n user client_id reply_to mentions text
//	e id q user target mentions text
//	d id q user target
//	r id q user target emoji on
//	M id q by who change
//	P '' '' user state        (presence)
//	R '' '' user id           (read receipt, direct rooms)
//	Y '' '' user              (typing)
//	T '' '' user topic        (topic)
const sep = "\x1f"

// decodeNotice parses a room channel's payload into an entry (isEntry) or
// an ephemeral event; ok is false for a payload it cannot read.
func decodeNotice(room, payload string) (e engine.Entry, ev engine.Event, isEntry, ok bool) {
	if len(payload) < 2 {
		return e, ev, false, false
	}
	kind := payload[0]
	n := map[byte]int{'m': 9, 'e': 7, 'd': 5, 'r': 7, 'M': 6, 'P': 5, 'R': 5, 'Y': 4, 'T': 5}[kind]
	if n == 0 {
		return e, ev, false, false
	}
	p := strings.SplitN(payload, sep, n)
	if len(p) != n {
		return e, ev, false, false
	}
	switch kind {
	case 'P':
		return e, engine.Event{Kind: engine.EventPresence, Room: room, User: p[3], State: p[4]}, false, true
	case 'R':
		id, err := engine.ParsePos(p[4])
		return e, engine.Event{Kind: engine.EventRead, Room: room, User: p[3], ID: id}, false, err == nil
	case 'Y':
		return e, engine.Event{Kind: engine.EventTyping, Room: room, User: p[3]}, false, true
	case 'T':
		return e, engine.Event{Kind: engine.EventTopic, Room: room, User: p[3], Topic: p[4]}, false, true
	}
	id, err := engine.ParsePos(p[1])
	if err != nil {
		return e, ev, false, false
	}
	q, err := strconv.ParseUint(p[2], 10, 64)
	if err != nil {
		return e, ev, false, false
	}
	e = engine.Entry{Kind: engine.EntryKind(kind), ID: id, Room: room, Q: q}
	switch kind {
	case 'm':
		e.N, _ = strconv.ParseUint(p[3], 10, 64)
		e.User, e.ClientID, e.Mentions, e.Text = p[4], p[5], fields(p[7]), p[8]
		e.ReplyTo, _ = engine.ParsePos(p[6])
	case 'e':
		e.User, e.Mentions, e.Text = p[3], fields(p[5]), p[6]
		e.Target, _ = engine.ParsePos(p[4])
	case 'd':
		e.User = p[3]
		e.Target, _ = engine.ParsePos(p[4])
	case 'r':
		e.User, e.Emoji, e.On = p[3], p[5], p[6] == "1"
		e.Target, _ = engine.ParsePos(p[4])
	case 'M':
		e.User, e.Member, e.Change = p[3], p[4], p[5]
	}
	return e, ev, true, true
}

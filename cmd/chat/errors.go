package main

import (
	"errors"
	"strings"

	"github.com/redstream/chat/transport/wire"
)

// codeWords is what the server appends to a message when it wraps an
// error of that code ("password must be 8 to 256 characters: invalid").
var codeWords = map[string]string{
	"invalid":        "invalid",
	"not_found":      "not found",
	"forbidden":      "forbidden",
	"too_large":      "too large",
	"rate_limited":   "rate limited",
	"room_exists":    "already exists",
	"username_taken": "already exists",
	"banned":         "banned",
}

// humanError is an error message as a person should read it: without the
// code it repeats at its end, and reworded where that leaves too little
// ("user bob: not found" is "no user named bob").
func humanError(code, msg string) string {
	msg = strings.TrimSpace(msg)
	if w, ok := codeWords[code]; ok {
		msg = strings.TrimSpace(strings.TrimSuffix(msg, ": "+w))
	}
	if what, name, ok := strings.Cut(msg, " "); ok && !strings.Contains(name, " ") {
		name = strings.Trim(name, `"`)
		switch {
		case code == "not_found" && what == "user":
			return "no user named " + name
		case code == "not_found" && what == "room":
			return "no room named " + name
		case code == "forbidden" && what == "room":
			return "you do not have access to " + name
		case code == "not_found" && what == "message":
			return "message " + name + " does not exist or was deleted"
		}
	}
	// The store's answer to a reply to a message it does not hold.
	if rest, ok := strings.CutPrefix(msg, "reply_to "); ok && code == "not_found" {
		if id, room, ok := strings.Cut(rest, " is not a message of "); ok {
			return "there is no message " + id + " in " + room + " to reply to"
		}
	}
	if msg == "" {
		return strings.ReplaceAll(code, "_", " ")
	}
	return msg
}

// action is what a command or a slash command asked the server to do,
// for refusal.
type action int

const (
	actSend action = iota
	actEdit
	actDelete
	actReact
)

// refusal rewords the server's terse refusal of an action on a message.
// The store checks authorship, the edit window, mutes and bans in the
// same step as the write and, refusing, says only "room R: forbidden",
// which humanError would render as "you do not have access to R": wrong
// for someone who may read R but not edit another's message there.
func refusal(err error, act action, room string) error {
	var ae *APIError
	if !errors.As(err, &ae) {
		return err
	}
	msg, ok := refusalText(ae.Code, ae.Message, act, room)
	if !ok {
		return err
	}
	c := *ae
	c.Message = msg
	return &c
}

// refusalText is refusal for a code and message, from REST or an error
// frame; it reports false when the server's own message says enough.
func refusalText(code, msg string, act action, room string) (string, bool) {
	if code != wire.CodeForbidden || strings.TrimSuffix(strings.TrimSpace(msg), ": forbidden") != "room "+room {
		return "", false
	}
	r := oneLine(room)
	switch act {
	case actEdit:
		return "you may edit only your own messages (within the server's edit window, and not while muted in " + r + ")", true
	case actDelete:
		return "only its author, or an owner or moderator of " + r + ", may delete a message", true
	case actReact:
		return "you may not react in " + r + " (muted, banned or not a member)", true
	default:
		return "you may not send to " + r + " (muted, banned or not a member)", true
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/redstream/chat/transport/wire"
)

// errQuit is what a slash command returns to end the session.
var errQuit = errors.New("quit")

// slashCommand is one command of `chat join`, typed as "/name args".
type slashCommand struct {
	name string // without the slash
	args string // for /help: what follows the name, "" for nothing
	help string // one line for /help
	run  func(s *session, args string) error
}

// slashCommands is the table of `chat join`'s commands, in /help's order.
// A later command (/edit, /react, /thread…) is one more entry here; run
// gets the text after the name and prints through s.println.
var slashCommands []slashCommand

func init() {
	slashCommands = []slashCommand{
		{"help", "", "list these commands", (*session).slashHelp},
		{"who", "", "who is in the room now", (*session).slashWho},
		{"me", "TEXT", "say TEXT as an action: * alice TEXT", (*session).slashMe},
		{"reply", "[REF] TEXT", "answer a message in its thread", (*session).slashReply},
		{"thread", "[REF]", "show a message and its replies", (*session).slashThread},
		{"edit", "[REF] TEXT", "replace the text of your message (your newest if no REF)", (*session).slashEdit},
		{"delete", "[REF]", "delete a message (your newest if no REF)", (*session).slashDelete},
		{"react", "[REF] EMOJI", "react to a message with EMOJI", (*session).slashReact},
		{"unreact", "[REF] EMOJI", "take your EMOJI back", (*session).slashUnreact},
		{"quit", "", "leave (as do Ctrl-D and Ctrl-C)", func(*session, string) error { return errQuit }},
	}
}

func findSlash(name string) (slashCommand, bool) {
	i := slices.IndexFunc(slashCommands, func(c slashCommand) bool { return c.name == name })
	if i < 0 {
		return slashCommand{}, false
	}
	return slashCommands[i], true
}

// input acts on one typed line: a slash command runs, "//text" sends
// "/text", anything else is sent to the room. It returns errQuit when the
// session should end.
func (s *session) input(line string) error {
	line = strings.TrimSuffix(line, "\r")
	trimmed := strings.TrimSpace(line)
	switch {
	case trimmed == "":
		return nil
	case strings.HasPrefix(trimmed, "//"):
		s.queue(strings.TrimPrefix(strings.TrimLeft(line, " \t"), "/"), "")
		return nil
	case !strings.HasPrefix(trimmed, "/"):
		s.queue(line, "")
		return nil
	}
	name, args, _ := strings.Cut(trimmed[1:], " ")
	cmd, ok := findSlash(strings.ToLower(name))
	if !ok {
		s.println(fmt.Sprintf("! unknown command /%s; /help lists them (start a line with // to send a /)", oneLine(name)))
		return nil
	}
	return cmd.run(s, strings.TrimSpace(args))
}

func (s *session) slashHelp(string) error {
	var b strings.Builder
	b.WriteString("* commands:")
	uses := make([]string, len(slashCommands))
	width := 0
	for i, c := range slashCommands {
		uses[i] = "/" + c.name
		if c.args != "" {
			uses[i] += " " + c.args
		}
		width = max(width, utf8.RuneCountInString(uses[i]))
	}
	for i, c := range slashCommands {
		fmt.Fprintf(&b, "\n*   %-*s  %s", width, uses[i], c.help)
	}
	b.WriteString("\n*   REF names a message: ^ the newest shown, ^2 the one before, … or its id;")
	b.WriteString("\n*   without one, the newest message (for /edit and /delete, your newest)")
	b.WriteString("\n*   anything else is sent to the room; //text sends /text")
	s.println(b.String())
	return nil
}

func (s *session) slashWho(string) error {
	users := make([]string, 0, len(s.online))
	for u := range s.online {
		users = append(users, oneLine(u))
	}
	slices.Sort(users)
	if s.conn == nil {
		s.println("* not connected; last known in " + oneLine(s.room) + ": " + strings.Join(users, ", "))
		return nil
	}
	s.println(fmt.Sprintf("* in %s now (%d): %s", oneLine(s.room), len(users), strings.Join(users, ", ")))
	return nil
}

func (s *session) slashMe(args string) error {
	if args == "" {
		s.println("! /me needs something to do: /me waves")
		return nil
	}
	s.queue("/me "+args, "")
	return nil
}

// completeSlash completes a line that is a partial command name, for Tab:
// "/wh" becomes "/who ". Only a unique completion is taken.
func completeSlash(line string) (string, bool) {
	if !strings.HasPrefix(line, "/") || strings.ContainsAny(line, " \t") {
		return "", false
	}
	var found []string
	for _, c := range slashCommands {
		if strings.HasPrefix("/"+c.name, line) {
			found = append(found, "/"+c.name+" ")
		}
	}
	if len(found) != 1 {
		return "", false
	}
	return found[0], true
}

// isRef reports whether a word names a message: ^, ^N or a message id.
// A bare number does not, so "/reply 2 of us agree" is text.
func isRef(word string) bool {
	if rest, ok := strings.CutPrefix(word, "^"); ok {
		n, err := strconv.Atoi(rest)
		return rest == "" || (err == nil && n > 0)
	}
	return strings.Contains(word, "-") && messageID.MatchString(word)
}

// splitRef takes a leading REF off a slash command's arguments.
func splitRef(args string) (ref, rest string) {
	first, rest, _ := strings.Cut(args, " ")
	if isRef(first) {
		return first, strings.TrimLeft(rest, " ")
	}
	return "", args
}

// resolve turns a REF into a message id. An empty ref means the newest
// message shown that is not deleted (and, with own, that self wrote).
func (s *session) resolve(ref string, own bool) (string, error) {
	if ref == "" {
		for i := len(s.seen) - 1; i >= 0; i-- {
			if m := s.seen[i]; !m.Deleted && (!own || m.User == s.self) {
				return m.ID, nil
			}
		}
		if own {
			return "", errors.New("you have sent no message here yet that could be meant; name one with ^N or its id")
		}
		return "", errors.New("no message shown yet; name one by its id")
	}
	rest, ok := strings.CutPrefix(ref, "^")
	if !ok {
		return ref, nil
	}
	n := 1
	if rest != "" {
		n, _ = strconv.Atoi(rest)
	}
	if n > len(s.seen) {
		return "", fmt.Errorf("%s: only %d message(s) shown; name older ones by their id (chat history shows them)", ref, len(s.seen))
	}
	return s.seen[len(s.seen)-n].ID, nil
}

// named says which message an id is, for the lines about an action on it:
// `bob "hi there"`, or the id itself.
func (s *session) named(id string) string {
	if d := s.describe(id); d != "" {
		return d
	}
	return id
}

func (s *session) slashReply(args string) error {
	ref, text := splitRef(args)
	if strings.TrimSpace(text) == "" {
		s.println("! /reply needs text: /reply ^2 sounds good")
		return nil
	}
	id, err := s.resolve(ref, false)
	if err != nil {
		s.println("! not sent: " + err.Error())
		return nil
	}
	s.queue(text, id)
	return nil
}

func (s *session) slashEdit(args string) error {
	ref, text := splitRef(args)
	if strings.TrimSpace(text) == "" {
		s.println("! /edit needs the new text: /edit ^ fixed the typo (/delete removes a message)")
		return nil
	}
	id, err := s.resolve(ref, ref == "")
	if err != nil {
		s.println("! not edited: " + err.Error())
		return nil
	}
	text = strings.ToValidUTF8(text, "\uFFFD")
	s.act(wire.ClientFrame{Type: wire.TypeEdit, Room: s.room, ID: id, Text: text},
		&pendingAction{act: actEdit, failed: "not edited", what: "the edit of " + s.named(id)})
	return nil
}

func (s *session) slashDelete(args string) error {
	ref, rest := splitRef(args)
	if rest != "" {
		s.println("! /delete takes at most a REF: /delete ^2")
		return nil
	}
	id, err := s.resolve(ref, ref == "")
	if err != nil {
		s.println("! not deleted: " + err.Error())
		return nil
	}
	s.act(wire.ClientFrame{Type: wire.TypeDelete, Room: s.room, ID: id},
		&pendingAction{act: actDelete, failed: "not deleted", what: "the deletion of " + s.named(id)})
	return nil
}

func (s *session) slashReact(args string) error   { return s.react(args, true) }
func (s *session) slashUnreact(args string) error { return s.react(args, false) }

func (s *session) react(args string, on bool) error {
	name, failed := "/react", "no reaction"
	if !on {
		name, failed = "/unreact", "not taken back"
	}
	ref, emoji := splitRef(args)
	if checkEmoji(emoji) != nil {
		s.println("! " + name + " needs one emoji: " + name + " ^2 👍")
		return nil
	}
	id, err := s.resolve(ref, false)
	if err != nil {
		s.println("! " + failed + ": " + err.Error())
		return nil
	}
	s.act(wire.ClientFrame{Type: wire.TypeReact, Room: s.room, ID: id, Emoji: emoji, On: &on},
		&pendingAction{act: actReact, failed: failed, what: "the reaction " + oneLine(emoji) + " to " + s.named(id), emoji: emoji, on: on})
	return nil
}

// act sends an edit, delete or react frame with a ref of its own, so that
// its answer can be told from others'. Unlike a line, it is not sent
// again after a reconnect: a second deletion or edit is not the same as
// the first.
func (s *session) act(f wire.ClientFrame, a *pendingAction) {
	if s.conn == nil {
		s.println("! " + a.failed + ": not connected; try again when the connection is back")
		return
	}
	s.actSeq++
	ref := "act-" + strconv.Itoa(s.actSeq)
	f.Ref, _ = json.Marshal(ref)
	s.acting[ref] = a
	s.write(f)
}

// actionDone handles the ack of an action. The edit, deletion or reaction
// itself comes back as an event of the room and is shown then; only a
// reaction that changed nothing says so here.
func (s *session) actionDone(a *pendingAction, ack wire.Ack) {
	switch {
	case s.opts.JSON:
	case ack.ID == "" && a.emoji != "" && a.on:
		s.println("* you had already reacted " + oneLine(a.emoji) + " there")
	case ack.ID == "" && a.emoji != "":
		s.println("* you had not reacted " + oneLine(a.emoji) + " there")
	case s.opts.Verbose:
		s.println("✓")
	}
}

// refusal is the reason an action was refused, in words for people.
func (s *session) refusal(e wire.Error, a *pendingAction) string {
	if msg, ok := refusalText(e.Code, e.Message, a.act, s.room); ok {
		return msg
	}
	return oneLine(humanError(e.Code, e.Message))
}

// forgetActions gives up the actions still waiting when the connection
// drops: their answer will not come. Each is reported, since it may or
// may not have been applied; if it was, it shows up in the replay.
func (s *session) forgetActions() {
	if len(s.acting) == 0 {
		return
	}
	refs := make([]string, 0, len(s.acting))
	for ref := range s.acting {
		refs = append(refs, ref)
	}
	slices.SortFunc(refs, cmpRef)
	for _, ref := range refs {
		s.println("! the connection dropped before the server answered " + s.acting[ref].what + "; if it does not show up, try again")
	}
	clear(s.acting)
}

// cmpRef orders the refs of act by their number.
func cmpRef(a, b string) int {
	na, _ := strconv.Atoi(strings.TrimPrefix(a, "act-"))
	nb, _ := strconv.Atoi(strings.TrimPrefix(b, "act-"))
	return na - nb
}

// threadPage is how many replies /thread shows; chat thread pages further.
const threadPage = 50

func (s *session) slashThread(args string) error {
	ref, rest := splitRef(args)
	if rest != "" {
		s.println("! /thread takes at most a REF: /thread ^2")
		return nil
	}
	id, err := s.resolve(ref, false)
	if err != nil {
		s.println("! no thread: " + err.Error())
		return nil
	}
	if m := s.seenByID[id]; m != nil && m.ReplyTo != "" {
		id = m.ReplyTo // a reply's thread is its root's
	}
	// The call runs beside the session, which keeps showing the room; what
	// it found is shown by the session's goroutine.
	go func() {
		ctx, cancel := context.WithTimeout(s.ctx, s.opts.DialTimeout)
		defer cancel()
		raw, page, err := s.api.Replies(ctx, s.room, id, "", threadPage)
		show := func() { s.showThread(id, raw, page, err) }
		select {
		case s.async <- show:
		case <-s.done:
		}
	}()
	return nil
}

func (s *session) showThread(id string, raw []byte, page *ThreadPage, err error) {
	if err != nil {
		s.println("! no thread: " + oneLine(err.Error()))
		return
	}
	if s.opts.JSON {
		s.printJSON(raw)
		return
	}
	v := view{color: s.opts.Color, self: s.self, state: true, lead: "  "}
	var b strings.Builder
	fmt.Fprintf(&b, "* thread of %s, %s:", oneLine(page.Root.User), plural(page.Root.ReplyCount, "reply", "replies"))
	b.WriteString("\n" + renderMessage(page.Root, v))
	v.lead = "    "
	for _, m := range page.Messages {
		m.ReplyTo = "" // it answers the message above
		b.WriteString("\n" + renderMessage(m, v))
	}
	if page.HasMore && len(page.Messages) > 0 {
		fmt.Fprintf(&b, "\n* more: chat thread %s %s --after %s", oneLine(s.room), id, page.Messages[len(page.Messages)-1].ID)
	}
	s.println(b.String())
}

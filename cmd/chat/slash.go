package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
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
		s.queue(strings.TrimPrefix(strings.TrimLeft(line, " \t"), "/"))
		return nil
	case !strings.HasPrefix(trimmed, "/"):
		s.queue(line)
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
	for _, c := range slashCommands {
		use := "/" + c.name
		if c.args != "" {
			use += " " + c.args
		}
		fmt.Fprintf(&b, "\n*   %-10s %s", use, c.help)
	}
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
	s.queue("/me " + args)
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

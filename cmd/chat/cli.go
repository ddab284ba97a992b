package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // the server, the network or the local files said no
	exitUsage = 2 // the command line is wrong
)

const defaultServer = "http://localhost:8080"

// usageHead and usageFlags frame the command list in globalUsage.
const usageHead = `usage: chat [--server URL] [--config-dir DIR] [--json] [--verbose] COMMAND [ARGS]

commands:
`

const usageFlags = `
global flags (also accepted after the command):
  --server URL         server base URL (env CHAT_SERVER, default ` + defaultServer + `)
  --config-dir DIR     where the token is kept (env CHAT_CONFIG_DIR)
  --json               print JSON (rooms, history, thread, edit, members, bans, whoami;
                       join prints every frame)
  --verbose            join: print ✓ when the server confirms a sent line
`

// usageError is a wrong command line; it exits with exitUsage.
type usageError struct {
	cmd string // the command whose usage to show; empty for the global one
	msg string
}

func (e *usageError) Error() string { return e.msg }

// errHelp reports that help was asked for and printed.
var errHelp = errors.New("help requested")

// cli holds one invocation's streams and global settings.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	server    string // as given; see resolveServer
	serverSet bool   // --server or CHAT_SERVER given explicitly
	configDir string
	json      bool
	verbose   bool

	// joinOptions lets tests shorten the interactive session's timers.
	joinOptions joinOptions
}

// command is one subcommand.
type command struct {
	name    string
	args    string // the usage line after the command name
	summary string // what it does, for chat help
	run     func(c *cli, args []string) error
}

// commands is the table of subcommands, in the order chat help lists
// them. A new command (edit, react, members…) is one more entry: its
// usage errors and its line in chat help come from here.
var commands []command

func init() {
	commands = []command{
		{"register", "USER", "create an account (password from a prompt or stdin)", (*cli).cmdRegister},
		{"login", "USER", "log in and save the token", (*cli).cmdLogin},
		{"logout", "", "revoke the token and forget it", (*cli).cmdLogout},
		{"whoami", "[--json]", "show the logged-in user", (*cli).cmdWhoami},
		{"rooms", "[--json]", "list rooms: kind, your role, unread messages and mentions, topic", (*cli).cmdRooms},
		{"history", "ROOM [--before ID] [--after ID] [--limit N] [--json]", "print a page of history, oldest first, each message with its id", (*cli).cmdHistory},
		{"send", "ROOM TEXT...", "post a message and print its id", (*cli).cmdSend},
		{"reply", "ROOM ID TEXT...", "answer message ID in its thread and print the reply's id", (*cli).cmdReply},
		{"thread", "ROOM ID [--after ID] [--limit N] [--json]", "print message ID and its replies", (*cli).cmdThread},
		{"edit", "ROOM ID TEXT... [--json]", "replace the text of your message ID", (*cli).cmdEdit},
		{"delete", "ROOM ID", "delete message ID (yours, or any as owner or moderator)", (*cli).cmdDelete},
		{"react", "ROOM ID EMOJI [--off]", "react to message ID with EMOJI (--off takes it back)", (*cli).cmdReact},
		{"dm", "USER", "open the direct room with USER and print its name", (*cli).cmdDM},
		{"join", "ROOM [--json] [--verbose]", "chat interactively (/help lists its commands; /quit leaves)", (*cli).cmdJoin},
		{"create", "NAME [--private] [--topic TEXT]", "create a channel you own (--private: members only)", (*cli).cmdCreate},
		{"topic", "ROOM TEXT...", `set the room's topic ("" clears it)`, (*cli).cmdTopic},
		{"members", "ROOM [--json]", "list the room's members: role and whether online", (*cli).cmdMembers},
		{"add", "ROOM USER", "add USER to the room", (*cli).cmdAdd},
		{"remove", "ROOM USER", "remove USER from the room", (*cli).cmdRemove},
		{"leave", "ROOM", "stop being a member of the room", (*cli).cmdLeave},
		{"role", "ROOM USER ROLE", "make USER owner, moderator or member of the room", (*cli).cmdRole},
		{"ban", "ROOM USER [--for DURATION]", "remove USER and keep them out (for 10m, 2h, 7d…; else until lifted)", (*cli).cmdBan},
		{"unban", "ROOM USER", "lift USER's ban", (*cli).cmdUnban},
		{"bans", "ROOM [--json]", "list the bans in force", (*cli).cmdBans},
		{"mute", "ROOM USER [--for DURATION]", "let USER read but not write in the room", (*cli).cmdMute},
		{"unmute", "ROOM USER", "lift USER's mute", (*cli).cmdUnmute},
	}
}

func findCommand(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// globalUsage is chat help: the command table and the global flags.
func globalUsage() string {
	var b strings.Builder
	b.WriteString(usageHead)
	for _, c := range commands {
		use := c.name
		if a := strings.TrimSpace(strings.NewReplacer("[--json]", "", "[--verbose]", "").Replace(c.args)); a != "" {
			use += " " + a
		}
		if len(use) > 19 {
			fmt.Fprintf(&b, "  %s\n  %-20s %s\n", use, "", c.summary)
		} else {
			fmt.Fprintf(&b, "  %-20s %s\n", use, c.summary)
		}
	}
	b.WriteString(usageFlags)
	return b.String()
}

// run is the whole program: it parses args, runs one command and returns
// the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	return c.exit(c.main(args))
}

func (c *cli) main(args []string) error {
	if s := c.getenv("CHAT_SERVER"); s != "" {
		c.server, c.serverSet = s, true
	} else {
		c.server = defaultServer
	}
	c.configDir = c.getenv("CHAT_CONFIG_DIR")

	fs := c.flagSet("chat")
	if err := fs.Parse(args); err != nil {
		return c.flagError("", err)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return &usageError{msg: "no command given"}
	}
	if rest[0] == "help" {
		fmt.Fprint(c.stdout, globalUsage())
		return nil
	}
	cmd, ok := findCommand(rest[0])
	if !ok {
		return &usageError{msg: fmt.Sprintf("unknown command %q", rest[0])}
	}
	return cmd.run(c, rest[1:])
}

// exit prints err the way its kind asks for and returns the exit status.
func (c *cli) exit(err error) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(c.stderr, "chat: %s\n", ue.msg)
		if ue.cmd != "" {
			cmd, _ := findCommand(ue.cmd)
			fmt.Fprintf(c.stderr, "usage: chat %s %s\n(run chat help for the global flags)\n", ue.cmd, cmd.args)
		} else {
			fmt.Fprint(c.stderr, globalUsage())
		}
		return exitUsage
	}
	fmt.Fprintf(c.stderr, "chat: %s\n", err)
	var ae *APIError
	if errors.As(err, &ae) {
		switch {
		case ae.Code == "unauthorized":
			fmt.Fprintln(c.stderr, "chat: run chat login USER to log in again")
		case ae.RetryAfter != "":
			fmt.Fprintf(c.stderr, "chat: try again in %s s\n", ae.RetryAfter)
		}
	}
	return exitError
}

// flagSet returns a FlagSet with the global flags bound to c, so that they
// are accepted both before and after the command. Defaults are the values
// parsed so far.
func (c *cli) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Func("server", "server base URL", func(s string) error {
		c.server, c.serverSet = s, true
		return nil
	})
	fs.StringVar(&c.configDir, "config-dir", c.configDir, "configuration directory")
	fs.BoolVar(&c.json, "json", c.json, "print JSON")
	fs.BoolVar(&c.verbose, "verbose", c.verbose, "print more")
	return fs
}

func (c *cli) flagError(cmd string, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		if cmd == "" {
			fmt.Fprint(c.stdout, globalUsage())
		} else {
			command, _ := findCommand(cmd)
			fmt.Fprintf(c.stdout, "usage: chat %s %s\n\n%s", cmd, command.args, globalUsage())
		}
		return errHelp
	}
	return &usageError{cmd: cmd, msg: err.Error()}
}

// parseArgs parses a command's flags wherever they appear among its
// arguments and returns the arguments. After stopAfter arguments (if
// positive) or after "--", everything left is an argument.
func parseArgs(fs *flag.FlagSet, args []string, stopAfter int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
		if stopAfter > 0 && len(pos) >= stopAfter {
			if len(args) > 0 && args[0] == "--" {
				args = args[1:]
			}
			return append(pos, args...), nil
		}
	}
}

// flagGiven reports whether the flag name was given on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// args parses a command's flags and checks it got between min and max
// arguments (max < 0: no limit).
func (c *cli) args(name string, fs *flag.FlagSet, args []string, stopAfter, min, max int) ([]string, error) {
	pos, err := parseArgs(fs, args, stopAfter)
	if err != nil {
		return nil, c.flagError(name, err)
	}
	switch {
	case len(pos) < min:
		return nil, &usageError{cmd: name, msg: "missing argument"}
	case max >= 0 && len(pos) > max:
		return nil, &usageError{cmd: name, msg: fmt.Sprintf("unexpected argument %q", pos[max])}
	}
	if min > 0 && strings.TrimSpace(pos[0]) == "" {
		return nil, &usageError{cmd: name, msg: "empty argument"}
	}
	return pos, nil
}

// resolveServer picks the server: --server or CHAT_SERVER, else the saved
// login's, else the default.
func (c *cli) resolveServer(saved *savedLogin) (string, error) {
	s := c.server
	if !c.serverSet && saved != nil && saved.Server != "" {
		s = saved.Server
	}
	n, err := normalizeServer(s)
	if err != nil {
		return "", &usageError{msg: err.Error()}
	}
	return n, nil
}

func (c *cli) dir() (string, error) {
	if c.configDir != "" {
		return c.configDir, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no configuration directory (%v); use --config-dir", err)
	}
	return filepath.Join(d, "chat"), nil
}

// anonClient is a client without a token, for register and login.
func (c *cli) anonClient() (*Client, error) {
	server, err := c.resolveServer(nil)
	if err != nil {
		return nil, err
	}
	return &Client{Server: server}, nil
}

// authClient is a client with the saved token for the chosen server.
func (c *cli) authClient() (*Client, *savedLogin, error) {
	dir, err := c.dir()
	if err != nil {
		return nil, nil, err
	}
	saved, err := loadLogin(dir)
	if err != nil {
		return nil, nil, err
	}
	server, err := c.resolveServer(saved)
	if err != nil {
		return nil, nil, err
	}
	if s, err := normalizeServer(saved.Server); err != nil || s != server {
		// Never hand one server's token to another.
		return nil, nil, fmt.Errorf("not logged in to %s (the saved login is for %s); run chat login USER", server, saved.Server)
	}
	if saved.expired(time.Now()) {
		return nil, nil, errors.New("the saved login has expired; run chat login USER")
	}
	return &Client{Server: server, Token: saved.Token}, saved, nil
}

// readPassword reads a password without echo from a terminal, or else as
// one line of stdin (so `echo pw | chat login alice` works).
func (c *cli) readPassword(confirm bool) (string, error) {
	if f, ok := c.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		pw, err := c.promptPassword(f, "Password: ")
		if err != nil || !confirm {
			return pw, err
		}
		again, err := c.promptPassword(f, "Repeat password: ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", errors.New("the passwords do not match")
		}
		return pw, nil
	}
	line, err := bufio.NewReader(c.stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("reading the password: %v", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("no password given on standard input")
	}
	return line, nil
}

func (c *cli) promptPassword(f *os.File, prompt string) (string, error) {
	fmt.Fprint(c.stderr, prompt)
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(c.stderr)
	if err != nil {
		return "", fmt.Errorf("reading the password: %v", err)
	}
	return string(b), nil
}

func (c *cli) cmdRegister(args []string) error {
	pos, err := c.args("register", c.flagSet("register"), args, 0, 1, 1)
	if err != nil {
		return err
	}
	cl, err := c.anonClient()
	if err != nil {
		return err
	}
	pw, err := c.readPassword(true)
	if err != nil {
		return err
	}
	name, err := cl.Register(context.Background(), pos[0], pw)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "registered %s\n", name)
	return nil
}

func (c *cli) cmdLogin(args []string) error {
	pos, err := c.args("login", c.flagSet("login"), args, 0, 1, 1)
	if err != nil {
		return err
	}
	cl, err := c.anonClient()
	if err != nil {
		return err
	}
	dir, err := c.dir()
	if err != nil {
		return err
	}
	pw, err := c.readPassword(false)
	if err != nil {
		return err
	}
	resp, err := cl.Login(context.Background(), pos[0], pw)
	if err != nil {
		return err
	}
	saved := &savedLogin{Server: cl.Server, Username: resp.Username, Token: resp.Token, ExpiresAt: resp.ExpiresAt}
	if err := saveLogin(dir, saved); err != nil {
		return fmt.Errorf("saving the token: %v", err)
	}
	expires := resp.ExpiresAt
	if t, err := time.Parse(time.RFC3339, resp.ExpiresAt); err == nil {
		expires = t.Local().Format("2006-01-02 15:04 MST")
	}
	fmt.Fprintf(c.stdout, "logged in as %s (token expires %s)\n", resp.Username, expires)
	return nil
}

func (c *cli) cmdLogout(args []string) error {
	if _, err := c.args("logout", c.flagSet("logout"), args, 0, 0, 0); err != nil {
		return err
	}
	dir, err := c.dir()
	if err != nil {
		return err
	}
	cl, _, err := c.authClient()
	if err == nil {
		err = cl.Logout(context.Background())
	}
	var ae *APIError
	if err != nil && !errors.Is(err, errNotLoggedIn) && !(errors.As(err, &ae) && ae.Status == 401) {
		// Keep the file: the token still works and logout can be retried.
		return err
	}
	// Logged out, or the token was already useless: forget it.
	if err := removeLogin(dir); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "logged out")
	return nil
}

func (c *cli) cmdWhoami(args []string) error {
	if _, err := c.args("whoami", c.flagSet("whoami"), args, 0, 0, 0); err != nil {
		return err
	}
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	raw, name, err := cl.Me(context.Background())
	if err != nil {
		return err
	}
	if c.json {
		return c.writeRaw(raw)
	}
	fmt.Fprintf(c.stdout, "%s on %s\n", name, cl.Server)
	return nil
}

func (c *cli) cmdHistory(args []string) error {
	fs := c.flagSet("history")
	var q HistoryQuery
	fs.StringVar(&q.Before, "before", "", "page of messages older than this id")
	fs.StringVar(&q.After, "after", "", "page of messages newer than this id")
	fs.IntVar(&q.Limit, "limit", 0, "messages per page (1-200)")
	pos, err := c.args("history", fs, args, 0, 1, 1)
	if err != nil {
		return err
	}
	if q.Before != "" && q.After != "" {
		return &usageError{cmd: "history", msg: "--before and --after exclude each other"}
	}
	if q.Limit < 0 || (q.Limit == 0 && flagGiven(fs, "limit")) {
		return &usageError{cmd: "history", msg: "--limit must be a positive number"}
	}
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	room := pos[0]
	raw, page, err := cl.History(context.Background(), room, q)
	if err != nil {
		return err
	}
	if c.json {
		if err := c.writeRaw(raw); err != nil {
			return err
		}
	} else {
		c.printStored(historyView(room, page.Messages), page.Messages, "")
	}
	if page.HasMore && len(page.Messages) > 0 {
		if q.After != "" {
			fmt.Fprintf(c.stderr, "more: chat history %s --after %s\n", room, page.Messages[len(page.Messages)-1].ID)
		} else {
			fmt.Fprintf(c.stderr, "more: chat history %s --before %s\n", room, page.Messages[0].ID)
		}
	}
	return nil
}

func (c *cli) cmdSend(args []string) error {
	pos, err := c.args("send", c.flagSet("send"), args, 1, 2, -1)
	if err != nil {
		return err
	}
	text := strings.Join(pos[1:], " ")
	if strings.TrimSpace(text) == "" {
		return &usageError{cmd: "send", msg: "empty message"}
	}
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	m, err := cl.Send(context.Background(), pos[0], text, newClientID(), "")
	if err != nil {
		return refusal(err, actSend, pos[0])
	}
	fmt.Fprintln(c.stdout, m.ID)
	return nil
}

func (c *cli) cmdDM(args []string) error {
	pos, err := c.args("dm", c.flagSet("dm"), args, 0, 1, 1)
	if err != nil {
		return err
	}
	cl, _, err := c.authClient()
	if err != nil {
		return err
	}
	name, err := cl.DM(context.Background(), pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, name)
	return nil
}

func (c *cli) cmdJoin(args []string) error {
	pos, err := c.args("join", c.flagSet("join"), args, 0, 1, 1)
	if err != nil {
		return err
	}
	cl, saved, err := c.authClient()
	if err != nil {
		return err
	}
	opts := c.joinOptions
	opts.JSON, opts.Verbose = c.json, c.verbose
	out, outTTY := c.stdout.(*os.File)
	outTTY = outTTY && term.IsTerminal(int(out.Fd()))
	in, inTTY := c.stdin.(*os.File)
	inTTY = inTTY && term.IsTerminal(int(in.Fd()))
	opts.Color = outTTY
	room := pos[0]
	// A person at a terminal gets the line editor; pipes and --json get
	// plain lines, so scripts read exactly what the server said.
	var con console
	if inTTY && outTTY && !c.json {
		tty, err := newTTYConsole(in, out, promptFor(room, saved.Username), completeSlash)
		if err != nil {
			return fmt.Errorf("terminal: %v", err)
		}
		con = tty
	} else {
		con = newPlainConsole(c.stdin, c.stdout, c.stderr)
	}
	defer con.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := newSession(cl, room, saved.Username, c.stdout, c.stderr, opts)
	return s.run(ctx, con)
}

// promptFor is the input prompt of a room: "general> ", or "@bob> " in a
// direct room with bob.
func promptFor(room, self string) string {
	if rest, ok := strings.CutPrefix(room, "dm:"); ok {
		a, b, _ := strings.Cut(rest, ":")
		if a == self {
			a = b
		}
		return "@" + oneLine(a) + "> "
	}
	return oneLine(room) + "> "
}

// writeRaw prints a response body as it came, ending in a newline.
func (c *cli) writeRaw(raw []byte) error {
	if len(raw) == 0 || raw[len(raw)-1] != '\n' {
		raw = append(raw, '\n')
	}
	_, err := c.stdout.Write(raw)
	return err
}

// newClientID returns a random idempotency key for one send.
func newClientID() string { return rand.Text() }

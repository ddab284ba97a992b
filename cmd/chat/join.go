package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/redstream/chat/transport/wire"
)

// joinOptions tunes an interactive session. The zero value of each field
// means the default given in its comment.
type joinOptions struct {
	JSON    bool // print every server frame as one JSON line
	Verbose bool // print ✓ when a sent line is acknowledged
	Color   bool // style messages with ANSI escapes (stdout is a terminal)

	Tail         int           // history messages shown on the first join; 20
	MinBackoff   time.Duration // first wait before reconnecting; 250ms
	MaxBackoff   time.Duration // cap of the doubling wait; 5s
	PingEvery    time.Duration // keepalive interval; 25s
	DrainWait    time.Duration // wait for outstanding acks when input ends; 2s
	DialTimeout  time.Duration // connect, join and the first history page; 10s
	WriteTimeout time.Duration // one frame; 10s
}

func (o *joinOptions) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if o.Tail == 0 {
		o.Tail = 20
	}
	def(&o.MinBackoff, 250*time.Millisecond)
	def(&o.MaxBackoff, 5*time.Second)
	def(&o.PingEvery, 25*time.Second)
	def(&o.DrainWait, 2*time.Second)
	def(&o.DialTimeout, 10*time.Second)
	def(&o.WriteTimeout, 10*time.Second)
}

// typingQuiet is how long a user's typing notice stays quiet after it was
// shown, so a fast typist does not flood the screen.
const typingQuiet = 3 * time.Second

// typingEvery is how often at most a typing frame goes out while we type
// (the web client's pace).
const typingEvery = 2 * time.Second

// errTokenRejected ends a session whose token the server no longer takes
// (close 1008, or 401 on reconnecting).
var errTokenRejected = errors.New("token expired or revoked; run chat login")

// joinRef marks the join frame so its error can be told from others.
var joinRef = json.RawMessage(`"join"`)

// session is one `chat join`. Only the goroutine in run touches its
// fields; the goroutines it starts (stdin reader, socket reader, redial)
// report through its channels.
type session struct {
	api       *Client
	room      string
	self      string
	opts      joinOptions
	out, errw io.Writer

	newest      string                    // newest stream id shown (a message or an event), or joined.last_id
	readSent    string                    // newest id reported with a read frame
	pending     []*outgoing               // lines sent or waiting, not yet acked, oldest first
	seen        []*wire.Message           // messages shown, oldest first, at most maxSeen, in their current state
	seenByID    map[string]*wire.Message  // the same, by id
	acting      map[string]*pendingAction // edits, deletions and reactions sent, by ref, not yet answered
	actSeq      int                       // numbers the refs of acting
	typingShown map[string]time.Time
	typingSent  time.Time           // when our last typing frame went out
	online      map[string]struct{} // who is in the room, from joined and presence

	conn         *websocket.Conn    // nil while disconnected
	connStop     context.CancelFunc // stops conn's reader
	gen          int                // bumped per connection change; older events are stale
	lastRecv     time.Time
	backoff      time.Duration
	retry        <-chan time.Time // fires when it is time to redial
	reconnecting bool             // "* reconnecting…" was printed for this outage
	fatal        error            // ends the session at the next turn of the loop
	closing      bool             // finish has begun; a failure now is no reason to reconnect

	ctx    context.Context // run's, for the REST calls of slash commands
	frames chan frameEvent
	dialed chan dialResult
	async  chan func() // what a REST call made for a slash command has to show
	done   chan struct{}
}

// maxSeen is how many shown messages a session remembers, to name them in
// the lines about later edits, deletions, reactions and replies, and for
// slash commands to point at with ^N. A message further back is named by
// its id.
const maxSeen = 1000

// pendingAction is an edit, delete or react frame waiting for its answer.
type pendingAction struct {
	act    action
	failed string // how a refusal starts: "not edited"
	what   string // what was asked, for a connection lost meanwhile: "the edit of 1-0"
	emoji  string // for a reaction: the emoji,
	on     bool   // and whether it was to be added
}

// outgoing is a typed line. Its client ID stays the same across resends,
// so the server stores it once even if an ack was lost.
type outgoing struct {
	clientID string
	text     string
	replyTo  string // the message this line answers, or ""
}

type frameEvent struct {
	gen  int
	data []byte
	err  error
}

// dialResult is a connection that has joined the room, or why not.
type dialResult struct {
	conn       *websocket.Conn
	joined     wire.Joined
	joinedRaw  []byte
	early      [][]byte       // frames that came before joined
	history    []wire.Message // the tail, on the first connection only
	historyErr error
	err        error
}

func newSession(api *Client, room, self string, out, errw io.Writer, opts joinOptions) *session {
	opts.setDefaults()
	return &session{
		api: api, room: room, self: self, opts: opts, out: out, errw: errw,
		typingShown: make(map[string]time.Time),
		online:      make(map[string]struct{}),
		seenByID:    make(map[string]*wire.Message),
		acting:      make(map[string]*pendingAction),
		ctx:         context.Background(),
		frames:      make(chan frameEvent),
		dialed:      make(chan dialResult),
		async:       make(chan func()),
		done:        make(chan struct{}),
	}
}

// run connects, shows the room and relays between the console and the
// socket until input ends, /quit, ctx ends or the token is refused. The
// first connection is not retried: if it fails, the error is returned.
// It prints through the console, and leaves closing it to the caller.
func (s *session) run(ctx context.Context, con console) error {
	defer close(s.done)
	s.ctx = ctx
	s.out, s.errw = con.Out(), con.Err()
	res := s.connect(ctx, "", true)
	if res.err != nil {
		return res.err
	}
	s.attach(res, true)

	lines := con.Lines()
	typing := con.Typing()
	ping := time.NewTicker(s.opts.PingEvery)
	defer ping.Stop()
	markRead := time.NewTicker(time.Second)
	defer markRead.Stop()
	var drain <-chan time.Time // set once input has ended
	for {
		if s.fatal != nil {
			s.dropConn()
			return s.fatal
		}
		if drain != nil && len(s.pending) == 0 && len(s.acting) == 0 {
			s.finish()
			return nil
		}
		select {
		case <-ctx.Done():
			s.finish()
			return nil
		case ev := <-s.frames:
			if ev.gen != s.gen {
				continue
			}
			if ev.err != nil {
				s.lost(ev.err)
				continue
			}
			s.handle(ev.data)
		case line, ok := <-lines:
			if !ok || s.input(line) == errQuit {
				lines, typing = nil, nil
				drain = time.After(s.opts.DrainWait)
				continue
			}
		case <-typing:
			s.noteTyping()
		case show := <-s.async:
			show()
		case <-s.retry:
			s.retry = nil
			go s.redial(ctx, s.newest)
		case res := <-s.dialed:
			if res.err != nil {
				if permanent(res.err) {
					return res.err
				}
				s.scheduleRetry()
				continue
			}
			s.attach(res, false)
		case <-ping.C:
			s.keepalive()
		case <-markRead.C:
			s.markRead()
		case <-drain:
			n := len(s.pending) + len(s.acting)
			s.finish()
			return fmt.Errorf("%d line(s) not confirmed by the server", n)
		}
	}
}

// permanent reports whether a failed reconnect should end the session
// rather than be retried.
func permanent(err error) bool {
	if errors.Is(err, errTokenRejected) {
		return true
	}
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == 0 { // an error frame answering join
		switch ae.Code {
		case wire.CodeNotFound, wire.CodeForbidden, wire.CodeInvalid, wire.CodeBadFrame:
			return true
		}
	}
	return false
}

// connect dials, joins (from since unless first) and, on the first
// connection, loads the history tail. It runs in its own goroutine for
// reconnects, so it touches only its arguments and immutable fields.
func (s *session) connect(ctx context.Context, since string, first bool) dialResult {
	ctx, cancel := context.WithTimeout(ctx, s.opts.DialTimeout)
	defer cancel()
	conn, err := s.api.Dial(ctx)
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && ae.Status == 401 {
			return dialResult{err: errTokenRejected}
		}
		return dialResult{err: err}
	}
	join := wire.ClientFrame{Type: wire.TypeJoin, Room: s.room, Ref: joinRef}
	if !first {
		join.Since = since
	}
	if err := conn.Write(ctx, websocket.MessageText, wire.Encode(join)); err != nil {
		conn.CloseNow()
		return dialResult{err: closeErr(err)}
	}
	var res dialResult
	for res.joinedRaw == nil {
		_, p, err := conn.Read(ctx)
		if err != nil {
			conn.CloseNow()
			return dialResult{err: closeErr(err)}
		}
		var f struct {
			Type string          `json:"type"`
			Ref  json.RawMessage `json:"ref"`
		}
		if json.Unmarshal(p, &f) != nil {
			continue
		}
		switch {
		case f.Type == wire.TypeJoined:
			var j wire.Joined
			if json.Unmarshal(p, &j) == nil && j.Room == s.room {
				res.joined, res.joinedRaw = j, p
				continue
			}
		case f.Type == wire.TypeError && bytes.Equal(f.Ref, joinRef):
			var e wire.Error
			_ = json.Unmarshal(p, &e)
			conn.Close(websocket.StatusNormalClosure, "")
			return dialResult{err: &APIError{Code: e.Code, Message: e.Message}}
		}
		res.early = append(res.early, p)
	}
	if first {
		var page *HistoryPage
		_, page, res.historyErr = s.api.History(ctx, s.room, HistoryQuery{Limit: s.opts.Tail})
		if page != nil {
			res.history = page.Messages
		}
	}
	res.conn = conn
	return res
}

// closeErr turns a close with 1008 into errTokenRejected.
func closeErr(err error) error {
	if websocket.CloseStatus(err) == wire.ClosePolicy {
		return errTokenRejected
	}
	return err
}

func (s *session) redial(ctx context.Context, since string) {
	res := s.connect(ctx, since, false)
	select {
	case s.dialed <- res:
	case <-s.done:
		if res.conn != nil {
			res.conn.CloseNow()
		}
	}
}

// attach makes a joined connection current: it shows what the join
// brought, starts the reader and sends every line not yet acked.
func (s *session) attach(res dialResult, first bool) {
	s.gen++
	ctx, cancel := context.WithCancel(context.Background())
	s.conn, s.connStop = res.conn, cancel
	s.lastRecv = time.Now()
	s.backoff = 0
	go s.readFrom(ctx, s.gen, res.conn)

	if s.reconnecting {
		s.reconnecting = false
		fmt.Fprintln(s.errw, "* reconnected")
	}
	j := res.joined
	clear(s.online)
	for _, u := range j.Online {
		s.online[u] = struct{}{}
	}
	switch {
	case s.opts.JSON:
		s.printJSON(res.joinedRaw)
	case first:
		online := make([]string, len(j.Online))
		for i, u := range j.Online {
			online[i] = oneLine(u)
		}
		s.println(fmt.Sprintf("* joined %s; online: %s", oneLine(j.Room), strings.Join(online, ", ")))
	}
	if j.Recovered != nil && !*j.Recovered {
		fmt.Fprintln(s.errw, "* some messages of the outage are older than the server keeps; see chat history")
	}
	if first {
		if res.historyErr != nil {
			fmt.Fprintf(s.errw, "* no history: %v\n", res.historyErr)
		}
		for _, m := range res.history {
			s.show(m, nil, true)
		}
		if newerID(j.LastID, s.newest) {
			s.newest = j.LastID
		}
		s.readSent = s.newest // nothing new to report yet
	}
	for _, p := range res.early {
		s.handle(p)
	}
	for _, o := range s.pending {
		if s.conn == nil {
			break // the connection failed again while resending
		}
		s.sendLine(o)
	}
}

func (s *session) readFrom(ctx context.Context, gen int, c *websocket.Conn) {
	for {
		_, p, err := c.Read(ctx)
		select {
		case s.frames <- frameEvent{gen: gen, data: p, err: err}:
		case <-ctx.Done():
			return
		case <-s.done:
			return
		}
		if err != nil {
			return
		}
	}
}

// lost handles a failed connection: a refused token ends the session,
// anything else schedules a reconnect.
func (s *session) lost(err error) {
	s.dropConn()
	if s.closing {
		return
	}
	s.forgetActions()
	switch websocket.CloseStatus(err) {
	case wire.ClosePolicy:
		s.fatal = errTokenRejected
		return
	case wire.CloseTooBig:
		s.dropLargest()
	}
	if !s.reconnecting {
		s.reconnecting = true
		fmt.Fprintln(s.errw, "* reconnecting…")
	}
	s.scheduleRetry()
}

// scheduleRetry arms the redial timer: MinBackoff after a drop, then
// doubling up to MaxBackoff while attempts fail.
func (s *session) scheduleRetry() {
	if s.backoff == 0 {
		s.backoff = s.opts.MinBackoff
	} else {
		s.backoff = min(2*s.backoff, s.opts.MaxBackoff)
	}
	s.retry = time.After(s.backoff)
}

func (s *session) dropConn() {
	if s.conn == nil {
		return
	}
	s.gen++
	s.connStop()
	s.conn.CloseNow()
	s.conn = nil
}

// dropLargest gives up the biggest waiting line after the server closed
// the socket for a too large frame; resending it would only repeat that.
func (s *session) dropLargest() {
	if len(s.pending) == 0 {
		return
	}
	big := 0
	for i, o := range s.pending {
		if len(o.text) > len(s.pending[big].text) {
			big = i
		}
	}
	s.pending = append(s.pending[:big], s.pending[big+1:]...)
	s.println("! too_large: a line was too large for the server and was not sent")
}

// finish leaves cleanly: reports the read position and closes normally.
func (s *session) finish() {
	if s.conn == nil {
		return
	}
	s.closing = true
	s.markRead()
	if s.conn != nil {
		s.conn.Close(websocket.StatusNormalClosure, "")
	}
	s.dropConn()
}

// handle processes one frame from the server.
func (s *session) handle(p []byte) {
	s.lastRecv = time.Now()
	var f struct {
		Type string          `json:"type"`
		Ref  json.RawMessage `json:"ref"`
	}
	if json.Unmarshal(p, &f) != nil {
		return
	}
	switch f.Type {
	case wire.TypeMessage:
		var m wire.Message
		if json.Unmarshal(p, &m) == nil && m.Room == s.room {
			s.show(m, p, false)
		}
		return
	case wire.TypeEdit, wire.TypeDelete, wire.TypeReaction:
		s.event(f.Type, p)
		return
	}
	if s.opts.JSON {
		s.printJSON(p)
	}
	var ref string
	_ = json.Unmarshal(f.Ref, &ref)
	switch f.Type {
	case wire.TypeAck:
		var a wire.Ack
		if json.Unmarshal(p, &a) != nil {
			return
		}
		if act := s.acting[ref]; act != nil {
			delete(s.acting, ref)
			s.actionDone(act, a)
			return
		}
		if s.acked(a.ClientID) && s.opts.Verbose && !s.opts.JSON {
			s.println("✓")
		}
	case wire.TypeError:
		var e wire.Error
		_ = json.Unmarshal(p, &e)
		if act := s.acting[ref]; act != nil {
			delete(s.acting, ref)
			if !s.opts.JSON {
				s.println(fmt.Sprintf("! %s: %s", act.failed, s.refusal(e, act)))
			}
			return
		}
		var refused *outgoing
		if ref != "" {
			refused = s.take(ref) // the server refused this line; it will not ack it
		}
		if s.opts.JSON {
			return
		}
		if refused != nil {
			// The line left the input when it was sent; show it again so
			// it is not lost.
			msg, ok := refusalText(e.Code, e.Message, actSend, s.room)
			if !ok {
				msg = humanError(e.Code, e.Message)
			}
			s.println(fmt.Sprintf("! not sent: %s: %s", oneLine(msg), oneLine(refused.text)))
		} else {
			s.println("! " + oneLine(humanError(e.Code, e.Message)))
		}
	case wire.TypePresence:
		var pr wire.Presence
		if json.Unmarshal(p, &pr) != nil || pr.Room != s.room {
			return
		}
		switch pr.State {
		case wire.StateOnline:
			s.online[pr.User] = struct{}{}
		case wire.StateOffline:
			delete(s.online, pr.User)
		}
		if s.opts.JSON || pr.User == s.self {
			return
		}
		switch pr.State {
		case wire.StateOnline:
			s.println("* " + oneLine(pr.User) + " is online")
		case wire.StateOffline:
			s.println("* " + oneLine(pr.User) + " went offline")
		}
	case wire.TypeTyping:
		var t wire.Typing
		if json.Unmarshal(p, &t) != nil || s.opts.JSON || t.Room != s.room || t.User == s.self {
			return
		}
		now := time.Now()
		if last, ok := s.typingShown[t.User]; ok && now.Sub(last) < typingQuiet {
			return
		}
		s.typingShown[t.User] = now
		s.println("* " + oneLine(t.User) + " is typing…")
	case wire.TypeKicked:
		var k wire.Kicked
		if json.Unmarshal(p, &k) != nil || k.Room != s.room {
			return
		}
		// Nothing more of the room comes to this socket, and rejoining
		// would be refused or would undo what a moderator did: the session
		// is over.
		s.fatal = fmt.Errorf("you were %s", removal(k.Reason, k.Room))
		s.closing = true
		if s.conn != nil {
			s.conn.Close(websocket.StatusNormalClosure, "")
		}
	case wire.TypeRoom:
		var r wire.RoomTopic
		if json.Unmarshal(p, &r) != nil || s.opts.JSON || r.Room != s.room {
			return
		}
		if strings.TrimSpace(r.Topic) == "" {
			s.println("* " + oneLine(r.User) + " cleared the topic")
		} else {
			s.println("* " + oneLine(r.User) + " set the topic: " + oneLine(r.Topic))
		}
	case wire.TypeMention:
		var m wire.Mention
		if json.Unmarshal(p, &m) != nil || s.opts.JSON {
			return
		}
		line := "* " + oneLine(m.User) + " mentioned you in " + oneLine(m.Room) + ": " + oneLine(m.Text)
		if s.opts.Color {
			line = ansiMention + line + ansiReset
		}
		s.println(line)
	case wire.TypeRoomAdded:
		var r wire.RoomAdded
		if json.Unmarshal(p, &r) != nil || s.opts.JSON {
			return
		}
		if r.Kind == "direct" {
			s.println("* new direct room: " + oneLine(r.Room) + " (chat join " + oneLine(r.Room) + ")")
		} else {
			s.println("* you were added to " + oneLine(r.Room) + " (" + oneLine(r.Kind) + ")")
		}
	case wire.TypeRoomRemoved:
		var r wire.RoomRemoved
		// The kicked frame of this room says it, and ends the session.
		if json.Unmarshal(p, &r) != nil || s.opts.JSON || r.Room == s.room {
			return
		}
		s.println("* you were " + removal(r.Reason, r.Room))
	}
}

// removal says how the user lost a room: "banned from team".
func removal(reason, room string) string {
	switch reason {
	case "banned":
		return "banned from " + oneLine(room)
	case "removed", "":
		return "removed from " + oneLine(room)
	}
	return "removed from " + oneLine(room) + " (" + oneLine(reason) + ")"
}

// show prints a message unless it was shown already. Messages come in
// stream order, so anything not newer than the newest shown is a repeat
// (history tail overlapping live messages, or a replay after reconnect).
// state says m is in its current state (the history tail), not as sent.
func (s *session) show(m wire.Message, raw []byte, state bool) {
	if !newerID(m.ID, s.newest) {
		return
	}
	s.newest = m.ID
	s.remember(m)
	if s.opts.JSON {
		if raw == nil {
			m.Type = wire.TypeMessage
			raw = wire.Encode(m)
		}
		s.printJSON(raw)
		return
	}
	s.println(renderMessage(m, view{color: s.opts.Color, self: s.self, state: state, root: s.describe}))
}

// remember keeps m for later events and slash commands, forgetting the
// oldest beyond maxSeen.
func (s *session) remember(m wire.Message) {
	if len(s.seen) == maxSeen {
		delete(s.seenByID, s.seen[0].ID)
		s.seen[0] = nil
		s.seen = s.seen[1:]
	}
	c := m
	c.Type = ""
	s.seen = append(s.seen, &c)
	s.seenByID[c.ID] = &c
}

// describe names a remembered message for a line about a reply to it or
// an event on it: `bob "hi there"`; "" when it is not remembered.
func (s *session) describe(id string) string {
	m := s.seenByID[id]
	if m == nil {
		return ""
	}
	if m.Deleted {
		return oneLine(m.User) + " (deleted)"
	}
	return oneLine(m.User) + " " + quote(m.Text)
}

// eventFrame holds the fields of edit, delete and reaction frames.
type eventFrame struct {
	Room   string `json:"room"`
	ID     string `json:"id"`
	Target string `json:"target"`
	User   string `json:"user"`
	Text   string `json:"text"`
	Emoji  string `json:"emoji"`
	On     bool   `json:"on"`
	TS     int64  `json:"ts"`
}

// event shows an edit, deletion or reaction. Events are entries of the
// room's stream like messages: one not newer than the newest shown is a
// repeat. One that changes nothing of what is shown (an edit already in
// the history tail, which is in its current state) is not shown again.
func (s *session) event(typ string, p []byte) {
	var ev eventFrame
	if json.Unmarshal(p, &ev) != nil || ev.Room != s.room || !newerID(ev.ID, s.newest) {
		return
	}
	s.newest = ev.ID
	m := s.seenByID[ev.Target]
	line, changed := s.eventLine(typ, ev, m)
	if m != nil {
		apply(typ, ev, m)
	}
	switch {
	case s.opts.JSON:
		s.printJSON(p)
	case changed:
		s.println(line)
	}
}

// eventLine renders an event on m (nil if not remembered) as a line, and
// reports whether it changes m.
func (s *session) eventLine(typ string, ev eventFrame, m *wire.Message) (string, bool) {
	ts := time.UnixMilli(ev.TS).Local().Format("15:04:05")
	actor := oneLine(ev.User)
	if s.opts.Color {
		ts, actor = ansiDim+ts+ansiReset, ansiBold+actor+ansiReset
	}
	head := ts + "  * " + actor + " "
	target := "message " + oneLine(ev.Target)
	if m != nil {
		switch {
		case m.User == ev.User:
			target = "their " + quote(m.Text)
		case m.User == s.self:
			target = "your " + quote(m.Text)
		default:
			target = oneLine(m.User) + "'s " + quote(m.Text)
		}
	}
	switch typ {
	case wire.TypeEdit:
		if m != nil && !m.Deleted && m.Text == ev.Text {
			return "", false
		}
		what := "message " + oneLine(ev.Target)
		if m != nil {
			what = quote(m.Text)
		}
		return head + "edited " + what + ": " + multiline(ev.Text, "\n"+strings.Repeat(" ", len("15:04:05")+4)), true
	case wire.TypeDelete:
		if m != nil && m.Deleted {
			return "", false
		}
		return head + "deleted " + target, true
	default:
		had := m != nil && slices.Contains(m.Reactions[ev.Emoji], ev.User)
		if m != nil && had == ev.On {
			return "", false
		}
		if ev.On {
			return head + "reacted " + oneLine(ev.Emoji) + " to " + target, true
		}
		return head + "removed " + oneLine(ev.Emoji) + " from " + target, true
	}
}

// apply brings a remembered message up to date with an event on it.
func apply(typ string, ev eventFrame, m *wire.Message) {
	switch typ {
	case wire.TypeEdit:
		m.Text, m.EditedTS = ev.Text, ev.TS
	case wire.TypeDelete:
		m.Deleted, m.Reactions = true, nil
	case wire.TypeReaction:
		users := slices.DeleteFunc(slices.Clone(m.Reactions[ev.Emoji]), func(u string) bool { return u == ev.User })
		if ev.On {
			users = append(users, ev.User)
		}
		if m.Reactions == nil {
			m.Reactions = make(map[string][]string)
		}
		if len(users) == 0 {
			delete(m.Reactions, ev.Emoji)
		} else {
			m.Reactions[ev.Emoji] = users
		}
	}
}

// acked forgets the waiting line with this client ID.
func (s *session) acked(clientID string) bool { return s.take(clientID) != nil }

// take removes the waiting line with this client ID and returns it, or nil.
func (s *session) take(clientID string) *outgoing {
	for i, o := range s.pending {
		if o.clientID == clientID {
			s.pending = append(s.pending[:i], s.pending[i+1:]...)
			return o
		}
	}
	return nil
}

// queue sends a message to the room now if connected, else after the
// reconnect; a reply when replyTo is not empty.
func (s *session) queue(text, replyTo string) {
	text = strings.ToValidUTF8(text, "\uFFFD")
	if strings.TrimSpace(text) == "" {
		return
	}
	o := &outgoing{clientID: newClientID(), text: text, replyTo: replyTo}
	s.pending = append(s.pending, o)
	if s.conn != nil {
		s.sendLine(o)
	} else {
		fmt.Fprintln(s.errw, "* not connected; the line goes out when the connection is back")
	}
	s.typingSent = time.Time{} // the next keystroke is a new message being typed
}

// noteTyping tells the room we are typing, at most every typingEvery.
func (s *session) noteTyping() {
	if s.conn == nil || time.Since(s.typingSent) < typingEvery {
		return
	}
	s.typingSent = time.Now()
	s.write(wire.ClientFrame{Type: wire.TypeTyping, Room: s.room})
}

func (s *session) sendLine(o *outgoing) {
	ref, _ := json.Marshal(o.clientID)
	s.write(wire.ClientFrame{Type: wire.TypeSend, Room: s.room, Text: o.text, ClientID: o.clientID, ReplyTo: o.replyTo, Ref: ref})
}

// keepalive pings, and gives up a connection that has been silent for
// more than two ping intervals (a pong would have refreshed lastRecv).
func (s *session) keepalive() {
	if s.conn == nil {
		return
	}
	if time.Since(s.lastRecv) > 2*s.opts.PingEvery+s.opts.PingEvery/2 {
		s.lost(errors.New("the server stopped answering"))
		return
	}
	s.write(wire.ClientFrame{Type: wire.TypePing})
}

// markRead reports the newest shown message as read, so `chat rooms`
// counts only what this session has not shown.
func (s *session) markRead() {
	if s.conn == nil || s.newest == "" || !newerID(s.newest, s.readSent) {
		return
	}
	s.readSent = s.newest
	s.write(wire.ClientFrame{Type: wire.TypeRead, Room: s.room, ID: s.newest})
}

// write sends one frame on the current connection; a failure counts as a
// lost connection.
func (s *session) write(f wire.ClientFrame) {
	if s.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.WriteTimeout)
	defer cancel()
	if err := s.conn.Write(ctx, websocket.MessageText, wire.Encode(f)); err != nil {
		s.lost(err)
	}
}

// println writes one line with a single Write, so each line reaches a
// pipe as soon as it is printed.
func (s *session) println(line string) {
	_, _ = io.WriteString(s.out, line+"\n")
}

// printJSON prints a frame as one compact JSON line.
func (s *session) printJSON(p []byte) {
	var b bytes.Buffer
	if json.Compact(&b, p) != nil {
		return
	}
	b.WriteByte('\n')
	_, _ = s.out.Write(b.Bytes())
}

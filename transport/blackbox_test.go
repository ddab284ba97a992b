package transport_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/redstream/chat/store/storetest"
)

// Helpers of the black-box tests of issues 15 and 16 (messages_test.go,
// moderation_test.go): a socket client that keeps every field of every
// frame, REST calls that keep the error code, and two instances on one
// Redis. They speak only PROTOCOL.md.

// pair is two instances on one Redis, as the tests of issues 15 and 16
// require.
type pair struct {
	srv  *storetest.Server
	A, B *instance
}

func startPair(tb testing.TB, o instanceOpts, so storetest.Options) *pair {
	tb.Helper()
	srv := storetest.Start(tb, so)
	return &pair{srv: srv, A: startInstance(tb, srv, o), B: startInstance(tb, srv, o)}
}

// mustUsers registers names (in parallel: registrations wait for one hash
// slot each) and returns their tokens.
func mustUsers(tb testing.TB, base string, names ...string) map[string]string {
	tb.Helper()
	out := make(map[string]string, len(names))
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan string, len(names))
	sem := make(chan struct{}, 8)
	for _, n := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			tok, err := registerLogin(base, n)
			if err != nil {
				errs <- err.Error()
				return
			}
			mu.Lock()
			out[n] = tok
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		tb.Fatal(e)
	}
	return out
}

// registerLogin is mustUser without a testing.TB, for goroutines.
func registerLogin(base, name string) (string, error) {
	creds := map[string]string{"username": name, "password": "password-" + name}
	r, err := rawREST(base, "POST", "/api/register", "", creds)
	if err != nil || r.Status != http.StatusCreated {
		return "", fmt.Errorf("register %s: %d %s %v", name, r.Status, r.Body, err)
	}
	r, err = rawREST(base, "POST", "/api/login", "", creds)
	if err != nil || r.Status != http.StatusOK {
		return "", fmt.Errorf("login %s: %d %s %v", name, r.Status, r.Body, err)
	}
	var tok struct{ Token string }
	if err := json.Unmarshal(r.Body, &tok); err != nil || tok.Token == "" {
		return "", fmt.Errorf("login %s: %s", name, r.Body)
	}
	return tok.Token, nil
}

// restAnswer is one REST answer: its status, body and, for errors, the code
// and message of {"error":{…}}.
type restAnswer struct {
	Status  int
	Body    json.RawMessage
	Code    string
	Message string
	Header  http.Header
}

func (a restAnswer) String() string { return fmt.Sprintf("%d %s", a.Status, bytes.TrimSpace(a.Body)) }

// decode unmarshals the body into v.
func (a restAnswer) decode(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(a.Body, v); err != nil {
		tb.Fatalf("decode %s: %v", a, err)
	}
}

// fields returns the body's top-level object, to check which fields are
// present at all.
func (a restAnswer) fields(tb testing.TB) map[string]json.RawMessage {
	tb.Helper()
	var m map[string]json.RawMessage
	a.decode(tb, &m)
	return m
}

var restClient = &http.Client{Timeout: 20 * time.Second}

func rawREST(base, method, path, token string, body any) (restAnswer, error) {
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return restAnswer{}, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return restAnswer{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := restClient.Do(req)
	if err != nil {
		return restAnswer{}, err
	}
	defer res.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(res.Body); err != nil {
		return restAnswer{}, err
	}
	a := restAnswer{Status: res.StatusCode, Body: buf.Bytes(), Header: res.Header}
	if res.StatusCode >= 400 {
		var e errBody
		if err := json.Unmarshal(a.Body, &e); err != nil {
			return a, fmt.Errorf("%s %s: error restAnswer is not {\"error\":…}: %s", method, path, a.Body)
		}
		a.Code, a.Message = e.Error.Code, e.Error.Message
	}
	return a, nil
}

// restCall calls a route and returns its answer; a transport failure or an
// error answer of the wrong shape fails tb.
func restCall(tb testing.TB, base, method, path, token string, body any) restAnswer {
	tb.Helper()
	a, err := rawREST(base, method, path, token, body)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	return a
}

// wantStatus fails tb unless a has status (and, for errors, code).
func wantStatus(tb testing.TB, what string, a restAnswer, status int, code string) {
	tb.Helper()
	if a.Status != status || (code != "" && a.Code != code) {
		tb.Errorf("%s: %s, want %d %s", what, a, status, code)
	}
}

// esc path-escapes one path segment (a room name, an id, an emoji).
func esc(s string) string { return url.PathEscape(s) }

// msgPath is the path of a room's messages, or of one of them.
func msgPath(room string, id ...string) string {
	p := "/api/rooms/" + esc(room) + "/messages"
	for _, s := range id {
		p += "/" + esc(s)
	}
	return p
}

func reactionPath(room, id, emoji string) string {
	return msgPath(room, id) + "/reactions/" + esc(emoji)
}

// msgState is a message object as history, single reads and replies
// return it (current state).
type msgState struct {
	ID         string              `json:"id"`
	Room       string              `json:"room"`
	User       string              `json:"user"`
	Text       string              `json:"text"`
	TS         int64               `json:"ts"`
	ClientID   string              `json:"client_id"`
	ReplyTo    string              `json:"reply_to"`
	Mentions   []string            `json:"mentions"`
	EditedTS   int64               `json:"edited_ts"`
	Deleted    bool                `json:"deleted"`
	Reactions  map[string][]string `json:"reactions"`
	ReplyCount int                 `json:"reply_count"`
}

type histPage struct {
	Room     string     `json:"room"`
	Messages []msgState `json:"messages"`
	HasMore  bool       `json:"has_more"`
}

func (p histPage) ids() []string {
	out := make([]string, len(p.Messages))
	for i, m := range p.Messages {
		out[i] = m.ID
	}
	return out
}

// mustPage reads one history page (query is "" or "?…").
func mustPage(tb testing.TB, base, token, room, query string) histPage {
	tb.Helper()
	a := restCall(tb, base, "GET", msgPath(room)+query, token, nil)
	if a.Status != http.StatusOK {
		tb.Fatalf("GET %s%s: %s", msgPath(room), query, a)
	}
	var p histPage
	a.decode(tb, &p)
	return p
}

// mustMessage reads one message in its current state.
func mustMessage(tb testing.TB, base, token, room, id string) msgState {
	tb.Helper()
	a := restCall(tb, base, "GET", msgPath(room, id), token, nil)
	if a.Status != http.StatusOK {
		tb.Fatalf("GET %s: %s", msgPath(room, id), a)
	}
	var m struct{ Message msgState }
	a.decode(tb, &m)
	return m.Message
}

// mustPost posts a message over REST and returns it.
func mustPost(tb testing.TB, base, token, room, text string, extra ...string) msgState {
	tb.Helper()
	body := map[string]string{"text": text}
	for i := 0; i+1 < len(extra); i += 2 {
		body[extra[i]] = extra[i+1]
	}
	a := restCall(tb, base, "POST", msgPath(room), token, body)
	if a.Status != http.StatusCreated {
		tb.Fatalf("POST %s %q: %s", msgPath(room), text, a)
	}
	var m struct{ Message msgState }
	a.decode(tb, &m)
	return m.Message
}

// mustCreate creates a channel.
func mustCreate(tb testing.TB, base, token, name string, private bool) {
	tb.Helper()
	a := restCall(tb, base, "POST", "/api/rooms", token, map[string]any{"name": name, "private": private})
	if a.Status != http.StatusCreated {
		tb.Fatalf("create %s: %s", name, a)
	}
}

// mustAdd adds user to room as caller.
func mustAdd(tb testing.TB, base, token, room, user string) {
	tb.Helper()
	a := restCall(tb, base, "POST", "/api/rooms/"+esc(room)+"/members", token, map[string]string{"user": user})
	if a.Status != http.StatusCreated {
		tb.Fatalf("add %s to %s: %s", user, room, a)
	}
}

// xframe is any server frame with every field PROTOCOL.md names, plus
// the raw object and when it arrived.
type xframe struct {
	Type      string          `json:"type"`
	Ref       json.RawMessage `json:"ref"`
	Room      string          `json:"room"`
	ID        string          `json:"id"`
	Target    string          `json:"target"`
	User      string          `json:"user"`
	Text      string          `json:"text"`
	TS        int64           `json:"ts"`
	ClientID  string          `json:"client_id"`
	ReplyTo   string          `json:"reply_to"`
	Mentions  []string        `json:"mentions"`
	Emoji     string          `json:"emoji"`
	On        *bool           `json:"on"`
	Reason    string          `json:"reason"`
	Kind      string          `json:"kind"`
	Topic     string          `json:"topic"`
	State     string          `json:"state"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	LastID    string          `json:"last_id"`
	Online    []string        `json:"online"`
	Recovered *bool           `json:"recovered"`

	raw []byte
	at  time.Time
}

func (f xframe) String() string { return string(f.raw) }

// has reports whether the frame carries field at all.
func (f xframe) has(field string) bool {
	var m map[string]json.RawMessage
	_ = json.Unmarshal(f.raw, &m)
	_, ok := m[field]
	return ok
}

// peer is a WebSocket client that reads every frame in the background.
type peer struct {
	tb     testing.TB
	name   string
	c      *websocket.Conn
	frames chan xframe
	held   []xframe
	done   chan struct{}
	refs   atomic.Int64

	mu     sync.Mutex
	closed error
}

// mustConnect opens a socket as name (for messages) with token.
func mustConnect(tb testing.TB, base, name, token string) *peer {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	h := http.Header{"Authorization": {"Bearer " + token}}
	c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		tb.Fatalf("%s: dial %s: %v", name, base, err)
	}
	c.SetReadLimit(1 << 20)
	p := &peer{tb: tb, name: name, c: c, frames: make(chan xframe, 100000), done: make(chan struct{})}
	go p.readLoop()
	tb.Cleanup(func() { p.c.CloseNow(); <-p.done })
	return p
}

func (p *peer) readLoop() {
	defer close(p.done)
	for {
		_, data, err := p.c.Read(context.Background())
		if err != nil {
			p.mu.Lock()
			p.closed = err
			p.mu.Unlock()
			close(p.frames)
			return
		}
		now := time.Now()
		for _, line := range bytes.Split(data, []byte("\n")) {
			f := xframe{raw: slices.Clone(line), at: now}
			if err := json.Unmarshal(line, &f); err != nil {
				p.tb.Errorf("%s: server sent non-JSON %q", p.name, line)
				continue
			}
			p.frames <- f
		}
	}
}

func (p *peer) closeErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// close closes the socket and waits until the server saw it go.
func (p *peer) close() {
	_ = p.c.Close(websocket.StatusNormalClosure, "")
	<-p.done
}

func (p *peer) send(v any) {
	p.tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		p.tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.c.Write(ctx, websocket.MessageText, b); err != nil {
		p.tb.Fatalf("%s: write: %v", p.name, err)
	}
}

// poll returns the first frame, in arrival order, that match accepts, or
// false after d. Frames passed over stay for later calls.
func (p *peer) poll(d time.Duration, match func(xframe) bool) (xframe, bool) {
	p.tb.Helper()
	for i, f := range p.held {
		if match(f) {
			p.held = append(p.held[:i:i], p.held[i+1:]...)
			return f, true
		}
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		select {
		case f, ok := <-p.frames:
			if !ok {
				p.tb.Fatalf("%s: connection closed while waiting: %v", p.name, p.closeErr())
			}
			if match(f) {
				return f, true
			}
			p.held = append(p.held, f)
		case <-deadline.C:
			return xframe{}, false
		}
	}
}

// next is poll that fails tb after d.
func (p *peer) next(d time.Duration, what string, match func(xframe) bool) xframe {
	p.tb.Helper()
	f, ok := p.poll(d, match)
	if !ok {
		p.tb.Fatalf("%s: no %s within %v; held: %v", p.name, what, d, p.held)
	}
	return f
}

// nextOf waits for the next frame of type typ in room.
func (p *peer) nextOf(typ, room string) xframe {
	p.tb.Helper()
	return p.next(10*time.Second, typ+" in "+room, func(f xframe) bool { return f.Type == typ && f.Room == room })
}

// call sends v with a fresh ref and returns the server's direct reply.
func (p *peer) call(v map[string]any) xframe {
	p.tb.Helper()
	return p.await(p.fire(v))
}

// ok sends v and fails tb unless the reply is of type want.
func (p *peer) ok(v map[string]any, want string) xframe {
	p.tb.Helper()
	f := p.call(v)
	if f.Type != want {
		p.tb.Fatalf("%s: %v: got %s, want %s", p.name, v, f, want)
	}
	return f
}

// refused sends v and reports an error unless the reply is an error with
// code.
func (p *peer) refused(v map[string]any, code string) xframe {
	p.tb.Helper()
	f := p.call(v)
	if f.Type != "error" || f.Code != code {
		p.tb.Errorf("%s: %v: got %s, want error %s", p.name, v, f, code)
	}
	return f
}

// quiet sends v, which has no reply on success, then a ping: the socket
// handles frames in order, so if the first reply is the pong, v
// succeeded. It returns the error reply instead, if any.
func (p *peer) quiet(v map[string]any) (xframe, bool) {
	p.tb.Helper()
	ref := p.fire(v)
	pong := p.call(map[string]any{"type": "ping"})
	if pong.Type != "pong" {
		p.tb.Fatalf("%s: ping: %s", p.name, pong)
	}
	want := `"` + ref + `"`
	for i, f := range p.held {
		if string(f.Ref) == want {
			p.held = append(p.held[:i:i], p.held[i+1:]...)
			return f, false
		}
	}
	return xframe{}, true
}

// join joins room (since "" for none) and returns joined.
func (p *peer) join(room, since string) xframe {
	p.tb.Helper()
	v := map[string]any{"type": "join", "room": room}
	if since != "" {
		v["since"] = since
	}
	return p.ok(v, "joined")
}

// sendMsg sends text to room and returns the ack.
func (p *peer) sendMsg(room, text string, extra ...any) xframe {
	p.tb.Helper()
	v := map[string]any{"type": "send", "room": room, "text": text}
	for i := 0; i+1 < len(extra); i += 2 {
		v[extra[i].(string)] = extra[i+1]
	}
	ack := p.ok(v, "ack")
	if ack.ID == "" || ack.Room != room {
		p.tb.Fatalf("%s: ack of send %q: %s", p.name, text, ack)
	}
	return ack
}

// alive fails tb unless the socket still answers a ping.
func (p *peer) alive() {
	p.tb.Helper()
	p.ok(map[string]any{"type": "ping"}, "pong")
}

// settle returns every frame that arrives within d, with those held.
func (p *peer) settle(d time.Duration) []xframe {
	out := p.held
	p.held = nil
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		select {
		case f, ok := <-p.frames:
			if !ok {
				return out
			}
			out = append(out, f)
		case <-deadline.C:
			return out
		}
	}
}

// none reports an error for each frame arriving within d that bad
// accepts.
func (p *peer) none(d time.Duration, what string, bad func(xframe) bool) {
	p.tb.Helper()
	var keep []xframe
	for _, f := range p.settle(d) {
		if bad(f) {
			p.tb.Errorf("%s got %s: %s", p.name, what, f)
		} else {
			keep = append(keep, f)
		}
	}
	p.held = keep
}

// drop forgets every frame received so far.
func (p *peer) drop() { p.settle(0) }

func sortedCopy(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return out
}

// isEntry reports whether f is a message or a message event of room.
func isEntry(f xframe, room string) bool {
	switch f.Type {
	case "message", "edit", "delete", "reaction":
		return f.Room == room
	}
	return false
}

// fire sends v with a fresh ref without waiting and returns the ref; await
// returns the reply to it.
func (p *peer) fire(v map[string]any) string {
	p.tb.Helper()
	ref := fmt.Sprintf("%s-%d", p.name, p.refs.Add(1))
	w := make(map[string]any, len(v)+1)
	for k, x := range v {
		w[k] = x
	}
	w["ref"] = ref
	p.send(w)
	return ref
}

func (p *peer) await(ref string) xframe {
	p.tb.Helper()
	want := `"` + ref + `"`
	return p.next(20*time.Second, "reply to "+ref, func(f xframe) bool { return string(f.Ref) == want })
}

// userEventsLive waits until user events reach each of ps (sockets of
// user): an instance subscribes to a user's events only after the user's
// first socket there connected, and user events are at most once, so one
// published in between is lost by contract. It posts mentions of user
// (from senderTok, in a public channel of its own) until every socket has
// heard one.
func userEventsLive(tb testing.TB, base, senderTok, user string, ps ...*peer) {
	tb.Helper()
	room := "probe-" + strings.NewReplacer(".", "-").Replace(user)
	if a := restCall(tb, base, "POST", "/api/rooms", senderTok, map[string]any{"name": room}); a.Status != 201 && a.Code != "room_exists" {
		tb.Fatalf("create %s: %s", room, a)
	}
	deadline := time.Now().Add(10 * time.Second)
	pending := slices.Clone(ps)
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			tb.Fatalf("user events of %s do not reach %d sockets", user, len(pending))
		}
		if a := restCall(tb, base, "POST", msgPath(room), senderTok, map[string]string{"text": "@" + user}); a.Status != 201 {
			tb.Fatalf("probe: %s", a)
		}
		pending = slices.DeleteFunc(pending, func(p *peer) bool {
			_, ok := p.poll(50*time.Millisecond, func(f xframe) bool { return f.Type == "mention" && f.Room == room })
			return ok
		})
	}
	// Later probes may still arrive; they are of no interest.
	for _, p := range ps {
		p.held = slices.DeleteFunc(p.held, func(f xframe) bool { return f.Room == room })
	}
}

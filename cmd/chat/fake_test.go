package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/redstream/chat/transport/wire"
)

// fakeServer is a small in-memory stand-in for chatd that speaks the REST
// and WebSocket protocol of PROTOCOL.md closely enough to test the client,
// and lets a test inject failures. It is safe for concurrent use.
type fakeServer struct {
	tb  testing.TB
	srv *httptest.Server

	mu         sync.Mutex
	users      map[string]string // username → password
	tokens     map[string]string // token → username
	rooms      map[string][]wire.Message
	seq        int
	byClientID map[string]wire.Message // user+"/"+client_id → stored message
	subs       map[*fakeConn]string    // joined connection → room
	joins      []wire.ClientFrame      // every join frame received, in order
	reads      []wire.ClientFrame      // every read frame received
	requests   []string                // "METHOD escaped-path?query" of REST calls

	// Failure injection, set by tests under mu.
	wsDown      bool // /ws answers 503
	noPong      bool // ping gets no answer
	loseAckOnce bool // store the next send, then close 1001 instead of acking
	restError   map[string]fakeError
}

type fakeError struct {
	status        int
	code, message string
}

type fakeConn struct {
	c    *websocket.Conn
	user string
}

func newFakeServer(tb testing.TB) *fakeServer {
	tb.Helper()
	f := &fakeServer{
		tb:         tb,
		users:      map[string]string{"alice": "password1", "bob": "password2"},
		tokens:     map[string]string{"tok-alice": "alice", "tok-bob": "bob"},
		rooms:      map[string][]wire.Message{"general": nil, "support": nil, "dm:alice:bob": nil},
		byClientID: map[string]wire.Message{},
		subs:       map[*fakeConn]string{},
		restError:  map[string]fakeError{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/register", f.register)
	mux.HandleFunc("POST /api/login", f.login)
	mux.HandleFunc("POST /api/logout", f.authed(f.logout))
	mux.HandleFunc("GET /api/me", f.authed(func(w http.ResponseWriter, r *http.Request, user string) {
		writeJSON(w, 200, map[string]string{"username": user})
	}))
	mux.HandleFunc("GET /api/rooms", f.authed(f.listRooms))
	mux.HandleFunc("GET /api/rooms/{room}/messages", f.authed(f.history))
	mux.HandleFunc("POST /api/rooms/{room}/messages", f.authed(f.postMessage))
	mux.HandleFunc("POST /api/dms", f.authed(f.dm))
	mux.HandleFunc("GET /ws", f.ws)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		key := r.Method + " " + r.URL.EscapedPath()
		f.requests = append(f.requests, key+"?"+r.URL.RawQuery)
		fe, inject := f.restError[key]
		f.mu.Unlock()
		if inject {
			writeError(w, fe.status, fe.code, fe.message)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	tb.Cleanup(f.close)
	return f
}

// close ends the server and every socket (httptest does not wait for
// hijacked connections).
func (f *fakeServer) close() {
	f.kick(websocket.StatusGoingAway)
	f.srv.Close()
}

func (f *fakeServer) URL() string { return f.srv.URL }

// env is a client environment pointing at f with a config dir in which
// user (if not empty) is logged in.
func (f *fakeServer) env(tb testing.TB, user string) map[string]string {
	tb.Helper()
	dir := tb.TempDir()
	if user != "" {
		err := saveLogin(dir, &savedLogin{
			Server: f.URL(), Username: user, Token: "tok-" + user,
			ExpiresAt: time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return map[string]string{"CHAT_SERVER": f.URL(), "CHAT_CONFIG_DIR": dir}
}

func (f *fakeServer) set(fn func(f *fakeServer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}

func (f *fakeServer) userOf(r *http.Request) string {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokens[tok]
}

func (f *fakeServer) authed(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user := f.userOf(r)
		if user == "" {
			writeError(w, 401, "unauthorized", "missing or invalid token")
			return
		}
		h(w, r, user)
	}
}

type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (f *fakeServer) register(w http.ResponseWriter, r *http.Request) {
	var c credentials
	if json.NewDecoder(r.Body).Decode(&c) != nil || len(c.Password) < 8 {
		writeError(w, 400, "invalid", "password must be 8 to 256 characters")
		return
	}
	name := strings.ToLower(c.Username)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[name]; ok {
		writeError(w, 409, "username_taken", "username is taken")
		return
	}
	f.users[name] = c.Password
	writeJSON(w, 201, map[string]string{"username": name})
}

func (f *fakeServer) login(w http.ResponseWriter, r *http.Request) {
	var c credentials
	_ = json.NewDecoder(r.Body).Decode(&c)
	name := strings.ToLower(c.Username)
	f.mu.Lock()
	defer f.mu.Unlock()
	if pw, ok := f.users[name]; !ok || pw != c.Password {
		writeError(w, 401, "invalid_credentials", "invalid username or password")
		return
	}
	tok := "tok-" + name
	f.tokens[tok] = name
	writeJSON(w, 200, map[string]string{
		"token": tok, "token_type": "Bearer", "username": name,
		"expires_at": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339),
	})
}

func (f *fakeServer) logout(w http.ResponseWriter, r *http.Request, user string) {
	f.mu.Lock()
	delete(f.tokens, "tok-"+user)
	f.mu.Unlock()
	w.WriteHeader(204)
}

func (f *fakeServer) listRooms(w http.ResponseWriter, r *http.Request, user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	after := r.URL.Query().Get("after")
	for name := range f.rooms {
		if name > after {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	limit := 200
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			writeError(w, 400, "invalid", "limit must be 1 to 500")
			return
		}
		limit = n
	}
	hasMore := len(names) > limit
	names = names[:min(len(names), limit)]
	out := []map[string]any{}
	for _, name := range names {
		kind, last := "channel", "0-0"
		if strings.HasPrefix(name, "dm:") {
			kind = "direct"
		}
		if ms := f.rooms[name]; len(ms) > 0 {
			last = ms[len(ms)-1].ID
		}
		out = append(out, map[string]any{"name": name, "kind": kind, "last_id": last, "unread": len(f.rooms[name])})
	}
	writeJSON(w, 200, map[string]any{"rooms": out, "has_more": hasMore})
}

func (f *fakeServer) history(w http.ResponseWriter, r *http.Request, user string) {
	room := r.PathValue("room")
	q := r.URL.Query()
	limit := 50
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			writeError(w, 400, "invalid", "limit must be 1 to 200")
			return
		}
		limit = n
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	all, ok := f.rooms[room]
	if !ok {
		writeError(w, 404, "not_found", "no such room")
		return
	}
	var page []wire.Message
	hasMore := false
	switch {
	case q.Get("after") != "":
		for _, m := range all {
			if newerID(m.ID, q.Get("after")) {
				page = append(page, m)
			}
		}
		if len(page) > limit {
			page, hasMore = page[:limit], true
		}
	default:
		for _, m := range all {
			if b := q.Get("before"); b == "" || newerID(b, m.ID) {
				page = append(page, m)
			}
		}
		if len(page) > limit {
			page, hasMore = page[len(page)-limit:], true
		}
	}
	if page == nil {
		page = []wire.Message{}
	}
	writeJSON(w, 200, map[string]any{"room": room, "messages": page, "has_more": hasMore})
}

func (f *fakeServer) postMessage(w http.ResponseWriter, r *http.Request, user string) {
	var body struct {
		Text     string `json:"text"`
		ClientID string `json:"client_id"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.storeLocked(r.PathValue("room"), user, body.Text, body.ClientID)
	if !ok {
		writeError(w, 404, "not_found", "no such room")
		return
	}
	writeJSON(w, 201, map[string]any{"message": m})
}

func (f *fakeServer) dm(w http.ResponseWriter, r *http.Request, user string) {
	var body struct {
		User string `json:"user"`
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	other := strings.ToLower(body.User)
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.users[other]; !ok {
		writeError(w, 404, "not_found", "no such user")
		return
	}
	a, b := min(user, other), max(user, other)
	name := "dm:" + a + ":" + b
	if _, ok := f.rooms[name]; !ok {
		f.rooms[name] = nil
	}
	writeJSON(w, 200, map[string]string{"name": name, "kind": "direct"})
}

// storeLocked stores a message (once per client_id) and delivers it to
// the room's sockets. It reports false for an unknown room.
func (f *fakeServer) storeLocked(room, user, text, clientID string) (wire.Message, bool) {
	if _, ok := f.rooms[room]; !ok {
		return wire.Message{}, false
	}
	key := user + "/" + clientID
	if m, ok := f.byClientID[key]; ok && clientID != "" {
		return m, true
	}
	f.seq++
	m := wire.Message{
		ID: fmt.Sprintf("1700000000000-%d", f.seq), Room: room, User: user, Text: text,
		TS: 1700000000000 + int64(f.seq)*1000, ClientID: clientID,
	}
	f.rooms[room] = append(f.rooms[room], m)
	if clientID != "" {
		f.byClientID[key] = m
	}
	frame := m
	frame.Type = wire.TypeMessage
	f.broadcastLocked(room, frame)
	return m, true
}

// post stores a message as if user had sent it from elsewhere.
func (f *fakeServer) post(room, user, text string) wire.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, ok := f.storeLocked(room, user, text, "")
	if !ok {
		f.tb.Fatalf("post to unknown room %q", room)
	}
	return m
}

func (f *fakeServer) broadcastLocked(room string, frame any) {
	for fc, r := range f.subs {
		if r == room {
			fc.write(frame)
		}
	}
}

// broadcast sends a frame to every socket joined to room.
func (f *fakeServer) broadcast(room string, frame any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.broadcastLocked(room, frame)
}

// kick closes every socket with code.
func (f *fakeServer) kick(code websocket.StatusCode) {
	f.mu.Lock()
	conns := make([]*fakeConn, 0, len(f.subs))
	for fc := range f.subs {
		conns = append(conns, fc)
	}
	f.subs = map[*fakeConn]string{}
	f.mu.Unlock()
	for _, fc := range conns {
		fc.c.Close(code, "")
	}
}

// texts returns the texts stored in room, oldest first.
func (f *fakeServer) texts(room string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, m := range f.rooms[room] {
		out = append(out, m.Text)
	}
	return out
}

func (f *fakeServer) joinFrames() []wire.ClientFrame {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]wire.ClientFrame(nil), f.joins...)
}

func (fc *fakeConn) write(frame any) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = fc.c.Write(ctx, websocket.MessageText, wire.Encode(frame))
}

func (f *fakeServer) ws(w http.ResponseWriter, r *http.Request) {
	user := f.userOf(r)
	if user == "" {
		writeError(w, 401, "unauthorized", "missing or invalid token")
		return
	}
	f.mu.Lock()
	down := f.wsDown
	f.mu.Unlock()
	if down {
		writeError(w, 503, "unavailable", "draining")
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	fc := &fakeConn{c: c, user: user}
	defer func() {
		f.mu.Lock()
		delete(f.subs, fc)
		f.mu.Unlock()
		c.CloseNow()
	}()
	for {
		_, p, err := c.Read(context.Background())
		if err != nil {
			return
		}
		var fr wire.ClientFrame
		if json.Unmarshal(p, &fr) != nil {
			fc.write(wire.Error{Type: wire.TypeError, Code: wire.CodeBadFrame, Message: "not JSON"})
			continue
		}
		if code := f.frame(fc, fr); code != 0 {
			c.Close(code, "")
			return
		}
	}
}

// frame answers one client frame; a non-zero result is the status to
// close the socket with.
func (f *fakeServer) frame(fc *fakeConn, fr wire.ClientFrame) websocket.StatusCode {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch fr.Type {
	case wire.TypeJoin:
		msgs, ok := f.rooms[fr.Room]
		if !ok {
			fc.write(wire.Error{Type: wire.TypeError, Code: wire.CodeNotFound, Message: "no such room", Ref: fr.Ref})
			return 0
		}
		f.joins = append(f.joins, fr)
		j := wire.Joined{Type: wire.TypeJoined, Ref: fr.Ref, Room: fr.Room, LastID: "0-0", Online: []string{fc.user}}
		if len(msgs) > 0 {
			j.LastID = msgs[len(msgs)-1].ID
		}
		if fr.Since != "" {
			recovered := true
			j.Recovered = &recovered
		}
		fc.write(j)
		if fr.Since != "" {
			for _, m := range msgs {
				if newerID(m.ID, fr.Since) {
					m.Type = wire.TypeMessage
					fc.write(m)
				}
			}
		}
		f.subs[fc] = fr.Room
	case wire.TypeSend:
		if fr.Text == "ratelimit" {
			fc.write(wire.Error{Type: wire.TypeError, Code: wire.CodeRateLimited, Message: "slow down", Ref: fr.Ref})
			return 0
		}
		m, ok := f.storeLocked(fr.Room, fc.user, fr.Text, fr.ClientID)
		if !ok {
			fc.write(wire.Error{Type: wire.TypeError, Code: wire.CodeNotFound, Message: "no such room", Ref: fr.Ref})
			return 0
		}
		if f.loseAckOnce {
			f.loseAckOnce = false
			delete(f.subs, fc)
			return websocket.StatusGoingAway
		}
		fc.write(wire.Ack{Type: wire.TypeAck, Ref: fr.Ref, Room: fr.Room, ID: m.ID, ClientID: fr.ClientID})
	case wire.TypePing:
		if !f.noPong {
			fc.write(wire.Pong{Type: wire.TypePong, Ref: fr.Ref})
		}
	case wire.TypeRead:
		f.reads = append(f.reads, fr)
	}
	return 0
}

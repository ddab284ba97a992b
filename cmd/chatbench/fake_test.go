package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/redstream/chat/transport/wire"
)

// fakeServer is a small in-memory implementation of the parts of the
// protocol chatbench uses, with knobs to misbehave, so that the
// benchmark's accounting can be tested without cmd/chatd.
type fakeServer struct {
	// Faults, set before use.
	dropEvery      int // every n-th fan-out delivery of a message is silently skipped
	dupEvery       int // every n-th fan-out delivery of a message is written twice
	dropEventEvery int // every n-th fan-out delivery of an edit or reaction is silently skipped
	dupEventEvery  int // every n-th fan-out delivery of an edit or reaction is written twice
	kickAfter      int // each connection is closed with 1013 after this many deliveries, once per user
	maxRooms       int // rooms one user may create; more is 429 rate_limited, as CHAT_MAX_CHANNELS_PER_USER

	mu       sync.Mutex
	users    map[string]bool
	rooms    map[string]*fakeRoom
	idem     map[string]wire.Ack // user + client_id -> first ack
	lastMs   int64
	lastSeq  int64
	delivers int
	evDelivs int // fan-out deliveries of edits and reactions
	kicked   map[string]bool
	logins   int
	created  map[string]int // rooms created per user
}

type fakeRoom struct {
	msgs    []wire.Message
	byID    map[string]int  // message id -> index in msgs
	log     []fakeEntry     // messages and events in stream order, for since
	reacts  map[string]bool // target, user and emoji -> whether the reaction is on
	events  []fakeEvent     // the edits and reactions stored, as received
	noops   int             // reactions that changed nothing
	members map[*fakeConn]bool
}

// fakeEvent is an edit or react frame the fake stored, and who sent it.
type fakeEvent struct {
	user  string
	frame wire.ClientFrame
}

// fakeEntry is a stored message or event as its frame.
type fakeEntry struct {
	id    streamID
	frame []byte
}

type fakeConn struct {
	user  string
	batch bool
	out   chan []byte
	kick  chan struct{}
	once  sync.Once
	sent  int
}

func newFakeServer(tb testing.TB) (*fakeServer, *httptest.Server) {
	tb.Helper()
	f := &fakeServer{
		users:   make(map[string]bool),
		rooms:   make(map[string]*fakeRoom),
		idem:    make(map[string]wire.Ack),
		kicked:  make(map[string]bool),
		created: make(map[string]int),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/register", f.register)
	mux.HandleFunc("POST /api/login", f.login)
	mux.HandleFunc("GET /api/me", func(w http.ResponseWriter, r *http.Request) {
		if f.auth(r) == "" {
			writeJSONStatus(w, 401, map[string]any{"error": map[string]string{"code": "unauthorized"}})
			return
		}
		writeJSONStatus(w, 200, map[string]string{"username": f.auth(r)})
	})
	mux.HandleFunc("POST /api/rooms", f.createRoom)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "# TYPE process_resident_memory_bytes gauge")
		fmt.Fprintln(w, "process_resident_memory_bytes 1.048576e+07")
	})
	mux.HandleFunc("GET /ws", f.ws)
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	return f, srv
}

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeServer) auth(r *http.Request) string {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer tok-")
	if !ok {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.users[tok] {
		return ""
	}
	return tok
}

func (f *fakeServer) register(w http.ResponseWriter, r *http.Request) {
	var c struct{ Username, Password string }
	_ = json.NewDecoder(r.Body).Decode(&c)
	f.mu.Lock()
	defer f.mu.Unlock()
	u := strings.ToLower(c.Username)
	if f.users[u] {
		writeJSONStatus(w, 409, map[string]any{"error": map[string]string{"code": "username_taken"}})
		return
	}
	f.users[u] = true
	writeJSONStatus(w, 201, map[string]string{"username": u})
}

func (f *fakeServer) login(w http.ResponseWriter, r *http.Request) {
	var c struct{ Username, Password string }
	_ = json.NewDecoder(r.Body).Decode(&c)
	f.mu.Lock()
	defer f.mu.Unlock()
	u := strings.ToLower(c.Username)
	if !f.users[u] {
		writeJSONStatus(w, 401, map[string]any{"error": map[string]string{"code": "invalid_credentials"}})
		return
	}
	f.logins++
	writeJSONStatus(w, 200, map[string]any{
		"token": "tok-" + u, "token_type": "Bearer", "username": u,
		"expires_at": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339),
	})
}

func (f *fakeServer) createRoom(w http.ResponseWriter, r *http.Request) {
	user := f.auth(r)
	if user == "" {
		writeJSONStatus(w, 401, map[string]any{"error": map[string]string{"code": "unauthorized"}})
		return
	}
	var c struct{ Name string }
	_ = json.NewDecoder(r.Body).Decode(&c)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rooms[c.Name] != nil {
		writeJSONStatus(w, 409, map[string]any{"error": map[string]string{"code": "room_exists"}})
		return
	}
	if f.maxRooms > 0 && f.created[user] >= f.maxRooms {
		writeJSONStatus(w, 429, map[string]any{"error": map[string]string{"code": "rate_limited"}})
		return
	}
	f.created[user]++
	f.rooms[c.Name] = &fakeRoom{members: make(map[*fakeConn]bool), byID: make(map[string]int), reacts: make(map[string]bool)}
	writeJSONStatus(w, 201, map[string]string{"name": c.Name, "kind": "channel"})
}

func (f *fakeServer) ws(w http.ResponseWriter, r *http.Request) {
	user := f.auth(r)
	if user == "" {
		http.Error(w, "unauthorized", 401)
		return
	}
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	fc := &fakeConn{user: user, batch: r.URL.Query().Get("batch") == "1", out: make(chan []byte, 1<<14), kick: make(chan struct{})}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer func() {
		f.mu.Lock()
		for _, rm := range f.rooms {
			delete(rm.members, fc)
		}
		f.mu.Unlock()
	}()
	go func() {
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case <-fc.kick:
				_ = c.Close(wire.CloseSlowConsumer, "kicked")
				return
			case b := <-fc.out:
				// Batch whatever else is queued, as the protocol allows;
				// b is shared with other connections, so copy before appending.
				b = b[:len(b):len(b)]
				for fc.batch && len(fc.out) > 0 && len(b) < 4096 {
					b = append(append(b, '\n'), <-fc.out...)
				}
				if c.Write(ctx, websocket.MessageText, b) != nil {
					return
				}
			}
		}
	}()
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			return
		}
		fr, err := wire.Decode(data)
		if err != nil {
			continue
		}
		f.handle(fc, fr)
	}
}

func (f *fakeServer) nextID() string {
	ms := time.Now().UnixMilli()
	if ms <= f.lastMs {
		f.lastSeq++
	} else {
		f.lastMs, f.lastSeq = ms, 0
	}
	return fmt.Sprintf("%d-%d", f.lastMs, f.lastSeq)
}

func (f *fakeServer) handle(fc *fakeConn, fr wire.ClientFrame) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rm := f.rooms[fr.Room]
	if rm == nil {
		fc.out <- wire.Encode(wire.Error{Type: wire.TypeError, Code: wire.CodeNotFound, Message: "no room", Ref: fr.Ref})
		return
	}
	switch fr.Type {
	case wire.TypeJoin:
		last := "0-0"
		if len(rm.msgs) > 0 {
			last = rm.msgs[len(rm.msgs)-1].ID
		}
		j := wire.Joined{Type: wire.TypeJoined, Ref: fr.Ref, Room: fr.Room, LastID: last, Online: []string{fc.user}}
		if fr.Since != "" {
			ok := true
			j.Recovered = &ok
		}
		fc.out <- wire.Encode(j)
		if fr.Since != "" {
			since, _ := parseStreamID(fr.Since)
			for _, e := range rm.log {
				if since.less(e.id) {
					fc.out <- e.frame
				}
			}
		}
		rm.members[fc] = true
	case wire.TypeSend:
		key := fc.user + "\x00" + fr.ClientID
		if a, ok := f.idem[key]; ok && fr.ClientID != "" {
			a.Ref = fr.Ref
			fc.out <- wire.Encode(a)
			return
		}
		m := wire.Message{Type: wire.TypeMessage, ID: f.nextID(), Room: fr.Room, User: fc.user, Text: fr.Text, TS: time.Now().UnixMilli(), ClientID: fr.ClientID}
		rm.byID[m.ID] = len(rm.msgs)
		rm.msgs = append(rm.msgs, m)
		a := wire.Ack{Type: wire.TypeAck, Room: fr.Room, ID: m.ID, ClientID: fr.ClientID}
		f.idem[key] = a
		a.Ref = fr.Ref
		fc.out <- wire.Encode(a)
		f.fanOut(rm, m.ID, wire.Encode(m), false)
	case wire.TypeEdit, wire.TypeReact:
		i, ok := rm.byID[fr.ID]
		switch {
		case !ok:
			fc.out <- wire.Encode(wire.Error{Type: wire.TypeError, Code: wire.CodeNotFound, Message: "no such message", Ref: fr.Ref})
			return
		case fr.Type == wire.TypeEdit && rm.msgs[i].User != fc.user:
			fc.out <- wire.Encode(wire.Error{Type: wire.TypeError, Code: wire.CodeForbidden, Message: "not yours", Ref: fr.Ref})
			return
		}
		var ev any
		id := ""
		if fr.Type == wire.TypeEdit {
			id = f.nextID()
			ev = wire.Edit{Type: wire.TypeEdit, Room: fr.Room, ID: id, Target: fr.ID, User: fc.user, Text: fr.Text, TS: time.Now().UnixMilli()}
		} else {
			on, key := fr.On == nil || *fr.On, fr.ID+"\x00"+fc.user+"\x00"+fr.Emoji
			if rm.reacts[key] == on {
				rm.noops++
				fc.out <- wire.Encode(wire.Ack{Type: wire.TypeAck, Ref: fr.Ref, Room: fr.Room})
				return
			}
			rm.reacts[key] = on
			id = f.nextID()
			ev = wire.Reaction{Type: wire.TypeReaction, Room: fr.Room, ID: id, Target: fr.ID, User: fc.user, Emoji: fr.Emoji, On: on, TS: time.Now().UnixMilli()}
		}
		rm.events = append(rm.events, fakeEvent{user: fc.user, frame: fr})
		fc.out <- wire.Encode(wire.Ack{Type: wire.TypeAck, Ref: fr.Ref, Room: fr.Room, ID: id})
		f.fanOut(rm, id, wire.Encode(ev), true)
	default:
		fc.out <- wire.Encode(wire.Error{Type: wire.TypeError, Code: wire.CodeBadFrame, Message: "unsupported", Ref: fr.Ref})
	}
}

// fanOut stores the entry id and delivers its frame b to the room's
// members, with the faults set for messages or, with event, for edits and
// reactions. f.mu is held.
func (f *fakeServer) fanOut(rm *fakeRoom, id string, b []byte, event bool) {
	sid, _ := parseStreamID(id)
	rm.log = append(rm.log, fakeEntry{id: sid, frame: b})
	for mc := range rm.members {
		count, drop, dup := &f.delivers, f.dropEvery, f.dupEvery
		if event {
			count, drop, dup = &f.evDelivs, f.dropEventEvery, f.dupEventEvery
		}
		*count++
		if drop > 0 && *count%drop == 0 {
			continue
		}
		mc.out <- b
		if dup > 0 && *count%dup == 0 {
			mc.out <- b
		}
		mc.sent++
		if f.kickAfter > 0 && mc.sent == f.kickAfter && !f.kicked[mc.user] {
			f.kicked[mc.user] = true
			// Leave the room now, as a server does for a kicked
			// session: nothing more is queued for this connection.
			delete(rm.members, mc)
			mc.once.Do(func() { close(mc.kick) })
		}
	}
}

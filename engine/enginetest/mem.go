// Package enginetest provides an in-memory implementation of the engine's
// storage interfaces (Log, Tail, Bus, Presence, Directory) and a plain
// Encoder, for engine and transport unit tests. It keeps the semantics the
// engine relies on (stream order, exclusive ranges, blocking reads that a
// wake ends, presence with expiry) without Redis.
package enginetest

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redstream/chat/engine"
)

// Mem is an in-memory store. Its zero value is not usable: call New.
// All methods may be called concurrently.
type Mem struct {
	ShardCount int

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every append or wake
	streams  map[string][]engine.Message
	trimmed  map[string]engine.StreamPos
	counters map[string]uint64
	idem     map[string]engine.Message
	channels map[string]bool
	users    map[string]bool
	directs  map[string]map[string]bool
	reads    map[string]engine.StreamPos // room + "\x00" + user
	online   map[string]map[string]time.Time
	subs     map[string]bool
	events   chan engine.Event
	lastMs   uint64
	lastSeq  uint64

	// MaxLen trims each stream to at most this many messages (0: no limit).
	MaxLen int
	// FailAppend, when set, makes Append fail with it.
	FailAppend error
}

var (
	_ engine.Log       = (*Mem)(nil)
	_ engine.Tail      = (*Mem)(nil)
	_ engine.Bus       = (*Mem)(nil)
	_ engine.Presence  = (*Mem)(nil)
	_ engine.Directory = (*Mem)(nil)
)

// New returns an empty store with the channels general, support and tech.
func New() *Mem {
	m := &Mem{
		ShardCount: 4,
		changed:    make(chan struct{}),
		streams:    make(map[string][]engine.Message),
		trimmed:    make(map[string]engine.StreamPos),
		counters:   make(map[string]uint64),
		idem:       make(map[string]engine.Message),
		channels:   map[string]bool{"general": true, "support": true, "tech": true},
		users:      make(map[string]bool),
		directs:    make(map[string]map[string]bool),
		reads:      make(map[string]engine.StreamPos),
		online:     make(map[string]map[string]time.Time),
		subs:       make(map[string]bool),
		events:     make(chan engine.Event, 1024),
	}
	return m
}

// AddUser registers a user name.
func (m *Mem) AddUser(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users[name] = true
}

func (m *Mem) signal() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Append implements engine.Log.
func (m *Mem) Append(req engine.AppendRequest, done func(engine.AppendResult, error)) {
	m.mu.Lock()
	if m.FailAppend != nil {
		err := m.FailAppend
		m.mu.Unlock()
		go done(engine.AppendResult{}, err)
		return
	}
	key := req.Room + "\x00" + req.User + "\x00" + req.ClientID
	if req.ClientID != "" {
		if first, ok := m.idem[key]; ok {
			m.mu.Unlock()
			go done(engine.AppendResult{Message: first, Duplicate: true}, nil)
			return
		}
	}
	ms := uint64(req.Now.UnixMilli())
	if ms <= m.lastMs {
		ms, m.lastSeq = m.lastMs, m.lastSeq+1
	} else {
		m.lastSeq = 0
	}
	m.lastMs = ms
	m.counters[req.Room]++
	msg := engine.Message{
		ID: engine.StreamPos{Ms: ms, Seq: m.lastSeq}, Room: req.Room, User: req.User,
		Text: req.Text, TS: int64(ms), ClientID: req.ClientID, Seq: m.counters[req.Room],
	}
	s := append(m.streams[req.Room], msg)
	if m.MaxLen > 0 && len(s) > m.MaxLen {
		m.trimmed[req.Room] = s[len(s)-m.MaxLen-1].ID
		s = slices.Clone(s[len(s)-m.MaxLen:])
	}
	m.streams[req.Room] = s
	if req.ClientID != "" {
		m.idem[key] = msg
	}
	rk := req.Room + "\x00" + req.User
	if m.reads[rk].Less(msg.ID) {
		m.reads[rk] = msg.ID
	}
	m.signal()
	m.mu.Unlock()
	go done(engine.AppendResult{Message: msg}, nil)
}

// Range implements engine.Log.
func (m *Mem) Range(ctx context.Context, room string, after engine.StreamPos, n int) ([]engine.Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []engine.Message
	for _, msg := range m.streams[room] {
		if after.Less(msg.ID) && len(out) < n {
			out = append(out, msg)
		}
	}
	return out, nil
}

// RevRange implements engine.Log.
func (m *Mem) RevRange(ctx context.Context, room string, before engine.StreamPos, n int) ([]engine.Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.streams[room]
	var out []engine.Message
	for i := len(s) - 1; i >= 0 && len(out) < n; i-- {
		if before.IsZero() || s[i].ID.Less(before) {
			out = append(out, s[i])
		}
	}
	return out, nil
}

// Last implements engine.Log.
func (m *Mem) Last(ctx context.Context, room string) (engine.StreamPos, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.streams[room]
	if len(s) == 0 {
		return engine.StreamPos{}, nil
	}
	return s[len(s)-1].ID, nil
}

// Trimmed implements engine.Log.
func (m *Mem) Trimmed(ctx context.Context, room string) (engine.StreamPos, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.trimmed[room], nil
}

// Get implements engine.Log.
func (m *Mem) Get(ctx context.Context, room string, id engine.StreamPos) (engine.Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, msg := range m.streams[room] {
		if msg.ID == id {
			return msg, nil
		}
	}
	return engine.Message{}, engine.ErrNotFound
}

// Shards implements engine.Tail.
func (m *Mem) Shards() int { return m.ShardCount }

// Shard implements engine.Tail.
func (m *Mem) Shard(room string) int {
	h := 0
	for i := 0; i < len(room); i++ {
		h = h*31 + int(room[i])
	}
	if h < 0 {
		h = -h
	}
	return h % m.ShardCount
}

// Read implements engine.Tail: it returns as soon as any of rooms has
// messages after its position, or Wake is called, or block passes.
func (m *Mem) Read(ctx context.Context, shard int, rooms []string, after []engine.StreamPos, block time.Duration) ([]engine.Message, error) {
	timer := time.NewTimer(block)
	defer timer.Stop()
	first := true
	for {
		m.mu.Lock()
		var out []engine.Message
		for i, room := range rooms {
			for _, msg := range m.streams[room] {
				if after[i].Less(msg.ID) && len(out) < 100 { // like XREAD COUNT
					out = append(out, msg)
				}
			}
		}
		changed := m.changed
		m.mu.Unlock()
		if len(out) > 0 || !first {
			return out, nil
		}
		select {
		case <-changed:
			first = false
		case <-timer.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Wake implements engine.Tail.
func (m *Mem) Wake(ctx context.Context, shard int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.signal()
	return nil
}

// Subscribe implements engine.Bus.
func (m *Mem) Subscribe(ctx context.Context, rooms ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range rooms {
		m.subs[r] = true
	}
	return nil
}

// Unsubscribe implements engine.Bus.
func (m *Mem) Unsubscribe(ctx context.Context, rooms ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range rooms {
		delete(m.subs, r)
	}
	return nil
}

// Events implements engine.Bus.
func (m *Mem) Events() <-chan engine.Event { return m.events }

// Publish delivers ev to subscribers of its room (or to all, for revocations).
func (m *Mem) Publish(ev engine.Event) {
	m.mu.Lock()
	ok := ev.Kind == engine.EventRevoke || m.subs[ev.Room]
	m.mu.Unlock()
	if ok {
		m.events <- ev
	}
}

// Typing implements engine.Bus (the engine throttles; this relays).
func (m *Mem) Typing(ctx context.Context, room, user string, every time.Duration) error {
	m.Publish(engine.Event{Kind: engine.EventTyping, Room: room, User: user})
	return nil
}

// Join implements engine.Presence.
func (m *Mem) Join(ctx context.Context, room string, users []string, deadline time.Time) ([]string, error) {
	m.mu.Lock()
	set := m.online[room]
	if set == nil {
		set = make(map[string]time.Time)
		m.online[room] = set
	}
	var came []string
	for _, u := range users {
		if _, ok := set[u]; !ok {
			came = append(came, u)
		}
		set[u] = deadline
	}
	out := m.onlineLocked(room)
	m.mu.Unlock()
	for _, u := range came {
		m.Publish(engine.Event{Kind: engine.EventPresence, Room: room, User: u, State: "online"})
	}
	return out, nil
}

func (m *Mem) onlineLocked(room string) []string {
	var out []string
	for u := range m.online[room] {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

// Online implements engine.Presence.
func (m *Mem) Online(ctx context.Context, room string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.onlineLocked(room), nil
}

// Leave implements engine.Presence. The fake counts one entry per user,
// which is right for tests with one instance.
func (m *Mem) Leave(ctx context.Context, room string, users []string) error {
	m.mu.Lock()
	var gone []string
	for _, u := range users {
		if _, ok := m.online[room][u]; ok {
			delete(m.online[room], u)
			gone = append(gone, u)
		}
	}
	m.mu.Unlock()
	for _, u := range gone {
		m.Publish(engine.Event{Kind: engine.EventPresence, Room: room, User: u, State: "offline"})
	}
	return nil
}

// Channels implements engine.Directory.
func (m *Mem) Channels(ctx context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for c := range m.channels {
		out = append(out, c)
	}
	return out, nil
}

// ChannelExists implements engine.Directory.
func (m *Mem) ChannelExists(ctx context.Context, name string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.channels[name], nil
}

// CreateChannel implements engine.Directory.
func (m *Mem) CreateChannel(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.channels[name] {
		return engine.ErrExists
	}
	m.channels[name] = true
	return nil
}

// UserExists implements engine.Directory.
func (m *Mem) UserExists(ctx context.Context, name string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.users[name], nil
}

// AddDirect implements engine.Directory.
func (m *Mem) AddDirect(ctx context.Context, room, a, b string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range []string{a, b} {
		if m.directs[u] == nil {
			m.directs[u] = make(map[string]bool)
		}
		m.directs[u][room] = true
	}
	return nil
}

// Directs implements engine.Directory.
func (m *Mem) Directs(ctx context.Context, user string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for r := range m.directs[user] {
		out = append(out, r)
	}
	return out, nil
}

// Summaries implements engine.Directory.
func (m *Mem) Summaries(ctx context.Context, user string, rooms []string, kinds []engine.Kind) ([]engine.RoomSummary, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]engine.RoomSummary, len(rooms))
	for i, r := range rooms {
		s := engine.RoomSummary{Name: r, Kind: kinds[i]}
		msgs := m.streams[r]
		if len(msgs) > 0 {
			s.LastID = msgs[len(msgs)-1].ID
		}
		read, ok := m.reads[r+"\x00"+user]
		if ok || kinds[i] == engine.KindDirect {
			for _, msg := range msgs {
				if read.Less(msg.ID) && msg.User != user {
					s.Unread++
				}
			}
		}
		out[i] = s
	}
	return out, nil
}

// MarkJoined implements engine.Directory.
func (m *Mem) MarkJoined(ctx context.Context, room, user string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := room + "\x00" + user
	if _, ok := m.reads[k]; !ok {
		var last engine.StreamPos
		if s := m.streams[room]; len(s) > 0 {
			last = s[len(s)-1].ID
		}
		m.reads[k] = last
	}
	return nil
}

// MarkRead implements engine.Directory.
func (m *Mem) MarkRead(ctx context.Context, room, user string, id engine.StreamPos, direct bool) (engine.StreamPos, bool, error) {
	m.mu.Lock()
	k := room + "\x00" + user
	var at engine.StreamPos
	for _, msg := range m.streams[room] {
		if !id.Less(msg.ID) {
			at = msg.ID
		}
	}
	moved := m.reads[k].Less(at)
	if moved {
		m.reads[k] = at
	}
	pos := m.reads[k]
	m.mu.Unlock()
	if moved && direct {
		m.Publish(engine.Event{Kind: engine.EventRead, Room: room, User: user, ID: at})
	}
	return pos, moved, nil
}

// JSONEncoder encodes messages and events as the wire protocol's frames,
// without importing transport.
type JSONEncoder struct{}

// Message implements engine.Encoder.
func (JSONEncoder) Message(msg engine.Message) []byte {
	b, _ := json.Marshal(map[string]any{
		"type": "message", "id": msg.ID.String(), "room": msg.Room, "user": msg.User,
		"text": msg.Text, "ts": msg.TS, "client_id": msg.ClientID,
	})
	return b
}

// Event implements engine.Encoder.
func (JSONEncoder) Event(ev engine.Event) []byte {
	v := map[string]any{"type": string(ev.Kind), "room": ev.Room, "user": ev.User}
	switch ev.Kind {
	case engine.EventPresence:
		v["state"] = ev.State
	case engine.EventRead:
		v["id"] = ev.ID.String()
	}
	b, _ := json.Marshal(v)
	return b
}

// Frame is a decoded frame, for assertions.
type Frame struct {
	Type, Room, ID, User, Text, State, ClientID string
}

// Decode parses a frame produced by JSONEncoder.
func Decode(b []byte) Frame {
	var f struct {
		Type, Room, ID, User, Text, State string
		ClientID                          string `json:"client_id"`
	}
	_ = json.Unmarshal(b, &f)
	return Frame{f.Type, f.Room, f.ID, f.User, f.Text, f.State, f.ClientID}
}

// IsDirect reports whether room is a direct room name.
func IsDirect(room string) bool { return strings.HasPrefix(room, "dm:") }

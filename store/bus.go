package store

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/engine"
)

// bus is the instance's one pub/sub connection: the revocation channel
// plus the event channel of every room with local sessions. go-redis
// reconnects and resubscribes it after a Redis restart; events published
// meanwhile are lost, which is what pub/sub promises (at most once).
type bus struct {
	s      *Store
	ps     *redis.PubSub
	events chan engine.Event
	done   chan struct{}
	once   sync.Once
}

// eventQueue bounds events waiting for the engine's event loop. The loop
// only copies frames into session queues, so it keeps up unless the
// process is starved; beyond this, events are dropped like pub/sub drops
// them.
const eventQueue = 4096

func newBus(s *Store) *bus {
	b := &bus{
		s:      s,
		ps:     s.rdb.Subscribe(s.ctx, chanRevoke),
		events: make(chan engine.Event, eventQueue),
		done:   make(chan struct{}),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		b.loop()
	}()
	return b
}

func (b *bus) close() {
	b.once.Do(func() {
		close(b.done)
		_ = b.ps.Close()
	})
}

// wireEvent is an event as published: short keys, JSON.
type wireEvent struct {
	Kind  string `json:"k"`
	Room  string `json:"r"`
	User  string `json:"u"`
	State string `json:"s,omitempty"`
	ID    string `json:"i,omitempty"`
}

func (b *bus) loop() {
	ch := b.ps.Channel(redis.WithChannelSize(1024))
	dropped := 0
	for {
		var msg *redis.Message
		select {
		case <-b.done:
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			msg = m
		}
		var ev engine.Event
		if msg.Channel == chanRevoke {
			ev = engine.Event{Kind: engine.EventRevoke, Token: msg.Payload}
		} else {
			var w wireEvent
			if err := json.Unmarshal([]byte(msg.Payload), &w); err != nil {
				continue
			}
			ev = engine.Event{Kind: engine.EventKind(w.Kind), Room: w.Room, User: w.User, State: w.State}
			if w.ID != "" {
				ev.ID, _ = engine.ParsePos(w.ID)
			}
		}
		select {
		case b.events <- ev:
		default:
			dropped++
			if dropped&(dropped-1) == 0 { // log 1, 2, 4, 8… drops
				b.s.log.Warn("event queue full; dropping ephemeral events", "dropped", dropped)
			}
		}
	}
}

// Subscribe implements engine.Bus.
func (s *Store) Subscribe(ctx context.Context, rooms ...string) error {
	return wrap("subscribe", s.bus.ps.Subscribe(ctx, channels(rooms)...))
}

// Unsubscribe implements engine.Bus.
func (s *Store) Unsubscribe(ctx context.Context, rooms ...string) error {
	return wrap("unsubscribe", s.bus.ps.Unsubscribe(ctx, channels(rooms)...))
}

func channels(rooms []string) []string {
	out := make([]string, len(rooms))
	for i, r := range rooms {
		out[i] = eventChannel(r)
	}
	return out
}

// Events implements engine.Bus.
func (s *Store) Events() <-chan engine.Event { return s.bus.events }

// Typing implements engine.Bus.
func (s *Store) Typing(ctx context.Context, room, user string, every time.Duration) error {
	payload, _ := json.Marshal(wireEvent{Kind: string(engine.EventTyping), Room: room, User: user})
	err := typingScript.Run(ctx, s.rdb, []string{typingKey(room, user)},
		every.Milliseconds(), eventChannel(room), payload).Err()
	return wrap("typing", err)
}

// Join implements engine.Presence.
func (s *Store) Join(ctx context.Context, room string, users []string, deadline time.Time) ([]string, error) {
	return s.presence(ctx, "join", room, users, deadline)
}

// Online implements engine.Presence.
func (s *Store) Online(ctx context.Context, room string) ([]string, error) {
	return s.presence(ctx, "online", room, nil, time.Time{})
}

// Leave implements engine.Presence.
func (s *Store) Leave(ctx context.Context, room string, users []string) error {
	_, err := s.presence(ctx, "leave", room, users, time.Time{})
	return err
}

func presenceArgs(instance, op, room string, users []string, deadline time.Time) ([]string, []any) {
	args := make([]any, 0, 6+len(users))
	args = append(args, op, time.Now().UnixMilli(), deadline.UnixMilli(), instance, eventChannel(room), room)
	for _, u := range users {
		args = append(args, u)
	}
	return []string{presZKey(room), presCKey(room)}, args
}

func (s *Store) presence(ctx context.Context, op, room string, users []string, deadline time.Time) ([]string, error) {
	keys, args := presenceArgs(s.opts.Instance, op, room, users, deadline)
	res, err := presenceScript.Run(ctx, s.rdb, keys, args...).StringSlice()
	if err != nil && err != redis.Nil {
		return nil, wrap("presence "+op+" "+room, err)
	}
	return res, nil
}

package transport

import (
	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/transport/wire"
)

// Encoder turns engine entries and events into wire frames; the engine
// calls it once per entry for all local sessions.
type Encoder struct{}

var _ engine.Encoder = Encoder{}

// Entry implements engine.Encoder.
func (Encoder) Entry(e *engine.Entry) []byte {
	switch e.Kind {
	case engine.EntryEdit:
		return wire.Encode(wire.Edit{Type: wire.TypeEdit, Room: e.Room, ID: e.ID.String(), Target: e.Target.String(), User: e.User, Text: e.Text, TS: e.TS()})
	case engine.EntryDelete:
		return wire.Encode(wire.Delete{Type: wire.TypeDelete, Room: e.Room, ID: e.ID.String(), Target: e.Target.String(), User: e.User, TS: e.TS()})
	case engine.EntryReaction:
		return wire.Encode(wire.Reaction{Type: wire.TypeReaction, Room: e.Room, ID: e.ID.String(), Target: e.Target.String(), User: e.User,
			Emoji: e.Emoji, On: e.On, TS: e.TS()})
	}
	f := entryJSON(e)
	f.Type = wire.TypeMessage
	return wire.Encode(f)
}

// Event implements engine.Encoder.
func (Encoder) Event(ev engine.Event) []byte {
	switch ev.Kind {
	case engine.EventPresence:
		return wire.Encode(wire.Presence{Type: wire.TypePresence, Room: ev.Room, User: ev.User, State: ev.State})
	case engine.EventRead:
		return wire.Encode(wire.Read{Type: wire.TypeRead, Room: ev.Room, User: ev.User, ID: ev.ID.String()})
	case engine.EventTopic:
		return wire.Encode(wire.RoomTopic{Type: wire.TypeRoom, Room: ev.Room, Topic: ev.Topic, User: ev.User})
	default:
		return wire.Encode(wire.Typing{Type: wire.TypeTyping, Room: ev.Room, User: ev.User})
	}
}

// UserEvent implements engine.Encoder.
func (Encoder) UserEvent(ev engine.UserEvent) []byte {
	switch ev.Kind {
	case engine.UserRoomAdded:
		return wire.Encode(wire.RoomAdded{Type: wire.TypeRoomAdded, Room: ev.Room, Kind: string(ev.RoomKind)})
	case engine.UserRoomRemoved:
		return wire.Encode(wire.RoomRemoved{Type: wire.TypeRoomRemoved, Room: ev.Room, Reason: ev.Reason})
	default:
		return wire.Encode(wire.Mention{Type: wire.TypeMention, Room: ev.Room, ID: ev.ID.String(), User: ev.From, Text: ev.Text})
	}
}

// Kicked implements engine.Encoder.
func (Encoder) Kicked(room, reason string) []byte {
	return wire.Encode(wire.Kicked{Type: wire.TypeKicked, Room: room, Reason: reason})
}

// entryJSON is a message as sent.
func entryJSON(e *engine.Entry) wire.Message {
	m := wire.Message{ID: e.ID.String(), Room: e.Room, User: e.User, Text: e.Text, TS: e.TS(), ClientID: e.ClientID, Mentions: e.Mentions}
	if !e.ReplyTo.IsZero() {
		m.ReplyTo = e.ReplyTo.String()
	}
	return m
}

// messageJSON is a message in its current state.
func messageJSON(m engine.Message) wire.Message {
	w := entryJSON(&m.Entry)
	w.EditedTS, w.Deleted, w.ReplyCount = m.EditedTS, m.Deleted, m.ReplyCount
	if len(m.Reactions) > 0 {
		w.Reactions = make(map[string][]string, len(m.Reactions))
		for _, r := range m.Reactions {
			w.Reactions[r.Emoji] = r.Users
		}
	}
	return w
}

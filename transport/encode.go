package transport

import (
	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/transport/wire"
)

// Encoder turns engine messages and events into wire frames; the engine
// calls it once per message for all local sessions.
type Encoder struct{}

var _ engine.Encoder = Encoder{}

// Message implements engine.Encoder.
func (Encoder) Message(m engine.Message) []byte {
	f := messageJSON(m)
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
	default:
		return wire.Encode(wire.Typing{Type: wire.TypeTyping, Room: ev.Room, User: ev.User})
	}
}

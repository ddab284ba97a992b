package wire_test

import (
	"testing"

	"github.com/redstream/chat/transport/wire"
)

func BenchmarkDecodeSend(b *testing.B) {
	p := []byte(`{"type":"send","room":"general","text":"hello, this is a typical chat message of moderate length","client_id":"4f1c2a9e-7d1b-4a8e-9c77-0b1f6c2d3e4f","ref":17}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, err := wire.Decode(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeMessage(b *testing.B) {
	m := wire.Message{Type: wire.TypeMessage, ID: "1795833383061-0", Room: "general", User: "alice",
		Text: "hello, this is a typical chat message of moderate length", TS: 1795833383061, ClientID: "4f1c2a9e"}
	b.ReportAllocs()
	for b.Loop() {
		_ = wire.Encode(m)
	}
}

package wire_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/redstream/chat/transport/wire"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		code string // "" means no error
		want wire.ClientFrame
	}{
		{`{"type":"join","room":"general","since":"1-0","ref":1}`, "", wire.ClientFrame{Type: "join", Room: "general", Since: "1-0", Ref: json.RawMessage("1")}},
		{`{"type":"send","room":"r","text":"hi","client_id":"c","extra":[1,{"x":2}]}`, "", wire.ClientFrame{Type: "send", Room: "r", Text: "hi", ClientID: "c"}},
		{`  {"type":"ping"}`, "", wire.ClientFrame{Type: "ping"}},
		{`not json`, wire.CodeBadFrame, wire.ClientFrame{}},
		{`[]`, wire.CodeBadFrame, wire.ClientFrame{}},
		{`"join"`, wire.CodeBadFrame, wire.ClientFrame{}},
		{`{"type":"join"`, wire.CodeBadFrame, wire.ClientFrame{}},
		{`{}`, wire.CodeBadFrame, wire.ClientFrame{}},
		{`{"type":"explode"}`, wire.CodeBadFrame, wire.ClientFrame{}},
		{`{"type":7}`, wire.CodeBadFrame, wire.ClientFrame{}},
		{`{"type":"join","room":["general"]}`, wire.CodeInvalid, wire.ClientFrame{}},
		{`{"type":"send","room":"r","text":5,"ref":"x"}`, wire.CodeInvalid, wire.ClientFrame{}},
		{`{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, wire.CodeBadFrame, wire.ClientFrame{}},
		{`{"type":"ping","ref":"` + strings.Repeat("r", 300) + `"}`, wire.CodeInvalid, wire.ClientFrame{}},
	}
	for _, tc := range tests {
		f, err := wire.Decode([]byte(tc.in))
		var de *wire.DecodeError
		switch {
		case tc.code == "" && err != nil:
			t.Errorf("Decode(%.40q) = %v", tc.in, err)
		case tc.code != "" && (!errors.As(err, &de) || de.Code != tc.code):
			t.Errorf("Decode(%.40q) error = %v, want code %s", tc.in, err, tc.code)
		case tc.code == "" && (f.Type != tc.want.Type || f.Room != tc.want.Room || f.Text != tc.want.Text || string(f.Ref) != string(tc.want.Ref)):
			t.Errorf("Decode(%.40q) = %+v, want %+v", tc.in, f, tc.want)
		}
	}
	if _, err := wire.Decode([]byte("{\"type\":\"send\",\"text\":\"\xff\"}")); !errors.Is(err, wire.ErrInvalidUTF8) {
		t.Errorf("invalid UTF-8: %v", err)
	}
	// An invalid frame still yields its ref, for the error reply.
	f, _ := wire.Decode([]byte(`{"type":"send","text":5,"ref":"x"}`))
	if string(f.Ref) != `"x"` {
		t.Errorf("ref of invalid frame = %s", f.Ref)
	}
}

func TestEncodeGolden(t *testing.T) {
	t.Parallel()
	rec := true
	tests := []struct {
		v    any
		want string
	}{
		{wire.Joined{Type: wire.TypeJoined, Ref: json.RawMessage(`1`), Room: "general", LastID: "0-0", Online: []string{"alice"}, Recovered: &rec},
			`{"type":"joined","ref":1,"room":"general","last_id":"0-0","online":["alice"],"recovered":true}`},
		{wire.Joined{Type: wire.TypeJoined, Room: "general", LastID: "5-1", Online: []string{}},
			`{"type":"joined","room":"general","last_id":"5-1","online":[]}`},
		{wire.Ack{Type: wire.TypeAck, Room: "r", ID: "1-0", ClientID: "c"}, `{"type":"ack","room":"r","id":"1-0","client_id":"c"}`},
		{wire.Message{Type: wire.TypeMessage, ID: "1-0", Room: "r", User: "u", Text: "<b>", TS: 1}, `{"type":"message","id":"1-0","room":"r","user":"u","text":"\u003cb\u003e","ts":1}`},
		{wire.Message{ID: "1-0", Room: "r", User: "u", Text: "t", TS: 1, ClientID: "c"}, `{"id":"1-0","room":"r","user":"u","text":"t","ts":1,"client_id":"c"}`},
		{wire.Error{Type: wire.TypeError, Code: wire.CodeInvalid, Message: "m"}, `{"type":"error","code":"invalid","message":"m"}`},
		{wire.Presence{Type: wire.TypePresence, Room: "r", User: "u", State: wire.StateOffline}, `{"type":"presence","room":"r","user":"u","state":"offline"}`},
	}
	for _, tc := range tests {
		if got := string(wire.Encode(tc.v)); got != tc.want {
			t.Errorf("Encode(%T)\n got %s\nwant %s", tc.v, got, tc.want)
		}
	}
}

// FuzzDecode: no input panics, every error is classified, and whatever
// decodes as a known frame holds valid UTF-8.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"join","room":"general","since":"0-0","ref":1}`,
		`{"type":"send","room":"general","text":"hello","client_id":"a"}`,
		`{"type":"auth","token":"x.y.z"}`, `{"type":"read","room":"r","id":"1-1"}`,
		`{"type":"typing","room":"r"}`, `{"type":"leave","room":"r"}`, `{"type":"ping"}`,
		`[[[[`, `{"a":"\ud800"}`, "{\"type\":\"send\",\"text\":\"\xff\"}", `{"type":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := wire.Decode(data)
		var de *wire.DecodeError
		switch {
		case err == nil:
			if fr.Type == "" || !utf8.ValidString(fr.Text) || !utf8.ValidString(fr.Room) {
				t.Fatalf("accepted %q as %+v", data, fr)
			}
		case errors.Is(err, wire.ErrInvalidUTF8):
			if utf8.Valid(data) {
				t.Fatalf("valid UTF-8 refused as invalid: %q", data)
			}
		case errors.As(err, &de):
			if de.Code != wire.CodeBadFrame && de.Code != wire.CodeInvalid {
				t.Fatalf("unknown code %q", de.Code)
			}
		default:
			t.Fatalf("unclassified error %v", err)
		}
	})
}

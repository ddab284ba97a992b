package main

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/redstream/chat/transport/wire"
)

// fastFrameCases are frames for decodeFast, with whether it must decode
// them itself (true) or leave them to encoding/json (false).
var fastFrameCases = []struct {
	in   string
	fast bool
}{
	// What the server sends.
	{`{"type":"message","id":"1795833383061-0","room":"general","user":"alice","text":"b|run.3|17|1795833383061000000","ts":1795833383061,"client_id":"run.3-17"}`, true},
	{`{"type":"ack","ref":2,"room":"general","id":"1795833383061-0","client_id":"run.3-17"}`, true},
	{`{"type":"message","id":"1-0","room":"r","user":"u","text":"hello","ts":1}`, true},
	// Order, whitespace and repeated keys (the last one wins).
	{` { "client_id" : "x" , "text":"t", "type" :"message","room":"r","id":"5"} ` + "\n\t\r", true},
	{`{"type":"ack","type":"message","id":"1","id":"2"}`, true},
	{`{"type":"joined","type":"ack","client_id":"c"}`, true},
	{`{"type":"message"}`, true},
	{`{"id":"1","type":"message","ts":-5,"user":""}`, true},
	// Unknown fields of every JSON type, nested.
	{`{"type":"ack","ref":-1.5e+10,"extra":{"a":[1,{"b":null},"c\"\\\/\b\f\n\r\tAé"],"d":{}},"e":[],"f":true,"g":false,"h":null,"client_id":"c"}`, true},
	{`{"type":"ack","ref":{"client_id":"inner","type":"message"},"client_id":"outer"}`, true},
	{`{"type":"ack","ref":"x","x":[[[[[]]]]],"y":0,"z":0.5,"w":1E5,"v":-0}`, true},
	{`{"type":"message","Reference":1,"ID_":2,"tsx":3,"":4}`, true},
	// Non-ASCII but valid UTF-8 strings are kept as they are.
	{`{"type":"message","text":"héllo wörld ✓ 😀","room":"é"}`, true},
	// Edits and reactions, and the acks of either.
	{`{"type":"edit","room":"r","id":"1795833383062-0","target":"1795833383061-0","user":"alice","text":"b|run.3|18|1","ts":1795833383062}`, true},
	{`{"type":"reaction","room":"r","id":"5-1","target":"5-0","user":"alice","emoji":"👍","on":true,"ts":5}`, true},
	{`{"type":"reaction","room":"r","id":"5-1","target":"5-0","emoji":7,"on":"x"}`, true},
	{`{"type":"ack","ref":18,"room":"r","id":"5-1"}`, true},
	{`{"type":"ack","ref":19,"room":"r"}`, true},
	{`{"type":"ack","ref" : 20 ,"ref":[1, 2],"room":"r"}`, true},
	{`{"type":"ack","ref":null}`, true},
	{`{"type":"edit","target":null}`, false},
	{`{"type":"edit","target":5}`, false},
	{`{"type":"edit","Target":"1"}`, false},
	{`{"type":"ack","REF":1}`, false},
	{`{"type":"ack","Ref":1}`, false},
	{`{"type":"ack","ref":01}`, false},
	{`{"type":"ack","ref":}`, false},
	{`{"type":"edit","target":"a\u0031"}`, false},
	{`{"type":"Edit"}`, false},
	{`{"type":"delete","room":"r","id":"2-0","target":"1-0","user":"u","ts":2}`, false},
	// Other frame types go to encoding/json.
	{`{"type":"joined","room":"r","last_id":"1-0","online":["a","b"]}`, false},
	{`{"type":"error","code":"invalid","message":"m","ref":3}`, false},
	{`{"type":"presence","room":"r","user":"u","state":"online"}`, false},
	{`{"type":"typing","room":"r","user":"u"}`, false},
	{`{"type":"pong"}`, false},
	{`{}`, false},
	{`{"id":"1"}`, false},
	{`{"type":"Message"}`, false},
	{`{"type":"message "}`, false},
	// Escapes in kept strings or keys.
	{`{"type":"message","text":"a\"b"}`, false},
	{`{"type":"message","text":"\u0062|r.1|2|3"}`, false},
	{`{"type":"mes\u0073age"}`, false},
	{`{"\u0074ype":"message"}`, false},
	{`{"type":"ack","client_id":"a\/b"}`, false},
	// Keys encoding/json matches case-insensitively.
	{`{"type":"message","Type":"ack"}`, false},
	{`{"TYPE":"message"}`, false},
	{`{"type":"message","ID":"1"}`, false},
	{`{"type":"message","Client_ID":"1"}`, false},
	{`{"type":"message","TS":1}`, false},
	{`{"type":"message","uſer":"x"}`, false},
	{`{"type":"message","tſ":1}`, false},
	{"{\"type\":\"message\",\"client_\u212aid\":\"x\"}", false},
	// Fields of wire.Message with another JSON type.
	{`{"type":"message","id":null}`, false},
	{`{"type":"message","id":1}`, false},
	{`{"type":"message","room":["r"]}`, false},
	{`{"type":"message","user":5}`, false},
	{`{"type":"message","user":null}`, false},
	{`{"type":"message","ts":"1"}`, false},
	{`{"type":"message","ts":1.5}`, false},
	{`{"type":"message","ts":1e3}`, false},
	{`{"type":"message","ts":null}`, false},
	{`{"type":"message","ts":99999999999999999999}`, false},
	{`{"type":"message","ts":-9223372036854775808}`, true},
	{`{"type":"message","ts":9223372036854775808}`, false},
	{`{"type":null}`, false},
	// Invalid UTF-8 in kept strings (encoding/json replaces it); in skipped
	// ones it is fine.
	{"{\"type\":\"message\",\"text\":\"a\xffb\"}", false},
	{"{\"type\":\"message\",\"room\":\"\xc3\"}", false},
	{"{\"type\":\"message\",\"other\":\"a\xffb\"}", true},
	{"{\"type\":\"message\",\"k\xff\":1}", false},
	// Not valid JSON, or not an object.
	{``, false},
	{` `, false},
	{`null`, false},
	{`[]`, false},
	{`"message"`, false},
	{`{"type":"message"`, false},
	{`{"type":"message"}x`, false},
	{`{"type":"message"}{}`, false},
	{`{"type":"message",}`, false},
	{`{"type":"message" "id":"1"}`, false},
	{`{"type":"message","id":"1",,}`, false},
	{`{"type" "message"}`, false},
	{`{type:"message"}`, false},
	{`{'type':'message'}`, false},
	{`{"type":"message","x":01}`, false},
	{`{"type":"message","x":1.}`, false},
	{`{"type":"message","x":.5}`, false},
	{`{"type":"message","x":1e}`, false},
	{`{"type":"message","x":-}`, false},
	{`{"type":"message","x":+1}`, false},
	{`{"type":"message","x":tru}`, false},
	{`{"type":"message","x":nul}`, false},
	{`{"type":"message","x":truex}`, false},
	{`{"type":"message","x":NaN}`, false},
	{`{"type":"message","x":[1,]}`, false},
	{`{"type":"message","x":[1 2]}`, false},
	{`{"type":"message","x":{"a"}}`, false},
	{`{"type":"message","x":{"a":1,}}`, false},
	{`{"type":"message","x":{1:1}}`, false},
	{`{"type":"message","x":"\x"}`, false},
	{`{"type":"message","x":"\u12"}`, false},
	{`{"type":"message","x":"\u12g4"}`, false},
	{"{\"type\":\"message\",\"x\":\"a\nb\"}", false},
	{"{\"type\":\"message\",\"x\":\"a\x00b\"}", false},
	{"{\"type\":\"message\"}\x00", false},
	{"\ufeff{\"type\":\"message\"}", false},
	{`{"type":"message","x":"unterminated}`, false},
	{`{"type":"message","x":[`, false},
	{`{"type":"message","x":{`, false},
	{`{"type":"message","x`, false},
	// Nesting beyond maxFastDepth.
	{`{"type":"message","x":` + strings.Repeat("[", maxFastDepth) + strings.Repeat("]", maxFastDepth) + `}`, false},
	{`{"type":"message","x":` + strings.Repeat("[", maxFastDepth-1) + strings.Repeat("]", maxFastDepth-1) + `}`, true},
}

// checkFastFrame fails unless, when decodeFast claims the frame, it says
// what encoding/json says.
func checkFastFrame(t *testing.T, in []byte) (fast bool) {
	t.Helper()
	var f fastFrame
	if !decodeFast(in, &f) {
		return false
	}
	var m serverFrame
	if err := json.Unmarshal(in, &m); err != nil {
		t.Fatalf("decodeFast accepted %q, encoding/json: %v", in, err)
	}
	typ := map[int]string{frameMessage: wire.TypeMessage, frameAck: wire.TypeAck, frameEdit: wire.TypeEdit, frameReaction: wire.TypeReaction}[f.kind]
	got := serverFrame{Type: typ, Ref: f.ref, ID: string(f.id), Room: string(f.room), Text: string(f.text), ClientID: string(f.clientID), Target: string(f.target)}
	want := serverFrame{Type: m.Type, Ref: m.Ref, ID: m.ID, Room: m.Room, Text: m.Text, ClientID: m.ClientID, Target: m.Target}
	if got.Type != want.Type || string(got.Ref) != string(want.Ref) || got.ID != want.ID || got.Room != want.Room ||
		got.Text != want.Text || got.ClientID != want.ClientID || got.Target != want.Target {
		t.Fatalf("decodeFast(%q) = %+v, encoding/json %+v", in, got, want)
	}
	return true
}

func TestDecodeFast(t *testing.T) {
	t.Parallel()
	for _, tc := range fastFrameCases {
		if fast := checkFastFrame(t, []byte(tc.in)); fast != tc.fast {
			t.Errorf("decodeFast(%q) decoded: %v, want %v", tc.in, fast, tc.fast)
		}
	}
}

// TestDecodeFastServerFrames checks frames as the server encodes them,
// with texts and IDs of every kind, including ones that need escaping.
func TestDecodeFastServerFrames(t *testing.T) {
	t.Parallel()
	texts := []string{"", "b|ab12cd.3|17|1795833383061000000", "hi", `quo"te`, `back\slash`, "new\nline",
		"<html>&amp;", "tab\t", "é ✓ 😀", "\u2028\u2029", "\x7f", "\x01", "a/b"}
	n := 0
	for _, text := range texts {
		for _, m := range []wire.Message{
			{Type: wire.TypeMessage, ID: "1795833383061-0", Room: "general", User: "alice", Text: text, TS: 1795833383061, ClientID: "ab12cd.3-17"},
			{Type: wire.TypeMessage, ID: "1-2", Room: text, User: text, Text: "x", TS: -1},
			{Type: wire.TypeMessage, ID: text, Room: "r", Text: text},
		} {
			if checkFastFrame(t, wire.Encode(m)) {
				n++
			}
		}
		for _, v := range []any{
			wire.Ack{Type: wire.TypeAck, Ref: json.RawMessage("12"), Room: "general", ID: "1-0", ClientID: text},
			wire.Ack{Type: wire.TypeAck, Ref: json.RawMessage("13"), Room: text, ID: text},
			wire.Edit{Type: wire.TypeEdit, Room: "r", ID: "2-0", Target: text, User: "u", Text: text, TS: 2},
			wire.Reaction{Type: wire.TypeReaction, Room: text, ID: "3-0", Target: "1-0", User: text, Emoji: text, On: true, TS: 3},
		} {
			if checkFastFrame(t, wire.Encode(v)) {
				n++
			}
		}
		if checkFastFrame(t, wire.Encode(wire.Joined{Type: wire.TypeJoined, Room: text, Online: []string{"a"}})) {
			t.Fatal("decodeFast decoded a joined frame")
		}
	}
	if n < 40 {
		t.Fatalf("decodeFast decoded only %d server frames", n)
	}
	// The benchmark's own frames are all decoded fast.
	for _, s := range []string{
		string(wire.Encode(wire.Message{Type: wire.TypeMessage, ID: "1795833383061-0", Room: "cbx-r1", User: "cbx_0000001", Text: "b|ab12cd.3|17|1795833383061000000", TS: 1795833383061, ClientID: "ab12cd.3-17"})),
		string(wire.Encode(wire.Ack{Type: wire.TypeAck, Ref: json.RawMessage("17"), Room: "cbx-r1", ID: "1795833383061-0", ClientID: "ab12cd.3-17"})),
		string(wire.Encode(wire.Ack{Type: wire.TypeAck, Ref: json.RawMessage("18"), Room: "cbx-r1", ID: "1795833383062-0"})),
		string(wire.Encode(wire.Ack{Type: wire.TypeAck, Ref: json.RawMessage("19"), Room: "cbx-r1"})),
		string(wire.Encode(wire.Edit{Type: wire.TypeEdit, Room: "cbx-r1", ID: "1795833383062-0", Target: "1795833383061-0", User: "cbx_0000001", Text: "b|ab12cd.3|18|1795833383061000000", TS: 1795833383062})),
		string(wire.Encode(wire.Reaction{Type: wire.TypeReaction, Room: "cbx-r1", ID: "1795833383063-0", Target: "1795833383061-0", User: "cbx_0000001", Emoji: reactEmoji, On: true, TS: 1795833383063})),
	} {
		if !checkFastFrame(t, []byte(s)) {
			t.Fatalf("decodeFast left %s to encoding/json", s)
		}
	}
}

func TestDecodeFastAllocs(t *testing.T) {
	msg := []byte(`{"type":"message","id":"1795833383061-0","room":"general","user":"alice","text":"b|ab12cd.3|17|1795833383061000000","ts":1795833383061,"client_id":"ab12cd.3-17","x":[{"y":null}]}`)
	ack := []byte(`{"type":"ack","ref":2,"room":"general","id":"1795833383061-0","client_id":"ab12cd.3-17"}`)
	codec := newTextCodec("ab12cd")
	var sink int64
	allocs := testing.AllocsPerRun(100, func() {
		var f fastFrame
		if !decodeFast(msg, &f) {
			t.Fatal("message not decoded")
		}
		id, _ := parseStreamID(f.id)
		k, at, _ := parseText(codec, f.text)
		if !decodeFast(ack, &f) {
			t.Fatal("ack not decoded")
		}
		seq, _ := parseClientID(codec, 3, f.clientID)
		sink += int64(id.ms) + int64(k.seq) + at + int64(seq)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per message and ack", allocs)
	}
	edit := []byte(`{"type":"edit","room":"general","id":"1795833383062-0","target":"1795833383061-0","user":"alice","text":"b|ab12cd.3|18|1795833383061000000","ts":1795833383062}`)
	reaction := []byte(`{"type":"reaction","room":"general","id":"1795833383063-0","target":"1795833383061-0","user":"alice","emoji":"👍","on":false,"ts":1795833383063}`)
	evAck := []byte(`{"type":"ack","ref":18,"room":"general","id":"1795833383062-0"}`)
	allocs = testing.AllocsPerRun(100, func() {
		var f fastFrame
		for _, p := range [][]byte{edit, reaction, evAck} {
			if !decodeFast(p, &f) {
				t.Fatalf("%s not decoded", p)
			}
			id, _ := parseStreamID(f.id)
			ref, _ := parseDecimal(f.ref, 32)
			sink += int64(id.ms) + int64(ref)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per edit, reaction and ack", allocs)
	}
	_ = sink
}

func FuzzFastFrame(f *testing.F) {
	for _, tc := range fastFrameCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkFastFrame(t, in)
	})
}

func BenchmarkDecodeFast(b *testing.B) {
	for _, fr := range []struct{ name, frame string }{
		{"message", `{"type":"message","id":"1795833383061-0","room":"general","user":"alice","text":"b|ab12cd.3|17|1795833383061000000","ts":1795833383061,"client_id":"ab12cd.3-17"}`},
		{"ack", `{"type":"ack","ref":17,"room":"general","id":"1795833383061-0","client_id":"ab12cd.3-17"}`},
		{"edit", `{"type":"edit","room":"general","id":"1795833383062-0","target":"1795833383061-0","user":"alice","text":"b|ab12cd.3|18|1795833383061000000","ts":1795833383062}`},
		{"reaction", `{"type":"reaction","room":"general","id":"1795833383063-0","target":"1795833383061-0","user":"alice","emoji":"👍","on":true,"ts":1795833383063}`},
		{"event-ack", `{"type":"ack","ref":18,"room":"general","id":"1795833383062-0"}`},
	} {
		p := []byte(fr.frame)
		b.Run(fr.name+"/fast", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var f fastFrame
				if !decodeFast(p, &f) {
					b.Fatal("not decoded")
				}
			}
		})
		b.Run(fr.name+"/json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var m serverFrame
				_ = json.Unmarshal(p, &m)
			}
		})
	}
}

// The parsers before they took bytes, to check the new ones against.

func refParseStreamID(s string) (streamID, bool) {
	a, b, found := strings.Cut(s, "-")
	ms, err := strconv.ParseUint(a, 10, 64)
	if err != nil {
		return streamID{}, false
	}
	var seq uint64
	if found {
		if seq, err = strconv.ParseUint(b, 10, 64); err != nil {
			return streamID{}, false
		}
	}
	return streamID{ms, seq}, true
}

func refParseText(t textCodec, s string) (k msgKey, intended int64, ok bool) {
	rest, found := strings.CutPrefix(s, t.prefix)
	if !found {
		return k, 0, false
	}
	a, rest, found := strings.Cut(rest, "|")
	if !found {
		return k, 0, false
	}
	b, c, found := strings.Cut(rest, "|")
	if !found {
		return k, 0, false
	}
	snd, err1 := strconv.ParseInt(a, 10, 32)
	seq, err2 := strconv.ParseUint(b, 10, 32)
	at, err3 := strconv.ParseInt(c, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || snd < 0 {
		return k, 0, false
	}
	return msgKey{sender: int32(snd), seq: uint32(seq)}, at, true
}

func refParseClientID(t textCodec, sender int, id string) (uint32, bool) {
	rest, found := strings.CutPrefix(id, t.prefix[2:]+strconv.Itoa(sender)+"-")
	if !found {
		return 0, false
	}
	seq, err := strconv.ParseUint(rest, 10, 32)
	return uint32(seq), err == nil
}

var parserSeeds = []string{
	"", "0", "-", "1-", "-1", "1-2", "1795833383061-0", "18446744073709551615-18446744073709551615",
	"18446744073709551616", "1-18446744073709551616", "1-2-3", "+1", "1 ", " 1", "0x10", "1_0", "١",
	"b|ab12cd.3|17|1795833383061000000", "b|ab12cd.3|17|-1", "b|ab12cd.+3|+17|+1", "b|ab12cd.-0|0|0",
	"b|ab12cd.2147483647|4294967295|9223372036854775807", "b|ab12cd.2147483648|1|1", "b|ab12cd.1|4294967296|1",
	"b|ab12cd.1|1|9223372036854775808", "b|ab12cd.1|1|-9223372036854775808", "b|ab12cd.1|1|-9223372036854775809",
	"b|ab12cd.1|2", "b|ab12cd.1|2|3|4", "b|ab12cd.|2|3", "b|ab12cd.1||3", "b|ab12cd.1|2|", "b|ab12cd", "b|other.1|2|3",
	"ab12cd.3-17", "ab12cd.3-", "ab12cd.3-+1", "ab12cd.03-1", "ab12cd.31-5", "ab12cd.3-4294967295", "ab12cd.3-4294967296",
	"ab12cd.-1-1", "ab12cd.3-1-1", "ab12cd.3", "xb12cd.3-1",
}

func checkParsers(t *testing.T, s string, sender int) {
	t.Helper()
	codec := newTextCodec("ab12cd")
	id1, ok1 := parseStreamID(s)
	id2, ok2 := parseStreamID([]byte(s))
	id0, ok0 := refParseStreamID(s)
	if id1 != id0 || ok1 != ok0 || id2 != id0 || ok2 != ok0 {
		t.Fatalf("parseStreamID(%q) = %v %v / %v %v, want %v %v", s, id1, ok1, id2, ok2, id0, ok0)
	}
	k1, at1, ok1 := codec.parse(s)
	k2, at2, ok2 := parseText(codec, []byte(s))
	k0, at0, ok0 := refParseText(codec, s)
	if ok0 != ok1 || ok0 != ok2 || ok0 && (k1 != k0 || at1 != at0 || k2 != k0 || at2 != at0) {
		t.Fatalf("parse(%q) = %v %v %v / %v %v %v, want %v %v %v", s, k1, at1, ok1, k2, at2, ok2, k0, at0, ok0)
	}
	q1, ok1 := codec.parseClientID(sender, s)
	q2, ok2 := parseClientID(codec, sender, []byte(s))
	q0, ok0 := refParseClientID(codec, sender, s)
	if ok0 != ok1 || ok0 != ok2 || ok0 && (q1 != q0 || q2 != q0) {
		t.Fatalf("parseClientID(%d, %q) = %v %v / %v %v, want %v %v", sender, s, q1, ok1, q2, ok2, q0, ok0)
	}
}

func TestParsersMatchStrconv(t *testing.T) {
	t.Parallel()
	for _, s := range parserSeeds {
		for _, sender := range []int{0, 1, 3, 31, 2147483647} {
			checkParsers(t, s, sender)
		}
	}
}

func FuzzParsers(f *testing.F) {
	for _, s := range parserSeeds {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, s string, sender int) {
		if sender < 0 {
			sender = -sender
		}
		if sender < 0 {
			sender = 0
		}
		checkParsers(t, s, sender)
	})
}

// TestSendFrame checks appendSendFrame against json.Marshal of the
// wire.ClientFrame that chatbench used to send.
func TestSendFrame(t *testing.T) {
	t.Parallel()
	for _, run := range []string{"ab12cd", "", "a<b", `q"`, "é", "x&y"} {
		codec := newTextCodec(run)
		for _, room := range []string{"cb-r0", "bench-r12", "", "r>1", `r\`, "r\n", "\u2028"} {
			for _, sender := range []int{0, 7, 123456} {
				for _, seq := range []uint32{0, 1, 4294967295} {
					for _, at := range []int64{0, 1795833383061000000, -1} {
						want, err := json.Marshal(wire.ClientFrame{
							Type:     wire.TypeSend,
							Ref:      json.RawMessage(strconv.FormatUint(uint64(seq), 10)),
							Room:     room,
							Text:     codec.format(sender, seq, at),
							ClientID: codec.clientID(sender, seq),
						})
						if err != nil {
							t.Fatal(err)
						}
						got := codec.appendSendFrame([]byte("prefix"), sender, seq, room, at)
						if string(got) != "prefix"+string(want) {
							t.Fatalf("appendSendFrame(%q, %d, %d, %q, %d) = %s, want %s", run, sender, seq, room, at, got[6:], want)
						}
					}
				}
			}
		}
	}
}

func TestSendFrameText(t *testing.T) {
	t.Parallel()
	got := newTextCodec("ab12cd").appendSendFrame(nil, 3, 17, "bench-r1", 1795833383061000000)
	want := `{"type":"send","ref":17,"room":"bench-r1","text":"b|ab12cd.3|17|1795833383061000000","client_id":"ab12cd.3-17"}`
	if string(got) != want {
		t.Fatalf("appendSendFrame = %s", got)
	}
}

// TestEventFrames checks appendEditFrame and appendReactFrame against
// json.Marshal of the wire.ClientFrame they stand for.
func TestEventFrames(t *testing.T) {
	t.Parallel()
	for _, run := range []string{"ab12cd", "", "a<b", `q"`} {
		codec := newTextCodec(run)
		for _, room := range []string{"cb-r0", "", "r>1", `r\`, "\u2028"} {
			for _, seq := range []uint32{0, 4294967295} {
				for _, target := range []streamID{{0, 0}, {1795833383061, 3}, {^uint64(0), ^uint64(0)}} {
					want, _ := json.Marshal(wire.ClientFrame{Type: wire.TypeEdit, Ref: json.RawMessage(strconv.FormatUint(uint64(seq), 10)),
						Room: room, Text: codec.format(7, seq, 1795833383061000000), ID: target.String()})
					if got := codec.appendEditFrame([]byte("x"), 7, seq, room, target, 1795833383061000000); string(got) != "x"+string(want) {
						t.Fatalf("appendEditFrame = %s, want %s", got[1:], want)
					}
					for _, on := range []bool{true, false} {
						want, _ := json.Marshal(wire.ClientFrame{Type: wire.TypeReact, Ref: json.RawMessage(strconv.FormatUint(uint64(seq), 10)),
							Room: room, ID: target.String(), Emoji: reactEmoji, On: &on})
						if got := appendReactFrame([]byte("x"), seq, room, target, on); string(got) != "x"+string(want) {
							t.Fatalf("appendReactFrame = %s, want %s", got[1:], want)
						}
					}
				}
			}
		}
	}
	got := appendReactFrame(nil, 18, "bench-r1", streamID{1795833383061, 0}, false)
	if want := `{"type":"react","ref":18,"room":"bench-r1","id":"1795833383061-0","emoji":"👍","on":false}`; string(got) != want {
		t.Fatalf("appendReactFrame = %s, want %s", got, want)
	}
	// The server takes them as they are.
	for _, b := range [][]byte{got, newTextCodec("ab12cd").appendEditFrame(nil, 3, 17, "bench-r1", streamID{1, 2}, 5)} {
		f, err := wire.Decode(b)
		if err != nil || f.ID == "" || f.Ref == nil {
			t.Fatalf("wire.Decode(%s) = %+v, %v", b, f, err)
		}
	}
}

// BenchmarkHandle times a receiver's whole handling of one frame, from
// its bytes to the accounting: a message of the run, or an edit or
// reaction. Each round of 4,096 frames starts a fresh receiver, so none
// is a duplicate.
func BenchmarkHandle(b *testing.B) {
	codec := newTextCodec("ab12cd")
	pl := &plan{rooms: []string{"cb-r0"}, roomIndex: map[string]int{"cb-r0": 0}}
	bn := &bench{cfg: &config{}, plan: pl, codec: codec}
	bn.sendEnd.Store(math.MaxInt64)
	const n, t0 = 4096, 1795833383061
	for _, kind := range []string{"message", "edit", "reaction"} {
		frames := make([][]byte, n)
		for i := range frames {
			id, text := fmt.Sprintf("%d-0", t0+i), codec.format(3, uint32(i), (t0+int64(i))*1e6)
			switch kind {
			case "message":
				frames[i] = wire.Encode(wire.Message{Type: wire.TypeMessage, ID: id, Room: "cb-r0", User: "cb_0000004", Text: text, TS: t0 + int64(i), ClientID: codec.clientID(3, uint32(i))})
			case "edit":
				frames[i] = wire.Encode(wire.Edit{Type: wire.TypeEdit, Room: "cb-r0", ID: id, Target: "1-0", User: "cb_0000004", Text: text, TS: t0 + int64(i)})
			default:
				frames[i] = wire.Encode(wire.Reaction{Type: wire.TypeReaction, Room: "cb-r0", ID: id, Target: "1-0", User: "cb_0000004", Emoji: reactEmoji, On: i%2 == 0, TS: t0 + int64(i)})
			}
		}
		b.Run(kind, func(b *testing.B) {
			b.ReportAllocs()
			var c *client
			i := 0
			for b.Loop() {
				if i%n == 0 {
					c = &client{b: bn, rooms: []int{0}, pos: map[int]int{0: 0}, sender: -1, recv: make([]roomRecv, 1), pending: map[uint32]*pendingSend{}}
				}
				c.handle(nil, frames[i%n], (t0+int64(i%n))*1e6+1e6)
				i++
			}
		})
	}
}

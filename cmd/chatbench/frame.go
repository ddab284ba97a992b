package main

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/redstream/chat/transport/wire"
)

// Kinds of frame decodeFast decodes.
const (
	frameMessage = iota + 1
	frameAck
	frameEdit
	frameReaction
)

// fastFrame is a message, ack, edit or reaction frame as decodeFast reads
// it: the fields of serverFrame the hot path uses, as subslices of the
// frame (valid until the read loop reads the next frame). ref is the raw
// JSON value of the ref field, as a json.RawMessage would hold it.
type fastFrame struct {
	kind                                  int
	id, room, text, clientID, target, ref []byte
}

// serverFrame is what chatbench reads of a server frame when decodeFast
// leaves it to encoding/json: the fields of the message, ack, edit and
// reaction frames it uses (and user and ts, which decodeFast checks but
// does not keep). Other frame types are decoded again into their own type.
type serverFrame struct {
	Type     string          `json:"type"`
	Ref      json.RawMessage `json:"ref"`
	ID       string          `json:"id"`
	Room     string          `json:"room"`
	User     string          `json:"user"`
	Text     string          `json:"text"`
	TS       int64           `json:"ts"`
	ClientID string          `json:"client_id"`
	Target   string          `json:"target"`
}

// The fields of serverFrame, by JSON name; decodeFast must treat each
// the way encoding/json does.
const (
	fieldUnknown = iota
	fieldType
	fieldRef
	fieldID
	fieldRoom
	fieldUser
	fieldText
	fieldTS
	fieldClientID
	fieldTarget
)

var frameFields = [...]string{
	fieldType:     "type",
	fieldRef:      "ref",
	fieldID:       "id",
	fieldRoom:     "room",
	fieldUser:     "user",
	fieldText:     "text",
	fieldTS:       "ts",
	fieldClientID: "client_id",
	fieldTarget:   "target",
}

// frameKind returns the kind of frame a type field names, 0 for a type
// decodeFast leaves to encoding/json.
func frameKind(typ []byte) int {
	switch string(typ) {
	case wire.TypeMessage:
		return frameMessage
	case wire.TypeAck:
		return frameAck
	case wire.TypeEdit:
		return frameEdit
	case wire.TypeReaction:
		return frameReaction
	}
	return 0
}

// maxFastDepth bounds the nesting decodeFast follows in unknown fields;
// deeper frames go to encoding/json.
const maxFastDepth = 64

// decodeFast decodes a message, ack, edit or reaction frame, the frames a
// benchmark mostly receives, without encoding/json's reflection: it is
// what json.Unmarshal(p, &s) with s a serverFrame would give for Type,
// Ref, ID, Room, Text, ClientID and Target. It reports false, leaving the
// frame to encoding/json, for anything else and for anything it is unsure
// about: a frame that is not a valid JSON object, of another type, a key
// that encoding/json would match only case-insensitively, an escape in a
// key or in a string it keeps, a string that is not valid UTF-8, a field
// of serverFrame whose value has an unexpected JSON type (even null), or
// nesting deeper than maxFastDepth. Unknown fields of any JSON type, and
// the value of ref whatever its type, are checked and skipped. As with
// encoding/json, the last of repeated keys wins. It does not allocate.
func decodeFast(p []byte, f *fastFrame) bool {
	*f = fastFrame{}
	var typ []byte
	i := skipSpace(p, 0)
	if i >= len(p) || p[i] != '{' {
		return false
	}
	i = skipSpace(p, i+1)
	if i < len(p) && p[i] == '}' {
		i++
	} else {
		for {
			if i >= len(p) || p[i] != '"' {
				return false
			}
			ks, ke, flags := scanString(p, i)
			if flags&strBad != 0 || flags&(strEscape|strNonASCII) != 0 {
				return false // an escaped or non-ASCII key may fold to a field name
			}
			field, ok := lookupField(p[ks:ke])
			if !ok {
				return false
			}
			i = skipSpace(p, ke+1)
			if i >= len(p) || p[i] != ':' {
				return false
			}
			i = skipSpace(p, i+1)
			if i >= len(p) {
				return false
			}
			switch field {
			case fieldUnknown:
				if i, ok = skipValue(p, i, 1); !ok {
					return false
				}
			case fieldRef: // a json.RawMessage: any value, kept as it is
				start := i
				if i, ok = skipValue(p, i, 1); !ok {
					return false
				}
				f.ref = p[start:i:i]
			case fieldTS:
				// An int64 in encoding/json: accept a plain integer that fits.
				end := i
				if end < len(p) && p[end] == '-' {
					end++
				}
				for end < len(p) && p[end] >= '0' && p[end] <= '9' {
					end++
				}
				n, ok := scanNumber(p, i)
				if !ok || n != end {
					return false
				}
				if _, ok := parseSigned(p[i:end], 64); !ok {
					return false
				}
				i = end
			default: // a string field
				if p[i] != '"' {
					return false
				}
				vs, ve, flags := scanString(p, i)
				if flags&(strBad|strEscape) != 0 || flags&strNonASCII != 0 && !utf8.Valid(p[vs:ve]) {
					return false
				}
				v := p[vs:ve:ve]
				switch field {
				case fieldType:
					typ = v
				case fieldID:
					f.id = v
				case fieldRoom:
					f.room = v
				case fieldText:
					f.text = v
				case fieldClientID:
					f.clientID = v
				case fieldTarget:
					f.target = v
				}
				i = ve + 1
			}
			i = skipSpace(p, i)
			if i >= len(p) {
				return false
			}
			if p[i] == '}' {
				i++
				break
			}
			if p[i] != ',' {
				return false
			}
			i = skipSpace(p, i+1)
		}
	}
	if skipSpace(p, i) != len(p) {
		return false
	}
	f.kind = frameKind(typ)
	return f.kind != 0
}

// lookupField returns the serverFrame field a key names exactly. ok is
// false for a key that encoding/json would match to a field only
// case-insensitively; the key is ASCII.
func lookupField(key []byte) (field int, ok bool) {
	if len(key) >= len(fieldsByLen) {
		return fieldUnknown, true
	}
	for _, fi := range fieldsByLen[len(key)] {
		name := frameFields[fi]
		if string(key) == name {
			return fi, true
		}
		if equalFoldASCII(key, name) {
			return 0, false
		}
	}
	return fieldUnknown, true
}

// fieldsByLen lists the fields of serverFrame by the length of their name.
var fieldsByLen = func() (by [16][]int) {
	for fi, name := range frameFields {
		if fi != fieldUnknown {
			by[len(name)] = append(by[len(name)], fi)
		}
	}
	return by
}()

// equalFoldASCII reports whether the ASCII key equals name but for case.
func equalFoldASCII(key []byte, name string) bool {
	for i := 0; i < len(name); i++ {
		a, b := key[i], name[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

func skipSpace(p []byte, i int) int {
	for i < len(p) {
		switch p[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// Flags of scanString.
const (
	strBad      = 1 << iota // not a valid JSON string
	strEscape               // holds a backslash escape
	strNonASCII             // holds a byte >= 0x80
)

// scanString scans the JSON string that starts with the quote at p[i]. It
// returns the bounds of its contents, p[start:end] (p[end] is the closing
// quote), and what it found; with strBad the bounds mean nothing. Escapes
// are checked, not decoded.
func scanString(p []byte, i int) (start, end, flags int) {
	start = i + 1
	for j := start; j < len(p); j++ {
		c := p[j]
		if !strSpecial[c] {
			continue
		}
		switch {
		case c == '"':
			return start, j, flags
		case c == '\\':
			flags |= strEscape
			j++
			if j >= len(p) {
				return start, j, flags | strBad
			}
			switch p[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(p) {
					return start, j, flags | strBad
				}
				for _, h := range p[j+1 : j+5] {
					if !isHex(h) {
						return start, j, flags | strBad
					}
				}
				j += 4
			default:
				return start, j, flags | strBad
			}
		case c < 0x20:
			return start, j, flags | strBad
		default:
			flags |= strNonASCII
		}
	}
	return start, len(p), flags | strBad
}

// strSpecial marks the bytes scanString must look at.
var strSpecial = func() (t [256]bool) {
	for c := range t {
		t[c] = c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf
	}
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// scanNumber scans the JSON number that starts at p[i] and returns the
// index after it.
func scanNumber(p []byte, i int) (int, bool) {
	if i < len(p) && p[i] == '-' {
		i++
	}
	switch {
	case i >= len(p):
		return i, false
	case p[i] == '0':
		i++
	case p[i] >= '1' && p[i] <= '9':
		i = skipDigits(p, i)
	default:
		return i, false
	}
	if i < len(p) && p[i] == '.' {
		d := i + 1
		if i = skipDigits(p, d); i == d {
			return i, false
		}
	}
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		i++
		if i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		d := i
		if i = skipDigits(p, d); i == d {
			return i, false
		}
	}
	return i, true
}

// skipDigits returns the index after the decimal digits that start at p[i].
func skipDigits(p []byte, i int) int {
	for i < len(p) && p[i] >= '0' && p[i] <= '9' {
		i++
	}
	return i
}

// skipValue checks and skips the JSON value that starts at p[i], nested
// depth deep, and returns the index after it.
func skipValue(p []byte, i, depth int) (int, bool) {
	if i >= len(p) {
		return i, false
	}
	switch c := p[i]; {
	case c == '"':
		_, end, flags := scanString(p, i)
		return end + 1, flags&strBad == 0
	case c == '{' || c == '[':
		if depth >= maxFastDepth {
			return i, false
		}
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		i = skipSpace(p, i+1)
		if i < len(p) && p[i] == closing {
			return i + 1, true
		}
		for {
			if c == '{' {
				if i >= len(p) || p[i] != '"' {
					return i, false
				}
				_, end, flags := scanString(p, i)
				if flags&strBad != 0 {
					return i, false
				}
				i = skipSpace(p, end+1)
				if i >= len(p) || p[i] != ':' {
					return i, false
				}
				i = skipSpace(p, i+1)
			}
			var ok bool
			if i, ok = skipValue(p, i, depth+1); !ok {
				return i, false
			}
			i = skipSpace(p, i)
			if i >= len(p) {
				return i, false
			}
			if p[i] == closing {
				return i + 1, true
			}
			if p[i] != ',' {
				return i, false
			}
			i = skipSpace(p, i+1)
		}
	case c == '-' || c >= '0' && c <= '9':
		return scanNumber(p, i)
	case c == 't':
		return i + 4, hasPrefix(p[i:], "true")
	case c == 'f':
		return i + 5, hasPrefix(p[i:], "false")
	case c == 'n':
		return i + 4, hasPrefix(p[i:], "null")
	}
	return i, false
}

// appendSendFrame appends the send frame of slot seq, text and client ID
// as the codec makes them, for room. The bytes are those of json.Marshal
// of the wire.ClientFrame, which it falls back on when the room or the run
// needs JSON escaping (never for the names chatbench makes).
func (t textCodec) appendSendFrame(dst []byte, sender int, seq uint32, room string, intended int64) []byte {
	if room == "" || !jsonPlain(room) || !jsonPlain(t.prefix) {
		b, _ := json.Marshal(wire.ClientFrame{
			Type:     wire.TypeSend,
			Ref:      json.RawMessage(strconv.FormatUint(uint64(seq), 10)),
			Room:     room,
			Text:     t.format(sender, seq, intended),
			ClientID: t.clientID(sender, seq),
		})
		return append(dst, b...)
	}
	dst = append(dst, `{"type":"send","ref":`...)
	dst = strconv.AppendUint(dst, uint64(seq), 10)
	dst = append(dst, `,"room":"`...)
	dst = append(dst, room...)
	dst = append(dst, `","text":"`...)
	dst = t.appendText(dst, sender, seq, intended)
	dst = append(dst, `","client_id":"`...)
	dst = t.appendClientID(dst, sender, seq)
	return append(dst, `"}`...)
}

// reactEmoji is the emoji chatbench's reactions toggle: four bytes of
// UTF-8, as most emoji are, which json.Marshal writes as they are.
const reactEmoji = "\U0001F44D"

// appendEditFrame appends the edit frame of slot seq: the sender's message
// target in room now reads the text a message of that slot would have.
// The bytes are those of json.Marshal of the wire.ClientFrame, which it
// falls back on when the room or the run needs JSON escaping.
func (t textCodec) appendEditFrame(dst []byte, sender int, seq uint32, room string, target streamID, intended int64) []byte {
	if room == "" || !jsonPlain(room) || !jsonPlain(t.prefix) {
		b, _ := json.Marshal(wire.ClientFrame{
			Type: wire.TypeEdit,
			Ref:  json.RawMessage(strconv.FormatUint(uint64(seq), 10)),
			Room: room,
			Text: t.format(sender, seq, intended),
			ID:   target.String(),
		})
		return append(dst, b...)
	}
	dst = append(dst, `{"type":"edit","ref":`...)
	dst = strconv.AppendUint(dst, uint64(seq), 10)
	dst = append(dst, `,"room":"`...)
	dst = append(dst, room...)
	dst = append(dst, `","text":"`...)
	dst = t.appendText(dst, sender, seq, intended)
	dst = append(dst, `","id":"`...)
	dst = target.appendTo(dst)
	return append(dst, `"}`...)
}

// appendReactFrame appends the react frame of slot seq: add (on) or
// remove reactEmoji on message target in room. The bytes are those of
// json.Marshal of the wire.ClientFrame, which it falls back on when the
// room needs JSON escaping.
func appendReactFrame(dst []byte, seq uint32, room string, target streamID, on bool) []byte {
	if room == "" || !jsonPlain(room) {
		b, _ := json.Marshal(wire.ClientFrame{
			Type:  wire.TypeReact,
			Ref:   json.RawMessage(strconv.FormatUint(uint64(seq), 10)),
			Room:  room,
			ID:    target.String(),
			Emoji: reactEmoji,
			On:    &on,
		})
		return append(dst, b...)
	}
	dst = append(dst, `{"type":"react","ref":`...)
	dst = strconv.AppendUint(dst, uint64(seq), 10)
	dst = append(dst, `,"room":"`...)
	dst = append(dst, room...)
	dst = append(dst, `","id":"`...)
	dst = target.appendTo(dst)
	dst = append(dst, `","emoji":"`+reactEmoji+`","on":`...)
	return append(strconv.AppendBool(dst, on), '}')
}

// jsonPlain reports whether json.Marshal writes s between quotes as it is:
// printable ASCII other than the quote, the backslash and the characters
// it escapes for HTML.
func jsonPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= utf8.RuneSelf, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

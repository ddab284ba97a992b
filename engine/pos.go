package engine

import (
	"fmt"
	"strconv"
	"strings"
)

// StreamPos is a Redis stream ID: milliseconds and a sequence number. It is
// the only cursor of the product: history pages, join since and read
// positions all use it. The zero value is 0-0, before every message.
type StreamPos struct {
	Ms, Seq uint64
}

// ParsePos parses "ms-seq" or "ms" (sequence 0), strictly: decimal digits
// only, no sign, no spaces. It returns an error wrapping ErrInvalid.
func ParsePos(s string) (StreamPos, error) {
	ms, seq, found := strings.Cut(s, "-")
	p := StreamPos{}
	var err error
	if p.Ms, err = parseUint(ms); err != nil {
		return StreamPos{}, fmt.Errorf("stream id %q: %w", s, ErrInvalid)
	}
	if found {
		if p.Seq, err = parseUint(seq); err != nil {
			return StreamPos{}, fmt.Errorf("stream id %q: %w", s, ErrInvalid)
		}
	}
	return p, nil
}

func parseUint(s string) (uint64, error) {
	if s == "" || len(s) > 20 {
		return 0, ErrInvalid
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, ErrInvalid
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

// String formats p as Redis does: "ms-seq".
func (p StreamPos) String() string {
	b := make([]byte, 0, 41)
	b = strconv.AppendUint(b, p.Ms, 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, p.Seq, 10)
	return string(b)
}

// IsZero reports whether p is 0-0.
func (p StreamPos) IsZero() bool { return p.Ms == 0 && p.Seq == 0 }

// Less reports whether p comes before q.
func (p StreamPos) Less(q StreamPos) bool {
	return p.Ms < q.Ms || (p.Ms == q.Ms && p.Seq < q.Seq)
}

// Compare returns -1, 0 or 1 as p is before, equal to or after q.
func (p StreamPos) Compare(q StreamPos) int {
	switch {
	case p.Less(q):
		return -1
	case q.Less(p):
		return 1
	}
	return 0
}

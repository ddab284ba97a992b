package main

import (
	"fmt"
	"slices"
	"strconv"
)

// streamID is a Redis stream ID ("ms-seq"), compared numerically.
type streamID struct{ ms, seq uint64 }

// parseStreamID parses "ms-seq" or "ms". It takes the frame's bytes as
// well as strings, so the read loop parses IDs without allocating.
func parseStreamID[S ~string | ~[]byte](s S) (streamID, bool) {
	a, b, found := s, s[:0], false
	for i := 0; i < len(s); i++ {
		if s[i] == '-' {
			a, b, found = s[:i], s[i+1:], true
			break
		}
	}
	ms, ok := parseDecimal(a, 64)
	if !ok {
		return streamID{}, false
	}
	var seq uint64
	if found {
		if seq, ok = parseDecimal(b, 64); !ok {
			return streamID{}, false
		}
	}
	return streamID{ms, seq}, true
}

// parseDecimal is strconv.ParseUint(s, 10, bits) reduced to what it
// accepts: one or more ASCII digits whose value fits in bits.
func parseDecimal[S ~string | ~[]byte](s S, bits uint) (uint64, bool) {
	if len(s) == 0 {
		return 0, false
	}
	max := ^uint64(0) >> (64 - bits)
	var n uint64
	for i := 0; i < len(s); i++ {
		d := uint64(s[i]) - '0'
		if d > 9 || n > (max-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// parseSigned is strconv.ParseInt(s, 10, bits) reduced to what it
// accepts: an optional sign and one or more ASCII digits whose value fits
// in bits.
func parseSigned[S ~string | ~[]byte](s S, bits uint) (int64, bool) {
	neg := false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	cutoff := uint64(1) << (bits - 1)
	un, ok := parseDecimal(s, 64)
	switch {
	case !ok, !neg && un >= cutoff, neg && un > cutoff:
		return 0, false
	case neg:
		return -int64(un), true
	}
	return int64(un), true
}

// hasPrefix is strings.HasPrefix for a string or byte slice s.
func hasPrefix[S ~string | ~[]byte](s S, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if s[i] != prefix[i] {
			return false
		}
	}
	return true
}

func (a streamID) less(b streamID) bool {
	return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq)
}

func (a streamID) String() string { return string(a.appendTo(nil)) }

// appendTo appends "ms-seq" to dst.
func (a streamID) appendTo(dst []byte) []byte {
	dst = strconv.AppendUint(dst, a.ms, 10)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, a.seq, 10)
}

func (a streamID) compare(b streamID) int {
	switch {
	case a.less(b):
		return -1
	case b.less(a):
		return 1
	}
	return 0
}

// msgKey names one benchmark message: the sender's index in the run and its
// slot number on that sender's schedule. Both are carried in the text, so a
// receiver knows a message's identity without the sender's ack.
type msgKey struct {
	sender int32
	seq    uint32
}

func (k msgKey) String() string { return fmt.Sprintf("%d.%d", k.sender, k.seq) }

// bitset is a growable set of small non-negative integers.
type bitset []uint64

func (b *bitset) add(i uint32) (added bool) {
	w := int(i / 64)
	if w >= len(*b) {
		*b = append(*b, make([]uint64, w+1-len(*b))...)
	}
	m := uint64(1) << (i % 64)
	if (*b)[w]&m != 0 {
		return false
	}
	(*b)[w] |= m
	return true
}

func (b bitset) has(i uint32) bool {
	w := int(i / 64)
	return w < len(b) && b[w]&(uint64(1)<<(i%64)) != 0
}

// roomRecv is what one receiver knows about one room it joined: the last
// stream ID it got (the since cursor for a rejoin), which benchmark
// messages it has seen, and the anomalies it noticed. It is not safe for
// concurrent use; the client guards it with its mutex.
type roomRecv struct {
	last       streamID
	hasLast    bool
	joinedLast string            // last_id from the first joined reply
	seen       map[int32]*bitset // sender index -> slot numbers received
	measured   int64             // distinct measured messages received
	dups       int64             // a benchmark message seen a second time
	reorders   int64             // an ID not above the previous one (duplicates excluded)
	foreign    int64             // messages not sent by this run

	events        []eventRecv // the edits and reactions received, by stream ID
	eventDups     int64       // an event seen a second time
	eventReorders int64       // an event ID not above the previous entry's (duplicates excluded)
}

// eventRecv is an edit or reaction frame a receiver got.
type eventRecv struct {
	id streamID
	at int64 // when it arrived, Unix nanoseconds
}

// eventKey is an edit or reaction a sender had acked with the event's
// stream ID, and when it was due: what every member of its room must get.
type eventKey struct {
	id       streamID
	intended int64
}

// observe records the arrival of message id. isRun says whether the text
// named a message of this run (then key identifies it). It reports whether
// the message was a duplicate or out of order.
func (r *roomRecv) observe(id streamID, key msgKey, isRun bool) (dup, reorder bool) {
	if isRun {
		if r.seen == nil {
			r.seen = make(map[int32]*bitset)
		}
		bs := r.seen[key.sender]
		if bs == nil {
			bs = &bitset{}
			r.seen[key.sender] = bs
		}
		dup = !bs.add(key.seq)
	} else {
		r.foreign++
		dup = r.hasLast && id == r.last
	}
	if dup {
		r.dups++
	} else if r.hasLast && !r.last.less(id) {
		reorder = true
		r.reorders++
	}
	if !r.hasLast || r.last.less(id) {
		r.last, r.hasLast = id, true
	}
	return dup, reorder
}

// observeEvent records the arrival at (Unix nanoseconds) of the edit or
// reaction whose stream ID is id, and reports whether it was a duplicate
// or came after an entry (message or event) with a higher ID. Events
// arrive in stream order, so keeping them sorted costs an append; only a
// reordered one is inserted.
func (r *roomRecv) observeEvent(id streamID, at int64) (dup, reorder bool) {
	n := len(r.events)
	if n == 0 || r.events[n-1].id.less(id) {
		r.events = append(r.events, eventRecv{id, at})
	} else {
		i, found := slices.BinarySearchFunc(r.events, id, func(e eventRecv, id streamID) int { return e.id.compare(id) })
		if found {
			r.eventDups++
			return true, false
		}
		r.events = slices.Insert(r.events, i, eventRecv{id, at})
	}
	if r.hasLast && !r.last.less(id) {
		reorder = true
		r.eventReorders++
	} else {
		r.last, r.hasLast = id, true
	}
	return false, reorder
}

// checkEvents compares the events received with expect, sorted by ID: it
// returns how many of them arrived and how many did not, up to max of the
// missing, and records each arrival's latency from when it was due, in µs,
// into lat when lat is not nil.
func (r *roomRecv) checkEvents(expect []eventKey, lat *Hist, max int) (got, missing int64, sample []streamID) {
	j := 0
	for _, e := range expect {
		for j < len(r.events) && r.events[j].id.less(e.id) {
			j++
		}
		if j < len(r.events) && r.events[j].id == e.id {
			got++
			if lat != nil {
				lat.Record((r.events[j].at - e.intended) / 1e3)
			}
			continue
		}
		missing++
		if len(sample) < max {
			sample = append(sample, e.id)
		}
	}
	return got, missing, sample
}

// has reports whether the message key has been received.
func (r *roomRecv) has(k msgKey) bool {
	bs := r.seen[k.sender]
	return bs != nil && bs.has(k.seq)
}

// since is the cursor to rejoin the room with: the last ID received, or
// the room's last ID at the first join when nothing arrived since.
func (r *roomRecv) since() string {
	if r.hasLast {
		return r.last.String()
	}
	return r.joinedLast
}

// check returns how many of the expected messages have not been received,
// and up to max of them.
func (r *roomRecv) check(expect []msgKey, max int) (lost int64, sample []msgKey) {
	for _, k := range expect {
		if !r.has(k) {
			lost++
			if len(sample) < max {
				sample = append(sample, k)
			}
		}
	}
	return lost, sample
}

// flattenKeys encodes keys as sender, seq pairs for the worker protocol.
func flattenKeys(keys []msgKey) []int64 {
	out := make([]int64, 0, 2*len(keys))
	for _, k := range keys {
		out = append(out, int64(k.sender), int64(k.seq))
	}
	return out
}

// flattenEvents encodes events as ms, seq, intended triples for the
// worker protocol.
func flattenEvents(evs []eventKey) []int64 {
	out := make([]int64, 0, 3*len(evs))
	for _, e := range evs {
		out = append(out, int64(e.id.ms), int64(e.id.seq), e.intended)
	}
	return out
}

// unflattenEvents decodes what flattenEvents produced, sorted by ID.
func unflattenEvents(flat []int64) ([]eventKey, error) {
	if len(flat)%3 != 0 {
		return nil, fmt.Errorf("event list has length %d, not a multiple of 3", len(flat))
	}
	out := make([]eventKey, 0, len(flat)/3)
	for i := 0; i < len(flat); i += 3 {
		out = append(out, eventKey{id: streamID{uint64(flat[i]), uint64(flat[i+1])}, intended: flat[i+2]})
	}
	slices.SortFunc(out, func(a, b eventKey) int { return a.id.compare(b.id) })
	return out, nil
}

// unflattenKeys decodes what flattenKeys produced.
func unflattenKeys(flat []int64) ([]msgKey, error) {
	if len(flat)%2 != 0 {
		return nil, fmt.Errorf("key list has odd length %d", len(flat))
	}
	out := make([]msgKey, 0, len(flat)/2)
	for i := 0; i < len(flat); i += 2 {
		out = append(out, msgKey{sender: int32(flat[i]), seq: uint32(flat[i+1])})
	}
	return out, nil
}

// textCodec writes and reads the benchmark's message text,
// "b|<run>.<sender>|<seq>|<intended unix nanos>": a receiver learns from
// the text alone who sent the message, its slot and when it was meant to
// be sent, so latency is measured from the schedule (no coordinated
// omission) and loss can be checked without the sender's help.
type textCodec struct {
	prefix string // "b|<run>."
}

func newTextCodec(run string) textCodec { return textCodec{prefix: "b|" + run + "."} }

func (t textCodec) format(sender int, seq uint32, intended int64) string {
	return string(t.appendText(make([]byte, 0, len(t.prefix)+40), sender, seq, intended))
}

// appendText appends the text format returns.
func (t textCodec) appendText(dst []byte, sender int, seq uint32, intended int64) []byte {
	dst = append(dst, t.prefix...)
	dst = strconv.AppendInt(dst, int64(sender), 10)
	dst = append(dst, '|')
	dst = strconv.AppendUint(dst, uint64(seq), 10)
	dst = append(dst, '|')
	return strconv.AppendInt(dst, intended, 10)
}

// parse returns the key and intended send time of a text of this run; ok
// is false for any other text.
func (t textCodec) parse(s string) (k msgKey, intended int64, ok bool) {
	return parseText(t, s)
}

// parseText is textCodec.parse for a string or, without allocating, for
// the bytes of a frame.
func parseText[S ~string | ~[]byte](t textCodec, s S) (k msgKey, intended int64, ok bool) {
	if !hasPrefix(s, t.prefix) {
		return k, 0, false
	}
	rest := s[len(t.prefix):]
	bar1, bar2 := -1, -1
	for i := 0; i < len(rest); i++ {
		if rest[i] == '|' {
			if bar1 < 0 {
				bar1 = i
			} else {
				bar2 = i
				break
			}
		}
	}
	if bar2 < 0 {
		return k, 0, false
	}
	snd, ok1 := parseSigned(rest[:bar1], 32)
	seq, ok2 := parseDecimal(rest[bar1+1:bar2], 32)
	at, ok3 := parseSigned(rest[bar2+1:], 64)
	if !ok1 || !ok2 || !ok3 || snd < 0 {
		return k, 0, false
	}
	return msgKey{sender: int32(snd), seq: uint32(seq)}, at, true
}

// clientID is the send's idempotency key, "<run>.<sender>-<seq>".
func (t textCodec) clientID(sender int, seq uint32) string {
	return string(t.appendClientID(nil, sender, seq))
}

// appendClientID appends the ID clientID returns.
func (t textCodec) appendClientID(dst []byte, sender int, seq uint32) []byte {
	dst = append(dst, t.prefix[2:]...)
	dst = strconv.AppendInt(dst, int64(sender), 10)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, uint64(seq), 10)
}

// parseClientID returns the slot number of a client ID this sender made.
func (t textCodec) parseClientID(sender int, id string) (uint32, bool) {
	return parseClientID(t, sender, id)
}

// parseClientID is textCodec.parseClientID for a string or, without
// allocating, for the bytes of a frame.
func parseClientID[S ~string | ~[]byte](t textCodec, sender int, id S) (uint32, bool) {
	run := t.prefix[2:] // "<run>."
	if !hasPrefix(id, run) {
		return 0, false
	}
	rest := id[len(run):]
	var buf [24]byte
	label := append(strconv.AppendInt(buf[:0], int64(sender), 10), '-')
	if len(rest) < len(label) {
		return 0, false
	}
	for i, b := range label {
		if rest[i] != b {
			return 0, false
		}
	}
	seq, ok := parseDecimal(rest[len(label):], 32)
	return uint32(seq), ok
}

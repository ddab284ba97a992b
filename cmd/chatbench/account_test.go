package main

import (
	"slices"
	"testing"
)

func TestStreamID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in string
		ok bool
		id streamID
	}{
		{"1712345678901-3", true, streamID{1712345678901, 3}},
		{"5", true, streamID{5, 0}},
		{"0-0", true, streamID{}},
		{"", false, streamID{}},
		{"1-x", false, streamID{}},
		{"-1", false, streamID{}},
	} {
		id, ok := parseStreamID(tc.in)
		if ok != tc.ok || id != tc.id {
			t.Errorf("parseStreamID(%q) = %v, %v", tc.in, id, ok)
		}
	}
	if !(streamID{1, 9}).less(streamID{2, 0}) || !(streamID{2, 0}).less(streamID{2, 1}) || (streamID{2, 1}).less(streamID{2, 1}) {
		t.Error("less is not the stream order")
	}
}

func TestTextCodec(t *testing.T) {
	t.Parallel()
	c := newTextCodec("ab12cd")
	s := c.format(17, 42, 1712345678901234567)
	if s != "b|ab12cd.17|42|1712345678901234567" {
		t.Fatalf("format = %q", s)
	}
	k, at, ok := c.parse(s)
	if !ok || k != (msgKey{17, 42}) || at != 1712345678901234567 {
		t.Fatalf("parse = %v %d %v", k, at, ok)
	}
	for _, bad := range []string{"hello", "b|other.1|2|3", "b|ab12cd.1|2", "b|ab12cd.x|2|3", "b|ab12cd.-1|2|3", "b|ab12cd.1|2|3|4"} {
		if _, _, ok := c.parse(bad); ok {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
	id := c.clientID(3, 99)
	if id != "ab12cd.3-99" {
		t.Fatalf("clientID = %q", id)
	}
	if seq, ok := c.parseClientID(3, id); !ok || seq != 99 {
		t.Fatalf("parseClientID = %d %v", seq, ok)
	}
	if _, ok := c.parseClientID(4, id); ok {
		t.Fatal("another sender's client ID accepted")
	}
	if _, ok := c.parseClientID(3, "ab12cd.31-5"); ok {
		t.Fatal("sender 31's client ID accepted as sender 3's")
	}
}

// TestRoomAccounting feeds one receiver synthetic arrivals and checks the
// duplicate, reorder and loss counts it derives.
func TestRoomAccounting(t *testing.T) {
	t.Parallel()
	type arrival struct {
		id     string
		sender int32
		seq    uint32
		run    bool
	}
	msg := func(id string, sender int32, seq uint32) arrival { return arrival{id, sender, seq, true} }
	expect := func(n int) []msgKey {
		var ks []msgKey
		for i := range n {
			ks = append(ks, msgKey{int32(i % 2), uint32(i / 2)})
		}
		return ks
	}
	for _, tc := range []struct {
		name                 string
		arrivals             []arrival
		expect               []msgKey
		dups, reorders, lost int64
		since                string
		firstMissing         string
	}{
		{
			name:     "in order, complete",
			arrivals: []arrival{msg("1-0", 0, 0), msg("1-1", 1, 0), msg("2-0", 0, 1), msg("2-1", 1, 1)},
			expect:   expect(4),
			since:    "2-1",
		},
		{
			name:     "same id twice",
			arrivals: []arrival{msg("1-0", 0, 0), msg("1-1", 1, 0), msg("1-1", 1, 0), msg("2-0", 0, 1), msg("2-1", 1, 1)},
			expect:   expect(4),
			dups:     1,
			since:    "2-1",
		},
		{
			name:     "stored twice under two ids",
			arrivals: []arrival{msg("1-0", 0, 0), msg("1-1", 0, 0), msg("2-0", 1, 0)},
			expect:   []msgKey{{0, 0}, {1, 0}},
			dups:     1,
			since:    "2-0",
		},
		{
			name:         "a gap",
			arrivals:     []arrival{msg("1-0", 0, 0), msg("2-0", 0, 1), msg("2-1", 1, 1)},
			expect:       expect(4),
			lost:         1,
			since:        "2-1",
			firstMissing: "1.0",
		},
		{
			name:     "out of order",
			arrivals: []arrival{msg("1-0", 0, 0), msg("2-0", 0, 1), msg("1-1", 1, 0), msg("2-1", 1, 1)},
			expect:   expect(4),
			reorders: 1,
			since:    "2-1",
		},
		{
			name:     "late duplicate is a duplicate, not a reorder",
			arrivals: []arrival{msg("1-0", 0, 0), msg("2-0", 0, 1), msg("1-0", 0, 0)},
			expect:   []msgKey{{0, 0}, {0, 1}},
			dups:     1,
			since:    "2-0",
		},
		{
			name:     "foreign messages move the cursor only",
			arrivals: []arrival{msg("1-0", 0, 0), {"1-5", 0, 0, false}, msg("2-0", 0, 1)},
			expect:   []msgKey{{0, 0}, {0, 1}},
			since:    "2-0",
		},
		{
			name:         "nothing received",
			expect:       expect(3),
			lost:         3,
			since:        "9-9",
			firstMissing: "0.0",
		},
		{
			name:     "extra unacked messages are fine",
			arrivals: []arrival{msg("1-0", 0, 0), msg("1-1", 0, 1), msg("1-2", 0, 2)},
			expect:   []msgKey{{0, 0}, {0, 2}},
			since:    "1-2",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := roomRecv{joinedLast: "9-9"}
			for _, a := range tc.arrivals {
				id, ok := parseStreamID(a.id)
				if !ok {
					t.Fatalf("bad id %q", a.id)
				}
				r.observe(id, msgKey{a.sender, a.seq}, a.run)
			}
			lost, sample := r.check(tc.expect, 5)
			if r.dups != tc.dups || r.reorders != tc.reorders || lost != tc.lost {
				t.Errorf("dups/reorders/lost = %d/%d/%d, want %d/%d/%d", r.dups, r.reorders, lost, tc.dups, tc.reorders, tc.lost)
			}
			if r.since() != tc.since {
				t.Errorf("since = %q, want %q", r.since(), tc.since)
			}
			if tc.firstMissing != "" && (len(sample) == 0 || sample[0].String() != tc.firstMissing) {
				t.Errorf("missing sample %v, want first %s", sample, tc.firstMissing)
			}
		})
	}
}

// TestAccountAcrossWorkers checks the loss accounting end to end on
// synthetic data: acked messages gathered from two workers form the
// expected set, and receivers are classified by whether they stayed
// connected.
func TestAccountAcrossWorkers(t *testing.T) {
	t.Parallel()
	pl := &plan{rooms: []string{"r0", "r1"}, roomIndex: map[string]int{"r0": 0, "r1": 1}}
	b := &bench{plan: pl}
	// Worker A's sender 0 acked 3 messages in r0; worker B's sender 1 acked 2 in r1.
	ackedA := [][]int64{flattenKeys([]msgKey{{0, 0}, {0, 1}, {0, 2}}), nil}
	ackedB := [][]int64{nil, flattenKeys([]msgKey{{1, 0}, {1, 1}})}
	expectFlat := make([][]int64, 2)
	for _, acked := range [][][]int64{ackedA, ackedB} {
		for r, flat := range acked {
			expectFlat[r] = append(expectFlat[r], flat...)
		}
	}
	expect := make([][]msgKey, 2)
	for r, flat := range expectFlat {
		var err error
		if expect[r], err = unflattenKeys(flat); err != nil {
			t.Fatal(err)
		}
	}
	mk := func(user string, stable bool, rooms []int, got map[int][]msgKey) *client {
		c := &client{b: b, user: user, rooms: rooms, recv: make([]roomRecv, len(rooms)), connected: true, stable: stable}
		for p, r := range rooms {
			for i, k := range got[r] {
				c.recv[p].observe(streamID{uint64(i + 1), 0}, k, true)
				c.recv[p].measured++
			}
		}
		return c
	}
	clients := []*client{
		mk("full", true, []int{0, 1}, map[int][]msgKey{0: expect[0], 1: expect[1]}),
		mk("gap", true, []int{0}, map[int][]msgKey{0: {{0, 0}, {0, 2}}}),
		mk("rejoined", false, []int{1}, map[int][]msgKey{1: {{1, 1}}}),
		{b: b, user: "never", rooms: []int{0}, recv: make([]roomRecv, 1)}, // never connected: not counted
	}
	ex := expected{msgs: expect, events: make([][]eventKey, 2)}
	if allDelivered(clients, ex) {
		t.Fatal("allDelivered with two receivers short")
	}
	res := account(clients, ex, false)
	if res.Lost != 1 || res.LostReconnected != 1 || res.ReconnectedClients != 1 {
		t.Fatalf("lost %d, lost_reconnected %d, reconnected %d; want 1, 1, 1", res.Lost, res.LostReconnected, res.ReconnectedClients)
	}
	if res.Expected != 3+2+3+2 {
		t.Fatalf("expected %d deliveries, want 10", res.Expected)
	}
	want := []string{"gap missed 0.1 in r0", "rejoined missed 1.0 in r1"}
	if !slices.Equal(res.LostSample, want) {
		t.Fatalf("lost sample %q, want %q", res.LostSample, want)
	}
	if !allDelivered(clients[:1], ex) {
		t.Fatal("the complete receiver is not complete")
	}
}

// TestObserveEvents checks what a receiver records of edits and
// reactions: duplicates, reorders against messages and events, and which
// expected events it has, with their latency.
func TestObserveEvents(t *testing.T) {
	t.Parallel()
	var r roomRecv
	id := func(s string) streamID {
		v, ok := parseStreamID(s)
		if !ok {
			t.Fatalf("bad id %q", s)
		}
		return v
	}
	msg := func(s string, seq uint32) { r.observe(id(s), msgKey{0, seq}, true) }
	ev := func(s string, at int64) (dup, reorder bool) { return r.observeEvent(id(s), at) }

	msg("10-0", 0)
	if dup, reorder := ev("11-0", 11e6); dup || reorder {
		t.Fatalf("first event: dup %v, reorder %v", dup, reorder)
	}
	msg("12-0", 1)
	ev("13-0", 13e6)
	if dup, reorder := ev("13-0", 14e6); !dup || reorder {
		t.Fatalf("the same event again: dup %v, reorder %v", dup, reorder)
	}
	if dup, reorder := ev("11-0", 15e6); !dup || reorder {
		t.Fatalf("an older event again: dup %v, reorder %v", dup, reorder)
	}
	// An event below the last entry, a message, is out of order but kept.
	msg("20-0", 2)
	if dup, reorder := ev("15-0", 21e6); dup || !reorder {
		t.Fatalf("a late event: dup %v, reorder %v", dup, reorder)
	}
	// A message below the last event is out of order too.
	ev("22-0", 22e6)
	if _, reorder := r.observe(id("21-0"), msgKey{0, 3}, true); !reorder {
		t.Fatal("a message below the last event is not a reorder")
	}
	if r.eventDups != 2 || r.eventReorders != 1 || r.reorders != 1 || r.since() != "22-0" {
		t.Fatalf("event dups %d, event reorders %d, reorders %d, since %s; want 2, 1, 1, 22-0", r.eventDups, r.eventReorders, r.reorders, r.since())
	}
	want := []streamID{id("11-0"), id("13-0"), id("15-0"), id("22-0")}
	got := make([]streamID, len(r.events))
	for i, e := range r.events {
		got[i] = e.id
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v in order", got, want)
	}

	expect := []eventKey{{id("11-0"), 10e6}, {id("12-5"), 12e6}, {id("15-0"), 14e6}, {id("30-0"), 30e6}}
	lat := &Hist{}
	n, missing, sample := r.checkEvents(expect, lat, 1)
	if n != 2 || missing != 2 || !slices.Equal(sample, []streamID{id("12-5")}) {
		t.Fatalf("checkEvents: %d received, %d missing %v; want 2, 2 [12-5]", n, missing, sample)
	}
	// 11-0 arrived 1 ms after it was due, 15-0 7 ms after.
	if lat.Count() != 2 || lat.Min() != 1000 || lat.Max() != 7000 {
		t.Fatalf("latencies: %d, from %d to %d µs; want 2, 1000 to 7000", lat.Count(), lat.Min(), lat.Max())
	}
}

func TestFlattenEvents(t *testing.T) {
	t.Parallel()
	in := []eventKey{{streamID{5, 1}, 7}, {streamID{1795833383061, 0}, 1795833383061000000}, {streamID{5, 0}, -1}}
	out, err := unflattenEvents(flattenEvents(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []eventKey{in[2], in[0], in[1]} // sorted by ID
	if !slices.Equal(out, want) {
		t.Fatalf("round trip %v, want %v", out, want)
	}
	if _, err := unflattenEvents([]int64{1, 2}); err == nil {
		t.Fatal("a list of 2 accepted")
	}
}

// TestAccountEvents checks the event accounting of account and
// allDelivered: receivers that stayed connected and ones that rejoined.
func TestAccountEvents(t *testing.T) {
	t.Parallel()
	pl := &plan{rooms: []string{"r0"}, roomIndex: map[string]int{"r0": 0}}
	b := &bench{plan: pl}
	ex := expected{msgs: make([][]msgKey, 1), events: [][]eventKey{{{streamID{1, 0}, 0}, {streamID{2, 0}, 0}, {streamID{3, 0}, 0}}}}
	mk := func(user string, stable bool, got ...uint64) *client {
		c := &client{b: b, user: user, rooms: []int{0}, recv: make([]roomRecv, 1), connected: true, stable: stable}
		for _, ms := range got {
			c.recv[0].observeEvent(streamID{ms, 0}, int64(ms)*1e6+5e5)
		}
		return c
	}
	clients := []*client{mk("full", true, 1, 2, 3), mk("gap", true, 1, 3, 4), mk("rejoined", false, 2)}
	if allDelivered(clients, ex) || !allDelivered(clients[:1], ex) {
		t.Fatal("allDelivered does not tell the complete receiver from the others")
	}
	res := account(clients, ex, true)
	if res.EventsExpected != 9 || res.EventDeliveries != 6 || res.EventsMissing != 1 || res.EventsMissingReconnected != 2 {
		t.Fatalf("events expected %d, delivered %d, missing %d and %d after reconnecting; want 9, 6, 1, 2",
			res.EventsExpected, res.EventDeliveries, res.EventsMissing, res.EventsMissingReconnected)
	}
	if res.EventLatency.Count() != 6 || res.EventLatency.Min() != 1500 || res.EventLatency.Max() != 3500 {
		t.Fatalf("event latencies: %d from %d to %d µs", res.EventLatency.Count(), res.EventLatency.Min(), res.EventLatency.Max())
	}
	want := []string{"gap missed event 2-0 in r0", "rejoined missed event 1-0 in r0", "rejoined missed event 3-0 in r0"}
	if !slices.Equal(res.LostSample, want) {
		t.Fatalf("lost sample %q, want %q", res.LostSample, want)
	}
}

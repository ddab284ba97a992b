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
	if allDelivered(clients, expect) {
		t.Fatal("allDelivered with two receivers short")
	}
	res := account(clients, expect)
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
	if !allDelivered(clients[:1], expect) {
		t.Fatal("the complete receiver is not complete")
	}
}

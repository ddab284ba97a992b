package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func planConfig(clients, rooms, size, perClient, servers, senders int) *config {
	cfg := &config{clients: clients, rooms: rooms, roomSize: size, roomsPerClient: perClient, senders: senders, userPrefix: "p_", rate: 100}
	for i := range servers {
		cfg.servers = append(cfg.servers, fmt.Sprintf("http://s%d", i))
	}
	return cfg
}

// TestPlanLayout checks the layout rules on the shapes the team runs and
// on numbers that do not divide: every room has its size of distinct
// members, no client more rooms than allowed, rooms spread over servers,
// and the clients' shares of rooms differ by at most one.
func TestPlanLayout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                                     string
		clients, rooms, size, perClient, servers int
		inRooms, most                            int
		spread                                   bool
		exact                                    bool // every client in rooms has the same count
	}{
		{"T5: 100 rooms of 2 on 2 servers", 200, 100, 2, 0, 2, 200, 1, true, true},
		{"rooms of 2 spanning 2 servers", 140, 70, 2, 0, 2, 140, 1, true, true},
		{"50,000 rooms in 500 sockets", 500, 50000, 1, 100, 1, 500, 100, true, true},
		{"spare sockets hold no room", 1000, 50000, 1, 100, 1, 500, 100, true, true},
		{"rooms×size not a multiple of K", 334, 1000, 1, 3, 1, 334, 3, true, false},
		{"overlap without K: 4 rooms each", 250, 10, 100, 0, 1, 250, 4, true, true},
		{"overlap without K, not dividing", 300, 10, 100, 0, 1, 300, 4, true, false},
		{"3 rooms per client on 2 servers", 12, 18, 2, 3, 2, 12, 3, true, true},
		{"odd clients on 2 servers", 5, 5, 2, 2, 2, 5, 2, false, true},
		{"rooms larger than the servers", 30, 10, 3, 1, 2, 30, 1, true, true},
		{"rooms of 3 on 2 servers, 2 rooms each", 30, 20, 3, 2, 2, 30, 2, true, true},
		{"exact fit", 20, 2, 10, 0, 1, 20, 1, true, true},
		{"every client in every room", 7, 3, 7, 0, 1, 7, 3, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := planConfig(tc.clients, tc.rooms, tc.size, tc.perClient, tc.servers, 0)
			pl, err := newPlan(cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkPlanRooms(t, pl, tc.size)
			if pl.inRooms != tc.inRooms || pl.roomsPerClient != tc.most || pl.spread != tc.spread {
				t.Fatalf("%d clients in rooms, at most %d rooms each, spread %v; want %d, %d, %v",
					pl.inRooms, pl.roomsPerClient, pl.spread, tc.inRooms, tc.most, tc.spread)
			}
			lo, hi := tc.rooms*tc.size, 0
			for _, rs := range pl.clientRooms {
				if len(rs) > 0 {
					lo, hi = min(lo, len(rs)), max(hi, len(rs))
				}
			}
			if tc.exact && lo != hi || hi-lo > 1 {
				t.Fatalf("clients have %d to %d rooms", lo, hi)
			}
			if !pl.spread {
				return
			}
			for r, ms := range pl.members {
				per := make([]int, pl.servers)
				for _, c := range ms {
					per[c%pl.servers]++
				}
				if slices.Max(per)-slices.Min(per) > 1 {
					t.Fatalf("room %d has %v members on each server", r, per)
				}
			}
		})
	}
}

// checkPlanRooms checks that every room has size distinct members and that
// members and clientRooms agree.
func checkPlanRooms(tb testing.TB, pl *plan, size int) {
	tb.Helper()
	n := 0
	for r, ms := range pl.members {
		if len(ms) != size {
			tb.Fatalf("room %d has %d members, want %d", r, len(ms), size)
		}
		seen := map[int]bool{}
		for _, c := range ms {
			if seen[c] {
				tb.Fatalf("room %d has client %d twice", r, c)
			}
			seen[c] = true
			if !slices.Contains(pl.clientRooms[c], r) {
				tb.Fatalf("client %d does not list room %d", c, r)
			}
		}
		n += len(ms)
	}
	m := 0
	for _, rs := range pl.clientRooms {
		m += len(rs)
	}
	if m != n {
		tb.Fatalf("clients list %d memberships, rooms %d", m, n)
	}
}

func TestPlanLayoutErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  *config
		want string
	}{
		{planConfig(499, 50000, 1, 100, 1, 0), "needs 500 clients"},
		{planConfig(10, 2, 11, 0, 1, 0), "exceeds --clients"},
		{planConfig(100, 20000, 1, 0, 1, 0), "raise --clients"},
		{planConfig(10, 2, 5, 0, 1, 11), "exceeds the 10 clients"},
	} {
		_, err := newPlan(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%d clients, %d rooms of %d, %d per client, %d senders: %v, want an error saying %q",
				tc.cfg.clients, tc.cfg.rooms, tc.cfg.roomSize, tc.cfg.roomsPerClient, tc.cfg.senders, err, tc.want)
		}
	}
	if pl, err := newPlan(planConfig(20, 2, 10, 0, 1, 4)); err != nil || pl.users[0] != "p_0000001" {
		t.Fatalf("first user of a plan: %v", err)
	}
}

// TestPlanSenders checks who sends: distinct clients in rooms, spread over
// the servers in turn, each room with a speaker among its members when
// there are senders enough.
func TestPlanSenders(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                                              string
		clients, rooms, size, perClient, servers, senders int
		memberSpeakers                                    bool // every room is sent into by one of its members
	}{
		{"T5", 200, 100, 2, 0, 2, 200, true},
		{"one sender per room of 2 on 2 servers", 140, 70, 2, 0, 2, 70, true},
		{"T1: 10 senders, 10 rooms of 100", 1000, 10, 100, 0, 2, 10, true},
		{"every socket sends into its 100 rooms", 500, 50000, 1, 100, 1, 500, true},
		{"fewer senders than rooms", 500, 50000, 1, 100, 1, 10, false},
		{"one room, many senders", 2000, 1, 2000, 0, 1, 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pl, err := newPlan(planConfig(tc.clients, tc.rooms, tc.size, tc.perClient, tc.servers, tc.senders))
			if err != nil {
				t.Fatal(err)
			}
			perServer := make([]int, pl.servers)
			seen := map[int]bool{}
			for s, c := range pl.senders {
				if seen[c] || pl.senderOf[c] != s || len(pl.clientRooms[c]) == 0 {
					t.Fatalf("sender %d is client %d: a duplicate or in no room", s, c)
				}
				seen[c] = true
				perServer[c%pl.servers]++
			}
			if slices.Max(perServer)-slices.Min(perServer) > 1 {
				t.Fatalf("senders per server %v", perServer)
			}
			for r, ss := range pl.speakers {
				if len(ss) == 0 {
					t.Fatalf("room %d has no speaker", r)
				}
				member := false
				for _, s := range ss {
					member = member || slices.Contains(pl.members[r], pl.senders[s])
				}
				if tc.memberSpeakers && !member {
					t.Fatalf("room %d is sent into by %v, none of them a member", r, ss)
				}
			}
		})
	}
}

// TestSchedule checks that the senders' slots together are every slot of
// the run once, that slot g goes to room g mod R and that a sender's
// slots come in order: each room gets the same share of the rate.
func TestSchedule(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ clients, rooms, size, perClient, servers, senders int }{
		{200, 100, 2, 0, 2, 200},
		{500, 5000, 1, 10, 1, 500},
		{500, 5000, 1, 10, 1, 7},
		{12, 18, 2, 3, 2, 5},
		{2000, 1, 2000, 0, 1, 10},
		{300, 10, 100, 0, 1, 13},
	} {
		t.Run(fmt.Sprint(tc), func(t *testing.T) {
			t.Parallel()
			pl, err := newPlan(planConfig(tc.clients, tc.rooms, tc.size, tc.perClient, tc.servers, tc.senders))
			if err != nil {
				t.Fatal(err)
			}
			slots := int64(20 * tc.rooms) // 20 slots per room
			owner := make([]int, slots)
			for g := range owner {
				owner[g] = -1
			}
			perRoom := make([]int, tc.rooms)
			for s := range pl.senders {
				gen := newSlotGen(tc.rooms, pl.speaks[s])
				last := int64(-1)
				mine := make(map[int]int64) // room -> this sender's slots in it so far
				for {
					g, room, n, ok := gen.next()
					if !ok || g >= slots {
						break
					}
					switch {
					case n != mine[room]:
						t.Fatalf("sender %d: slot %d is its slot %d in room %d, want %d", s, g, n, room, mine[room])
					case g <= last:
						t.Fatalf("sender %d: slot %d after %d", s, g, last)
					case owner[g] >= 0:
						t.Fatalf("slot %d is sender %d's and sender %d's", g, owner[g], s)
					case room != int(g)%tc.rooms:
						t.Fatalf("slot %d goes to room %d, want %d", g, room, int(g)%tc.rooms)
					case !slices.Contains(pl.speakers[room], s):
						t.Fatalf("slot %d: sender %d is no speaker of room %d", g, s, room)
					}
					owner[g], last = s, g
					perRoom[room]++
					mine[room]++
				}
			}
			if i := slices.Index(owner, -1); i >= 0 {
				t.Fatalf("slot %d is nobody's", i)
			}
			if slices.Min(perRoom) != 20 || slices.Max(perRoom) != 20 {
				t.Fatalf("slots per room from %d to %d, want 20", slices.Min(perRoom), slices.Max(perRoom))
			}
			var total float64
			for s := range pl.senders {
				total += pl.senderRate(s, 100)
			}
			if total < 99.999 || total > 100.001 {
				t.Fatalf("senders' rates add up to %v, want 100", total)
			}
		})
	}
}

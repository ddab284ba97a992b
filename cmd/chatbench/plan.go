package main

import (
	"fmt"
	"math"
	"strings"
)

// maxRoomsPerSocket is the server's default limit of rooms one socket may
// join (PROTOCOL.md, "100 rooms per socket").
const maxRoomsPerSocket = 100

// maxRoomsPerCreator bounds the rooms one user creates for a run: servers
// limit the channels a user may create (CHAT_MAX_CHANNELS_PER_USER, 50 by
// default), so many rooms are created by many users.
const maxRoomsPerCreator = 50

// plan is the deterministic layout of a run: who exists, who is in which
// room, who sends into which room. The parent and every worker compute the
// same plan from the same flags, so nothing but tokens and the start time
// has to be passed between processes. It is read-only once built.
//
// The layout, for C clients, R rooms of S members, K rooms per client and
// N servers (client i connects to server i mod N):
//
//   - Memberships m = r·S + j (member j of room r) go to the first U
//     clients, U = max(⌈R·S/K⌉, S) rounded up to a multiple of N where
//     --clients allows; the clients from U on hold a socket in no room.
//     Without an explicit K and with R·S > C, U is C and each client
//     joins ⌈R·S/C⌉ rooms or one fewer.
//   - Membership m goes to server m mod N, and there to the server's
//     clients below U in turn. A room's members thus sit on consecutive
//     servers: with S ≤ N on S distinct servers, otherwise spread evenly
//     (7,000 rooms of 2 on 2 servers: one member on each). Each client
//     gets ⌊R·S/U⌋ or ⌈R·S/U⌉ rooms, never more than K; when R·S is not a
//     multiple of U the first clients of each server get one more.
//   - When that cannot hold (N does not divide the usable clients and a
//     server's share would break K or a room), memberships go to client
//     m mod U instead and rooms are no longer spread evenly (spread is
//     false, and the run says so).
type plan struct {
	clients        int
	servers        int  // client i connects to server i % servers
	roomsPerClient int  // the most rooms one client joins
	inRooms        int  // clients with at least one room
	spread         bool // every room's members are spread over the servers as evenly as it can be

	users       []string // client index -> username
	creators    []string // room r is created by creators[r/maxRoomsPerCreator]
	rooms       []string // room index -> name
	roomIndex   map[string]int
	members     [][]int // room index -> client indices
	clientRooms [][]int // client index -> room indices
	senders     []int   // sender index -> client index
	senderOf    []int   // client index -> sender index, or -1
	speakers    [][]int // room index -> the sender indices that send into it, in turn
	speaks      [][]speak
}

// speak is one room a sender sends into: the room's slot i is this
// sender's when i mod of is turn.
type speak struct{ room, turn, of int }

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// layout returns how many clients hold the memberships (U above) and the
// most rooms each may join, for one run of cfg. It checks that they fit.
func layout(cfg *config) (sockets, perClient int, err error) {
	c, r, s := cfg.clients, cfg.rooms, cfg.roomSize
	m := r * s
	if m == 0 {
		return 0, 0, nil
	}
	if s > c {
		return 0, 0, usagef("--room-size %d exceeds --clients %d", s, c)
	}
	k := cfg.roomsPerClient
	if k == 0 { // not given: one room each, or as many as the clients need
		k = max(1, ceilDiv(m, c))
		if k > maxRoomsPerSocket {
			return 0, 0, usagef("--rooms %d × --room-size %d in %d clients is %d rooms per client; the server allows %d per socket: raise --clients",
				r, s, c, k, maxRoomsPerSocket)
		}
		if k > 1 {
			return c, k, nil
		}
	}
	u := max(ceilDiv(m, k), s)
	if u > c {
		return 0, 0, usagef("--rooms %d × --room-size %d at --rooms-per-client %d needs %d clients, more than --clients %d",
			r, s, k, u, c)
	}
	if n := len(cfg.servers); n > 1 && ceilDiv(u, n)*n <= c {
		u = ceilDiv(u, n) * n // an equal share of the clients on each server
	}
	return u, k, nil
}

// newPlan lays out a run of cfg (see plan). Senders are spread over the
// servers in turn and, on each, evenly over its clients that are in a
// room; a room is sent into by the senders among its members, in turn, or
// by one other sender when none of its members sends (the protocol lets
// anyone send into a public channel). Every room gets the same share of
// --rate.
func newPlan(cfg *config) (*plan, error) {
	n, r, k := cfg.clients, cfg.rooms, cfg.roomSize
	p := &plan{
		clients:     n,
		servers:     max(1, len(cfg.servers)),
		users:       make([]string, n),
		rooms:       make([]string, r),
		roomIndex:   make(map[string]int, r),
		members:     make([][]int, r),
		clientRooms: make([][]int, n),
		senderOf:    make([]int, n),
		speakers:    make([][]int, r),
		spread:      true,
	}
	for i := range n {
		p.users[i] = benchUser(cfg.userPrefix, i)
		p.senderOf[i] = -1
	}
	for c := range ceilDiv(r, maxRoomsPerCreator) {
		p.creators = append(p.creators, benchUser(cfg.userPrefix, c))
	}
	base := roomBase(cfg.userPrefix)
	for ri := range r {
		p.rooms[ri] = fmt.Sprintf("%s-r%d", base, ri)
		p.roomIndex[p.rooms[ri]] = ri
	}
	u, perClient, err := layout(cfg)
	if err != nil {
		return nil, err
	}
	if u > 0 {
		limit := perClient
		if cfg.roomsPerClient == 0 && perClient > 1 {
			limit = maxRoomsPerSocket // as many as it takes, within the server's limit
		}
		if !p.assign(r, k, u, p.servers, limit) {
			p.spread = p.servers == 1
			if !p.assign(r, k, u, 1, limit) {
				return nil, fmt.Errorf("no layout of %d rooms of %d in %d clients with at most %d rooms each", r, k, u, limit)
			}
		}
	}
	for ci, rs := range p.clientRooms {
		p.roomsPerClient = max(p.roomsPerClient, len(rs))
		if len(rs) > 0 {
			p.inRooms++
		}
		if len(rs) > maxRoomsPerSocket {
			return nil, fmt.Errorf("client %d would join %d rooms; the server allows %d per socket", ci, len(rs), maxRoomsPerSocket)
		}
	}
	if cfg.senders > p.inRooms {
		return nil, usagef("--senders %d exceeds the %d clients that are in a room", cfg.senders, p.inRooms)
	}
	p.pickSenders(cfg.senders)
	return p, nil
}

// benchUser is the username of benchmark user i.
func benchUser(prefix string, i int) string { return fmt.Sprintf("%s%07d", prefix, i+1) }

// assign deals the memberships of rooms rooms of size members over the
// first sockets clients, membership m to server m mod servers and there to
// that server's clients in turn. It reports false, leaving the plan's
// rooms empty, when a room would get a client twice or a client more than
// limit rooms.
func (p *plan) assign(rooms, size, sockets, servers, limit int) bool {
	pools := make([][]int, servers) // server -> its clients below sockets
	for i := range sockets {
		pools[i%servers] = append(pools[i%servers], i)
	}
	next := make([]int, servers)
	lastRoom := make([]int, sockets) // the room a client was last given, +1
	clear(p.clientRooms)
	for ri := range rooms {
		p.members[ri] = make([]int, 0, size)
		for j := range size {
			v := (ri*size + j) % servers
			pool := pools[v]
			if len(pool) == 0 {
				return p.unassign()
			}
			ci := pool[next[v]%len(pool)]
			next[v]++
			if lastRoom[ci] == ri+1 || len(p.clientRooms[ci]) >= limit {
				return p.unassign()
			}
			lastRoom[ci] = ri + 1
			p.members[ri] = append(p.members[ri], ci)
			p.clientRooms[ci] = append(p.clientRooms[ci], ri)
		}
	}
	return true
}

func (p *plan) unassign() bool {
	clear(p.members)
	clear(p.clientRooms)
	return false
}

// pickSenders chooses n senders and who sends into which room. Sender s
// connects to server s mod N and sits, among that server's clients that
// are in a room, at the fraction (s+½)/n of them, or at the next one free.
func (p *plan) pickSenders(n int) {
	if n == 0 {
		return
	}
	pools := make([][]int, p.servers)
	var all []int
	for ci, rs := range p.clientRooms {
		if len(rs) > 0 {
			pools[ci%p.servers] = append(pools[ci%p.servers], ci)
			all = append(all, ci)
		}
	}
	taken := make(map[int]bool, n)
	pick := func(pool []int, at int) (int, bool) {
		for i := range pool {
			if ci := pool[(at+i)%len(pool)]; !taken[ci] {
				return ci, true
			}
		}
		return 0, false
	}
	for s := range n {
		pool := pools[s%p.servers]
		ci, ok := 0, false
		if len(pool) > 0 {
			ci, ok = pick(pool, int((float64(s)+0.5)/float64(n)*float64(len(pool))))
		}
		if !ok {
			ci, _ = pick(all, int((float64(s)+0.5)/float64(n)*float64(len(all))))
		}
		taken[ci] = true
		p.senders = append(p.senders, ci)
		p.senderOf[ci] = s
	}
	fallback := 0
	for ri, ms := range p.members {
		for _, ci := range ms {
			if s := p.senderOf[ci]; s >= 0 {
				p.speakers[ri] = append(p.speakers[ri], s)
			}
		}
		if len(p.speakers[ri]) == 0 {
			p.speakers[ri] = []int{fallback % n}
			fallback++
		}
	}
	p.speaks = make([][]speak, n)
	for ri, ss := range p.speakers {
		for turn, s := range ss {
			p.speaks[s] = append(p.speaks[s], speak{room: ri, turn: turn, of: len(ss)})
		}
	}
}

// senderRate returns the messages per second sender s sends at the given
// total rate: each room gets rate/R, shared by its speakers.
func (p *plan) senderRate(s int, rate float64) float64 {
	var share float64
	for _, sp := range p.speaks[s] {
		share += 1 / float64(sp.of)
	}
	return rate / float64(len(p.rooms)) * share
}

// maxSenderRate is the highest senderRate of the plan.
func (p *plan) maxSenderRate(rate float64) float64 {
	var m float64
	for s := range p.speaks {
		m = math.Max(m, p.senderRate(s, rate))
	}
	return m
}

// slotGen yields one sender's slots in the order they come due. Slot g of
// the run (g = 0, 1, 2, …, due g/rate seconds after the start) belongs to
// room g mod R, so every room gets rate/R; the room's i-th slot, g = r +
// i·R, is its speakers' in turn. It is a min-heap over the sender's rooms
// on each room's next slot.
type slotGen struct{ h []slotNext }

type slotNext struct {
	g, step int64 // the room's next slot of this sender, and the distance to the one after
	n       int64 // how many of this sender's slots in the room came before g
	room    int
}

func newSlotGen(rooms int, sp []speak) *slotGen {
	s := &slotGen{h: make([]slotNext, len(sp))}
	for i, x := range sp {
		s.h[i] = slotNext{g: int64(x.room) + int64(x.turn)*int64(rooms), step: int64(x.of) * int64(rooms), room: x.room}
	}
	for i := len(s.h)/2 - 1; i >= 0; i-- {
		s.down(i)
	}
	return s
}

// next returns the sender's next slot, its room and how many of the
// sender's slots in that room came before it; ok is false for a sender
// with no room.
func (s *slotGen) next() (g int64, room int, n int64, ok bool) {
	if len(s.h) == 0 {
		return 0, 0, 0, false
	}
	top := s.h[0]
	s.h[0].g += top.step
	s.h[0].n++
	s.down(0)
	return top.g, top.room, top.n, true
}

func (s *slotGen) down(i int) {
	for {
		l, m := 2*i+1, i
		if l < len(s.h) && s.h[l].g < s.h[m].g {
			m = l
		}
		if l+1 < len(s.h) && s.h[l+1].g < s.h[m].g {
			m = l + 1
		}
		if m == i {
			return
		}
		s.h[i], s.h[m] = s.h[m], s.h[i]
		i = m
	}
}

// roomBase turns the user prefix into a valid room-name stem: lowercase
// letters, digits, '_' and '-', short enough for the 64-character limit.
func roomBase(prefix string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(prefix) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-_")
	if s == "" {
		s = "bench"
	}
	if len(s) > 48 {
		s = s[:48]
	}
	return s
}

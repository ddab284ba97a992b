package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/engine"
)

// feed is the instance's pub/sub side: one subscriber connection per
// Redis primary (one in single mode), subscribed to the channels of the
// rooms and users with local sessions.
//
// Subscriptions are reconciled by one manager goroutine from the set of
// wanted channels: each wanted channel is placed on the connection of
// the primary that serves its hash slot, one SUBSCRIBE (SSUBSCRIBE on a
// cluster, one command per slot, as Redis requires) at a time. When a
// connection fails (its primary died, a network blip) it is closed, not
// repaired: its channels are placed again from a fresh view of the
// cluster, and each confirmation tells the engine to read the room from
// its position (FeedHandler.Resync), so whatever was published meanwhile
// is read from the stream. go-redis's own reconnect is not used, because
// it re-sends every channel in one SSUBSCRIBE, which a cluster refuses
// when they span slots. When a slot moves to another primary, Redis
// unsubscribes its channels; they are placed again the same way.
type feed struct {
	s       *Store
	handler atomic.Pointer[handlerBox]

	mu      sync.Mutex
	want    map[string]bool          // channels wanted
	placed  map[string]*nodeSub      // channel -> the connection it is subscribed (or subscribing) on
	nodes   map[string]*nodeSub      // primary address -> its connection
	pending map[string]time.Time     // channels wanted but not yet confirmed, since when
	waiters map[string]chan struct{} // closed when the channel is confirmed (see ready)
	failing atomic.Int64             // connection failures in a row, for health

	dirty chan struct{} // cap 1: the wanted set changed
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

type handlerBox struct{ h engine.FeedHandler }

// nodeSub is one subscriber connection to one primary.
type nodeSub struct {
	f      *feed
	addr   string
	ps     *redis.PubSub
	chans  map[string]bool // guarded by f.mu
	dead   atomic.Bool
	unpong atomic.Int32 // pings sent without an answer
}

func newFeed(s *Store) *feed {
	f := &feed{
		s:       s,
		want:    make(map[string]bool),
		placed:  make(map[string]*nodeSub),
		nodes:   make(map[string]*nodeSub),
		pending: make(map[string]time.Time),
		waiters: make(map[string]chan struct{}),
		dirty:   make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.manage()
	}()
	return f
}

func (f *feed) close() {
	f.once.Do(func() {
		close(f.done)
		f.mu.Lock()
		nodes := make([]*nodeSub, 0, len(f.nodes))
		for _, ns := range f.nodes {
			nodes = append(nodes, ns)
		}
		f.mu.Unlock()
		for _, ns := range nodes {
			ns.fail()
		}
		f.wg.Wait()
	})
}

// Attach implements engine.Feed.
func (s *Store) Attach(h engine.FeedHandler) { s.feed.handler.Store(&handlerBox{h}) }

// Watch implements engine.Feed.
func (s *Store) Watch(room string) { s.feed.set(roomChannel(room), true) }

// Unwatch implements engine.Feed.
func (s *Store) Unwatch(room string) { s.feed.set(roomChannel(room), false) }

// WatchUser implements engine.Feed.
func (s *Store) WatchUser(user string) { s.feed.set(userChannel(user), true) }

// UnwatchUser implements engine.Feed.
func (s *Store) UnwatchUser(user string) { s.feed.set(userChannel(user), false) }

// UserReady implements engine.Feed.
func (s *Store) UserReady(user string) <-chan struct{} { return s.feed.ready(userChannel(user)) }

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// ready returns a channel closed once ch's subscription is confirmed (at
// once if it is), or when ch is no longer wanted.
func (f *feed) ready(ch string) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, waiting := f.pending[ch]; !waiting || !f.want[ch] {
		return closedChan
	}
	w := f.waiters[ch]
	if w == nil {
		w = make(chan struct{})
		f.waiters[ch] = w
	}
	return w
}

// wake closes ch's waiters. Called with f.mu held.
func (f *feed) wake(ch string) {
	if w := f.waiters[ch]; w != nil {
		close(w)
		delete(f.waiters, ch)
	}
}

// Healthy implements engine.Feed: every wanted channel is subscribed, or
// became wanted less than 5 s ago.
func (s *Store) Healthy() error {
	f := s.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	late := 0
	for _, since := range f.pending {
		if now.Sub(since) > 5*time.Second {
			late++
		}
	}
	if late > 0 {
		return fmt.Errorf("%d rooms or users have no live subscription for over 5s", late)
	}
	return nil
}

func (f *feed) set(ch string, on bool) {
	f.mu.Lock()
	if on {
		if !f.want[ch] {
			f.want[ch] = true
			if f.placed[ch] == nil {
				f.pending[ch] = time.Now()
			}
		}
	} else {
		delete(f.want, ch)
		delete(f.pending, ch)
		f.wake(ch)
	}
	f.mu.Unlock()
	select {
	case f.dirty <- struct{}{}:
	default:
	}
}

// manage reconciles the subscriptions with the wanted channels whenever
// they change, and every second (to re-place channels of a failed
// connection, with backoff while the failures go on).
func (f *feed) manage() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-f.done:
			return
		case <-f.dirty:
		case <-t.C:
		}
		f.reconcile()
	}
}

func (f *feed) reconcile() {
	ctx, cancel := context.WithTimeout(f.s.ctx, f.s.opts.Timeout)
	defer cancel()
	f.mu.Lock()
	for addr, ns := range f.nodes {
		if ns.dead.Load() {
			delete(f.nodes, addr)
			for ch := range ns.chans {
				if f.placed[ch] == ns {
					delete(f.placed, ch)
					if f.want[ch] {
						f.pending[ch] = time.Now()
					}
				}
			}
		}
	}
	var unplaced []string
	for ch := range f.want {
		if f.placed[ch] == nil {
			unplaced = append(unplaced, ch)
		}
	}
	drop := map[*nodeSub][]string{}
	for ch, ns := range f.placed {
		if !f.want[ch] {
			delete(f.placed, ch)
			delete(ns.chans, ch)
			drop[ns] = append(drop[ns], ch)
		}
	}
	f.mu.Unlock()

	for ns, chs := range drop {
		ns.unsubscribe(ctx, chs)
	}
	if len(unplaced) == 0 {
		return
	}
	if n := f.failing.Load(); n > 0 && f.s.cluster != nil {
		f.s.cluster.ReloadState(ctx) // a primary failed: learn who serves its slots now
	}
	add := map[*nodeSub][]string{}
	for _, ch := range unplaced {
		client, err := f.nodeFor(ctx, ch)
		if err != nil {
			f.failing.Add(1)
			f.s.log.Warn("subscribe: no primary for channel", "channel", ch, "err", err)
			return // the next tick tries again
		}
		addr := client.Options().Addr
		f.mu.Lock()
		if f.want[ch] && f.placed[ch] == nil {
			ns := f.nodes[addr]
			if ns == nil {
				ns = f.newNodeSub(addr, client)
				f.nodes[addr] = ns
			}
			f.placed[ch] = ns
			ns.chans[ch] = true
			add[ns] = append(add[ns], ch)
		}
		f.mu.Unlock()
	}
	for ns, chs := range add {
		if err := ns.subscribe(ctx, chs); err != nil {
			f.failing.Add(1)
			f.s.log.Warn("subscribe", "node", ns.addr, "err", err)
			ns.fail()
			continue
		}
	}
}

// nodeFor returns a client of the primary that serves ch's hash slot.
func (f *feed) nodeFor(ctx context.Context, ch string) (*redis.Client, error) {
	if f.s.cluster == nil {
		return f.s.rdb.(*redis.Client), nil
	}
	return f.s.cluster.MasterForKey(ctx, ch)
}

func (f *feed) newNodeSub(addr string, client *redis.Client) *nodeSub {
	ns := &nodeSub{f: f, addr: addr, chans: make(map[string]bool)}
	// An empty PubSub: the connection is made by the first subscribe.
	if f.s.cluster != nil {
		ns.ps = client.SSubscribe(f.s.ctx)
	} else {
		ns.ps = client.Subscribe(f.s.ctx)
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		ns.receive()
	}()
	return ns
}

// subscribe subscribes chs: on a cluster one SSUBSCRIBE per hash slot.
func (ns *nodeSub) subscribe(ctx context.Context, chs []string) error {
	if ns.f.s.cluster == nil {
		for len(chs) > 0 {
			n := min(len(chs), 512)
			if err := ns.ps.Subscribe(ctx, chs[:n]...); err != nil {
				return err
			}
			chs = chs[n:]
		}
		return nil
	}
	for _, group := range bySlot(chs) {
		if err := ns.ps.SSubscribe(ctx, group...); err != nil {
			return err
		}
	}
	return nil
}

func (ns *nodeSub) unsubscribe(ctx context.Context, chs []string) {
	var err error
	if ns.f.s.cluster == nil {
		err = ns.ps.Unsubscribe(ctx, chs...)
	} else {
		for _, group := range bySlot(chs) {
			if err = ns.ps.SUnsubscribe(ctx, group...); err != nil {
				break
			}
		}
	}
	if err != nil && !ns.dead.Load() {
		ns.fail() // its channels are placed again, without these
	}
}

func bySlot(chs []string) [][]string {
	m := map[int][]string{}
	var order []int
	for _, ch := range chs {
		s := Slot(ch)
		if _, ok := m[s]; !ok {
			order = append(order, s)
		}
		m[s] = append(m[s], ch)
	}
	out := make([][]string, 0, len(order))
	for _, s := range order {
		out = append(out, m[s])
	}
	return out
}

// fail closes the connection once; the manager places its channels again.
func (ns *nodeSub) fail() {
	if ns.dead.Swap(true) {
		return
	}
	_ = ns.ps.Close()
	select {
	case ns.f.dirty <- struct{}{}:
	default:
	}
}

// pubsubIdle is how long a subscriber connection may be silent before it
// is pinged; two unanswered pings mark it dead.
const pubsubIdle = 5 * time.Second

func (ns *nodeSub) receive() {
	defer ns.fail()
	f := ns.f
	ctx := f.s.ctx
	for {
		msg, err := ns.ps.ReceiveTimeout(ctx, pubsubIdle)
		if err != nil {
			var ne net.Error
			if ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout() {
				if ns.unpong.Add(1) > 2 {
					f.s.log.Warn("subscriber connection silent; reconnecting", "node", ns.addr)
					return
				}
				if err := ns.ps.Ping(ctx); err != nil {
					return
				}
				continue
			}
			if ctx.Err() == nil && !ns.dead.Load() {
				f.failing.Add(1)
				f.s.log.Warn("subscriber connection lost; resubscribing", "node", ns.addr, "err", err)
			}
			return
		}
		ns.unpong.Store(0)
		switch m := msg.(type) {
		case *redis.Message:
			f.dispatch(m.Channel, m.Payload)
		case *redis.Subscription:
			switch m.Kind {
			case "subscribe", "ssubscribe":
				f.confirmed(ns, m.Channel)
			case "unsubscribe", "sunsubscribe":
				f.dropped(ns, m.Channel)
			}
		}
	}
}

// confirmed handles a subscription confirmation: from now on the
// channel's messages arrive, so the room is read from its position to
// pick up what was published before.
func (f *feed) confirmed(ns *nodeSub, ch string) {
	f.mu.Lock()
	mine := f.placed[ch] == ns
	if mine {
		delete(f.pending, ch)
		f.wake(ch)
	}
	f.mu.Unlock()
	if !mine {
		return
	}
	f.failing.Store(0)
	if kind, name := nameOfChannel(ch); kind == 'c' {
		if h := f.handler.Load(); h != nil {
			h.h.Resync(name)
		}
	}
}

// dropped handles an unsubscription. One the manager asked for needs
// nothing; one the server made on its own (the channel's slot moved to
// another primary) places the channel again.
func (f *feed) dropped(ns *nodeSub, ch string) {
	f.mu.Lock()
	if f.placed[ch] == ns && f.want[ch] {
		delete(f.placed, ch)
		delete(ns.chans, ch)
		f.pending[ch] = time.Now()
		f.mu.Unlock()
		f.s.log.Info("channel moved to another primary; resubscribing", "channel", ch)
		select {
		case f.dirty <- struct{}{}:
		default:
		}
		return
	}
	f.mu.Unlock()
}

func (f *feed) dispatch(ch, payload string) {
	hb := f.handler.Load()
	if hb == nil {
		return
	}
	kind, name := nameOfChannel(ch)
	switch kind {
	case 'c':
		e, ev, isEntry, ok := decodeNotice(name, payload)
		switch {
		case !ok:
			f.s.log.Warn("unreadable notice", "channel", ch)
		case isEntry:
			hb.h.Notice(&e)
		default:
			hb.h.RoomEvent(ev)
		}
	case 'u':
		var w wireUserEvent
		if err := json.Unmarshal([]byte(payload), &w); err != nil {
			f.s.log.Warn("unreadable user event", "channel", ch)
			return
		}
		ev := engine.UserEvent{Kind: engine.UserEventKind(w.Kind), User: name, Room: w.Room, RoomKind: engine.Kind(w.RoomKind),
			Reason: w.Reason, From: w.From, Text: w.Text, Token: w.Token, Before: w.Before}
		ev.ID, _ = engine.ParsePos(w.ID)
		hb.h.UserEvent(ev)
	}
}

// wireUserEvent is a user event as published: short keys, JSON.
type wireUserEvent struct {
	Kind     string `json:"k"`
	Room     string `json:"r,omitempty"`
	RoomKind string `json:"rk,omitempty"`
	Reason   string `json:"why,omitempty"`
	ID       string `json:"i,omitempty"`
	From     string `json:"f,omitempty"`
	Text     string `json:"t,omitempty"`
	Token    string `json:"j,omitempty"`
	Before   int64  `json:"b,omitempty"`
}

// PublishUser implements engine.Feed.
func (s *Store) PublishUser(ctx context.Context, ev engine.UserEvent) error {
	w := wireUserEvent{Kind: string(ev.Kind), Room: ev.Room, RoomKind: string(ev.RoomKind), Reason: ev.Reason,
		From: ev.From, Text: ev.Text, Token: ev.Token, Before: ev.Before}
	if !ev.ID.IsZero() {
		w.ID = ev.ID.String()
	}
	payload, _ := json.Marshal(w)
	return wrap("publish user event", s.publish(ctx, userChannel(ev.User), string(payload)))
}

// Typing implements engine.Feed: relayed at most once per every per user
// and room across instances (a SET NX in the room's slot decides).
func (s *Store) Typing(ctx context.Context, room, user string, every time.Duration) error {
	err := s.run(ctx, s.rdb, typingScript, []string{streamKey(room)}, roomPrefix(room), user, every.Milliseconds(), s.pubcmd).Err()
	return wrap("typing", err)
}

func (s *Store) publish(ctx context.Context, ch, payload string) error {
	if s.cluster != nil {
		return s.cluster.SPublish(ctx, ch, payload).Err()
	}
	return s.rdb.Publish(ctx, ch, payload).Err()
}

// Read implements engine.Feed: one XRANGE per room, in one pipeline (on
// a cluster, go-redis sends each primary its part at once).
func (s *Store) Read(ctx context.Context, reads []engine.RoomRead) ([][]engine.Entry, error) {
	cmds := make([]*redis.XMessageSliceCmd, len(reads))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range reads {
			cmds[i] = p.XRangeN(ctx, streamKey(r.Room), next(r.After), "+", int64(r.N))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, wrap("read rooms", err)
	}
	out := make([][]engine.Entry, len(reads))
	for i, c := range cmds {
		out[i] = decodeEntries(reads[i].Room, c.Val())
	}
	return out, nil
}

// next is the smallest stream ID after p.
func next(p engine.StreamPos) string {
	if p.Seq == ^uint64(0) {
		return engine.StreamPos{Ms: p.Ms + 1}.String()
	}
	return engine.StreamPos{Ms: p.Ms, Seq: p.Seq + 1}.String()
}

// prev is the largest stream ID before p (p not 0-0).
func prev(p engine.StreamPos) string {
	if p.Seq == 0 {
		return engine.StreamPos{Ms: p.Ms - 1, Seq: ^uint64(0)}.String()
	}
	return engine.StreamPos{Ms: p.Ms, Seq: p.Seq - 1}.String()
}

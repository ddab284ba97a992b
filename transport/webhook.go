package transport

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/transport/wire"
)

// WebhookOutbox is the durable side of webhook delivery: the room streams
// and, beside them in Redis, which rooms have undelivered events, which
// instance delivers each room and how far it got. store.Store implements
// it. Every method may be called concurrently.
type WebhookOutbox interface {
	// WebhookPending returns up to n rooms that may have undelivered
	// events, oldest first, and for each a time (Unix ms) it has been
	// pending since at least. It may list a room with nothing pending.
	WebhookPending(ctx context.Context, n int) (rooms []string, since []int64, err error)
	// WebhookTake takes room's delivery lease for owner. When ok, delivery
	// continues after cursor, whose entry counter is q (0: unknown). When
	// another owner holds the lease, ok is false and held says for how
	// long; when room has nothing pending, ok is false and held is 0.
	WebhookTake(ctx context.Context, room, owner string, lease time.Duration) (cursor engine.StreamPos, q uint64, held time.Duration, ok bool, err error)
	// WebhookAdvance records that owner handled room's entries up to to
	// (entry counter q) and extends the lease. With finish it ends the
	// delivery when to is the room's newest entry (done: the lease is
	// released). lost: owner no longer holds the lease, nothing was
	// recorded.
	WebhookAdvance(ctx context.Context, room, owner string, to engine.StreamPos, q uint64, finish bool, lease time.Duration) (done, lost bool, err error)
	// WebhookRenew extends owner's leases of rooms; held[i] is false for a
	// lease owner lost.
	WebhookRenew(ctx context.Context, owner string, rooms []string, lease time.Duration) (held []bool, err error)
	// WebhookRelease gives up owner's lease of room.
	WebhookRelease(ctx context.Context, room, owner string) error
	// WebhookSweep looks for pending rooms WebhookPending might miss, at
	// most once per every across all owners; it returns how many it found.
	WebhookSweep(ctx context.Context, owner string, every time.Duration) (int, error)
	// Range returns up to n entries of room after after, oldest first
	// (engine.Log's Range).
	Range(ctx context.Context, room string, after engine.StreamPos, n int) ([]engine.Entry, error)
}

// WebhookKinds maps the event names of CHAT_WEBHOOK_EVENTS (message,
// edit, delete, reaction, member) to the entry kinds they deliver.
// Errors: an unknown name.
func WebhookKinds(names []string) (map[engine.EntryKind]bool, error) {
	kinds := map[engine.EntryKind]bool{}
	for _, n := range names {
		switch n {
		case "message":
			kinds[engine.EntryMessage] = true
		case "edit":
			kinds[engine.EntryEdit] = true
		case "delete":
			kinds[engine.EntryDelete] = true
		case "reaction":
			kinds[engine.EntryReaction] = true
		case "member":
			kinds[engine.EntryMember] = true
		default:
			return nil, fmt.Errorf("transport: unknown webhook event %q", n)
		}
	}
	return kinds, nil
}

// WebhookOptions configures Webhooks. The zero value of each field means
// its default, named in the field's comment; Outbox, URL, Secret and
// Kinds are required.
type WebhookOptions struct {
	Outbox WebhookOutbox
	// URL receives every event as a POST (http or https).
	URL string
	// Secret is the HMAC-SHA256 key of X-Chat-Signature, at least 32 bytes.
	Secret []byte
	// Kinds are the entry kinds delivered (see WebhookKinds); others are
	// skipped.
	Kinds map[engine.EntryKind]bool
	// Instance names this process in leases and logs. Empty means random.
	Instance string
	// MaxAge is how long after it was stored an event keeps being
	// retried; then it is dropped and counted. Zero means 24h.
	MaxAge time.Duration
	// Timeout bounds one attempt: a 2xx answer within it acknowledges the
	// event. Zero means 10s.
	Timeout time.Duration
	// FirstRetry and MaxRetry are the backoff after a failed attempt: the
	// first wait, doubling up to the longest. Zero means 1s and 5m.
	FirstRetry, MaxRetry time.Duration
	// MaxRooms bounds the rooms this instance delivers at once, each with
	// at most one request in flight: it bounds the connections to the
	// receiver and the goroutines a hanging receiver can hold. Rooms past
	// it wait for a free slot here or on another instance. Zero means 100.
	MaxRooms int
	// Lease is how long a room's delivery lease lasts without renewal: how
	// soon another instance takes over the rooms of one that died. It is
	// renewed every Lease/3. Zero means 6s.
	Lease time.Duration
	// Poll is how often pending rooms are looked for. Zero means 100ms.
	Poll time.Duration
	// Sweep is how often (across all instances) a cluster's slot sets are
	// read for pending rooms whose hint was lost. Zero means 30s.
	Sweep time.Duration
	// Timeout bounds each Redis call. Zero means 2s.
	RedisTimeout time.Duration
	// Client sends the requests. Nil means a client of its own that
	// follows no redirects.
	Client *http.Client
	// Observe receives events for metrics; nil fields are skipped.
	Observe WebhookObserver
	Logger  *slog.Logger     // nil: discard
	Now     func() time.Time // nil: time.Now
}

// WebhookObserver receives what webhook metrics count. Every field may be
// nil; the functions must be quick and safe for concurrent use.
type WebhookObserver struct {
	// Attempt gets every POST's outcome and duration. Outcomes:
	// "delivered" (2xx), "redirect" (3xx), "rejected" (4xx), "failed"
	// (any other status), "timeout", "network".
	Attempt func(outcome string, took time.Duration)
	// Retry counts attempts made after a failed one.
	Retry func()
	// Dropped counts events given up: "max_age" (retried until
	// MaxAge), "trimmed" (retention removed stream entries before they
	// were delivered; every such entry counts, of any kind).
	Dropped func(reason string, n int)
}

// Webhooks delivers the events of the room streams to a webhook receiver,
// on every instance: each instance finds rooms with pending events, takes
// a room's lease so that one instance delivers it, and POSTs the room's
// events in stream order, each after the previous was acknowledged,
// recording its progress after each. Rooms do not wait for each other;
// nothing on the send path waits for delivery. All methods may be called
// concurrently.
type Webhooks struct {
	opts   WebhookOptions
	owner  string
	log    *slog.Logger
	client *http.Client
	start  time.Time // the monotonic origin of lease deadlines

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	mu    sync.Mutex
	rooms map[string]*whRoom   // rooms this instance delivers
	busy  map[string]time.Time // rooms another instance delivers, until about then

	oldestListed atomic.Int64 // Unix ms of the oldest room pending at the last poll, 0 none
}

// whRoom is one room this instance delivers.
type whRoom struct {
	name   string
	ctx    context.Context
	cancel context.CancelFunc
	// leaseUntil is, in time since Webhooks.start, when the lease ends
	// unless renewed: the deliverer stops before it.
	leaseUntil atomic.Int64
	// head is the stream time (Unix ms) of the event being delivered, 0
	// between events.
	head atomic.Int64
}

// NewWebhooks validates opts and starts delivering; Close stops it.
func NewWebhooks(opts WebhookOptions) (*Webhooks, error) {
	if opts.Outbox == nil || len(opts.Kinds) == 0 {
		return nil, errors.New("transport: webhooks need an Outbox and at least one event kind")
	}
	if u, err := url.Parse(opts.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("transport: the webhook URL must be an http:// or https:// URL")
	}
	if len(opts.Secret) < 32 {
		return nil, errors.New("transport: the webhook secret must be at least 32 bytes")
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&opts.MaxAge, 24*time.Hour)
	def(&opts.Timeout, 10*time.Second)
	def(&opts.FirstRetry, time.Second)
	def(&opts.MaxRetry, 5*time.Minute)
	def(&opts.Lease, 6*time.Second)
	def(&opts.Poll, 100*time.Millisecond)
	def(&opts.Sweep, 30*time.Second)
	def(&opts.RedisTimeout, 2*time.Second)
	if opts.MaxRooms <= 0 {
		opts.MaxRooms = 100
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// A random part: a restarted instance of the same name must not take
	// its predecessor's leases for its own while that one may still run.
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	owner := opts.Instance + "/" + hex.EncodeToString(suffix)
	client := opts.Client
	if client == nil {
		client = &http.Client{
			// 3xx is a failure: the receiver's answer is what counts.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				DialContext:           (&net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second}).DialContext,
				ForceAttemptHTTP2:     true,
				MaxIdleConns:          opts.MaxRooms,
				MaxIdleConnsPerHost:   opts.MaxRooms,
				MaxConnsPerHost:       opts.MaxRooms,
				IdleConnTimeout:       90 * time.Second,
				TLSHandshakeTimeout:   opts.Timeout,
				ResponseHeaderTimeout: opts.Timeout,
			},
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Webhooks{
		opts: opts, owner: owner, log: opts.Logger, client: client, start: time.Now(),
		ctx: ctx, cancel: cancel,
		rooms: make(map[string]*whRoom), busy: make(map[string]time.Time),
	}
	w.goFunc(func() { w.every(w.opts.Poll, true, w.poll) })
	w.goFunc(func() { w.every(w.opts.Lease/3, false, w.renew) })
	w.goFunc(func() { w.every(w.opts.Sweep, false, w.sweep) })
	return w, nil
}

func (w *Webhooks) goFunc(f func()) {
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		f()
	}()
}

// Close stops delivery: requests in flight are abandoned (their events
// are delivered again, by whichever instance takes the room next), and
// every lease is released so that another instance goes on at once. It
// is idempotent.
func (w *Webhooks) Close() error {
	if !w.closed.CompareAndSwap(false, true) {
		return nil
	}
	w.cancel()
	w.wg.Wait()
	if t, ok := w.client.Transport.(*http.Transport); ok && w.opts.Client == nil {
		t.CloseIdleConnections()
	}
	return nil
}

// Delivering returns the number of rooms this instance delivers now.
func (w *Webhooks) Delivering() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.rooms)
}

// OldestPending returns how long the oldest event this instance knows to
// be undelivered has waited: the event being retried in a room it
// delivers, or the oldest pending room it saw at its last poll.
func (w *Webhooks) OldestPending() time.Duration {
	oldest := w.oldestListed.Load()
	w.mu.Lock()
	for _, r := range w.rooms {
		if h := r.head.Load(); h != 0 && (oldest == 0 || h < oldest) {
			oldest = h
		}
	}
	w.mu.Unlock()
	if oldest == 0 {
		return 0
	}
	return max(0, w.opts.Now().Sub(time.UnixMilli(oldest)))
}

func (w *Webhooks) since() int64 { return int64(time.Since(w.start)) }

// leaseOK reports whether r's lease is safely ours for a moment longer:
// a sixth of the lease is kept as margin against clock drift and the
// time a request takes to reach Redis.
func (w *Webhooks) leaseOK(r *whRoom) bool {
	return w.since() < r.leaseUntil.Load()-int64(w.opts.Lease/6)
}

func (w *Webhooks) redisCtx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, w.opts.RedisTimeout)
}

// every calls f every d (and first at once if now) until Close. Poll,
// renew and sweep each have a goroutine of their own, so that a slow
// poll cannot delay the renewal of leases.
func (w *Webhooks) every(d time.Duration, now bool, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	if now {
		f()
	}
	for {
		select {
		case <-w.ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// poll looks for pending rooms and takes those it can (every Poll).
func (w *Webhooks) poll() {
	now := time.Now()
	w.mu.Lock()
	free := w.opts.MaxRooms - len(w.rooms)
	for r, until := range w.busy {
		if now.After(until) {
			delete(w.busy, r)
		}
	}
	// The rooms held, here or elsewhere, are the oldest pending ones: the
	// listing must reach past them to find free rooms.
	window := min(len(w.rooms)+len(w.busy)+2*free+16, 2000)
	if free <= 0 {
		window = 1 // only to tell the oldest pending age
	}
	w.mu.Unlock()
	ctx, cancel := w.redisCtx(w.ctx)
	defer cancel()
	rooms, since, err := w.opts.Outbox.WebhookPending(ctx, window)
	if err != nil {
		if w.ctx.Err() == nil {
			w.log.Warn("webhook: list pending rooms", "err", err)
		}
		return
	}
	oldest := int64(0)
	if len(since) > 0 {
		oldest = since[0]
	}
	w.oldestListed.Store(oldest)
	for _, room := range rooms {
		if free <= 0 {
			return
		}
		w.mu.Lock()
		_, mine := w.rooms[room]
		_, taken := w.busy[room]
		w.mu.Unlock()
		if mine || taken {
			continue
		}
		sent := w.since()
		cursor, q, held, ok, err := w.opts.Outbox.WebhookTake(ctx, room, w.owner, w.opts.Lease)
		switch {
		case err != nil:
			if w.ctx.Err() == nil {
				w.log.Warn("webhook: take room", "room", room, "err", err)
			}
			return
		case ok:
			w.begin(room, cursor, q, sent)
			free--
		case held > 0:
			// Asked again within a second at most: a holder that stops
			// releases its leases early, and its rooms should not wait for
			// the lease to run out.
			w.mu.Lock()
			w.busy[room] = now.Add(min(held, time.Second))
			w.mu.Unlock()
		}
	}
}

// begin starts delivering room, whose lease was taken at sent.
func (w *Webhooks) begin(room string, cursor engine.StreamPos, q uint64, sent int64) {
	ctx, cancel := context.WithCancel(w.ctx)
	r := &whRoom{name: room, ctx: ctx, cancel: cancel}
	r.leaseUntil.Store(sent + int64(w.opts.Lease))
	w.mu.Lock()
	w.rooms[room] = r
	w.mu.Unlock()
	w.goFunc(func() { w.deliverRoom(r, cursor, q) })
}

// renew renews every lease held (every Lease/3) and stops the delivery
// of rooms whose lease was lost.
func (w *Webhooks) renew() {
	w.mu.Lock()
	held := make([]*whRoom, 0, len(w.rooms))
	names := make([]string, 0, len(w.rooms))
	for name, r := range w.rooms {
		held = append(held, r)
		names = append(names, name)
	}
	w.mu.Unlock()
	if len(names) == 0 {
		return
	}
	sent := w.since()
	ctx, cancel := w.redisCtx(w.ctx)
	ok, err := w.opts.Outbox.WebhookRenew(ctx, w.owner, names, w.opts.Lease)
	cancel()
	if err != nil {
		// The rooms' deliverers stop by themselves when the leases run
		// out without renewal (leaseOK).
		if w.ctx.Err() == nil {
			w.log.Warn("webhook: renew leases", "rooms", len(names), "err", err)
		}
		return
	}
	for i, r := range held {
		if ok[i] {
			r.leaseUntil.Store(sent + int64(w.opts.Lease))
		} else {
			w.log.Warn("webhook: lease lost", "room", r.name)
			r.cancel()
		}
	}
}

// sweep asks the outbox (every Sweep) to find pending rooms the listing
// misses: a cluster's lost hints.
func (w *Webhooks) sweep() {
	ctx, cancel := context.WithTimeout(w.ctx, max(w.opts.RedisTimeout, 10*time.Second))
	n, err := w.opts.Outbox.WebhookSweep(ctx, w.owner, w.opts.Sweep)
	cancel()
	if err != nil && w.ctx.Err() == nil {
		w.log.Warn("webhook: sweep", "err", err)
	} else if n > 0 {
		w.log.Debug("webhook: sweep", "rooms", n)
	}
}

// readBatch is how many entries a room's deliverer reads at a time.
const readBatch = 100

// deliverRoom delivers room's events after cursor until none is left (or
// the lease is lost, or Close), then lets the room go.
func (w *Webhooks) deliverRoom(r *whRoom, cursor engine.StreamPos, q uint64) {
	done := false
	defer func() {
		w.mu.Lock()
		delete(w.rooms, r.name)
		w.mu.Unlock()
		r.cancel()
		if !done {
			ctx, cancel := w.redisCtx(context.Background())
			if err := w.opts.Outbox.WebhookRelease(ctx, r.name, w.owner); err != nil {
				w.log.Warn("webhook: release lease", "room", r.name, "err", err)
			}
			cancel()
		}
	}()
	pause := newPause()
	emptyReads := 0
	for r.ctx.Err() == nil && w.leaseOK(r) {
		ctx, cancel := w.redisCtx(r.ctx)
		ents, err := w.opts.Outbox.Range(ctx, r.name, cursor, readBatch)
		cancel()
		if err != nil {
			w.log.Warn("webhook: read room", "room", r.name, "err", err)
			pause.wait(r.ctx)
			continue
		}
		if len(ents) == 0 {
			var lost bool
			if done, lost = w.advance(r, cursor, q, true); done || lost {
				return
			}
			// Usually an entry stored between the read and the check: read
			// again at once. Again and again means the newest entry is one
			// this build cannot read (a kind of a newer version): wait for
			// the next entry without spinning.
			if emptyReads++; emptyReads > 1 {
				pause.wait(r.ctx)
			}
			continue
		}
		pause.reset()
		emptyReads = 0
		skipped := false
		for i := range ents {
			e := &ents[i]
			if q > 0 && e.Q > q+1 {
				w.dropped("trimmed", int(e.Q-q-1))
				w.log.Warn("webhook: retention removed events before they were delivered", "room", r.name, "entries", e.Q-q-1)
			}
			if !w.opts.Kinds[e.Kind] {
				cursor, q, skipped = e.ID, e.Q, true
				continue
			}
			if !w.send(r, e) {
				return
			}
			cursor, q, skipped = e.ID, e.Q, false
			if _, lost := w.advance(r, cursor, q, false); lost {
				return
			}
		}
		if skipped {
			if _, lost := w.advance(r, cursor, q, false); lost {
				return
			}
		}
	}
}

// advance records room's progress, retrying while Redis fails and the
// lease lasts. lost is true when the delivery must stop: the lease is
// gone, or Close.
func (w *Webhooks) advance(r *whRoom, to engine.StreamPos, q uint64, finish bool) (done, lost bool) {
	pause := newPause()
	for r.ctx.Err() == nil && w.leaseOK(r) {
		sent := w.since()
		ctx, cancel := w.redisCtx(r.ctx)
		done, lost, err := w.opts.Outbox.WebhookAdvance(ctx, r.name, w.owner, to, q, finish, w.opts.Lease)
		cancel()
		switch {
		case err != nil:
			w.log.Warn("webhook: record progress", "room", r.name, "pos", to.String(), "err", err)
			pause.wait(r.ctx)
			continue
		case lost:
			w.log.Warn("webhook: lease lost", "room", r.name)
			return false, true
		}
		if !done {
			r.leaseUntil.Store(sent + int64(w.opts.Lease))
		}
		return done, false
	}
	return false, true
}

// send POSTs e until the receiver acknowledges it or it is older than
// MaxAge (dropped), and reports whether it was so handled: false means
// stop (lease lost, or Close) with e not handled.
func (w *Webhooks) send(r *whRoom, e *engine.Entry) bool {
	body := webhookBody(e)
	delivery := webhookDelivery(e)
	expires := time.UnixMilli(e.TS()).Add(w.opts.MaxAge)
	r.head.Store(e.TS())
	defer r.head.Store(0)
	backoff := w.opts.FirstRetry
	for attempt := 0; ; attempt++ {
		if !w.opts.Now().Before(expires) {
			w.dropped("max_age", 1)
			w.log.Warn("webhook: event dropped after retrying for CHAT_WEBHOOK_MAX_AGE", "room", r.name, "pos", e.ID.String(), "attempts", attempt)
			return true
		}
		if r.ctx.Err() != nil || !w.leaseOK(r) {
			return false
		}
		if attempt > 0 && w.opts.Observe.Retry != nil {
			w.opts.Observe.Retry()
		}
		outcome, detail := w.post(r.ctx, body, delivery)
		if outcome == "delivered" {
			return true
		}
		if r.ctx.Err() != nil {
			return false
		}
		wait := min(backoff, max(expires.Sub(w.opts.Now()), 0))
		w.log.Warn("webhook: delivery failed; retrying", "room", r.name, "pos", e.ID.String(), "outcome", outcome,
			"detail", detail, "attempt", attempt+1, "retry_in", wait.Round(time.Millisecond))
		if !sleep(r.ctx, wait) {
			return false
		}
		backoff = min(2*backoff, w.opts.MaxRetry)
	}
}

// post makes one attempt and classifies it (see WebhookObserver.Attempt).
func (w *Webhooks) post(ctx context.Context, body []byte, delivery string) (outcome, detail string) {
	ctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	began := time.Now()
	defer func() {
		if w.opts.Observe.Attempt != nil && outcome != "" {
			w.opts.Observe.Attempt(outcome, time.Since(began))
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.opts.URL, bytes.NewReader(body))
	if err != nil {
		return "network", err.Error()
	}
	ts := strconv.FormatInt(w.opts.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "redstream-chat-webhook")
	req.Header.Set("X-Chat-Delivery", delivery)
	req.Header.Set("X-Chat-Timestamp", ts)
	req.Header.Set("X-Chat-Signature", WebhookSignature(w.opts.Secret, ts, body))
	res, err := w.client.Do(req)
	if err != nil {
		var ne net.Error
		switch {
		case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
			return "timeout", fmt.Sprintf("no answer within %v", w.opts.Timeout)
		case errors.Is(err, context.Canceled):
			return "", "stopped"
		}
		// Not the error itself: it quotes the URL, which may hold credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "network", err.Error()
	}
	// Read what the receiver says (a little of it), so the connection can
	// be used again.
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	_ = res.Body.Close()
	switch c := res.StatusCode; {
	case c >= 200 && c < 300:
		return "delivered", ""
	case c >= 300 && c < 400:
		return "redirect", res.Status + " (redirects are not followed)"
	case c >= 400 && c < 500:
		return "rejected", res.Status
	default:
		return "failed", res.Status
	}
}

func (w *Webhooks) dropped(reason string, n int) {
	if w.opts.Observe.Dropped != nil {
		w.opts.Observe.Dropped(reason, n)
	}
}

// WebhookSignature is the X-Chat-Signature of a webhook request:
// "sha256=" and the hex HMAC-SHA256, keyed with secret, of the timestamp
// (X-Chat-Timestamp), a dot and the body.
func WebhookSignature(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// webhookDelivery is an event's delivery ID: its room and stream ID,
// unique and the same on every attempt. Room names hold no '/'.
func webhookDelivery(e *engine.Entry) string { return e.Room + "/" + e.ID.String() }

// memberEvent is the webhook payload of a member entry.
type memberEvent struct {
	Type   string `json:"type"`
	Room   string `json:"room"`
	User   string `json:"user"`
	Change string `json:"change"`
	By     string `json:"by"`
}

// webhookBody is an event's payload: the frame clients get for it (or,
// for a member entry, a member event), with "delivery" added.
func webhookBody(e *engine.Entry) []byte {
	var frame []byte
	if e.Kind == engine.EntryMember {
		frame = wire.Encode(memberEvent{Type: "member", Room: e.Room, User: e.Member, Change: e.Change, By: e.User})
	} else {
		frame = Encoder{}.Entry(e)
	}
	id, _ := json.Marshal(webhookDelivery(e))
	out := make([]byte, 0, len(frame)+len(id)+13)
	out = append(out, frame[:len(frame)-1]...) // every frame is an object: drop its '}'
	out = append(out, `,"delivery":`...)
	out = append(out, id...)
	return append(out, '}')
}

// pause is a backoff for Redis failures: 100 ms doubling to 2 s.
type pause struct{ d time.Duration }

func newPause() *pause { return &pause{d: 100 * time.Millisecond} }

func (p *pause) reset() { p.d = 100 * time.Millisecond }

func (p *pause) wait(ctx context.Context) {
	sleep(ctx, p.d)
	p.d = min(2*p.d, 2*time.Second)
}

// sleep waits for d and reports true, or for ctx to end and reports false.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

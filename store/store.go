package store

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/redstream/chat/engine"
)

//go:embed lua/*.lua
var luaFS embed.FS

func script(name string) *redis.Script {
	src, err := luaFS.ReadFile("lua/" + name)
	if err != nil {
		panic("store: missing embedded script " + name) // a build defect, caught by every test
	}
	return redis.NewScript(string(src))
}

var (
	sendScript     = script("send.lua")
	presenceScript = script("presence.lua")
	readScript     = script("read.lua")
	joinedScript   = script("joined.lua")
	typingScript   = script("typing.lua")
)

// Shards is the number of room shards. It is part of the key layout (a
// room's keys carry the hash tag of its shard), so changing it needs a data
// migration: keep it fixed.
const Shards = 16

// DefaultChannels exist from the start.
var DefaultChannels = []string{"general", "support", "tech"}

// Options configures a Store. The zero value of each field means its default.
type Options struct {
	// Client runs ordinary commands. Required.
	Client *redis.Client
	// Instance names this process in keys that must be unique to it (the
	// tail wake-up streams). Empty means a random name.
	Instance string
	// MaxLen is the approximate number of messages kept per room. Zero
	// means 100000.
	MaxLen int64
	// SendRate and SendBurst are the per-user token bucket. Zero means 20
	// per second and 50.
	SendRate  float64
	SendBurst int
	// IdempotencyTTL is how long a client_id is remembered. Zero means 1h.
	IdempotencyTTL time.Duration
	// Timeout bounds each batch of sends. Zero means 2s.
	Timeout time.Duration
	// SendWorkers is how many batches of sends may be in flight at once;
	// rooms are spread over them, so one room's sends stay in order. Zero
	// means 4.
	SendWorkers int
	// TailReaders is how many blocking XREADs tail this instance's rooms;
	// rooms of key shard k are read by reader k mod TailReaders. Fewer
	// readers make fuller reads: under load each read returns more
	// messages, so Redis and chatd pay for fewer calls. Shards (16) keeps
	// every read within one hash slot, as Redis Cluster needs. Zero means 4.
	TailReaders int
	// Logger: nil discards.
	Logger *slog.Logger
	// Hooks are added to the clients the store opens itself (blocking
	// reads, sends), as to Client by its owner: for metrics.
	Hooks []redis.Hook
}

// Store implements the engine's Log, Tail, Bus, Presence and Directory,
// and transport's user, token and limit stores, on one Redis. All methods
// may be called concurrently.
type Store struct {
	opts     Options
	rdb      *redis.Client
	tail     *redis.Client // blocking reads only, one connection per tail reader
	tailOnce sync.Once
	send     *redis.Client // sends only: no automatic retries, a retry could store twice
	log      *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	queues []chan sendReq

	wakeMu  sync.Mutex
	wakeIDs []string // per tail reader: the newest wake-up seen by this instance

	bus *bus
}

var (
	_ engine.Log       = (*Store)(nil)
	_ engine.Tail      = (*Store)(nil)
	_ engine.Bus       = (*Store)(nil)
	_ engine.Presence  = (*Store)(nil)
	_ engine.Directory = (*Store)(nil)
)

// New returns a Store on opts.Client and starts its send workers and its
// pub/sub reader. Close stops them; it does not close opts.Client.
func New(opts Options) (*Store, error) {
	if opts.Client == nil {
		return nil, errors.New("store: Client is required")
	}
	if opts.Instance == "" {
		opts.Instance = randomHex(8)
	}
	if opts.MaxLen <= 0 {
		opts.MaxLen = 100000
	}
	if opts.SendRate <= 0 {
		opts.SendRate = 20
	}
	if opts.SendBurst <= 0 {
		opts.SendBurst = 50
	}
	if opts.IdempotencyTTL <= 0 {
		opts.IdempotencyTTL = time.Hour
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.SendWorkers <= 0 {
		opts.SendWorkers = 4
	}
	if opts.TailReaders <= 0 {
		opts.TailReaders = 4
	}
	opts.TailReaders = min(opts.TailReaders, Shards)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	tailOpts := cloneOptions(opts.Client.Options())
	tailOpts.PoolSize = opts.TailReaders + 1
	sendOpts := cloneOptions(opts.Client.Options())
	sendOpts.MaxRetries = -1
	sendOpts.PoolSize = opts.SendWorkers + 1
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		opts:    opts,
		rdb:     opts.Client,
		tail:    redis.NewClient(tailOpts),
		send:    redis.NewClient(sendOpts),
		log:     opts.Logger,
		ctx:     ctx,
		cancel:  cancel,
		wakeIDs: make([]string, opts.TailReaders),
	}
	for _, h := range opts.Hooks {
		s.tail.AddHook(h)
		s.send.AddHook(h)
	}
	for i := range s.wakeIDs {
		s.wakeIDs[i] = "0-0"
	}
	for range opts.SendWorkers {
		q := make(chan sendReq, 1024)
		s.queues = append(s.queues, q)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.sendLoop(q)
		}()
	}
	s.bus = newBus(s)
	return s, nil
}

// CloseTail implements engine.TailCloser: blocked reads end at once.
func (s *Store) CloseTail() error {
	s.tailOnce.Do(func() { _ = s.tail.Close() })
	return nil
}

// cloneOptions copies a client's connection settings for another client
// of the same server, leaving out per-client state.
func cloneOptions(base *redis.Options) *redis.Options {
	o := *base
	o.MinIdleConns = 0
	o.PushNotificationProcessor = nil
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return &o
}

// Init creates the default channels. It is idempotent.
func (s *Store) Init(ctx context.Context) error {
	args := make([]any, len(DefaultChannels))
	for i, c := range DefaultChannels {
		args[i] = c
	}
	if err := s.rdb.SAdd(ctx, keyChannels, args...).Err(); err != nil {
		return fmt.Errorf("store: create default channels: %w", err)
	}
	return nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// Close stops the send workers (failing queued sends) and the pub/sub
// reader, removes this instance's wake-up keys and closes the clients it
// opened. It is idempotent.
func (s *Store) Close() error {
	if s.ctx.Err() != nil {
		return nil
	}
	s.cancel()
	s.bus.close()
	_ = s.CloseTail()
	s.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	keys := make([]string, s.opts.TailReaders)
	for i := range keys {
		keys[i] = s.wakeKey(i)
	}
	_ = s.rdb.Del(ctx, keys...).Err()
	return s.send.Close()
}

// Key layout. Every key of a room carries its shard's hash tag, so in Redis
// Cluster a shard's streams (read by one XREAD) and the keys one send
// script touches share a slot. The user's rate bucket is the exception,
// see README "Redis Cluster".
const (
	keyChannels  = "chat:channels"
	keySecret    = "chat:jwt-secret"
	chanRevoke   = "chat:revoke"
	prefixUser   = "chat:user:"
	prefixRevoke = "chat:revoked:"
	prefixRate   = "chat:rate:"
)

func shardOf(room string) int {
	h := fnv.New32a()
	h.Write([]byte(room))
	return int(h.Sum32() % Shards)
}

func tag(room string) string { return "chat:{s" + strconv.Itoa(shardOf(room)) + "}:" }

func streamKey(room string) string    { return tag(room) + "r:" + room }
func metaKey(room string) string      { return tag(room) + "m:" + room }
func readKey(room string) string      { return tag(room) + "rd:" + room }
func presZKey(room string) string     { return tag(room) + "pz:" + room }
func presCKey(room string) string     { return tag(room) + "pc:" + room }
func eventChannel(room string) string { return tag(room) + "ev:" + room }
func idemKey(room, user, cid string) string {
	return tag(room) + "i:" + room + ":" + user + ":" + cid
}
func typingKey(room, user string) string { return tag(room) + "ty:" + room + ":" + user }
func (s *Store) wakeKey(reader int) string {
	return "chat:{s" + strconv.Itoa(reader) + "}:wake:" + s.opts.Instance
}

// roomOfStream inverts streamKey.
func roomOfStream(key string) string {
	_, room, _ := strings.Cut(key, "}:r:")
	return room
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("store: %s: %w", op, engine.ErrNotFound)
	}
	return fmt.Errorf("store: %s: %w: %v", op, engine.ErrUnavailable, err)
}

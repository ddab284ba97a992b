package store

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/redstream/chat/engine"
)

//go:embed lua/*.lua
var luaFS embed.FS

// luaScript is an embedded script and its source. The source is kept to
// load it with SCRIPT LOAD in pipelines: go-redis's Script.Load reads the
// answer at once, so in a pipeline it would record an empty hash.
type luaScript struct {
	*redis.Script
	src string
}

func script(name string) luaScript {
	src, err := luaFS.ReadFile("lua/" + name)
	if err != nil {
		panic("store: missing embedded script " + name) // a build defect, caught by every test
	}
	return luaScript{redis.NewScript(string(src)), string(src)}
}

var (
	appendScript    = script("append.lua")
	rateScript      = script("rate.lua")
	roomScript      = script("room.lua")
	presenceScript  = script("presence.lua")
	readScript      = script("read.lua")
	joinedScript    = script("joined.lua")
	summaryScript   = script("summary.lua")
	historyScript   = script("history.lua")
	membersScript   = script("members.lua")
	bansScript      = script("bans.lua")
	heartbeatScript = script("heartbeat.lua")
	typingScript    = script("typing.lua")

	allScripts = []luaScript{appendScript, rateScript, roomScript, presenceScript, readScript,
		joinedScript, summaryScript, historyScript, membersScript, bansScript, heartbeatScript, typingScript}
)

// DefaultChannels exist from the start. They have no owner.
var DefaultChannels = []string{"general", "support", "tech"}

// Options configures a Store. The zero value of each field means its default.
type Options struct {
	// Client runs ordinary commands: a *redis.Client (one Redis, or a
	// primary with replicas behind one address) or a *redis.ClusterClient
	// (Redis Cluster). Required.
	Client redis.UniversalClient
	// Instance names this process in the instance registry (presence).
	// Empty means a random name.
	Instance string
	// MaxLen is the approximate number of entries kept per room. Zero
	// means 100000.
	MaxLen int64
	// SendRate and SendBurst are the per-user token bucket. Zero means 20
	// per second and 50.
	SendRate  float64
	SendBurst int
	// IdempotencyTTL is how long a client_id is remembered. Zero means 1h.
	IdempotencyTTL time.Duration
	// Timeout bounds each batch of appends and each call made for a
	// client. Zero means 2s.
	Timeout time.Duration
	// SendWorkers is how many batches of appends may be in flight at once;
	// rooms are spread over them by hash slot, so one room's appends stay
	// in order. Zero means 4.
	SendWorkers int
	// WaitReplicas makes every append wait until that many replicas hold
	// it (Redis WAIT) before it is acknowledged and announced. Zero means
	// no waiting.
	WaitReplicas int
	// WaitTimeout bounds the wait for replicas; past it the append fails
	// with ErrUnavailable (a retry with the same client_id stores nothing
	// twice). Zero means 1s.
	WaitTimeout time.Duration
	// PresenceTTL is how long an instance stays in the registry without a
	// heartbeat; a dead instance's users go offline after it. Zero means
	// 40s.
	PresenceTTL time.Duration
	// Webhooks are the entry kinds recorded for webhook delivery, in the
	// same atomic step that stores them. Nil records none.
	Webhooks map[engine.EntryKind]bool
	// Logger: nil discards.
	Logger *slog.Logger
	// Hooks are added to the clients the store opens itself (appends,
	// subscriptions), as to Client by its owner: for metrics.
	Hooks []redis.Hook
}

// Store implements the engine's Log, Directory, Presence and Feed, and
// transport's user, token and limit stores, on one Redis or a Redis
// Cluster. All methods may be called concurrently.
type Store struct {
	opts    Options
	rdb     redis.UniversalClient
	cluster *redis.ClusterClient  // nil in single mode
	send    redis.UniversalClient // appends only: no automatic retries, a retry could store twice
	pubcmd  string                // PUBLISH, or SPUBLISH on a cluster
	log     *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	queues []chan appendReq

	feed  *feed
	hints webhookHints
}

var (
	_ engine.Log       = (*Store)(nil)
	_ engine.Directory = (*Store)(nil)
	_ engine.Presence  = (*Store)(nil)
	_ engine.Feed      = (*Store)(nil)
)

// New returns a Store on opts.Client and starts its append workers and
// its subscriber. Close stops them; it does not close opts.Client.
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
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = time.Second
	}
	if opts.PresenceTTL <= 0 {
		opts.PresenceTTL = 40 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{opts: opts, rdb: opts.Client, log: opts.Logger, ctx: ctx, cancel: cancel, pubcmd: "PUBLISH"}
	switch c := opts.Client.(type) {
	case *redis.Client:
		o := cloneOptions(c.Options())
		o.MaxRetries = -1
		o.PoolSize = opts.SendWorkers + 1
		o.ReadTimeout += s.waitTimeout() // WAIT holds the reply that long
		send := redis.NewClient(o)
		for _, h := range opts.Hooks {
			send.AddHook(h)
		}
		s.send = send
	case *redis.ClusterClient:
		s.cluster = c
		s.pubcmd = "SPUBLISH"
		o := *c.Options()
		o.MaxRetries = -1
		o.PoolSize = opts.SendWorkers + 1
		o.ReadTimeout += s.waitTimeout() // WAIT holds the reply that long
		o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
		send := redis.NewClusterClient(&o)
		for _, h := range opts.Hooks {
			send.AddHook(h)
		}
		s.send = send
	default:
		cancel()
		return nil, fmt.Errorf("store: Client must be a *redis.Client or a *redis.ClusterClient, not %T", opts.Client)
	}
	for range opts.SendWorkers {
		q := make(chan appendReq, 1024)
		s.queues = append(s.queues, q)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.appendLoop(q)
		}()
	}
	s.feed = newFeed(s)
	if s.cluster != nil && len(opts.Webhooks) > 0 {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.hintLoop()
		}()
	}
	return s, nil
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

// Cluster reports whether the store runs on a Redis Cluster.
func (s *Store) Cluster() bool { return s.cluster != nil }

// Ping checks that Redis answers (every primary, on a cluster).
func (s *Store) Ping(ctx context.Context) error {
	if s.cluster != nil {
		return s.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.Ping(ctx).Err()
		})
	}
	return s.rdb.Ping(ctx).Err()
}

// Close stops the append workers (failing queued appends), the
// subscriber and the heartbeat, says goodbye in the instance registry
// and closes the clients it opened. It is idempotent.
func (s *Store) Close() error {
	if s.ctx.Err() != nil {
		return nil
	}
	s.cancel()
	s.feed.close()
	s.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	defer cancel()
	s.leaveRegistry(ctx)
	return s.send.Close()
}

// Key layout. Every key of a room carries the room's name as its hash
// tag (chat:{general}:s), so in Redis Cluster everything one script
// touches for a room lives in one slot, and rooms spread over all 16,384
// slots. A user's keys carry "u:<name>" the same way.
const (
	keyChannels  = "chat:channels"  // sorted set (all scores 0) of public channel names
	keySchema    = "chat:schema"    // the key layout's version
	keyInstances = "chat:instances" // sorted set: instance -> heartbeat expiry (ms, Redis time)
	keySecret    = "chat:jwt-secret"
	prefixUser   = "chat:user:"
	prefixRevoke = "chat:revoked:"
)

// schemaVersion is the key layout this code reads and writes.
const schemaVersion = "2"

// roomPrefix is the prefix of every key of a room: "chat:{<room>}:".
func roomPrefix(room string) string { return "chat:{" + room + "}:" }

func streamKey(room string) string   { return roomPrefix(room) + "s" }
func metaKey(room string) string     { return roomPrefix(room) + "m" }
func roomChannel(room string) string { return roomPrefix(room) + "c" }

// userPrefix is the prefix of a user's keys in this layout.
func userPrefix(user string) string     { return "chat:{u:" + user + "}:" }
func userRoomsKey(user string) string   { return userPrefix(user) + "rooms" }
func userRateKey(user string) string    { return userPrefix(user) + "rate" }
func userCountKey(user string) string   { return userPrefix(user) + "nch" }
func userChannel(user string) string    { return userPrefix(user) + "u" }
func instanceRoomsKey(id string) string { return "chat:inst:" + id + ":rooms" }

// nameOfChannel returns what a pub/sub channel is for ('c' a room, 'u' a
// user) and the room or user name.
func nameOfChannel(ch string) (kind byte, name string) {
	rest, ok := strings.CutPrefix(ch, "chat:{")
	if !ok || len(rest) < 3 {
		return 0, ""
	}
	kind = rest[len(rest)-1]
	name, ok = strings.CutSuffix(rest[:len(rest)-1], "}:")
	if !ok {
		return 0, ""
	}
	if kind == 'u' {
		name = strings.TrimPrefix(name, "u:")
	}
	return kind, name
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

// evalsha runs sc with EVALSHA in a pipeline-friendly way: after a Redis
// restart or a failover the script cache may be empty, so a NOSCRIPT
// answer loads every script on every primary and the call runs once more
// (NOSCRIPT means nothing ran).
func (s *Store) run(ctx context.Context, c redis.Scripter, sc luaScript, keys []string, args ...any) *redis.Cmd {
	cmd := sc.EvalSha(ctx, c, keys, args...)
	if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if lerr := s.loadScripts(ctx); lerr != nil {
			return cmd
		}
		cmd = sc.EvalSha(ctx, c, keys, args...)
	}
	return cmd
}

// durable runs fn's writes so that, with WaitReplicas, they are on that
// many replicas before it returns: on the primary of key's slot, on one
// connection, followed by WAIT. Without WaitReplicas it runs fn on the
// client as it is.
func (s *Store) durable(ctx context.Context, key string, fn func(c redis.Scripter) error) error {
	if s.opts.WaitReplicas == 0 {
		return fn(s.rdb)
	}
	var node *redis.Client
	if s.cluster != nil {
		var err error
		if node, err = s.cluster.MasterForKey(ctx, key); err != nil {
			return err
		}
	} else {
		node = s.rdb.(*redis.Client)
	}
	conn := node.Conn()
	defer conn.Close()
	if err := fn(conn); err != nil {
		return err
	}
	n, err := conn.Do(ctx, "wait", s.opts.WaitReplicas, s.opts.WaitTimeout.Milliseconds()).Int64()
	if err != nil {
		return err
	}
	if n < int64(s.opts.WaitReplicas) {
		return fmt.Errorf("%d of %d replicas confirmed within %v", n, s.opts.WaitReplicas, s.opts.WaitTimeout)
	}
	return nil
}

// loadScripts loads every script on every primary.
func (s *Store) loadScripts(ctx context.Context) error {
	load := func(ctx context.Context, c *redis.Client) error {
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, sc := range allScripts {
				p.ScriptLoad(ctx, sc.src)
			}
			return nil
		})
		return err
	}
	if s.cluster != nil {
		return s.cluster.ForEachMaster(ctx, load)
	}
	return load(ctx, s.rdb.(*redis.Client))
}

// pipelined runs fn's commands in one pipeline; a NOSCRIPT in any of them
// loads the scripts and runs the pipeline once more. fn must be safe to
// run twice: only idempotent scripts go through here, never appends.
func (s *Store) pipelined(ctx context.Context, fn func(p redis.Pipeliner) error) ([]redis.Cmder, error) {
	cmds, err := s.rdb.Pipelined(ctx, fn)
	if err != nil && hasNoScript(cmds) {
		if lerr := s.loadScripts(ctx); lerr != nil {
			return cmds, lerr
		}
		cmds, err = s.rdb.Pipelined(ctx, fn)
	}
	return cmds, err
}

func hasNoScript(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if err := c.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			return true
		}
	}
	return false
}

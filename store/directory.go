package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/engine"
)

// Channels implements engine.Directory.
func (s *Store) Channels(ctx context.Context) ([]string, error) {
	names, err := s.rdb.SMembers(ctx, keyChannels).Result()
	return names, wrap("channels", err)
}

// ChannelExists implements engine.Directory.
func (s *Store) ChannelExists(ctx context.Context, name string) (bool, error) {
	ok, err := s.rdb.SIsMember(ctx, keyChannels, name).Result()
	return ok, wrap("channel exists", err)
}

// CreateChannel implements engine.Directory. SADD decides atomically, so
// two instances creating one name at once yield one room and one ErrExists.
func (s *Store) CreateChannel(ctx context.Context, name string) error {
	n, err := s.rdb.SAdd(ctx, keyChannels, name).Result()
	if err != nil {
		return wrap("create channel", err)
	}
	if n == 0 {
		return fmt.Errorf("room %s: %w", name, engine.ErrExists)
	}
	return nil
}

func userKey(name string) string    { return prefixUser + name }
func directsKey(name string) string { return prefixUser + name + ":dms" }

// UserExists implements engine.Directory.
func (s *Store) UserExists(ctx context.Context, name string) (bool, error) {
	n, err := s.rdb.Exists(ctx, userKey(name)).Result()
	return n > 0, wrap("user exists", err)
}

// AddDirect implements engine.Directory.
func (s *Store) AddDirect(ctx context.Context, room, a, b string) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SAdd(ctx, directsKey(a), room)
		p.SAdd(ctx, directsKey(b), room)
		return nil
	})
	return wrap("add direct", err)
}

// Directs implements engine.Directory.
func (s *Store) Directs(ctx context.Context, user string) ([]string, error) {
	names, err := s.rdb.SMembers(ctx, directsKey(user)).Result()
	return names, wrap("directs", err)
}

// Summaries implements engine.Directory. Unread counts come from counters,
// never from scanning a stream: every message carries its room's counter n,
// the room's meta hash holds the newest n, and a read position holds the n
// of the message read. Messages after a user's read position are never the
// user's own (sending moves the position to the message sent), so unread
// is the difference, capped by what retention kept. Cost: one pipeline of
// three O(1) commands per room.
func (s *Store) Summaries(ctx context.Context, user string, rooms []string, kinds []engine.Kind) ([]engine.RoomSummary, error) {
	type q struct {
		meta *redis.SliceCmd
		read *redis.StringCmd
		xlen *redis.IntCmd
	}
	qs := make([]q, len(rooms))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range rooms {
			qs[i] = q{
				meta: p.HMGet(ctx, metaKey(r), "last", "n"),
				read: p.HGet(ctx, readKey(r), user),
				xlen: p.XLen(ctx, streamKey(r)),
			}
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, wrap("summaries", err)
	}
	out := make([]engine.RoomSummary, len(rooms))
	for i, r := range rooms {
		sum := engine.RoomSummary{Name: r, Kind: kinds[i]}
		vals := qs[i].meta.Val()
		var n int64
		if len(vals) == 2 {
			if last, ok := vals[0].(string); ok {
				sum.LastID, _ = engine.ParsePos(last)
			}
			if ns, ok := vals[1].(string); ok {
				n, _ = strconv.ParseInt(ns, 10, 64)
			}
		}
		read, rerr := qs[i].read.Result()
		switch {
		case rerr == nil:
			_, rn, _ := strings.Cut(read, " ")
			readN, _ := strconv.ParseInt(rn, 10, 64)
			sum.Unread = n - readN
		case kinds[i] == engine.KindDirect:
			sum.Unread = n // a direct room's position starts at its beginning
		}
		sum.Unread = max(0, min(sum.Unread, qs[i].xlen.Val()))
		out[i] = sum
	}
	return out, nil
}

// MarkJoined implements engine.Directory.
func (s *Store) MarkJoined(ctx context.Context, room, user string) error {
	return wrap("mark joined", joinedScript.Run(ctx, s.rdb, []string{metaKey(room), readKey(room)}, user).Err())
}

// MarkRead implements engine.Directory.
func (s *Store) MarkRead(ctx context.Context, room, user string, id engine.StreamPos, direct bool) (engine.StreamPos, bool, error) {
	ch := ""
	if direct {
		ch = eventChannel(room)
	}
	res, err := readScript.Run(ctx, s.rdb, []string{streamKey(room), readKey(room)}, user, id.String(), ch, room).Slice()
	if err != nil {
		return engine.StreamPos{}, false, wrap("mark read", err)
	}
	if len(res) != 2 {
		return engine.StreamPos{}, false, fmt.Errorf("store: mark read: reply %v: %w", res, engine.ErrUnavailable)
	}
	var pos engine.StreamPos
	if str, _ := res[0].(string); str != "" {
		pos, _ = engine.ParsePos(str)
	}
	moved, _ := res[1].(int64)
	return pos, moved == 1, nil
}

// CreateUser stores a new user with its password hash. name must be
// normalised (lowercase), which makes names unique ignoring case; HSETNX
// decides atomically between instances. Errors: engine.ErrExists.
func (s *Store) CreateUser(ctx context.Context, name, hash string) error {
	ok, err := s.rdb.HSetNX(ctx, userKey(name), "hash", hash).Result()
	if err != nil {
		return wrap("create user", err)
	}
	if !ok {
		return fmt.Errorf("user %s: %w", name, engine.ErrExists)
	}
	return wrap("create user", s.rdb.HSet(ctx, userKey(name), "created", time.Now().UnixMilli()).Err())
}

// PasswordHash returns a user's password hash. Errors: engine.ErrNotFound.
func (s *Store) PasswordHash(ctx context.Context, name string) (string, error) {
	h, err := s.rdb.HGet(ctx, userKey(name), "hash").Result()
	return h, wrap("password hash", err)
}

// Hit counts one event under key in a fixed window and returns the count
// so far and the time left in the window.
func (s *Store) Hit(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	res, err := hitScript.Run(ctx, s.rdb, []string{prefixLimit + key}, window.Milliseconds()).Int64Slice()
	if err != nil || len(res) != 2 {
		return 0, 0, wrap("hit", err)
	}
	return res[0], time.Duration(res[1]) * time.Millisecond, nil
}

// Count returns the count under key and the time left in its window.
func (s *Store) Count(ctx context.Context, key string) (int64, time.Duration, error) {
	var get *redis.StringCmd
	var ttl *redis.DurationCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, prefixLimit+key)
		ttl = p.PTTL(ctx, prefixLimit+key)
		return nil
	})
	if err != nil && err != redis.Nil {
		return 0, 0, wrap("count", err)
	}
	n, _ := get.Int64()
	return n, max(ttl.Val(), 0), nil
}

// Secret returns the shared token-signing key kept in Redis, creating a
// random 32-byte one first if there is none, so that every instance on
// this Redis signs with the same key.
func (s *Store) Secret(ctx context.Context) ([]byte, error) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	if err := s.rdb.SetNX(ctx, keySecret, hex.EncodeToString(b), 0).Err(); err != nil {
		return nil, wrap("secret", err)
	}
	v, err := s.rdb.Get(ctx, keySecret).Result()
	if err != nil {
		return nil, wrap("secret", err)
	}
	return hex.DecodeString(v)
}

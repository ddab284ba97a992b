package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/engine"
)

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

// Revoke marks a token ID revoked until it expires. (The engine tells
// every instance to close the sockets opened with it.)
func (s *Store) Revoke(ctx context.Context, jti string, until time.Time) error {
	return wrap("revoke", s.rdb.Set(ctx, prefixRevoke+jti, "1", max(time.Until(until), time.Second)).Err())
}

// Revoked reports whether a token ID was revoked.
func (s *Store) Revoked(ctx context.Context, jti string) (bool, error) {
	n, err := s.rdb.Exists(ctx, prefixRevoke+jti).Result()
	return n > 0, wrap("revoked", err)
}

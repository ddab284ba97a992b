package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/engine"
)

var (
	attemptScript = script("attempt.lua")
	releaseScript = script("release.lua")
)

// Keys of this file. The counters of login, registration and refresh
// limits share one hash tag, so that one script checks and counts an
// attempt against several of them atomically (in Redis Cluster the keys
// of a script must share a slot); they see a few hundred operations a
// second at most, which one slot bears.
const (
	prefixLimit      = "chat:{limit}:"
	prefixValidAfter = "chat:valid-after:"
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

// Attempt counts one attempt against several fixed-window limits in one
// atomic step, so parallel attempts cannot all pass a check made before
// any of them was counted: under keys[i] at most maxes[i] attempts per
// windows[i], a window starting with its key's first attempt. When a key
// is at its limit nothing is counted and ok is false; retry is then how
// long until every full window has ended. The keys share one hash slot.
func (s *Store) Attempt(ctx context.Context, keys []string, maxes []int, windows []time.Duration) (ok bool, retry time.Duration, err error) {
	if len(keys) != len(maxes) || len(keys) != len(windows) {
		return false, 0, fmt.Errorf("store: attempt: %d keys, %d limits and %d windows", len(keys), len(maxes), len(windows))
	}
	full := make([]string, len(keys))
	args := make([]any, 0, 2*len(keys))
	for i, k := range keys {
		full[i] = prefixLimit + k
		args = append(args, maxes[i], max(windows[i].Milliseconds(), 1))
	}
	res, err := attemptScript.Run(ctx, s.rdb, full, args...).Int64Slice()
	if err != nil || len(res) != 2 {
		return false, 0, wrap("attempt", err)
	}
	return res[0] == 1, time.Duration(res[1]) * time.Millisecond, nil
}

// Release takes back one attempt that Attempt counted under each key, for
// an attempt that turned out not to count (a login that succeeded).
func (s *Store) Release(ctx context.Context, keys ...string) error {
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = prefixLimit + k
	}
	return wrap("release", releaseScript.Run(ctx, s.rdb, full).Err())
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

// RevokeUser makes every token of user issued before before stop
// working: Revoked reports them revoked. Token times have whole seconds,
// so a token of the second that holds before counts as issued before it.
// The mark is kept for good, one key per user who ever used it, because a
// token's lifetime is the issuer's to choose.
func (s *Store) RevokeUser(ctx context.Context, user string, before time.Time) error {
	v := strconv.FormatInt(before.Unix()+1, 10)
	return wrap("revoke user", s.rdb.Set(ctx, validAfterKey(user), v, 0).Err())
}

// Revoked reports whether the token jti of user, issued at issued, was
// revoked: by itself (Revoke) or with all of the user's tokens of its time
// (RevokeUser). Both are read in one round trip.
func (s *Store) Revoked(ctx context.Context, jti, user string, issued time.Time) (bool, error) {
	var one *redis.IntCmd
	var after *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		one = p.Exists(ctx, prefixRevoke+jti)
		after = p.Get(ctx, validAfterKey(user))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, wrap("revoked", err)
	}
	if one.Val() > 0 {
		return true, nil
	}
	if v, err := after.Int64(); err == nil && issued.Unix() < v {
		return true, nil
	}
	return false, nil
}

func validAfterKey(user string) string { return prefixValidAfter + user }

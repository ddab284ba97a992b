package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ErrOldLayout means Redis holds data of the earlier key layout; run
// `chatd migrate` once to convert it.
var ErrOldLayout = errors.New("store: Redis holds data of the earlier key layout (chat:{sN}:…); stop every chatd and run `chatd migrate` once with the same REDIS_URL to convert it")

// checkSchema records the layout version on an empty Redis and refuses
// the earlier layout.
func (s *Store) checkSchema(ctx context.Context) error {
	v, err := s.rdb.Get(ctx, keySchema).Result()
	switch {
	case err == nil && v == schemaVersion:
		return nil
	case err == nil:
		return fmt.Errorf("store: Redis holds key layout %q; this chatd reads layout %q", v, schemaVersion)
	case !errors.Is(err, redis.Nil):
		return wrap("schema", err)
	}
	old, err := s.oldLayout(ctx)
	if err != nil {
		return err
	}
	if old {
		return ErrOldLayout
	}
	return wrap("schema", s.rdb.SetNX(ctx, keySchema, schemaVersion, 0).Err())
}

// oldLayout reports whether the earlier layout's channel set is present.
func (s *Store) oldLayout(ctx context.Context) (bool, error) {
	t, err := s.rdb.Type(ctx, keyChannels).Result()
	if err != nil {
		return false, wrap("schema", err)
	}
	return t == "set", nil
}

// Migrate converts the earlier layout (one Redis, 16 key shards with tags
// {s0}…{s15}) to this one, in place: room streams, counters, read
// positions, the channel list and direct rooms. It runs in single mode
// only (the earlier layout never ran on a cluster) while no chatd runs,
// and is idempotent: a migration cut short can be run again. It reports
// what it converted through report.
func (s *Store) Migrate(ctx context.Context, report func(string)) error {
	if s.cluster != nil {
		return errors.New("store: migrate runs against the single Redis that held the earlier layout")
	}
	old, err := s.oldLayout(ctx)
	if err != nil {
		return err
	}
	if !old {
		if v, _ := s.rdb.Get(ctx, keySchema).Result(); v == schemaVersion {
			report("nothing to migrate: Redis already holds layout " + schemaVersion)
			return nil
		}
	}
	channels, err := s.rdb.SMembers(ctx, keyChannels).Result()
	if err != nil && old {
		return wrap("migrate", err)
	}
	rooms := map[string]string{} // name -> kind
	for _, c := range channels {
		rooms[c] = "channel"
	}
	// Direct rooms were listed per user in chat:user:<name>:dms.
	var cursor uint64
	for {
		keys, next, err := s.rdb.Scan(ctx, cursor, "chat:user:*:dms", 500).Result()
		if err != nil {
			return wrap("migrate", err)
		}
		for _, k := range keys {
			dms, err := s.rdb.SMembers(ctx, k).Result()
			if err != nil {
				return wrap("migrate", err)
			}
			user := strings.TrimSuffix(strings.TrimPrefix(k, "chat:user:"), ":dms")
			for _, dm := range dms {
				rooms[dm] = "direct"
				if err := s.rdb.ZAdd(ctx, userRoomsKey(user), redis.Z{Member: dm}).Err(); err != nil {
					return wrap("migrate", err)
				}
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	for name, kind := range rooms {
		if err := s.migrateRoom(ctx, name, kind); err != nil {
			return err
		}
	}
	// The channel list becomes a sorted set (paging by name).
	if old {
		if err := s.rdb.Del(ctx, keyChannels).Err(); err != nil {
			return wrap("migrate", err)
		}
	}
	for name, kind := range rooms {
		if kind == "channel" {
			if err := s.rdb.ZAdd(ctx, keyChannels, redis.Z{Member: name}).Err(); err != nil {
				return wrap("migrate", err)
			}
		}
	}
	if err := s.rdb.Set(ctx, keySchema, schemaVersion, 0).Err(); err != nil {
		return wrap("migrate", err)
	}
	report(fmt.Sprintf("migrated %d rooms to layout %s", len(rooms), schemaVersion))
	return nil
}

// oldTag is the earlier layout's key prefix of room (FNV-1a over 16 shards).
func oldTag(room string) string {
	h := uint32(2166136261)
	for i := 0; i < len(room); i++ {
		h ^= uint32(room[i])
		h *= 16777619
	}
	return fmt.Sprintf("chat:{s%d}:", h%16)
}

func (s *Store) migrateRoom(ctx context.Context, room, kind string) error {
	o, n := oldTag(room), roomPrefix(room)
	moves := [][2]string{{o + "r:" + room, n + "s"}, {o + "rd:" + room, n + "rd"}}
	for _, mv := range moves {
		if err := s.rdb.Rename(ctx, mv[0], mv[1]).Err(); err != nil && !strings.Contains(err.Error(), "no such key") {
			return wrap("migrate "+room, err)
		}
	}
	meta, err := s.rdb.HGetAll(ctx, o+"m:"+room).Result()
	if err != nil {
		return wrap("migrate "+room, err)
	}
	fv := []any{"kind", kind}
	for _, f := range []string{"n", "last", "trimmed"} {
		if v, ok := meta[f]; ok {
			fv = append(fv, f, v)
		}
	}
	if v, ok := meta["n"]; ok {
		// Every entry of the earlier layout was a message: the entry
		// counter starts where the message counter stands.
		fv = append(fv, "q", v, "le", meta["last"])
	}
	if exists, _ := s.rdb.HExists(ctx, n+"m", "kind").Result(); exists && len(meta) == 0 {
		return nil // converted by an earlier run
	}
	if err := s.rdb.HSet(ctx, n+"m", fv...).Err(); err != nil {
		return wrap("migrate "+room, err)
	}
	return wrap("migrate "+room, s.rdb.Del(ctx, o+"m:"+room, o+"pz:"+room, o+"pc:"+room).Err())
}

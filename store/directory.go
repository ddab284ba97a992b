package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

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

package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Presence: each room's hash of "user|instance" entries (see
// presence.lua), and an instance registry by Redis time. An instance
// keeps the set of rooms it has marked anyone online in; when an
// instance's heartbeat expires, the first live instance to notice takes a
// short lock and reaps its entries in those rooms, announcing who went
// offline. The cost is one heartbeat per instance per PresenceTTL/4 and
// one reap per room of a dead instance: nothing per room while all live.

// Join implements engine.Presence.
func (s *Store) Join(ctx context.Context, room string, users []string) ([]string, error) {
	return s.presence(ctx, "join", s.opts.Instance, room, users)
}

// Online implements engine.Presence.
func (s *Store) Online(ctx context.Context, room string) ([]string, error) {
	return s.presence(ctx, "online", s.opts.Instance, room, nil)
}

// Leave implements engine.Presence.
func (s *Store) Leave(ctx context.Context, room string, users []string) error {
	_, err := s.presence(ctx, "leave", s.opts.Instance, room, users)
	return err
}

func (s *Store) presence(ctx context.Context, op, inst, room string, users []string) ([]string, error) {
	args := make([]any, 0, 4+len(users))
	args = append(args, roomPrefix(room), op, inst, s.pubcmd)
	for _, u := range users {
		args = append(args, u)
	}
	if op == "join" {
		if err := s.rdb.SAdd(ctx, instanceRoomsKey(inst), room).Err(); err != nil {
			return nil, wrap("presence "+op+" "+room, err)
		}
	}
	res, err := s.run(ctx, s.rdb, presenceScript, []string{streamKey(room)}, args...).StringSlice()
	if err != nil && err != redis.Nil {
		return nil, wrap("presence "+op+" "+room, err)
	}
	return res, nil
}

// Heartbeat implements engine.Presence.
func (s *Store) Heartbeat(ctx context.Context) error {
	dead, err := s.run(ctx, s.rdb, heartbeatScript, []string{keyInstances}, s.opts.Instance,
		s.opts.PresenceTTL.Milliseconds(), "beat").StringSlice()
	if err != nil {
		return wrap("heartbeat", err)
	}
	for _, inst := range dead {
		if inst == s.opts.Instance {
			continue
		}
		// One reaper per dead instance; the lock outlives a slow reap.
		ok, err := s.rdb.SetNX(ctx, "chat:inst:"+inst+":reap", s.opts.Instance, time.Minute).Result()
		if err != nil {
			return wrap("heartbeat", err)
		}
		if !ok {
			continue
		}
		if err := s.reap(ctx, inst); err != nil {
			return err
		}
		s.rdb.ZRem(ctx, keyInstances, inst)
	}
	return nil
}

// reap drops every presence entry of instance inst, room by room.
func (s *Store) reap(ctx context.Context, inst string) error {
	key := instanceRoomsKey(inst)
	var cursor uint64
	for {
		rooms, next, err := s.rdb.SScan(ctx, key, cursor, "", 200).Result()
		if err != nil {
			return wrap("reap "+inst, err)
		}
		for _, room := range rooms {
			if _, err := s.presence(ctx, "reap", inst, room, nil); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	return wrap("reap "+inst, s.rdb.Del(ctx, key).Err())
}

// joinRegistry enters this instance in the registry, first reaping what
// an earlier process of the same name left behind.
func (s *Store) joinRegistry(ctx context.Context) error {
	if err := s.reap(ctx, s.opts.Instance); err != nil {
		return err
	}
	return s.Heartbeat(ctx)
}

// leaveRegistry reaps this instance's own entries (a goodbye) and leaves
// the registry.
func (s *Store) leaveRegistry(ctx context.Context) {
	if err := s.reap(ctx, s.opts.Instance); err != nil {
		s.log.Warn("presence goodbye", "err", err)
	}
	_ = s.run(ctx, s.rdb, heartbeatScript, []string{keyInstances}, s.opts.Instance, 0, "leave").Err()
}

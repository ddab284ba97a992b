package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/engine"
)

// accessCmds queues, on p, the reads that make up user's Access to room;
// fill turns their answers into it. All of them are of the room's hash
// slot, so they join any pipeline of that room's commands.
type accessCmds struct {
	meta       *redis.SliceCmd
	role       *redis.StringCmd
	ban, mute  *redis.StringCmd
	room, user string
}

func queueAccess(ctx context.Context, p redis.Pipeliner, room, user string) *accessCmds {
	pre := roomPrefix(room)
	return &accessCmds{
		meta: p.HMGet(ctx, pre+"m", "kind", "topic"),
		role: p.HGet(ctx, pre+"mem", user),
		ban:  p.Get(ctx, pre+"ban:"+user),
		mute: p.Get(ctx, pre+"mute:"+user),
		room: room, user: user,
	}
}

func (a *accessCmds) fill() (engine.Access, error) {
	acc := engine.Access{Room: a.room, User: a.user}
	vals, err := a.meta.Result()
	if err != nil {
		return acc, wrap("access "+a.room, err)
	}
	if len(vals) == 2 {
		if k, ok := vals[0].(string); ok {
			acc.Kind = engine.Kind(k)
		}
		if t, ok := vals[1].(string); ok {
			acc.Topic = t
		}
	}
	acc.Role = engine.Role(a.role.Val())
	acc.BannedUntil = untilOf(a.ban)
	acc.MutedUntil = untilOf(a.mute)
	return acc, nil
}

// untilOf reads a ban or mute key: absent 0, no end -1, else its end (ms).
func untilOf(c *redis.StringCmd) int64 {
	v, err := c.Result()
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(v, 10, 64)
	if n == 0 {
		return -1
	}
	return n
}

// Access implements engine.Directory.
func (s *Store) Access(ctx context.Context, room, user string) (engine.Access, error) {
	var ac *accessCmds
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		ac = queueAccess(ctx, p, room, user)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return engine.Access{}, wrap("access "+room, err)
	}
	return ac.fill()
}

// UserExists implements engine.Directory.
func (s *Store) UserExists(ctx context.Context, name string) (bool, error) {
	n, err := s.rdb.Exists(ctx, userKey(name)).Result()
	return n > 0, wrap("user exists", err)
}

// roomOp runs room.lua: {status, detail, id, q, notice, kind}.
type roomReply struct {
	status, detail, notice, kind string
}

func (s *Store) roomOp(ctx context.Context, room, op string, args ...any) (roomReply, error) {
	pub, wh := s.pubcmd, s.webhookKeyFor(room)
	all := append([]any{roomPrefix(room), op, pub, wh}, args...)
	var vals []string
	err := s.durable(ctx, streamKey(room), func(c redis.Scripter) error {
		var err error
		vals, err = s.run(ctx, c, roomScript, []string{streamKey(room)}, all...).StringSlice()
		return err
	})
	if err != nil {
		return roomReply{}, wrap(op+" "+room, err)
	}
	if len(vals) != 6 {
		return roomReply{}, fmt.Errorf("store: %s %s: reply %q: %w", op, room, vals, engine.ErrUnavailable)
	}
	if wh != "" && vals[2] != "" {
		s.hintEntry(room, vals[2])
	}
	return roomReply{status: vals[0], detail: vals[1], notice: vals[4], kind: vals[5]}, nil
}

// webhookKeyFor is the pending set a member change of room is recorded
// in, or "" when member events are not delivered.
func (s *Store) webhookKeyFor(room string) string {
	if s.opts.Webhooks[engine.EntryMember] {
		return s.webhookKey(room)
	}
	return ""
}

// Init creates the default channels and records the key layout. It is
// idempotent. It refuses data of the earlier layout (see Migrate).
func (s *Store) Init(ctx context.Context) error {
	if err := s.checkSchema(ctx); err != nil {
		return err
	}
	for _, name := range DefaultChannels {
		if _, err := s.roomOp(ctx, name, "create", string(engine.KindChannel), "", "", 0); err != nil {
			return fmt.Errorf("store: create default channels: %w", err)
		}
		if err := s.rdb.ZAdd(ctx, keyChannels, redis.Z{Member: name}).Err(); err != nil {
			return fmt.Errorf("store: create default channels: %w", err)
		}
	}
	if err := s.loadScripts(ctx); err != nil {
		return fmt.Errorf("store: load scripts: %w", err)
	}
	return s.joinRegistry(ctx)
}

// CreateRoom implements engine.Directory. room.lua decides atomically, so
// two instances creating one name at once yield one room and one
// ErrExists; the room is then listed (public channels in the channel
// list, private ones in their members' lists).
func (s *Store) CreateRoom(ctx context.Context, spec engine.RoomSpec) error {
	kind := engine.KindChannel
	if spec.Private {
		kind = engine.KindPrivate
	}
	args := []any{string(kind), spec.Topic, spec.Owner, len(spec.Members)}
	for _, m := range spec.Members {
		args = append(args, m)
	}
	r, err := s.roomOp(ctx, spec.Name, "create", args...)
	if err != nil {
		return err
	}
	if r.status == "exists" {
		return fmt.Errorf("room %s: %w", spec.Name, engine.ErrExists)
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if kind == engine.KindChannel {
			p.ZAdd(ctx, keyChannels, redis.Z{Member: spec.Name})
			return nil
		}
		if spec.Owner != "" {
			p.ZAdd(ctx, userRoomsKey(spec.Owner), redis.Z{Member: spec.Name})
		}
		for _, m := range spec.Members {
			p.ZAdd(ctx, userRoomsKey(m), redis.Z{Member: spec.Name})
		}
		return nil
	})
	return wrap("list room "+spec.Name, err)
}

// OpenDirect implements engine.Directory.
func (s *Store) OpenDirect(ctx context.Context, room, a, b string) (bool, error) {
	r, err := s.roomOp(ctx, room, "create", string(engine.KindDirect), "", "", 0)
	if err != nil {
		return false, err
	}
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, userRoomsKey(a), redis.Z{Member: room})
		p.ZAdd(ctx, userRoomsKey(b), redis.Z{Member: room})
		return nil
	})
	return r.status == "ok", wrap("list direct room", err)
}

// CountChannel implements engine.Directory.
func (s *Store) CountChannel(ctx context.Context, user string, limit int) (bool, error) {
	n, err := s.rdb.Incr(ctx, userCountKey(user)).Result()
	if err != nil {
		return false, wrap("count channel", err)
	}
	if n > int64(limit) {
		return false, wrap("count channel", s.rdb.Decr(ctx, userCountKey(user)).Err())
	}
	return true, nil
}

// UncountChannel implements engine.Directory.
func (s *Store) UncountChannel(ctx context.Context, user string) error {
	return wrap("uncount channel", s.rdb.Decr(ctx, userCountKey(user)).Err())
}

// Rooms implements engine.Directory: two range reads by name (the public
// channels and user's own list, each O(log N + n)), merged, then one
// summary script per room, all rooms in one pipeline. Rooms the user
// lost meanwhile (a list that lags a removal) or is banned from are left
// out.
func (s *Store) Rooms(ctx context.Context, user, after string, n int) ([]engine.RoomSummary, bool, error) {
	from := "-"
	if after != "" {
		from = "(" + after
	}
	var pub, own *redis.StringSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		pub = p.ZRangeByLex(ctx, keyChannels, &redis.ZRangeBy{Min: from, Max: "+", Count: int64(n + 1)})
		own = p.ZRangeByLex(ctx, userRoomsKey(user), &redis.ZRangeBy{Min: from, Max: "+", Count: int64(n + 1)})
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, wrap("rooms", err)
	}
	names := mergeSorted(pub.Val(), own.Val())
	more := len(names) > n
	if more {
		names = names[:n]
	}
	if len(names) == 0 {
		return []engine.RoomSummary{}, false, nil
	}
	cmds := make([]*redis.Cmd, len(names))
	_, err = s.pipelined(ctx, func(p redis.Pipeliner) error {
		for i, name := range names {
			cmds[i] = summaryScript.EvalSha(ctx, p, []string{streamKey(name)}, roomPrefix(name), user)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, wrap("room summaries", err)
	}
	out := make([]engine.RoomSummary, 0, len(names))
	var stale []string
	for i, name := range names {
		v, err := cmds[i].Slice()
		if err != nil || len(v) != 7 {
			return nil, false, wrap("room summary "+name, err)
		}
		str := func(j int) string { x, _ := v[j].(string); return x }
		num := func(j int) int64 { x, _ := v[j].(int64); return x }
		kind, role := engine.Kind(str(0)), engine.Role(str(5))
		switch {
		case kind == "":
			continue
		case kind == engine.KindPrivate && role == "":
			stale = append(stale, name)
			continue
		case kind == engine.KindDirect && !directMember(name, user):
			continue
		case num(6) == 1 && kind != engine.KindDirect:
			continue // banned: the room is closed to them
		}
		sum := engine.RoomSummary{Name: name, Kind: kind, Topic: str(2), Unread: num(3), Mentions: num(4), Role: role}
		sum.LastID, _ = engine.ParsePos(str(1))
		out = append(out, sum)
	}
	if len(stale) > 0 {
		args := make([]any, len(stale))
		for i, r := range stale {
			args[i] = r
		}
		_ = s.rdb.ZRem(ctx, userRoomsKey(user), args...).Err()
	}
	return out, more, nil
}

func directMember(room, user string) bool {
	rest, ok := strings.CutPrefix(room, "dm:")
	if !ok {
		return false
	}
	a, b, _ := strings.Cut(rest, ":")
	return a == user || b == user
}

// mergeSorted merges two sorted lists without duplicates.
func mergeSorted(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

// Members implements engine.Directory.
func (s *Store) Members(ctx context.Context, room, after string, n int) ([]engine.Member, bool, error) {
	v, err := s.run(ctx, s.rdb, membersScript, []string{streamKey(room)}, roomPrefix(room), after, n+1).Slice()
	if err != nil {
		return nil, false, wrap("members "+room, err)
	}
	out := make([]engine.Member, 0, len(v)/3)
	for i := 0; i+2 < len(v); i += 3 {
		u, _ := v[i].(string)
		role, _ := v[i+1].(string)
		on, _ := v[i+2].(int64)
		out = append(out, engine.Member{User: u, Role: engine.Role(role), Online: on == 1})
	}
	more := len(out) > n
	if more {
		out = out[:n]
	}
	return out, more, nil
}

// AddMember implements engine.Directory.
func (s *Store) AddMember(ctx context.Context, room, user, by string) (engine.Role, error) {
	r, err := s.roomOp(ctx, room, "add", user, by)
	if err != nil {
		return "", err
	}
	switch r.status {
	case "ok":
	case "member":
		return engine.Role(r.detail), fmt.Errorf("%s is a member of %s: %w", user, room, engine.ErrExists)
	case "banned":
		return "", fmt.Errorf("%s is banned from %s: %w", user, room, engine.ErrBanned)
	case "notfound":
		return "", fmt.Errorf("room %s: %w", room, engine.ErrNotFound)
	default:
		return "", fmt.Errorf("store: add member: %q: %w", r.status, engine.ErrUnavailable)
	}
	if r.kind != string(engine.KindChannel) {
		if err := s.rdb.ZAdd(ctx, userRoomsKey(user), redis.Z{Member: room}).Err(); err != nil {
			return "", wrap("list room", err)
		}
	}
	return engine.RoleMember, nil
}

// RemoveMember implements engine.Directory.
func (s *Store) RemoveMember(ctx context.Context, room, user, by string) error {
	r, err := s.roomOp(ctx, room, "remove", user, by, engine.ChangeRemoved)
	if err != nil {
		return err
	}
	if err := memberStatus(r, room, user); err != nil {
		return err
	}
	return wrap("unlist room", s.rdb.ZRem(ctx, userRoomsKey(user), room).Err())
}

func memberStatus(r roomReply, room, user string) error {
	switch r.status {
	case "ok":
		return nil
	case "notmember":
		return fmt.Errorf("%s is not a member of %s: %w", user, room, engine.ErrNotFound)
	case "notbanned":
		return fmt.Errorf("%s is not banned or muted in %s: %w", user, room, engine.ErrNotFound)
	case "lastowner":
		return fmt.Errorf("room %s: %w", room, engine.ErrLastOwner)
	case "notfound":
		return fmt.Errorf("room %s: %w", room, engine.ErrNotFound)
	}
	return fmt.Errorf("store: room %s: %q: %w", room, r.status, engine.ErrUnavailable)
}

// SetRole implements engine.Directory.
func (s *Store) SetRole(ctx context.Context, room, user string, role engine.Role) error {
	r, err := s.roomOp(ctx, room, "role", user, string(role))
	if err != nil {
		return err
	}
	return memberStatus(r, room, user)
}

func untilArg(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// Ban implements engine.Directory.
func (s *Store) Ban(ctx context.Context, room, user, by string, until time.Time) error {
	r, err := s.roomOp(ctx, room, "ban", user, untilArg(until), by)
	if err != nil {
		return err
	}
	if err := memberStatus(r, room, user); err != nil {
		return err
	}
	return wrap("unlist room", s.rdb.ZRem(ctx, userRoomsKey(user), room).Err())
}

// Unban implements engine.Directory.
func (s *Store) Unban(ctx context.Context, room, user string) error {
	r, err := s.roomOp(ctx, room, "unban", user)
	if err != nil {
		return err
	}
	return memberStatus(r, room, user)
}

// Mute implements engine.Directory.
func (s *Store) Mute(ctx context.Context, room, user string, until time.Time) error {
	r, err := s.roomOp(ctx, room, "mute", user, untilArg(until))
	if err != nil {
		return err
	}
	return memberStatus(r, room, user)
}

// Unmute implements engine.Directory.
func (s *Store) Unmute(ctx context.Context, room, user string) error {
	r, err := s.roomOp(ctx, room, "unmute", user)
	if err != nil {
		return err
	}
	return memberStatus(r, room, user)
}

// Bans implements engine.Directory.
func (s *Store) Bans(ctx context.Context, room string, mutes bool) ([]engine.Ban, error) {
	kind := "ban"
	if mutes {
		kind = "mute"
	}
	v, err := s.run(ctx, s.rdb, bansScript, []string{streamKey(room)}, roomPrefix(room), kind).StringSlice()
	if err != nil {
		return nil, wrap("bans "+room, err)
	}
	out := make([]engine.Ban, 0, len(v)/2)
	for i := 0; i+1 < len(v); i += 2 {
		until, _ := strconv.ParseInt(v[i+1], 10, 64)
		out = append(out, engine.Ban{User: v[i], Until: until})
	}
	return out, nil
}

// SetTopic implements engine.Directory.
func (s *Store) SetTopic(ctx context.Context, room, topic, by string) error {
	r, err := s.roomOp(ctx, room, "topic", topic, by)
	if err != nil {
		return err
	}
	return memberStatus(r, room, by)
}

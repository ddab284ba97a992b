package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/redstream/chat/engine"
)

// historyBudget bounds the stream entries one history call may scan; a
// page that needs more (thousands of events between two messages) takes
// further calls.
const historyBudget = 4000

func userKey(name string) string { return prefixUser + name }

// Range implements engine.Log.
func (s *Store) Range(ctx context.Context, room string, after engine.StreamPos, n int) ([]engine.Entry, error) {
	if after.Ms == ^uint64(0) && after.Seq == ^uint64(0) {
		return nil, nil
	}
	xs, err := s.rdb.XRangeN(ctx, streamKey(room), next(after), "+", int64(n)).Result()
	if err != nil {
		return nil, wrap("xrange "+room, err)
	}
	return decodeEntries(room, xs), nil
}

// history runs history.lua with user's access reads in the same pipeline.
func (s *Store) history(ctx context.Context, room, user, mode, cursor string, want int, extra ...any) (engine.Access, []engine.Message, string, error) {
	var ac *accessCmds
	var cmd *redis.Cmd
	args := append([]any{roomPrefix(room), mode, cursor, want, historyBudget}, extra...)
	_, err := s.pipelined(ctx, func(p redis.Pipeliner) error {
		ac = queueAccess(ctx, p, room, user)
		cmd = historyScript.EvalSha(ctx, p, []string{streamKey(room)}, args...)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return engine.Access{}, nil, "", wrap("history "+room, err)
	}
	acc, err := ac.fill()
	if err != nil {
		return acc, nil, "", err
	}
	v, err := cmd.Slice()
	if err != nil || len(v) != 2 {
		return acc, nil, "", wrap("history "+room, err)
	}
	raw, _ := v[0].([]any)
	cont, _ := v[1].(string)
	msgs := make([]engine.Message, 0, len(raw))
	for _, r := range raw {
		if m, ok := decodeMessage(room, r); ok {
			msgs = append(msgs, m)
		}
	}
	return acc, msgs, cont, nil
}

// decodeMessage reads one message of history.lua's answer.
func decodeMessage(room string, v any) (engine.Message, bool) {
	f, ok := v.([]any)
	if !ok || len(f) != 11 {
		return engine.Message{}, false
	}
	str := func(i int) string { s, _ := f[i].(string); return s }
	id, err := engine.ParsePos(str(0))
	if err != nil {
		return engine.Message{}, false
	}
	m := engine.Message{Entry: engine.Entry{Kind: engine.EntryMessage, ID: id, Room: room, User: str(1), Text: str(2),
		ClientID: str(4), Mentions: fields(str(6))}}
	m.N, _ = strconv.ParseUint(str(3), 10, 64)
	m.ReplyTo, _ = engine.ParsePos(str(5))
	if e := str(7); e != "" {
		// "<ms>\n<mentions>\n<text>"
		ms, rest, _ := strings.Cut(e, "\n")
		ments, text, _ := strings.Cut(rest, "\n")
		m.EditedTS, _ = strconv.ParseInt(ms, 10, 64)
		m.Text, m.Mentions = text, fields(ments)
	}
	if str(8) != "" {
		m.Deleted, m.Text, m.Mentions = true, "", nil
	}
	m.ReplyCount, _ = strconv.Atoi(str(9))
	if rx, ok := f[10].([]any); ok {
		for i := 0; i+1 < len(rx); i += 2 {
			emoji, _ := rx[i].(string)
			users, _ := rx[i+1].(string)
			m.Reactions = append(m.Reactions, engine.Reaction{Emoji: emoji, Users: strings.Fields(users)})
		}
		slices.SortFunc(m.Reactions, func(a, b engine.Reaction) int { return strings.Compare(a.Emoji, b.Emoji) })
	}
	return m, true
}

// History implements engine.Log. A page needs n+1 messages to know
// whether more exist; one call finds them unless thousands of events sit
// between messages, and then the next call goes on from where it stopped.
func (s *Store) History(ctx context.Context, room, user string, before, after *engine.StreamPos, n int) (engine.Access, engine.Page, error) {
	mode, cursor := "rev", ""
	switch {
	case after != nil:
		mode, cursor = "fwd", posArg(*after)
	case before != nil:
		if before.IsZero() {
			acc, err := s.Access(ctx, room, user)
			return acc, engine.Page{Messages: []engine.Message{}}, err
		}
		cursor = before.String()
	}
	var acc engine.Access
	var all []engine.Message
	for {
		a, msgs, cont, err := s.history(ctx, room, user, mode, cursor, n+1-len(all))
		if err != nil {
			return a, engine.Page{}, err
		}
		acc = a
		all = append(all, msgs...)
		if cont == "" || len(all) > n || acc.Kind == "" {
			break
		}
		cursor = cont
	}
	more := len(all) > n
	if more {
		all = all[:n]
	}
	if mode == "rev" {
		slices.Reverse(all)
	}
	return acc, engine.Page{Messages: all, More: more}, nil
}

// Message implements engine.Log.
func (s *Store) Message(ctx context.Context, room, user string, id engine.StreamPos) (engine.Access, engine.Message, error) {
	acc, msgs, _, err := s.history(ctx, room, user, "one", id.String(), 1)
	if err != nil {
		return acc, engine.Message{}, err
	}
	if len(msgs) == 0 {
		return acc, engine.Message{}, fmt.Errorf("message %s: %w", id, engine.ErrNotFound)
	}
	return acc, msgs[0], nil
}

// Replies implements engine.Log: the thread's own index (a stream of
// reply IDs per root), never a scan of the room.
func (s *Store) Replies(ctx context.Context, room, user string, root, after engine.StreamPos, n int) (engine.Access, engine.Message, engine.Page, error) {
	acc, msgs, _, err := s.history(ctx, room, user, "thread", root.String(), n+1, posArg(after))
	if err != nil {
		return acc, engine.Message{}, engine.Page{}, err
	}
	if len(msgs) == 0 {
		return acc, engine.Message{}, engine.Page{}, fmt.Errorf("message %s: %w", root, engine.ErrNotFound)
	}
	replies := msgs[1:]
	more := len(replies) > n
	if more {
		replies = replies[:n]
	}
	return acc, msgs[0], engine.Page{Messages: replies, More: more}, nil
}

// JoinState implements engine.Log: the user's access, the room's newest
// message and entry, presence (marking the joiner, if asked), the read
// position's start and the trim point, in one pipeline of the room's
// hash slot (and, for a first local join, the instance's room list).
func (s *Store) JoinState(ctx context.Context, room, user string, opts engine.JoinOptions) (engine.JoinState, error) {
	var st engine.JoinState
	var ac *accessCmds
	var meta *redis.SliceCmd
	var online *redis.Cmd
	op := "online"
	if opts.MarkOnline {
		op = "join"
	}
	pre := roomPrefix(room)
	_, err := s.pipelined(ctx, func(p redis.Pipeliner) error {
		ac = queueAccess(ctx, p, room, user)
		meta = p.HMGet(ctx, pre+"m", "last", "le", "q", "trimmed")
		online = presenceScript.EvalSha(ctx, p, []string{streamKey(room)}, pre, op, s.opts.Instance, s.pubcmd, user)
		if opts.MarkRead {
			joinedScript.EvalSha(ctx, p, []string{streamKey(room)}, pre, user)
		}
		if opts.MarkOnline {
			p.SAdd(ctx, instanceRoomsKey(s.opts.Instance), room)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return st, wrap("join "+room, err)
	}
	if st.Access, err = ac.fill(); err != nil {
		return st, err
	}
	vals := meta.Val()
	get := func(i int) string {
		if i < len(vals) {
			v, _ := vals[i].(string)
			return v
		}
		return ""
	}
	st.LastMsg, _ = engine.ParsePos(get(0))
	st.LastEntry, _ = engine.ParsePos(get(1))
	st.Q, _ = strconv.ParseUint(get(2), 10, 64)
	st.Trimmed, _ = engine.ParsePos(get(3))
	if st.LastEntry.Less(st.LastMsg) {
		st.LastEntry = st.LastMsg // a room of the old layout
	}
	st.Online, _ = online.StringSlice()
	return st, nil
}

// MarkRead implements engine.Log.
func (s *Store) MarkRead(ctx context.Context, room, user string, id engine.StreamPos, direct bool) error {
	pub := ""
	if direct {
		pub = s.pubcmd
	}
	res, err := s.run(ctx, s.rdb, readScript, []string{streamKey(room)}, roomPrefix(room), user, id.String(), pub).Slice()
	if err != nil {
		return wrap("mark read", err)
	}
	if len(res) != 2 {
		return fmt.Errorf("store: mark read: reply %v: %w", res, engine.ErrUnavailable)
	}
	return nil
}

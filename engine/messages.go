package engine

import (
	"context"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// Write is one write of a client: a message, or an edit, deletion or
// reaction of one.
type Write struct {
	Kind     EntryKind // EntryMessage, EntryEdit, EntryDelete, EntryReaction
	Room     string
	Text     string    // message, edit
	ClientID string    // message
	ReplyTo  StreamPos // message
	Target   StreamPos // edit, delete, reaction
	Emoji    string    // reaction
	On       bool      // reaction: add (true) or remove
	// RateExempt skips the per-user send rate (the server API).
	RateExempt bool
}

// MaxMentions bounds the users one message names.
const MaxMentions = 50

// ValidEmoji checks a reaction's emoji: 1–32 bytes of UTF-8 with no
// whitespace or control characters. Errors wrap ErrInvalid.
func ValidEmoji(s string) error {
	if len(s) < 1 || len(s) > 32 || !utf8.ValidString(s) {
		return fmt.Errorf("emoji must be 1 to 32 bytes of UTF-8: %w", ErrInvalid)
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("emoji may not hold whitespace or control characters: %w", ErrInvalid)
		}
	}
	return nil
}

// action is what a write needs permission for.
func (w Write) action() Action {
	switch w.Kind {
	case EntryEdit:
		return ActEdit
	case EntryDelete:
		return ActDelete
	}
	return ActWrite
}

// prepare validates w, checks user's permission and builds what the
// store appends. Errors: ErrInvalid, ErrTooLarge, ErrForbidden,
// ErrNotFound, ErrUnavailable.
func (e *Engine) prepare(ctx context.Context, user string, w Write) (AppendRequest, error) {
	switch w.Kind {
	case EntryMessage:
		if err := ValidText(w.Text, e.opts.MaxText); err != nil {
			return AppendRequest{}, err
		}
		if err := validClientID(w.ClientID); err != nil {
			return AppendRequest{}, err
		}
	case EntryEdit:
		if err := ValidText(w.Text, e.opts.MaxText); err != nil {
			return AppendRequest{}, err
		}
	case EntryDelete:
	case EntryReaction:
		if err := ValidEmoji(w.Emoji); err != nil {
			return AppendRequest{}, err
		}
	default:
		return AppendRequest{}, fmt.Errorf("unknown write %q: %w", w.Kind, ErrInvalid)
	}
	if w.Kind != EntryMessage && w.Target.IsZero() {
		return AppendRequest{}, fmt.Errorf("id must be a message id: %w", ErrInvalid)
	}
	acc, err := e.authorize(ctx, w.Room, user, w.action(), false)
	if err != nil {
		return AppendRequest{}, err
	}
	req := AppendRequest{Kind: w.Kind, Room: w.Room, User: user, Admin: acc.Admin, Text: w.Text, ClientID: w.ClientID,
		ReplyTo: w.ReplyTo, RateExempt: w.RateExempt, Target: w.Target, Emoji: w.Emoji, On: w.On, EditWindow: e.opts.EditWindow}
	if w.Kind == EntryMessage || w.Kind == EntryEdit {
		if req.Mentions, err = e.mentionCandidates(ctx, acc, w.Text); err != nil {
			return AppendRequest{}, err
		}
	}
	return req, nil
}

// mentionCandidates returns the existing users text names with @; the
// store keeps those who can read the room.
func (e *Engine) mentionCandidates(ctx context.Context, acc Access, text string) ([]string, error) {
	names := ParseMentions(text)
	if len(names) == 0 {
		return nil, nil
	}
	var out []string
	if acc.Kind == KindDirect {
		a, b, _ := parseDirect(acc.Room)
		for _, n := range names {
			if n == a || n == b {
				out = append(out, n)
			}
		}
		return out, nil
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	for _, n := range names {
		ok, err := e.userExists(ctx, n)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, n)
		}
	}
	return out, nil
}

// ParseMentions returns the user names text names with @, lowercase,
// once each, at most MaxMentions: "@name" at the start of the text or
// after a character that cannot be part of a username. A name is the
// longest run of username characters after the @; a run that ends in '.'
// or '-' (the end of a sentence) also names the run without them.
func ParseMentions(text string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(n string) {
		if len(out) >= MaxMentions || seen[n] {
			return
		}
		if u, err := NormalizeUsername(n); err == nil {
			seen[u] = true
			out = append(out, u)
		}
	}
	for i := 0; i < len(text); i++ {
		if text[i] != '@' || (i > 0 && isNameByte(text[i-1], true)) {
			continue
		}
		j := i + 1
		for j < len(text) && isNameByte(text[j], true) {
			j++
		}
		run := text[i+1 : j]
		add(run)
		for len(run) > 0 && (run[len(run)-1] == '.' || run[len(run)-1] == '-') {
			run = run[:len(run)-1]
		}
		if run != text[i+1:j] {
			add(run)
		}
		i = j - 1
	}
	return out
}

// afterWrite runs once a write is stored: mentioned users hear of it.
func (e *Engine) afterWrite(res AppendResult) {
	m := &res.Entry
	if res.Duplicate || res.Noop || m.Kind != EntryMessage {
		return
	}
	for _, u := range m.Mentions {
		if u != m.User {
			e.tell(UserEvent{Kind: UserMention, User: u, Room: m.Room, ID: m.ID, From: m.User, Text: m.Text})
		}
	}
}

// Post stores one write of user and waits for it (REST and the server
// API; a socket uses Session.Write). A repeated client_id answers with
// the first message, read back in its current state. Errors: as prepare,
// *RetryError, ErrUnavailable.
func (e *Engine) Post(ctx context.Context, user string, w Write) (AppendResult, error) {
	req, err := e.prepare(ctx, user, w)
	if err != nil {
		return AppendResult{}, err
	}
	type result struct {
		r   AppendResult
		err error
	}
	ch := make(chan result, 1)
	e.opts.Log.Append(req, func(r AppendResult, err error) {
		if err == nil {
			e.afterWrite(r)
		}
		ch <- result{r, unavailable(err)}
	})
	select {
	case res := <-ch:
		if res.err == nil && res.r.Duplicate {
			cctx, cancel := e.callCtx(ctx)
			defer cancel()
			if _, m, err := e.opts.Log.Message(cctx, w.Room, user, res.r.Entry.ID); err == nil {
				res.r.Entry = m.Entry
			}
		}
		return res.r, res.err
	case <-ctx.Done():
		return AppendResult{}, fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
	}
}

// HistoryQuery selects one page of a room's history. At most one of Before
// and After is set; neither means the newest page.
type HistoryQuery struct {
	Before, After *StreamPos
	Limit         int
}

// History returns one page of room's messages in their current state,
// oldest first, and whether more exist beyond it in its direction.
// Errors: ErrInvalid, ErrForbidden, ErrNotFound, ErrUnavailable.
func (e *Engine) History(ctx context.Context, user, room string, q HistoryQuery) (Page, error) {
	if q.Before != nil && q.After != nil {
		return Page{}, fmt.Errorf("before and after cannot be combined: %w", ErrInvalid)
	}
	if q.Limit < 1 || q.Limit > 200 {
		return Page{}, fmt.Errorf("limit must be 1 to 200: %w", ErrInvalid)
	}
	if err := validRoomName(room); err != nil {
		return Page{}, err
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	acc, page, err := e.opts.Log.History(ctx, room, user, q.Before, q.After, q.Limit)
	if err != nil {
		return Page{}, unavailable(err)
	}
	if err := e.permitRead(ctx, &acc, room, user); err != nil {
		return Page{}, err
	}
	if acc.Kind == KindDirect && page.Messages == nil {
		page.Messages = []Message{}
	}
	return page, nil
}

// permitRead checks a read whose access came with the data: a direct room
// not opened yet is opened (and reads as empty).
func (e *Engine) permitRead(ctx context.Context, acc *Access, room, user string) error {
	acc.Room, acc.User = room, user
	if acc.Kind == "" {
		a, err := e.openImplicitDirect(ctx, *acc)
		if err != nil {
			return err
		}
		*acc = a
	}
	e.decorate(acc)
	return acc.Permit(ActRead, e.opts.Now())
}

// Message returns one message of room in its current state. Errors:
// ErrForbidden, ErrNotFound, ErrUnavailable.
func (e *Engine) Message(ctx context.Context, user, room string, id StreamPos) (Message, error) {
	if err := validRoomName(room); err != nil {
		return Message{}, err
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	acc, m, err := e.opts.Log.Message(ctx, room, user, id)
	if perr := e.permitRead(ctx, &acc, room, user); perr != nil {
		return Message{}, perr
	}
	return m, unavailable(err)
}

// Replies returns the root message id of room and one page of its
// replies after after (zero: from the first), oldest first. Errors:
// ErrInvalid, ErrForbidden, ErrNotFound, ErrUnavailable.
func (e *Engine) Replies(ctx context.Context, user, room string, id, after StreamPos, limit int) (Message, Page, error) {
	if limit < 1 || limit > 200 {
		return Message{}, Page{}, fmt.Errorf("limit must be 1 to 200: %w", ErrInvalid)
	}
	if err := validRoomName(room); err != nil {
		return Message{}, Page{}, err
	}
	ctx, cancel := e.callCtx(ctx)
	defer cancel()
	acc, root, page, err := e.opts.Log.Replies(ctx, room, user, id, after, limit)
	if perr := e.permitRead(ctx, &acc, room, user); perr != nil {
		return Message{}, Page{}, perr
	}
	if err != nil {
		return Message{}, Page{}, unavailable(err)
	}
	if page.Messages == nil {
		page.Messages = []Message{}
	}
	return root, page, nil
}

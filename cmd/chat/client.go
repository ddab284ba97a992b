package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/redstream/chat/transport/wire"
)

// maxResponse bounds how much of a REST response the client reads.
const maxResponse = 16 << 20

// maxFrame bounds one WebSocket frame from the server. The server's own
// frame limit is 64 KiB for what clients send; a message frame carrying
// 4,000 characters of escaped text stays well below this.
const maxFrame = 1 << 20

// Client calls the chat server's REST API and opens its WebSocket. Its
// methods may be called concurrently.
type Client struct {
	// Server is the base URL, as normalizeServer returns it.
	Server string
	// Token is sent as a Bearer token when not empty.
	Token string
	// HTTP makes the REST calls; nil means a client with a 30 s timeout.
	HTTP *http.Client
}

// APIError is an error answer of the server: {"error":{"code","message"}},
// or a made-up one when the body does not have that shape.
type APIError struct {
	Status     int
	Code       string // empty when the server did not send one
	Message    string
	RetryAfter string // the Retry-After header, if any
}

// Error is the server's message as a sentence for people: the code is in
// the exit status and in Code, not repeated at the end of the text.
func (e *APIError) Error() string { return humanError(e.Code, e.Message) }

// UnreachableError says the server could not be reached at all.
type UnreachableError struct {
	Server string
	Err    error
}

func (e *UnreachableError) Error() string {
	return "cannot reach the server at " + e.Server + ": " + e.Err.Error()
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// LoginResponse is the answer to POST /api/login (and /api/refresh).
type LoginResponse struct {
	Token     string `json:"token"`
	TokenType string `json:"token_type"`
	ExpiresAt string `json:"expires_at"`
	Username  string `json:"username"`
}

// RoomInfo is one entry of GET /api/rooms.
type RoomInfo struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	LastID   string `json:"last_id"`
	Unread   int64  `json:"unread"`
	Mentions int64  `json:"mentions"`
	Topic    string `json:"topic,omitempty"`
	Role     string `json:"role,omitempty"` // empty where the caller is not a member
}

// Member is one entry of GET /api/rooms/{room}/members.
type Member struct {
	User   string `json:"user"`
	Role   string `json:"role"`
	Online bool   `json:"online"`
}

// Ban is one entry of GET /api/rooms/{room}/bans, or the answer to a ban
// or mute. Until is RFC 3339, empty for one that lasts until lifted.
type Ban struct {
	User  string `json:"user"`
	Until string `json:"until,omitempty"`
}

// ThreadPage is the answer to GET /api/rooms/{room}/messages/{id}/replies.
type ThreadPage struct {
	Room     string         `json:"room"`
	Root     wire.Message   `json:"root"`
	Messages []wire.Message `json:"messages"`
	HasMore  bool           `json:"has_more"`
}

// listPage is one page of a list the server pages by name: the items as
// they came (so --json can print them untouched) and whether more follow.
type listPage struct {
	items   []json.RawMessage
	hasMore bool
}

// HistoryPage is the answer to GET /api/rooms/{room}/messages.
type HistoryPage struct {
	Room     string         `json:"room"`
	Messages []wire.Message `json:"messages"`
	HasMore  bool           `json:"has_more"`
}

// HistoryQuery selects a history page; empty fields are not sent.
type HistoryQuery struct {
	Before, After string
	Limit         int // 0 means the server's default
}

// normalizeServer turns a --server value into a base URL without a
// trailing slash. A value without a scheme gets http://.
func normalizeServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("the server URL is empty")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("bad server URL %q: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("bad server URL %q: the scheme must be http or https", s)
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("bad server URL %q: want http[s]://host[:port][/path]", s)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// webSocketURL is the /ws endpoint of a base URL from normalizeServer.
func webSocketURL(server string) string {
	switch {
	case strings.HasPrefix(server, "https://"):
		return "wss://" + strings.TrimPrefix(server, "https://") + "/ws"
	default:
		return "ws://" + strings.TrimPrefix(server, "http://") + "/ws"
	}
}

func roomPath(room string) string {
	return roomBase(room) + "/messages"
}

// roomBase is /api/rooms/{room} with room escaped as one path segment.
func roomBase(room string) string { return "/api/rooms/" + pathSegment(room) }

func messagePath(room, id string) string { return roomPath(room) + "/" + pathSegment(id) }

// pathSegment escapes s as one path segment. "." and ".." are escaped
// too: as they are, they would mean the directory itself or its parent.
func pathSegment(s string) string {
	switch s {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return url.PathEscape(s)
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

// do sends one request and returns the response body. A non-2xx answer is
// an *APIError, a transport failure an *UnreachableError. When out is not
// nil the body is decoded into it.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) ([]byte, error) {
	u := c.Server + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		return nil, &UnreachableError{Server: c.Server, Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, &UnreachableError{Server: c.Server, Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return data, apiError(resp, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return data, fmt.Errorf("the server sent a malformed answer to %s %s: %v", method, path, err)
		}
	}
	return data, nil
}

// unwrapURLError drops the `Get "http://…":` prefix that *url.Error adds,
// since the message names the server anyway.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// apiError decodes an error body, or describes the status when the body
// is not the protocol's error shape (a proxy's HTML page, say).
func apiError(resp *http.Response, data []byte) *APIError {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	e := &APIError{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After")}
	if json.Unmarshal(data, &body) == nil && body.Error.Code != "" {
		e.Code = body.Error.Code
		e.Message = body.Error.Message
		if e.Message == "" {
			e.Message = strings.ReplaceAll(e.Code, "_", " ")
		}
		return e
	}
	e.Message = "the server answered " + resp.Status
	return e
}

// Register creates an account and returns the username as the server
// normalised it.
func (c *Client) Register(ctx context.Context, username, password string) (string, error) {
	var out struct {
		Username string `json:"username"`
	}
	in := map[string]string{"username": username, "password": password}
	if _, err := c.do(ctx, http.MethodPost, "/api/register", nil, in, &out); err != nil {
		return "", err
	}
	return out.Username, nil
}

// Login exchanges a username and password for a token.
func (c *Client) Login(ctx context.Context, username, password string) (*LoginResponse, error) {
	var out LoginResponse
	in := map[string]string{"username": username, "password": password}
	if _, err := c.do(ctx, http.MethodPost, "/api/login", nil, in, &out); err != nil {
		return nil, err
	}
	if out.Token == "" {
		return nil, errors.New("the server answered login without a token")
	}
	return &out, nil
}

// Logout revokes the client's token.
func (c *Client) Logout(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodPost, "/api/logout", nil, nil, nil)
	return err
}

// Me returns the raw body of GET /api/me and the username in it.
func (c *Client) Me(ctx context.Context) ([]byte, string, error) {
	var out struct {
		Username string `json:"username"`
	}
	raw, err := c.do(ctx, http.MethodGet, "/api/me", nil, nil, &out)
	return raw, out.Username, err
}

// Rooms returns every room the caller can see, over as many pages of
// GET /api/rooms as it takes, each raw and decoded.
func (c *Client) Rooms(ctx context.Context) ([]json.RawMessage, []RoomInfo, error) {
	return all(ctx, c, "/api/rooms", "rooms", 500, func(r RoomInfo) string { return r.Name })
}

// Members returns every member of room, over as many pages as it takes,
// each raw and decoded.
func (c *Client) Members(ctx context.Context, room string) ([]json.RawMessage, []Member, error) {
	return all(ctx, c, roomBase(room)+"/members", "members", 1000, func(m Member) string { return m.User })
}

// History returns the raw body of one history page and the page.
func (c *Client) History(ctx context.Context, room string, q HistoryQuery) ([]byte, *HistoryPage, error) {
	v := url.Values{}
	if q.Before != "" {
		v.Set("before", q.Before)
	}
	if q.After != "" {
		v.Set("after", q.After)
	}
	if q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var page HistoryPage
	raw, err := c.do(ctx, http.MethodGet, roomPath(room), v, nil, &page)
	if err != nil {
		return raw, nil, err
	}
	return raw, &page, nil
}

// Send posts a message, a reply to message replyTo unless that is empty,
// and returns it as stored.
func (c *Client) Send(ctx context.Context, room, text, clientID, replyTo string) (*wire.Message, error) {
	var out struct {
		Message wire.Message `json:"message"`
	}
	in := map[string]string{"text": text}
	if clientID != "" {
		in["client_id"] = clientID
	}
	if replyTo != "" {
		in["reply_to"] = replyTo
	}
	if _, err := c.do(ctx, http.MethodPost, roomPath(room), nil, in, &out); err != nil {
		return nil, err
	}
	return &out.Message, nil
}

// Message returns the raw body of GET …/messages/{id} and the message in
// its current state.
func (c *Client) Message(ctx context.Context, room, id string) ([]byte, *wire.Message, error) {
	var out struct {
		Message wire.Message `json:"message"`
	}
	raw, err := c.do(ctx, http.MethodGet, messagePath(room, id), nil, nil, &out)
	if err != nil {
		return raw, nil, err
	}
	return raw, &out.Message, nil
}

// Edit replaces the text of message id and returns the raw answer and the
// message in its new state.
func (c *Client) Edit(ctx context.Context, room, id, text string) ([]byte, *wire.Message, error) {
	var out struct {
		Message wire.Message `json:"message"`
	}
	raw, err := c.do(ctx, http.MethodPatch, messagePath(room, id), nil, map[string]string{"text": text}, &out)
	if err != nil {
		return raw, nil, err
	}
	return raw, &out.Message, nil
}

// Delete deletes message id.
func (c *Client) Delete(ctx context.Context, room, id string) error {
	_, err := c.do(ctx, http.MethodDelete, messagePath(room, id), nil, nil, nil)
	return err
}

// React adds (on) or removes the caller's emoji on message id.
func (c *Client) React(ctx context.Context, room, id, emoji string, on bool) error {
	method := http.MethodPut
	if !on {
		method = http.MethodDelete
	}
	_, err := c.do(ctx, method, messagePath(room, id)+"/reactions/"+pathSegment(emoji), nil, nil, nil)
	return err
}

// Replies returns the raw body of one page of message id's replies and
// the page.
func (c *Client) Replies(ctx context.Context, room, id, after string, limit int) ([]byte, *ThreadPage, error) {
	v := url.Values{}
	if after != "" {
		v.Set("after", after)
	}
	if limit != 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var page ThreadPage
	raw, err := c.do(ctx, http.MethodGet, messagePath(room, id)+"/replies", v, nil, &page)
	if err != nil {
		return raw, nil, err
	}
	return raw, &page, nil
}

// CreateRoom creates a channel, private or public, owned by the caller.
func (c *Client) CreateRoom(ctx context.Context, name string, private bool, topic string) (*RoomInfo, error) {
	in := map[string]any{"name": name}
	if private {
		in["private"] = true
	}
	if topic != "" {
		in["topic"] = topic
	}
	var out RoomInfo
	if _, err := c.do(ctx, http.MethodPost, "/api/rooms", nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetTopic sets room's topic; an empty one clears it.
func (c *Client) SetTopic(ctx context.Context, room, topic string) error {
	_, err := c.do(ctx, http.MethodPatch, roomBase(room), nil, map[string]string{"topic": topic}, nil)
	return err
}

// AddMember adds user to room and returns the member as the server
// answered (its name normalised, its role).
func (c *Client) AddMember(ctx context.Context, room, user string) (*Member, error) {
	var out Member
	if _, err := c.do(ctx, http.MethodPost, roomBase(room)+"/members", nil, map[string]string{"user": user}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveMember removes user from room (the caller's own name: leave it).
func (c *Client) RemoveMember(ctx context.Context, room, user string) error {
	_, err := c.do(ctx, http.MethodDelete, roomBase(room)+"/members/"+pathSegment(user), nil, nil, nil)
	return err
}

// SetRole gives user role in room.
func (c *Client) SetRole(ctx context.Context, room, user, role string) error {
	_, err := c.do(ctx, http.MethodPut, roomBase(room)+"/members/"+pathSegment(user), nil, map[string]string{"role": role}, nil)
	return err
}

// Restrict bans (or, with mute, mutes) user in room for d, or until
// lifted when d is 0, and returns the server's answer.
func (c *Client) Restrict(ctx context.Context, room, user string, mute bool, d time.Duration) (*Ban, error) {
	in := map[string]any{"user": user}
	if d > 0 {
		in["seconds"] = int64(d / time.Second)
	}
	var out Ban
	if _, err := c.do(ctx, http.MethodPost, roomBase(room)+restrictPath(mute), nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Lift ends user's ban (or, with mute, mute) in room.
func (c *Client) Lift(ctx context.Context, room, user string, mute bool) error {
	_, err := c.do(ctx, http.MethodDelete, roomBase(room)+restrictPath(mute)+"/"+pathSegment(user), nil, nil, nil)
	return err
}

func restrictPath(mute bool) string {
	if mute {
		return "/mutes"
	}
	return "/bans"
}

// Bans returns the raw body of GET …/bans and the bans in force.
func (c *Client) Bans(ctx context.Context, room string) ([]byte, []Ban, error) {
	var out struct {
		Bans []Ban `json:"bans"`
	}
	raw, err := c.do(ctx, http.MethodGet, roomBase(room)+"/bans", nil, nil, &out)
	return raw, out.Bans, err
}

// page fetches one page of a list that is paged by name with after and
// limit; key names the list in the answer.
func (c *Client) page(ctx context.Context, path, key, after string, limit int) (listPage, error) {
	v := url.Values{}
	if after != "" {
		v.Set("after", after)
	}
	if limit != 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var out map[string]json.RawMessage
	if _, err := c.do(ctx, http.MethodGet, path, v, nil, &out); err != nil {
		return listPage{}, err
	}
	var p listPage
	if err := json.Unmarshal(out[key], &p.items); err != nil && out[key] != nil {
		return listPage{}, fmt.Errorf("the server sent a malformed %s list: %v", key, err)
	}
	if raw, ok := out["has_more"]; ok {
		_ = json.Unmarshal(raw, &p.hasMore)
	}
	return p, nil
}

// maxListItems bounds how many entries one listing collects, so that a
// server which never stops answering has_more cannot exhaust memory.
const maxListItems = 1_000_000

// all fetches every page of a list paged by name. name returns an item's
// name, the cursor of the next page. Every item is decoded into a T as
// well as kept raw.
func all[T any](ctx context.Context, c *Client, path, key string, limit int, name func(T) string) ([]json.RawMessage, []T, error) {
	var raws []json.RawMessage
	var items []T
	after := ""
	for {
		p, err := c.page(ctx, path, key, after, limit)
		if err != nil {
			return nil, nil, err
		}
		for _, raw := range p.items {
			var it T
			if err := json.Unmarshal(raw, &it); err != nil {
				return nil, nil, fmt.Errorf("the server sent a malformed %s entry: %v", key, err)
			}
			raws, items = append(raws, raw), append(items, it)
		}
		if !p.hasMore || len(p.items) == 0 || len(items) >= maxListItems {
			return raws, items, nil
		}
		next := name(items[len(items)-1])
		if next <= after {
			// The pages must move forwards; one that does not would loop.
			return nil, nil, fmt.Errorf("the server paged %s out of order", key)
		}
		after = next
	}
}

// DM opens (or finds) the direct room with user and returns its name.
func (c *Client) DM(ctx context.Context, user string) (string, error) {
	var out struct {
		Name string `json:"name"`
	}
	if _, err := c.do(ctx, http.MethodPost, "/api/dms", nil, map[string]string{"user": user}, &out); err != nil {
		return "", err
	}
	return out.Name, nil
}

// Dial opens the WebSocket. A refused upgrade is an *APIError (401 for a
// bad token); anything else that keeps the socket from opening is an
// *UnreachableError.
func (c *Client) Dial(ctx context.Context) (*websocket.Conn, error) {
	h := http.Header{}
	if c.Token != "" {
		h.Set("Authorization", "Bearer "+c.Token)
	}
	conn, resp, err := websocket.Dial(ctx, webSocketURL(c.Server), &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			var data []byte
			if resp.Body != nil {
				data, _ = io.ReadAll(resp.Body)
			}
			return nil, apiError(resp, data)
		}
		return nil, &UnreachableError{Server: c.Server, Err: unwrapURLError(err)}
	}
	conn.SetReadLimit(maxFrame)
	return conn, nil
}

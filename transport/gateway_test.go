package transport_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store/storetest"
	"github.com/redstream/chat/transport"
)

func TestJoinAndSend(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in := startInstance(t, srv, instanceOpts{})
	alice := mustUser(t, in.URL, "alice")
	bob := mustUser(t, in.URL, "bob")
	a := dial(t, in.URL, alice, "")
	b := dial(t, in.URL, bob, "")
	j := a.join("general", "")
	if j.LastID != "0-0" || len(j.Online) != 1 || j.Online[0] != "alice" {
		t.Fatalf("joined = %+v", j)
	}
	j = b.join("general", "0")
	if j.Recovered == nil || !*j.Recovered {
		t.Fatalf("joined with since = %+v", j)
	}
	a.send(map[string]any{"type": "send", "room": "general", "text": "hello", "client_id": "c1", "ref": 7})
	ack := a.nextType("ack")
	if string(ack.Ref) != "7" || ack.ClientID != "c1" || ack.ID == "" {
		t.Fatalf("ack = %+v", ack)
	}
	for _, c := range []*wsClient{a, b} {
		m := c.nextType("message")
		if m.ID != ack.ID || m.Text != "hello" || m.User != "alice" || m.Room != "general" || m.ClientID != "c1" || m.TS == 0 {
			t.Fatalf("message = %+v", m)
		}
	}
	// A retry with the same client_id gets the first ack and stores nothing.
	a.send(map[string]any{"type": "send", "room": "general", "text": "hello", "client_id": "c1", "ref": "retry"})
	ack2 := a.nextType("ack")
	if ack2.ID != ack.ID || string(ack2.Ref) != `"retry"` {
		t.Fatalf("retry ack = %+v, want id %s", ack2, ack.ID)
	}
	var page struct {
		Messages []frame `json:"messages"`
	}
	api(t, in.URL, "GET", "/api/rooms/general/messages", alice, nil, &page)
	if len(page.Messages) != 1 {
		t.Fatalf("history holds %d messages, want 1", len(page.Messages))
	}
	// REST posts are delivered live like socket sends.
	var posted struct {
		Message frame `json:"message"`
	}
	if st := api(t, in.URL, "POST", "/api/rooms/general/messages", bob, map[string]string{"text": "via rest"}, &posted); st != http.StatusCreated {
		t.Fatalf("post: %d", st)
	}
	if m := a.nextType("message"); m.ID != posted.Message.ID || m.User != "bob" {
		t.Fatalf("live REST message = %+v, want %+v", m, posted.Message)
	}
}

func TestSocketErrorsKeepConnection(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in := startInstance(t, srv, instanceOpts{})
	tok := mustUser(t, in.URL, "alice")
	mustUser(t, in.URL, "bob")
	a := dial(t, in.URL, tok, "")
	cases := []struct {
		frame string
		code  string
	}{
		{`not json`, "bad_frame"},
		{`[1,2]`, "bad_frame"},
		{`{"type":"nope","ref":1}`, "bad_frame"},
		{`{"room":"general"}`, "bad_frame"},
		{`{"type":"join"}`, "invalid"},
		{`{"type":"join","room":5}`, "invalid"},
		{`{"type":"join","room":"general","since":"yesterday"}`, "invalid"},
		{`{"type":"join","room":"no-such-room"}`, "not_found"},
		{`{"type":"join","room":"Bad Name!"}`, "invalid"},
		{`{"type":"join","room":"dm:bob:carol"}`, "forbidden"},
		{`{"type":"send","room":"general","text":""}`, "invalid"},
		{`{"type":"send","room":"general","text":"` + strings.Repeat("x", 4001) + `"}`, "too_large"},
		{`{"type":"send","room":"general","text":"bell\u0007"}`, "invalid"},
		{`{"type":"read","room":"general","id":"x"}`, "invalid"},
		{`{"type":"auth","token":"garbage"}`, "forbidden"},
		{`{"type":"send","room":"general","text":"ok","unknown_field":{"a":1}}`, ""},
		{`{"type":"ping","ref":{"deep":[1,2]}}`, ""},
		{`{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, "bad_frame"},
	}
	for _, tc := range cases {
		a.sendRaw([]byte(tc.frame))
		f := a.next(5*time.Second, func(f frame) bool { return f.Type == "error" || f.Type == "ack" || f.Type == "pong" })
		if f.Code != tc.code {
			t.Errorf("frame %.60s: got %s %q (%s), want code %q", tc.frame, f.Type, f.Code, f.Message, tc.code)
		}
	}
	// A ref on a bad frame is echoed.
	a.sendRaw([]byte(`{"type":"join","room":"nope","ref":"r1"}`))
	if f := a.nextType("error"); string(f.Ref) != `"r1"` {
		t.Errorf("error ref = %s", f.Ref)
	}
	// Still connected and working.
	a.send(map[string]any{"type": "ping", "ref": 42})
	if f := a.nextType("pong"); string(f.Ref) != "42" {
		t.Fatalf("pong = %+v", f)
	}
}

func TestCloseCodes(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in := startInstance(t, srv, instanceOpts{})
	tok := mustUser(t, in.URL, "alice")

	t.Run("invalid utf-8 is 1007", func(t *testing.T) {
		a := dial(t, in.URL, tok, "")
		a.sendRaw([]byte("{\"type\":\"send\",\"room\":\"general\",\"text\":\"\xff\xfe\"}"))
		if code := a.waitClosed(5 * time.Second); code != websocket.StatusInvalidFramePayloadData {
			t.Fatalf("close code %d, want 1007", code)
		}
	})
	t.Run("frame over 64 KiB is 1009", func(t *testing.T) {
		a := dial(t, in.URL, tok, "")
		big := `{"type":"send","room":"general","text":"` + strings.Repeat("x", 70<<10) + `"}`
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.c.Write(ctx, websocket.MessageText, []byte(big))
		if code := a.waitClosed(5 * time.Second); code != websocket.StatusMessageTooBig {
			t.Fatalf("close code %d, want 1009", code)
		}
	})
	t.Run("shutdown is 1001", func(t *testing.T) {
		in2 := startInstance(t, srv, instanceOpts{})
		a := dial(t, in2.URL, tok, "")
		a.join("general", "")
		go in2.Stop()
		if code := a.waitClosed(5 * time.Second); code != websocket.StatusGoingAway {
			t.Fatalf("close code %d, want 1001", code)
		}
	})
}

func TestAuthFailures(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in := startInstance(t, srv, instanceOpts{})
	in2 := startInstance(t, srv, instanceOpts{})
	tok := mustUser(t, in.URL, "alice")

	var e errBody
	if st := api(t, in.URL, "POST", "/api/login", "", map[string]string{"username": "alice", "password": "wrong-password"}, &e); st != 401 || e.Error.Code != "invalid_credentials" {
		t.Errorf("wrong password: %d %+v", st, e)
	}
	e = errBody{}
	if st := api(t, in.URL, "POST", "/api/login", "", map[string]string{"username": "nobody", "password": "whatever1"}, &e); st != 401 || e.Error.Code != "invalid_credentials" {
		t.Errorf("unknown user: %d %+v", st, e)
	}
	e = errBody{}
	if st := api(t, in2.URL, "POST", "/api/register", "", map[string]string{"username": "ALICE", "password": "password1"}, &e); st != 409 || e.Error.Code != "username_taken" {
		t.Errorf("taken name, other case: %d %+v", st, e)
	}
	for _, bad := range []map[string]string{
		{"username": "al", "password": "password1"},
		{"username": "has space", "password": "password1"},
		{"username": "okname", "password": "short"},
		{"username": strings.Repeat("a", 33), "password": "password1"},
	} {
		e = errBody{}
		if st := api(t, in.URL, "POST", "/api/register", "", bad, &e); st != 400 || e.Error.Code != "invalid" {
			t.Errorf("register %v: %d %+v", bad, st, e)
		}
	}
	e = errBody{}
	if st := api(t, in.URL, "GET", "/api/me", "", nil, &e); st != 401 || e.Error.Code != "unauthorized" {
		t.Errorf("no token: %d %+v", st, e)
	}
	if st := api(t, in.URL, "GET", "/api/me", "not.a.jwt", nil, nil); st != 401 {
		t.Errorf("bad token: %d", st)
	}
	if _, err := dialErr(t, in.URL, "", ""); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("upgrade without token: %v", err)
	}
	if _, err := dialErr(t, in.URL, "bad", ""); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("upgrade with bad token: %v", err)
	}
	// Logout revokes this token everywhere, and closes its sockets on every
	// instance with 1008; another token of the same user keeps working.
	other := login(t, in.URL, "alice")
	s1 := dial(t, in.URL, tok, "")
	s2 := dial(t, in2.URL, tok, "")
	s3 := dial(t, in2.URL, other, "")
	s1.join("general", "")
	s2.join("general", "")
	s3.join("general", "")
	if st := api(t, in.URL, "POST", "/api/logout", tok, nil, nil); st != http.StatusNoContent {
		t.Fatalf("logout: %d", st)
	}
	for _, s := range []*wsClient{s1, s2} {
		if code := s.waitClosed(2 * time.Second); code != websocket.StatusPolicyViolation {
			t.Errorf("socket of revoked token closed with %d, want 1008", code)
		}
	}
	if st := api(t, in2.URL, "GET", "/api/me", tok, nil, nil); st != 401 {
		t.Errorf("revoked token on other instance: %d", st)
	}
	if _, err := dialErr(t, in2.URL, tok, ""); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("upgrade with revoked token: %v", err)
	}
	s3.send(map[string]any{"type": "ping"})
	s3.nextType("pong")
	// Refresh gives a new token for the same user.
	var rt struct {
		Token, Username string
	}
	if st := api(t, in.URL, "POST", "/api/refresh", other, nil, &rt); st != 200 || rt.Username != "alice" || rt.Token == other {
		t.Errorf("refresh: %d %+v", st, rt)
	}
}

func TestHistoryPaging(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in := startInstance(t, srv, instanceOpts{})
	tok := mustUser(t, in.URL, "alice")
	var ids []string
	for i := range 25 {
		var res struct{ Message frame }
		api(t, in.URL, "POST", "/api/rooms/tech/messages", tok, map[string]string{"text": fmt.Sprint("m", i)}, &res)
		ids = append(ids, res.Message.ID)
	}
	type page struct {
		Room     string  `json:"room"`
		Messages []frame `json:"messages"`
		HasMore  bool    `json:"has_more"`
	}
	var got []string
	q := "?limit=10"
	for {
		var p page
		if st := api(t, in.URL, "GET", "/api/rooms/tech/messages"+q, tok, nil, &p); st != 200 {
			t.Fatalf("page %s: %d", q, st)
		}
		var pageIDs []string
		for _, m := range p.Messages {
			pageIDs = append(pageIDs, m.ID)
		}
		got = append(pageIDs, got...)
		if !p.HasMore {
			break
		}
		q = "?limit=10&before=" + p.Messages[0].ID
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("backward walk:\n got %v\nwant %v", got, ids)
	}
	got = nil
	q = "?limit=7&after=0"
	for {
		var p page
		api(t, in.URL, "GET", "/api/rooms/tech/messages"+q, tok, nil, &p)
		for _, m := range p.Messages {
			got = append(got, m.ID)
		}
		if !p.HasMore {
			break
		}
		q = "?limit=7&after=" + p.Messages[len(p.Messages)-1].ID
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("forward walk:\n got %v\nwant %v", got, ids)
	}
	for _, bad := range []string{"?before=x", "?after=1-a", "?limit=0", "?limit=201", "?limit=ten", "?before=1-0&after=0", "?after=-1"} {
		var e errBody
		if st := api(t, in.URL, "GET", "/api/rooms/tech/messages"+bad, tok, nil, &e); st != 400 || e.Error.Code != "invalid" {
			t.Errorf("%s: %d %+v", bad, st, e)
		}
	}
	if st := api(t, in.URL, "GET", "/api/rooms/nope/messages", tok, nil, nil); st != 404 {
		t.Errorf("unknown room: %d", st)
	}
}

func TestSlowReaderCutOff(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in := startInstance(t, srv, instanceOpts{}) // default queue: 1024 frames
	tok := mustUser(t, in.URL, "alice")
	fast := dial(t, in.URL, tok, "")
	fast.join("general", "")

	// The slow client joins and then never reads: with a small receive
	// buffer, the server's socket buffer fills, its writes block, and the
	// session's queue overflows.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := http.Header{"Authorization": {"Bearer " + tok}}
	dialer := &net.Dialer{Control: func(network, address string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	slow, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(in.URL, "http")+"/ws", &websocket.DialOptions{HTTPHeader: h, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	slow.SetReadLimit(1 << 20)
	_ = slow.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"general"}`))
	time.Sleep(200 * time.Millisecond)

	text := strings.Repeat("y", 3900) // large frames fill socket buffers fast
	const n = 3200
	start := time.Now()
	for i := range n {
		fast.send(map[string]any{"type": "send", "room": "general", "text": text, "client_id": fmt.Sprint(i)})
		if i%50 == 49 {
			time.Sleep(60 * time.Millisecond) // under the test's 1000/s send limit
		}
	}
	for i := range n {
		m := fast.next(10*time.Second, func(f frame) bool { return f.Type == "message" })
		if m.ClientID != fmt.Sprint(i) {
			t.Fatalf("fast client message %d is %s", i, m.ClientID)
		}
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("fast client took %v for %d messages", d, n)
	}
	// Now read the slow one: after what was buffered, it sees 1013.
	// Under heavy load the server's blocked write may time out first, and
	// it then drops the connection without a close frame; either way the
	// slow client is cut off and the fast one was not slowed.
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	var rerr error
	for rerr == nil {
		_, _, rerr = slow.Read(rctx)
	}
	if code := websocket.CloseStatus(rerr); code != websocket.StatusTryAgainLater && (code != -1 || errors.Is(rerr, context.DeadlineExceeded)) {
		t.Fatalf("slow client: %v, want close 1013 (or a dropped connection)", rerr)
	}
}

// TestThreeInstancesOneOrder: 30 clients spread over three instances all
// send at once; every client receives every message exactly once, and all
// in the same order.
func TestThreeInstancesOneOrder(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	var ins []*instance
	for range 3 {
		ins = append(ins, startInstance(t, srv, instanceOpts{}))
	}
	const clients, perClient = 30, 10
	var conns []*wsClient
	for i := range clients {
		in := ins[i%3]
		tok := mustUser(t, in.URL, fmt.Sprintf("user%02d", i))
		c := dial(t, in.URL, tok, "")
		c.join("general", "")
		conns = append(conns, c)
	}
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			for k := range perClient {
				c.send(map[string]any{"type": "send", "room": "general", "text": fmt.Sprintf("%d/%d", i, k)})
			}
		})
	}
	wg.Wait()
	var first []string
	for i, c := range conns {
		var got []string
		seen := map[string]bool{}
		for len(got) < clients*perClient {
			m := c.next(10*time.Second, func(f frame) bool { return f.Type == "message" })
			if seen[m.ID] {
				t.Fatalf("client %d got %s twice", i, m.ID)
			}
			seen[m.ID] = true
			got = append(got, m.ID)
		}
		if i == 0 {
			first = got
			continue
		}
		if strings.Join(got, ",") != strings.Join(first, ",") {
			t.Fatalf("client %d saw another order than client 0", i)
		}
	}
	for i := 1; i < len(first); i++ {
		a, _ := engine.ParsePos(first[i-1])
		b, _ := engine.ParsePos(first[i])
		if !a.Less(b) {
			t.Fatalf("not in stream order at %d: %s then %s", i, first[i-1], first[i])
		}
	}
}

// TestSinceRecoveryUnderSends: clients reconnect with since while others
// keep sending; each recovers every message exactly once, in order.
func TestSinceRecoveryUnderSends(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in1 := startInstance(t, srv, instanceOpts{})
	in2 := startInstance(t, srv, instanceOpts{})
	sender := dial(t, in1.URL, mustUser(t, in1.URL, "sender"), "")
	rtok := mustUser(t, in2.URL, "reader")
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			sender.send(map[string]any{"type": "send", "room": "support", "text": fmt.Sprint(i)})
			time.Sleep(2 * time.Millisecond)
		}
	})
	var got []string
	last := ""
	for round := range 6 {
		ins := []*instance{in1, in2}[round%2]
		c := dial(t, ins.URL, rtok, "")
		j := c.join("support", last)
		if last == "" {
			last = j.LastID
		} else if j.Recovered == nil || !*j.Recovered {
			t.Fatalf("round %d: recovered = %v", round, j.Recovered)
		}
		deadline := time.Now().Add(150 * time.Millisecond)
		for time.Now().Before(deadline) {
			m := c.next(5*time.Second, func(f frame) bool { return f.Type == "message" })
			got = append(got, m.ID)
			last = m.ID
		}
		c.c.CloseNow()
	}
	stop()
	wg.Wait()
	// What was read must be exactly the stored messages from the first
	// position on, without gaps or repeats.
	var p struct{ Messages []frame }
	first := got[0]
	before, _ := engine.ParsePos(first)
	before.Seq-- // the first got is included: page from just before it
	_ = before
	var stored []string
	cursor := ""
	for {
		q := "/api/rooms/support/messages?limit=200&after=" + cursor
		if cursor == "" {
			q = "/api/rooms/support/messages?limit=200&after=0"
		}
		p.Messages = nil
		api(t, in1.URL, "GET", q, rtok, nil, &p)
		for _, m := range p.Messages {
			stored = append(stored, m.ID)
		}
		if len(p.Messages) < 200 {
			break
		}
		cursor = p.Messages[len(p.Messages)-1].ID
	}
	start := -1
	for i, id := range stored {
		if id == first {
			start = i
		}
	}
	if start < 0 || len(stored) < start+len(got) {
		t.Fatalf("got ids not found in history")
	}
	if strings.Join(got, ",") != strings.Join(stored[start:start+len(got)], ",") {
		t.Fatalf("recovered sequence differs from history")
	}
}

func TestCreateRoomRace(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in1 := startInstance(t, srv, instanceOpts{})
	in2 := startInstance(t, srv, instanceOpts{})
	tok := mustUser(t, in1.URL, "alice")
	var wg sync.WaitGroup
	statuses := make([]int, 10)
	for i := range statuses {
		base := []string{in1.URL, in2.URL}[i%2]
		wg.Go(func() {
			statuses[i] = api(t, base, "POST", "/api/rooms", tok, map[string]string{"name": "race"}, nil)
		})
	}
	wg.Wait()
	created := 0
	for _, st := range statuses {
		switch st {
		case 201:
			created++
		case 409:
		default:
			t.Fatalf("status %d", st)
		}
	}
	if created != 1 {
		t.Fatalf("%d creations succeeded", created)
	}
	var e errBody
	if st := api(t, in1.URL, "POST", "/api/rooms", tok, map[string]string{"name": "Not Valid"}, &e); st != 400 || e.Error.Code != "invalid" {
		t.Fatalf("bad name: %d %+v", st, e)
	}
	var rooms struct {
		Rooms []struct{ Name, Kind string }
	}
	api(t, in2.URL, "GET", "/api/rooms", tok, nil, &rooms)
	names := map[string]bool{}
	for _, r := range rooms.Rooms {
		names[r.Name] = true
	}
	for _, want := range []string{"general", "support", "tech", "race"} {
		if !names[want] {
			t.Errorf("rooms lack %s: %+v", want, rooms.Rooms)
		}
	}
}

func TestOriginAndLimits(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in := startInstance(t, srv, instanceOpts{Transport: func(o *transport.Options) {
		o.AllowedOrigins = []string{"chat.example.com"}
	}})
	tok := mustUser(t, in.URL, "alice")
	dialOrigin := func(origin string) int {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h := http.Header{"Authorization": {"Bearer " + tok}, "Origin": {origin}}
		c, res, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(in.URL, "http")+"/ws", &websocket.DialOptions{HTTPHeader: h})
		if err == nil {
			c.CloseNow()
			return 101
		}
		if res == nil {
			t.Fatalf("dial %s: %v", origin, err)
		}
		return res.StatusCode
	}
	if st := dialOrigin("https://evil.example.org"); st != 403 {
		t.Errorf("foreign origin: %d, want 403", st)
	}
	if st := dialOrigin("https://chat.example.com"); st != 101 {
		t.Errorf("allowed origin: %d", st)
	}
	if st := dialOrigin(in.URL); st != 101 {
		t.Errorf("same host: %d", st)
	}
	// REST bodies over the limit are 413 too_large.
	var e errBody
	big := map[string]string{"text": strings.Repeat("z", 70<<10)}
	if st := api(t, in.URL, "POST", "/api/rooms/general/messages", tok, big, &e); st != 413 || e.Error.Code != "too_large" {
		t.Errorf("big body: %d %+v", st, e)
	}
	e = errBody{}
	long := map[string]string{"text": strings.Repeat("z", 4001)}
	if st := api(t, in.URL, "POST", "/api/rooms/general/messages", tok, long, &e); st != 413 || e.Error.Code != "too_large" {
		t.Errorf("long text: %d %+v", st, e)
	}
}

// TestAckBeforeOwnMessage: on the sender's socket the ack of a send always
// comes before the live message it stored, even with many sends in flight
// and other users sending.
func TestAckBeforeOwnMessage(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in := startInstance(t, srv, instanceOpts{})
	a := dial(t, in.URL, mustUser(t, in.URL, "alice"), "")
	b := dial(t, in.URL, mustUser(t, in.URL, "bob"), "")
	a.join("general", "")
	b.join("general", "")
	const n = 300
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			b.send(map[string]any{"type": "send", "room": "general", "text": fmt.Sprint("b", i)})
		}
	})
	for i := range n {
		a.send(map[string]any{"type": "send", "room": "general", "text": fmt.Sprint("a", i), "client_id": fmt.Sprint(i)})
	}
	wg.Wait()
	acked := map[string]bool{}
	own, others := 0, 0
	for own < n || others < n {
		f := a.next(10*time.Second, func(f frame) bool { return f.Type == "ack" || f.Type == "message" })
		switch {
		case f.Type == "ack":
			acked[f.ID] = true
		case f.User == "alice":
			if !acked[f.ID] {
				t.Fatalf("message %s arrived before its ack", f.ID)
			}
			own++
		default:
			others++
		}
	}
}

// TestPingDropsSilentPeers: the server pings every PingInterval; a peer
// that answers stays, one that never answers within the write timeout is
// disconnected.
func TestPingDropsSilentPeers(t *testing.T) {
	t.Parallel()
	srv := storetest.Start(t, storetest.Options{})
	in := startInstance(t, srv, instanceOpts{Transport: func(o *transport.Options) {
		o.PingInterval = 300 * time.Millisecond
		o.WriteTimeout = time.Second // generous: the race-enabled suite runs busy
	}})
	tok := mustUser(t, in.URL, "alice")
	answering := dial(t, in.URL, tok, "")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	silent, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(in.URL, "http")+"/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.CloseNow()
	start := time.Now()
	time.Sleep(2500 * time.Millisecond) // not reading: pings go unanswered
	rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer rcancel()
	for {
		if _, _, err := silent.Read(rctx); err != nil {
			if rctx.Err() != nil {
				t.Fatal("a peer that never answered pings is still connected after 5.5 s")
			}
			break
		}
	}
	if d := time.Since(start); d < 1300*time.Millisecond {
		t.Fatalf("silent peer dropped after %v, before a ping could time out", d)
	}
	answering.send(map[string]any{"type": "ping", "ref": 7})
	if f := answering.nextType("pong"); string(f.Ref) != "7" {
		t.Fatalf("answering peer: %+v", f)
	}
}

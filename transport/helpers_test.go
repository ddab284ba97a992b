package transport_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alexedwards/argon2id"
	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/store"
	"github.com/redstream/chat/store/storetest"
	"github.com/redstream/chat/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-redis keeps a process-wide pool reaper.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"),
	)
}

// fastArgon keeps tests quick; production uses argon2id.DefaultParams.
var fastArgon = &argon2id.Params{Memory: 1024, Iterations: 1, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// instance is one chatd instance (engine, store, transport) on a shared Redis.
type instance struct {
	URL    string
	Engine *engine.Engine
	Store  *store.Store
	Server *transport.Server
	http   *httptest.Server
	closed bool
	stop   sync.Once
}

type instanceOpts struct {
	Engine    func(*engine.Options)
	Transport func(*transport.Options)
	Store     func(*store.Options)
}

var testSecret = []byte("0123456789abcdef0123456789abcdef-test")

func tlog(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startInstance starts one instance on srv, stopped by tb.Cleanup.
func startInstance(tb testing.TB, srv *storetest.Server, o instanceOpts) *instance {
	tb.Helper()
	// The store's registry TTL follows the engine's presence TTL, as in chatd.
	var eo engine.Options
	if o.Engine != nil {
		o.Engine(&eo)
	}
	sopts := store.Options{Client: srv.UniversalClient(tb), SendRate: 1000, SendBurst: 1000, PresenceTTL: eo.PresenceTTL, Logger: tlog(tb)}
	if o.Store != nil {
		o.Store(&sopts)
	}
	st, err := store.New(sopts)
	if err != nil {
		tb.Fatal(err)
	}
	if err := st.Init(context.Background()); err != nil {
		tb.Fatal(err)
	}
	eopts := engine.Options{Log: st, Feed: st, Presence: st, Directory: st,
		Encoder: transport.Encoder{}, Logger: tlog(tb)}
	if o.Engine != nil {
		o.Engine(&eopts)
	}
	eng, err := engine.New(eopts)
	if err != nil {
		tb.Fatal(err)
	}
	topts := transport.Options{Engine: eng, Users: st, Tokens: st, Limits: st, Secret: testSecret,
		Argon2: fastArgon, Logger: tlog(tb)}
	if o.Transport != nil {
		o.Transport(&topts)
	}
	ts, err := transport.New(topts)
	if err != nil {
		tb.Fatal(err)
	}
	hs := httptest.NewServer(ts)
	in := &instance{URL: hs.URL, Engine: eng, Store: st, Server: ts, http: hs}
	tb.Cleanup(in.Stop)
	return in
}

// Stop drains and stops the instance, as chatd does on SIGTERM.
// Concurrent and repeated calls wait for the first to finish.
func (in *instance) Stop() {
	if in.closed {
		return
	}
	in.stop.Do(in.stopNow)
}

func (in *instance) stopNow() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	in.Server.Drain(ctx, 0)
	in.http.CloseClientConnections()
	in.http.Close()
	_ = in.Engine.Close()
	_ = in.Store.Close()
}

// api calls a REST route and decodes the JSON answer into out (if not nil).
func api(tb testing.TB, base, method, path, token string, body any, out any) int {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			tb.Fatalf("%s %s: %d %s: %v", method, path, res.StatusCode, data, err)
		}
	}
	return res.StatusCode
}

type errBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// mustUser registers and logs in a user and returns a token.
func mustUser(tb testing.TB, base, name string) string {
	tb.Helper()
	if st := api(tb, base, "POST", "/api/register", "", map[string]string{"username": name, "password": "password-" + name}, nil); st != http.StatusCreated {
		tb.Fatalf("register %s: %d", name, st)
	}
	return login(tb, base, name)
}

func login(tb testing.TB, base, name string) string {
	tb.Helper()
	var tok struct {
		Token string `json:"token"`
	}
	if st := api(tb, base, "POST", "/api/login", "", map[string]string{"username": name, "password": "password-" + name}, &tok); st != http.StatusOK {
		tb.Fatalf("login %s: %d", name, st)
	}
	return tok.Token
}

// frame is any server frame, decoded loosely.
type frame struct {
	Type      string          `json:"type"`
	Ref       json.RawMessage `json:"ref"`
	Room      string          `json:"room"`
	ID        string          `json:"id"`
	User      string          `json:"user"`
	Text      string          `json:"text"`
	TS        int64           `json:"ts"`
	ClientID  string          `json:"client_id"`
	LastID    string          `json:"last_id"`
	Online    []string        `json:"online"`
	Recovered *bool           `json:"recovered"`
	State     string          `json:"state"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	ExpiresAt string          `json:"expires_at"`
}

// wsClient is a test WebSocket client that reads frames in the background.
type wsClient struct {
	tb     testing.TB
	c      *websocket.Conn
	frames chan frame
	mu     sync.Mutex
	closed error // the read error that ended the client
	done   chan struct{}
	held   []frame // read but not yet matched by next
}

func dial(tb testing.TB, base, token string, query string) *wsClient {
	tb.Helper()
	c, err := dialErr(tb, base, token, query)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	return c
}

func dialErr(tb testing.TB, base, token string, query string) (*wsClient, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(base, "http") + "/ws" + query
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	c, res, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		if res != nil {
			return nil, fmt.Errorf("%w (HTTP %d)", err, res.StatusCode)
		}
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	w := &wsClient{tb: tb, c: c, frames: make(chan frame, 100000), done: make(chan struct{})}
	go w.readLoop()
	tb.Cleanup(func() { w.c.CloseNow(); <-w.done })
	return w, nil
}

func (w *wsClient) readLoop() {
	defer close(w.done)
	for {
		_, data, err := w.c.Read(context.Background())
		if err != nil {
			w.mu.Lock()
			w.closed = err
			w.mu.Unlock()
			close(w.frames)
			return
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			var f frame
			if err := json.Unmarshal(line, &f); err != nil {
				w.tb.Errorf("server sent non-JSON %q", line)
				continue
			}
			w.frames <- f
		}
	}
}

func (w *wsClient) send(v any) {
	w.tb.Helper()
	b, _ := json.Marshal(v)
	w.sendRaw(b)
}

func (w *wsClient) sendRaw(b []byte) {
	w.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, b); err != nil {
		w.tb.Fatalf("write: %v", err)
	}
}

// next returns the first frame, in arrival order, that match accepts,
// failing after timeout. Frames it passes over stay for later calls.
func (w *wsClient) next(timeout time.Duration, match func(frame) bool) frame {
	w.tb.Helper()
	for i, f := range w.held {
		if match == nil || match(f) {
			w.held = append(w.held[:i:i], w.held[i+1:]...)
			return f
		}
	}
	deadline := time.After(timeout)
	for {
		select {
		case f, ok := <-w.frames:
			if !ok {
				w.tb.Fatalf("connection closed while waiting: %v", w.closeErr())
			}
			if match == nil || match(f) {
				return f
			}
			w.held = append(w.held, f)
		case <-deadline:
			w.tb.Fatalf("no matching frame within %v", timeout)
		}
	}
}

// drain returns every frame that arrives within d, with those held.
func (w *wsClient) drain(d time.Duration) []frame {
	out := w.held
	w.held = nil
	deadline := time.After(d)
	for {
		select {
		case f, ok := <-w.frames:
			if !ok {
				return out
			}
			out = append(out, f)
		case <-deadline:
			return out
		}
	}
}

func (w *wsClient) nextType(typ string) frame {
	w.tb.Helper()
	return w.next(5*time.Second, func(f frame) bool { return f.Type == typ })
}

// join sends join and returns the joined reply.
func (w *wsClient) join(room string, since string) frame {
	w.tb.Helper()
	msg := map[string]any{"type": "join", "room": room}
	if since != "" {
		msg["since"] = since
	}
	w.send(msg)
	return w.next(5*time.Second, func(f frame) bool {
		if f.Type == "error" {
			w.tb.Fatalf("join %s: %s %s", room, f.Code, f.Message)
		}
		return f.Type == "joined" && f.Room == room
	})
}

func (w *wsClient) closeErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

// waitClosed waits for the server to close the connection and returns the
// close status.
func (w *wsClient) waitClosed(timeout time.Duration) websocket.StatusCode {
	w.tb.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-w.frames:
			if !ok {
				return websocket.CloseStatus(w.closeErr())
			}
		case <-deadline:
			w.tb.Fatalf("connection not closed within %v", timeout)
		}
	}
}

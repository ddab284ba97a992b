package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// tokenEntry is one cached login.
type tokenEntry struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// authState registers and logs in benchmark users and creates their rooms.
// It remembers tokens and rooms across the runs of a sweep, and in
// --token-cache across invocations, because every login costs the server
// an argon2id hash. It is used by the parent only, from one goroutine.
type authState struct {
	cfg    *config
	log    *slog.Logger
	hc     *http.Client
	tokens map[string]tokenEntry
	rooms  map[string]bool // rooms known to exist
	loaded bool
}

func newAuthState(cfg *config, log *slog.Logger) *authState {
	return &authState{
		cfg:    cfg,
		log:    log,
		hc:     &http.Client{Timeout: 30 * time.Second},
		tokens: make(map[string]tokenEntry),
		rooms:  make(map[string]bool),
	}
}

// ensure returns a token for every user of pl, logging in (and
// registering) those without a usable one, and creates pl's rooms. It
// also returns how many users it had to log in at the server (none with
// --token-secret).
func (a *authState) ensure(ctx context.Context, pl *plan) (map[string]string, int, error) {
	if !a.loaded {
		a.loaded = true
		if err := a.loadCache(ctx, pl); err != nil {
			return nil, 0, err
		}
	}
	// A token must outlive the run with a wide margin: reconnects need it.
	validUntil := time.Now().Add(a.cfg.warmup + a.cfg.duration + a.cfg.drain + 15*time.Minute)
	users := pl.users
	if len(pl.creators) > len(users) { // more rooms than the clients may create
		users = append(slices.Clone(users), pl.creators[len(users):]...)
	}
	var need []string
	for _, u := range users {
		if e, ok := a.tokens[u]; !ok || e.ExpiresAt.Before(validUntil) {
			need = append(need, u)
		}
	}
	if len(need) > 0 {
		a.log.Info("logging in users", "count", len(need), "cached", len(users)-len(need), "concurrency", a.cfg.authConcurrency)
		if err := a.loginAll(ctx, need); err != nil {
			return nil, 0, err
		}
		if err := a.saveCache(); err != nil {
			a.log.Warn("token cache not written", "err", err)
		}
	}
	if err := a.createRooms(ctx, pl); err != nil {
		return nil, 0, err
	}
	out := make(map[string]string, len(pl.users))
	for _, u := range pl.users {
		out[u] = a.tokens[u].Token
	}
	if a.cfg.tokenSecret != "" {
		return out, 0, nil // signed here: the server hashed no password
	}
	return out, len(need), nil
}

// loadCache reads --token-cache. When a sample token of the users in pl
// is refused by the server (another deployment, a rotated secret), the
// cache is ignored as a whole.
func (a *authState) loadCache(ctx context.Context, pl *plan) error {
	if a.cfg.tokenCache == "" {
		return nil
	}
	b, err := os.ReadFile(a.cfg.tokenCache)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	cache := make(map[string]tokenEntry)
	if err := json.Unmarshal(b, &cache); err != nil {
		return fmt.Errorf("token cache %s: %w", a.cfg.tokenCache, err)
	}
	for _, u := range pl.users {
		e, ok := cache[u]
		if !ok || time.Until(e.ExpiresAt) < time.Minute {
			continue
		}
		status, _, _, err := a.call(ctx, a.cfg.servers[0], http.MethodGet, "/api/me", e.Token, nil, nil)
		if err != nil {
			return err
		}
		if status != http.StatusOK {
			a.log.Warn("cached tokens refused by the server; logging in again", "status", status)
			return nil
		}
		break
	}
	a.tokens = cache
	return nil
}

func (a *authState) saveCache() error {
	if a.cfg.tokenCache == "" {
		return nil
	}
	b, err := json.MarshalIndent(a.tokens, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(a.cfg.tokenCache), ".chatbench-tokens-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), a.cfg.tokenCache)
}

// loginAll gets tokens for users with bounded concurrency: each register
// and login costs the server an argon2id hash, so more parallelism than
// its cores only queues work there.
func (a *authState) loginAll(ctx context.Context, users []string) error {
	var mu sync.Mutex
	return parallel(ctx, len(users), a.cfg.authConcurrency, a.log, "logging in", func(ctx context.Context, i int) error {
		e, err := a.login(ctx, a.cfg.servers[i%len(a.cfg.servers)], users[i])
		if err != nil {
			return err
		}
		mu.Lock()
		a.tokens[users[i]] = e
		mu.Unlock()
		return nil
	})
}

// parallel calls do(ctx, i) for every i below n from at most workers
// goroutines and returns the first error, which cancels the calls not yet
// made, or ctx's error if it ended first. Every 5 s it logs how many
// calls are done, as what.
func parallel(ctx context.Context, n, workers int, log *slog.Logger, what string, do func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next, done atomic.Int64
		once       sync.Once
		firstErr   error
		wg         sync.WaitGroup
	)
	for range max(1, min(workers, n)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := do(ctx, i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
				done.Add(1)
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-finished:
			if firstErr != nil {
				return firstErr
			}
			if done.Load() < int64(n) {
				return ctx.Err()
			}
			return nil
		case <-tick.C:
			log.Info(what, "done", done.Load(), "of", n)
		}
	}
}

// login returns a token for user: with --reuse-users it logs in and
// registers only an unknown user; otherwise it registers first and treats
// an existing user (409) as one to log in.
func (a *authState) login(ctx context.Context, server, user string) (tokenEntry, error) {
	if a.cfg.tokenSecret != "" {
		return mintToken(a.cfg.tokenSecret, user)
	}
	creds := map[string]string{"username": user, "password": a.cfg.password}
	register := func() error {
		status, code, _, err := a.retry(ctx, server, http.MethodPost, "/api/register", "", creds, nil)
		switch {
		case err != nil:
			return err
		case status == http.StatusCreated, status == http.StatusConflict:
			return nil
		default:
			return fmt.Errorf("register %s: HTTP %d %s", user, status, code)
		}
	}
	var out struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if !a.cfg.reuseUsers {
		if err := register(); err != nil {
			return tokenEntry{}, err
		}
	}
	status, code, _, err := a.retry(ctx, server, http.MethodPost, "/api/login", "", creds, &out)
	if err != nil {
		return tokenEntry{}, err
	}
	if status == http.StatusUnauthorized && a.cfg.reuseUsers {
		if err := register(); err != nil {
			return tokenEntry{}, err
		}
		status, code, _, err = a.retry(ctx, server, http.MethodPost, "/api/login", "", creds, &out)
		if err != nil {
			return tokenEntry{}, err
		}
	}
	if status != http.StatusOK || out.Token == "" {
		return tokenEntry{}, fmt.Errorf("login %s: HTTP %d %s", user, status, code)
	}
	if out.ExpiresAt.IsZero() {
		out.ExpiresAt = time.Now().Add(time.Hour)
	}
	return tokenEntry{Token: out.Token, ExpiresAt: out.ExpiresAt}, nil
}

// roomConcurrency bounds the rooms created at once: a REST call and a few
// Redis commands each, so a few per core keep the server busy without
// queueing.
const roomConcurrency = 16

// createRooms creates every room of pl not yet known to exist, room r by
// pl.creators[r/maxRoomsPerCreator] on server r mod servers; a room that
// already exists (409) is fine.
func (a *authState) createRooms(ctx context.Context, pl *plan) error {
	var todo []int
	for i, name := range pl.rooms {
		if !a.rooms[name] {
			todo = append(todo, i)
		}
	}
	if len(todo) > 1000 {
		a.log.Info("creating rooms", "count", len(todo), "concurrency", roomConcurrency)
	}
	var mu sync.Mutex
	return parallel(ctx, len(todo), roomConcurrency, a.log, "creating rooms", func(ctx context.Context, k int) error {
		i := todo[k]
		name := pl.rooms[i]
		tok := a.tokens[pl.creators[i/maxRoomsPerCreator]].Token
		server := a.cfg.servers[i%len(a.cfg.servers)]
		status, code, _, err := a.retry(ctx, server, http.MethodPost, "/api/rooms", tok, map[string]string{"name": name}, nil)
		if err != nil {
			return err
		}
		if status != http.StatusCreated && status != http.StatusConflict {
			return fmt.Errorf("create room %s: HTTP %d %s", name, status, code)
		}
		mu.Lock()
		a.rooms[name] = true
		mu.Unlock()
		return nil
	})
}

// retry calls the server, waiting and retrying on 429 (as Retry-After
// says), 5xx and network errors, up to a few times.
func (a *authState) retry(ctx context.Context, server, method, path, token string, body, out any) (int, string, time.Duration, error) {
	wait := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		status, code, after, err := a.call(ctx, server, method, path, token, body, out)
		again := err != nil || status == http.StatusTooManyRequests || status >= 500
		if !again || attempt >= 8 || ctx.Err() != nil {
			return status, code, after, err
		}
		d := wait
		if after > 0 {
			d = after
		}
		if !sleepCtx(ctx, d) {
			return status, code, after, ctx.Err()
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// call does one JSON request. It returns the status, the error code of an
// error body, and the Retry-After delay if the server gave one.
func (a *authState) call(ctx context.Context, server, method, path, token string, body, out any) (int, string, time.Duration, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, "", 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(server, "/")+path, rd)
	if err != nil {
		return 0, "", 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, "", 0, err
	}
	var after time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		after = time.Duration(s) * time.Second
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(b, &e)
		return resp.StatusCode, e.Error.Code, after, nil
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, "", after, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, "", after, nil
}

// mintToken signs a token for user with the deployment's own secret
// (--token-secret), as the server would: HS256 with sub, iat, exp and jti.
// It lets a load test of one's own deployment open tens of thousands of
// connections without paying an argon2id hash per user on the server;
// such users exist only as token subjects, which channels do not need.
func mintToken(secret, user string) (tokenEntry, error) {
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	now := time.Now().Truncate(time.Second)
	exp := now.Add(24 * time.Hour)
	tok, err := jwt.NewBuilder().Subject(strings.ToLower(user)).IssuedAt(now).Expiration(exp).JwtID(hex.EncodeToString(jti)).Build()
	if err != nil {
		return tokenEntry{}, err
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.HS256, []byte(secret)))
	if err != nil {
		return tokenEntry{}, err
	}
	return tokenEntry{Token: string(signed), ExpiresAt: exp}, nil
}

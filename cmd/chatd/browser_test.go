package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/redstream/chat/cmd/internal/chatdtest"
	"github.com/redstream/chat/store/storetest"
)

// btChromium is where the Debian chromium package installs the browser.
const btChromium = "/usr/bin/chromium"

// btStepTimeout bounds every single browser step.
const btStepTimeout = 20 * time.Second

// TestBrowserTwoUsers drives the embedded web client in real headless
// Chromium: alice and bob register through the login form, open #general,
// chat, see each other typing, alice scrolls back past the first history
// page, chatd restarts under them and they carry on with nothing missed and
// nothing doubled. A third, phone-sized browser checks the narrow layout.
// Screenshots of every step go to the test's temp dir, or to
// CHAT_SCREENSHOT_DIR.
func TestBrowserTwoUsers(t *testing.T) {
	if _, err := os.Stat(btChromium); err != nil {
		if os.Getenv("CHAT_REQUIRE_CHROMIUM") != "" {
			t.Fatalf("CHAT_REQUIRE_CHROMIUM is set but %s is missing: %v", btChromium, err)
		}
		t.Skipf("SKIPPED: %s not found (install the Debian chromium package): %v", btChromium, err)
	}
	start := time.Now()
	mark := func(what string) { t.Logf("%5.1fs %s", time.Since(start).Seconds(), what) }

	srv := storetest.Start(t, storetest.Options{AppendOnly: true})
	srv.RequireReal(t) // history must survive the chatd restart
	d := mustRunChatd(t, map[string]string{
		"REDIS_URL": "redis://" + srv.Addr,
		// A fixed address, so the browsers' reconnects reach the restarted chatd.
		"CHAT_ADDR": chatdtest.FreeAddr(t),
		// The seeding below sends 120 messages at once.
		"CHAT_SEND_RATE":      "1000",
		"CHAT_SEND_BURST":     "1000",
		"CHAT_SHUTDOWN_GRACE": "3s",
	})
	btLogOnFailure(t, d)
	shots := btShotsDir(t)

	// 2. History of more than two pages of 50, from a third user.
	const seeds = 120
	carol := user(t, d.URL, "carol")
	for i := range seeds {
		if st := call(t, "POST", d.URL+"/api/rooms/general/messages", carol,
			map[string]string{"text": btSeedText(i), "client_id": fmt.Sprintf("seed-%d", i)}, nil); st != 201 {
			t.Fatalf("seed %d: status %d", i, st)
		}
	}
	mark("seeded")

	// 1. Two people, two browsers, each registering through the form.
	alice := newChromeUser(t, "alice", "alice", 1280, 800, shots)
	bob := newChromeUser(t, "bob", "bob", 1280, 800, shots)
	mark("two browsers started")
	for _, b := range []*chromeUser{alice, bob} {
		b.open(d.URL)
		b.shot("login")
		b.signIn(true)
		b.shot("rooms")
		b.openRoom("general")
		b.waitJS("newest seed shown", btHasMessage(btSeedText(seeds-1), false))
	}
	alice.shot("general")
	bob.shot("general")
	mark("both in #general")

	const dm = "dm:alice:bob"
	const markup = `<b>tags</b> & <i>markup</i> stay plain text`

	// 3. alice sends with the button; bob sees it, alice's copy gets its id.
	hello := "Hi bob! Did you see the deploy notes?"
	alice.do("type a message",
		chromedp.SendKeys(btTestID("composer"), hello),
		chromedp.Click(btTestID("send")),
	)
	bob.waitJS("bob sees alice's message", btHasMessage(hello, true))
	alice.waitJS("alice's message acked", btHasMessage(hello, true))
	alice.shot("sent")

	// 4. bob types without sending: alice sees "bob is typing…". Then bob
	// sends with Enter.
	reply := "Yes, reading them now"
	bob.do("type without sending", chromedp.SendKeys(btTestID("composer"), reply))
	alice.waitJS("alice sees bob typing",
		`(document.querySelector('[data-testid="typing"]')?.textContent || '').includes('bob')`)
	alice.shot("typing")
	mark("typing seen")
	bob.do("send with Enter", chromedp.SendKeys(btTestID("composer"), "\n"))
	alice.waitJS("alice sees bob's reply", btHasMessage(reply, true))
	bob.waitJS("composer emptied after Enter", `document.querySelector('[data-testid="composer"]').value === ''`)

	soon := "Great, the new chat server goes live after lunch."
	alice.do("send with Enter", chromedp.SendKeys(btTestID("composer"), soon+"\n"))
	bob.waitJS("bob sees alice's second message", btHasMessage(soon, true))

	// A direct message with markup in it: shown as text, never parsed.
	alice.do("start a DM with bob",
		chromedp.SendKeys(btTestID("dm-user"), "bob"),
		chromedp.Click(btTestID("start-dm")),
		chromedp.WaitVisible(btTestID("room-"+dm)),
	)
	alice.waitJS("the DM is open", fmt.Sprintf(
		`document.querySelector('[data-testid="room-%s"]').classList.contains('active')`, dm))
	alice.do("send markup", chromedp.SendKeys(btTestID("composer"), markup+"\n"))
	alice.waitJS("alice's DM acked", btHasMessage(markup, true))
	alice.checkNoMarkup()
	alice.shot("dm")
	alice.openRoom("general")

	// 5. alice scrolls to the top until the oldest seed shows: history
	// older than the first page (and the second) comes from the cursors.
	alice.scrollBackTo(btSeedText(0))
	alice.shot("history-top")
	mark("scrolled back to the oldest message")
	if got := alice.eval(`document.querySelector('[data-testid="messages"]').textContent.includes('beginning of #general')`); got != "true" {
		t.Errorf("alice at the top of #general without the beginning-of-room marker")
	}
	alice.do("back to the newest", chromedp.Evaluate[chromedp.Void](btScrollBottomJS))

	// 8. A phone-width browser: after login the room list fills the
	// screen; opening a room shows the conversation and its composer.
	phone := newChromeUser(t, "phone", "carol", 390, 844, shots)
	phone.open(d.URL)
	phone.shot("login")
	phone.signIn(false) // carol exists already: the Log in button
	phone.shot("rooms")
	phone.openRoom("general")
	phone.waitJS("the composer is inside the phone screen", `(() => {
		const c = document.querySelector('[data-testid="composer"]');
		const s = document.querySelector('[data-testid="send"]');
		const r = c.getBoundingClientRect(), q = s.getBoundingClientRect();
		return r.width > 100 && r.left >= 0 && q.right <= window.innerWidth + 1 && r.bottom <= window.innerHeight + 1 &&
			document.documentElement.scrollWidth <= window.innerWidth;
	})()`)
	phone.shot("general")
	phone.do("open the menu", chromedp.Click(btTestID("sidebar-toggle")), chromedp.WaitVisible(btTestID("room-general")))
	phone.do("let the sidebar slide in", chromedp.Sleep(400*time.Millisecond))
	phone.shot("menu")
	phone.do("close the menu", chromedp.Click(btTestID("room-general")))
	mark("phone checked")

	// 6. chatd goes down: bob (and alice) see that they are reconnecting.
	downAt := time.Now()
	d.Stop()
	reconnecting := `(() => { const s = document.querySelector('[data-testid="status"]');
		return !s.hidden && s.getClientRects().length > 0 && s.textContent.trim() !== ''; })()`
	bob.waitJS("bob sees the reconnecting banner", reconnecting)
	bob.shot("reconnecting")
	t.Logf("bob's banner while chatd is down: %q", bob.evalQuiet(`document.querySelector('[data-testid="status"]').textContent`))
	alice.waitJS("alice sees the reconnecting banner", reconnecting)

	// chatd comes back on the same address. A message stored before the
	// browsers get back must reach them through the join's since.
	d.start()
	mark("chatd restarted")
	t.Logf("chatd was down %v", time.Since(downAt).Round(time.Millisecond))
	missed := "Deploy finished, chatd restarted"
	if st := call(t, "POST", d.URL+"/api/rooms/general/messages", carol, map[string]string{"text": missed}, nil); st != 201 {
		t.Fatalf("post while browsers reconnect: %d", st)
	}
	for _, b := range []*chromeUser{alice, bob, phone} {
		b.waitJS("banner gone after reconnect", `document.querySelector('[data-testid="status"]').hidden`)
		b.waitJS("the message sent during the reconnect arrives", btHasMessage(missed, true))
	}

	back := "Reconnected without losing a thing."
	bob.do("bob sends after the restart", chromedp.SendKeys(btTestID("composer"), back), chromedp.Click(btTestID("send")))
	alice.waitJS("alice sees bob after the restart", btHasMessage(back, true))
	same := "Same here, and history scrolls all the way back."
	alice.do("alice answers", chromedp.SendKeys(btTestID("composer"), same+"\n"))
	bob.waitJS("bob sees alice after the restart", btHasMessage(same, true))
	alice.waitJS("alice's answer acked", btHasMessage(same, true))
	phone.waitJS("the phone sees both", btHasMessage(same, true))

	// Nothing doubled, nothing out of order, nothing missed: each list is
	// exactly the stored history from its oldest shown message on.
	stored := ids(history(t, d.URL, carol, "general"))
	for _, b := range []*chromeUser{alice, bob, phone} {
		b.checkList(stored)
	}
	mark("lists checked")
	if got := alice.listIDs(); len(got) != len(stored) {
		t.Errorf("alice scrolled to the beginning but shows %d of %d messages", len(got), len(stored))
	}

	// 7. alice's window at the end, with rooms, the conversation and who
	// is online (the README's pictures come from TestBrowserLive).
	alice.waitJS("three people online",
		`document.querySelectorAll('[data-testid="online"] li').length === 3`)
	alice.do("settle", chromedp.Evaluate[chromedp.Void](btScrollBottomJS+`; document.activeElement?.blur()`),
		chromedp.Sleep(300*time.Millisecond))
	alice.shot("final")
	bob.shot("final")
	// bob learned of the DM when his client reloaded the room list after
	// the reconnect: it carries an unread badge. Opening it shows alice's
	// markup as text and clears the badge.
	bob.waitJS("bob's DM has an unread badge", fmt.Sprintf(
		`document.querySelector('[data-testid="room-%s"] [data-testid="unread"]')?.textContent === '1'`, dm))
	bob.shot("dm-unread")
	bob.openRoom(dm)
	bob.waitJS("bob sees the markup as text", btHasMessage(markup, true))
	bob.checkNoMarkup()
	bob.waitJS("the badge is gone", fmt.Sprintf(
		`document.querySelector('[data-testid="room-%s"] [data-testid="unread"]') === null`, dm))
	bob.shot("dm")

	for _, b := range []*chromeUser{alice, bob, phone} {
		b.logPageErrors()
	}
	t.Logf("browser test took %v", time.Since(start).Round(time.Millisecond))
}

// btLogOnFailure prints chatd's log at the end of a failed test.
func btLogOnFailure(t *testing.T, d *chatd) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chatd log:\n%s", d.logText())
		}
	})
}

// btShotsDir is where screenshots go: the test's temp dir, or
// CHAT_SCREENSHOT_DIR to keep them (a CI artifact, a look by hand).
func btShotsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("CHAT_SCREENSHOT_DIR")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func btSeedText(i int) string { return fmt.Sprintf("seed %03d", i) }

const btScrollBottomJS = `(() => { const m = document.querySelector('[data-testid="messages"]'); m.scrollTop = m.scrollHeight; })()`

// btTestID selects the element with a data-testid.
func btTestID(id string) chromedp.CSS {
	return chromedp.CSS(fmt.Sprintf(`[data-testid=%q]`, id))
}

func btJSString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// btHasMessage is a JS expression: a message with this text is in the list
// (and, with acked, has its stream id and is no longer pending).
func btHasMessage(text string, acked bool) string {
	cond := ""
	if acked {
		cond = ` && (m.getAttribute('data-id') || '') !== '' && !m.classList.contains('pending')`
	}
	return fmt.Sprintf(`[...document.querySelectorAll('[data-testid="message"]')].some(m => m.textContent.includes(%s)%s)`,
		btJSString(text), cond)
}

// chromeUser is one headless Chromium with its own profile: one person.
type chromeUser struct {
	t     *testing.T
	name  string // for logs and screenshot names
	user  string // who signs in
	ctx   context.Context
	dir   string // screenshots
	shots int

	mu     sync.Mutex
	errors []string // uncaught exceptions and console errors of the page
}

func newChromeUser(t *testing.T, name, user string, w, h int, shots string) *chromeUser {
	t.Helper()
	profile := t.TempDir()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(btChromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("hide-scrollbars", true),
		// Times and dates are checked in en-US.
		chromedp.Flag("lang", "en-US"),
		chromedp.Env("LANG=en_US.UTF-8", "TZ=UTC"),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(w, h),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		// Close the browser politely, then make sure the process and all
		// its children are gone.
		done := make(chan struct{})
		go func() {
			_ = chromedp.Cancel(ctx)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: chromium did not close within 10s", name)
		}
		cancel()
		acancel()
		<-done
		if left := btWaitNoChromium(profile, 5*time.Second); left != 0 {
			t.Errorf("%s: %d chromium processes still running after the test", name, left)
		}
	})
	b := &chromeUser{t: t, name: name, user: user, ctx: ctx, dir: shots}
	// The first action starts the browser; it is bound to ctx, not to a
	// step's timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: start chromium: %v", name, err)
	}
	if err := chromedp.Listen(ctx, b.onEvent); err != nil {
		t.Fatalf("%s: listen: %v", name, err)
	}
	var vopts []chromedp.EmulateViewportOption
	if w < 500 {
		vopts = append(vopts, chromedp.EmulateMobile, chromedp.EmulatePortrait)
	}
	b.do("viewport", chromedp.EmulateViewport(int64(w), int64(h), vopts...))
	return b
}

// onEvent runs in the tab's event loop: it only records.
func (b *chromeUser) onEvent(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		msg = "exception: " + ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeWarning {
			return
		}
		var parts []string
		for _, a := range ev.Args {
			if a.Description != "" {
				parts = append(parts, a.Description)
			} else {
				parts = append(parts, string(a.Value))
			}
		}
		msg = "console." + string(ev.Type) + ": " + strings.Join(parts, " ")
	default:
		return
	}
	b.mu.Lock()
	b.errors = append(b.errors, msg)
	b.mu.Unlock()
}

func (b *chromeUser) logPageErrors() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errors {
		b.t.Logf("%s page: %s", b.name, e)
	}
}

// do runs actions within one step's timeout; on failure it saves a
// screenshot and stops the test.
func (b *chromeUser) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, btStepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(step, err)
	}
}

func (b *chromeUser) fail(step string, err error) {
	b.t.Helper()
	b.shot("FAILED")
	b.logPageErrors()
	b.t.Fatalf("%s: %s: %v (status %q, error %q, typing %q)", b.name, step, err,
		b.evalQuiet(`document.querySelector('[data-testid="status"]')?.textContent`),
		b.evalQuiet(`document.querySelector('[data-testid="error"]')?.textContent`),
		b.evalQuiet(`document.querySelector('[data-testid="typing"]')?.textContent`))
}

// waitJS waits until a JS expression is truthy.
func (b *chromeUser) waitJS(step, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, btStepTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(btStepTimeout))); err != nil {
		b.fail(step, err)
	}
}

// evalAsync returns the string a JS expression's promise resolves to.
func (b *chromeUser) evalAsync(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, btStepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.fail("evaluate "+expr, err)
	}
	return s
}

func btNavigate(url string) chromedp.Action[chromedp.Void] { return chromedp.Navigate(url) }

// eval returns the JSON of a JS expression's value.
func (b *chromeUser) eval(expr string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, btStepTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr))
	if err != nil {
		b.fail("evaluate "+expr, err)
	}
	return string(raw)
}

func (b *chromeUser) evalQuiet(expr string) string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`String(`+expr+` ?? '')`))
	return s
}

// shot saves a screenshot of the viewport and returns it.
func (b *chromeUser) shot(what string) []byte {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, btStepTimeout)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Errorf("%s: screenshot %s: %v", b.name, what, err)
		return nil
	}
	b.shots++
	p := filepath.Join(b.dir, fmt.Sprintf("%s-%02d-%s.png", b.name, b.shots, what))
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		b.t.Errorf("write %s: %v", p, err)
		return buf
	}
	b.t.Logf("screenshot %s", p)
	return buf
}

func (b *chromeUser) open(base string) {
	b.t.Helper()
	b.do("open the page", chromedp.Navigate(base+"/"), chromedp.WaitVisible(btTestID("username")))
}

// signIn fills the login form and presses Create account (register) or
// Log in, then waits for the room list. Passwords follow user().
func (b *chromeUser) signIn(register bool) {
	b.t.Helper()
	name := b.user
	button := "login"
	if register {
		button = "register"
	}
	b.do("fill the login form",
		chromedp.SendKeys(btTestID("username"), name),
		chromedp.SendKeys(btTestID("password"), "pw-"+name+"-long"),
		chromedp.Click(btTestID(button)),
	)
	// The client logs in by itself after registering; should a version
	// ever stop at the enabled form instead, press Log in too.
	b.waitJS("the form answers", `(() => {
		const rooms = document.querySelector('[data-testid="rooms"]');
		const login = document.querySelector('[data-testid="login"]');
		return (rooms && rooms.getClientRects().length > 0) || (login.getClientRects().length > 0 && !login.disabled);
	})()`)
	if b.eval(`document.querySelector('[data-testid="rooms"]').getClientRects().length === 0`) == "true" {
		if msg := b.evalQuiet(`document.querySelector('[data-testid="error"]').textContent`); msg != "" {
			b.t.Fatalf("%s: %s refused: %s", b.name, button, msg)
		}
		b.do("log in after registering", chromedp.Click(btTestID("login")))
	}
	b.do("see the room list", chromedp.WaitVisible(btTestID("rooms")), chromedp.WaitVisible(btTestID("room-general")))
}

func (b *chromeUser) openRoom(room string) {
	b.t.Helper()
	b.do("open #"+room, chromedp.Click(btTestID("room-"+room)), chromedp.WaitVisible(btTestID("composer")))
	b.waitJS("#"+room+" is open", fmt.Sprintf(
		`document.querySelector('[data-testid="room-%s"]').classList.contains('active') && document.querySelectorAll('[data-testid="message"]').length > 0`, room))
}

// scrollBackTo scrolls the message list to the top, again and again while
// older pages load, until a message with text is shown in the list's box.
func (b *chromeUser) scrollBackTo(text string) {
	b.t.Helper()
	expr := fmt.Sprintf(`(() => {
		const list = document.querySelector('[data-testid="messages"]');
		list.scrollTop = 0;
		list.dispatchEvent(new Event('scroll'));
		const m = [...list.querySelectorAll('[data-testid="message"]')].find(m => m.textContent.includes(%s));
		if (!m) return false;
		const r = m.getBoundingClientRect(), l = list.getBoundingClientRect();
		return r.top >= l.top - 1 && r.bottom <= l.bottom + 1;
	})()`, btJSString(text))
	deadline := time.Now().Add(btStepTimeout)
	pages := 0
	for b.eval(expr) != "true" {
		if time.Now().After(deadline) {
			b.fail("scroll back to "+text, context.DeadlineExceeded)
		}
		pages++
		time.Sleep(150 * time.Millisecond)
	}
	b.t.Logf("%s: %q shown after %d scrolls to the top; %s messages in the list", b.name, text, pages,
		b.eval(`document.querySelectorAll('[data-testid="message"]').length`))
}

// checkNoMarkup asserts that no message's text became elements.
func (b *chromeUser) checkNoMarkup() {
	b.t.Helper()
	if n := b.eval(`[...document.querySelectorAll('[data-testid="message"]')].filter(m => m.querySelector('b, i, script')).length`); n != "0" {
		b.t.Fatalf("%s: %s messages hold parsed markup", b.name, n)
	}
}

// listIDs returns the data-id of every message in the list, in DOM order.
func (b *chromeUser) listIDs() []string {
	b.t.Helper()
	raw := b.eval(`[...document.querySelectorAll('[data-testid="message"]')].map(m => m.getAttribute('data-id') || '')`)
	var out []string
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		b.t.Fatalf("%s: ids %s: %v", b.name, raw, err)
	}
	return out
}

// checkList asserts the list shows each id once, in increasing stream
// order, with no hole: exactly the stored history from its first id on.
func (b *chromeUser) checkList(stored []string) {
	b.t.Helper()
	got := b.listIDs()
	seen := map[string]bool{}
	for i, id := range got {
		if id == "" {
			b.t.Errorf("%s: message %d has no data-id", b.name, i)
			continue
		}
		if seen[id] {
			b.t.Errorf("%s: id %s shown twice", b.name, id)
		}
		seen[id] = true
		if i > 0 && got[i-1] != "" && btCompareIDs(b.t, got[i-1], id) >= 0 {
			b.t.Errorf("%s: id %s after %s: not increasing", b.name, id, got[i-1])
		}
	}
	if len(got) == 0 {
		b.t.Fatalf("%s: empty message list", b.name)
	}
	first := slices.Index(stored, got[0])
	if first < 0 || !slices.Equal(got, stored[first:]) {
		b.t.Errorf("%s: list of %d messages is not the stored history from %s on (%d stored)", b.name, len(got), got[0], len(stored))
	}
	b.t.Logf("%s: %d messages, ids increasing, no duplicates, no gaps (%s … %s)", b.name, len(got), got[0], got[len(got)-1])
}

// btCompareIDs orders two Redis stream ids "ms-seq" numerically.
func btCompareIDs(t *testing.T, a, b string) int {
	t.Helper()
	pa, pb := btParseID(t, a), btParseID(t, b)
	if c := btCompareUint(pa[0], pb[0]); c != 0 {
		return c
	}
	return btCompareUint(pa[1], pb[1])
}

func btParseID(t *testing.T, id string) [2]uint64 {
	t.Helper()
	ms, seq, ok := strings.Cut(id, "-")
	a, err1 := strconv.ParseUint(ms, 10, 64)
	b, err2 := strconv.ParseUint(seq, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("bad stream id %q", id)
	}
	return [2]uint64{a, b}
}

func btCompareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// btWaitNoChromium waits until no process runs with the profile dir on its
// command line (Chromium passes --user-data-dir to every child), kills any
// left at the deadline, and returns how many were left.
func btWaitNoChromium(profile string, limit time.Duration) int {
	want := []byte("--user-data-dir=" + profile)
	find := func() []int {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return nil
		}
		var pids []int
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if err != nil {
				continue
			}
			if slices.ContainsFunc(bytes.Split(cmd, []byte{0}), func(a []byte) bool { return bytes.Equal(a, want) }) {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	deadline := time.Now().Add(limit)
	for {
		pids := find()
		if len(pids) == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				if p, err := os.FindProcess(pid); err == nil {
					_ = p.Kill()
				}
			}
			return len(pids)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

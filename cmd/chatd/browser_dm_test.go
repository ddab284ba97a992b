package main

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/redstream/chat/store/storetest"
)

// TestBrowserDMAppearsLive: when alice opens a direct room with bob, it
// appears in bob's sidebar within a second, without a reload (issue 18:
// it took 19.1 s, or a reload), and her first message there counts as
// his unread DM at once. It needs the server's room_added user event.
func TestBrowserDMAppearsLive(t *testing.T) {
	btRequireChromium(t)
	srv := storetest.Start(t, storetest.Options{})
	d := mustRunChatd(t, map[string]string{"REDIS_URL": "redis://" + srv.Addr})
	btLogOnFailure(t, d)
	user(t, d.URL, "alice")
	user(t, d.URL, "bob")
	shots := btShotsDir(t)
	alice := newChromeUser(t, "alice", "alice", 1280, 800, shots)
	bob := newChromeUser(t, "bob", "bob", 1280, 800, shots)
	for _, b := range []*chromeUser{alice, bob} {
		b.open(d.URL)
		b.signIn(false)
		b.openRoomNamed("general")
	}
	bob.waitJS("bob has no DM yet", `document.querySelector('[data-testid="room-dm:alice:bob"]') === null`)

	alice.do("alice starts a DM with bob",
		chromedp.SendKeys(btTestID("dm-user"), "bob"), chromedp.Click(btTestID("start-dm")))
	took := bob.waitJSWithin("the DM appears in bob's sidebar", `(() => {
		const r = document.querySelector('[data-testid="room-dm:alice:bob"]');
		return r !== null && r.getClientRects().length > 0 && r.textContent.includes('alice');
	})()`, liveWithin)
	t.Logf("the new DM showed in bob's sidebar after %v", took.Round(time.Millisecond))

	alice.waitJS("alice's DM is open", btRoomActive("dm:alice:bob"))
	alice.do("alice writes", chromedp.SendKeys(btTestID("composer"), "Got a minute?\n"))
	took = bob.waitJSWithin("bob's DM counts it as personal", `(() => {
		const b = document.querySelector('[data-testid="room-dm:alice:bob"] [data-testid="unread"]');
		return b && b.textContent === '1' && b.classList.contains('personal');
	})()`, liveWithin)
	t.Logf("alice's first DM counted in bob's sidebar after %v", took.Round(time.Millisecond))
	bob.waitJS("bob's tab title counts the DM", `document.title.startsWith('(1) ')`)
	bob.shot("dm-live")
	for _, b := range []*chromeUser{alice, bob} {
		b.logPageErrors()
	}
}

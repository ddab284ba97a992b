package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/redstream/chat/store/storetest"
)

// TestBrowserMessages drives issue 15's web client in two desktop
// browsers and a phone: alice edits her message (and cancels an edit with
// Escape, and reaches her last message with the Up arrow), deletes one,
// bob reacts and both toggle reactions, bob answers in a thread that
// alice joins, bob mentions alice with @-completion, alice opens a DM
// with bob; every change shows live in both windows, and all of it is
// still there after a reload (history brings each message's current
// state). The phone opens the thread full screen. The README's picture
// of a thread with reactions comes from here: with
// CHAT_UPDATE_SCREENSHOT=1 it replaces docs/web-client-thread.png.
func TestBrowserMessages(t *testing.T) {
	btRequireChromium(t)
	start := time.Now()
	mark := func(what string) { t.Logf("%5.1fs %s", time.Since(start).Seconds(), what) }

	srv := storetest.Start(t, storetest.Options{})
	d := mustRunChatd(t, map[string]string{
		"REDIS_URL":       "redis://" + srv.Addr,
		"CHAT_SEND_RATE":  "1000",
		"CHAT_SEND_BURST": "1000",
	})
	btLogOnFailure(t, d)
	shots := btShotsDir(t)
	carol := user(t, d.URL, "carol")
	user(t, d.URL, "alice")
	user(t, d.URL, "bob")
	for _, text := range []string{
		"Morning all. The release branch is cut.",
		"Reminder: retro on Friday at three.",
		"Build times are down to four minutes.",
	} {
		if st := call(t, "POST", d.URL+"/api/rooms/general/messages", carol, map[string]string{"text": text}, nil); st != 201 {
			t.Fatalf("seed: status %d", st)
		}
	}

	alice := newChromeUser(t, "alice", "alice", 1280, 800, shots)
	bob := newChromeUser(t, "bob", "bob", 1280, 800, shots)
	both := []*chromeUser{alice, bob}
	for _, b := range both {
		b.open(d.URL)
		b.signIn(false)
		b.openRoomNamed("general")
	}
	mark("both in #general")

	// alice's message, and its id once acked.
	lunch := "Lunch at noon? The usual place."
	alice.do("alice sends", chromedp.SendKeys(btTestID("composer"), lunch+"\n"))
	for _, b := range both {
		b.waitJS("the message is stored", btHasMessage(lunch, true))
	}
	id := strings.Trim(alice.eval(btListMsgJS(lunch)+`.getAttribute('data-id')`), `"`)
	msg := btMsgByID(id)

	// Edit: hover, the menu's edit, a new text and Enter.
	alice.hover(msg)
	alice.waitJS("the menu shows on alice's message", msg+`.querySelector('[data-testid="message-menu"]') !== null`)
	if got := alice.eval(msg + `.querySelector('[data-testid="message-menu"] [data-testid="edit"]').hidden`); got != "false" {
		t.Errorf("alice's own message offers no edit")
	}
	alice.do("edit", chromedp.Click(btIn(msg, "edit")))
	alice.waitJS("the editor holds the text", `document.querySelector('[data-testid="edit-input"]')?.value === `+btJSString(lunch))
	edited := "Lunch at 12:30? The usual place."
	alice.do("type the new text", btClear("edit-input"), chromedp.SendKeys(btTestID("edit-input"), edited+"\n"))
	for _, b := range both {
		b.waitJSWithin(b.name+" sees the edit with its mark", btTextIs(msg, edited)+` && !`+msg+`.querySelector('[data-testid="edited"]').hidden`, 2*time.Second)
	}
	mark("edit shown live")

	// Escape cancels an edit; Up in the empty composer edits the last message.
	alice.hover(msg)
	alice.do("edit again", chromedp.Click(btIn(msg, "edit")))
	alice.do("type something", chromedp.SendKeys(btTestID("edit-input"), " NOT SAVED"))
	alice.do("Escape", chromedp.KeyEvent(kb.Escape))
	alice.waitJS("the editor closed, the text unchanged", `document.querySelector('[data-testid="edit-input"]') === null && `+btTextIs(msg, edited))
	alice.do("focus the composer", chromedp.Focus(btTestID("composer")))
	alice.do("press Up", chromedp.KeyEvent(kb.ArrowUp))
	alice.waitJS("Up opened the editor on alice's last message", msg+`.querySelector('[data-testid="edit-input"]') !== null`)
	alice.do("Escape", chromedp.KeyEvent(kb.Escape))
	alice.waitJS("closed again", `document.querySelector('[data-testid="edit-input"]') === null`)

	// bob may react and reply to alice's message, but not edit or delete it.
	bob.hover(msg)
	bob.waitJS("the menu shows on bob's side", msg+`.querySelector('[data-testid="message-menu"]') !== null`)
	bob.shot("menu")
	if got := bob.eval(`[...` + msg + `.querySelectorAll('[data-testid="message-menu"] button')].filter(b => !b.hidden).map(b => b.dataset.testid)`); got != `["react","reply"]` {
		t.Errorf("bob's menu on alice's message offers %s, want react and reply", got)
	}

	// React: the picker, then counts under the message in both windows.
	bob.do("open the picker", chromedp.Click(btIn(msg, "react")))
	bob.do("pick 👍", chromedp.Click(btEmoji("👍")))
	for _, b := range both {
		b.waitJSWithin(b.name+" sees bob's 👍", btReactionIs(msg, "👍", "1", "bob"), 2*time.Second)
	}
	if got := bob.eval(msg + `.querySelector('[data-testid="reaction"][data-emoji="👍"]').getAttribute('aria-pressed')`); got != `"true"` {
		t.Errorf("bob's own reaction is not shown as his: aria-pressed %s", got)
	}
	alice.do("alice adds hers with a click", chromedp.Click(btReaction(msg, "👍")))
	for _, b := range both {
		b.waitJS(b.name+" sees two", btReactionIs(msg, "👍", "2", "bob,alice"))
	}
	if got := alice.evalQuiet(btReactionJS(msg, "👍") + `.title`); got != "bob and you reacted with 👍" {
		t.Errorf("the reaction's names on hover: %q", got)
	}
	alice.hover(msg)
	alice.do("alice adds 🎉", chromedp.Click(btIn(msg, "react")),
		chromedp.Click(btEmoji("🎉")))
	bob.do("bob takes his 👍 back", chromedp.Click(btReaction(msg, "👍")))
	for _, b := range both {
		b.waitJS(b.name+" sees 👍 1 and 🎉 1", btReactionIs(msg, "👍", "1", "alice")+` && `+btReactionIs(msg, "🎉", "1", "alice"))
	}
	bob.do("bob adds 👍 again", chromedp.Click(btReaction(msg, "👍")))
	alice.waitJS("alice sees 👍 2", btReactionIs(msg, "👍", "2", "alice,bob"))
	mark("reactions shown live")

	// A thread: bob replies from the menu; alice opens it from the root's link.
	bob.hover(msg)
	bob.do("reply in a thread", chromedp.Click(btIn(msg, "reply")))
	bob.waitJS("the thread panel shows the root", `(() => {
		const t = document.querySelector('[data-testid="thread"]');
		return !t.hidden && t.getClientRects().length > 0 && t.textContent.includes(`+btJSString(edited)+`);
	})()`)
	replyB := "Works for me, I'll book a table."
	bob.do("bob replies", chromedp.SendKeys(btTestID("thread-composer"), replyB+"\n"))
	bob.waitJS("bob's reply is stored in the thread", btThreadHas(replyB, true))
	for _, b := range both {
		b.waitJSWithin(b.name+" sees the root count 1 reply", msg+`.querySelector('[data-testid="thread-link"]')?.textContent === '1 reply'`, 2*time.Second)
		if got := b.eval(btMainShows(replyB)); got != "false" {
			t.Errorf("%s: the reply shows in the room's list too", b.name)
		}
	}
	alice.do("alice opens the thread", chromedp.Click(btIn(msg, "thread-link")))
	alice.waitJS("alice's thread shows bob's reply", btThreadHas(replyB, true))
	replyA := "See you there!"
	alice.do("alice replies", chromedp.SendKeys(btTestID("thread-composer"), replyA+"\n"))
	for _, b := range both {
		b.waitJSWithin(b.name+" sees alice's reply in the thread", btThreadHas(replyA, true), 2*time.Second)
		b.waitJS(b.name+" sees 2 replies on the root", msg+`.querySelector('[data-testid="thread-link"]')?.textContent === '2 replies'`)
	}
	// A reaction on a reply, given in the thread, reaches the other thread.
	replyEl := btThreadMsgJS(replyA)
	bob.hover(replyEl)
	bob.do("bob reacts to alice's reply", chromedp.Click(btIn(replyEl, "react")),
		chromedp.Click(btEmoji("❤️")))
	alice.waitJS("alice sees ❤️ on her reply", btReactionIs(replyEl, "❤️", "1", "bob"))
	mark("thread shown live")

	// @-completion: bob types "@al", Tab puts "@alice " in; alice, reading
	// another room, gets a mention badge, then sees the mention marked.
	alice.openRoomNamed("tech")
	bob.do("bob types @al", chromedp.Click(btTestID("composer")), chromedp.SendKeys(btTestID("composer"), "@al"))
	bob.waitJS("alice is offered", `[...document.querySelectorAll('[data-testid="mention-option"]')].map(o => o.dataset.user).join() === 'alice' &&
		document.querySelector('[data-testid="mention-list"]').getClientRects().length > 0`)
	bob.do("Tab", chromedp.KeyEvent(kb.Tab))
	bob.waitJS("the composer holds @alice", `document.querySelector('[data-testid="composer"]').value === '@alice '`)
	ping := "can you bring the slides?"
	bob.do("send the mention", chromedp.SendKeys(btTestID("composer"), ping+"\n"))
	alice.waitJSWithin("alice's #general shows a mention badge", `(() => {
		const m = document.querySelector('[data-testid="room-general"] [data-testid="mention-badge"]');
		return m !== null && m.getClientRects().length > 0 && m.dataset.count === '1';
	})()`, liveWithin)
	alice.openRoomNamed("general")
	alice.waitJS("the mention is marked", btListMsgJS(ping)+`?.classList.contains('mentions-me') && `+btListMsgJS(ping)+`.querySelector('.mention.me')?.textContent === '@alice'`)
	alice.waitJS("the badge is gone once read", `document.querySelector('[data-testid="room-general"] [data-testid="mention-badge"]') === null`)

	// Delete asks once, then the message says it was deleted, in both windows.
	oops := "Wrong window, ignore this"
	alice.do("alice sends a mistake", chromedp.SendKeys(btTestID("composer"), oops+"\n"))
	bob.waitJS("bob sees it", btHasMessage(oops, true))
	// Its id is on alice's side once her ack came, which may be after bob
	// sees the message.
	alice.waitJS("alice's copy is stored", btHasMessage(oops, true))
	oopsID := strings.Trim(alice.eval(btListMsgJS(oops)+`.getAttribute('data-id')`), `"`)
	oopsMsg := btMsgByID(oopsID)
	alice.hover(oopsMsg)
	alice.do("delete", chromedp.Click(btIn(oopsMsg, "delete")))
	alice.waitJS("delete asks to confirm", oopsMsg+`.querySelector('[data-testid="delete"]').textContent.includes('Delete?')`)
	if got := alice.eval(oopsMsg + `.hasAttribute('data-deleted')`); got != "false" {
		t.Fatalf("one click deleted the message")
	}
	alice.do("confirm", chromedp.Click(btIn(oopsMsg, "delete")))
	for _, b := range both {
		b.waitJSWithin(b.name+" sees it deleted", oopsMsg+`?.hasAttribute('data-deleted') && `+btTextIs(oopsMsg, "This message was deleted.")+` && !`+oopsMsg+`.textContent.includes(`+btJSString(oops)+`)`, 2*time.Second)
	}
	mark("delete shown live")

	// A new DM appears in bob's sidebar at once.
	alice.do("alice starts a DM with bob", chromedp.SendKeys(btTestID("dm-user"), "bob"), chromedp.Click(btTestID("start-dm")))
	bob.waitJSWithin("the DM appears in bob's sidebar", `document.querySelector('[data-testid="room-dm:alice:bob"]')?.getClientRects().length > 0`, liveWithin)
	alice.waitJS("alice's DM is open", btRoomActive("dm:alice:bob"))
	alice.openRoomNamed("general")

	// The README's picture: alice's window with the thread open beside the
	// reactions. Taken before the reload, which closes the thread.
	alice.do("open the thread", chromedp.Click(btIn(msg, "thread-link")))
	alice.waitJS("the thread shows both replies", btThreadHas(replyB, true)+` && `+btThreadHas(replyA, true))
	alice.do("settle", chromedp.Evaluate[chromedp.Void](btScrollBottomJS+`; document.activeElement?.blur()`),
		chromedp.MouseEvent(chromedp.MouseMoved, 5, 5), chromedp.Sleep(300*time.Millisecond))
	threadShot := alice.shot("thread")

	// The same state after a reload: history carries edits, deletions,
	// reactions and reply counts.
	bob.do("reload", chromedp.Reload(), chromedp.WaitVisible(btTestID("composer")))
	bob.waitJS("#general is open again", btRoomActive("general")+` && `+btHasMessage(edited, true))
	bob.waitJS("after the reload: the edit, its mark, the reactions, the replies, the deletion", btTextIs(msg, edited)+
		` && !`+msg+`.querySelector('[data-testid="edited"]').hidden && `+btReactionIs(msg, "👍", "2", "alice,bob")+
		` && `+btReactionIs(msg, "🎉", "1", "alice")+` && `+msg+`.querySelector('[data-testid="thread-link"]').textContent === '2 replies'`+
		` && `+oopsMsg+`?.hasAttribute('data-deleted')`)
	if got := bob.eval(btMainShows(replyA)); got != "false" {
		t.Errorf("bob: after the reload a reply shows in the room's list")
	}

	// The phone: a thread covers the screen and has its own composer.
	phone := newChromeUser(t, "phone", "carol", 390, 844, shots)
	phone.open(d.URL)
	phone.signIn(false)
	phone.openRoomNamed("general")
	phone.waitJS("the root shows its replies", msg+`?.querySelector('[data-testid="thread-link"]')?.textContent === '2 replies'`)
	phone.do("open the thread", chromedp.Click(btIn(msg, "thread-link")))
	phone.waitJS("the thread fills the screen", `(() => {
		const t = document.querySelector('[data-testid="thread"]').getBoundingClientRect();
		const c = document.querySelector('[data-testid="thread-composer"]').getBoundingClientRect();
		return t.left <= 0 && t.width >= window.innerWidth - 1 && c.bottom <= window.innerHeight + 1 && c.width > 200 &&
			document.documentElement.scrollWidth <= window.innerWidth;
	})()`)
	phone.waitJS("with both replies", btThreadHas(replyA, true))
	phone.shot("thread")
	phone.do("close the thread", chromedp.Click(btTestID("thread-close")))
	phone.waitJS("back in the room", `document.querySelector('[data-testid="thread"]').hidden && document.querySelector('[data-testid="composer"]').getClientRects().length > 0`)

	if os.Getenv("CHAT_UPDATE_SCREENSHOT") == "1" {
		for name, png := range map[string][]byte{"web-client-thread.png": threadShot} {
			dst := filepath.Join("..", "..", "docs", name)
			if err := os.WriteFile(dst, png, 0o644); err != nil {
				t.Fatal(err)
			}
			abs, _ := filepath.Abs(dst)
			t.Logf("wrote %s", abs)
		}
	}
	for _, b := range []*chromeUser{alice, bob, phone} {
		b.logPageErrors()
		b.checkNoPageErrors()
	}
	mark("done")
}

// btListMsgJS is a JS expression: the newest message of the room's list
// whose text holds text, or null.
func btListMsgJS(text string) string {
	return fmt.Sprintf(`([...document.querySelectorAll('[data-testid="messages"] [data-testid="message"]')].filter(m => m.querySelector('.msg-text').textContent.includes(%s)).pop() || null)`, btJSString(text))
}

// btThreadMsgJS is the same in the thread panel.
func btThreadMsgJS(text string) string {
	return fmt.Sprintf(`([...document.querySelectorAll('[data-testid="thread-messages"] [data-testid="message"]')].filter(m => m.querySelector('.msg-text').textContent.includes(%s)).pop() || null)`, btJSString(text))
}

// btMsgByID is a JS expression: the element of message id in the room's list.
func btMsgByID(id string) string {
	return fmt.Sprintf(`document.querySelector('[data-testid="messages"] [data-testid="message"][data-id=%q]')`, id)
}

// btIn selects the element with a data-testid inside the element a JS
// expression names.
func btIn(js, testID string) chromedp.JSPath {
	return chromedp.JSPath(fmt.Sprintf(`%s.querySelector('[data-testid=%q]')`, js, testID))
}

// btReaction selects msg's reaction button for emoji.
func btReaction(msg, emoji string) chromedp.JSPath {
	return chromedp.JSPath(fmt.Sprintf(`%s.querySelector('[data-testid="reaction"][data-emoji=%q]')`, msg, emoji))
}

// btEmoji selects an emoji of the open picker.
func btEmoji(emoji string) chromedp.CSS {
	return chromedp.CSS(fmt.Sprintf(`[data-testid="emoji-picker"] [data-emoji=%q]`, emoji))
}

// btTextIs is a JS expression: msg's text reads exactly text.
func btTextIs(msg, text string) string {
	return fmt.Sprintf(`(%s?.querySelector('.msg-text').textContent === %s)`, msg, btJSString(text))
}

// btReactionJS is a JS expression: msg's reaction button for emoji, or null.
func btReactionJS(msg, emoji string) string {
	return fmt.Sprintf(`%s?.querySelector('[data-testid="reaction"][data-emoji=%q]')`, msg, emoji)
}

// btReactionIs is a JS expression: msg shows emoji with count n, from
// users (comma-separated, in any order).
func btReactionIs(msg, emoji, n, users string) string {
	return fmt.Sprintf(`(() => { const r = %s;
		return r != null && r.querySelector('.reaction-count').textContent === %q && r.dataset.users.split(',').sort().join() === %q; })()`,
		btReactionJS(msg, emoji), n, strings.Join(sortedCSV(users), ","))
}

func sortedCSV(s string) []string {
	parts := strings.Split(s, ",")
	slices.Sort(parts)
	return parts
}

// btThreadHas is a JS expression: the thread panel shows a reply with text
// (and, with stored, its stream id).
func btThreadHas(text string, stored bool) string {
	cond := ""
	if stored {
		cond = ` && (m.getAttribute('data-id') || '') !== '' && !m.classList.contains('pending')`
	}
	return fmt.Sprintf(`[...document.querySelectorAll('[data-testid="thread-messages"] [data-testid="message"]')].some(m => m.textContent.includes(%s) && m.getClientRects().length > 0%s)`,
		btJSString(text), cond)
}

// btMainShows is a JS expression: a message with text is visible in the room's list.
func btMainShows(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('[data-testid="messages"] [data-testid="message"]')].some(m => m.textContent.includes(%s) && m.getClientRects().length > 0)`, btJSString(text))
}

// hover moves the mouse over the element a JS expression names, as a
// person pointing at a message does.
func (b *chromeUser) hover(js string) {
	b.t.Helper()
	b.waitJS("the element to hover is there", js+` !== null`)
	b.do("hover", chromedp.Evaluate[chromedp.Void](js+`.scrollIntoView({block: 'center'})`),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			rect, err := chromedp.Evaluate[[]float64](fmt.Sprintf(`(() => { const r = %s.querySelector('.msg-text').getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; })()`, js))(ctx, t)
			if err != nil {
				return err
			}
			_, err = chromedp.MouseEvent(chromedp.MouseMoved, rect[0], rect[1])(ctx, t)
			return err
		}))
}

// checkNoPageErrors fails the test on an uncaught exception in the page.
func (b *chromeUser) checkNoPageErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errors {
		if strings.HasPrefix(e, "exception:") {
			b.t.Errorf("%s: %s", b.name, e)
		}
	}
}

package main

import (
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/redstream/chat/transport/web"
)

// TestBrowserRoomModel checks, in the browser's JavaScript engine, how the
// web client's room model (room.js) keeps messages in their current state
// from history pages and event frames that may cross each other: an event
// for a message not held yet is applied when its page lands, events that
// a page already reflects change nothing when they come again, a deletion
// is final, a reply counts on its root once, and one message is one
// object whether the thread panel or the room's list saw it first.
func TestBrowserRoomModel(t *testing.T) {
	btRequireChromium(t)
	srv := httptest.NewServer(web.Handler())
	t.Cleanup(srv.Close)
	b := newChromeUser(t, "model", "", 800, 600, t.TempDir())
	b.do("open the page", btNavigate(srv.URL+"/"))

	// Each case is the body of a function of the module r (room.js) that
	// returns a value, and the JSON it must give.
	cases := []struct{ name, body, want string }{
		{"an edit before its page lands",
			`const room = new r.Room('general', 'channel');
			room.applyEvent({type: 'edit', room: 'general', id: '5-0', target: '2-0', user: 'bob', text: 'fixed', ts: 5});
			room.addStored({id: '2-0', user: 'bob', text: 'typo', ts: 2}, 'alice');
			const m = room.byId.get('2-0');
			return [m.text, m.editedTs, room.loggedEvents];`,
			`["fixed", 5, 0]`},
		{"a page that already holds the events",
			`const room = new r.Room('general', 'channel');
			const page = {id: '2-0', user: 'bob', text: 'second', ts: 2, edited_ts: 6, reactions: {'👍': ['alice', 'carol']}};
			for (const f of [
				{type: 'edit', id: '5-0', target: '2-0', user: 'bob', text: 'first', ts: 5},
				{type: 'reaction', id: '5-1', target: '2-0', user: 'carol', emoji: '👍', on: true},
				{type: 'edit', id: '6-0', target: '2-0', user: 'bob', text: 'second', ts: 6},
			]) room.applyEvent(f);
			room.addStored(page, 'alice');
			const m = room.byId.get('2-0');
			return [m.text, m.reactions.get('👍')];`,
			`["second", ["alice", "carol"]]`},
		{"reactions are assignments",
			`const room = new r.Room('general', 'channel');
			room.addStored({id: '2-0', user: 'bob', text: 'x', ts: 2}, 'alice');
			const f = (user, on, id) => room.applyEvent({type: 'reaction', id, target: '2-0', user, emoji: '🎉', on});
			const changed = [f('alice', true, '3-0'), f('alice', true, '3-1'), f('bob', false, '3-2'), f('bob', true, '3-3'), f('alice', false, '3-4')].map(Boolean);
			return [changed, room.byId.get('2-0').reactions.get('🎉')];`,
			`[[true, false, false, true, true], ["bob"]]`},
		{"a deletion is final",
			`const room = new r.Room('general', 'channel');
			room.addStored({id: '2-0', user: 'bob', text: 'x', ts: 2, reactions: {'👍': ['alice']}}, 'alice');
			room.applyEvent({type: 'delete', id: '4-0', target: '2-0', user: 'bob'});
			room.applyEvent({type: 'edit', id: '3-0', target: '2-0', user: 'bob', text: 'replayed', ts: 3});
			room.applyEvent({type: 'reaction', id: '3-1', target: '2-0', user: 'carol', emoji: '👍', on: true});
			const m = room.byId.get('2-0');
			return [m.deleted, m.text, m.reactions.size];`,
			`[true, "", 0]`},
		{"a deleted message from history",
			`const room = new r.Room('general', 'channel');
			room.addStored({id: '2-0', user: 'bob', text: '', ts: 2, deleted: true, reply_count: 3}, 'alice');
			const m = room.byId.get('2-0');
			return [m.deleted, m.replyCount];`,
			`[true, 3]`},
		{"a reply counts once and shows in its thread",
			`const room = new r.Room('general', 'channel');
			room.addStored({id: '2-0', user: 'bob', text: 'root', ts: 2, reply_count: 1}, 'alice');
			room.addStored({id: '3-0', user: 'carol', text: 'old reply', ts: 3, reply_to: '2-0'}, 'alice');
			const res = room.addStored({id: '4-0', user: 'dave', text: 'new reply', ts: 4, reply_to: '2-0'}, 'alice');
			if (res.fresh) room.countReply(res.msg);
			const again = room.addStored({id: '4-0', user: 'dave', text: 'new reply', ts: 4, reply_to: '2-0'}, 'alice');
			return [room.byId.get('2-0').replyCount, again, room.inThread(res.msg), room.before(res.msg).id];`,
			`[2, null, true, "2-0"]`},
		{"a reply whose root is not loaded shows in the list",
			`const room = new r.Room('general', 'channel');
			const res = room.addStored({id: '9-0', user: 'dave', text: 'late reply', ts: 9, reply_to: '1-0'}, 'alice');
			return [room.inThread(res.msg), room.countReply(res.msg)];`,
			`[false, null]`},
		{"one object for the thread and the list",
			`const room = new r.Room('general', 'channel');
			const t = room.adopt({id: '3-0', user: 'bob', text: 'from the thread', ts: 3, reply_to: '2-0'}, 'alice').msg;
			room.applyEvent({type: 'reaction', id: '5-0', target: '3-0', user: 'alice', emoji: '👀', on: true});
			const res = room.addStored({id: '3-0', user: 'bob', text: 'from the thread', ts: 3, reply_to: '2-0'}, 'alice');
			return [res.msg === t, res.fresh, [...t.reactions.keys()]];`,
			`[true, false, ["👀"]]`},
		{"our pending reply becomes the stored one",
			`const room = new r.Room('general', 'channel');
			const p = room.addPending('on it', 'alice', 'c-1', '2-0');
			const main = room.pending.length;
			const res = room.addStored({id: '4-0', user: 'alice', text: 'on it', ts: 4, client_id: 'c-1', reply_to: '2-0'}, 'alice');
			return [main, res.msg === p, res.wasPending, room.replyPending.length, room.ack('c-1', '4-0')];`,
			`[0, true, true, 0, null]`},
		{"the events kept for missing messages are bounded",
			`const room = new r.Room('general', 'channel');
			for (let i = 0; i < 6000; i++) room.applyEvent({type: 'delete', id: (100 + i) + '-0', target: i + '-0', user: 'bob'});
			return [room.loggedEvents, room.eventLog.has('0-0'), room.eventLog.has('5999-0')];`,
			`[5000, false, true]`},
		{"the Up arrow's message",
			`const room = new r.Room('general', 'channel');
			room.addStored({id: '2-0', user: 'alice', text: 'mine', ts: 2}, 'alice');
			room.addStored({id: '3-0', user: 'alice', text: 'gone', ts: 3, deleted: true}, 'alice');
			room.addStored({id: '4-0', user: 'bob', text: 'theirs', ts: 4}, 'alice');
			return room.lastOwnEditable('alice').id;`,
			`"2-0"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := b.evalAsync(`import('/room.js').then((r) => JSON.stringify((() => {` + tc.body + `})()))`)
			var g, w any
			if err := json.Unmarshal([]byte(got), &g); err != nil {
				t.Fatalf("gave %s: %v", got, err)
			}
			if err := json.Unmarshal([]byte(tc.want), &w); err != nil {
				t.Fatalf("bad want %s: %v", tc.want, err)
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// Room is the client's model of one room: its messages in stream-ID order,
// the sends still waiting for their ack, and what is known about it
// (online users, typers, unread count, our role). It holds no DOM logic;
// the chat controller renders from it. A message object may carry its
// cached DOM elements: `el` in the room's list, `tel` in the thread panel.
//
// Edits, deletions and reactions are events of the room's stream. Each is
// an assignment (a text, "deleted", one user's reaction on or off), so
// applying the events that follow a message's state in stream order always
// ends in its current state, even when some of them are already part of it.
// An event for a message the client does not hold yet (its history page is
// still on its way) is kept until the message arrives and then applied.

import { compareIds, maxId, mentionsMe } from './util.js';

/** Events kept for messages not held yet, over all of a room's messages. */
const MAX_LOGGED_EVENTS = 5000;

/**
 * @typedef {object} Msg
 * @property {string|null} id     stream ID; null while pending
 * @property {string} user
 * @property {string} text
 * @property {number} ts          Unix ms (local clock while pending)
 * @property {string} [clientId]  set for our own sends
 * @property {string} [replyTo]   the thread root this message answers
 * @property {number} replyCount  replies to this message
 * @property {number} [editedTs]  time of the last edit
 * @property {boolean} deleted
 * @property {Map<string, string[]>} reactions  emoji -> users, in the order they came
 * @property {boolean} pending    sent, not yet acked
 * @property {boolean} failed     the server refused it
 * @property {boolean} [retryable] the refusal was temporary (rate limit, Redis down)
 * @property {boolean} serverTs   ts came from the server
 * @property {HTMLElement} [el]
 * @property {HTMLElement} [tel]
 */

/** The reactions of a wire message ({"👍":["alice"]}) as a Map. */
function reactionsOf(m) {
  const out = new Map();
  if (m.reactions && typeof m.reactions === 'object') {
    for (const [emoji, users] of Object.entries(m.reactions)) {
      if (Array.isArray(users) && users.length) out.set(emoji, [...users]);
    }
  }
  return out;
}

/** Copies a wire message's stored state (history pages carry the current one) onto msg. */
function takeState(msg, m) {
  msg.text = m.deleted ? '' : String(m.text ?? '');
  msg.ts = m.ts;
  msg.serverTs = true;
  msg.mentions = m.deleted ? undefined : m.mentions;
  msg.replyTo = m.reply_to || msg.replyTo || undefined;
  msg.replyCount = Number(m.reply_count) || msg.replyCount || 0;
  msg.editedTs = m.edited_ts || msg.editedTs || undefined;
  msg.deleted = Boolean(m.deleted) || Boolean(msg.deleted);
  if (m.reactions !== undefined || !msg.reactions) msg.reactions = reactionsOf(m);
  if (msg.deleted) msg.reactions = new Map();
}

/**
 * Applies one edit, delete or reaction frame to a message. Returns whether
 * anything shown changed.
 */
export function applyEvent(msg, f) {
  switch (f.type) {
    case 'edit':
      // The server refuses to edit a deleted message, so an edit that
      // comes after a deletion is an old one replayed: it changes nothing.
      if (msg.deleted) return false;
      msg.text = String(f.text ?? '');
      msg.editedTs = f.ts;
      msg.mentions = undefined; // found again in the new text
      return true;
    case 'delete':
      if (msg.deleted) return false;
      msg.deleted = true;
      msg.text = '';
      msg.mentions = undefined;
      msg.reactions = new Map();
      return true;
    case 'reaction': {
      if (msg.deleted || typeof f.emoji !== 'string' || !f.user) return false;
      const users = msg.reactions.get(f.emoji) || [];
      const has = users.includes(f.user);
      if (f.on === false) {
        if (!has) return false;
        const left = users.filter((u) => u !== f.user);
        if (left.length) msg.reactions.set(f.emoji, left);
        else msg.reactions.delete(f.emoji);
        return true;
      }
      if (has) return false;
      msg.reactions.set(f.emoji, [...users, f.user]);
      return true;
    }
    default:
      return false;
  }
}

export class Room {
  constructor(name, kind) {
    this.name = name;
    this.kind = kind; // "channel" | "private" | "direct"

    /** @type {Msg[]} stored messages, oldest first, each id once */
    this.confirmed = [];
    /** @type {Map<string, Msg>} */
    this.byId = new Map();
    /** @type {Msg[]} our sends without an ack yet, in send order */
    this.pending = [];
    /** @type {Msg[]} our thread replies without an ack yet (shown in the thread panel only) */
    this.replyPending = [];
    /**
     * @type {Map<string, Msg>} every message object held, in `confirmed` or
     * only in the thread panel, so that one message is one object
     */
    this.known = new Map();
    /** @type {Map<string, object[]>} events for messages not held yet, by target */
    this.eventLog = new Map();
    this.loggedEvents = 0;

    // Newest ID taken from the room's stream: the first history page
    // (fetched before the join) and message frames. It is the `since` of
    // every (re)join. Acks do not move it: an ack can overtake an older
    // message still on its way to us, and resuming after our own message
    // would skip that one.
    this.streamId = null;

    this.loaded = false; // the newest page has been fetched
    this.loading = null; // Promise while it is being fetched
    this.hasMore = true; // older history exists beyond the oldest shown
    this.loadingOlder = false;
    this.joined = false; // kept joined on the socket (and re-joined after reconnects)

    this.online = new Set();
    /** @type {Map<string, number>} typing user -> timer that clears it */
    this.typing = new Map();

    this.unread = 0;
    this.mentions = 0; // unread messages that name us (direct rooms: every unread one)
    this.topic = '';
    this.role = ''; // ours: "owner" | "moderator" | "member", or "" when not a member
    this.leaving = false; // we asked to leave: the room_removed that follows is no news
    this.serverLastId = null; // last_id from the latest GET /api/rooms
    this.listGen = 0; // the room-list generation that last confirmed this room exists
    this.readSent = null; // newest ID we reported with a read frame
    this.peerRead = null; // direct rooms: how far the other member has read
  }

  /** Newest stored message ID, or null. */
  newestId() {
    return this.confirmed.length ? this.confirmed[this.confirmed.length - 1].id : null;
  }

  /** Oldest stored message ID, or null: the `before` cursor of the next older page. */
  oldestId() {
    return this.confirmed.length ? this.confirmed[0].id : null;
  }

  /** Records that the stream delivered id, for the next `since`. */
  noteStream(id) {
    this.streamId = maxId(this.streamId, id);
  }

  /** Index at which a message with this id keeps `confirmed` sorted (binary search). */
  insertionIndex(id) {
    let lo = 0;
    let hi = this.confirmed.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareIds(this.confirmed[mid].id, id) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Whether we may delete others' messages and manage the room (as far as we know). */
  moderates() {
    return this.kind !== 'direct' && (this.role === 'owner' || this.role === 'moderator');
  }

  /**
   * The one object for a stored message: the one already held (its state
   * kept: it has seen every event since), our pending send with the same
   * client_id, or a new one, which then takes the events logged for it.
   * Returns {msg, fresh, wasPending, tsFilled}.
   */
  adopt(m, me) {
    let msg = this.known.get(m.id);
    if (msg) {
      // An acked send is shown with our local clock until its message
      // frame brings the server's time.
      const tsFilled = !msg.serverTs && typeof m.ts === 'number';
      if (tsFilled) {
        msg.ts = m.ts;
        msg.serverTs = true;
      }
      return { msg, fresh: false, wasPending: false, tsFilled };
    }
    msg = m.client_id && m.user === me ? this.takePending(m.client_id) : null;
    const wasPending = msg !== null;
    if (msg) {
      Object.assign(msg, { id: m.id, pending: false, failed: false });
    } else {
      msg = {
        id: m.id, user: m.user, clientId: m.client_id, pending: false, failed: false,
        replyCount: 0, deleted: false, reactions: new Map(),
      };
    }
    takeState(msg, m);
    this.register(msg);
    return { msg, fresh: true, wasPending, tsFilled: false };
  }

  /** Holds msg under its id and applies the events that came before it did. */
  register(msg) {
    this.known.set(msg.id, msg);
    const logged = this.eventLog.get(msg.id);
    if (!logged) return;
    this.eventLog.delete(msg.id);
    this.loggedEvents -= logged.length;
    for (const f of logged) applyEvent(msg, f);
  }

  /**
   * Applies an edit, delete or reaction frame. Returns the message when
   * it is held and changed, else null (an event for a message not held is
   * kept for when it comes).
   */
  applyEvent(f) {
    if (typeof f.target !== 'string') return null;
    const msg = this.known.get(f.target);
    if (msg) return applyEvent(msg, f) ? msg : null;
    let list = this.eventLog.get(f.target);
    if (!list) {
      list = [];
      this.eventLog.set(f.target, list);
    }
    list.push(f);
    this.loggedEvents++;
    while (this.loggedEvents > MAX_LOGGED_EVENTS) {
      // The oldest target first: its message is the least likely to come.
      const [target, old] = this.eventLog.entries().next().value;
      this.eventLog.delete(target);
      this.loggedEvents -= old.length;
    }
    return null;
  }

  /** A new reply came live: its root, if held, counts it. Returns the root or null. */
  countReply(msg) {
    if (!msg.replyTo) return null;
    const root = this.known.get(msg.replyTo);
    if (!root) return null;
    root.replyCount = (root.replyCount || 0) + 1;
    root.lastReplyTs = msg.ts;
    return root;
  }

  /** Whether a message is a reply whose root is in the room's list: it shows in its thread only. */
  inThread(msg) {
    return Boolean(msg.replyTo && this.byId.has(msg.replyTo));
  }

  /**
   * Adds a stored message (history page or message frame) to the room's
   * list. Our own pending send with the same client_id becomes this
   * message instead of a second copy. Returns:
   *   null                                 already shown, nothing changed
   *   {kind:'ts', msg}                     already shown; its server time was filled in
   *   {kind:'new', msg, index, wasPending, fresh} inserted at confirmed[index];
   *                                        fresh: no object held it before
   */
  addStored(m, me) {
    const res = this.adopt(m, me);
    const { msg } = res;
    if (this.byId.get(m.id) === msg) return res.tsFilled ? { kind: 'ts', msg } : null;
    const index = this.insertionIndex(m.id);
    this.confirmed.splice(index, 0, msg);
    this.byId.set(m.id, msg);
    return { kind: 'new', msg, index, wasPending: res.wasPending, fresh: res.fresh };
  }

  /**
   * Applies an ack to our pending send. Returns null when no send waits for
   * it (its message frame came first), {kind:'dropped', msg} when the id is
   * already held (the pending copy must go), or {kind:'new', msg, index}.
   */
  ack(clientId, id) {
    const msg = this.takePending(clientId);
    if (!msg) return null;
    if (this.known.has(id)) return { kind: 'dropped', msg };
    Object.assign(msg, { id, pending: false, failed: false });
    this.register(msg);
    const index = this.insertionIndex(id);
    this.confirmed.splice(index, 0, msg);
    this.byId.set(id, msg);
    return { kind: 'new', msg, index, wasPending: true };
  }

  /** Adds a send of ours that is waiting for its ack; replyTo makes it a thread reply. */
  addPending(text, me, clientId, replyTo) {
    const msg = {
      id: null, user: me, text, ts: Date.now(), clientId, replyTo: replyTo || undefined,
      replyCount: 0, deleted: false, reactions: new Map(),
      pending: true, failed: false, serverTs: false, sentOn: 0,
    };
    (replyTo ? this.replyPending : this.pending).push(msg);
    return msg;
  }

  /** Every send waiting for its ack, the room's and the threads'. */
  allPending() {
    return [...this.pending, ...this.replyPending];
  }

  findPending(clientId) {
    return this.allPending().find((p) => p.clientId === clientId) || null;
  }

  takePending(clientId) {
    for (const list of [this.pending, this.replyPending]) {
      const i = list.findIndex((p) => p.clientId === clientId);
      if (i >= 0) return list.splice(i, 1)[0];
    }
    return null;
  }

  /**
   * Drops stored messages up to and including id. For a room that is not
   * shown yet, whose messages only feed its unread count: the room list's
   * count already covers everything up to its last_id.
   */
  dropThrough(id) {
    if (!id || this.confirmed.length === 0) return;
    const n = this.insertionIndex(id) + (this.byId.has(id) ? 1 : 0);
    for (const m of this.confirmed.splice(0, n)) {
      this.byId.delete(m.id);
      this.known.delete(m.id);
    }
  }

  /**
   * Messages from others newer than id, and how many of them name me:
   * what a GET /api/rooms snapshot with last_id=id did not count yet.
   */
  countFromOthersAfter(id, me) {
    let n = 0;
    let mentions = 0;
    for (let i = this.confirmed.length - 1; i >= 0; i--) {
      const m = this.confirmed[i];
      if (id && compareIds(m.id, id) <= 0) break;
      if (m.user !== me) {
        n++;
        if (mentionsMe(m, me)) mentions++;
      }
    }
    return { unread: n, mentions };
  }

  /** The newest message of the list before confirmed[i] (i = length: the newest) that shows there, or null. */
  shownBefore(i) {
    for (let k = i - 1; k >= 0; k--) {
      if (!this.inThread(this.confirmed[k])) return this.confirmed[k];
    }
    return null;
  }

  /**
   * The message shown just before msg in the room's list: stored ones in
   * ID order (replies shown in their thread skipped), then our pending sends.
   */
  before(msg) {
    if (msg.id && this.byId.get(msg.id) === msg) return this.shownBefore(this.insertionIndex(msg.id));
    const j = this.pending.indexOf(msg);
    if (j > 0) return this.pending[j - 1];
    return this.shownBefore(this.confirmed.length);
  }

  /** The message shown just after msg, or null. */
  after(msg) {
    if (msg.id && this.byId.get(msg.id) === msg) {
      for (let k = this.insertionIndex(msg.id) + 1; k < this.confirmed.length; k++) {
        if (!this.inThread(this.confirmed[k])) return this.confirmed[k];
      }
      return this.pending[0] || null;
    }
    const j = this.pending.indexOf(msg);
    return j >= 0 ? this.pending[j + 1] || null : null;
  }

  /** Our newest message in the room's list that can still be edited (for the Up arrow). */
  lastOwnEditable(me) {
    for (let i = this.confirmed.length - 1; i >= 0; i--) {
      const m = this.confirmed[i];
      if (m.user === me && !m.deleted && !this.inThread(m)) return m;
    }
    return null;
  }

  /** Whether anything is shown: stored messages or sends of ours. */
  isEmpty() {
    return this.confirmed.length === 0 && this.pending.length === 0;
  }

  /**
   * Forgets stored history (after a join answered recovered:false, when
   * the server no longer holds what followed our position). Pending sends
   * stay; they are resent with their client_id and deduplicated.
   */
  resetHistory() {
    this.confirmed = [];
    this.byId.clear();
    this.known.clear();
    // Events logged since the join no longer follow on from anything held.
    this.eventLog.clear();
    this.loggedEvents = 0;
    this.loaded = false;
    this.hasMore = true;
  }

  /**
   * Forgets everything read from the stream, for a room the client
   * leaves to stay under the server's rooms-per-socket limit: joining it
   * again starts from the room list's last_id instead of replaying all
   * that was missed meanwhile.
   */
  forgetStream() {
    this.resetHistory();
    this.streamId = null;
    this.joined = false;
  }
}

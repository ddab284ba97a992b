// Room is the client's model of one room: its messages in stream-ID order,
// the sends still waiting for their ack, and what is known about it
// (online users, typers, unread count). It holds no DOM logic; the chat
// controller renders from it. A message object may carry its cached DOM
// element in `el`, created lazily when the room is first shown.

import { compareIds, maxId, mentionsMe } from './util.js';

/**
 * @typedef {object} Msg
 * @property {string|null} id     stream ID; null while pending
 * @property {string} user
 * @property {string} text
 * @property {number} ts          Unix ms (local clock while pending)
 * @property {string} [clientId]  set for our own sends
 * @property {boolean} pending    sent, not yet acked
 * @property {boolean} failed     the server refused it
 * @property {boolean} [retryable] the refusal was temporary (rate limit, Redis down)
 * @property {boolean} serverTs   ts came from the server
 * @property {HTMLElement} [el]
 */

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

  /**
   * Adds a stored message (history page or message frame). Our own pending
   * send with the same client_id becomes this message instead of a second
   * copy. Returns:
   *   null                                 already shown, nothing changed
   *   {kind:'ts', msg}                     already shown; its server time was filled in
   *   {kind:'new', msg, index, wasPending} inserted at confirmed[index]
   */
  addStored(m, me) {
    const existing = this.byId.get(m.id);
    if (existing) {
      // An acked send is shown with our local clock until its message
      // frame brings the server's time.
      if (!existing.serverTs && typeof m.ts === 'number') {
        existing.ts = m.ts;
        existing.serverTs = true;
        return { kind: 'ts', msg: existing };
      }
      return null;
    }
    let msg = null;
    if (m.client_id && m.user === me) msg = this.takePending(m.client_id);
    const wasPending = msg !== null;
    if (msg) {
      Object.assign(msg, { id: m.id, text: m.text, ts: m.ts, serverTs: true, pending: false, failed: false });
    } else {
      msg = {
        id: m.id, user: m.user, text: m.text, ts: m.ts, clientId: m.client_id, mentions: m.mentions,
        pending: false, failed: false, serverTs: true,
      };
    }
    const index = this.insertionIndex(m.id);
    this.confirmed.splice(index, 0, msg);
    this.byId.set(m.id, msg);
    return { kind: 'new', msg, index, wasPending };
  }

  /**
   * Applies an ack to our pending send. Returns null when no send waits for
   * it (its message frame came first), {kind:'dropped', msg} when the id is
   * already shown (the pending copy must go), or {kind:'new', msg, index}.
   */
  ack(clientId, id) {
    const msg = this.takePending(clientId);
    if (!msg) return null;
    if (this.byId.has(id)) return { kind: 'dropped', msg };
    Object.assign(msg, { id, pending: false, failed: false });
    const index = this.insertionIndex(id);
    this.confirmed.splice(index, 0, msg);
    this.byId.set(id, msg);
    return { kind: 'new', msg, index, wasPending: true };
  }

  /** Adds a send of ours that is waiting for its ack. */
  addPending(text, me, clientId) {
    const msg = {
      id: null, user: me, text, ts: Date.now(), clientId,
      pending: true, failed: false, serverTs: false, sentOn: 0,
    };
    this.pending.push(msg);
    return msg;
  }

  findPending(clientId) {
    return this.pending.find((p) => p.clientId === clientId) || null;
  }

  takePending(clientId) {
    const i = this.pending.findIndex((p) => p.clientId === clientId);
    if (i < 0) return null;
    return this.pending.splice(i, 1)[0];
  }

  /**
   * Drops stored messages up to and including id. For a room that is not
   * shown yet, whose messages only feed its unread count: the room list's
   * count already covers everything up to its last_id.
   */
  dropThrough(id) {
    if (!id || this.confirmed.length === 0) return;
    const n = this.insertionIndex(id) + (this.byId.has(id) ? 1 : 0);
    for (const m of this.confirmed.splice(0, n)) this.byId.delete(m.id);
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

  /** The message shown just before msg: stored ones in ID order, then our pending sends. */
  before(msg) {
    if (msg.id && this.byId.get(msg.id) === msg) {
      const i = this.insertionIndex(msg.id);
      return i > 0 ? this.confirmed[i - 1] : null;
    }
    const j = this.pending.indexOf(msg);
    if (j > 0) return this.pending[j - 1];
    return this.confirmed.length ? this.confirmed[this.confirmed.length - 1] : null;
  }

  /** The message shown just after msg, or null. */
  after(msg) {
    if (msg.id && this.byId.get(msg.id) === msg) {
      const i = this.insertionIndex(msg.id);
      return this.confirmed[i + 1] || this.pending[0] || null;
    }
    const j = this.pending.indexOf(msg);
    return j >= 0 ? this.pending[j + 1] || null : null;
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

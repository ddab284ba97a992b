// ThreadPanel shows one message of the open room and its replies
// (data-testid="thread", replies in "thread-messages"), with a composer
// that answers in the thread. At phone width it covers the screen.
//
// Its replies come from GET …/messages/{id}/replies, page after page, and
// then live: the room is joined, so every reply stored after the pages
// arrives as a message frame with reply_to, and is merged in by ID like
// the room's own list (a reply that came both ways shows once). Reply
// objects are the room's (Room.adopt), so edits, deletions and reactions
// reach them wherever they show.

import { compareIds } from './util.js';
import { h, messageEl, nearBottom, repliesText, scrollToBottom, setGrouped } from './view.js';

/** Pages of replies read at most when a thread opens (200 each). */
const MAX_PAGES = 50;

export class ThreadPanel {
  /**
   * @param {object} o
   * @param {ReturnType<import('./api.js').createApi>} o.api
   * @param {string} o.me
   * @param {Record<string, HTMLElement>} o.dom
   * @param {(msg: string) => void} o.showError
   * @param {(open: boolean) => void} o.onToggle  the panel opened or closed
   */
  constructor(o) {
    this.o = o;
    this.room = null;
    this.rootId = null;
    this.root = null;
    /** @type {import('./room.js').Msg[]} stored replies, oldest first */
    this.replies = [];
    this.ids = new Set();
    this.loading = null;
    this.complete = false; // every page was read
    this.gen = 0;
    this.edge = h('div', { class: 'thread-edge muted', role: 'status' });
  }

  isOpen(room, rootId) {
    return this.room !== null && (!room || this.room === room) && (!rootId || this.rootId === rootId);
  }

  /** Opens the thread of rootId in room (root: the message object, when it is at hand). */
  open(room, rootId, root = null) {
    const d = this.o.dom;
    if (this.isOpen(room, rootId)) {
      d.threadComposer.focus();
      return;
    }
    this.reset();
    this.room = room;
    this.rootId = rootId;
    this.root = root || room.known.get(rootId) || null;
    const gen = ++this.gen;
    d.thread.hidden = false;
    d.threadRoom.textContent = room.kind === 'direct' ? '' : `#${room.name}`;
    d.threadComposer.value = '';
    this.o.onToggle(true);
    this.loading = true; // until load() hands over its promise
    this.render();
    this.loading = this.load(gen);
  }

  close() {
    if (!this.room) return;
    this.reset();
    this.o.dom.thread.hidden = true;
    this.o.onToggle(false);
  }

  reset() {
    this.gen++;
    this.room = null;
    this.rootId = null;
    this.root = null;
    this.replies = [];
    this.ids.clear();
    this.loading = null;
    this.complete = false;
    this.o.dom.threadMessages.replaceChildren();
    this.o.dom.threadRoot.replaceChildren();
  }

  /** Reads every page of the thread, merging each reply by ID. */
  async load(gen) {
    const room = this.room;
    const rootId = this.rootId;
    let after = null;
    try {
      for (let page = 0; page < MAX_PAGES; page++) {
        const res = await this.o.api.replies(room.name, rootId, { after });
        if (gen !== this.gen) return;
        if (res.root && !this.root) this.root = room.adopt(res.root, this.o.me).msg;
        const msgs = res.messages || [];
        for (const m of msgs) this.add(room.adopt(m, this.o.me).msg);
        if (!res.has_more || msgs.length === 0) {
          this.complete = true;
          break;
        }
        after = msgs[msgs.length - 1].id;
      }
    } catch (e) {
      if (gen !== this.gen || e.status === 401) return;
      this.o.showError(e.status === 404 ? 'That message is gone.' : e.message);
      this.edge.textContent = 'Could not load the thread.';
      return;
    } finally {
      if (gen === this.gen) this.loading = null;
    }
    // All of it is here: its count is what the panel holds.
    if (this.root && this.complete) this.root.replyCount = this.replies.length;
    this.render();
    scrollToBottom(this.o.dom.threadScroll);
  }

  /** Adds a stored reply (a page, a live frame, our acked send). Returns whether it is new here. */
  add(msg) {
    if (!this.room || msg.replyTo !== this.rootId || !msg.id || this.ids.has(msg.id)) return false;
    this.ids.add(msg.id);
    const list = this.o.dom.threadMessages;
    const scroller = this.o.dom.threadScroll;
    const stick = nearBottom(scroller);
    // Replies come in order, except a page that lands after live ones.
    let i = this.replies.length;
    while (i > 0 && compareIds(this.replies[i - 1].id, msg.id) > 0) i--;
    this.replies.splice(i, 0, msg);
    const el = messageEl(msg, this.o.me, 'thread');
    const next = this.replies[i + 1];
    list.insertBefore(el, next ? next.tel : this.firstPendingEl());
    this.regroup();
    if (!this.loading) {
      this.renderCount();
      if (stick) scrollToBottom(scroller);
    }
    return true;
  }

  firstPendingEl() {
    const p = this.pendingHere()[0];
    return p && p.tel && p.tel.parentNode === this.o.dom.threadMessages ? p.tel : null;
  }

  /** Our replies to this thread waiting for their ack. */
  pendingHere() {
    return this.room ? this.room.replyPending.filter((p) => p.replyTo === this.rootId) : [];
  }

  /** Shows one of our replies, just sent, at the end. */
  addPending(msg) {
    this.o.dom.threadMessages.append(messageEl(msg, this.o.me, 'thread'));
    this.regroup();
    scrollToBottom(this.o.dom.threadScroll);
  }

  /** Removes a pending reply's element (it turned into a stored one, or went back to the composer). */
  dropPending(msg) {
    if (msg.tel && !this.ids.has(msg.id)) msg.tel.remove();
    this.regroup();
  }

  regroup() {
    let prev = null; // the root stands apart, above the replies
    for (const m of [...this.replies, ...this.pendingHere()]) {
      setGrouped(m, prev, 'tel');
      prev = m;
    }
  }

  render() {
    const d = this.o.dom;
    const rootEl = this.root ? messageEl(this.root, this.o.me, 'thread') : null;
    d.threadRoot.replaceChildren(...(rootEl ? [rootEl] : []));
    const els = [...this.replies, ...this.pendingHere()].map((m) => messageEl(m, this.o.me, 'thread'));
    d.threadMessages.replaceChildren(...els);
    this.regroup();
    this.renderCount();
  }

  renderCount() {
    const d = this.o.dom;
    const n = this.replies.length;
    if (this.loading) this.edge.textContent = 'Loading replies…';
    else if (n === 0) this.edge.textContent = 'No replies yet. Start the thread below.';
    else this.edge.textContent = '';
    d.threadCount.replaceChildren(n > 0 ? h('span', {}, repliesText(n)) : this.edge);
    if (n > 0 && this.edge.textContent) d.threadCount.append(this.edge);
    d.threadComposer.placeholder = this.root && this.root.deleted ? 'Reply…' : `Reply to ${this.root ? this.root.user : 'the thread'}…`;
  }
}

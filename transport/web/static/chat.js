// Chat is the signed-in part of the client: the room list, the open room,
// the socket, and the glue between them. One Chat lives per login; app.js
// creates it after login and stops it at logout or when the session ends.
//
// How messages stay complete, ordered and unique:
//
//   - Opening a room for the first time fetches its newest page over REST,
//     and only then joins it with `since` = the newest ID of that page (or
//     "0-0" for an empty room). The server replays everything after it, so
//     nothing sent between the fetch and the join is lost.
//   - Every joined room stays joined. After a reconnect each is re-joined
//     with `since` = the newest ID its stream has delivered (Room.streamId).
//   - Messages are kept per room in stream-ID order with a Set of IDs
//     (Room.byId); a message whose ID is already known is dropped, so
//     replays and races between history and live frames never double up.
//   - Our sends are shown at once as pending, keyed by client_id. The ack or
//     our own message frame, whichever comes first, turns the pending copy
//     into the stored message; the other then finds nothing to do.
//     Unacked sends are resent after a reconnect with the same client_id,
//     which the server deduplicates.

import { Connection, socketURL } from './connection.js';
import { Room } from './room.js';
import { compareIds, dmPeer, newClientId, roomLabel } from './util.js';
import {
  avatar, h, markSeen, messageEl, nearBottom, scrollToBottom, typingText, updateMessageEl,
} from './view.js';

const PAGE_SIZE = 50;
const TYPING_SEND_EVERY_MS = 2000; // at most one typing frame per 2 s
const TYPING_SHOW_MS = 3000; // how long "x is typing…" stays without a new frame
const ROOMS_POLL_MS = 20_000; // picks up new channels and DMs others start
const LOAD_OLDER_WITHIN_PX = 150; // start loading older history this close to the top
// Error codes after which the same send may succeed later (PROTOCOL.md).
const RETRYABLE = new Set(['rate_limited', 'unavailable', 'internal']);

export class Chat {
  /**
   * @param {object} o
   * @param {ReturnType<import('./api.js').createApi>} o.api
   * @param {string} o.me                   our username (lowercase)
   * @param {() => string} o.token          the current token, for the socket URL
   * @param {Record<string, HTMLElement>} o.dom
   * @param {(msg: string) => void} o.showError
   * @param {(msg: string) => void} o.onSessionEnd  token expired or revoked
   */
  constructor(o) {
    this.api = o.api;
    this.me = o.me;
    this.dom = o.dom;
    this.showError = o.showError;
    this.onSessionEnd = o.onSessionEnd;

    /** @type {Map<string, Room>} */
    this.rooms = new Map();
    /** @type {Room|null} */
    this.open = null;
    this.stopped = false;

    // Replies echo the ref of the frame they answer; refs maps it to what
    // was asked, so an error can be pinned on the send or join it concerns.
    this.refs = new Map();
    this.nextRef = 1;

    this.typingSentAt = 0;
    this.refreshing = null;
    this.refreshQueued = false;
    this.pollTimer = 0;
    this.events = new AbortController();
    this.phone = window.matchMedia('(max-width: 480px)');
    this.lastRoomKey = `chat.lastRoom.${this.me}`;

    // The first child of the message list: "Loading…" or "This is the
    // beginning of #room". It has a fixed height, so changing its text
    // never moves the messages under the reader's eyes.
    this.edge = h('div', { class: 'history-edge', role: 'status' });
    this.seenMsg = null; // our newest message the DM peer has read

    this.conn = new Connection({
      url: () => socketURL(o.token()),
      onOpen: () => this.onConnOpen(),
      onFrame: (f) => this.onFrame(f),
      onDown: () => this.onConnDown(),
      onStatus: (s) => this.setStatus(s),
      onPolicyClose: () => this.onSessionEnd('Your session has expired or was ended. Please log in again.'),
      onRefused: () => {
        // A 401 here makes the API client end the session.
        this.api.me().catch(() => {});
      },
    });
  }

  start() {
    this.bind();
    this.dom.meName.textContent = this.me;
    this.dom.meAvatar.replaceChildren(avatar(this.me));
    this.renderOpenRoom();
    this.renderRoomList();
    this.conn.start();
    this.pollTimer = setInterval(() => {
      if (!document.hidden) this.refreshRooms({ quiet: true });
    }, ROOMS_POLL_MS);
    this.refreshRooms().then(() => {
      // A reload in the same tab returns to the room that was open.
      let last = null;
      try {
        last = sessionStorage.getItem(this.lastRoomKey);
      } catch {
        last = null;
      }
      if (last && this.rooms.has(last) && !this.open && !this.stopped) this.openRoom(last);
    });
  }

  /** Stops everything (logout or session end) and empties the chat view. */
  stop() {
    this.stopped = true;
    this.conn.stop();
    this.events.abort();
    clearInterval(this.pollTimer);
    for (const room of this.rooms.values()) {
      for (const t of room.typing.values()) clearTimeout(t);
    }
    this.rooms.clear();
    this.open = null;
    const d = this.dom;
    for (const el of [d.channelList, d.dmList, d.messages, d.onlineList]) el.replaceChildren();
    d.typing.textContent = '';
    d.composer.value = '';
    d.status.hidden = true;
    d.chatView.classList.remove('sidebar-open', 'offline');
    document.title = 'Redstream';
  }

  // ---- DOM events -------------------------------------------------------

  bind() {
    const d = this.dom;
    const on = (el, type, fn, extra = {}) => el.addEventListener(type, fn, { signal: this.events.signal, ...extra });

    const roomClick = (ev) => {
      const btn = ev.target.closest('button[data-room]');
      if (btn) this.openRoom(btn.getAttribute('data-room'));
    };
    on(d.channelList, 'click', roomClick);
    on(d.dmList, 'click', roomClick);

    on(d.newRoomForm, 'submit', (ev) => {
      ev.preventDefault();
      this.createRoom(d.newRoomInput.value.trim());
    });
    on(d.dmForm, 'submit', (ev) => {
      ev.preventDefault();
      this.startDirect(d.dmInput.value.trim());
    });

    on(d.composerForm, 'submit', (ev) => {
      ev.preventDefault();
      this.sendComposer();
      d.composer.focus();
    });
    on(d.composer, 'keydown', (ev) => {
      // Enter sends, Shift+Enter is a newline; never while an IME is composing.
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
        ev.preventDefault();
        this.sendComposer();
      }
    });
    on(d.composer, 'keypress', (ev) => {
      // Browsers skip keypress after a cancelled keydown, but synthetic
      // input (DevTools protocol "char" events, some IMEs) delivers it
      // anyway and would leave a newline in the emptied composer.
      if (ev.key === 'Enter' && !ev.shiftKey) ev.preventDefault();
    });
    on(d.composer, 'input', () => {
      this.autosize();
      this.noteTyping();
    });

    on(d.messages, 'scroll', () => {
      if (this.open && d.messages.scrollTop < LOAD_OLDER_WITHIN_PX) this.loadOlder(this.open);
    }, { passive: true });
    on(d.messages, 'click', (ev) => {
      const el = ev.target.closest('.msg.failed');
      if (el) this.retry(el.getAttribute('data-client-id'));
    });

    on(d.menuButton, 'click', () => this.toggleSidebar());
    on(d.scrim, 'click', () => this.toggleSidebar(false));
    on(document, 'keydown', (ev) => {
      if (ev.key === 'Escape') this.toggleSidebar(false);
    });
    on(document, 'visibilitychange', () => {
      if (document.hidden) return;
      if (this.open) this.markRead(this.open);
      this.refreshRooms({ quiet: true });
    });
  }

  toggleSidebar(show) {
    const d = this.dom;
    const v = show ?? !d.chatView.classList.contains('sidebar-open');
    d.chatView.classList.toggle('sidebar-open', v);
    d.menuButton.setAttribute('aria-expanded', String(v));
  }

  autosize() {
    const c = this.dom.composer;
    // CSSOM, not an inline style attribute: allowed by the CSP.
    c.style.height = 'auto';
    // A hidden composer measures 0; leave it at its natural one-row height.
    if (c.scrollHeight > 0) c.style.height = `${Math.min(c.scrollHeight + 2, 200)}px`;
  }

  setStatus(s) {
    const st = this.dom.status;
    st.textContent = s === 'reconnecting' ? 'Reconnecting…' : s === 'connected' ? 'Connected' : 'Connecting…';
    // The first connect is usually instant; only trouble is announced.
    st.hidden = s !== 'reconnecting';
    this.dom.chatView.classList.toggle('offline', s !== 'connected');
  }

  // ---- rooms ------------------------------------------------------------

  room(name, kind) {
    let room = this.rooms.get(name);
    if (!room) {
      room = new Room(name, kind || (name.startsWith('dm:') ? 'direct' : 'channel'));
      this.rooms.set(name, room);
    }
    return room;
  }

  label(room) {
    return roomLabel(room, this.me);
  }

  /**
   * Reloads the room list and its unread counts. The server's count covers
   * messages up to its last_id; messages we received live after that are
   * added on top, so a reply that crossed a live message neither loses nor
   * double-counts it.
   */
  refreshRooms({ quiet = false } = {}) {
    if (this.refreshing) {
      // The answer in flight may predate what prompted this call (a room
      // switch): fetch once more when it lands.
      this.refreshQueued = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      try {
        const data = await this.api.rooms();
        if (this.stopped) return;
        for (const r of data.rooms || []) {
          const room = this.room(r.name, r.kind);
          room.kind = r.kind;
          room.serverLastId = r.last_id;
          // A read frame we sent may not have reached the server when it
          // counted; if we reported reading past last_id, nothing before it is unread.
          const readPast = room.readSent && r.last_id && compareIds(room.readSent, r.last_id) >= 0;
          const unread = readPast
            ? room.countFromOthersAfter(room.readSent, this.me)
            : (r.unread || 0) + room.countFromOthersAfter(r.last_id, this.me);
          room.unread = room === this.open ? 0 : unread;
        }
        this.renderRoomList();
      } catch (e) {
        if (!quiet && !this.stopped && e.status !== 401) this.showError(e.message);
      } finally {
        this.refreshing = null;
      }
      if (this.refreshQueued && !this.stopped) {
        this.refreshQueued = false;
        this.refreshRooms({ quiet: true });
      }
    })();
    return this.refreshing;
  }

  async createRoom(name) {
    const d = this.dom;
    d.createRoomButton.disabled = true;
    try {
      const r = await this.api.createRoom(name);
      if (this.stopped) return;
      this.room(r.name, r.kind || 'channel');
      d.newRoomInput.value = '';
      this.renderRoomList();
      this.openRoom(r.name);
    } catch (e) {
      if (e.status !== 401) this.showError(e.message);
    } finally {
      d.createRoomButton.disabled = false;
    }
  }

  async startDirect(user) {
    const d = this.dom;
    d.startDirectButton.disabled = true;
    try {
      const r = await this.api.openDirect(user);
      if (this.stopped) return;
      this.room(r.name, 'direct');
      d.dmInput.value = '';
      this.renderRoomList();
      this.openRoom(r.name);
    } catch (e) {
      if (e.status !== 401) this.showError(e.message);
    } finally {
      d.startDirectButton.disabled = false;
    }
  }

  openRoom(name) {
    const room = this.rooms.get(name);
    if (!room) return;
    this.toggleSidebar(false);
    if (this.open === room) return;

    if (this.open) this.open.draft = this.dom.composer.value;
    this.open = room;
    this.typingSentAt = 0;
    room.unread = 0;
    try {
      sessionStorage.setItem(this.lastRoomKey, name);
    } catch {
      // storage disabled: nothing to remember
    }
    this.dom.composer.value = room.draft || '';
    this.renderRoomList();
    this.renderOpenRoom();
    this.autosize();
    if (!this.phone.matches) this.dom.composer.focus();
    this.refreshRooms({ quiet: true });

    if (!room.loaded) {
      this.loadInitial(room);
      return;
    }
    if (!room.joined) {
      room.joined = true;
      this.sendJoin(room);
    }
    this.markRead(room);
    this.fillViewport(room);
  }

  /** Fetches the newest page of a room, then joins it from that page on. */
  loadInitial(room) {
    if (room.loading) return room.loading;
    room.loading = (async () => {
      try {
        const page = await this.api.history(room.name, { limit: PAGE_SIZE });
        if (this.stopped) return;
        const msgs = page.messages || [];
        for (const m of msgs) this.storeMessage(room, m, false);
        if (msgs.length) room.noteStream(msgs[msgs.length - 1].id);
        room.hasMore = Boolean(page.has_more) && msgs.length > 0;
        room.loaded = true;
        if (!room.joined) {
          room.joined = true;
          this.sendJoin(room);
        }
        if (room === this.open) {
          this.updateEdge();
          this.updateSeen(room);
          scrollToBottom(this.dom.messages);
          this.markRead(room);
          this.fillViewport(room);
        }
      } catch (e) {
        if (this.stopped || e.status === 401) return;
        this.showError(e.message);
        if (room === this.open) this.edge.textContent = 'Could not load messages.';
      } finally {
        room.loading = null;
      }
    })();
    return room.loading;
  }

  /**
   * Loads the page before the oldest message shown and keeps the visible
   * messages where they are: the list grows above them by exactly the
   * height that is added to scrollTop.
   */
  async loadOlder(room) {
    if (!room.loaded || !room.hasMore || room.loadingOlder) return;
    const before = room.oldestId();
    if (!before) {
      room.hasMore = false;
      this.updateEdge();
      return;
    }
    room.loadingOlder = true;
    this.updateEdge();
    try {
      const page = await this.api.history(room.name, { before, limit: PAGE_SIZE });
      if (this.stopped) return;
      const msgs = page.messages || [];
      const list = this.dom.messages;
      const shown = room === this.open;
      const oldHeight = list.scrollHeight;
      const oldTop = list.scrollTop;
      for (const m of msgs) this.storeMessage(room, m, false);
      room.hasMore = Boolean(page.has_more) && msgs.length > 0;
      if (shown) list.scrollTop = oldTop + (list.scrollHeight - oldHeight);
    } catch (e) {
      if (!this.stopped && e.status !== 401) this.showError(e.message);
      room.loadingOlder = false;
      this.updateEdge();
      return;
    }
    room.loadingOlder = false;
    this.updateEdge();
    this.fillViewport(room);
  }

  /** Keeps loading older pages while the open room does not fill its pane or the reader sits at the top. */
  fillViewport(room) {
    if (room !== this.open || !room.loaded || !room.hasMore || room.loadingOlder) return;
    const list = this.dom.messages;
    if (list.scrollHeight <= list.clientHeight + LOAD_OLDER_WITHIN_PX || list.scrollTop < LOAD_OLDER_WITHIN_PX) {
      this.loadOlder(room);
    }
  }

  // ---- messages ---------------------------------------------------------

  /**
   * Stores a message from a history page (live=false) or a message frame
   * (live=true) and, if its room is open, puts its element in place. A live
   * message keeps the list pinned to the bottom if it was there.
   */
  storeMessage(room, m, live) {
    const shown = room === this.open;
    const list = this.dom.messages;
    const stick = shown && live && nearBottom(list);
    const res = room.addStored(m, this.me);
    if (!res) return null;
    updateMessageEl(res.msg);
    if (res.kind === 'new' && shown) {
      this.place(room, res.msg, res.index);
      if (stick) scrollToBottom(list);
      this.updateEdge();
    }
    return res;
  }

  /** Inserts the element of confirmed[index] before its successor (or before the pending sends). */
  place(room, msg, index) {
    const list = this.dom.messages;
    const el = messageEl(msg, this.me);
    const nextMsg = room.confirmed[index + 1] || room.pending[0] || null;
    const next = nextMsg ? messageEl(nextMsg, this.me) : null;
    list.insertBefore(el, next && next.parentNode === list ? next : null);
  }

  sendComposer() {
    const room = this.open;
    const c = this.dom.composer;
    if (!room || !c.value.trim()) return;
    const msg = room.addPending(c.value, this.me, newClientId());
    const list = this.dom.messages;
    list.append(messageEl(msg, this.me));
    scrollToBottom(list);
    c.value = '';
    room.draft = '';
    this.autosize();
    this.typingSentAt = 0;
    this.sendPending(room, msg);
  }

  sendPending(room, msg) {
    if (msg.failed) return;
    const ref = this.newRef({ kind: 'send', room: room.name, clientId: msg.clientId });
    const sent = this.conn.send({
      type: 'send', room: room.name, text: msg.text, client_id: msg.clientId, ref,
    });
    if (sent) msg.sentOn = this.conn.generation;
    else this.refs.delete(ref); // goes out from onConnOpen
  }

  /**
   * Acts on a click on a send the server refused: a temporary refusal
   * (rate limit, Redis unavailable) is resent with the same client_id; a
   * final one (too large, invalid, forbidden) goes back into the composer
   * to be edited.
   */
  retry(clientId) {
    const room = this.open;
    const msg = room && clientId ? room.findPending(clientId) : null;
    if (!msg || !msg.failed) return;
    if (!msg.retryable) {
      room.takePending(clientId);
      if (msg.el) msg.el.remove();
      this.dom.composer.value = msg.text;
      this.autosize();
      this.dom.composer.focus();
      return;
    }
    msg.failed = false;
    updateMessageEl(msg);
    this.sendPending(room, msg);
  }

  noteTyping() {
    const room = this.open;
    if (!room || !this.dom.composer.value) return;
    const now = Date.now();
    if (now - this.typingSentAt < TYPING_SEND_EVERY_MS) return;
    if (this.conn.send({ type: 'typing', room: room.name })) this.typingSentAt = now;
  }

  /** Reports the newest message of the open room as read, once per new message, while the tab is visible. */
  markRead(room) {
    if (room !== this.open || !room.loaded || document.hidden) return;
    const id = room.newestId();
    if (!id || (room.readSent && compareIds(id, room.readSent) <= 0)) return;
    if (this.conn.send({ type: 'read', room: room.name, id })) room.readSent = id;
  }

  // ---- socket -----------------------------------------------------------

  newRef(info) {
    const ref = this.nextRef++;
    this.refs.set(ref, info);
    return ref;
  }

  sendJoin(room) {
    const ref = this.newRef({ kind: 'join', room: room.name });
    // "0-0": the room was empty when we fetched it; replay whatever came since.
    const frame = { type: 'join', room: room.name, since: room.streamId || '0-0', ref };
    if (!this.conn.send(frame)) this.refs.delete(ref); // goes out from onConnOpen
  }

  onConnOpen() {
    this.refs.clear();
    for (const room of this.rooms.values()) {
      if (room.joined) this.sendJoin(room);
    }
    // Sends that never went out, or whose ack the old socket took with it.
    const gen = this.conn.generation;
    for (const room of this.rooms.values()) {
      for (const msg of [...room.pending]) {
        if (msg.sentOn !== gen) this.sendPending(room, msg);
      }
    }
    if (this.open) {
      this.open.readSent = null;
      this.markRead(this.open);
    }
    if (gen > 1) this.refreshRooms({ quiet: true });
  }

  onConnDown() {
    this.refs.clear();
    // Typing frames stop with the socket; don't leave stale indicators.
    for (const room of this.rooms.values()) {
      for (const t of room.typing.values()) clearTimeout(t);
      room.typing.clear();
    }
    this.renderTyping();
  }

  onFrame(f) {
    if (this.stopped) return;
    const info = f.ref !== undefined && f.ref !== null ? this.refs.get(f.ref) : undefined;
    if (info) this.refs.delete(f.ref);
    switch (f.type) {
      case 'message': return this.onMessage(f);
      case 'ack': return this.onAck(f, info);
      case 'joined': return this.onJoined(f);
      case 'presence': return this.onPresence(f);
      case 'typing': return this.onTyping(f);
      case 'read': return this.onPeerRead(f);
      case 'error': return this.onError(f, info);
      default: return undefined; // pong, left, authed: nothing to do
    }
  }

  onMessage(f) {
    const room = this.rooms.get(f.room);
    if (!room || typeof f.id !== 'string') return;
    room.noteStream(f.id);
    this.stopTyping(room, f.user);
    const res = this.storeMessage(room, f, true);
    if (!res || res.kind !== 'new') return;
    if (room === this.open) {
      this.markRead(room);
      if (f.user === this.me) this.updateSeen(room);
      return;
    }
    if (f.user === this.me) {
      room.unread = 0; // the server moves our read position to our own message
    } else if (!room.serverLastId || compareIds(f.id, room.serverLastId) > 0) {
      room.unread++;
    }
    this.renderRoomList();
  }

  onAck(f, info) {
    const room = this.rooms.get(f.room);
    const clientId = f.client_id || (info && info.clientId);
    if (!room || !clientId || typeof f.id !== 'string') return;
    const shown = room === this.open;
    const list = this.dom.messages;
    const stick = shown && nearBottom(list);
    const res = room.ack(clientId, f.id);
    if (!res) return;
    if (res.kind === 'dropped') {
      if (res.msg.el) res.msg.el.remove();
      return;
    }
    updateMessageEl(res.msg);
    if (shown) {
      this.place(room, res.msg, res.index);
      if (stick) scrollToBottom(list);
      this.markRead(room);
    }
  }

  onJoined(f) {
    const room = this.rooms.get(f.room);
    if (!room) return;
    room.online = new Set(f.online || []);
    if (f.recovered === false) {
      // Retention dropped messages after our position: what we show has a
      // hole. Start over from the newest page; the replay that follows this
      // frame and the live stream merge into it by ID.
      room.resetHistory();
      if (room === this.open) this.renderMessages(room);
      this.loadInitial(room);
    }
    if (room === this.open) this.renderOnline();
  }

  onPresence(f) {
    const room = this.rooms.get(f.room);
    if (!room || !f.user) return;
    if (f.state === 'online') room.online.add(f.user);
    else {
      room.online.delete(f.user);
      this.stopTyping(room, f.user);
    }
    if (room === this.open) this.renderOnline();
  }

  onTyping(f) {
    const room = this.rooms.get(f.room);
    if (!room || !f.user || f.user === this.me) return;
    clearTimeout(room.typing.get(f.user));
    room.typing.set(f.user, setTimeout(() => this.stopTyping(room, f.user), TYPING_SHOW_MS));
    if (room === this.open) this.renderTyping();
  }

  stopTyping(room, user) {
    if (!room.typing.has(user)) return;
    clearTimeout(room.typing.get(user));
    room.typing.delete(user);
    if (room === this.open) this.renderTyping();
  }

  onPeerRead(f) {
    const room = this.rooms.get(f.room);
    if (!room || !f.id || f.user === this.me) return;
    if (!room.peerRead || compareIds(f.id, room.peerRead) > 0) room.peerRead = f.id;
    if (room === this.open) this.updateSeen(room);
  }

  onError(f, info) {
    if (info && info.kind === 'send') {
      const room = this.rooms.get(info.room);
      const msg = room && room.findPending(info.clientId);
      if (msg) {
        msg.failed = true;
        msg.retryable = RETRYABLE.has(f.code);
        updateMessageEl(msg);
      }
    } else if (info && info.kind === 'join') {
      const room = this.rooms.get(info.room);
      if (room) room.joined = false; // tried again the next time it is opened
    }
    this.showError(f.message || f.code || 'The server refused a request.');
  }

  // ---- rendering --------------------------------------------------------

  renderRoomList() {
    const all = [...this.rooms.values()];
    const byLabel = (a, b) => this.label(a).localeCompare(this.label(b));
    this.syncList(this.dom.channelList, all.filter((r) => r.kind !== 'direct').sort(byLabel));
    const dms = all.filter((r) => r.kind === 'direct').sort(byLabel);
    this.syncList(this.dom.dmList, dms);
    this.dom.dmEmpty.hidden = dms.length > 0;

    let total = 0;
    for (const r of all) if (r !== this.open) total += r.unread;
    document.title = total > 0 ? `(${total}) Redstream` : 'Redstream';
  }

  /** Makes ul hold exactly the items of rooms, in order, reusing existing elements. */
  syncList(ul, rooms) {
    rooms.forEach((room, i) => {
      const li = this.roomItem(room);
      if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] || null);
      this.updateRoomItem(room);
    });
    while (ul.children.length > rooms.length) ul.lastElementChild.remove();
  }

  roomItem(room) {
    if (room.ui) return room.ui.li;
    const label = this.label(room);
    const btn = h('button', {
      type: 'button',
      class: `room ${room.kind === 'direct' ? 'direct' : 'channel'}`,
      'data-testid': `room-${room.name}`,
      'data-room': room.name,
    },
    room.kind === 'direct' ? avatar(label) : h('span', { class: 'room-hash', 'aria-hidden': 'true' }),
    h('span', { class: 'room-name' }, label));
    const li = h('li', {}, btn);
    room.ui = { li, btn, badge: null };
    return li;
  }

  updateRoomItem(room) {
    const ui = room.ui;
    const active = room === this.open;
    ui.btn.classList.toggle('active', active);
    if (active) ui.btn.setAttribute('aria-current', 'page');
    else ui.btn.removeAttribute('aria-current');
    ui.btn.classList.toggle('has-unread', room.unread > 0);
    if (room.unread > 0) {
      if (!ui.badge) {
        ui.badge = h('span', { class: 'badge', 'data-testid': 'unread' });
        ui.btn.append(ui.badge);
      }
      ui.badge.textContent = String(room.unread);
      ui.badge.setAttribute('aria-label', `${room.unread} unread`);
    } else if (ui.badge) {
      ui.badge.remove();
      ui.badge = null;
    }
  }

  /** Header, messages, online list and typing line of the open room (or the welcome state). */
  renderOpenRoom() {
    const d = this.dom;
    const room = this.open;
    d.chatView.classList.toggle('no-room', !room);
    d.composerForm.hidden = !room;
    if (!room) {
      d.roomTitle.textContent = 'Welcome';
      d.roomTitle.className = 'room-title';
      d.roomSub.textContent = 'Pick a channel or start a direct message.';
      d.messages.replaceChildren();
      d.typing.textContent = '';
      this.renderOnline();
      return;
    }
    const label = this.label(room);
    d.roomTitle.textContent = label;
    d.roomTitle.className = `room-title ${room.kind === 'direct' ? 'direct' : 'channel'}`;
    d.composer.placeholder = room.kind === 'direct' ? `Message ${label}` : `Message #${label}`;
    d.composer.setAttribute('aria-label', d.composer.placeholder);
    this.renderMessages(room);
    this.renderOnline();
    this.renderTyping();
  }

  renderMessages(room) {
    const frag = document.createDocumentFragment();
    frag.append(this.edge);
    for (const m of room.confirmed) frag.append(messageEl(m, this.me));
    for (const m of room.pending) frag.append(messageEl(m, this.me));
    this.dom.messages.replaceChildren(frag);
    this.seenMsg = null;
    this.updateEdge();
    this.updateSeen(room);
    scrollToBottom(this.dom.messages);
  }

  updateEdge() {
    const room = this.open;
    let text = '';
    if (room) {
      const label = room.kind === 'direct' ? `your conversation with ${this.label(room)}` : `#${room.name}`;
      if (!room.loaded) text = 'Loading messages…';
      else if (room.loadingOlder) text = 'Loading older messages…';
      else if (!room.hasMore && room.confirmed.length === 0) text = 'No messages yet. Say hello!';
      else if (!room.hasMore) text = `This is the beginning of ${label}.`;
    }
    this.edge.textContent = text;
    this.edge.classList.toggle('start', Boolean(room && room.loaded && !room.hasMore));
  }

  /** Direct rooms: marks our newest message that the other member has read as "Seen". */
  updateSeen(room) {
    if (room !== this.open || room.kind !== 'direct') return;
    let target = null;
    if (room.peerRead) {
      for (let i = room.confirmed.length - 1; i >= 0; i--) {
        const m = room.confirmed[i];
        if (m.user === this.me && compareIds(m.id, room.peerRead) <= 0) {
          target = m;
          break;
        }
      }
    }
    if (target === this.seenMsg) return;
    if (this.seenMsg) markSeen(this.seenMsg, false);
    if (target) markSeen(target, true);
    this.seenMsg = target;
  }

  renderOnline() {
    const d = this.dom;
    const room = this.open;
    if (!room) {
      d.onlineTitle.textContent = 'Online';
      d.onlineList.replaceChildren(h('li', { class: 'muted' }, 'Open a room to see who is here.'));
      return;
    }
    const users = [...room.online].sort((a, b) => {
      if (a === this.me) return -1;
      if (b === this.me) return 1;
      return a.localeCompare(b);
    });
    d.onlineTitle.textContent = `Online in ${room.kind === 'direct' ? dmPeer(room.name, this.me) : `#${room.name}`} · ${users.length}`;
    d.onlineList.replaceChildren(...users.map((u) => h('li', { class: u === this.me ? 'me' : null, 'data-user': u },
      h('span', { class: 'dot', 'aria-hidden': 'true' }), avatar(u), h('span', { class: 'user-name' }, u))));
    if (room.kind === 'channel') d.roomSub.textContent = `${users.length} online`;
    else d.roomSub.textContent = room.online.has(dmPeer(room.name, this.me)) ? 'Here now' : 'Direct message';
  }

  renderTyping() {
    const room = this.open;
    this.dom.typing.textContent = room ? typingText([...room.typing.keys()].sort()) : '';
  }
}

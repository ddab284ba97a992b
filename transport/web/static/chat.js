// Chat is the signed-in part of the client: the room list, the open room,
// the socket, and the glue between them. One Chat lives per login; app.js
// creates it after login and stops it at logout or when the session ends.
//
// How the room list stays live without polling:
//
//   - GET /api/rooms (every page of it) gives each room's last_id and
//     unread count. Every room of the list is then joined on the one socket
//     with `since` = that last_id, up to the server's 100 rooms per socket:
//     the server replays what came after the snapshot, and from then on
//     each new message arrives as a `message` frame, so unread badges count
//     up the moment something is said anywhere.
//   - Beyond 100 rooms the most recently active 100 are joined (the open
//     room always among them). The others show the counts of the last
//     listing, which is read again when the tab comes back into view and
//     after every reconnect; a `mention` user event still reaches them at
//     once. Opening one of them joins it and, at the limit, leaves the
//     joined room that has been quiet longest.
//   - `room_added` and `room_removed` user events add and remove rooms
//     (a new DM, an invitation to a private channel, a ban) as they happen.
//     A `kicked` frame (or room_removed) for a private channel, or a ban,
//     drops the room and says so in a notice; one for a public channel
//     only ends our membership: the room stays, joined again from where
//     its stream stopped.
//
// How messages stay complete, ordered and unique:
//
//   - A joined room's messages are contiguous from its join position on:
//     the stream guarantees no gaps from `since`. Opening a room fetches
//     its newest page over REST and merges it by ID; older pages load from
//     the oldest shown message backwards, so what is shown never has a hole.
//   - After a reconnect each room is re-joined with `since` = the newest ID
//     its stream has delivered (Room.streamId).
//   - Messages are kept per room in stream-ID order with a Map of IDs
//     (Room.byId); a message whose ID is already known is dropped, so
//     replays and races between history and live frames never double up.
//   - Our sends are shown at once as pending, keyed by client_id. The ack or
//     our own message frame, whichever comes first, turns the pending copy
//     into the stored message; the other then finds nothing to do.
//     Unacked sends are resent after a reconnect with the same client_id,
//     which the server deduplicates.
//   - Edits, deletions and reactions arrive as frames of the same stream
//     and are applied to the message they name (Room.applyEvent); history
//     pages bring each message in its current state.
//
// Threads: a reply (a message with reply_to) whose root is in the room's
// list shows only in the thread panel, and its root counts it ("3
// replies"); a reply whose root is older than what is loaded shows in the
// list with a link to its thread.

import { MentionComplete } from './complete.js';
import { Connection, socketURL } from './connection.js';
import { MembersPanel } from './members.js';
import { MessageMenu } from './menu.js';
import { Room, applyEvent } from './room.js';
import { ThreadPanel } from './thread.js';
import {
  channelName, compareIds, dmPeer, errorText, maxId, mentionsMe, newClientId, roomLabel,
} from './util.js';
import {
  avatar, h, isSendKey, markSeen, messageEl, msgOf, nearBottom, scrollToBottom, setGrouped, typingText, updateMessageEl,
} from './view.js';

const PAGE_SIZE = 50;
const TYPING_SEND_EVERY_MS = 2000; // at most one typing frame per 2 s
const TYPING_SHOW_MS = 3000; // how long "x is typing…" stays without a new frame
const LOAD_OLDER_WITHIN_PX = 150; // start loading older history this close to the top
// Rooms one socket may join (PROTOCOL.md's default limit). A server with a
// lower limit answers the extra joins with rate_limited, and the client
// then keeps to what it got.
const MAX_JOINED = 100;
const DRAFT_SAVE_MS = 400; // drafts are written to storage this long after the last keystroke
const NOTIFY_BODY_MAX = 140; // characters of a message shown in a desktop notification
// Error codes after which the same send may succeed later (PROTOCOL.md).
const RETRYABLE = new Set(['rate_limited', 'unavailable', 'internal']);
const MEMBERS_FRESH_MS = 60_000; // how long a member list read for @-completion is used
const NOTICE_REPEAT_MS = 10_000; // a kicked frame and the room_removed event of one removal make one notice

/** A refusal of a frame the client waits on (edit, delete, react), in the server's words. */
class FrameError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** Orders rooms by their newest known message, most recent first; rooms never written to last. */
function byActivity(a, b) {
  const x = maxId(a.streamId, a.serverLastId) || '0-0';
  const y = maxId(b.streamId, b.serverLastId) || '0-0';
  return compareIds(y, x);
}

export class Chat {
  /**
   * @param {object} o
   * @param {ReturnType<import('./api.js').createApi>} o.api
   * @param {string} o.me                   our username (lowercase)
   * @param {() => string} o.token          the current token, for the socket URL
   * @param {Record<string, HTMLElement>} o.dom
   * @param {(msg: string) => void} o.showError
   * @param {() => void} o.clearError
   * @param {(msg: string) => void} o.onSessionEnd  token expired or revoked
   * @param {object} o.storage              get/set/remove on localStorage, failing quietly
   * @param {string} [o.initialRoom]        the room to open first (after registering: general)
   */
  constructor(o) {
    this.api = o.api;
    this.me = o.me;
    this.dom = o.dom;
    this.showError = o.showError;
    this.clearError = o.clearError;
    this.onSessionEnd = o.onSessionEnd;
    this.storage = o.storage;
    this.initialRoom = o.initialRoom || null;

    /** @type {Map<string, Room>} */
    this.rooms = new Map();
    /** @type {Room|null} */
    this.open = null;
    this.stopped = false;
    this.maxJoined = MAX_JOINED;

    // Replies echo the ref of the frame they answer; refs maps it to what
    // was asked, so an error can be pinned on the send or join it concerns.
    this.refs = new Map();
    this.nextRef = 1;

    this.typingSentAt = 0;
    this.refreshing = null;
    this.refreshQueued = false;
    this.listGen = 0;
    this.events = new AbortController();
    this.phone = window.matchMedia('(max-width: 480px)');
    this.lastRoomKey = `chat.lastRoom.${this.me}`;
    this.draftTimer = 0;
    this.newBelow = 0; // messages that arrived below the reader's view of the open room
    this.switcherIndex = 0;

    // The first child of the message list: "Loading…" or "This is the
    // beginning of #room". It has a fixed height, so changing its text
    // never moves the messages under the reader's eyes.
    this.edge = h('div', { class: 'history-edge', role: 'status' });
    // The line above the first message that was unread when the room was opened.
    this.divider = h('div', { class: 'unread-divider', 'data-testid': 'unread-divider', role: 'separator' },
      h('span', {}, 'New'));
    this.dividerFor = null; // {room, count}: where the divider goes once the room's messages are in
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

    const signal = this.events.signal;
    this.thread = new ThreadPanel({
      api: this.api, me: this.me, dom: this.dom, showError: this.showError, onToggle: () => this.renderPanel(),
    });
    this.membersPanel = new MembersPanel({
      api: this.api,
      me: this.me,
      dom: this.dom,
      showError: this.showError,
      clearError: this.clearError,
      onToggle: () => this.renderPanel(),
      onRoleKnown: (room) => {
        if (room === this.open) this.renderRoomHead();
      },
      signal,
    });
    this.menu = new MessageMenu({
      me: this.me,
      permit: (msg, action, where) => this.permit(msg, action, where),
      onAction: (msg, action, where) => this.messageAction(msg, action, where),
      onReact: (msg, emoji) => this.toggleReaction(msg, emoji),
      onEditSave: (msg, text) => this.saveEdit(msg, text),
      onEditClosed: (msg) => {
        const box = this.thread.isOpen() && msg.tel && msg.tel.isConnected ? this.dom.threadComposer : this.dom.composer;
        if (!this.phone.matches) box.focus();
      },
      signal,
    });
    this.complete = new MentionComplete({
      input: this.dom.composer,
      anchor: this.dom.composerForm,
      names: () => this.mentionNames(this.open),
      onNeedNames: () => this.needMembers(this.open),
      signal,
    });
    this.threadComplete = new MentionComplete({
      input: this.dom.threadComposer,
      anchor: this.dom.threadForm,
      names: () => this.mentionNames(this.open),
      onNeedNames: () => this.needMembers(this.open),
      signal,
    });
  }

  start() {
    this.bind();
    this.dom.meName.textContent = this.me;
    this.dom.meAvatar.replaceChildren(avatar(this.me));
    this.renderNotify();
    const kbd = this.dom.jumpButton.querySelector('kbd');
    if (kbd && /Mac|iPhone|iPad/.test(navigator.platform || '')) {
      kbd.textContent = '⌘K';
      this.dom.jumpButton.title = 'Jump to a room (⌘K)';
    }
    this.renderOpenRoom();
    this.renderRoomList();
    this.conn.start();
    this.refreshRooms().then(() => {
      if (this.stopped || this.open) return;
      // A reload in the same tab returns to the room that was open; a new
      // account starts in #general; on a wide screen a room is always open.
      let last = null;
      try {
        last = sessionStorage.getItem(this.lastRoomKey);
      } catch {
        last = null;
      }
      const pick = [this.initialRoom, last, this.phone.matches ? null : 'general']
        .find((name) => name && this.rooms.has(name));
      if (pick) this.openRoom(pick, { focus: true });
    });
  }

  /** Stops everything (logout or session end) and empties the chat view. */
  stop() {
    this.stopped = true;
    this.conn.stop();
    this.events.abort();
    this.saveDraftNow();
    for (const room of this.rooms.values()) {
      for (const t of room.typing.values()) clearTimeout(t);
    }
    this.rooms.clear();
    this.open = null;
    const d = this.dom;
    for (const el of [d.channelList, d.dmList, d.messages, d.onlineList]) el.replaceChildren();
    d.typing.textContent = '';
    d.composer.value = '';
    d.search.value = '';
    d.status.hidden = true;
    d.newMessages.hidden = true;
    d.menuDot.hidden = true;
    if (d.switcher.open) d.switcher.close();
    d.chatView.classList.remove('sidebar-open', 'offline', 'panel-open');
    this.thread.close();
    this.membersPanel.close();
    this.menu.picker.remove();
    this.membersPanel.menu.remove();
    this.complete.list.remove();
    this.threadComplete.list.remove();
    d.kickedNotice.hidden = true;
    d.privateToggle.checked = false;
    document.title = 'Redstream';
  }

  /** Forgets the drafts this user left in this browser (an explicit logout on a shared machine). */
  forgetDrafts() {
    const prefix = `chat.draft.${this.me}.`;
    try {
      for (let i = localStorage.length - 1; i >= 0; i--) {
        const k = localStorage.key(i);
        if (k && k.startsWith(prefix)) localStorage.removeItem(k);
      }
    } catch {
      // no storage: nothing kept
    }
  }

  // ---- DOM events -------------------------------------------------------

  bind() {
    const d = this.dom;
    const on = (el, type, fn, extra = {}) => el.addEventListener(type, fn, { signal: this.events.signal, ...extra });

    const roomClick = (ev) => {
      const btn = ev.target.closest('button[data-room]');
      if (btn) this.openRoom(btn.getAttribute('data-room'), { focus: true });
    };
    on(d.channelList, 'click', roomClick);
    on(d.dmList, 'click', roomClick);

    on(d.newRoomForm, 'submit', (ev) => {
      ev.preventDefault();
      this.createRoom(d.newRoomInput.value);
    });
    on(d.dmForm, 'submit', (ev) => {
      ev.preventDefault();
      this.startDirect(d.dmInput.value);
    });

    on(d.composerForm, 'submit', (ev) => {
      ev.preventDefault();
      this.sendComposer();
      d.composer.focus();
    });
    on(d.composer, 'keydown', (ev) => {
      if (this.complete.key(ev)) return;
      if (isSendKey(ev)) {
        ev.preventDefault();
        this.sendComposer();
        return;
      }
      // Up in an empty composer edits our last message, as in most chat apps.
      if (ev.key === 'ArrowUp' && !d.composer.value && !ev.shiftKey && !ev.altKey && !ev.ctrlKey && !ev.metaKey && this.open) {
        const last = this.open.lastOwnEditable(this.me);
        if (last && this.permit(last, 'edit', 'room')) {
          ev.preventDefault();
          this.menu.startEdit(last, 'room');
        }
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
      this.saveDraftSoon();
    });

    on(d.messages, 'scroll', () => {
      if (this.open && d.messages.scrollTop < LOAD_OLDER_WITHIN_PX) this.loadOlder(this.open);
      if (this.newBelow && nearBottom(d.messages)) this.setNewBelow(0);
    }, { passive: true });
    on(d.messages, 'click', (ev) => this.listClick(ev));
    on(d.threadMessages, 'click', (ev) => this.listClick(ev));
    on(d.threadRoot, 'click', (ev) => this.listClick(ev));
    this.menu.attach(d.messages, 'room');
    this.menu.attach(d.threadMessages, 'thread');
    this.menu.attach(d.threadRoot, 'thread');

    on(d.threadClose, 'click', () => {
      this.thread.close();
      if (!this.phone.matches) d.composer.focus();
    });
    on(d.threadForm, 'submit', (ev) => {
      ev.preventDefault();
      this.sendThreadComposer();
      d.threadComposer.focus();
    });
    on(d.threadComposer, 'keydown', (ev) => {
      if (this.threadComplete.key(ev)) return;
      if (isSendKey(ev)) {
        ev.preventDefault();
        this.sendThreadComposer();
      }
    });
    on(d.threadComposer, 'keypress', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey) ev.preventDefault(); // as in the composer
    });
    on(d.threadComposer, 'input', () => {
      this.autosize(d.threadComposer);
      this.noteTyping(d.threadComposer);
    });
    on(d.membersToggle, 'click', () => this.toggleMembers());
    on(d.kickedDismiss, 'click', () => this.hideNotice());
    on(d.topicEdit, 'click', () => this.editTopic());
    on(d.topicForm, 'submit', (ev) => {
      ev.preventDefault();
      this.saveTopic();
    });
    on(d.topicInput, 'keydown', (ev) => {
      if (ev.key === 'Escape') {
        ev.preventDefault();
        ev.stopPropagation();
        this.closeTopicEditor();
      }
    });
    on(d.topicInput, 'blur', () => {
      if (!this.topicSaving) this.closeTopicEditor();
    });
    on(d.newMessages, 'click', () => {
      scrollToBottom(d.messages);
      this.setNewBelow(0);
      d.composer.focus();
    });

    on(d.search, 'input', () => this.applySearch());
    on(d.search, 'keydown', (ev) => {
      if (ev.key === 'Escape' && d.search.value) {
        ev.preventDefault();
        ev.stopPropagation();
        d.search.value = '';
        this.applySearch();
      }
    });

    on(d.notifyButton, 'click', () => this.askNotify());
    on(d.jumpButton, 'click', () => this.openSwitcher());
    on(d.switcherInput, 'input', () => {
      this.switcherIndex = 0;
      this.renderSwitcher();
    });
    on(d.switcherInput, 'keydown', (ev) => this.switcherKey(ev));
    on(d.switcherList, 'click', (ev) => {
      const li = ev.target.closest('[data-room]');
      if (li) this.pickSwitcher(li.getAttribute('data-room'));
    });
    on(d.switcher, 'click', (ev) => {
      if (ev.target === d.switcher) d.switcher.close(); // a click on the backdrop
    });

    on(d.menuButton, 'click', () => this.toggleSidebar());
    on(d.scrim, 'click', () => this.toggleSidebar(false));
    on(document, 'keydown', (ev) => this.globalKey(ev));
    on(document, 'visibilitychange', () => {
      if (document.hidden) {
        this.saveDraftNow();
        return;
      }
      if (this.open) {
        this.open.unread = 0;
        this.open.mentions = 0;
        this.markRead(this.open);
        this.renderRoomList();
      }
      this.refreshRooms({ quiet: true });
    });
    on(window, 'pagehide', () => this.saveDraftNow());
  }

  /** Keys that work anywhere: Ctrl/Cmd+K jumps to a room, Alt+↑/↓ steps through rooms, Esc closes. */
  globalKey(ev) {
    const d = this.dom;
    if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && !ev.shiftKey && ev.key.toLowerCase() === 'k') {
      ev.preventDefault();
      if (d.switcher.open) d.switcher.close();
      else this.openSwitcher();
      return;
    }
    if (ev.altKey && !ev.ctrlKey && !ev.metaKey && (ev.key === 'ArrowUp' || ev.key === 'ArrowDown')) {
      ev.preventDefault();
      this.stepRoom(ev.key === 'ArrowUp' ? -1 : 1, ev.shiftKey);
      return;
    }
    if (ev.key === 'Escape' && !d.switcher.open && !ev.defaultPrevented) {
      // Esc closes the panel the focus is in (or, on a phone, the one covering the screen).
      const inPanel = d.panel.contains(document.activeElement) || this.phone.matches;
      if (inPanel && this.thread.isOpen()) {
        this.thread.close();
        d.composer.focus();
      } else if (inPanel && this.membersPanel.isOpen()) {
        this.membersPanel.close();
      } else {
        this.toggleSidebar(false);
      }
    }
  }

  /** Opens the room above or below the open one in the sidebar (only rooms with unread messages with unreadOnly). */
  stepRoom(dir, unreadOnly) {
    const order = this.sidebarOrder();
    if (order.length === 0) return;
    const at = this.open ? order.indexOf(this.open) : -1;
    for (let i = 1; i <= order.length; i++) {
      const r = order[(at + dir * i + order.length * 2) % order.length];
      if (!unreadOnly || r.unread > 0) {
        this.openRoom(r.name, { focus: true });
        return;
      }
    }
  }

  toggleSidebar(show) {
    const d = this.dom;
    const v = show ?? !d.chatView.classList.contains('sidebar-open');
    d.chatView.classList.toggle('sidebar-open', v);
    d.menuButton.setAttribute('aria-expanded', String(v));
  }

  autosize(c = this.dom.composer) {
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

  // ---- drafts -----------------------------------------------------------

  draftKey(room) {
    return `chat.draft.${this.me}.${room.name}`;
  }

  saveDraftSoon() {
    clearTimeout(this.draftTimer);
    this.draftTimer = setTimeout(() => this.saveDraftNow(), DRAFT_SAVE_MS);
  }

  /** Keeps what the composer holds for the open room, in memory and across reloads. */
  saveDraftNow() {
    clearTimeout(this.draftTimer);
    const room = this.open;
    if (!room) return;
    room.draft = this.dom.composer.value;
    if (room.draft.trim()) this.storage.set(this.draftKey(room), room.draft);
    else this.storage.remove(this.draftKey(room));
  }

  loadDraft(room) {
    if (room.draft === undefined || room.draft === null) room.draft = this.storage.get(this.draftKey(room)) || '';
    return room.draft;
  }

  // ---- rooms ------------------------------------------------------------

  room(name, kind) {
    let room = this.rooms.get(name);
    if (!room) {
      room = new Room(name, kind || (name.startsWith('dm:') ? 'direct' : 'channel'));
      room.listGen = this.listGen;
      this.rooms.set(name, room);
    }
    return room;
  }

  label(room) {
    return roomLabel(room, this.me);
  }

  /**
   * Takes one entry of GET /api/rooms. The server's count covers messages
   * up to its last_id; messages we received live after that are added on
   * top, so a reply that crossed a live message neither loses nor
   * double-counts it.
   */
  applyListEntry(r, gen) {
    const room = this.room(r.name, r.kind);
    room.kind = r.kind || room.kind;
    room.listGen = Math.max(room.listGen, gen);
    room.topic = r.topic || '';
    room.role = r.role || '';
    room.serverLastId = r.last_id || null;
    // Until the room is shown its messages only feed the count, and the
    // server's count holds those up to last_id.
    if (!room.loaded) room.dropThrough(r.last_id);
    // A read frame we sent may not have reached the server when it
    // counted; if we reported reading past last_id, nothing before it is unread.
    const readPast = room.readSent && r.last_id && compareIds(room.readSent, r.last_id) >= 0;
    const live = room.countFromOthersAfter(readPast ? room.readSent : r.last_id, this.me);
    if (room === this.open && !document.hidden) {
      room.unread = 0;
      room.mentions = 0;
    } else {
      room.unread = (readPast ? 0 : r.unread || 0) + live.unread;
      room.mentions = (readPast ? 0 : r.mentions || 0) + live.mentions;
    }
    return room;
  }

  /** Reloads the room list and its unread counts, then joins what it may. */
  refreshRooms({ quiet = false } = {}) {
    if (this.refreshing) {
      // The answer in flight may predate what prompted this call (a room
      // switch): fetch once more when it lands.
      this.refreshQueued = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      try {
        const gen = ++this.listGen;
        const list = await this.api.rooms();
        if (this.stopped) return;
        for (const r of list) this.applyListEntry(r, gen);
        // Rooms the list no longer has (removed or banned while we were
        // away). Rooms made here after the listing started carry gen.
        for (const room of [...this.rooms.values()]) {
          if (room.listGen < gen) this.dropRoom(room, null);
        }
        this.syncJoins();
        this.renderRoomList();
        if (this.open) this.renderRoomHead();
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

  /**
   * Joins every room of the list the socket has room for, the most
   * recently active first. Joined rooms stay joined; the open room is
   * joined by openRoom.
   */
  syncJoins() {
    let free = this.maxJoined - this.joinedCount();
    if (free <= 0) return;
    const waiting = [...this.rooms.values()].filter((r) => !r.joined && !r.loading).sort(byActivity);
    for (const room of waiting) {
      if (free-- <= 0) break;
      this.join(room);
    }
  }

  joinedCount() {
    let n = 0;
    for (const r of this.rooms.values()) if (r.joined) n++;
    return n;
  }

  /** Marks a room joined and sends its join (or leaves that to onConnOpen while offline). */
  join(room) {
    if (room.joined) return;
    room.joined = true;
    this.sendJoin(room);
  }

  /** Makes space for one more joined room by leaving the one that has been quiet longest. */
  evictForJoin() {
    if (this.joinedCount() < this.maxJoined) return;
    const joined = [...this.rooms.values()].filter((r) => r.joined && r !== this.open).sort(byActivity);
    const quiet = joined[joined.length - 1];
    if (!quiet) return;
    this.conn.send({ type: 'leave', room: quiet.name });
    for (const t of quiet.typing.values()) clearTimeout(t);
    quiet.typing.clear();
    quiet.online.clear();
    quiet.forgetStream();
  }

  /**
   * Creates a channel from what was typed: "Design Review" becomes
   * #design-review. A channel that exists already is opened instead.
   */
  async createRoom(input) {
    const d = this.dom;
    this.clearError();
    const name = channelName(input);
    if (!name) {
      this.showError(input.trim()
        ? 'A channel name needs letters or digits (it may also hold - and _).'
        : 'Type a name for the new channel.');
      d.newRoomInput.focus();
      return;
    }
    d.createRoomButton.disabled = true;
    const priv = d.privateToggle.checked;
    try {
      const r = await this.api.createRoom(name, { private: priv });
      if (this.stopped) return;
      const room = this.room(r.name, r.kind || (priv ? 'private' : 'channel'));
      room.kind = r.kind || room.kind;
      room.role = 'owner';
      d.newRoomInput.value = '';
      d.privateToggle.checked = false;
      this.renderRoomList();
      this.openRoom(r.name, { focus: true });
    } catch (e) {
      if (this.stopped || e.status === 401) return;
      if (e.code === 'room_exists') {
        if (!this.rooms.has(name)) await this.refreshRooms({ quiet: true });
        if (this.rooms.has(name)) {
          d.newRoomInput.value = '';
          this.openRoom(name, { focus: true });
          return;
        }
        this.showError(`#${name} exists, but you are not a member of it.`);
        return;
      }
      this.showError(e.message);
    } finally {
      d.createRoomButton.disabled = false;
    }
  }

  async startDirect(input) {
    const d = this.dom;
    this.clearError();
    const user = input.trim().replace(/^@/, '').toLowerCase();
    if (!user) {
      this.showError('Type the username of the person to message.');
      d.dmInput.focus();
      return;
    }
    d.startDirectButton.disabled = true;
    try {
      const r = await this.api.openDirect(user);
      if (this.stopped) return;
      this.room(r.name, 'direct');
      d.dmInput.value = '';
      this.renderRoomList();
      this.openRoom(r.name, { focus: true });
    } catch (e) {
      if (e.status !== 401 && !this.stopped) {
        this.showError(e.code === 'not_found' ? `There is no user named ${user}.` : e.message);
      }
    } finally {
      d.startDirectButton.disabled = false;
    }
  }

  /** Adds a room a user event told us about, with its count from the list, and joins it. */
  async addRoom(name, kind) {
    if (this.rooms.has(name)) return;
    const room = this.room(name, kind);
    this.renderRoomList();
    let entry = null;
    try {
      entry = await this.api.room(name);
    } catch {
      entry = null;
    }
    if (this.stopped || this.rooms.get(name) !== room) return;
    if (!entry) {
      // The one-page lookup missed (an older server, an odd name): read it all.
      await this.refreshRooms({ quiet: true });
      return;
    }
    this.applyListEntry(entry, this.listGen);
    if (!room.joined) {
      this.evictForJoin();
      this.join(room);
    }
    this.renderRoomList();
  }

  /** Removes a room from the list (room_removed, kicked, or gone from the list); reason explains it to the user. */
  dropRoom(room, reason) {
    if (this.rooms.get(room.name) !== room) return;
    for (const t of room.typing.values()) clearTimeout(t);
    this.rooms.delete(room.name);
    if (reason === 'banned' || reason === 'removed') this.noticeRemoved(room, reason);
    if (this.thread.isOpen(room)) this.thread.close();
    if (this.membersPanel.isOpen(room)) this.membersPanel.close();
    if (room === this.open) {
      // What went wrong in the room (a refused send) is moot once it is gone.
      this.clearError();
      this.menu.hide(true);
      this.menu.cancelEdit();
      this.menu.closePicker();
      this.open = null;
      this.renderOpenRoom();
    }
    if (room.ui) room.ui.li.remove();
    this.renderRoomList();
    this.syncJoins();
  }

  /**
   * Shows a room. focus puts the cursor in its composer, except on a
   * phone where that would cover the conversation with the keyboard.
   */
  openRoom(name, { focus = false } = {}) {
    const room = this.rooms.get(name);
    if (!room) return;
    this.toggleSidebar(false);
    if (this.open === room) {
      if (focus && !this.phone.matches) this.dom.composer.focus();
      return;
    }
    this.clearError();
    this.hideNotice();
    this.saveDraftNow();
    this.menu.hide(true);
    this.menu.cancelEdit();
    this.menu.closePicker();
    this.closeTopicEditor();
    if (this.thread.isOpen() && !this.thread.isOpen(room)) this.thread.close();
    this.open = room;
    this.membersPanel.switchTo(room);
    this.typingSentAt = 0;
    this.dividerFor = room.unread > 0 ? { room, count: room.unread } : null;
    room.unread = 0;
    room.mentions = 0;
    try {
      sessionStorage.setItem(this.lastRoomKey, name);
    } catch {
      // storage disabled: nothing to remember
    }
    this.dom.composer.value = this.loadDraft(room);
    this.dom.search.value = '';
    this.setNewBelow(0);
    this.renderRoomList();
    this.renderOpenRoom();
    this.autosize();
    if (focus && !this.phone.matches) this.dom.composer.focus();

    if (!room.joined) this.evictForJoin();
    if (!room.loaded) {
      this.loadInitial(room);
      return;
    }
    this.join(room);
    this.markRead(room);
    this.fillViewport(room);
  }

  /** Fetches the newest page of a room, then joins it if it is not joined yet. */
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
        this.join(room);
        if (room === this.open) {
          this.syncThreaded(room);
          this.regroupAll(room);
          this.placeDivider();
          this.updateEdge();
          this.updateSeen(room);
          this.scrollToStart();
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
      const added = [];
      for (const m of msgs) {
        const res = this.storeMessage(room, m, false);
        if (res && res.kind === 'new') added.push(res.msg);
      }
      if (shown && added.length) {
        // Roots that came with the page take their replies off the list.
        this.syncThreaded(room);
        this.regroupAll(room);
        this.applySearch();
      }
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
    updateMessageEl(res.msg, this.me);
    if (res.kind === 'new' && shown) {
      this.place(room, res.msg, res.index);
      if (live) this.regroup(room, [res.msg, room.after(res.msg)]);
      this.applySearch(res.msg);
      // A reply shown only in its thread changes nothing in the list.
      if (!room.inThread(res.msg)) {
        if (stick) scrollToBottom(list);
        else if (live && m.user !== this.me) this.setNewBelow(this.newBelow + 1);
      }
      this.updateEdge();
    }
    return res;
  }

  /** Inserts the element of confirmed[index] before its successor (or before the pending sends). */
  place(room, msg, index) {
    const list = this.dom.messages;
    const el = messageEl(msg, this.me);
    el.classList.toggle('in-thread', room.inThread(msg));
    const nextMsg = room.confirmed[index + 1] || room.pending[0] || null;
    const next = nextMsg ? messageEl(nextMsg, this.me) : null;
    list.insertBefore(el, next && next.parentNode === list ? next : null);
  }

  /** Hides from the list the replies whose root it shows, and shows those whose root it does not. */
  syncThreaded(room) {
    for (const m of room.confirmed) {
      if (m.replyTo && m.el) m.el.classList.toggle('in-thread', room.inThread(m));
    }
  }

  /** Recomputes, for each given message, whether it continues the group of the one above it. */
  regroup(room, msgs) {
    for (const m of msgs) if (m) setGrouped(m, room.before(m));
  }

  regroupAll(room) {
    let prev = null;
    for (const m of [...room.confirmed, ...room.pending]) {
      if (m.el) setGrouped(m, prev);
      prev = m;
    }
  }

  sendComposer() {
    const room = this.open;
    const c = this.dom.composer;
    if (!room || !c.value.trim()) return;
    this.clearError();
    const msg = room.addPending(c.value, this.me, newClientId());
    const list = this.dom.messages;
    list.append(messageEl(msg, this.me));
    this.regroup(room, [msg]);
    scrollToBottom(list);
    this.setNewBelow(0);
    c.value = '';
    this.saveDraftNow();
    this.autosize();
    this.typingSentAt = 0;
    this.updateEdge();
    this.sendPending(room, msg);
  }

  sendPending(room, msg) {
    if (msg.failed) return;
    const ref = this.newRef({ kind: 'send', room: room.name, clientId: msg.clientId });
    const frame = { type: 'send', room: room.name, text: msg.text, client_id: msg.clientId, ref };
    if (msg.replyTo) frame.reply_to = msg.replyTo;
    const sent = this.conn.send(frame);
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
    this.clearError();
    if (!msg.retryable) {
      if (msg.replyTo) {
        room.takePending(clientId);
        this.thread.dropPending(msg);
        const box = this.dom.threadComposer;
        box.value = msg.text;
        this.autosize(box);
        box.focus();
        return;
      }
      const next = room.after(msg);
      room.takePending(clientId);
      if (msg.el) msg.el.remove();
      this.regroup(room, [next]);
      this.dom.composer.value = msg.text;
      this.autosize();
      this.dom.composer.focus();
      this.updateEdge();
      return;
    }
    msg.failed = false;
    updateMessageEl(msg, this.me);
    if (msg.replyTo) this.thread.regroup();
    else this.regroup(room, [msg, room.after(msg)]);
    this.sendPending(room, msg);
  }

  noteTyping(box = this.dom.composer) {
    const room = this.open;
    if (!room || !box.value) return;
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

  /** Counts messages that came in below what the reader sees, and shows or hides the pill that says so. */
  setNewBelow(n) {
    this.newBelow = n;
    const pill = this.dom.newMessages;
    pill.hidden = n === 0;
    if (n > 0) pill.textContent = n === 1 ? '1 new message ↓' : `${n} new messages ↓`;
  }

  // ---- message actions: edit, delete, react, reply ----------------------

  /** Clicks inside a message list: a reaction toggles, a thread link opens it, a failed send retries. */
  listClick(ev) {
    const t = ev.target;
    const msg = msgOf(t);
    if (!msg) return;
    const reaction = t.closest('[data-testid="reaction"]');
    if (reaction) {
      this.toggleReaction(msg, reaction.getAttribute('data-emoji'));
      return;
    }
    const add = t.closest('[data-testid="add-reaction"]');
    if (add) {
      this.menu.openPicker(msg, add);
      return;
    }
    if (t.closest('[data-testid="thread-link"]')) {
      this.openThread(msg.id);
      return;
    }
    if (t.closest('[data-testid="thread-of"]')) {
      this.openThread(msg.replyTo);
      return;
    }
    if (msg.failed && !t.closest('a')) this.retry(msg.clientId);
  }

  /** Whether the menu offers action on msg: what the server would allow us, as far as we know. */
  permit(msg, action, where) {
    const room = this.open;
    if (!room || !msg.id || msg.pending || msg.deleted) return false;
    switch (action) {
      case 'react': return true;
      case 'reply': return where === 'room';
      case 'edit': return msg.user === this.me;
      case 'delete': return msg.user === this.me || room.moderates();
      default: return false;
    }
  }

  messageAction(msg, action, where) {
    if (action === 'reply') this.openThread(msg.replyTo || msg.id);
    else if (action === 'edit') this.menu.startEdit(msg, where);
    else if (action === 'delete') this.deleteMessage(msg);
  }

  /**
   * Sends a frame that the server answers with an ack or an error (edit,
   * delete, react) and resolves with the ack. Refused while offline: a
   * change to a message is not queued for later, it is retried by hand.
   */
  request(frame) {
    return new Promise((resolve, reject) => {
      const offline = () => reject(new FrameError('unavailable', 'Not connected. Try again once the connection is back.'));
      if (!this.conn.connected) {
        offline();
        return;
      }
      const ref = this.newRef({ kind: frame.type, room: frame.room, resolve, reject });
      if (!this.conn.send({ ...frame, ref })) {
        this.refs.delete(ref);
        offline();
      }
    });
  }

  /** The socket went away: the frames waiting for an answer will not get one. */
  failRequests() {
    for (const info of this.refs.values()) {
      if (info.reject) info.reject(new FrameError('unavailable', 'The connection dropped. Try again.'));
    }
    this.refs.clear();
  }

  /** Saves an edit made in the message's editor; the text shows at once and goes back if refused. */
  async saveEdit(msg, text) {
    const room = this.open;
    if (!room || !msg.id) return;
    if (!text.trim()) {
      this.showError('A message needs some text. To remove it, use Delete.');
      return;
    }
    this.clearError();
    msg.editText = text;
    this.refreshMessage(room, msg);
    try {
      await this.request({ type: 'edit', room: room.name, id: msg.id, text });
      // Stored: the edit frame confirms it (maybe it already did).
      if (!msg.deleted && msg.text !== text) {
        msg.text = text;
        msg.mentions = undefined;
        msg.editedTs = msg.editedTs || Date.now();
      }
    } catch (e) {
      // A bare "forbidden" on one's own message is the edit window (CHAT_EDIT_WINDOW).
      if (!this.stopped) this.showError(e.code === 'forbidden' && /can no longer be edited|^You do not have access/.test(e.message) ? 'This message can no longer be edited.' : e.message);
    } finally {
      delete msg.editText;
      this.refreshMessage(room, msg);
    }
  }

  async deleteMessage(msg) {
    const room = this.open;
    if (!room || !msg.id || msg.deleted) return;
    this.clearError();
    msg.deleting = true;
    this.refreshMessage(room, msg);
    try {
      await this.request({ type: 'delete', room: room.name, id: msg.id });
      applyEvent(msg, { type: 'delete' });
    } catch (e) {
      if (!this.stopped) this.showError(e.code === 'forbidden' && /^You do not have access/.test(e.message) ? 'You may not delete this message.' : e.message);
    } finally {
      msg.deleting = false;
      this.refreshMessage(room, msg);
    }
  }

  /** Adds our reaction, or takes it back if it is there; shown at once, undone if refused. */
  async toggleReaction(msg, emoji) {
    const room = this.open;
    if (!room || !msg.id || msg.deleted || !emoji) return;
    this.clearError();
    const on = !(msg.reactions.get(emoji) || []).includes(this.me);
    applyEvent(msg, { type: 'reaction', emoji, user: this.me, on });
    this.refreshMessage(room, msg);
    try {
      await this.request({ type: 'react', room: room.name, id: msg.id, emoji, on });
    } catch (e) {
      applyEvent(msg, { type: 'reaction', emoji, user: this.me, on: !on });
      this.refreshMessage(room, msg);
      if (!this.stopped) this.showError(e.message);
    }
  }

  // ---- threads and the side panel -----------------------------------------

  /** Opens the thread of rootId in the open room. */
  openThread(rootId) {
    const room = this.open;
    if (!room || !rootId) return;
    this.membersPanel.close();
    this.thread.open(room, rootId);
    if (!this.phone.matches) this.dom.threadComposer.focus();
  }

  sendThreadComposer() {
    const room = this.open;
    const box = this.dom.threadComposer;
    if (!room || !this.thread.isOpen(room) || !box.value.trim()) return;
    this.clearError();
    const msg = room.addPending(box.value, this.me, newClientId(), this.thread.rootId);
    this.thread.addPending(msg);
    box.value = '';
    this.autosize(box);
    this.typingSentAt = 0;
    this.sendPending(room, msg);
  }

  toggleMembers() {
    const room = this.open;
    if (!room || room.kind === 'direct') return;
    if (this.membersPanel.isOpen()) {
      this.membersPanel.close();
      return;
    }
    this.thread.close();
    this.membersPanel.open(room);
  }

  /** The third column: shown while the thread or the members panel is open. */
  renderPanel() {
    const d = this.dom;
    const open = this.thread.isOpen() || this.membersPanel.isOpen();
    d.chatView.classList.toggle('panel-open', open);
    d.membersToggle.setAttribute('aria-expanded', String(this.membersPanel.isOpen()));
    d.membersToggle.classList.toggle('active', this.membersPanel.isOpen());
  }

  // ---- topic --------------------------------------------------------------

  editTopic() {
    const d = this.dom;
    const room = this.open;
    if (!room || !room.moderates()) return;
    d.topicInput.value = room.topic;
    d.topicForm.hidden = false;
    d.roomTopic.hidden = true;
    d.topicEdit.hidden = true;
    d.topicInput.focus();
    d.topicInput.select();
  }

  closeTopicEditor() {
    const d = this.dom;
    if (d.topicForm.hidden) return;
    d.topicForm.hidden = true;
    d.roomTopic.hidden = false;
    this.renderRoomHead();
  }

  async saveTopic() {
    const d = this.dom;
    const room = this.open;
    if (!room) return;
    const topic = d.topicInput.value.trim();
    if (topic === room.topic) {
      this.closeTopicEditor();
      return;
    }
    this.clearError();
    this.topicSaving = true;
    try {
      const res = await this.api.setTopic(room.name, topic);
      room.topic = res.topic ?? topic;
      this.closeTopicEditor();
    } catch (e) {
      if (!this.stopped && e.status !== 401) this.showError(e.message);
      d.topicInput.focus();
    } finally {
      this.topicSaving = false;
    }
  }

  // ---- @-completion -------------------------------------------------------

  /** Whom "@" offers in room: its members, who is online, who wrote lately; never ourselves. */
  mentionNames(room) {
    if (!room) return [];
    if (room.kind === 'direct') return [dmPeer(room.name, this.me)].filter((u) => u !== this.me);
    const names = new Set();
    if (room.memberList) for (const u of room.memberList.members.keys()) names.add(u);
    for (const u of room.online) names.add(u);
    for (let i = room.confirmed.length - 1, n = 0; i >= 0 && n < 300; i--, n++) names.add(room.confirmed[i].user);
    names.delete(this.me);
    return [...names];
  }

  /** Reads the room's members for @-completion unless a recent list is at hand. */
  async needMembers(room) {
    if (!room || room.kind === 'direct') return;
    if (room.memberList && Date.now() - room.memberList.at < MEMBERS_FRESH_MS) return;
    if (room.membersLoading) return;
    room.membersLoading = true;
    try {
      const res = await this.api.members(room.name, { limit: 1000 });
      const members = new Map((res.members || []).map((m) => [m.user, { role: m.role, online: m.online }]));
      const more = Boolean(res.has_more);
      // The panel may have read more meanwhile; keep the larger list.
      if (!room.memberList || room.memberList.members.size <= members.size) {
        const list = res.members || [];
        room.memberList = { members, more, after: list.length ? list[list.length - 1].user : null, at: Date.now() };
      }
      if (room === this.open) {
        if (this.complete.isOpen || this.complete.token) this.complete.render();
        if (this.threadComplete.isOpen || this.threadComplete.token) this.threadComplete.render();
        this.renderRoomHead();
      }
    } catch {
      // completion falls back to who is online and who wrote
    } finally {
      room.membersLoading = false;
    }
  }

  // ---- search -----------------------------------------------------------

  /**
   * Filters the open room's loaded messages to those whose text or author
   * holds the search box's words (all of them, ignoring case). With only
   * one message given, checks just that one (a message that just came in).
   */
  applySearch(only) {
    const d = this.dom;
    const room = this.open;
    const words = d.search.value.toLowerCase().split(/\s+/).filter(Boolean);
    d.messages.classList.toggle('searching', words.length > 0);
    if (!room) return;
    const match = (m) => {
      const hay = `${m.user} ${m.text}`.toLowerCase();
      return words.every((w) => hay.includes(w));
    };
    const msgs = only ? [only] : [...room.confirmed, ...room.pending];
    for (const m of msgs) if (m.el) m.el.classList.toggle('search-miss', words.length > 0 && !match(m));
    if (words.length === 0) {
      d.searchCount.textContent = '';
      return;
    }
    let hits = 0;
    let total = 0;
    for (const m of [...room.confirmed, ...room.pending]) {
      if (room.inThread(m)) continue;
      total++;
      if (match(m)) hits++;
    }
    d.searchCount.textContent = hits === 0
      ? `No match in ${total} loaded`
      : `${hits} of ${total} loaded`;
  }

  // ---- room switcher (Ctrl/Cmd+K) ---------------------------------------

  openSwitcher() {
    const d = this.dom;
    d.switcherInput.value = '';
    this.switcherIndex = 0;
    this.renderSwitcher();
    if (!d.switcher.open) d.switcher.showModal();
    d.switcherInput.focus();
  }

  /** The rooms the switcher offers for its query: names starting with it first, then containing it. */
  switcherRooms() {
    const q = this.dom.switcherInput.value.trim().toLowerCase().replace(/^[#@]/, '');
    const all = this.sidebarOrder();
    if (!q) {
      // Unread rooms first, otherwise the sidebar's order.
      return [...all.filter((r) => r.unread > 0 && r !== this.open), ...all.filter((r) => !(r.unread > 0) || r === this.open)];
    }
    const starts = [];
    const contains = [];
    for (const r of all) {
      const label = this.label(r).toLowerCase();
      if (label.startsWith(q)) starts.push(r);
      else if (label.includes(q)) contains.push(r);
    }
    return [...starts, ...contains];
  }

  renderSwitcher() {
    const d = this.dom;
    const rooms = this.switcherRooms().slice(0, 50);
    this.switcherIndex = Math.min(this.switcherIndex, Math.max(0, rooms.length - 1));
    d.switcherList.replaceChildren(...rooms.map((r, i) => {
      const li = h('li', {
        class: `switcher-item${i === this.switcherIndex ? ' selected' : ''}`,
        'data-testid': 'switcher-item',
        'data-room': r.name,
        role: 'option',
        'aria-selected': String(i === this.switcherIndex),
        id: `switcher-opt-${i}`,
      },
      r.kind === 'direct' ? avatar(this.label(r)) : h('span', { class: `room-hash ${r.kind}`, 'aria-hidden': 'true' }),
      h('span', { class: 'room-name' }, this.label(r)),
      r.unread > 0 && r !== this.open ? h('span', { class: 'badge' }, String(r.unread)) : null);
      return li;
    }));
    if (rooms.length === 0) d.switcherList.append(h('li', { class: 'switcher-empty muted' }, 'No room matches.'));
    d.switcherInput.setAttribute('aria-activedescendant', rooms.length ? `switcher-opt-${this.switcherIndex}` : '');
  }

  switcherKey(ev) {
    const n = this.switcherRooms().slice(0, 50).length;
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      ev.preventDefault();
      if (n === 0) return;
      this.switcherIndex = (this.switcherIndex + (ev.key === 'ArrowDown' ? 1 : n - 1)) % n;
      this.renderSwitcher();
    } else if (ev.key === 'Enter') {
      ev.preventDefault();
      const r = this.switcherRooms()[this.switcherIndex];
      if (r) this.pickSwitcher(r.name);
    }
  }

  pickSwitcher(name) {
    this.dom.switcher.close();
    this.openRoom(name, { focus: true });
  }

  // ---- notifications ----------------------------------------------------

  renderNotify() {
    const b = this.dom.notifyButton;
    b.hidden = !('Notification' in window) || Notification.permission !== 'default';
  }

  async askNotify() {
    if (!('Notification' in window)) return;
    try {
      await Notification.requestPermission();
    } catch {
      // an old browser's callback form; the permission stays as it was
    }
    this.renderNotify();
  }

  /** A desktop notification for a DM or a mention that arrives while the tab is hidden. */
  notify(room, f) {
    if (!document.hidden || !('Notification' in window) || Notification.permission !== 'granted') return;
    const title = room.kind === 'direct' ? `${f.user}` : `${f.user} in #${room.name}`;
    let body = String(f.text || '');
    if (body.length > NOTIFY_BODY_MAX) body = `${body.slice(0, NOTIFY_BODY_MAX - 1)}…`;
    try {
      const n = new Notification(title, { body, tag: `chat:${room.name}` });
      n.onclick = () => {
        window.focus();
        this.openRoom(room.name, { focus: true });
        n.close();
      };
    } catch {
      // Some browsers allow notifications only from a service worker.
    }
  }

  // ---- socket -----------------------------------------------------------

  newRef(info) {
    const ref = this.nextRef++;
    this.refs.set(ref, info);
    return ref;
  }

  /**
   * The join position of a room: the newest ID its stream has delivered
   * while it is shown or was joined; for a room not shown yet, at least the
   * room list's last_id, which its unread count already covers.
   */
  joinSince(room) {
    if (room.loaded) return room.streamId || '0-0';
    return maxId(room.streamId, room.serverLastId) || '0-0';
  }

  sendJoin(room) {
    const ref = this.newRef({ kind: 'join', room: room.name });
    const frame = { type: 'join', room: room.name, since: this.joinSince(room), ref };
    if (!this.conn.send(frame)) this.refs.delete(ref); // goes out from onConnOpen
  }

  onConnOpen() {
    this.failRequests();
    for (const room of this.rooms.values()) {
      if (room.joined) this.sendJoin(room);
    }
    // Sends that never went out, or whose ack the old socket took with it.
    const gen = this.conn.generation;
    for (const room of this.rooms.values()) {
      for (const msg of room.allPending()) {
        if (msg.sentOn !== gen) this.sendPending(room, msg);
      }
    }
    if (this.open) {
      this.open.readSent = null;
      this.markRead(this.open);
    }
    // What happened to rooms that were not joined, and to the list itself
    // (rooms added or removed), while the socket was down.
    if (gen > 1) this.refreshRooms({ quiet: true });
  }

  onConnDown() {
    this.failRequests();
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
      case 'room_added': return this.onRoomAdded(f);
      case 'room_removed': return this.onRoomRemoved(f, false);
      case 'kicked': return this.onRoomRemoved(f, true);
      case 'mention': return this.onMention(f);
      case 'room': return this.onTopic(f);
      case 'edit':
      case 'delete':
      case 'reaction': return this.onMessageEvent(f);
      default: return undefined; // pong, left, authed: nothing to do
    }
  }

  /** An edit, delete or reaction frame: applied to the message wherever it shows. */
  onMessageEvent(f) {
    const room = this.rooms.get(f.room);
    if (!room || typeof f.id !== 'string') return;
    // Events of the stream: the next join resumes after them.
    room.noteStream(f.id);
    const msg = room.applyEvent(f);
    if (msg) this.refreshMessage(room, msg);
  }

  /** Shows a message's new state (text, deletion, reactions, replies) everywhere it is shown. */
  refreshMessage(room, msg) {
    updateMessageEl(msg, this.me);
    if (msg.deleted) this.menu.forget(msg);
    if (room === this.open && msg.el) this.applySearch(msg);
  }

  onMessage(f) {
    const room = this.rooms.get(f.room);
    if (!room || typeof f.id !== 'string') return;
    room.noteStream(f.id);
    this.stopTyping(room, f.user);
    const res = this.storeMessage(room, f, true);
    if (!res || res.kind !== 'new') return;
    if (res.msg.replyTo) this.noteReply(room, res.msg, res.fresh);
    const fromOther = f.user !== this.me;
    const personal = fromOther && (room.kind === 'direct' || mentionsMe(f, this.me));
    if (room === this.open) {
      this.markRead(room);
      if (f.user === this.me) this.updateSeen(room);
      if (document.hidden && fromOther) {
        // Shown, but nobody is looking: count it for the tab's title.
        room.unread++;
        if (personal) room.mentions++;
        this.renderRoomList();
      }
      if (personal) this.notify(room, f);
      return;
    }
    if (!fromOther) {
      room.unread = 0; // the server moves our read position to our own message
      room.mentions = 0;
    } else if (!room.serverLastId || compareIds(f.id, room.serverLastId) > 0) {
      room.unread++;
      if (personal) room.mentions++;
      if (personal) this.notify(room, f);
    }
    this.renderRoomList();
  }

  onAck(f, info) {
    if (info && info.resolve) {
      info.resolve(f);
      return;
    }
    const room = this.rooms.get(f.room);
    const clientId = f.client_id || (info && info.clientId);
    if (!room || !clientId || typeof f.id !== 'string') return;
    const shown = room === this.open;
    const list = this.dom.messages;
    const stick = shown && nearBottom(list);
    const pending = room.findPending(clientId);
    const reply = Boolean(pending && pending.replyTo);
    const oldNext = pending && !reply ? room.after(pending) : null;
    const res = room.ack(clientId, f.id);
    if (!res) return;
    if (res.kind === 'dropped') {
      if (res.msg.el) res.msg.el.remove();
      if (res.msg.tel) res.msg.tel.remove();
      if (shown && !reply) this.regroup(room, [oldNext]);
      if (reply) this.thread.regroup();
      return;
    }
    updateMessageEl(res.msg, this.me);
    if (reply) this.noteReply(room, res.msg, true);
    if (shown) {
      this.place(room, res.msg, res.index);
      this.regroup(room, [res.msg, room.after(res.msg), oldNext]);
      if (stick && !reply) scrollToBottom(list);
      this.markRead(room);
      this.updateEdge();
    }
  }

  /** A reply was stored: its root counts it (unless it came with the root's count), its open thread shows it. */
  noteReply(room, msg, fresh) {
    if (fresh) {
      const root = room.countReply(msg);
      if (root) updateMessageEl(root, this.me);
    }
    if (this.thread.isOpen(room, msg.replyTo)) this.thread.add(msg);
  }

  onJoined(f) {
    const room = this.rooms.get(f.room);
    if (!room) return;
    room.online = new Set(f.online || []);
    if (f.recovered === false && room.loaded) {
      // Retention dropped messages after our position: what we show has a
      // hole. Start over from the newest page; the replay that follows this
      // frame and the live stream merge into it by ID.
      room.resetHistory();
      if (room === this.open) this.renderMessages(room);
      this.loadInitial(room);
      if (this.thread.isOpen(room)) {
        // Its replies missed events too: read it again.
        const rootId = this.thread.rootId;
        this.thread.close();
        this.openThread(rootId);
      }
    }
    if (room === this.open) this.renderOnline();
    if (this.membersPanel.isOpen(room)) this.membersPanel.render();
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
    if (this.membersPanel.isOpen(room)) this.membersPanel.render();
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

  onRoomAdded(f) {
    if (typeof f.room !== 'string' || !f.room) return;
    this.addRoom(f.room, f.kind);
  }

  /**
   * We were removed from a room or banned: a kicked frame (this socket is
   * out of the room) or a room_removed event (to all our sockets), often
   * both. A private channel or a ban closes the room to us; a public
   * channel stays readable, so only our membership ends and the room is
   * joined again from where its stream stopped.
   */
  onRoomRemoved(f, kicked) {
    const room = this.rooms.get(f.room);
    if (!room) return;
    const reason = f.reason === 'banned' ? 'banned' : 'removed';
    if (room.kind === 'channel' && reason === 'removed') {
      room.role = '';
      if (kicked && room.joined) {
        room.joined = false;
        this.join(room);
      }
      if (!room.leaving) this.noticeRemoved(room, reason);
      if (room === this.open) this.renderRoomHead();
      if (this.membersPanel.isOpen(room)) this.membersPanel.load();
      return;
    }
    room.joined = false;
    this.dropRoom(room, room.leaving ? null : reason);
  }

  /** Says, in a notice that stays until dismissed, that we were removed from or banned in room. */
  noticeRemoved(room, reason) {
    const last = room.lastNotice;
    if (last && last.reason === reason && Date.now() - last.at < NOTICE_REPEAT_MS) return;
    room.lastNotice = { reason, at: Date.now() };
    const label = `#${room.name}`;
    let title;
    let detail;
    if (reason === 'banned') {
      title = `You were banned from ${label}.`;
      detail = 'You can no longer read it or write there.';
    } else if (room.kind === 'channel') {
      title = `You were removed from the members of ${label}.`;
      detail = 'It is a public channel: you can still read it.';
    } else {
      title = `You were removed from ${label}.`;
      detail = 'It is a private channel: you can no longer read it.';
    }
    const d = this.dom;
    d.kickedTitle.textContent = title;
    d.kickedDetail.textContent = detail;
    d.kickedNotice.setAttribute('data-reason', reason);
    d.kickedNotice.setAttribute('data-room', room.name);
    d.kickedNotice.hidden = false;
  }

  hideNotice() {
    this.dom.kickedNotice.hidden = true;
  }

  /** A message names us in a room this socket has not joined (beyond the per-socket limit). */
  onMention(f) {
    const room = this.rooms.get(f.room);
    if (!room) {
      if (typeof f.room === 'string' && f.room) this.addRoom(f.room);
      return;
    }
    if (room.joined || room === this.open) return; // the message frame counts it
    room.unread++;
    room.mentions++;
    this.notify(room, f);
    this.renderRoomList();
  }

  onTopic(f) {
    const room = this.rooms.get(f.room);
    if (!room) return;
    room.topic = f.topic || '';
    if (room === this.open) this.renderRoomHead();
  }

  onError(f, info) {
    const text = errorText(f.code, f.message);
    if (info && info.reject) {
      info.reject(new FrameError(f.code, text));
      return;
    }
    if (info && info.kind === 'send') {
      const room = this.rooms.get(info.room);
      const msg = room && room.findPending(info.clientId);
      if (msg) {
        msg.failed = true;
        msg.retryable = RETRYABLE.has(f.code);
        updateMessageEl(msg, this.me);
        if (msg.replyTo) this.thread.regroup();
        else if (room === this.open) this.regroup(room, [msg, room.after(msg)]);
      }
    } else if (info && info.kind === 'join') {
      const room = this.rooms.get(info.room);
      if (room) {
        room.joined = false; // tried again the next time it is opened
        if (f.code === 'rate_limited') {
          // The server allows fewer rooms per socket than we assumed.
          this.maxJoined = Math.max(1, this.joinedCount());
        }
        // A room joined in the background is nobody's business until it is opened.
        if (room !== this.open) return;
      }
    }
    this.showError(text);
  }

  // ---- rendering --------------------------------------------------------

  /** Channels (public and private) by name, then direct rooms by the other person's name. */
  sidebarOrder() {
    const all = [...this.rooms.values()];
    const byLabel = (a, b) => this.label(a).localeCompare(this.label(b));
    return [
      ...all.filter((r) => r.kind !== 'direct').sort(byLabel),
      ...all.filter((r) => r.kind === 'direct').sort(byLabel),
    ];
  }

  renderRoomList() {
    const order = this.sidebarOrder();
    const dms = order.filter((r) => r.kind === 'direct');
    this.syncList(this.dom.channelList, order.filter((r) => r.kind !== 'direct'));
    this.syncList(this.dom.dmList, dms);
    this.dom.dmEmpty.hidden = dms.length > 0;

    // The tab's title: "(2)" counts what is for us (DMs, mentions), "•"
    // says other rooms have something new.
    let personal = 0;
    let elsewhere = 0;
    for (const r of order) {
      personal += r.kind === 'direct' ? r.unread : r.mentions;
      if (r !== this.open) elsewhere += r.unread;
    }
    let unreadAll = 0;
    for (const r of order) unreadAll += r.unread;
    const prefix = personal > 0 ? `(${personal}) ` : unreadAll > 0 ? '• ' : '';
    const where = this.open ? `${this.open.kind === 'direct' ? '' : '#'}${this.label(this.open)} · ` : '';
    document.title = `${prefix}${where}Redstream`;
    // The phone's menu button carries a dot while another room has news.
    this.dom.menuDot.hidden = elsewhere === 0;
    this.dom.menuButton.setAttribute('aria-label', elsewhere > 0 ? 'Show rooms (new messages)' : 'Show rooms');
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
    if (room.ui && room.ui.kind === room.kind) return room.ui.li;
    if (room.ui) room.ui.li.remove();
    const label = this.label(room);
    const btn = h('button', {
      type: 'button',
      class: `room ${room.kind}`,
      'data-testid': `room-${room.name}`,
      'data-room': room.name,
    },
    room.kind === 'direct' ? avatar(label) : h('span', { class: `room-hash ${room.kind}`, 'aria-hidden': 'true' }),
    h('span', { class: 'room-name' }, label));
    const li = h('li', {}, btn);
    room.ui = { li, btn, badge: null, kind: room.kind };
    return li;
  }

  updateRoomItem(room) {
    const ui = room.ui;
    const active = room === this.open;
    ui.btn.classList.toggle('active', active);
    if (active) ui.btn.setAttribute('aria-current', 'page');
    else ui.btn.removeAttribute('aria-current');
    const unread = active ? 0 : room.unread;
    ui.btn.classList.toggle('has-unread', unread > 0);
    // An "@" before the count: some of the unread messages name us.
    const mentions = active || room.kind === 'direct' ? 0 : Math.min(room.mentions, unread);
    if (mentions > 0) {
      if (!ui.mention) {
        ui.mention = h('span', { class: 'mention-badge', 'data-testid': 'mention-badge' }, '@');
        ui.btn.insertBefore(ui.mention, ui.badge || null);
      }
      ui.mention.setAttribute('data-count', String(mentions));
      ui.mention.setAttribute('title', mentions === 1 ? '1 message mentions you' : `${mentions} messages mention you`);
    } else if (ui.mention) {
      ui.mention.remove();
      ui.mention = null;
    }
    if (unread > 0) {
      if (!ui.badge) {
        ui.badge = h('span', { class: 'badge', 'data-testid': 'unread' });
        ui.btn.append(ui.badge);
      }
      const personal = room.kind === 'direct' || room.mentions > 0;
      ui.badge.classList.toggle('personal', personal);
      ui.badge.textContent = String(unread);
      ui.badge.setAttribute('aria-label', room.mentions > 0 && room.kind !== 'direct'
        ? `${unread} unread, ${room.mentions} mentioning you` : `${unread} unread`);
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
    d.searchBox.hidden = !room;
    d.membersToggle.hidden = !room || room.kind === 'direct';
    this.setNewBelow(0);
    if (!room) {
      d.roomTitle.textContent = 'Welcome';
      d.roomTitle.className = 'room-title';
      d.roomTopic.textContent = '';
      d.topicEdit.hidden = true;
      d.roomSub.textContent = 'Pick a channel or start a direct message.';
      d.messages.replaceChildren();
      d.typing.textContent = '';
      d.searchCount.textContent = '';
      d.messages.classList.remove('searching');
      this.renderOnline();
      this.renderRoomList();
      return;
    }
    const label = this.label(room);
    d.roomTitle.textContent = label;
    d.roomTitle.className = `room-title ${room.kind}`;
    d.composer.placeholder = room.kind === 'direct' ? `Message ${label}` : `Message #${label}`;
    d.composer.setAttribute('aria-label', d.composer.placeholder);
    this.renderMessages(room);
    this.renderOnline();
    this.renderTyping();
  }

  renderMessages(room) {
    const frag = document.createDocumentFragment();
    frag.append(this.edge);
    for (const m of room.confirmed) {
      const el = messageEl(m, this.me);
      el.classList.toggle('in-thread', room.inThread(m));
      frag.append(el);
    }
    for (const m of room.pending) frag.append(messageEl(m, this.me));
    this.dom.messages.replaceChildren(frag);
    this.seenMsg = null;
    this.regroupAll(room);
    this.placeDivider();
    this.applySearch();
    this.updateEdge();
    this.updateSeen(room);
    this.scrollToStart();
  }

  /**
   * Puts the "New" line above the first message that was unread when the
   * room was opened, once those messages are shown.
   */
  placeDivider() {
    const want = this.dividerFor;
    this.divider.remove();
    if (!want || want.room !== this.open || !want.room.loaded) return;
    let n = want.count;
    const msgs = want.room.confirmed;
    for (let i = msgs.length - 1; i >= 0; i--) {
      if (msgs[i].user === this.me) continue;
      if (--n === 0) {
        if (msgs[i].el && msgs[i].el.parentNode === this.dom.messages) this.dom.messages.insertBefore(this.divider, msgs[i].el);
        return;
      }
    }
  }

  /** Scrolls a freshly shown room to its newest message, or to the "New" line if that is further up. */
  scrollToStart() {
    const list = this.dom.messages;
    scrollToBottom(list);
    if (this.divider.parentNode === list) {
      // .messages is positioned, so offsetTop is in its scroll coordinates.
      const top = this.divider.offsetTop - 8;
      if (top < list.scrollTop) list.scrollTop = Math.max(0, top);
    }
  }

  renderRoomHead() {
    const d = this.dom;
    const room = this.open;
    if (!room) return;
    if (room.kind === 'direct') {
      d.roomTopic.textContent = '';
      d.topicEdit.hidden = true;
      d.roomSub.textContent = room.online.has(dmPeer(room.name, this.me)) ? 'Here now' : 'Direct message';
      return;
    }
    d.roomTitle.className = `room-title ${room.kind}`;
    if (d.topicForm.hidden) {
      d.roomTopic.textContent = room.topic;
      d.roomTopic.title = room.topic;
      d.topicEdit.hidden = !room.moderates();
      d.topicEdit.textContent = room.topic ? 'Edit' : 'Add a topic';
    }
    d.roomSub.textContent = `${room.online.size} online`;
    const ml = room.memberList;
    d.membersCount.textContent = ml ? `${ml.members.size}${ml.more ? '+' : ''}` : 'Members';
    d.membersToggle.setAttribute('aria-label', ml ? `Members: ${ml.members.size}` : 'Members');
  }

  updateEdge() {
    const room = this.open;
    let text = '';
    if (room) {
      const label = room.kind === 'direct' ? `your conversation with ${this.label(room)}` : `#${room.name}`;
      if (!room.loaded) text = 'Loading messages…';
      else if (room.loadingOlder) text = 'Loading older messages…';
      else if (!room.hasMore && room.isEmpty()) text = 'No messages yet. Say hello!';
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
    d.onlineTitle.textContent = room.kind === 'direct' ? 'Online' : `Online in #${room.name} · ${users.length}`;
    d.onlineList.replaceChildren(...users.map((u) => h('li', { class: u === this.me ? 'me' : null, 'data-user': u },
      h('span', { class: 'dot', 'aria-hidden': 'true' }), avatar(u), h('span', { class: 'user-name' }, u))));
    this.renderRoomHead();
  }

  renderTyping() {
    const room = this.open;
    this.dom.typing.textContent = room ? typingText([...room.typing.keys()].sort()) : '';
  }
}

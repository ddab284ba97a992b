// DOM building blocks. Every piece of user-supplied text (messages,
// usernames, room names, server error messages) goes through textContent
// or text nodes; nothing here ever parses a string as HTML. Links are <a>
// elements whose href is a URL that parsed as http or https.

import { actionText, continuesGroup, formatTime, hueIndex, textParts } from './util.js';

/** Avatar colours: .c0 … .c23 in style.css, each with white text at ≥ 4.5:1. */
export const AVATAR_COLOURS = 24;

/**
 * Creates an element. attrs maps attribute names to values (false/null
 * skip it); children are nodes or strings, strings becoming text nodes.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return el;
}

/** A round avatar with the user's initial, coloured by name. */
export function avatar(user) {
  return h('span', { class: `avatar c${hueIndex(user, AVATAR_COLOURS)}`, 'aria-hidden': 'true' },
    (user[0] || '?').toUpperCase());
}

/** The nodes of a message text: plain text, links, and @mentions (ours marked). */
function textNodes(text, me) {
  return textParts(text).map((p) => {
    if (p.link) return h('a', { href: p.link, target: '_blank', rel: 'noopener noreferrer nofollow' }, p.text);
    if (p.mention) return h('span', { class: p.mention === me ? 'mention me' : 'mention' }, p.text);
    return document.createTextNode(p.text);
  });
}

/** Which message object an element shows (the menu and the click handlers need it). */
const msgOfEl = new WeakMap();

/** The message an element (or anything inside one) shows, or null. */
export function msgOf(node) {
  const el = node && node.closest ? node.closest('.msg') : null;
  return el ? msgOfEl.get(el) || null : null;
}

/**
 * Builds (once) and returns the element of a message: in the room's list
 * (where = "room", cached in msg.el) or in the thread panel ("thread",
 * cached in msg.tel). One message may show in both.
 */
export function messageEl(msg, me, where = 'room') {
  const key = where === 'room' ? 'el' : 'tel';
  if (msg[key]) return msg[key];
  const el = h('div', { class: 'msg', 'data-testid': 'message', 'data-user': msg.user },
    avatar(msg.user),
    h('div', { class: 'msg-body' },
      h('div', { class: 'msg-meta' },
        h('span', { class: 'msg-user' }, msg.user),
        h('time'),
        h('span', { class: 'msg-edited', 'data-testid': 'edited', hidden: true }, '(edited)')),
      where === 'room'
        ? h('button', { type: 'button', class: 'msg-thread-of', 'data-testid': 'thread-of', hidden: true }, 'Replied in a thread')
        : null,
      h('div', { class: 'msg-text' }),
      h('div', { class: 'msg-reactions', hidden: true }),
      where === 'room'
        ? h('button', { type: 'button', class: 'msg-thread', 'data-testid': 'thread-link', hidden: true })
        : null,
      h('div', { class: 'msg-state' })));
  el.classList.toggle('own', msg.user === me);
  msg[key] = el;
  msgOfEl.set(el, msg);
  renderMessage(msg, el, me);
  return el;
}

/** Brings every element of a message in line with its state. */
export function updateMessageEl(msg, me) {
  for (const el of [msg.el, msg.tel]) if (el) renderMessage(msg, el, me);
}

/** "3 replies", "1 reply". */
export function repliesText(n) {
  return n === 1 ? '1 reply' : `${n} replies`;
}

/** The names of a reaction's users for its tooltip: "alice, bob and 3 others". */
export function reactorsText(users, me) {
  const names = users.map((u) => (u === me ? 'you' : u));
  if (names.length <= 6) {
    return names.length === 1 ? names[0] : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
  }
  return `${names.slice(0, 5).join(', ')} and ${names.length - 5} others`;
}

function renderMessage(msg, el, me) {
  el.classList.toggle('pending', msg.pending && !msg.failed);
  el.classList.toggle('failed', msg.failed);
  el.classList.toggle('deleted', Boolean(msg.deleted));
  if (msg.id) el.setAttribute('data-id', msg.id);
  else el.removeAttribute('data-id');
  if (msg.clientId) el.setAttribute('data-client-id', msg.clientId);
  if (msg.deleted) el.setAttribute('data-deleted', '');
  else el.removeAttribute('data-deleted');

  const t = formatTime(msg.ts);
  const time = el.querySelector('time');
  time.textContent = t.short;
  time.setAttribute('datetime', t.iso);
  time.setAttribute('title', t.long);

  // The text is rebuilt only when it changed (an edit, a deletion): a
  // state change (acked, reacted) leaves the nodes, and any selection, alone.
  const shown = msg.deleted ? '\u0000deleted' : msg.editText ?? msg.text;
  if (el.shownText !== shown) {
    el.shownText = shown;
    const body = el.querySelector('.msg-text');
    const action = msg.deleted ? null : actionText(shown);
    if (msg.deleted) {
      body.replaceChildren('This message was deleted.');
    } else if (action !== null) {
      body.replaceChildren(h('span', { class: 'msg-actor' }, msg.user), ' ', ...textNodes(action, me));
    } else {
      body.replaceChildren(...textNodes(shown, me));
    }
    el.classList.toggle('action', action !== null);
    el.classList.toggle('mentions-me', !msg.deleted && textParts(shown).some((p) => p.mention === me));
  }

  const edited = el.querySelector('.msg-edited');
  edited.hidden = !msg.editedTs || msg.deleted;
  if (msg.editedTs) edited.setAttribute('title', `Edited ${formatTime(msg.editedTs).long}`);

  const threadOf = el.querySelector('.msg-thread-of');
  if (threadOf) threadOf.hidden = !msg.replyTo;

  renderReactions(msg, el.querySelector('.msg-reactions'), me);

  const thread = el.querySelector('.msg-thread');
  if (thread) {
    const n = msg.replyCount || 0;
    thread.hidden = n === 0 || Boolean(msg.replyTo);
    if (n > 0) thread.textContent = repliesText(n);
  }

  const state = el.querySelector('.msg-state');
  if (msg.failed) state.textContent = msg.retryable ? 'Not sent. Click to retry.' : 'Not sent. Click to edit.';
  else if (msg.pending) state.textContent = 'Sending…';
  else if (msg.editText !== undefined) state.textContent = 'Saving…';
  else if (msg.deleting) state.textContent = 'Deleting…';
  else state.textContent = '';
  if (msg.failed) el.setAttribute('title', msg.retryable ? 'Click to send again' : 'Click to edit and send again');
  else el.removeAttribute('title');
}

/** The counts under a message: one button per emoji, pressed when one of them is ours. */
function renderReactions(msg, row, me) {
  // In emoji order, not in the order they came: every window, and the
  // same window after a reload (history gives no order), shows them alike.
  const list = msg.deleted || !msg.reactions ? [] : [...msg.reactions].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  row.hidden = list.length === 0;
  if (list.length === 0) {
    row.replaceChildren();
    return;
  }
  row.replaceChildren(...list.map(([emoji, users]) => {
    const mine = users.includes(me);
    const who = reactorsText(users, me);
    return h('button', {
      type: 'button',
      class: mine ? 'reaction mine' : 'reaction',
      'data-testid': 'reaction',
      'data-emoji': emoji,
      'data-users': users.join(','),
      'aria-pressed': String(mine),
      title: `${who} reacted with ${emoji}`,
      'aria-label': `${emoji} ${users.length}: ${who}. ${mine ? 'Click to remove yours' : 'Click to add yours'}`,
    }, h('span', { class: 'reaction-emoji' }, emoji), h('span', { class: 'reaction-count' }, String(users.length)));
  }), h('button', {
    type: 'button', class: 'reaction add', 'data-testid': 'add-reaction', 'aria-label': 'Add a reaction', title: 'Add a reaction',
  }, '+'));
}

/**
 * Shows or hides a message's avatar and name line: a message that
 * continues its author's group (continuesGroup) shows only its text, and
 * its time on hover.
 */
export function setGrouped(msg, prev, key = 'el') {
  if (!msg || !msg[key]) return;
  msg[key].classList.toggle('grouped', continuesGroup(prev, msg));
}

/** Marks a message as read by the other member of a direct room. */
export function markSeen(msg, seen) {
  if (msg.el) msg.el.classList.toggle('seen', seen);
}

/**
 * Whether a keydown sends what a text box holds: Enter sends, Shift+Enter
 * is a newline, and never while an IME is composing (keyCode 229).
 */
export function isSendKey(ev) {
  return ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229;
}

/** Whether a scroll container is (nearly) scrolled to its end. */
export function nearBottom(el, slack = 80) {
  return el.scrollHeight - el.scrollTop - el.clientHeight <= slack;
}

export function scrollToBottom(el) {
  el.scrollTop = el.scrollHeight;
}

/** "alice is typing…", "alice and bob are typing…", "Several people are typing…". */
export function typingText(users) {
  if (users.length === 0) return '';
  if (users.length === 1) return `${users[0]} is typing…`;
  if (users.length === 2) return `${users[0]} and ${users[1]} are typing…`;
  return 'Several people are typing…';
}

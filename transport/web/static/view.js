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

/** Builds (once) and returns the element of a message. */
export function messageEl(msg, me) {
  if (msg.el) return msg.el;
  const time = h('time');
  const action = actionText(msg.text);
  const body = h('div', { class: 'msg-text' });
  if (action !== null) {
    body.append(h('span', { class: 'msg-actor' }, msg.user), ' ', ...textNodes(action, me));
  } else {
    body.append(...textNodes(msg.text, me));
  }
  const el = h('div', { class: 'msg', 'data-testid': 'message', 'data-user': msg.user },
    avatar(msg.user),
    h('div', { class: 'msg-body' },
      h('div', { class: 'msg-meta' }, h('span', { class: 'msg-user' }, msg.user), time),
      body,
      h('div', { class: 'msg-state' })));
  el.classList.toggle('own', msg.user === me);
  el.classList.toggle('action', action !== null);
  el.classList.toggle('mentions-me', textParts(msg.text).some((p) => p.mention === me));
  msg.el = el;
  updateMessageEl(msg);
  return el;
}

/** Brings a message element in line with its state (pending, acked, failed, server time). */
export function updateMessageEl(msg) {
  const el = msg.el;
  if (!el) return;
  el.classList.toggle('pending', msg.pending && !msg.failed);
  el.classList.toggle('failed', msg.failed);
  if (msg.id) el.setAttribute('data-id', msg.id);
  else el.removeAttribute('data-id');
  if (msg.clientId) el.setAttribute('data-client-id', msg.clientId);

  const t = formatTime(msg.ts);
  const time = el.querySelector('time');
  time.textContent = t.short;
  time.setAttribute('datetime', t.iso);
  time.setAttribute('title', t.long);

  const state = el.querySelector('.msg-state');
  if (msg.failed) state.textContent = msg.retryable ? 'Not sent. Click to retry.' : 'Not sent. Click to edit.';
  else if (msg.pending) state.textContent = 'Sending…';
  else state.textContent = '';
  if (msg.failed) el.setAttribute('title', msg.retryable ? 'Click to send again' : 'Click to edit and send again');
  else el.removeAttribute('title');
}

/**
 * Shows or hides a message's avatar and name line: a message that
 * continues its author's group (continuesGroup) shows only its text, and
 * its time on hover.
 */
export function setGrouped(msg, prev) {
  if (!msg || !msg.el) return;
  msg.el.classList.toggle('grouped', continuesGroup(prev, msg));
}

/** Marks a message as read by the other member of a direct room. */
export function markSeen(msg, seen) {
  if (msg.el) msg.el.classList.toggle('seen', seen);
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

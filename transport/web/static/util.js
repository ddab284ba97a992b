// Small helpers shared by the client modules: stream-ID ordering, client
// IDs for idempotent sends, room labels, time formatting, channel names,
// error wording and the parts a message's text is split into for display.
// None of them touch the DOM.

/**
 * Splits a Redis stream ID ("1700000000000-3", or just "1700000000000")
 * into its millisecond and sequence parts. Both fit in a double for any
 * real ID: milliseconds are ~1.7e12 and sequences are small.
 */
function idParts(id) {
  const dash = id.indexOf('-');
  if (dash < 0) return [Number(id), 0];
  return [Number(id.slice(0, dash)), Number(id.slice(dash + 1))];
}

/** Orders two stream IDs: negative if a is older than b, 0 if equal, positive if newer. */
export function compareIds(a, b) {
  if (a === b) return 0;
  const [am, as] = idParts(a);
  const [bm, bs] = idParts(b);
  return am !== bm ? am - bm : as - bs;
}

/** Returns the newer of two stream IDs; either may be null. */
export function maxId(a, b) {
  if (!a) return b;
  if (!b) return a;
  return compareIds(a, b) >= 0 ? a : b;
}

/**
 * A fresh random client_id for one send. crypto.randomUUID exists only in
 * secure contexts (https, localhost); a page opened at http://10.0.0.5
 * falls back to a v4 UUID built from getRandomValues.
 */
export function newClientId() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The other member of a direct room "dm:<a>:<b>" as seen by me; a direct
 * room with oneself shows one's own name. Usernames cannot contain ":".
 */
export function dmPeer(name, me) {
  const [, a = '', b = ''] = name.split(':');
  if (a === me) return b || a;
  return a;
}

/** The name a room is shown under: the channel name, or the other person's name. */
export function roomLabel(room, me) {
  return room.kind === 'direct' ? dmPeer(room.name, me) : room.name;
}

// hour: 'numeric' rather than '2-digit': "6:15 PM", not "06:15 PM"; in
// 24-hour locales the hour keeps its usual two digits ("18:15").
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit',
});
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

/** Whether two Unix-ms times fall on the same local calendar day. */
export function sameDay(a, b) {
  const x = new Date(a);
  const y = new Date(b);
  return x.getFullYear() === y.getFullYear() && x.getMonth() === y.getMonth() && x.getDate() === y.getDate();
}

/**
 * Formats a Unix-millisecond timestamp for a message: the time of day for
 * today's messages, date and time for older ones. Returns the short text
 * and a long form for the tooltip.
 */
export function formatTime(ts, now = Date.now()) {
  const d = new Date(ts);
  return { short: (sameDay(ts, now) ? timeFmt : dateTimeFmt).format(d), long: fullFmt.format(d), iso: d.toISOString() };
}

/**
 * A stable small integer for a username, used to pick its avatar colour:
 * FNV-1a over the UTF-16 code units, which spreads short similar names
 * ("alice", "bob", "carol") far better than a multiply-by-31 hash.
 */
export function hueIndex(name, buckets) {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % buckets;
}

/** Longest channel name the server takes (PROTOCOL.md: 1–64 characters). */
export const MAX_CHANNEL_NAME = 64;

/**
 * Turns what a person typed into a channel name the server accepts:
 * "Design Review" becomes "design-review". Lowercases, turns runs of
 * spaces, dots and other separators into one "-", drops what a name
 * cannot hold, and trims dashes at either end. Returns "" when nothing
 * usable is left.
 */
export function channelName(input) {
  return String(input)
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '') // accents: "Café" -> "cafe"
    .toLowerCase()
    .replace(/^#+/, '')
    .replace(/[\s./\\,;:+&]+/g, '-')
    .replace(/[^a-z0-9_-]/g, '')
    .replace(/-{2,}/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, MAX_CHANNEL_NAME)
    .replace(/-+$/, '');
}

// What the engine appends to a message when it wraps a sentinel error
// ("password must be 8 to 256 characters: invalid"): the code again, in words.
const CODE_SUFFIX = {
  invalid: 'invalid',
  not_found: 'not found',
  forbidden: 'forbidden',
  too_large: 'too large',
  rate_limited: 'rate limited',
  room_exists: 'already exists',
  username_taken: 'already exists',
};

/**
 * The sentence shown for an error answer: the server's message without
 * the code it repeats at its end, starting with a capital and ending with
 * a full stop. A few messages that say too little once their code is gone
 * are reworded from the code and what the request was about.
 */
export function errorText(code, message) {
  let m = String(message || '').trim();
  const suffix = CODE_SUFFIX[code];
  if (suffix && m.endsWith(`: ${suffix}`)) m = m.slice(0, -(suffix.length + 2)).trim();
  let match;
  if (code === 'not_found' && (match = /^user "?([^"\s]+)"?$/.exec(m))) {
    m = `There is no user named ${match[1]}`;
  } else if (code === 'not_found' && (match = /^room "?([^"\s]+)"?$/.exec(m))) {
    m = `There is no room named ${match[1]}`;
  } else if (code === 'forbidden' && (match = /^room "?([^"\s]+)"?$/.exec(m))) {
    m = `You do not have access to ${match[1]}`;
  } else if (code === 'forbidden' && (match = /^room "?([^"\s:]+)"?: (.+)$/.exec(m))) {
    // "room x: you are muted there": the reason, with the room named in it.
    const room = match[1].startsWith('dm:') ? 'this conversation' : `#${match[1]}`;
    m = match[2]
      .replace(/^it is /, `${room} is `)
      .replace(/\bfrom it\b/, `from ${room}`)
      .replace(/\bthere$/, `in ${room}`)
      .replace(/\bits\b/, room.startsWith('#') ? `${room}'s` : 'its');
  }
  if (!m) m = code ? code.replace(/_/g, ' ') : 'The server refused the request';
  m = m[0].toUpperCase() + m.slice(1);
  if (!/[.!?…]$/.test(m)) m += '.';
  return m;
}

// A link runs from http:// or https:// to the next whitespace; trailing
// punctuation that usually ends the sentence around it is not part of it.
const LINK_RE = /\bhttps?:\/\/[^\s<>"]+/gi;
const MENTION_RE = /(^|[^A-Za-z0-9_.-])@([A-Za-z0-9_.-]{3,32})/g;

function trimLink(url) {
  let u = url;
  for (;;) {
    const last = u[u.length - 1];
    if ('.,;:!?\'"'.includes(last)) {
      u = u.slice(0, -1);
    } else if (')]}'.includes(last)) {
      const open = { ')': '(', ']': '[', '}': '{' }[last];
      // Keep a closing bracket the link itself opened: wiki/Foo_(bar).
      if (u.split(open).length >= u.split(last).length) break;
      u = u.slice(0, -1);
    } else {
      break;
    }
  }
  return u;
}

/**
 * Splits a message text into parts for display: {text}, {link, text} for
 * http(s) URLs and {mention, text} for @name. The parts' texts joined give
 * the input back unchanged. Nothing here produces markup; the view turns
 * each part into a text node or an element with textContent.
 */
export function textParts(text) {
  const marks = [];
  for (const m of text.matchAll(LINK_RE)) {
    const url = trimLink(m[0]);
    try {
      const u = new URL(url);
      if (u.protocol === 'http:' || u.protocol === 'https:') marks.push({ start: m.index, end: m.index + url.length, link: u.href });
    } catch {
      // not a URL after all: stays text
    }
  }
  for (const m of text.matchAll(MENTION_RE)) {
    const start = m.index + m[1].length;
    const name = m[2].replace(/[.-]+$/, '');
    const end = start + 1 + name.length;
    if (name.length >= 3 && !marks.some((k) => start < k.end && end > k.start)) {
      marks.push({ start, end, mention: name.toLowerCase() });
    }
  }
  marks.sort((a, b) => a.start - b.start);
  const parts = [];
  let at = 0;
  for (const k of marks) {
    if (k.start > at) parts.push({ text: text.slice(at, k.start) });
    const t = text.slice(k.start, k.end);
    parts.push(k.link ? { link: k.link, text: t } : { mention: k.mention, text: t });
    at = k.end;
  }
  if (at < text.length) parts.push({ text: text.slice(at) });
  return parts;
}

/** Whether a message names me: the server's mentions list, or an @me in its text. */
export function mentionsMe(m, me) {
  if (Array.isArray(m.mentions)) return m.mentions.includes(me);
  return textParts(m.text || '').some((p) => p.mention === me);
}

/** The text of a "/me waves" message without its command, or null for an ordinary one. */
export function actionText(text) {
  const m = /^\/me\s+(\S[\s\S]*)$/.exec(text || '');
  return m ? m[1] : null;
}

/** How far apart two messages of one person may be and still share one header. */
export const GROUP_WINDOW_MS = 5 * 60 * 1000;

/**
 * Whether msg continues the group of prev: the same author, within
 * GROUP_WINDOW_MS, on the same day, and neither is an action (/me) or a
 * failed send, which always stand on their own.
 */
export function continuesGroup(prev, msg) {
  if (!prev || !msg || prev.user !== msg.user) return false;
  if (prev.failed || msg.failed || actionText(prev.text) !== null || actionText(msg.text) !== null) return false;
  if (Math.abs(msg.ts - prev.ts) > GROUP_WINDOW_MS) return false;
  return sameDay(prev.ts, msg.ts);
}

// Small helpers shared by the client modules: stream-ID ordering, client
// IDs for idempotent sends, room labels and time formatting.

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

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
});
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

/**
 * Formats a Unix-millisecond timestamp for a message: the time of day for
 * today's messages, date and time for older ones. Returns the short text
 * and a long form for the tooltip.
 */
export function formatTime(ts) {
  const d = new Date(ts);
  const now = new Date();
  const sameDay = d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth()
    && d.getDate() === now.getDate();
  return { short: (sameDay ? timeFmt : dateTimeFmt).format(d), long: fullFmt.format(d), iso: d.toISOString() };
}

/** A stable small integer for a username, used to pick its avatar colour. */
export function hueIndex(name, buckets) {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) | 0;
  return Math.abs(h) % buckets;
}

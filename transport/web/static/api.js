// REST client for /api. Every failure is thrown as an ApiError carrying the
// server's error code ({"error":{"code","message"}}) and its message as a
// sentence for people (errorText), so the UI can show it as it is.

import { errorText } from './util.js';

/** Rooms asked for per page of GET /api/rooms (the server allows 1–500). */
const ROOMS_PAGE = 500;
/** Pages of GET /api/rooms read at most: 100,000 rooms, and an end to a server that never says has_more:false. */
const ROOMS_MAX_PAGES = 200;

/** An error answer from the server, or a network failure (status 0). */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter; // seconds, from Retry-After on 429
  }
}

// The characters of room names (channels: a-z 0-9 _ -; direct rooms add
// ":" and the "." of usernames), in byte order.
const NAME_CHARS = '-.0123456789:_abcdefghijklmnopqrstuvwxyz';

/**
 * The greatest name, in the alphabet of room names, that sorts before
 * name: its last character stepped back one, then filled up with "z". The
 * list sorts by name, so `after` it the next room is name itself.
 */
function nameBefore(name) {
  const last = NAME_CHARS.indexOf(name[name.length - 1]);
  const head = name.slice(0, -1);
  if (last <= 0) return head;
  // A few z, not up to 64: a longer `after` than any name may be refused.
  return (head + NAME_CHARS[last - 1]).padEnd(Math.max(name.length, Math.min(64, name.length + 4)), 'z');
}

/**
 * Creates the API client. getToken returns the current bearer token (or
 * null); onUnauthorized is called when an authenticated request answers
 * 401, after which the error is still thrown to the caller.
 */
export function createApi({ getToken, onUnauthorized }) {
  async function request(method, path, { body, auth = true } = {}) {
    const headers = { Accept: 'application/json' };
    const token = auth ? getToken() : null;
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';

    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit', // the token travels in the header, never as a cookie
      });
    } catch {
      throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection and try again.');
    }

    let data = null;
    if (res.status !== 204) {
      const text = await res.text();
      if (text) {
        try {
          data = JSON.parse(text);
        } catch {
          data = null;
        }
      }
    }
    if (!res.ok) {
      const e = data && typeof data === 'object' ? data.error : null;
      const retry = res.headers.get('Retry-After');
      const code = (e && e.code) || `http_${res.status}`;
      const err = new ApiError(
        res.status,
        code,
        e && e.message ? errorText(code, e.message) : `The server answered ${res.status} ${res.statusText}.`,
        retry ? Number(retry) : null,
      );
      if (res.status === 401 && token) onUnauthorized(err);
      throw err;
    }
    return data;
  }

  const roomPath = (room) => `/api/rooms/${encodeURIComponent(room)}`;

  return {
    register: (username, password) =>
      request('POST', '/api/register', { body: { username, password }, auth: false }),
    login: (username, password) =>
      request('POST', '/api/login', { body: { username, password }, auth: false }),
    logout: () => request('POST', '/api/logout'),
    me: () => request('GET', '/api/me'),
    /**
     * Every room of the list, paging through GET /api/rooms with `after`
     * while the server says has_more. A server that does not page answers
     * everything at once without has_more.
     */
    rooms: async () => {
      const all = [];
      let after = null;
      for (let page = 0; page < ROOMS_MAX_PAGES; page++) {
        const q = new URLSearchParams({ limit: String(ROOMS_PAGE) });
        if (after !== null) q.set('after', after);
        const data = await request('GET', `/api/rooms?${q}`);
        const rooms = (data && Array.isArray(data.rooms)) ? data.rooms : [];
        all.push(...rooms);
        if (!data.has_more || rooms.length === 0) break;
        after = rooms[rooms.length - 1].name;
      }
      return all;
    },
    /**
     * The list entry of one room, or null: one page of GET /api/rooms that
     * starts just before name. Cheaper than the whole list for a user with
     * many rooms when a room_added event names one new room.
     */
    room: async (name) => {
      const q = new URLSearchParams({ limit: '1' });
      const after = nameBefore(name);
      if (after) q.set('after', after);
      const data = await request('GET', `/api/rooms?${q}`);
      const rooms = (data && Array.isArray(data.rooms)) ? data.rooms : [];
      return rooms.find((r) => r.name === name) || null;
    },
    /** Creates a channel; opts: {private, topic}. The creator becomes its owner. */
    createRoom: (name, opts = {}) => {
      const body = { name };
      if (opts.private) body.private = true;
      if (opts.topic) body.topic = opts.topic;
      return request('POST', '/api/rooms', { body });
    },
    setTopic: (room, topic) => request('PATCH', roomPath(room), { body: { topic } }),
    openDirect: (user) => request('POST', '/api/dms', { body: { user } }),
    /** One history page; opts: {before, after, limit}. Messages come oldest first. */
    history: (room, opts = {}) => {
      const q = new URLSearchParams();
      for (const k of ['before', 'after', 'limit']) {
        if (opts[k] !== undefined && opts[k] !== null) q.set(k, String(opts[k]));
      }
      return request('GET', `${roomPath(room)}/messages?${q}`);
    },
    /** One page of a thread: {root, messages (oldest first), has_more (newer ones exist)}. */
    replies: (room, id, opts = {}) => {
      const q = new URLSearchParams({ limit: String(opts.limit || 200) });
      if (opts.after) q.set('after', opts.after);
      return request('GET', `${roomPath(room)}/messages/${encodeURIComponent(id)}/replies?${q}`);
    },
    /** One page of a room's members, sorted by name: {members:[{user, role, online}], has_more}. */
    members: (room, opts = {}) => {
      const q = new URLSearchParams({ limit: String(opts.limit || 1000) });
      if (opts.after) q.set('after', opts.after);
      return request('GET', `${roomPath(room)}/members?${q}`);
    },
    addMember: (room, user) => request('POST', `${roomPath(room)}/members`, { body: { user } }),
    removeMember: (room, user) => request('DELETE', `${roomPath(room)}/members/${encodeURIComponent(user)}`),
    setRole: (room, user, role) => request('PUT', `${roomPath(room)}/members/${encodeURIComponent(user)}`, { body: { role } }),
    /** Bans (mute=false) or mutes a user; seconds 0 means until lifted. */
    restrict: (room, user, { mute = false, seconds = 0 } = {}) => {
      const body = { user };
      if (seconds > 0) body.seconds = seconds;
      return request('POST', `${roomPath(room)}/${mute ? 'mutes' : 'bans'}`, { body });
    },
    bans: (room) => request('GET', `${roomPath(room)}/bans`),
    liftBan: (room, user) => request('DELETE', `${roomPath(room)}/bans/${encodeURIComponent(user)}`),
  };
}

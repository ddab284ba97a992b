// REST client for /api. Every failure is thrown as an ApiError carrying the
// server's error code and message ({"error":{"code","message"}}), so the UI
// can show the message as the server wrote it.

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
      const err = new ApiError(
        res.status,
        (e && e.code) || `http_${res.status}`,
        (e && e.message) || `The server answered ${res.status} ${res.statusText}.`,
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
    rooms: () => request('GET', '/api/rooms'),
    createRoom: (name) => request('POST', '/api/rooms', { body: { name } }),
    openDirect: (user) => request('POST', '/api/dms', { body: { user } }),
    /** One history page; opts: {before, after, limit}. Messages come oldest first. */
    history: (room, opts = {}) => {
      const q = new URLSearchParams();
      for (const k of ['before', 'after', 'limit']) {
        if (opts[k] !== undefined && opts[k] !== null) q.set(k, String(opts[k]));
      }
      return request('GET', `${roomPath(room)}/messages?${q}`);
    },
  };
}

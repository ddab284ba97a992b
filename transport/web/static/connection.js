// Connection keeps one WebSocket to /ws open for as long as the session
// lasts. It reconnects with exponential backoff after any close except
// 1008 (token expired or revoked), pings every 25 s, and declares a socket
// dead when nothing at all comes back within 10 s of a ping (a laptop lid
// or a dropped Wi-Fi can leave a socket "open" for minutes).
//
// It knows nothing about rooms: after every successful open it calls
// onOpen, and the chat controller re-joins its rooms from there.

const PING_EVERY_MS = 25_000;
const PONG_TIMEOUT_MS = 10_000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10_000;

/** Close code of a token that expired or was revoked (RFC 6455 policy violation). */
export const CLOSE_POLICY = 1008;

/** The WebSocket URL of /ws on this page's host, ws: or wss: to match the page. */
export function socketURL(token) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  // batch=1: the server may pack queued frames into one, newline-separated.
  return `${scheme}//${location.host}/ws?batch=1&token=${encodeURIComponent(token)}`;
}

export class Connection {
  /**
   * @param {object} o
   * @param {() => string} o.url            called for every attempt, so a new token is picked up
   * @param {() => void} o.onOpen           the socket is open; (re)join rooms and resend here
   * @param {(f: object) => void} o.onFrame one decoded server frame
   * @param {() => void} o.onDown           the socket closed; a reconnect follows unless stopped
   * @param {(s: string) => void} o.onStatus "connecting" | "connected" | "reconnecting"
   * @param {() => void} o.onPolicyClose    closed with 1008: the session is over
   * @param {() => void} o.onRefused        a socket closed before it opened (maybe a 401 upgrade)
   */
  constructor(o) {
    this.o = o;
    this.ws = null;
    this.stopped = true;
    this.attempt = 0; // consecutive failed attempts, for the backoff
    this.generation = 0; // increments on every successful open
    this.retryTimer = 0;
    this.pingTimer = 0;
    this.pongTimer = 0;
    this.lastFrameAt = 0;
    this.onOnline = () => {
      // The browser says the network is back: don't wait out the backoff.
      if (!this.stopped && !this.ws) {
        this.attempt = 0;
        this.connect();
      }
    };
  }

  get connected() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    this.connect();
  }

  /** Closes the socket for good (logout, session end); no reconnect follows. */
  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    clearTimeout(this.retryTimer);
    this.stopPing();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000, 'bye');
      } catch {
        // already closing
      }
    }
  }

  /** Sends one frame if the socket is open. Returns whether it was sent. */
  send(frame) {
    if (!this.connected) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (this.stopped || this.ws) return;
    this.o.onStatus(this.generation === 0 && this.attempt === 0 ? 'connecting' : 'reconnecting');

    let ws;
    try {
      ws = new WebSocket(this.o.url());
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    let opened = false;

    ws.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.generation++;
      this.lastFrameAt = Date.now();
      this.startPing();
      this.o.onStatus('connected');
      this.o.onOpen();
    };
    ws.onmessage = (ev) => {
      this.lastFrameAt = Date.now();
      if (typeof ev.data !== 'string') return;
      // With batch=1 one WebSocket message may hold several JSON objects,
      // one per line. JSON encoding escapes newlines inside strings, so a
      // raw newline always separates objects.
      for (const line of ev.data.split('\n')) {
        if (!line.trim()) continue;
        let frame;
        try {
          frame = JSON.parse(line);
        } catch {
          continue;
        }
        if (frame && typeof frame === 'object') this.o.onFrame(frame);
      }
    };
    ws.onerror = () => {}; // a close event always follows an error
    ws.onclose = (ev) => this.closed(ws, ev.code, opened);
  }

  closed(ws, code, opened) {
    if (ws !== this.ws) return; // a socket we already gave up on
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    this.ws = null;
    this.stopPing();
    if (this.stopped) return;
    this.o.onDown();
    if (code === CLOSE_POLICY) {
      this.stop();
      this.o.onPolicyClose();
      return;
    }
    this.o.onStatus('reconnecting');
    // A refused upgrade (401 for a revoked token) looks to the browser like
    // any network failure (code 1006), so let the owner check the token.
    if (!opened) this.o.onRefused();
    this.scheduleReconnect();
  }

  /** Waits 0.5 s, 1 s, 2 s, … up to 10 s, each ±20 % so clients do not reconnect in lockstep. */
  scheduleReconnect() {
    if (this.stopped) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    this.attempt++;
    const delay = Math.min(BACKOFF_MAX_MS, base * (0.8 + Math.random() * 0.4));
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  startPing() {
    this.stopPing();
    this.pingTimer = setInterval(() => {
      const sentAt = Date.now();
      if (!this.send({ type: 'ping' })) return;
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => {
        if (this.lastFrameAt >= sentAt || !this.ws) return;
        // Silent for too long: drop this socket and start over.
        const ws = this.ws;
        try {
          ws.close(4000, 'ping timeout');
        } catch {
          // ignore
        }
        this.closed(ws, 4000, true);
      }, PONG_TIMEOUT_MS);
    }, PING_EVERY_MS);
  }

  stopPing() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  }
}

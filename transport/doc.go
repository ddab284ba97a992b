// Package transport is chatd's outside: the REST API, the WebSocket
// gateway, the server API for an application's backend, webhooks and the
// embedded web client, over the engine. It speaks the contract of
// PROTOCOL.md and decides nothing of the chat itself: who may do what,
// and every message and event, are the engine's. cmd/chatd builds a
// [Server] with [New] from [Options] (the engine, the user, token and
// limit stores, which package store implements, and the limits) and
// serves it as an http.Handler, on a listener capped per client address
// by [LimitListener]; [Server.Drain] ends it.
//
// # REST
//
// Echo routes every request: /api/register and /api/login, the routes of
// a user's token (requireAuth checks it: HS256 with Options.Secret only,
// not expired, not revoked), /healthz, /readyz, /metrics, /debug/pprof
// when asked for, /ws and the web client. A handler reads its body with
// bind (at most Options.MaxBody bytes, a JSON object), calls the engine,
// and answers JSON or returns an error, which Echo's error handler writes
// as {"error":{"code","message"}}. Passwords are hashed with argon2id in
// two bounded pools, logins and registrations apart, so that a flood of
// one cannot starve the other; failed logins, registrations, refreshes and
// logouts are counted in Redis (the Limiter), shared by every instance.
//
// # Errors
//
// One table, errorTable in errors.go, decides what a client is told of an
// error: each row is a sentinel (the engine's, the transport's own such as
// errUnauthorized, or a library's) with its HTTP status, wire code,
// WebSocket close code and whether a retry may succeed. REST answers,
// error frames and close codes all read it; an error of no row is a 500
// "internal error" (a 1011 close), its detail only in the log. A client is
// told the human part of a message: "password must be 8 to 256 characters",
// not the sentinel's "invalid" after it.
//
// # The gateway
//
// GET /ws upgrades a request with a valid token (from the Authorization
// header, or ?token= for browsers) to a WebSocket, one engine session per
// socket. Client frames are decoded by package wire and handled in
// frames.go: join, leave, send, edit, delete, react, typing, read, ping
// and auth go to the session, and the answer (joined, ack, error…) is
// queued on the session in order with the room's messages. What the
// session queues is written to the socket: one frame per object, or, for
// ?batch=1 clients, several objects in one frame, newline-separated.
// Fan-out never waits for a socket: a session whose queue is full is
// kicked and its socket closed with 1013; a revoked or expired token
// closes it with 1008, a stopping server with 1001 (the error table's
// close column).
//
// # The connection loop
//
// After the upgrade (gateway.go) each WebSocket is a conn (conn.go). Its
// reader goroutine reads and handles client frames for the socket's whole
// life, because coder/websocket delivers pongs and close frames only to a
// reader. Between frames it waits in idleWait (conn_idle.go), a peek at
// the socket outside the library, so an idle socket's stack stays a few
// KiB; a test fails if the library stops reading through the buffered
// reader this relies on. The writer is the only goroutine that writes
// frames: the session's OnReady hook starts it, it writes everything
// queued in one system call (corkConn, wsconn.go) with no timer between
// the queue and the socket, and it exits after a second with nothing to
// write. The ping timer's goroutine exists only while a ping is out; the
// expiry timer closes the socket with 1008 when the token expires. Both
// run on Options.Now and Options.AfterFunc. A connection ends one way:
// end(err) records the first reason, and the writer closes the socket
// with the code closeOf reads from the error table, after writing the
// acks of in-flight sends if the server is going away. finish then waits
// for the writer and every timer callback before it releases the
// session, so no goroutine or timer of a connection outlives Drain.
// Frames other than send, edit, delete and react count against a
// per-socket token bucket (Options.FrameRate, FrameBurst); past it they
// get rate_limited and are dropped.
//
// # Server API
//
// With Options.APIKeys, /api/server serves the application's own backend
// (serverapi.go): create users and bots, mint tokens, send as a user,
// create rooms with owners and members, disconnect a user's sockets on
// every instance, read a room's presence. A request carries an API key,
// never a user token, and a key is refused on the user routes; every call
// is logged with the key's position in the list, never the key. Without
// keys every server API route answers 404.
//
// # Webhooks
//
// [Webhooks] POSTs the events of the room streams to WebhookOptions.URL, signed
// with HMAC-SHA256 (X-Chat-Signature). The room streams are the outbox:
// the store records a room as pending in the same step that stores an
// entry, and on every instance Webhooks takes a lease on pending rooms
// (one instance delivers a room at a time) and delivers each room's events
// in stream order, each after the previous was acknowledged, retrying
// with backoff until MaxAge. Nothing on the send path waits for delivery.
package transport

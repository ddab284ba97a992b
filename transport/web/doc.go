// Package web is the browser client of the chat server: a static page, its
// ES modules and its stylesheet, embedded into the binary with go:embed and
// served by [Handler].
//
// The client keeps every room of the user's list joined on its one socket
// (up to the server's 100 rooms per socket, the most recently active
// first), so unread counts, new rooms and mentions show as they happen;
// chat.js explains how it keeps each room's messages complete, ordered and
// unique, and room.js how edits, deletions and reactions bring each one to
// its current state. thread.js, members.js, menu.js and complete.js are
// the thread panel, the members panel, a message's menu and the
// @-completion. Every colour of style.css is a variable, and TestContrast checks
// each text/background pair of both themes against WCAG AA (4.5:1).
//
// cmd/chatd hands [Handler] to transport as its Web option, which mounts it
// behind every route the API and the WebSocket gateway do not claim. The
// client talks only to its own origin: REST under /api and the WebSocket at
// /ws, as ../shared/PROTOCOL.md fixes them. There is no build step; the files
// under static/ are what the browser loads.
//
// # Security headers
//
// Every response, 404s included, carries a Content-Security-Policy that
// allows scripts, styles and connections only from the page's own origin
// (WebSocket included), so the page holds no inline script or style and
// renders chat text only as text. It also sets X-Content-Type-Options,
// X-Frame-Options and Referrer-Policy. See [ContentSecurityPolicy].
package web

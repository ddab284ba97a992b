// Command chat is the command-line client of the chat server (cmd/chatd).
//
// Usage:
//
//	chat [--server URL] [--config-dir DIR] [--json] [--verbose] COMMAND [ARGS]
//
// Commands:
//
//	register USER            create an account (password from a prompt or one line of stdin)
//	login USER               log in and keep the token in DIR/token.json (mode 0600)
//	logout                   revoke the token on the server and delete token.json
//	whoami                   show the logged-in user
//	rooms                    list channels and your direct rooms: NAME KIND UNREAD LAST_ID
//	history ROOM [--before ID] [--after ID] [--limit N]
//	                         print a page of a room's history, oldest first
//	send ROOM TEXT...        post a message and print its id
//	dm USER                  open the direct room with USER and print its name
//	join ROOM                chat interactively: every line typed is sent to ROOM
//
// The server is --server, else $CHAT_SERVER, else the server the saved token
// belongs to, else http://localhost:8080. The configuration directory is
// --config-dir, else $CHAT_CONFIG_DIR, else the "chat" directory under
// [os.UserConfigDir]. Global flags may also follow the command, and
// command flags may follow its arguments:
//
//	chat history general --limit 10 --json
//
// Everything after the room of send is message text.
//
// With --json, rooms, history and whoami print the server's response body,
// and join prints every server frame as one JSON object per line.
//
// # Interactive sessions
//
// join connects to the server's WebSocket, prints who is online and the
// last 20 messages, then live messages ("15:04:05  bob: hi"), presence
// ("* bob is online") and typing notices, and errors ("! rate_limited: …").
// Each line read from stdin is sent to the room; "/quit" or end of input
// ends the session, after up to 2 s of waiting for the server to confirm
// what was sent. When the connection drops, join reconnects with backoff
// and resumes after the newest message it has shown, so nothing is missed
// or shown twice; lines typed meanwhile are sent once it is back.
//
// # Exit status
//
// 0 on success, 1 when the server or the network reports an error (printed
// as "chat: <message> (<code>)"), 2 for a usage error.
package main

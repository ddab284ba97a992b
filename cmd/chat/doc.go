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
//	rooms                    list the rooms you can see: NAME KIND ROLE UNREAD MENTIONS LAST_ID TOPIC
//	history ROOM [--before ID] [--after ID] [--limit N]
//	                         print a page of a room's history, oldest first, each
//	                         message led by its id and in its current state
//	send ROOM TEXT...        post a message and print its id
//	reply ROOM ID TEXT...    answer message ID in its thread and print the reply's id
//	thread ROOM ID [--after ID] [--limit N]
//	                         print message ID and a page of its replies
//	edit ROOM ID TEXT...     replace the text of your message ID and print it
//	delete ROOM ID           delete message ID (your own; any, as owner or moderator)
//	react ROOM ID EMOJI [--off]
//	                         add your reaction to message ID, or with --off take it back
//	dm USER                  open the direct room with USER and print its name
//	join ROOM                chat interactively: lines typed are sent to ROOM, /help lists commands
//	create NAME [--private] [--topic TEXT]
//	                         create a channel that you own; --private: for its members only
//	topic ROOM TEXT...       set the room's topic; an empty TEXT ("") clears it
//	members ROOM             list the room's members: USER ROLE ONLINE
//	add ROOM USER            add USER to the room
//	remove ROOM USER         remove USER from the room
//	leave ROOM               stop being a member of the room
//	role ROOM USER ROLE      make USER owner, moderator or member of the room
//	ban ROOM USER [--for DURATION]
//	                         remove USER and refuse them the room, for DURATION
//	                         (30s, 10m, 2h, 7d, 1d12h; at most 365d) or until lifted
//	unban ROOM USER          lift the ban
//	bans ROOM                list the bans in force: USER UNTIL
//	mute ROOM USER [--for DURATION]
//	                         let USER read the room but not send, edit or react there
//	unmute ROOM USER         lift the mute
//
// The server is --server, else $CHAT_SERVER, else the server the saved token
// belongs to, else http://localhost:8080. The configuration directory is
// --config-dir, else $CHAT_CONFIG_DIR, else the "chat" directory under
// [os.UserConfigDir]. Global flags may also follow the command, and
// command flags may follow its arguments:
//
//	chat history general --limit 10 --json
//
// Everything after the room of send and topic, and after the ID of reply
// and edit, is message text. An ID is a message's stream ID, as send,
// reply and history print it (1796295170222-0).
//
// With --json, rooms, members, bans, history, thread, edit and whoami
// print the server's response body (rooms and members: every page as one
// body), and join prints every server frame as one JSON object per line.
//
// A refusal names its reason: "chat: you may edit only your own messages
// (…)", "chat: room team: you are banned from it", "chat: bob is banned
// from team; chat unban team bob lifts the ban".
//
// # Interactive sessions
//
// join connects to the server's WebSocket, prints who is online and the
// last 20 messages (in their current state: edited, deleted, reactions,
// replies), then as they happen: messages ("15:04:05  bob: hi"), actions
// ("15:04:05  * bob waves"), replies ("15:04:07  carol ↳ bob "hi": yes"),
// edits ("15:04:09  * bob edited "hi": hi all"), deletions and reactions
// ("15:04:11  * carol reacted 👍 to bob's "hi all""), mentions of you in
// other rooms ("* bob mentioned you in tech: @alice look"), topic changes,
// rooms you were added to or removed from, presence ("* bob is online"),
// typing notices and errors ("! not sent: slow down: the line"). On a
// terminal, a message that mentions you stands out. Being removed or
// banned from the room ends the session ("chat: you were banned from
// team"). Each line typed is sent to the room, except commands:
//
//	/help                 list the commands
//	/who                  who is in the room now
//	/me TEXT              say TEXT as an action
//	/reply [REF] TEXT     answer a message in its thread
//	/thread [REF]         show a message (a reply: its root) and its replies
//	/edit [REF] TEXT      replace the text of your message
//	/delete [REF]         delete a message
//	/react [REF] EMOJI    react to a message
//	/unreact [REF] EMOJI  take a reaction back
//	/quit                 leave (as do end of input, Ctrl-D and Ctrl-C)
//
// and "//text" sends "/text". REF names a message: ^ is the newest shown,
// ^2 the one before and so on (deleted ones count: they were shown), or a
// message id. Without a REF, a command means the newest message shown that
// is not deleted; /edit and /delete mean your own newest.
//
// On a terminal, join is a line editor (golang.org/x/term): messages print
// above the line being typed, which stays intact; a line sent leaves the
// input and shows once, as the room's message; Up and Down recall earlier
// lines, Tab completes a command, and typing tells the room so. With a
// pipe or --json it reads plain lines and prints plain lines.
//
// Leaving waits up to 2 s for the server to confirm what was sent. When
// the connection drops, join reconnects with backoff and resumes after the
// newest message or event it has shown, so nothing is missed or shown
// twice; lines typed meanwhile are sent once it is back. Edits, deletions
// and reactions asked for while the connection dropped are not sent again
// (a second one is not the same as the first): join says so, and the
// replay shows those the server did apply.
//
// # Exit status
//
// 0 on success, 1 when the server or the network reports an error (printed
// as "chat: <message>"), 2 for a usage error.
package main

// Chatbench is a load generator for a chat deployment: it opens many
// WebSocket connections, sends messages on a fixed schedule and measures
// how long each takes to reach every member of its room, and whether any
// acknowledged message is lost, duplicated or reordered.
//
// Usage:
//
//	chatbench [flags]
//
// Run chatbench -h for every flag.
//
// # What it does
//
// Chatbench registers and logs in --clients users (<prefix>0000001…,
// random prefix per run unless --user-prefix is given), or signs their
// tokens itself with --token-secret, creates --rooms rooms (at most 50 by
// any one user, as servers limit that) and lets each user join its rooms
// over one WebSocket connection, opening --ramp connections per second,
// spread round-robin over --servers.
//
// Each room gets --room-size members and each socket joins
// --rooms-per-client rooms (K; at most 100, the server's limit per
// socket), so the first ⌈rooms × room-size / K⌉ clients hold every
// membership and the clients after them hold sockets in no room. When
// rooms × room-size is not a multiple of K, the clients' shares differ by
// one. Without --rooms-per-client each socket joins one room, or, when
// rooms × room-size exceeds --clients, as many as that takes. With several
// servers a room's members are spread over them: member j of room r
// connects to server (r × room-size + j) mod servers, so 7,000 rooms of 2
// on 2 servers have one member of each room on each. That needs the
// clients in rooms to be a multiple of the servers; when --clients does not
// allow it, chatbench says the rooms are not spread evenly.
//
// Then --senders of the clients send --rate messages per second in total
// for --warmup plus --duration. The schedule is fixed in advance: slot g of
// the run is due g/rate seconds after the start and goes into room g mod
// rooms, so every room gets the same share of the rate, and a room's slots
// are sent by the senders among its members in turn (by another sender
// when none of its members sends: a public channel lets anyone send). A
// slot is sent when it is due, not when earlier sends were answered, and
// its latency counts from when it was due: a stalled server shows up as
// latency instead of silently lowering the load (coordinated omission).
// At most --inflight sends of a sender are unanswered; slots that come due
// meanwhile wait, up to --inflight of them (beyond that the oldest is
// skipped and counted), and go out as soon as answers free places, all
// those freed at once in one write. A server slower than --rate is thus
// kept at --inflight sends per sender, which is what a throughput figure
// needs. The text of a message, b|<run>.<sender>|<seq>|<ns>, carries its
// identity and intended send time, so every receiver measures delivery
// latency on its own; the send's client_id is <run>.<sender>-<seq>. Only
// messages due after the warmup are measured.
//
// With --events F, a share F of each sender's slots in each room edit
// the sender's newest acked message there or toggle a reaction (👍) on
// it, edits and reactions in turn, instead of sending a message: the
// sender's n-th slot in the room (from 0) is such an event when ⌊(n+1)·F⌋
// steps up, so --events 0.1 makes every tenth slot one. An event slot
// that comes before the sender has an acked message in the room sends a
// message. Edits and reactions hold inflight places as sends do; their
// acks carry no client_id and are matched by ref, the slot number, and
// name the event's stream ID, or none for a reaction that changed nothing
// (counted as unchanged). Having no client_id, they are not written again
// after a reconnect, which would store an edit twice: the ones a failed
// connection leaves unanswered count as unacked. Every member checks,
// for each of its rooms, that it got each acked, measured event once,
// by its stream ID; event latency runs from when the event was due to
// its arrival at the member. Message latency, loss, duplicates and
// reorders still count messages only; an entry, message or event, whose
// ID is not above the one before it in the room is a reorder of its kind.
//
// After sending, chatbench waits up to --drain for acks and deliveries and
// then checks loss: every acknowledged, measured message must have reached
// every member of its room, each (socket, room) on its own. Members that
// stayed connected count missing messages as lost; members that were
// disconnected reconnect, rejoin with since and count what is still
// missing after that separately, as lost_reconnected. A message seen twice
// is a duplicate; a stream ID not above the previous one in the room is a
// reorder.
//
// # Output
//
// A table for people and one JSON line with the same fields (only the
// JSON with --json). Latencies are in milliseconds, from a log-linear
// histogram with microsecond resolution and under 1% error. With
// --server-pid, or else when the servers' /metrics report
// process_resident_memory_bytes, the server's RSS before connecting and
// at the end of sending is reported, and the difference per connection.
// The Go runtime keeps memory it has freed, and argon2id logins use a lot
// of it, so measure memory per connection against a freshly started
// server with tokens from --token-cache (chatbench says how many logins
// the run needed).
//
// CPU time is sampled at the start and the end of the measured window:
// each --redis-addrs Redis's used_cpu_user + used_cpu_sys (INFO cpu, plain
// RESP, AUTH with --redis-password), reported per address with its role
// and share, in total and per 1,000 measured deliveries; each server's,
// from /proc/PID/stat with --server-pid or else process_cpu_seconds_total
// on /metrics; and chatbench's own (getrusage, its worker processes
// included), per 1,000 acked sends and as a share of all the CPU time
// measured (chatbench's, the servers' and Redis's), so that a saturated
// generator shows: on one machine, what chatbench takes the servers
// cannot have. For a Redis Cluster, list its primaries to get the share
// of each.
//
// To cost the servers' machine little, chatbench speaks WebSocket itself
// (RFC 6455, no extensions): the frames a sender has ready leave in one
// system call, and the answers one read from the socket brings are all
// handled before the sends they free go out, together, in one write.
//
// With --events the table and the JSON line add the events sent, acked
// (edits and reactions), unchanged, rejected and unacked; their
// deliveries, expected, missing (among members that stayed connected
// and those that reconnected), duplicated and reordered, per second too;
// and their delivery and ack latency. chatbench's own CPU is then per
// 1,000 acked sends, edits and reactions.
//
// The exit status is 1 when a message was lost or duplicated, an acked
// edit or reaction missed a member or reached one twice, or the run
// failed, and 2 for a bad command line.
//
// # Many connections
//
// One process keeps at most 15,000 sockets; beyond that chatbench runs as
// a parent and --workers child processes (itself, re-executed with the
// same flags), each holding a slice of the clients. Workers report their
// acknowledged messages to the parent, which gives every worker the full
// set to check its receivers against, and merges the histograms and counts.
// A loopback address offers only about 28,000 ephemeral ports towards one
// server port, so for more connections spread them over several source
// addresses with --source-addrs.
//
// Logins are slow on purpose (argon2id), so they run --auth-concurrency at
// a time, and --token-cache keeps tokens across runs.
//
// # Examples
//
// A quick check of a local server:
//
//	chatbench --clients 100 --rooms 10 --room-size 10 --rate 100 --duration 10s
//
// A thousand users in ten rooms of a hundred, reusing the users of earlier
// runs:
//
//	chatbench --clients 1000 --rooms 10 --room-size 100 --rate 50 --duration 20s \
//	    --user-prefix load_ --reuse-users --token-cache /tmp/chatbench-tokens.json
//
// Memory per idle connection of a server with PID 4242:
//
//	chatbench --clients 20000 --rooms 200 --room-size 100 --idle --duration 30s \
//	    --source-addrs 127.0.0.1-127.0.0.4 --server-pid 4242
//
// Throughput of two instances on one Redis, with the CPU time of each
// process per message (T5 of the README):
//
//	chatbench --servers http://127.0.0.1:8080,http://127.0.0.1:8081 \
//	    --clients 200 --rooms 100 --room-size 2 --senders 200 --inflight 8 \
//	    --rate 60000 --duration 10s --token-secret "$CHAT_JWT_SECRET" \
//	    --redis-addrs 127.0.0.1:6379 --server-pid 4242,4243
//
// Latency and Redis CPU per 1,000 deliveries against the number of rooms
// with local members, 1,000 messages a second, in at most 500 sockets (100
// rooms each at 50,000 rooms), written to out/sweep-rooms.csv and
// out/sweep-rooms.svg:
//
//	chatbench --sweep-rooms 100,1000,10000,50000 --clients 500 --room-size 1 \
//	    --rate 1000 --redis-addrs 127.0.0.1:6379 --token-secret "$CHAT_JWT_SECRET" --out out
//
// Latency against the number of connections, written to out/sweep.csv and
// out/sweep.svg, over two instances:
//
//	chatbench --servers http://127.0.0.1:8080,http://127.0.0.1:8081 \
//	    --sweep 1000,5000,10000,20000 --rooms 100 --room-size 100 --rate 200 \
//	    --source-addrs 127.0.0.1-127.0.0.8 --batch --out out
//
// The server limits each user to 20 sends per second by default
// (CHAT_SEND_RATE); chatbench warns when a sender's share of --rate is
// above that. Keep it below or raise the limit.
package main

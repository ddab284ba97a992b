// Package store keeps the chat in Redis: one Redis (a primary, with or
// without replicas, behind one address) or a Redis Cluster. Its [Store]
// implements the engine's [engine.Log], [engine.Feed], [engine.Presence]
// and [engine.Directory], and transport's user, token and limit stores;
// cmd/chatd builds one per process with [New] and calls [Store.Init] once
// before serving. No go-redis type leaves the package: redis.Nil becomes
// [engine.ErrNotFound], a failed or timed-out call [engine.ErrUnavailable].
//
// # Invariants
//
//   - A room's stream is the truth. Messages, edits, deletions, reactions
//     and member changes are entries of one stream, in one order, and its
//     IDs ([engine.StreamPos]) are the only cursor, for history pages and
//     for resuming after a reconnect.
//   - Pub/sub carries only what may be lost: the notice of a new entry (the
//     stream repairs a lost one), typing, presence changes and user events.
//     Nothing that must arrive travels only on pub/sub.
//   - Everything that must agree with a write happens in the same script
//     call as the write, atomically.
//   - Every key one script or command touches shares one hash slot.
//
// # Keys
//
// Every key of a room starts with "chat:{<room>}:", the room's name as its
// hash tag, so that in Redis Cluster all of a room lives in one slot and
// rooms spread over all 16,384 slots:
//
//	chat:{<room>}:s        the stream: every entry carries the room's entry counter q
//	chat:{<room>}:m        meta hash: kind, topic, q and n (entries and messages so far)
//	chat:{<room>}:c        the room's pub/sub channel (notices, typing, presence)
//	chat:{<room>}:mem      members and their roles; mz their names, for paging
//	chat:{<room>}:st       message state: edits, deletions, reply counts
//	chat:{<room>}:rx:<id>  reactions of a message; th:<id> its replies
//	chat:{<room>}:rd       read positions; mn:<user> a user's unread mentions
//	chat:{<room>}:i:<id>   idempotency of one client_id (IdempotencyTTL)
//	chat:{<room>}:ban:…    bans and mutes; p and pc presence; whl, whc webhook lease, cursor
//
// A user's keys carry "u:<name>" the same way (chat:{u:<name>}:rooms, its
// send-rate bucket, its channel count, its channel for user events). The
// counters of login, registration and refresh limits share the tag
// {limit}, so that one script checks several of them at once. The
// user record (chat:user:<name>), revoked tokens (chat:revoked:<jti>)
// and users' revocations (chat:valid-after:<user>), the channel list, the
// instance registry and the shared signing key are keys of their own. [Store.Init] records the layout version (chat:schema) on
// an empty Redis and refuses the earlier layout with [ErrOldLayout]
// ("chatd migrate" converts it).
//
// # Scripts
//
// The Lua scripts live in lua/ and are embedded; each says at its top what
// it takes and returns. A NOSCRIPT answer (a restarted or failed-over
// primary) loads every script on every primary and runs the call once
// more. Each does atomically:
//
//   - append.lua: a batch of appends, each one step: the send rate, the
//     re-check of what may have changed since the engine permitted it
//     (a ban, a mute, membership, a moderator's role), the client_id
//     check (a repeat answers with the first send's ID), XADD with
//     MAXLEN ~, the message state, mentions, the webhook outbox, and the
//     notice on the room's channel.
//   - room.lua: create a room, or change membership, roles, bans, mutes or
//     the topic; membership changes are stream entries, in order with
//     the messages, so a removal takes effect before anything stored later.
//   - history.lua, summary.lua, members.lua, bans.lua: reads of a room in
//     its current state, in one call each.
//   - read.lua, joined.lua: move a read position forward only; start it at
//     a channel's first join.
//   - presence.lua, heartbeat.lua, typing.lua: who is online per room across
//     instances, the instance registry by Redis time, throttled typing.
//   - rate.lua: the send-rate buckets of a batch in cluster mode, where they
//     live in the users' slots, checked before the batch is stored.
//   - attempt.lua, release.lua: count an attempt against several limits at
//     once or against none; take a counted attempt back.
//   - webhook.lua: a room's delivery lease and cursor, and the pending sets.
//
// # Appends
//
// [Store.Append] queues a request on one of SendWorkers workers, chosen
// by the room's hash slot, so one room's appends stay in order. A worker
// takes everything queued (at most 128) and stores it with one script call
// per hash slot, the slots of one primary in one pipeline: one round trip
// and one script call for many sends. A request is stored or refused on
// its own; the batch shares only the trip. The append client never
// retries by itself, since a retry could store twice; a client's retry
// with the same client_id stores nothing twice. With WaitReplicas the
// worker runs WAIT on the same connection and publishes the notices only
// once replicas hold the entries.
//
// # The notice feed
//
// The fan-out learns of new entries from notices, not from reading every
// room: each stored entry is published, with its content, on its room's
// channel (SPUBLISH, sharded pub/sub, on a cluster, so a channel stays on
// its slot's primary). The feed subscribes, one connection per primary,
// to the channels of the rooms and users with local sessions, and hands
// each notice to the engine. A notice may be lost; the entry counter q,
// contiguous per room, shows it: a notice whose q does not follow the last
// one delivered makes the engine read the room from its position
// ([Store.Range]) before it uses later notices. After every
// (re)subscription the feed asks the engine to resync the room the same
// way, and the engine's sweep reads quiet rooms now and then. So the cost
// per message does not grow with the rooms an instance serves.
//
// # Redis Cluster
//
// A script touches the keys of one slot only: a room's, a user's, or the
// limit counters'. A batch of appends is split per slot, and in cluster
// mode send rates are checked by their own call first. The webhook outbox
// has one pending set per slot (tags chosen to hash to each slot) and a
// best-effort hint set that deliverers poll. Slot tags of rooms are their
// names: Redis spreads them over the slots by CRC16.
package store

// Package engine is the chat domain at the centre of the server: rooms,
// messages, stream positions, who may use which room, and the per-instance
// hub that delivers messages to local sessions.
//
// The engine knows nothing of HTTP, WebSocket, JSON or Redis. It declares
// what it needs as small interfaces ([Log], [Feed], [Presence],
// [Directory], [Encoder]); package store implements them on Redis (one
// server or a Redis Cluster), and the engine's tests run on it.
//
// # Delivery
//
// Every room is a stream; its IDs ([StreamPos]) are the only cursor. The
// send script stores an entry and publishes a notice of it on the room's
// channel with the room's counter Q, which goes up by one per entry. An
// instance watches ([Feed.Watch]) exactly the rooms its sessions joined
// and hands each noticed entry, encoded once, to every local [Session] of
// the room, in stream order. Pub/sub may lose a notice: a Q that skips
// one, a resubscription ([FeedHandler.Resync]) or the periodic sweep puts
// the room on the repair queue, and the repair loop reads it from the
// position the instance last delivered ([Feed.Read], many rooms a
// pipeline), so Redis work per delivered message does not grow with the
// number of rooms an instance serves. A session joining a room is
// registered before the room's newest position is read, and buffers what
// arrives until its replay (with since) is queued; so from its join on it
// sees every entry once, in order. Fan-out never blocks: a session whose
// queue is full is kicked with [ErrSlowConsumer] and resumes with since
// after reconnecting.
//
// # Who may do what
//
// [Access.Permit] is the one rule for every action (read, join, send,
// react, edit, delete, manage) on every path; the store re-checks bans,
// mutes, membership and roles inside the write script.
package engine

// Package engine is the chat domain at the centre of the server: rooms,
// messages, stream positions, who may use which room, and the per-instance
// hub that delivers messages to local sessions.
//
// The engine knows nothing of HTTP, WebSocket, JSON or Redis. It declares
// what it needs as small interfaces ([Log], [Tail], [Bus], [Presence],
// [Directory], [Encoder]); package store implements them on Redis and
// package enginetest in memory.
//
// # Delivery
//
// Every room is a stream; its IDs ([StreamPos]) are the only cursor. Each
// instance tails, with blocking reads grouped by shard, exactly the rooms
// its sessions joined, from the position it last delivered, and hands each
// new message, encoded once, to every local [Session] of the room. A
// session joining a room is registered before the room's newest position
// is read, and buffers what the tail delivers until its replay (with
// since) is queued; so from its join on it sees every message once, in
// order. Fan-out never blocks: a session whose queue is full is kicked
// with [ErrSlowConsumer] and resumes with since after reconnecting.
package engine

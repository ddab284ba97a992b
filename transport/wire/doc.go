// Package wire is the WebSocket and REST wire contract of the chat server:
// the JSON frames a client and the server exchange, their error codes and
// the WebSocket close codes, exactly as ../shared/PROTOCOL.md fixes them.
//
// It imports only the standard library, so the server (transport), the
// command-line client (cmd/chat) and the load generator (cmd/chatbench)
// share one definition of every frame.
//
// Client frames are decoded with [Decode], which classifies bad input into
// the protocol's error codes without ever panicking; server frames are
// plain structs encoded with [Encode]. A client that connected with
// ?batch=1 may receive several frames in one WebSocket message, separated
// by [BatchSeparator].
package wire

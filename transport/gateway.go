package transport

import (
	"errors"
	"net/http"

	"github.com/coder/websocket"

	"github.com/redstream/chat/engine"
	"github.com/redstream/chat/transport/wire"
)

// goneError is why a connection ended when there is nothing left to say
// to the peer: it closed, vanished or stopped answering pings, or a write
// failed. The socket is dropped without a close handshake.
type goneError struct{ err error }

func (e goneError) Error() string { return e.err.Error() }
func (e goneError) Unwrap() error { return e.err }

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeHTTPError(w, errorf(engine.ErrShutdown, "server is shutting down; reconnect"))
		return
	}
	tok := bearer(r)
	if tok == "" {
		writeHTTPError(w, errUnauthorized)
		return
	}
	cl, err := s.verify(r.Context(), tok)
	if err != nil {
		writeHTTPError(w, toAPI(err))
		return
	}
	if s.nconns.Add(1) > int64(s.opts.MaxConns) {
		s.nconns.Add(-1)
		s.opts.Observe.rateLimited("conns_per_instance")
		writeHTTPError(w, errorf(engine.ErrUnavailable, "instance is at its connection limit"))
		return
	}
	// Registered first so it is released last: Drain returns only after
	// the session below has left its rooms (presence goes offline).
	s.conns.Add(1)
	sess, err := s.opts.Engine.Connect(cl.User, cl.ID, cl.Issued)
	if err != nil {
		s.conns.Done()
		s.nconns.Add(-1)
		if errors.Is(err, engine.ErrRateLimited) {
			s.opts.Observe.rateLimited("conns_per_user")
		}
		a := toAPI(err)
		retryAfter(w.Header(), a)
		writeHTTPError(w, a)
		return
	}
	cw := &corkWriter{ResponseWriter: w, timeout: s.opts.WriteTimeout}
	ws, err := websocket.Accept(cw, r, &websocket.AcceptOptions{
		OriginPatterns:  s.opts.AllowedOrigins,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		sess.Close()
		s.conns.Done()
		s.nconns.Add(-1)
		return // Accept wrote the HTTP error (403 for a foreign Origin)
	}
	ws.SetReadLimit(s.opts.MaxFrame)
	c := newConn(s, ws, cw.conn, sess, cl, r.URL.Query().Get(wire.BatchQueryParam) == "1")
	// The handler returns now and the connection lives on in goroutines of
	// its own (conn.go): net/http's buffers and the handler's deep stack,
	// kept for the whole life of the socket otherwise, become garbage.
	go c.serve()
}

func writeHTTPError(w http.ResponseWriter, a *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.Status)
	_, _ = w.Write(wire.Encode(map[string]any{"error": map[string]string{"code": a.Code, "message": a.Message}}))
}

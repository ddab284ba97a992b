package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// maskedText is a client text frame (masked, key 0: payload as is).
func maskedText(payload string) []byte {
	b := []byte{0x81, 0x80 | byte(len(payload))}
	b = binary.BigEndian.AppendUint32(b, 0)
	return append(b, payload...)
}

// TestLibraryReadsThroughOurReader guards idleWait: coder/websocket must
// read through the bufio.Reader our Hijack hands it. A client sends two
// frames in one TCP segment; after the library read the first, the second
// must be buffered in our reader (so wait returns at once), and it must
// be the next frame the library reads. If the library read through a
// reader of its own, wait would block with a frame in hand.
func TestLibraryReadsThroughOurReader(t *testing.T) {
	if !canPeek {
		t.Skip("idleWait.wait returns at once on this platform; nothing relies on the reader")
	}
	type accepted struct {
		ws *websocket.Conn
		nc *corkConn
	}
	got := make(chan accepted, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &corkWriter{ResponseWriter: w, timeout: 5 * time.Second}
		ws, err := websocket.Accept(cw, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		got <- accepted{ws, cw.conn}
	}))
	defer hs.Close()

	client, err := net.Dial("tcp", strings.TrimPrefix(hs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_, _ = client.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
	res, err := http.ReadResponse(bufio.NewReader(client), nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	a := <-got
	defer a.ws.CloseNow()
	if a.nc == nil || a.nc.idle.raw == nil {
		t.Fatal("the hijacked connection has no idleWait on its socket")
	}
	// Both frames after the handshake, so the HTTP server cannot have read
	// them ahead, and in one write, so they arrive together.
	_, _ = client.Write(append(maskedText("one"), maskedText("two")...))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.nc.idle.wait()
	if _, data, err := a.ws.Read(ctx); err != nil || string(data) != "one" {
		t.Fatalf("first read: %q %v", data, err)
	}
	if n := a.nc.idle.br.Buffered(); n != len(maskedText("two")) {
		t.Fatalf("our reader holds %d bytes after the first frame, want the second frame's %d: "+
			"coder/websocket no longer reads through it, and idleWait must go", n, len(maskedText("two")))
	}
	done := make(chan struct{})
	go func() { a.nc.idle.wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		_ = a.ws.CloseNow()
		t.Fatal("idleWait.wait blocked with a frame buffered")
	}
	if _, data, err := a.ws.Read(ctx); err != nil || string(data) != "two" {
		t.Fatalf("second read: %q %v", data, err)
	}
}

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// wsConn is the client end of one WebSocket connection (RFC 6455), as
// small as a load generator needs: text frames out, messages in, pings
// answered, the close handshake. A library connection costs a lock, a
// flush and a system call per frame written and a lock per message read;
// here the frames of one write call leave in one system call, and one
// read system call fills a buffer that yields every frame it holds, so
// the generator spends its CPU on the server's frames and not on itself.
//
// One goroutine reads (readMessage); any number may write. It sends no
// extensions (no compression) and no subprotocol.
type wsConn struct {
	nc    net.Conn
	br    *bufio.Reader
	fills *countReader // under br: counts the reads from the socket

	readLimit int64

	wmu       sync.Mutex
	wbuf      []byte // frames being built under wmu
	closeSent bool   // a close frame was written; nothing may follow it

	readEnd  chan struct{} // closed when readMessage returns its final error
	endOnce  sync.Once
	closeErr error // what the read ended with, set before readEnd closes
}

// Opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// wsReadBuf is the read buffer of a connection: one system call reads up
// to this much, every frame in it is handled before the next one.
const wsReadBuf = 16 << 10

// maxWSBuf is the largest write buffer kept between writes; a larger one,
// from an unusual burst, is dropped so that idle connections hold little.
const maxWSBuf = 64 << 10

// closeError is the end of a connection by a close frame from the server:
// its status code (1005 when it carried none) and reason.
type closeError struct {
	Code   int
	Reason string
}

func (e *closeError) Error() string {
	return fmt.Sprintf("websocket closed: status %d: %s", e.Code, e.Reason)
}

// closeStatus returns the status code of a connection that ended with a
// close frame from the server, -1 for any other end.
func closeStatus(err error) int {
	var ce *closeError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// errWSClosed is returned by writes after the connection began closing.
var errWSClosed = errors.New("websocket: connection closed")

// dialError is a refused upgrade: the HTTP status the server answered.
type dialError struct {
	Status int
}

func (e *dialError) Error() string { return "HTTP " + strconv.Itoa(e.Status) }

// wsGUID is the key suffix of the accept hash (RFC 6455 section 1.3).
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// dialWS opens a WebSocket connection to rawURL (ws:// or wss://) with the
// headers hdr, dialling with d. ctx bounds the dial and the handshake.
func dialWS(ctx context.Context, d *net.Dialer, rawURL string, hdr http.Header) (*wsConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	host := u.Host
	if u.Port() == "" {
		if u.Scheme == "wss" {
			host = net.JoinHostPort(u.Hostname(), "443")
		} else {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "wss" {
		tc := tls.Client(nc, &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}})
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	// ctx bounds the handshake: a deadline while it runs, cleared after.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	w, err := handshake(nc, u, hdr)
	if !stop() || err != nil {
		nc.Close()
		if err == nil || ctx.Err() != nil {
			err = errors.Join(ctx.Err(), err)
		}
		return nil, err
	}
	return w, nil
}

// handshake sends the upgrade request for u on nc and checks the answer.
func handshake(nc net.Conn, u *url.URL, hdr http.Header) (*wsConn, error) {
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := &http.Request{
		Method:     http.MethodGet,
		URL:        &url.URL{Path: u.Path, RawQuery: u.RawQuery, RawPath: u.RawPath},
		Host:       u.Host,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     hdr.Clone(),
	}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if req.URL.Path == "" {
		req.URL.Path = "/"
	}
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", key)
	req.Header.Set("Sec-WebSocket-Version", "13")
	bw := bufio.NewWriterSize(nc, 1024)
	if err := req.Write(bw); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	fills := &countReader{r: nc}
	br := bufio.NewReaderSize(fills, wsReadBuf)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body.Close()
		return nil, &dialError{Status: resp.StatusCode}
	}
	sum := sha1.Sum([]byte(key + wsGUID))
	switch {
	case !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket"):
		return nil, errors.New("websocket: upgrade answered without Upgrade: websocket")
	case resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]):
		return nil, errors.New("websocket: wrong Sec-WebSocket-Accept")
	case resp.Header.Get("Sec-WebSocket-Extensions") != "":
		return nil, errors.New("websocket: server chose an extension chatbench did not offer")
	}
	return &wsConn{nc: nc, br: br, fills: fills, readLimit: 32 << 10, readEnd: make(chan struct{})}, nil
}

// countReader counts the reads through it; only the reader uses n.
type countReader struct {
	r io.Reader
	n uint64
}

func (c *countReader) Read(p []byte) (int, error) {
	c.n++
	return c.r.Read(p)
}

// socketReads returns how many reads from the socket the reader has made:
// when it has not changed since the last message, the next one arrived
// with the same read. Only the reading goroutine may call it.
func (w *wsConn) socketReads() uint64 { return w.fills.n }

// SetReadLimit bounds the size of one incoming message; a larger one
// closes the connection with 1009.
func (w *wsConn) SetReadLimit(n int64) { w.readLimit = n }

// appendFrameHeader appends the header of a final, masked frame of opcode
// op with n bytes of payload, and its masking key.
func appendFrameHeader(dst []byte, op byte, n int, key uint32) []byte {
	dst = append(dst, 0x80|op)
	switch {
	case n < 126:
		dst = append(dst, 0x80|byte(n))
	case n < 1<<16:
		dst = append(dst, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return binary.BigEndian.AppendUint32(dst, key)
}

// mask XORs p with the masking key, whose first byte is the key's most
// significant, starting at key byte 0.
func mask(p []byte, key uint32) {
	var k [8]byte
	binary.BigEndian.PutUint32(k[:], key)
	binary.BigEndian.PutUint32(k[4:], key)
	k64 := binary.LittleEndian.Uint64(k[:])
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^k64)
		p = p[8:]
	}
	for i := range p {
		p[i] ^= k[i]
	}
}

// appendFrameLocked appends one masked frame of op and payload to w.wbuf.
func (w *wsConn) appendFrameLocked(op byte, payload []byte) {
	key := mrand.Uint32() // the runtime's ChaCha8: unpredictable, and no system call
	w.wbuf = appendFrameHeader(w.wbuf, op, len(payload), key)
	start := len(w.wbuf)
	w.wbuf = append(w.wbuf, payload...)
	mask(w.wbuf[start:], key)
}

// flushLocked writes w.wbuf in one call and empties it.
func (w *wsConn) flushLocked() error {
	if len(w.wbuf) == 0 {
		return nil
	}
	_, err := w.nc.Write(w.wbuf)
	if cap(w.wbuf) > maxWSBuf {
		w.wbuf = nil
	} else {
		w.wbuf = w.wbuf[:0]
	}
	return err
}

// writeText writes each of frames as one text message, all in one system
// call, in order. A failed write leaves the connection unusable; its
// reader then ends too once the connection is closed.
func (w *wsConn) writeText(frames ...[]byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.closeSent {
		return errWSClosed
	}
	for _, f := range frames {
		w.appendFrameLocked(opText, f)
	}
	err := w.flushLocked()
	if err != nil {
		_ = w.nc.Close()
	}
	return err
}

// writeControl writes one control frame; a close frame is the last frame
// the connection writes.
func (w *wsConn) writeControl(op byte, payload []byte) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.closeSent {
		return errWSClosed
	}
	if op == opClose {
		w.closeSent = true
	}
	w.appendFrameLocked(op, payload)
	return w.flushLocked()
}

// closePayload is the body of a close frame with code and reason.
func closePayload(code int, reason string) []byte {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return append(p, reason...)
}

// endRead records the error the reader ended with and wakes Close.
func (w *wsConn) endRead(err error) error {
	w.endOnce.Do(func() {
		w.closeErr = err
		close(w.readEnd)
	})
	return err
}

// readMessage reads the next text or binary message into buf[:0],
// growing it as needed, and returns its opcode and bytes. It answers
// pings and a close frame on the way; a close frame from the server ends
// the connection with a *closeError. Only one goroutine may call it.
func (w *wsConn) readMessage(buf []byte) (op byte, msg []byte, err error) {
	msg = buf[:0]
	var hdr [14]byte
	first := true
	for {
		if _, err := io.ReadFull(w.br, hdr[:2]); err != nil {
			return 0, msg, w.endRead(err)
		}
		fin, rsv, fop := hdr[0]&0x80 != 0, hdr[0]&0x70, hdr[0]&0x0f
		if hdr[1]&0x80 != 0 || rsv != 0 {
			return 0, msg, w.fail(1002, "protocol error")
		}
		n := int64(hdr[1] & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(w.br, hdr[2:4]); err != nil {
				return 0, msg, w.endRead(err)
			}
			n = int64(binary.BigEndian.Uint16(hdr[2:4]))
		case 127:
			if _, err := io.ReadFull(w.br, hdr[2:10]); err != nil {
				return 0, msg, w.endRead(err)
			}
			n = int64(binary.BigEndian.Uint64(hdr[2:10]))
			if n < 0 {
				return 0, msg, w.fail(1002, "protocol error")
			}
		}
		if fop >= opClose { // a control frame, possibly between fragments
			if n > 125 || !fin {
				return 0, msg, w.fail(1002, "protocol error")
			}
			var cb [125]byte
			p := cb[:n]
			if _, err := io.ReadFull(w.br, p); err != nil {
				return 0, msg, w.endRead(err)
			}
			switch fop {
			case opPing:
				_ = w.writeControl(opPong, p)
			case opClose:
				ce := &closeError{Code: 1005}
				if len(p) >= 2 {
					ce.Code, ce.Reason = int(binary.BigEndian.Uint16(p)), string(p[2:])
				}
				echo := p[:min(len(p), 2)]
				_ = w.writeControl(opClose, echo) // no-op if we closed first
				return 0, msg, w.endRead(ce)
			case opPong:
			default:
				return 0, msg, w.fail(1002, "protocol error")
			}
			continue
		}
		switch {
		case first && (fop == opText || fop == opBinary):
			op, first = fop, false
		case !first && fop == opContinuation:
		default:
			return 0, msg, w.fail(1002, "protocol error")
		}
		if int64(len(msg))+n > w.readLimit {
			return 0, msg, w.fail(1009, "message too big")
		}
		total := len(msg) + int(n)
		if total > cap(msg) {
			grown := make([]byte, len(msg), max(total, 2*cap(msg)))
			copy(grown, msg)
			msg = grown
		}
		if _, err := io.ReadFull(w.br, msg[len(msg):total]); err != nil {
			return 0, msg, w.endRead(err)
		}
		msg = msg[:total]
		if fin {
			return op, msg, nil
		}
	}
}

// buffered reports how many bytes have been read from the socket and not
// yet returned: zero means the next readMessage waits for the network.
func (w *wsConn) buffered() int { return w.br.Buffered() }

// fail ends the connection for a protocol violation by the server.
func (w *wsConn) fail(code int, reason string) error {
	_ = w.writeControl(opClose, closePayload(code, reason))
	_ = w.nc.Close()
	return w.endRead(fmt.Errorf("websocket: %s (closed with %d)", reason, code))
}

// CloseNow closes the connection without a close handshake.
func (w *wsConn) CloseNow() error { return w.nc.Close() }

// Close starts the close handshake with code and reason and waits, up to
// 3 s, for the reader to see the server's answer; then it closes the
// connection. The reader must be running for the handshake to complete.
func (w *wsConn) Close(code int, reason string) error {
	err := w.writeControl(opClose, closePayload(code, reason))
	if err == nil {
		t := time.NewTimer(3 * time.Second)
		select {
		case <-w.readEnd:
		case <-t.C:
			err = errors.New("websocket: no close frame from the server within 3s")
		}
		t.Stop()
	}
	if cerr := w.nc.Close(); err == nil && !errors.Is(cerr, net.ErrClosed) {
		err = cerr
	}
	return err
}

package testenv

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// SlowLink is a TCP proxy to a database server that can hold back one client message:
// a write the client gives up on (its operation timeout) still reaches the server,
// later, as over a slow network or to a server that stalled with the write in its
// socket buffer.
type SlowLink struct {
	ln       net.Listener
	upstream string

	mu      sync.Mutex
	pending *delayed // the next message to hold back, if any
}

// delayed is one message to hold back: the next one holding every byte string of
// match, forwarded after delay. answered is closed once the server has answered it,
// so its effect is in the database.
type delayed struct {
	match    [][]byte
	delay    time.Duration
	answered chan struct{}
}

// NewSlowLink starts a proxy to the server of the mongodb:// URI upstream; it stops
// when the test ends.
func NewSlowLink(t *testing.T, upstream string) *SlowLink {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(upstream, "mongodb://"), "/")
	l := &SlowLink{ln: ln, upstream: host}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go l.relay(c)
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return l
}

// URI is the connection string of the proxy.
func (l *SlowLink) URI() string { return "mongodb://" + l.ln.Addr().String() + "/" }

// DelayNext holds back the next client message containing every string of match for
// delay, and returns a channel closed once the server has answered that message.
func (l *SlowLink) DelayNext(delay time.Duration, match ...string) <-chan struct{} {
	d := &delayed{delay: delay, answered: make(chan struct{})}
	for _, m := range match {
		d.match = append(d.match, []byte(m))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pending = d
	return d.answered
}

// claim returns the pending delay if chunk matches it, and clears it.
func (l *SlowLink) claim(chunk []byte) *delayed {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.pending
	if d == nil {
		return nil
	}
	for _, m := range d.match {
		if !bytes.Contains(chunk, m) {
			return nil
		}
	}
	l.pending = nil
	return d
}

// relay copies client connection c to a new connection to the server and back. A
// client message is one chunk here (the driver writes each with one call, and they are
// small); a delayed one holds back the rest of its connection too, as TCP would.
func (l *SlowLink) relay(c net.Conn) {
	u, err := (&net.Dialer{}).DialContext(context.Background(), "tcp", l.upstream)
	if err != nil {
		_ = c.Close()
		return
	}
	// held is the message held back on this connection, answered by the next bytes the
	// server sends on it: the driver sends a message only once the last is answered.
	var heldMu sync.Mutex
	var held *delayed
	go func() {
		defer func() { _ = c.Close() }()
		buf := make([]byte, 1<<16)
		for {
			n, err := u.Read(buf)
			if n > 0 {
				heldMu.Lock()
				if held != nil {
					close(held.answered)
					held = nil
				}
				heldMu.Unlock()
				_, _ = c.Write(buf[:n]) // the client may have gone: the server's answer is dropped
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() { _ = u.(*net.TCPConn).CloseWrite() }()
	buf := make([]byte, 1<<16)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if d := l.claim(buf[:n]); d != nil {
				time.Sleep(d.delay)
				heldMu.Lock()
				held = d
				heldMu.Unlock()
			}
			if _, err := u.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

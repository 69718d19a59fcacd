package store

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// slowStore returns a Store on a fresh test database reached through a slowLink, with
// operations timing out after timeout, the link, and the database itself.
func slowStore(t *testing.T, timeout time.Duration) (*Store, *slowLink, *mongo.Database) {
	t.Helper()
	db := testenv.MongoDB(t)
	link := newSlowLink(t, testenv.MongoURI(t))
	slow, err := mongodb.Connect(t.Context(), mongodb.Config{URI: link.uri() + db.Name(), ConnectTimeout: timeout, OperationTimeout: timeout}, db.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = slow.Client().Disconnect(context.Background()) })
	return New(slow), link, db
}

// slowLink is a TCP proxy to a database server that can hold back one client message:
// a write the client gives up on (its operation timeout) still reaches the server,
// later, as over a slow network or to a server that stalled with the write in its
// socket buffer.
type slowLink struct {
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

// newSlowLink starts a proxy to the server of the mongodb:// URI upstream; it stops
// when the test ends.
func newSlowLink(t *testing.T, upstream string) *slowLink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(upstream, "mongodb://"), "/")
	l := &slowLink{ln: ln, upstream: host}
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

// uri is the connection string of the proxy.
func (l *slowLink) uri() string { return "mongodb://" + l.ln.Addr().String() + "/" }

// delayNext holds back the next client message containing every string of match for
// delay, and returns a channel closed once the server has answered that message.
func (l *slowLink) delayNext(delay time.Duration, match ...string) <-chan struct{} {
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
func (l *slowLink) claim(chunk []byte) *delayed {
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
func (l *slowLink) relay(c net.Conn) {
	u, err := net.Dial("tcp", l.upstream)
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

package gateway

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shopkeeper-dev/shopkeeper/services/gateway/internal/ratelimit"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// lingerTime and lingerBytes bound a gentle close: how long the rest of a refused request is
// read and dropped, and how much of it. A body up to twice web.MaxBodyBytes is read whole, so
// that a client writing all of a body just over the limit before it reads, as simple clients
// do, finishes writing and reads the answer; a client sending more, or stalling, has its
// connection closed as it is after the bounds. (net/http waits half a second once its side
// is closed; nginx reads and drops for up to 30 seconds, its lingering_time.)
const (
	lingerTime  = time.Second
	lingerBytes = 2 * web.MaxBodyBytes
)

// gentleListener makes every connection it accepts a gentleConn. With clients set, it refuses
// a client's connection past the number it may hold (clientConns), with an answer that says
// so, and never hands it to the server.
type gentleListener struct {
	net.Listener
	clients *clientConns
	// refused, when set, records a connection refused past its client's cap (refuseConn).
	refused func() string
}

// Accept waits for the next connection.
func (l gentleListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.clients == nil {
			return &gentleConn{Conn: c}, nil
		}
		key, counted, ok := l.clients.take(c)
		if !ok {
			go refuseConn(c, l.refused, l.clients.takeLinger(key))
			continue
		}
		gc := &gentleConn{Conn: c}
		if counted {
			gc.clients, gc.client = l.clients, key
		}
		return gc, nil
	}
}

// gentleConn is a client's connection that can close gently, and knows whether the client
// sent anything on it. When the gateway answered a request it refused before reading all of
// it, closing the connection at once with the client's bytes unread would make the kernel
// send a reset, which the client can see before it reads the answer (curl reports
// "Connection reset by peer" and drops it). Closed gently, the connection sends the answer
// and its end (a half close), then reads and drops what the client still sends, within
// lingerTime and lingerBytes, as net/http and nginx close.
type gentleConn struct {
	net.Conn
	// gentle is set when the connection is to close gently; the server's goroutine serving
	// the connection sets it and closes the connection.
	gentle atomic.Bool
	// read counts the bytes read from the client: a connection the server gives up on before
	// any made no request to count (answerReadError). readLimit, when over 0, is the count at
	// which Read stops reading and fails (limitReads), and limited tells it did. Only the
	// server's goroutine serving the connection reads and sets them.
	read, readLimit int64
	limited         bool
	// continued is the note of the head of a request invited to send its body with a 100
	// Continue (keepHead) until it is served or answered (forgetHead). Only the server's
	// goroutine serving the connection reads it and sets it.
	continued *headNote
	// admitted is the rate limit's decision on the request whose Expect: 100-continue was
	// answered with an invitation (expectContinue), while hasAdmitted is set: the request was
	// counted then, and is not counted again when it is served or answered (takeAdmitted).
	// Only the server's goroutine serving the connection reads and sets them.
	admitted    ratelimit.Decision
	hasAdmitted bool
	// clients counts the connection against client until it closes, when set.
	clients *clientConns
	client  ratelimit.Key
	closed  atomic.Bool
}

// Read reads from the connection, within the bound limitReads set.
func (c *gentleConn) Read(b []byte) (int, error) {
	if c.readLimit > 0 && c.read >= c.readLimit {
		c.limited = true
		return 0, errReadLimit
	}
	n, err := c.Conn.Read(b)
	c.read += int64(n)
	return n, err
}

// limitReads makes Read fail once n more bytes are read from the client, n over 0; 0 lifts
// the bound. It bounds what a chunked body takes on the wire, which fasthttp counts only in
// its data: a chunk's extensions (after its size, up to the line's end) are read and skipped
// without bound. The server reads ahead up to readBufferSize, so the bound is passed by that
// much at most, and the bytes it had read ahead when the bound was set are not counted.
func (c *gentleConn) limitReads(n int64) {
	c.readLimit, c.limited = 0, false
	if n > 0 {
		c.readLimit = c.read + n
	}
}

// errReadLimit is what Read fails with past the bound limitReads set.
var errReadLimit = errors.New("the request takes more bytes on the wire than the gateway reads of it")

// Close closes the connection, gently when closeGently asked for it.
func (c *gentleConn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return c.Conn.Close() // what it said the first time: already closed
	}
	if c.gentle.Load() {
		c.linger()
	}
	err := c.Conn.Close()
	if c.clients != nil {
		c.clients.release(c.client)
	}
	return err
}

// linger closes the connection's sending side after what was written, and reads and drops
// what the client sends until it closes its side too, or the bounds are reached.
func (c *gentleConn) linger() {
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil || c.SetReadDeadline(time.Now().Add(lingerTime)) != nil {
		return
	}
	_, _ = io.CopyN(io.Discard, c.Conn, lingerBytes)
}

// closeGently makes the connection of ctx close after the answer, gently (gentleConn) when it
// came through a gentleListener: the client may still be sending what the answer refused.
func closeGently(ctx *fasthttp.RequestCtx) {
	ctx.SetConnectionClose()
	if c, ok := ctx.Conn().(*gentleConn); ok {
		c.gentle.Store(true)
	}
}

package gateway

import (
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// headNote is what the access log and the metrics need of a request's head when the server
// has emptied the request: the server reads up to 8 KiB of a body before the handler runs (or
// after a 100 Continue), and when that fails it empties the request before answerReadError
// runs. Notes are reused from one request to the next (heads), so that noting a head costs no
// allocation: what is noted for every request with a body serves the rare one whose body does
// not come. The target is kept as sent; its path is worked out, as the server works it out,
// only when it is needed (accessOfHead).
type headNote struct {
	// requestID is the request's X-Request-ID when it is sane (web.ValidRequestID), else
	// empty: an unsafe one is replaced anyway. The buffers grow to the largest head noted in
	// them, within readBufferSize.
	requestID []byte
	method    []byte
	host      []byte
	target    []byte
	// at is when the head was read: the request's start, for its access line.
	at time.Time
}

// take notes what h says of its request, read now.
func (n *headNote) take(h *fasthttp.RequestHeader) {
	n.at = time.Now()
	n.method = append(n.method[:0], h.Method()...)
	n.host = append(n.host[:0], h.Host()...)
	n.target = append(n.target[:0], h.RequestURI()...)
	n.requestID = n.requestID[:0]
	if id := h.Peek(web.RequestIDHeader); web.ValidRequestID(id) {
		n.requestID = append(n.requestID, id...)
	}
}

// heads holds the note of the head of each request with a body from the moment the server
// reads the head until the request is served or answered, keyed by the head. fasthttp's
// server tells HeaderReceived only of the head, &ctx.Request.Header of the context that then
// serves the request, answers it (ErrorHandler) or its Expect: 100-continue (ExpectHandler):
// the head is the one key all of them know. The zero heads is ready for use.
//
// Every noted head is forgotten: after HeaderReceived, fasthttp v1.78's serveConn reaches the
// handler, the ErrorHandler (a target it cannot parse, a body it cannot read) or the
// ExpectHandler, each of which forgets it (Gateway.forgetHead, Gateway.keepHead), except when
// setting the body's read deadline fails, which only a connection already closed does (the
// server shutting down). A note left then is replaced when the server next reads a head with
// a body into that pooled context, or stays in m, holding the context, if the pool drops it.
type heads struct {
	mu sync.Mutex
	// m grows to the most requests being read at once and does not shrink: in steady state,
	// noting a head does not allocate.
	m map[*fasthttp.RequestHeader]*headNote
	// free holds notes no longer in m, their buffers reused by the next ones.
	free sync.Pool
}

// note notes h when its request has a body the server will read some of before the handler
// runs (a chunked one is read by the handler), for answerReadError. The server tells it of
// each head it reads (Handler.HeadRead), before it parses the target.
func (hs *heads) note(h *fasthttp.RequestHeader) {
	if h.ContentLength() <= 0 {
		return
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	n := hs.m[h]
	if n == nil {
		n, _ = hs.free.Get().(*headNote)
		if n == nil {
			n = new(headNote)
		}
		if hs.m == nil {
			hs.m = make(map[*fasthttp.RequestHeader]*headNote)
		}
		hs.m[h] = n
	}
	n.take(h)
}

// take removes the note of h and returns it, nil if there is none; the caller releases it.
func (hs *heads) take(h *fasthttp.RequestHeader) *headNote {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	n := hs.m[h]
	if n != nil {
		delete(hs.m, h)
	}
	return n
}

// release makes n, taken out of heads, reusable. A nil n is none.
func (hs *heads) release(n *headNote) {
	if n != nil {
		hs.free.Put(n)
	}
}

// forgetHead removes the note of the head of the request of ctx (heads.note, keepHead) and
// returns it, nil if there is none; the caller releases it (heads.release). The server has
// read the body as far as it reads it, or answered the request: an error after that is not
// the server's to answer, and a later request in the same context, on this connection or
// another, whose head cannot be read must not be named by this one. emptied says the server
// may have emptied the request (answerReadError: a body that failed); elsewhere a head
// without a body was not noted, and a request without one (every GET) takes no lock.
func (g *Gateway) forgetHead(ctx *fasthttp.RequestCtx, emptied bool) *headNote {
	var n *headNote
	if h := &ctx.Request.Header; h.ContentLength() > 0 || emptied && len(h.RawHeaders()) == 0 {
		n = g.heads.take(h)
	}
	if c, ok := ctx.Conn().(*gentleConn); ok && c.continued != nil {
		if n == nil {
			n = c.continued
		} else {
			g.heads.release(c.continued)
		}
		c.continued = nil
	}
	return n
}

// keepHead moves the note of the head of the request of ctx onto its connection when the
// server is about to invite the body with a 100 Continue: should the invitation fail to be
// sent, the server ends the connection without the handler or the ErrorHandler, and the note
// goes with the connection rather than stay in heads. A connection that is not a gentleConn
// (one not accepted through a gentleListener) keeps no note.
func (g *Gateway) keepHead(ctx *fasthttp.RequestCtx) {
	n := g.forgetHead(ctx, false)
	if c, ok := ctx.Conn().(*gentleConn); ok {
		c.continued = n
		return
	}
	g.heads.release(n)
}

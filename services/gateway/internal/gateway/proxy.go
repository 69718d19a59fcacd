package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"iter"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/net/http/httpguts"

	"github.com/shopkeeper-dev/shopkeeper/internal/storeuri"
)

// service is one upstream of the gateway.
type service struct {
	// name is the service's name in errors, health and metrics: "user".
	name string
	// resource is the canonical path the service owns: "/users".
	resource string
	// prefix is the seed's prefix, stripped before forwarding: "/user".
	prefix string
	// base is the service's URL.
	base *url.URL
	// basePath is base's path without its trailing slash, put in front of every forwarded
	// path ("" for a service at the root).
	basePath string
	// client holds the keep-alive connections to the service.
	client *fasthttp.HostClient
}

// services lists the upstreams in the order /health reports them.
func services(cfg *Config) ([]service, error) {
	list := []struct{ name, rawURL string }{
		{"user", cfg.UserServiceURL},
		{"product", cfg.ProductServiceURL},
		{"order", cfg.OrderServiceURL},
		{"payment", cfg.PaymentServiceURL},
	}
	out := make([]service, 0, len(list))
	for _, s := range list {
		u, err := parseServiceURL(s.rawURL)
		if err != nil {
			return nil, fmt.Errorf("%s service URL %q: %w", s.name, storeuri.RedactURL(s.rawURL), err)
		}
		out = append(out, service{
			name:     s.name,
			resource: "/" + s.name + "s",
			prefix:   "/" + s.name,
			base:     u,
			basePath: strings.TrimRight(u.EscapedPath(), "/"),
			client:   newClient(u, cfg),
		})
	}
	return out, nil
}

// newClient returns the connection pool to the service at u: up to MaxConnsPerService
// kept-alive connections (a request waits for a free one half the upstream timeout, at most
// maxConnWait), a bounded connect, and the upstream timeout on every read and write. Paths are sent as the client sent
// them, never re-normalised, and the client adds no User-Agent of its own.
func newClient(u *url.URL, cfg *Config) *fasthttp.HostClient {
	tls := u.Scheme == "https"
	dialTimeout := min(cfg.UpstreamTimeout, 5*time.Second)
	return &fasthttp.HostClient{
		Addr:  fasthttp.AddMissingPort(u.Host, tls),
		IsTLS: tls,
		// Dual stack: fasthttp's plain dialer resolves IPv4 only, which reaches no service in an
		// IPv6-only cluster.
		Dial: func(addr string) (net.Conn, error) {
			c, err := fasthttp.DialDualStackTimeout(addr, dialTimeout)
			if err != nil {
				return nil, err
			}
			return checkConn(c), nil
		},
		// A request goes again, on another connection, only when the one it was given had
		// been closed by the service before anything was written (checkedConn): never one
		// the service may have received, whatever its method, so a request that crashes a
		// service reaches it once. Each such retry costs only a closed socket, so a pool full
		// of connections a restarted service closed empties without failing requests.
		RetryIfErr: func(_ *fasthttp.Request, _ int, err error) (resetTimeout, retry bool) {
			return false, errors.Is(err, errStaleConn)
		},
		MaxIdemponentCallAttempts: staleRetries,
		MaxConns:                  cfg.MaxConnsPerService,
		// A request finding every connection busy waits a moment for one, then gets a 503: a
		// service that busy is overloaded, not slow with this request (a 504).
		MaxConnWaitTimeout:  min(cfg.UpstreamTimeout/2, maxConnWait),
		MaxIdleConnDuration: 90 * time.Second,
		// A connection is replaced after a while even when always busy, so that pods a
		// service scales out to behind its Service get their share of the gateway's traffic.
		MaxConnDuration:          3 * time.Minute,
		ReadTimeout:              cfg.UpstreamTimeout,
		WriteTimeout:             cfg.UpstreamTimeout,
		MaxResponseBodySize:      maxResponseBodyBytes,
		ReadBufferSize:           readBufferSize, // a service's answer head, as the server's for requests
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true,
		SecureErrorLogMessage:    true,
	}
}

// maxConnWait is the longest a request waits for a free connection to its service.
const maxConnWait = time.Second

// staleRetries bounds the attempts of one request through pooled connections the service
// has closed; each costs a non-blocking system call.
const staleRetries = 32

// maxResponseBodyBytes bounds a service's answer the gateway buffers; the services' largest
// answers (a page of 100 products, up to about 3 MiB) are well below it.
const maxResponseBodyBytes = 16 << 20

// route is one entry of the route table: a path equal to pattern, or under it when pattern
// ends in "/", goes to svc, with strip removed from the front of the path.
type route struct {
	pattern string
	svc     *service
	strip   string
	// under is pattern ending in "/": paths under it match too, not only the pattern itself.
	under bool
}

// routes is the route table. Each service owns its resource path, in the canonical form
// (/users, /users/…, path kept) and the seed's prefix form (/user/users, /user/users/…, the
// prefix stripped). Only resource paths are routed, so the services' /internal/… API and their
// own /healthz, /readyz and /metrics are never reachable through the gateway, in either form;
// every other path is unknown (404).
func routes(svcs []service) []route {
	var out []route
	for i := range svcs {
		s := &svcs[i]
		out = append(out,
			route{pattern: s.resource, svc: s},
			route{pattern: s.resource + "/", svc: s, under: true},
			route{pattern: s.prefix + s.resource, svc: s, strip: s.prefix},
			route{pattern: s.prefix + s.resource + "/", svc: s, strip: s.prefix, under: true},
		)
	}
	return out
}

// matches reports whether path is pattern, or under it when pattern ends in "/".
func (r *route) matches(path []byte) bool {
	if r.under {
		return len(path) >= len(r.pattern) && string(path[:len(r.pattern)]) == r.pattern
	}
	return string(path) == r.pattern
}

// match returns the route of path, or nil. path is the request's path as the server made it:
// unescaped, with dot segments and repeated slashes resolved, so "/products/../internal/x"
// is "/internal/x" here and matches nothing.
func match(table []route, path []byte) *route {
	for i := range table {
		if table[i].matches(path) {
			return &table[i]
		}
	}
	return nil
}

// hopHeaders are the standard hop-by-hop headers (RFC 9110, section 7.6.1), which concern one
// connection and are never forwarded. Transfer-Encoding is handled by fasthttp itself.
var hopHeaders = []string{
	"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Upgrade",
}

// headers is what dropHopHeaders needs of a request's or an answer's header.
type headers interface {
	PeekAll(key string) [][]byte
	Del(key string)
	ConnectionClose() bool
	SetConnectionClose()
}

// hasHopHeader reports whether the fields all yields (a header's All) include one of
// hopHeaders, or Connection: one pass over them, so that the common message, which has none,
// costs no deletion of each. It takes the iterator of the concrete header, not the headers
// interface, so that neither the iterator nor the loop allocates.
func hasHopHeader(all iter.Seq2[[]byte, []byte]) bool {
	for k := range all {
		if bytes.EqualFold(k, []byte("Connection")) {
			return true
		}
		for _, hop := range hopHeaders {
			if bytes.EqualFold(k, []byte(hop)) {
				return true
			}
		}
	}
	return false
}

// dropHopHeaders removes the hop-by-hop headers of h: the standard ones, and those its
// Connection header names (RFC 9110, section 7.6.1), which concern one connection only and
// so must not cross the gateway, in either direction. Connection itself goes too, but not
// the close it said: fasthttp clears that with the field, and the message's connection is
// still to be closed after it (whether the close crosses the gateway is the caller's to say).
func dropHopHeaders(h headers) {
	closing := h.ConnectionClose()
	var named []string
	for _, v := range h.PeekAll("Connection") {
		for tok := range bytes.SplitSeq(v, []byte(",")) {
			tok = bytes.TrimSpace(tok)
			if len(tok) == 0 || bytes.EqualFold(tok, []byte("close")) || bytes.EqualFold(tok, []byte("keep-alive")) ||
				bytes.EqualFold(tok, []byte("Content-Length")) || bytes.EqualFold(tok, []byte("Transfer-Encoding")) || bytes.EqualFold(tok, []byte("Host")) {
				continue // the message's framing and target are not the connection's to name away
			}
			named = append(named, string(tok)) // copied: the header's bytes change as headers go
		}
	}
	for _, k := range named {
		h.Del(k)
	}
	h.Del("Connection")
	for _, k := range hopHeaders {
		h.Del(k)
	}
	if closing {
		h.SetConnectionClose()
	}
}

// validFieldNames reports whether every field all yields (a header's All) has a name that is
// a token (RFC 9110, section 5.1). fasthttp reads "X Foo: a" as a field; the services'
// net/http server answers it 400 in plain text, and closes the pooled connection.
func validFieldNames(all iter.Seq2[[]byte, []byte]) bool {
	for k := range all {
		if len(k) == 0 {
			return false
		}
		for _, c := range k {
			if !tokenByte[c] {
				return false
			}
		}
	}
	return true
}

// tokenByte tells the bytes a token may hold, as net/http tells them.
var tokenByte = func() (t [256]bool) {
	for c := range t {
		t[c] = httpguts.IsTokenRune(rune(c))
	}
	return t
}()

// hasTrailers reports whether names, a header's Trailers, names any field. It takes the
// iterator of the concrete header, as hasHopHeader does, so that the common message, which
// has none, costs no allocation.
func hasTrailers(names iter.Seq[[]byte]) bool {
	for range names {
		return true
	}
	return false
}

// trailered is a request's or an answer's header, with the trailer section fasthttp parsed
// after a chunked body.
type trailered interface {
	Trailers() iter.Seq[[]byte]
	All() iter.Seq2[[]byte, []byte]
	Del(key string)
	Add(key, value string)
}

// dropTrailers removes the trailer section fasthttp parsed after a chunked body, and its
// announcement (call it when hasTrailers). The gateway reads a body whole and sends it with
// its length, so neither side gets the other's trailer section, nor its fields as headers
// (RFC 9110, section 6.5.1): no field a client sent after the body (Upgrade, X-Request-ID,
// anything) reaches a service, and no field a service sent after its answer reaches the
// client. Upfront fields of the same names are kept. For a request, it is called before the
// hop-by-hop headers go, since deleting Trailer there would make the trailer section's fields
// headers, and again once the body is read, which may have brought them.
func dropTrailers(h trailered) {
	var names []string
	for name := range h.Trailers() {
		names = append(names, string(name)) // copied: the header's bytes change as fields go
	}
	if len(names) == 0 {
		return
	}
	var upfront [][2]string // h.All yields the header section only
	for k, v := range h.All() {
		for _, name := range names {
			if bytes.EqualFold(k, []byte(name)) {
				upfront = append(upfront, [2]string{string(k), string(v)})
				break
			}
		}
	}
	for _, name := range names {
		h.Del(name) // from both sections
	}
	h.Del("Trailer") // the announcement, with nothing left to move into the header section
	for _, f := range upfront {
		h.Add(f[0], f[1])
	}
}

// forwardRequest turns the request the gateway received from peer into the one it sends to
// r's service: the path the client sent (still escaped, as received) without r.strip and under
// the service's base path, the service's host, the X-Forwarded-* headers and no hop-by-hop
// headers. trusted says whether peer is a trusted proxy. buf is scratch space for the path.
func forwardRequest(req *fasthttp.Request, r *route, peer netip.Addr, trusted bool, buf []byte) {
	uri := req.URI()
	// The path as sent, when it carries the route's pattern as such; else (a pattern spelt with
	// escapes, which the server unescaped to match) the matched path, escaped again.
	path := buf[:0]
	path = append(path, uri.PathOriginal()...)
	if !r.matches(path) {
		path = append(path[:0], (&url.URL{Path: string(uri.Path())}).EscapedPath()...)
	}
	path = path[len(r.strip):]
	if r.svc.basePath != "" {
		path = append([]byte(r.svc.basePath), path...)
	}

	h := &req.Header
	// What a trusted proxy in front says of the client's request stands; anyone else's
	// forwarding headers are dropped, so the services never see a forged one.
	// Set replaces only the first of several fields: the others go first, so that none of a
	// client's values rides along behind the gateway's.
	if !trusted || len(h.Peek("X-Forwarded-Host")) == 0 {
		h.Del("X-Forwarded-Host")
		h.SetBytesV("X-Forwarded-Host", req.Host())
	}
	if !trusted || len(h.Peek("X-Forwarded-Proto")) == 0 {
		h.Del("X-Forwarded-Proto")
		h.Set("X-Forwarded-Proto", "http")
	}
	if !trusted {
		h.Del("Forwarded")
		h.Del("X-Real-IP")
	}
	// A chain that came from a trusted proxy is kept and extended; one from anyone else is
	// dropped, so the services never see a forged hop as if the gateway had vouched for it.
	var xff []byte
	if trusted {
		for _, v := range h.PeekAll("X-Forwarded-For") {
			xff = append(append(xff, v...), ", "...)
		}
	}
	h.Del("X-Forwarded-For")
	if peer.IsValid() {
		h.SetBytesV("X-Forwarded-For", peer.AppendTo(xff))
	}
	// The server answered a client's Expect: 100-continue and read the whole body; the service
	// gets the body at once, with nothing to expect.
	h.Del("Expect")
	// The body is read whole (readBody): it goes with its length, whatever framing the client
	// chose. fasthttp writes no length for a GET or HEAD with an empty body, and would send a
	// client's chunked one on as chunked with no chunk at all, the service left waiting.
	h.SetContentLength(len(req.Body()))
	h.SetNoDefaultContentType(true)
	uri.SetPathBytes(path)
	uri.SetScheme(r.svc.base.Scheme)
	// Userinfo in the client's Host or absolute-form target ("Host: admin:pw@shop") is no
	// field it sent: fasthttp's client would make an Authorization header of it.
	uri.SetUsername("")
	uri.SetPassword("")
	req.SetHost(r.svc.base.Host)
	req.UseHostHeader = false
}

// errorBody is the JSON the gateway answers when a service fails; the message never carries
// the underlying network error, which is logged instead.
type errorBody struct {
	Error   string `json:"error"`
	Service string `json:"service"`
	Message string `json:"message"`
}

// upstreamFailure is the answer for a service that could not be reached (503), did not answer
// in time (504), broke the connection off after the request was sent, or answered more than
// maxResponseBodyBytes (502): its status and body. "Cannot be reached" is said only when
// nothing was sent: a client told so may send the request again, which must not be one the
// service may already have received (a POST /orders).
func upstreamFailure(svc string, err error) (int, errorBody) {
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fasthttp.StatusBadGateway, errorBody{
			Error:   "Bad gateway",
			Service: svc,
			Message: "the " + svc + " service answered more than the gateway passes on",
		}
	case unreachable(err):
		return fasthttp.StatusServiceUnavailable, errorBody{
			Error:   "Service unavailable",
			Service: svc,
			Message: "the " + svc + " service cannot be reached",
		}
	case isTimeout(err):
		return fasthttp.StatusGatewayTimeout, errorBody{
			Error:   "Gateway timeout",
			Service: svc,
			Message: "the " + svc + " service did not answer in time",
		}
	default:
		return fasthttp.StatusBadGateway, errorBody{
			Error:   "Bad gateway",
			Service: svc,
			Message: "the " + svc + " service broke the connection off before its answer was whole",
		}
	}
}

// unreachable tells an error that came before anything of the request was sent: no
// connection could be made (refused, the name not resolved, the connect or the TLS handshake
// failed or timed out), none was free in time, or every pooled one turned out closed by the
// service (checkedConn).
func unreachable(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	var cert *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	return (errors.As(err, &op) && op.Op == "dial") || errors.As(err, &dns) ||
		errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, fasthttp.ErrNoFreeConns) ||
		errors.Is(err, errStaleConn) ||
		// The TLS handshake failed: the request was not sent.
		errors.As(err, &cert) || errors.As(err, &record) || errors.Is(err, fasthttp.ErrTLSHandshakeTimeout)
}

// isTimeout tells a service that did not answer in time, once reached (see unreachable).
func isTimeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

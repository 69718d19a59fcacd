// Package gateway is the shop's API gateway: it routes the public API to the four services,
// limits each client's request rate, and reports the health of the suite.
//
// The proxied routes are served by fasthttp: its server and its client (HostClient) reuse every
// request's and connection's buffers and run a request in one goroutine, where net/http's
// server and http.Transport take three goroutines, several allocations and two extra reads per
// proxied request. Measured by make bench-gateway on this project's 2-core machines, that is
// 0.35-0.46 of the upstream's direct request rate instead of 0.27 with
// net/http/httputil.ReverseProxy (services/gateway/README.md has the figures). Everything else the gateway answers (GET /health, /healthz,
// /readyz, /metrics, the JSON 404 and 405) is served by the suite's net/http plumbing
// (services/internal/web) through fasthttpadaptor, as in every other service.
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/semaphore"

	"github.com/shopkeeper-dev/shopkeeper/services/gateway/internal/clientip"
	"github.com/shopkeeper-dev/shopkeeper/services/gateway/internal/ratelimit"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/health"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// Gateway holds the routes and the state behind them.
type Gateway struct {
	svcs       []service
	routes     []route
	timeout    time.Duration
	limiter    *ratelimit.Limiter
	policy     []byte // the RateLimit-Policy field, the same on every answer
	ips        *clientip.Resolver
	health     *suiteHealth
	log        *slog.Logger
	tracer     trace.Tracer
	bodyBudget *semaphore.Weighted
	// answerBudget counts the bytes of large answers held while their clients read them
	// (holdAnswer).
	answerBudget *semaphore.Weighted
	// clients counts each client's connections to its cap (Config.MaxConnsPerClient).
	clients *clientConns
	// heads notes the head of each request with a body until it is served or answered
	// (heads.note), for answerReadError.
	heads heads
	// metricsApart says /metrics is served on a port of its own (Config.MetricsPort, by
	// MetricsHandler), not by Handler.
	metricsApart bool
}

// New builds the gateway of cfg.
func New(cfg *Config, log *slog.Logger) (*Gateway, error) {
	svcs, err := services(cfg)
	if err != nil {
		return nil, err
	}
	trusted, err := clientip.ParsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	limiter, err := ratelimit.New(ratelimit.Config{
		Limit:      cfg.RateLimitRequests,
		Window:     cfg.RateLimitWindow,
		MaxClients: cfg.RateLimitMaxClients,
	})
	if err != nil {
		return nil, err
	}
	ips := clientip.NewResolver(trusted)
	return &Gateway{
		svcs:         svcs,
		routes:       routes(svcs),
		timeout:      cfg.UpstreamTimeout,
		limiter:      limiter,
		policy:       rateLimitPolicyValue(limiter),
		ips:          ips,
		health:       newSuiteHealth(svcs, newHealthTransport(cfg), cfg.HealthTimeout, cfg.HealthCacheTTL),
		log:          log,
		bodyBudget:   semaphore.NewWeighted(largeBodyBudget),
		answerBudget: semaphore.NewWeighted(largeAnswerBudget),
		clients:      newClientConns(cfg.MaxConnsPerClient, ips.Trusted),
		tracer:       otel.Tracer("github.com/shopkeeper-dev/shopkeeper/services/gateway"),
		metricsApart: cfg.MetricsPort != 0,
	}, nil
}

// Run does the gateway's background work, dropping idle rate-limit entries, until ctx ends.
func (g *Gateway) Run(ctx context.Context) {
	g.limiter.Run(ctx)
}

// Close releases the idle connections to the services.
func (g *Gateway) Close() {
	for i := range g.svcs {
		g.svcs[i].client.CloseIdleConnections()
	}
	g.health.client.CloseIdleConnections()
}

// Handler returns the gateway's whole HTTP handler: the route table, behind the rate limit, and
// the gateway's own GET /health, /healthz, /readyz and /metrics (from reg; not when it has a
// port of its own, Config.MetricsPort, where MetricsHandler serves it). Every request goes
// through the suite's middleware (request id, tracing, access log, metrics per route and
// status, panic recovery); what no route matches is answered JSON 404 or 405. A request with
// Expect: 100-continue is invited to send its body only when it is to be proxied
// (expectContinue).
func (g *Gateway) Handler(reg *prometheus.Registry) Handler {
	own := web.NewMux(g.log, reg)
	// The gateway is ready when it can serve; a service being down is reported by /health and
	// answered 503 per request, and must not take every gateway replica out of its Service.
	health.Register(own)
	if !g.metricsApart {
		own.Handle("GET /metrics", metrics.Handler(reg))
	}
	own.Handle("GET /health", g.health)
	serveOwn := fasthttpadaptor.NewFastHTTPHandler(own)
	m := web.NewHTTPMetrics(reg)
	serve := func(ctx *fasthttp.RequestCtx) {
		g.heads.release(g.forgetHead(ctx, false)) // the body was read as far as the server reads it
		if ctx.IsConnect() {
			// The gateway tunnels nothing, and the adaptor cannot read most CONNECT targets (an
			// IP address, a bare host) either: it would answer 500 in plain text.
			dropBody(ctx)
			g.refuse(ctx, m, g.accessOf(ctx), &ctx.Request.Header, time.Now(), fasthttp.StatusNotFound, notFoundBody)
			return
		}
		if r := match(g.routes, ctx.Path()); r != nil {
			g.proxy(ctx, r, m)
			return
		}
		if !validEscapes(ctx.Request.URI().PathOriginal()) {
			// net/http cannot read such a path: the adaptor would answer 500 in plain text.
			dropBody(ctx)
			g.refuse(ctx, m, g.accessOf(ctx), &ctx.Request.Header, time.Now(), fasthttp.StatusBadRequest, malformedPathBody)
			return
		}
		// The gateway's own paths take no body, and the adaptor would read one whole, outside
		// every budget, before the mux answers: a small one is dropped, a larger one not read.
		dropBody(ctx)
		serveOwn(ctx)
	}
	return Handler{
		Serve:     serve,
		HeadRead:  g.heads.note,
		ReadError: func(ctx *fasthttp.RequestCtx, err error) { g.answerReadError(ctx, m, err) },
		Expect:    func(ctx *fasthttp.RequestCtx) int { return g.expectContinue(ctx, m, serve) },
		Clients:   g.clients,
		RefusedConn: func() string {
			// Refused before any request is read: named as a request whose head was not.
			a := web.Access{RequestID: web.NewRequestID(), Route: web.UnmatchedRoute, Status: fasthttp.StatusTooManyRequests,
				Bytes: int64(len(tooManyConnectionsBody))}
			web.Served(context.Background(), g.log, m, &a)
			return a.RequestID
		},
	}
}

// MetricsHandler is what the gateway serves on Config.MetricsPort: GET /metrics (from reg),
// through the suite's middleware as every request of the public port, and JSON 404 or 405 for
// anything else.
func (g *Gateway) MetricsHandler(reg *prometheus.Registry) http.Handler {
	m := web.NewMux(g.log, reg)
	m.Handle("GET /metrics", metrics.Handler(reg))
	return m
}

// accessOfHead names a request by what its head said (n), as accessOf does: the route and the
// path are those of the path the server makes of the target (the host of an absolute-form
// target left out, %-escapes decoded, dot-segments removed), by which it would have been
// routed; the raw path when the target cannot be parsed.
func (g *Gateway) accessOfHead(n *headNote) web.Access {
	method, _ := methodName(n.method) // the constant of a standard method
	var u fasthttp.URI
	path := n.target
	if u.Parse(n.host, n.target) == nil {
		path = u.Path()
	} else {
		path, _, _ = bytes.Cut(path, []byte("?"))
	}
	return web.Access{RequestID: requestID(n.requestID), Method: method, Route: g.routeOf(path), Path: string(path)}
}

// answerReadError answers a request the server could not read (readErrorAnswer) and records
// it as refuse does. A request whose head was read is named by it (its request id, method,
// path and route); one whose head was not is counted and logged under web.UnmatchedRoute with
// a new request id and no method or path. The connection closes after it, gently: the rest
// of the request may be on its way. A connection that sent nothing before it timed out made
// no request: it is answered and closed, but neither counted nor logged (a browser's unused
// preconnection, say).
func (g *Gateway) answerReadError(ctx *fasthttp.RequestCtx, m *web.HTTPMetrics, err error) {
	status, body := readErrorAnswer(err)
	closeGently(ctx)
	note := g.forgetHead(ctx, true)
	defer g.heads.release(note)
	if c, ok := ctx.Conn().(*gentleConn); ok && c.read == 0 {
		writeJSON(&ctx.Response, status, body)
		return
	}
	var a web.Access
	var read *fasthttp.RequestHeader // the head, while it holds what the client sent
	start := time.Now()
	switch head := &ctx.Request.Header; {
	case len(head.RawHeaders()) > 0: // read, but its target could not be
		var n headNote
		n.take(head)
		a = g.accessOfHead(&n)
		read = head
	case note != nil: // read, then emptied when its body could not be
		a = g.accessOfHead(note)
		start = note.at // the request took from its head until its body failed
	default:
		a = web.Access{RequestID: web.NewRequestID(), Route: web.UnmatchedRoute}
	}
	g.refuse(ctx, m, a, read, start, status, body)
}

// expectContinue answers a request's Expect: 100-continue before its body is sent. Only a
// request the gateway is to proxy is invited to send it: one to a route, from a client within
// its limit, whose path and header fields can be sent on, announcing at most
// web.MaxBodyBytes. Any other is answered at once, as it would be once its body was in (serve
// answers it, and proxy answers a refused one), without the body: a body announced over the
// limit 413; a client over its limit 429; a path or field name that cannot be sent on 400; the
// gateway's own paths, unknown ones and CONNECT as without the expectation. The connection
// closes after such an answer, gently: a client that stopped waiting for the invitation may
// be sending the body already.
//
// The limit's decision on an invited request is kept on its connection (takeAdmitted), so
// that serving or answering it does not count it twice. The note of its head (heads.note)
// stays for the body that follows the invitation, on the connection (keepHead): it may stall
// or stop short too.
func (g *Gateway) expectContinue(ctx *fasthttp.RequestCtx, m *web.HTTPMetrics, serve fasthttp.RequestHandler) int {
	c, _ := ctx.Conn().(*gentleConn)
	if ctx.Request.Header.ContentLength() > web.MaxBodyBytes {
		g.heads.release(g.forgetHead(ctx, false)) // the request ends here, without the handler or answerReadError
		status := g.refuse(ctx, m, g.accessOf(ctx), &ctx.Request.Header, time.Now(), fasthttp.StatusRequestEntityTooLarge, bodyTooLargeBody)
		closeGently(ctx)
		return status // the server sets it again
	}
	if r := match(g.routes, ctx.Path()); r != nil && !ctx.IsConnect() && c != nil {
		client, _ := g.clientOf(ctx, &ctx.Request.Header)
		c.admitted, c.hasAdmitted = g.limiter.Allow(ratelimit.KeyFor(client)), true
		if c.admitted.Allowed && headRefusal(&ctx.Request.Header, ctx.Request.URI()) == nil {
			g.keepHead(ctx)
			return fasthttp.StatusContinue
		}
	} else if c == nil {
		// A connection that is not a gentleConn keeps no decision: the body is invited, and
		// the request is limited when served.
		g.keepHead(ctx)
		return fasthttp.StatusContinue
	}
	serve(ctx) // reads no body: none has been read, and none is invited
	c.hasAdmitted = false
	closeGently(ctx)
	return ctx.Response.StatusCode() // the server sets it again
}

// takeAdmitted returns the rate limit's decision on the request of ctx that its
// Expect: 100-continue took (expectContinue), and true; false when it took none. The decision
// is taken once: the connection's next request is counted anew.
func takeAdmitted(ctx *fasthttp.RequestCtx) (ratelimit.Decision, bool) {
	if c, ok := ctx.Conn().(*gentleConn); ok && c.hasAdmitted {
		c.hasAdmitted = false
		return c.admitted, true
	}
	return ratelimit.Decision{}, false
}

// headRefusal is the answer to a request on a route whose path or header fields cannot be
// sent to its service, nil when they can: a path with a broken %-escape, or a field name that
// is no token, which the service's net/http server would refuse in plain text.
func headRefusal(h *fasthttp.RequestHeader, u *fasthttp.URI) *web.ErrorBody {
	switch {
	case !validEscapes(u.PathOriginal()):
		return &malformedPathBody
	case !validFieldNames(h.All()):
		return &malformedFieldBody
	}
	return nil
}

// malformedPathBody is the answer to a path with a broken %-escape.
var malformedPathBody = web.ErrorBody{Error: "Malformed request: invalid %-escape in the path"}

// malformedFieldBody is the answer to a header field whose name is no token.
var malformedFieldBody = web.ErrorBody{Error: "Malformed request: a header field's name is not a token"}

// notFoundBody is the answer to what no route and none of the gateway's own paths take, as
// web.NewMux answers it.
var notFoundBody = web.ErrorBody{Error: "Not found"}

// validEscapes reports whether every "%" of the raw path p starts a %XX escape, as net/http
// requires of a request's path (and so the services do): "/users/%zz" is refused there
// before any handler runs.
func validEscapes(p []byte) bool {
	if bytes.IndexByte(p, '%') < 0 {
		return true
	}
	_, err := url.PathUnescape(string(p))
	return err == nil
}

// refuse answers ctx with status and body in JSON where proxy does not run (a request the
// server cannot read, a path the gateway's own net/http mux cannot read, a body refused
// before the server reads it), and records the answer as proxy and the mux record theirs:
// with the request's id, counted in m and logged. a names the request (accessOf); head is
// its head as the client sent it, or nil when that is gone; start is when the request began,
// for its duration.
//
// A request on a routed path counts against its client's limit as proxy counts it, and its
// answer carries the limit's headers: a client over the limit is answered 429 rather than
// refused for what it sent. A request from a trusted proxy whose head is gone is not
// counted: its client is not known, and the proxy's own address is no client's. refuse
// returns the status it answered.
func (g *Gateway) refuse(ctx *fasthttp.RequestCtx, m *web.HTTPMetrics, a web.Access, head *fasthttp.RequestHeader, start time.Time, status int, body any) int {
	d, limited := takeAdmitted(ctx) // counted when its Expect: 100-continue was answered
	if !limited && a.Route != web.UnmatchedRoute {
		if client, trusted := g.clientOf(ctx, head); head != nil || !trusted {
			d, limited = g.limiter.Allow(ratelimit.KeyFor(client)), true
		}
	}
	if limited && !d.Allowed {
		status, body = fasthttp.StatusTooManyRequests, tooManyRequests{Error: "Too many requests"}
	}
	writeJSON(&ctx.Response, status, body)
	ctx.Response.Header.Set(web.RequestIDHeader, a.RequestID)
	if limited {
		limitHeaders(&ctx.Response.Header, g.policy, d)
	}
	a.Status = status
	a.Bytes = int64(len(ctx.Response.Body()))
	a.Duration = time.Since(start)
	web.Served(ctx, g.log, m, &a)
	return status
}

// accessOf names a request whose head was read as its metrics and access-log line name it:
// its request id (requestIDOf), method, path and route (routeOf).
func (g *Gateway) accessOf(ctx *fasthttp.RequestCtx) web.Access {
	method, _ := methodName(ctx.Method())
	return web.Access{
		RequestID: requestIDOf(&ctx.Request.Header), Method: method,
		Route: g.routeOf(ctx.Path()), Path: string(ctx.Path()),
	}
}

// routeOf is the route of path in the metrics and the access log: the pattern of the route
// it matches, else web.UnmatchedRoute (the gateway's own paths included: a bounded set of
// labels either way).
func (g *Gateway) routeOf(path []byte) string {
	if r := match(g.routes, path); r != nil {
		return r.pattern
	}
	return web.UnmatchedRoute
}

// requestIDOf is the request's X-Request-ID when it is sane, else a new one.
func requestIDOf(h *fasthttp.RequestHeader) string {
	return requestID(h.Peek(web.RequestIDHeader))
}

// requestID is sent, a request's X-Request-ID, when it is sane, else a new one.
func requestID[S string | []byte](sent S) string {
	if web.ValidRequestID(sent) {
		return string(sent)
	}
	return web.NewRequestID()
}

// tooManyRequestsBody is the body of every 429.
var tooManyRequestsBody = mustJSON(tooManyRequests{Error: "Too many requests"})

// proxy serves one request of route r: it applies the rate limit and forwards the request to
// r's service, with the middleware every server of the suite has (request id, tracing, access
// log, metrics, panic recovery) written for fasthttp's request.
func (g *Gateway) proxy(ctx *fasthttp.RequestCtx, r *route, m *web.HTTPMetrics) {
	start := time.Now()
	req, resp := &ctx.Request, &ctx.Response
	method, standard := methodName(ctx.Method())

	// The client, and what the head is refused for, are taken from the head as the client sent
	// it, before the fields its Connection names go, as expectContinue and refuse take them: a
	// request refused at its Expect: 100-continue is never sent on without its body.
	peer := peerAddr(ctx)
	client, trusted := g.clientOfPeer(peer, &req.Header)
	refusal := headRefusal(&req.Header, req.URI())

	// Request id: a sane incoming X-Request-ID is kept, else one is made; the service gets it
	// and the client gets it back.
	// Hop-by-hop headers, and those the client's Connection names, go before the gateway adds
	// its own (request id, traceparent, X-Forwarded-*), so a client cannot name those away.
	clientClose := req.Header.ConnectionClose()
	if hasTrailers(req.Header.Trailers()) {
		dropTrailers(&req.Header)
	}
	if hasHopHeader(req.Header.All()) {
		// The client's close stays, for dropBody, which reads it when the request is answered
		// without its body (429, 400): such a body is not read on. The service never gets it
		// (ResetConnectionClose before the request is sent).
		dropHopHeaders(&req.Header)
	}
	requestID := requestIDOf(&req.Header)
	// Set replaces only the first of several: the service gets this one alone.
	req.Header.Del(web.RequestIDHeader)
	req.Header.Set(web.RequestIDHeader, requestID)
	logging := g.log.Enabled(ctx, slog.LevelInfo)
	var path string
	if logging {
		path = string(ctx.Path()) // before forwardRequest rewrites it
	}

	// Tracing. While spans are recorded, the gateway's server span continues the caller's trace
	// and the service's span is its child; otherwise the caller's traceparent goes to the service
	// as it came, which is the whole of continuing the trace.
	var span trace.Span
	var traceID string
	if tracing.Recording() {
		carrier := headerCarrier{&req.Header}
		propagator := otel.GetTextMapPropagator()
		var sctx context.Context
		// A method the client made up names no span and sets no attribute value of its own
		// (OpenTelemetry's conventions): the client could otherwise make them without bound.
		spanMethod, methodAttr := method, method
		if !standard {
			spanMethod, methodAttr = "HTTP", "_OTHER"
		}
		sctx, span = g.tracer.Start(propagator.Extract(context.Background(), carrier), spanMethod+" "+r.pattern,
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("http.request.method", methodAttr),
				attribute.String("http.route", r.pattern),
				attribute.String("url.path", string(ctx.Path())),
			))
		// Inject writes a tracestate only when the span has one: the client's, sent with a
		// traceparent that could not be continued (or none), would otherwise go on beside the
		// new trace's traceparent, which W3C Trace Context forbids (a tracestate without its
		// valid traceparent is discarded).
		req.Header.Del("Tracestate")
		propagator.Inject(sctx, carrier)
		traceID = span.SpanContext().TraceID().String()
	} else if logging && len(req.Header.Peek("Traceparent")) > 0 {
		sc := trace.SpanContextFromContext(otel.GetTextMapPropagator().Extract(context.Background(), headerCarrier{&req.Header}))
		if sc.IsValid() {
			traceID = sc.TraceID().String()
		}
	}

	// The limit's decision, once taken: every answer from then on carries its headers,
	// whatever it is, the 500 of a recovered panic too.
	var d ratelimit.Decision
	limited := false
	defer func() {
		if v := recover(); v != nil {
			g.log.Error("panic serving request", slog.String("request_id", requestID),
				slog.String("panic", fmt.Sprint(v)), slog.String("stack", strings.TrimSpace(string(debug.Stack()))))
			resp.Reset()
			writeJSON(resp, fasthttp.StatusInternalServerError, web.ErrorBody{Error: "Internal server error"})
		}
		if limited {
			limitHeaders(&resp.Header, g.policy, d)
		}
		// The service echoes the id it was given; the answer carries it once.
		resp.Header.Del(web.RequestIDHeader)
		resp.Header.Set(web.RequestIDHeader, requestID)
		status := resp.StatusCode()
		elapsed := time.Since(start)
		if span != nil {
			span.SetAttributes(attribute.Int("http.response.status_code", status))
			if status >= 500 {
				span.SetStatus(codes.Error, "")
			}
			span.End()
		}
		web.Served(ctx, g.log, m, &web.Access{
			RequestID: requestID, TraceID: traceID, Method: method, Route: r.pattern, Path: path,
			Status: status, Bytes: answerBytes(resp), Duration: elapsed,
		})
	}()

	// A request without a network peer (never the case behind a listener) shares one bucket:
	// failing closed beats letting it through unlimited.
	d, admitted := takeAdmitted(ctx)
	if !admitted {
		d = g.limiter.Allow(ratelimit.KeyFor(client))
	}
	limited = true
	if !d.Allowed {
		resp.SetStatusCode(fasthttp.StatusTooManyRequests)
		resp.Header.SetContentType("application/json")
		resp.SetBody(tooManyRequestsBody)
		dropBody(ctx) // a request without a body (nearly every one) returns at once
		return
	}
	if refusal != nil {
		writeJSON(resp, fasthttp.StatusBadRequest, *refusal)
		dropBody(ctx)
		return
	}
	ok, taken := g.readBody(ctx, r.svc.name)
	defer g.releaseBody(req, taken)
	if !ok {
		return
	}
	if hasTrailers(req.Header.Trailers()) { // a streamed body's, read just now
		dropTrailers(&req.Header)
	}

	var buf [256]byte
	forwardRequest(req, r, peer, trusted, buf[:0])
	// Whether the client's connection stays open is the client's business, and the service's
	// connection the pool's: neither side's Connection: close crosses the gateway.
	req.Header.ResetConnectionClose()
	// The service is always spoken to in HTTP/1.1, whatever version the client's request line
	// named: an HTTP/1.0 request would make the service close the pooled connection after it,
	// and "HTTP/2.0" would be answered 505 in plain text. The client's version is put back for
	// the server's own answer.
	proto := append(buf[:0:0], req.Header.Protocol()...)
	req.Header.SetProtocol("HTTP/1.1")
	err := r.svc.client.DoTimeout(req, resp, g.timeout)
	req.Header.SetProtocolBytes(proto)
	if err != nil {
		resp.Reset()
		status, body := upstreamFailure(r.svc.name, err)
		g.log.Warn("service failed", slog.String("request_id", requestID),
			slog.String("upstream", r.svc.name), slog.Int("status", status), slog.Any("err", err))
		writeJSON(resp, status, body)
	} else {
		resp.Header.ResetConnectionClose()
		if hasTrailers(resp.Header.Trailers()) {
			dropTrailers(&resp.Header)
		}
		if hasHopHeader(resp.Header.All()) {
			dropHopHeaders(&resp.Header)
		}
		g.holdAnswer(req, resp, r.svc.name)
	}
	if clientClose {
		ctx.SetConnectionClose()
	}
}

// bufferedBodyBytes is the size up to which a request body is read whole at once: nearly
// every request of the shop's API. A larger or chunked one is read within largeBodyBudget.
const bufferedBodyBytes = 64 << 10

// largeBodyBudget bounds the bytes of request bodies over bufferedBodyBytes being read at
// once: 32 of the largest bodies the services take.
const largeBodyBudget = 32 << 20

// readBody reads the request's body whole before a connection to the service is taken, so
// that a client sending slowly, or stopping, holds only its own connection to the gateway:
// a few holding the service's connections would shut it off for everyone, and a body the
// client fails to send is answered as the client's error (400, 408), not the service's. A
// buffered request can also go again on another connection when the one it was given turns
// out closed (checkedConn). The first bufferedBodyBytes are read at once; the rest of a
// larger or chunked body within largeBodyBudget (else 503), taken as its bytes arrive, so
// that clients holding large bodies half sent cost bounded memory. A body over
// web.MaxBodyBytes, the services' limit, is 413: announced, before a byte of it is read. It
// reports whether the request can go on, and the budget taken, for releaseBody once the
// request is sent; when it cannot go on, the answer is written, and the connection closes
// after it, gently (gentleConn): the rest of the body may still be on its way.
func (g *Gateway) readBody(ctx *fasthttp.RequestCtx, svc string) (ok bool, taken int64) {
	req := &ctx.Request
	n := req.Header.ContentLength() // < 0: chunked
	if n > web.MaxBodyBytes {
		return refuseBody(ctx, fasthttp.ErrBodyTooLarge), 0
	}
	stream := req.BodyStream()
	if stream == nil {
		return true, 0 // none, or read with the head
	}
	b := bodyBuffers.Get().(*bytes.Buffer)
	defer bodyBuffers.Put(b)
	b.Reset()
	want := int64(web.MaxBodyBytes + 1) // chunked: one byte over the limit tells it is over
	if n >= 0 {
		want = int64(n)
	}
	wire := limitChunkedReads(ctx, chunkedWireBytes)
	if wire != nil {
		defer wire.limitReads(0)
	}
	var err error
	for int64(b.Len()) < want && err == nil {
		step := min(want-int64(b.Len()), bufferedBodyBytes)
		if b.Len() >= bufferedBodyBytes { // past what is read at once
			if !g.bodyBudget.TryAcquire(step) {
				closeGently(ctx) // the rest of the body is not read
				writeJSON(&ctx.Response, fasthttp.StatusServiceUnavailable, errorBody{
					Error: "Service unavailable", Service: svc,
					Message: "the gateway is receiving too many large request bodies; send it again later",
				})
				return false, taken
			}
			taken += step
		}
		var got int64
		got, err = b.ReadFrom(io.LimitReader(stream, step))
		if got < step {
			break // the body ended (chunked), or the client stopped
		}
	}
	switch {
	case wire != nil && wire.limited:
		err = fasthttp.ErrBodyTooLarge // its framing
	case err != nil:
	case n < 0 && b.Len() > web.MaxBodyBytes:
		err = fasthttp.ErrBodyTooLarge
	case n >= 0 && b.Len() != n:
		err = io.ErrUnexpectedEOF // the client stopped sending
	}
	if err != nil {
		return refuseBody(ctx, err), taken
	}
	req.SetBody(b.Bytes()) // copied; closes the stream
	return true, taken
}

// chunkedWireBytes bounds what a chunked request body the gateway reads takes on the wire,
// its framing, chunk extensions and trailer section included: six times what the services
// take of it, and a trailer section's worth. A body at their limit still arrives however it
// is cut into chunks whose sizes are written short, as clients write them ("1\r\nx\r\n", a
// byte a chunk, takes 6 bytes for each; Go's net/http, and so the services, take a body sent
// so). One whose sizes carry leading zeros ("01\r\nx\r\n") may be refused 413: taking every
// such body, as net/http does, would mean reading about 21 times the limit. Chunk
// extensions, which fasthttp reads and skips without bound, cannot make the gateway read
// more than this for a body.
const chunkedWireBytes = 6*web.MaxBodyBytes + readBufferSize

// limitChunkedReads bounds what the connection of ctx reads of a chunked body to n bytes
// (gentleConn.limitReads) and returns the connection, when the request's body is chunked and
// its connection a gentleConn; else nil. The caller lifts the bound (limitReads(0)) once the
// body is read.
func limitChunkedReads(ctx *fasthttp.RequestCtx, n int64) *gentleConn {
	if ctx.Request.Header.ContentLength() != -1 {
		return nil
	}
	c, ok := ctx.Conn().(*gentleConn)
	if !ok {
		return nil
	}
	c.limitReads(n)
	return c
}

// releaseBody gives back what readBody took once the request is sent: the budget, and the
// body's buffer, which kept on the connection's context would hold the largest body's size
// while the connection idles.
func (g *Gateway) releaseBody(req *fasthttp.Request, taken int64) {
	req.ReleaseBody(bufferedBodyBytes)
	if taken > 0 {
		g.bodyBudget.Release(taken)
	}
}

// refuseBody answers a request whose body cannot be read as the server answers what it
// cannot read (readErrorAnswer) and closes the connection after it, gently: the client may
// still be sending the body. It returns false; proxy records the answer.
func refuseBody(ctx *fasthttp.RequestCtx, err error) bool {
	status, body := readErrorAnswer(err)
	writeJSON(&ctx.Response, status, body)
	closeGently(ctx)
	return false
}

// dropBodyBytes bounds what the gateway reads, and drops, of a body it answers without
// (dropBody) to keep the connection for the client's next request, as net/http's server reads
// up to 256 KiB of a body its handler left unread before it answers.
const dropBodyBytes = 256 << 10

// dropBody disposes of the body of a request the gateway answers without it (its own paths, a
// 429, a request refused for its head), so that the request the client sends next on the
// connection, pipelined or not, is read and answered rather than taken for the rest of the
// body or dropped: what the server did not read of a body within dropBodyBytes is read now and
// dropped, within the body's read timeout, and the connection stays open (a chunked one
// within twice that on the wire, its chunk extensions included). A larger body, one
// that does not arrive whole, malformed chunks, or a body on a connection the client closes
// after this request, is not read on: the connection closes after the answer, which says so,
// gently (gentleConn), the client may still be sending. The request is left without a body
// (the adaptor of the gateway's own paths reads none) and without a trailer section.
func dropBody(ctx *fasthttp.RequestCtx) {
	req := &ctx.Request
	stream := req.BodyStream()
	if stream == nil {
		return // none (every GET), or read whole with the head
	}
	n := req.Header.ContentLength() // < 0: chunked
	if wire := limitChunkedReads(ctx, 2*dropBodyBytes); wire != nil {
		defer wire.limitReads(0)
	}
	if n > dropBodyBytes || hasBody(&req.Header) && (req.Header.ConnectionClose() || !drained(stream, n)) {
		closeGently(ctx)
	}
	if hasTrailers(req.Header.Trailers()) { // a chunked body's, read just now
		dropTrailers(&req.Header)
	}
	req.ResetBody()
	req.Header.SetContentLength(0)
}

// drained reads and drops a body stream of n bytes (< 0: chunked), up to dropBodyBytes, and
// reports whether it ended there, whole: a stream whose client stopped short of n also ends
// (fasthttp's request stream says io.EOF), as readBody finds.
func drained(stream io.Reader, n int) bool {
	got, err := io.CopyN(io.Discard, stream, dropBodyBytes+1)
	return errors.Is(err, io.EOF) && (n < 0 || got == int64(n))
}

// bufferedAnswerBytes is the size up to which a service's answer is held for its client
// outside any budget: nearly every answer of the shop's API. A larger one (a page of a list)
// is held within largeAnswerBudget.
const bufferedAnswerBytes = 64 << 10

// largeAnswerBudget bounds the bytes of answers over bufferedAnswerBytes held while their
// clients read them: a page of 100 products is up to about 3 MiB.
const largeAnswerBudget = 32 << 20

// holdAnswer keeps a service's answer over bufferedAnswerBytes, read whole into resp, within
// largeAnswerBudget until the server has written it out or given up: a client that reads
// slowly, or not at all, would otherwise make the gateway hold every such answer it asked
// for until the write timeout. Past the budget, the answer to a GET (which changed nothing)
// is dropped for a 503 the client may retry; any other is sent outside the budget, since a
// 503 would say it was not done. (The answer to a HEAD has no body to hold.)
func (g *Gateway) holdAnswer(req *fasthttp.Request, resp *fasthttp.Response, svc string) {
	n := int64(len(resp.Body()))
	if n <= bufferedAnswerBytes {
		return
	}
	if !g.answerBudget.TryAcquire(n) {
		if req.Header.IsGet() {
			resp.Reset()
			writeJSON(resp, fasthttp.StatusServiceUnavailable, errorBody{
				Error: "Service unavailable", Service: svc,
				Message: "the gateway is sending too many large answers; send the request again later",
			})
		}
		return
	}
	// The body becomes a stream the server reads and then closes, which gives back the
	// budget; SwapBody hands over its bytes, which the response's pool no longer holds.
	resp.SetBodyStream(&heldAnswer{Reader: bytes.NewReader(resp.SwapBody(nil)), n: n, budget: g.answerBudget}, int(n))
}

// heldAnswer is a large answer being written to its client, its bytes counted in the budget
// until the server closes it (fasthttp closes a response's body stream once it is written,
// or when the response is reset unwritten).
type heldAnswer struct {
	*bytes.Reader
	n      int64
	budget *semaphore.Weighted
}

func (h *heldAnswer) Close() error {
	if h.budget != nil {
		h.budget.Release(h.n)
		h.budget = nil
	}
	return nil
}

// answerBytes is the size of the body of resp, without reading a held answer's stream.
func answerBytes(resp *fasthttp.Response) int64 {
	if resp.IsBodyStream() {
		return int64(resp.Header.ContentLength())
	}
	return int64(len(resp.Body()))
}

// bodyBuffers holds the buffers readBody reads bodies into.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// clientOf is the address of the client a request came from, by which it is limited: the
// connection's peer, or the client a trusted proxy (TRUSTED_PROXIES) names in the
// X-Forwarded-For of head; head nil leaves the peer. trusted tells whether the peer is such
// a proxy.
func (g *Gateway) clientOf(ctx *fasthttp.RequestCtx, head *fasthttp.RequestHeader) (client netip.Addr, trusted bool) {
	return g.clientOfPeer(peerAddr(ctx), head)
}

// clientOfPeer is clientOf for a request that came from peer.
func (g *Gateway) clientOfPeer(peer netip.Addr, head *fasthttp.RequestHeader) (client netip.Addr, trusted bool) {
	trusted = peer.IsValid() && g.ips.Trusted(peer)
	if trusted && head != nil {
		return g.ips.ClientIP(peer, head.PeekAll("X-Forwarded-For")), true
	}
	return peer, trusted
}

// hasBody reports whether the request of h has a body: a Content-Length over 0, or chunked
// (fasthttp's -1). Without either (fasthttp's -2) or with Content-Length: 0 it has none.
func hasBody(h *fasthttp.RequestHeader) bool {
	n := h.ContentLength()
	return n > 0 || n == -1
}

// peerAddr returns the address of the connection ctx came on, or the zero Addr when it did not
// come over TCP.
func peerAddr(ctx *fasthttp.RequestCtx) netip.Addr {
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// methodName returns the method of a request as a string, the constant one for a standard
// method, so that the common case does not allocate, and whether it is a standard one.
func methodName(m []byte) (name string, standard bool) {
	for _, s := range web.StandardMethods {
		if string(m) == s {
			return s, true
		}
	}
	return string(m), false
}

// writeJSON makes resp a JSON answer of v with status, as web.Respond does.
func writeJSON(resp *fasthttp.Response, status int, v any) {
	resp.SetStatusCode(status)
	resp.Header.SetContentType("application/json")
	resp.SetBody(mustJSON(v))
}

// mustJSON encodes v as web.Respond does, with a final newline; v is one of the gateway's own
// bodies, which always encode.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

// headerCarrier lets the trace-context propagator read and write a fasthttp request's headers.
type headerCarrier struct{ h *fasthttp.RequestHeader }

var _ propagation.TextMapCarrier = headerCarrier{}

// Get returns the value of key.
func (c headerCarrier) Get(key string) string { return string(c.h.Peek(key)) }

// Set sets key to value, removing every other value of key (fasthttp's Set replaces only
// the first).
func (c headerCarrier) Set(key, value string) {
	c.h.Del(key)
	c.h.Set(key, value)
}

// Keys lists the keys present.
func (c headerCarrier) Keys() []string {
	var keys []string
	for k := range c.h.All() {
		keys = append(keys, string(k))
	}
	return keys
}

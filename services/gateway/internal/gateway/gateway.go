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
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
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

	"github.com/shopkeeper-dev/shopkeeper/services/gateway/internal/clientip"
	"github.com/shopkeeper-dev/shopkeeper/services/gateway/internal/ratelimit"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/health"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// Gateway holds the routes and the state behind them.
type Gateway struct {
	svcs    []service
	routes  []route
	timeout time.Duration
	limiter *ratelimit.Limiter
	policy  []byte // the RateLimit-Policy field, the same on every answer
	ips     *clientip.Resolver
	health  *suiteHealth
	log     *slog.Logger
	tracer  trace.Tracer
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
	return &Gateway{
		svcs:    svcs,
		routes:  routes(svcs),
		timeout: cfg.UpstreamTimeout,
		limiter: limiter,
		policy:  rateLimitPolicyValue(limiter),
		ips:     clientip.NewResolver(trusted),
		health:  newSuiteHealth(svcs, newHealthTransport(cfg), cfg.HealthTimeout, cfg.HealthCacheTTL),
		log:     log,
		tracer:  otel.Tracer("github.com/shopkeeper-dev/shopkeeper/services/gateway"),
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
// the gateway's own GET /health, /healthz, /readyz and /metrics (from reg). Every request goes
// through the suite's middleware (request id, tracing, access log, metrics per route and
// status, panic recovery); what no route matches is answered JSON 404 or 405.
func (g *Gateway) Handler(reg *prometheus.Registry) fasthttp.RequestHandler {
	own := web.NewMux(g.log, reg)
	// The gateway is ready when it can serve; a service being down is reported by /health and
	// answered 503 per request, and must not take every gateway replica out of its Service.
	health.Register(own)
	own.Handle("GET /metrics", metrics.Handler(reg))
	own.Handle("GET /health", g.health)
	serveOwn := fasthttpadaptor.NewFastHTTPHandler(own)
	m := web.NewHTTPMetrics(reg)
	return func(ctx *fasthttp.RequestCtx) {
		if r := match(g.routes, ctx.Path()); r != nil {
			g.proxy(ctx, r, m)
			return
		}
		serveOwn(ctx)
	}
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

	// Request id: a sane incoming X-Request-ID is kept, else one is made; the service gets it
	// and the client gets it back.
	id := req.Header.Peek(web.RequestIDHeader)
	var requestID string
	if web.ValidRequestID(id) {
		requestID = string(id)
	} else {
		requestID = web.NewRequestID()
		req.Header.Set(web.RequestIDHeader, requestID)
	}
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
		propagator.Inject(sctx, carrier)
		traceID = span.SpanContext().TraceID().String()
	} else if logging && len(req.Header.Peek("Traceparent")) > 0 {
		sc := trace.SpanContextFromContext(otel.GetTextMapPropagator().Extract(context.Background(), headerCarrier{&req.Header}))
		if sc.IsValid() {
			traceID = sc.TraceID().String()
		}
	}

	defer func() {
		if v := recover(); v != nil {
			g.log.Error("panic serving request", slog.String("request_id", requestID),
				slog.String("panic", fmt.Sprint(v)), slog.String("stack", strings.TrimSpace(string(debug.Stack()))))
			resp.Reset()
			writeJSON(resp, fasthttp.StatusInternalServerError, web.ErrorBody{Error: "Internal server error"})
		}
		// The service echoes the id it was given; the answer carries it once.
		resp.Header.Del(web.RequestIDHeader)
		resp.Header.Set(web.RequestIDHeader, requestID)
		status := resp.StatusCode()
		elapsed := time.Since(start)
		m.Record(method, r.pattern, status, elapsed)
		if span != nil {
			span.SetAttributes(attribute.Int("http.response.status_code", status))
			if status >= 500 {
				span.SetStatus(codes.Error, "")
			}
			span.End()
		}
		if logging {
			web.LogAccess(ctx, g.log, slog.LevelInfo, &web.Access{
				RequestID: requestID, TraceID: traceID, Method: method, Route: r.pattern, Path: path,
				Status: status, Bytes: int64(len(resp.Body())), Duration: elapsed,
			})
		}
	}()

	peer := peerAddr(ctx)
	trusted := peer.IsValid() && g.ips.Trusted(peer)
	client := peer
	if trusted {
		client = g.ips.ClientIP(peer, req.Header.PeekAll("X-Forwarded-For"))
	}
	// A request without a network peer (never the case behind a listener) shares one bucket:
	// failing closed beats letting it through unlimited.
	d := g.limiter.Allow(ratelimit.KeyFor(client))
	// Every answer from here on carries the limit's headers, whatever it is.
	defer limitHeaders(&resp.Header, g.policy, d)
	if !d.Allowed {
		resp.SetStatusCode(fasthttp.StatusTooManyRequests)
		resp.Header.SetContentType("application/json")
		resp.SetBody(tooManyRequestsBody)
		return
	}
	if !readBody(ctx) {
		return
	}

	var buf [256]byte
	clientClose := req.Header.ConnectionClose()
	forwardRequest(req, r, peer, trusted, buf[:0])
	// Whether the client's connection stays open is the client's business, and the service's
	// connection the pool's: neither side's Connection: close crosses the gateway.
	req.Header.ResetConnectionClose()
	if err := r.svc.client.DoTimeout(req, resp, g.timeout); err != nil {
		resp.Reset()
		status, body := upstreamFailure(r.svc.name, err)
		g.log.Warn("service failed", slog.String("request_id", requestID),
			slog.String("upstream", r.svc.name), slog.Int("status", status), slog.Any("err", err))
		writeJSON(resp, status, body)
	} else {
		resp.Header.ResetConnectionClose()
		dropHopHeaders(&resp.Header)
	}
	if clientClose {
		ctx.SetConnectionClose()
	}
	limitHeaders(&resp.Header, g.policy, d)
}

// bufferedBodyBytes bounds the request bodies read whole before they are forwarded: those
// announced with a Content-Length up to it, nearly every request of the shop's API. A buffered
// request can go again on another connection when the one it was given turns out closed
// (checkedConn); a streamed one cannot be read twice. Larger or chunked bodies stream.
const bufferedBodyBytes = 64 << 10

// readBody refuses a body announced over the services' limit before a byte of it is read,
// and reads whole one that bufferedBodyBytes allows; the rest stream. It reports whether the
// request can go on; when not, the answer is written as the server answers what it cannot
// read (answerReadError), and the connection, with the body unread on it, closes after it.
func readBody(ctx *fasthttp.RequestCtx) bool {
	req := &ctx.Request
	n := req.Header.ContentLength()
	if n > web.MaxBodyBytes {
		answerReadError(ctx, fasthttp.ErrBodyTooLarge)
		ctx.SetConnectionClose()
		return false
	}
	stream := req.BodyStream()
	if stream == nil || n < 0 || n > bufferedBodyBytes {
		return true
	}
	b := bodyBuffers.Get().(*bytes.Buffer)
	defer bodyBuffers.Put(b)
	b.Reset()
	if _, err := b.ReadFrom(io.LimitReader(stream, int64(n))); err != nil || b.Len() != n {
		if err == nil {
			err = io.ErrUnexpectedEOF // the client stopped sending
		}
		answerReadError(ctx, err)
		ctx.SetConnectionClose()
		return false
	}
	req.SetBody(b.Bytes()) // copied; closes the stream
	return true
}

// bodyBuffers holds the buffers bufferBody reads bodies into.
var bodyBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

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

// Set sets key to value.
func (c headerCarrier) Set(key, value string) { c.h.Set(key, value) }

// Keys lists the keys present.
func (c headerCarrier) Keys() []string {
	var keys []string
	for k := range c.h.All() {
		keys = append(keys, string(k))
	}
	return keys
}

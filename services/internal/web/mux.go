// Package web is the HTTP plumbing every service shares: a router on http.ServeMux
// patterns with the suite's middleware (request id, tracing, access log, metrics, panic
// recovery) and JSON 404/405 answers, strict JSON decoding, the one mapping of domain
// errors to responses, and a server with timeouts and graceful shutdown.
package web

import (
	"context"
	"log/slog"
	"net/http"
	"path"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/health"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing"
)

// Mux routes requests by Go 1.22 http.ServeMux patterns ("GET /users/{id}") and wraps
// every request, matched or not, in the suite's middleware, outermost first:
// request id, tracing (continues an incoming W3C traceparent), access log and metrics,
// panic recovery. Unlike http.ServeMux it answers an unknown path with JSON 404 and a
// known path with the wrong method with JSON 405 and an Allow header.
//
// While no tracer provider is installed (tracing export off) the tracing step only
// extracts the incoming trace context, so logs carry its trace id and clients forward
// it, without the cost of a server span.
type Mux struct {
	// mux serves: the patterns, plus the catch-all "/" answering what none matches, so
	// a request is routed once.
	mux *http.ServeMux
	// patterns holds the patterns alone; unmatched asks it whether a path is known
	// under another method (405) or not at all (404).
	patterns *http.ServeMux
	logger   *slog.Logger
	// traced is the chain under a server span, untraced the chain without one.
	traced, untraced http.Handler
}

// NewMux returns an empty Mux logging to logger and recording request metrics on reg
// (nil records none).
func NewMux(logger *slog.Logger, reg prometheus.Registerer) *Mux {
	m := &Mux{mux: http.NewServeMux(), patterns: http.NewServeMux(), logger: logger}
	m.mux.HandleFunc("/", m.unmatched)
	m.untraced = observe(recoverPanics(cleanPathsOnly(m.mux)), NewHTTPMetrics(reg))
	m.traced = otelhttp.NewHandler(m.untraced, "http.server",
		// Called at the start with the route still unknown, and again by otelhttp once
		// the ServeMux has matched (it sets the request's Pattern).
		// The client chooses the method: one that is not standard is named "HTTP", as
		// OpenTelemetry's HTTP conventions say, so span names stay a bounded set.
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			method := r.Method
			if metricMethod(method) == otherMethod {
				method = "HTTP"
			}
			if route := Route(r.Context()); route != UnmatchedRoute {
				return method + " " + route
			}
			return method
		}))
	return m
}

// NewServiceMux is NewMux with what every service binary serves besides its API:
// GET /healthz, GET /readyz (running checks) and GET /metrics (reg).
func NewServiceMux(logger *slog.Logger, reg *prometheus.Registry, checks ...health.Check) *Mux {
	m := NewMux(logger, reg)
	health.Register(m, checks...)
	m.Handle("GET /metrics", metrics.Handler(reg))
	return m
}

// Handle registers h for pattern, as http.ServeMux.Handle does (and panics as it does
// on an invalid or conflicting pattern).
func (m *Mux) Handle(pattern string, h http.Handler) {
	// "GET /users/{id}" → "/users/{id}": the method is a label of its own.
	route := pattern
	if _, path, ok := strings.Cut(pattern, " "); ok {
		route = path
	}
	routed := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Set before h runs, so that h's own logs and errors name the route too.
		if st := stateOf(r.Context()); st != nil {
			st.route = route
		}
		h.ServeHTTP(w, r)
	})
	m.patterns.Handle(pattern, routed)
	if pattern != "/" { // "/" itself is served by unmatched, which finds it in patterns
		m.mux.Handle(pattern, routed)
	}
}

// HandleFunc registers f for pattern, as http.ServeMux.HandleFunc does.
func (m *Mux) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(f))
}

// ServeHTTP runs the middleware chain; the ServeMux at its end routes the request once.
func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := &requestState{id: requestID(w, r), route: UnmatchedRoute, logger: m.logger}
	ctx := r.Context()
	next := m.traced
	if !tracing.Recording() {
		// No span to start: continue the caller's trace context as it is, so the access
		// log carries its trace id and outgoing requests forward it. A request that brings
		// none gets one, not sampled, so that its log lines, its calls and the events it
		// writes (their traceparent header, which the contract promises) share a trace id.
		ctx = otel.GetTextMapPropagator().Extract(ctx, headerCarrier(r.Header))
		if !trace.SpanContextFromContext(ctx).IsValid() {
			ctx = trace.ContextWithRemoteSpanContext(ctx, tracing.NewSpanContext())
		}
		next = m.untraced
	}
	next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, stateKey{}, st)))
}

// UnmatchedRoute labels requests no pattern matched, keeping metric labels bounded: the
// route of their metrics and access-log lines.
const UnmatchedRoute = "unmatched"

// requestState is what the middleware knows of a request, in its context under
// stateKey: one context value and one request copy per request, whatever the chain.
type requestState struct {
	id     string
	route  string // set by the matched pattern's handler, before it runs
	logger *slog.Logger
	// w is the response writer observe hands down, allocated with the rest.
	w statusWriter
}

type stateKey struct{}

func stateOf(ctx context.Context) *requestState {
	st, _ := ctx.Value(stateKey{}).(*requestState)
	return st
}

// Route returns the path of the pattern that matched the request ("/users/{id}"), or
// "unmatched".
func Route(ctx context.Context) string {
	if st := stateOf(ctx); st != nil {
		return st.route
	}
	return UnmatchedRoute
}

// unmatched answers what no pattern matched, and turns ServeMux's plain-text 404 and
// 405 into the contract's JSON. A handler registered for "/" itself is served here.
func (m *Mux) unmatched(w http.ResponseWriter, r *http.Request) {
	h, pattern := m.patterns.Handler(r)
	if pattern == "/" {
		h.ServeHTTP(w, r)
		return
	}
	// Run ServeMux's own answer into a capture to learn whether it is a 405 and which
	// methods it allows.
	var c headerCapture
	h.ServeHTTP(&c, r)
	if c.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", c.header.Get("Allow"))
		Respond(w, http.StatusMethodNotAllowed, ErrorBody{Error: "Method not allowed"})
		return
	}
	Respond(w, http.StatusNotFound, ErrorBody{Error: "Not found"})
}

// cleanPathsOnly answers a path with "." or ".." segments or repeated slashes 404, as
// an unknown path, where http.ServeMux would redirect to the cleaned path with an HTML
// body: "/users/." is no user, and an API client has no use for the redirect. A request
// whose target is no path ("CONNECT host:port", "OPTIONS *") is answered 404 JSON as
// well, where http.ServeMux would answer in plain text or with an empty 400: no resource
// of the API is there. A target in absolute form without a path ("GET http://host") is
// served as "/", which it means (RFC 9112, 3.2.2), where http.ServeMux would redirect there.
func cleanPathsOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if (p == "" && r.Method == http.MethodConnect) || r.RequestURI == "*" {
			Respond(w, http.StatusNotFound, ErrorBody{Error: "Not found"})
			return
		}
		if p == "" {
			u := *r.URL
			u.Path, u.RawPath = "/", ""
			r = r.WithContext(r.Context()) // a copy: the request the server gave stays as it is
			r.URL = &u
			p = "/"
		}
		clean := path.Clean(p)
		if strings.HasSuffix(p, "/") && clean != "/" {
			clean += "/"
		}
		if clean != p {
			Respond(w, http.StatusNotFound, ErrorBody{Error: "Not found"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// headerCapture is a ResponseWriter that keeps the status and headers and drops the body.
type headerCapture struct {
	header http.Header
	status int
}

func (c *headerCapture) Header() http.Header {
	if c.header == nil {
		c.header = http.Header{}
	}
	return c.header
}

func (c *headerCapture) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

func (c *headerCapture) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return len(b), nil
}

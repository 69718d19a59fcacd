// Package web is the HTTP plumbing every service shares: a router on http.ServeMux
// patterns with the suite's middleware (request id, tracing, access log, metrics, panic
// recovery) and JSON 404/405 answers, strict JSON decoding, the one mapping of domain
// errors to responses, and a server with timeouts and graceful shutdown.
package web

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/health"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
)

// Mux routes requests by Go 1.22 http.ServeMux patterns ("GET /users/{id}") and wraps
// every request, matched or not, in the suite's middleware, outermost first:
// request id, tracing (continues an incoming W3C traceparent), access log and metrics,
// panic recovery. Unlike http.ServeMux it answers an unknown path with JSON 404 and a
// known path with the wrong method with JSON 405 and an Allow header.
type Mux struct {
	mux     *http.ServeMux
	handler http.Handler
}

// NewMux returns an empty Mux logging to logger and recording request metrics on reg
// (nil records none).
func NewMux(logger *slog.Logger, reg prometheus.Registerer) *Mux {
	m := &Mux{mux: http.NewServeMux()}
	var h http.Handler = http.HandlerFunc(m.dispatch)
	h = recoverPanics(h)
	h = observe(h, newHTTPMetrics(reg))
	h = otelhttp.NewHandler(h, "http.server",
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if route := Route(r.Context()); route != unmatchedRoute {
				return r.Method + " " + route
			}
			return r.Method
		}))
	m.handler = withRequestID(h, logger)
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

// Handle registers h for pattern, as http.ServeMux.Handle does.
func (m *Mux) Handle(pattern string, h http.Handler) { m.mux.Handle(pattern, h) }

// HandleFunc registers f for pattern, as http.ServeMux.HandleFunc does.
func (m *Mux) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	m.mux.HandleFunc(pattern, f)
}

// ServeHTTP finds the route pattern first, so that every middleware can name the route
// in spans, logs and metrics, then runs the chain.
func (m *Mux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, pattern := m.mux.Handler(r)
	route := unmatchedRoute
	if pattern != "" {
		// "GET /users/{id}" → "/users/{id}": the method is a label of its own.
		_, route, _ = strings.Cut(pattern, " ")
		if route == "" {
			route = pattern
		}
	}
	ctx := context.WithValue(r.Context(), routeKey{}, route)
	m.handler.ServeHTTP(w, r.WithContext(ctx))
}

// unmatchedRoute labels requests no pattern matched, keeping metric labels bounded.
const unmatchedRoute = "unmatched"

type routeKey struct{}

// Route returns the path of the pattern that matched the request ("/users/{id}"), or
// "unmatched".
func Route(ctx context.Context) string {
	if s, ok := ctx.Value(routeKey{}).(string); ok {
		return s
	}
	return unmatchedRoute
}

// dispatch serves a matched request with its handler, and turns ServeMux's plain-text
// 404 and 405 into the contract's JSON.
func (m *Mux) dispatch(w http.ResponseWriter, r *http.Request) {
	if Route(r.Context()) != unmatchedRoute {
		m.mux.ServeHTTP(w, r)
		return
	}
	// Run ServeMux's own answer into a capture to learn whether it is a 405 and which
	// methods it allows.
	h, _ := m.mux.Handler(r)
	var c headerCapture
	h.ServeHTTP(&c, r)
	if c.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", c.header.Get("Allow"))
		Respond(w, http.StatusMethodNotAllowed, ErrorBody{Error: "Method not allowed"})
		return
	}
	Respond(w, http.StatusNotFound, ErrorBody{Error: "Not found"})
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

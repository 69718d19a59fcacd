// Package gateway is the shop's API gateway: it routes the public API to the four services
// through one reverse proxy each, limits each client's request rate, and reports the health of
// the suite.
package gateway

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopkeeper-dev/shopkeeper/services/gateway/internal/clientip"
	"github.com/shopkeeper-dev/shopkeeper/services/gateway/internal/ratelimit"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/health"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// Mux registers patterns, as *http.ServeMux does.
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Gateway holds the routes and the state behind them.
type Gateway struct {
	svcs      []service
	routes    []route
	transport *http.Transport
	limiter   *ratelimit.Limiter
	limit     *limitMiddleware
	ips       *clientip.Resolver
	health    *suiteHealth
	log       *slog.Logger
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
	transport := newTransport(cfg)
	return &Gateway{
		svcs:      svcs,
		routes:    routes(svcs),
		transport: transport,
		limiter:   limiter,
		limit:     newLimitMiddleware(limiter, ips),
		ips:       ips,
		health:    newSuiteHealth(svcs, transport, cfg.HealthTimeout, cfg.HealthCacheTTL),
		log:       log,
	}, nil
}

// Register adds the gateway's routes to mux: GET /health (not rate limited) and every route
// of the table, behind the rate limit.
func (g *Gateway) Register(mux Mux) {
	mux.Handle("GET /health", g.health)
	buffers := newBufferPool()
	for _, r := range g.routes {
		mux.Handle(r.pattern, g.limit.Wrap(newProxy(r, g.transport, buffers, g.ips, g.log)))
	}
}

// Run does the gateway's background work, dropping idle rate-limit entries, until ctx ends.
func (g *Gateway) Run(ctx context.Context) {
	g.limiter.Run(ctx)
}

// Close releases the idle connections to the services.
func (g *Gateway) Close() {
	g.transport.CloseIdleConnections()
}

// Handler returns the gateway's whole HTTP handler: its routes, GET /health, its own
// /healthz, /readyz and /metrics (from reg), behind the suite's middleware (request id, tracing,
// access log, metrics per route and status, panic recovery), with JSON 404 and 405 answers.
func (g *Gateway) Handler(reg *prometheus.Registry) http.Handler {
	mux := web.NewMux(g.log, reg)
	// The gateway is ready when it can serve; a service being down is reported by /health and
	// answered 503 per request, and must not take every gateway replica out of its Service.
	health.Register(mux)
	mux.Handle("GET /metrics", metrics.Handler(reg))
	g.Register(mux)
	return mux
}

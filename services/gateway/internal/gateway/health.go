package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
	"golang.org/x/sync/singleflight"
)

// Health statuses of the suite and of one service, as GET /health reports them.
const (
	statusHealthy  = "healthy"
	statusDegraded = "degraded"
	statusUp       = "up"
	statusDown     = "down"
)

// healthReport is the body of GET /health.
type healthReport struct {
	Status    string                   `json:"status"`
	Timestamp time.Time                `json:"timestamp"`
	Services  map[string]serviceHealth `json:"services"`
}

type serviceHealth struct {
	Status string `json:"status"`
}

// suiteHealth asks every service's /readyz, concurrently and each within a timeout. A result
// is kept for ttl and concurrent callers share one round of checks, so however often /health
// is called, each service is asked at most once per ttl.
type suiteHealth struct {
	svcs    []service
	client  *http.Client
	timeout time.Duration
	ttl     time.Duration
	now     func() time.Time

	group     singleflight.Group
	mu        sync.Mutex
	last      healthReport
	checkedAt time.Time // with its monotonic reading, unlike the report's UTC timestamp
}

// newHealthTransport returns the transport of the /readyz checks: one kept-alive connection per
// service is plenty for a check made at most once per HEALTH_CACHE_TTL.
func newHealthTransport(cfg *Config) *http.Transport {
	dialer := &net.Dialer{Timeout: cfg.HealthTimeout}
	return &http.Transport{
		Proxy:               nil, // the services are reached directly, never through HTTP_PROXY
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

func newSuiteHealth(svcs []service, transport http.RoundTripper, timeout, ttl time.Duration) *suiteHealth {
	return &suiteHealth{
		svcs:    svcs,
		client:  &http.Client{Transport: transport, Timeout: timeout},
		timeout: timeout,
		ttl:     ttl,
		now:     time.Now,
	}
}

// ServeHTTP answers 200 when every service is ready, else 503, with the report.
func (h *suiteHealth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := h.report(r.Context())
	status := http.StatusOK
	if rep.Status != statusHealthy {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	web.Respond(w, status, rep)
}

// report returns the cached report while it is fresh, else one new round of checks.
func (h *suiteHealth) report(ctx context.Context) healthReport {
	if rep, ok := h.fresh(); ok {
		return rep
	}
	// The round runs on a context of its own, bounded by the check timeout: its answer serves
	// every waiting caller, and one caller giving up must not turn it into "down" for the
	// others. Nor may it keep the first caller's context, even detached: under fasthttpadaptor
	// that is the server's pooled fasthttp.RequestCtx, reset for another request once the
	// handler has returned (at shutdown, while the round goes on), and the round's dials read
	// its values.
	ch := h.group.DoChan("health", func() (any, error) {
		// A caller that found the cache stale just as another round ended must not start a
		// second round.
		if rep, ok := h.fresh(); ok {
			return rep, nil
		}
		started := h.now()
		rep := h.check(context.Background())
		h.mu.Lock()
		h.last, h.checkedAt = rep, started
		h.mu.Unlock()
		return rep, nil
	})
	select {
	case res := <-ch:
		return res.Val.(healthReport)
	case <-ctx.Done():
		return healthReport{Status: statusDegraded, Timestamp: h.now().UTC(), Services: map[string]serviceHealth{}}
	}
}

// fresh returns the last report while it is younger than the TTL.
func (h *suiteHealth) fresh() (healthReport, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ok := !h.checkedAt.IsZero() && h.now().Sub(h.checkedAt) < h.ttl
	return h.last, ok
}

// check asks every service once, concurrently.
func (h *suiteHealth) check(ctx context.Context) healthReport {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	up := make([]bool, len(h.svcs))
	var wg sync.WaitGroup
	for i := range h.svcs {
		wg.Go(func() { up[i] = h.ready(ctx, &h.svcs[i]) })
	}
	wg.Wait()

	rep := healthReport{Status: statusHealthy, Timestamp: h.now().UTC(), Services: make(map[string]serviceHealth, len(h.svcs))}
	for i, s := range h.svcs {
		st := statusUp
		if !up[i] {
			st = statusDown
			rep.Status = statusDegraded
		}
		rep.Services[s.name] = serviceHealth{Status: st}
	}
	return rep
}

// ready reports whether svc answers 2xx on /readyz.
func (h *suiteHealth) ready(ctx context.Context, svc *service) bool {
	u := *svc.base
	u.Path = singleSlashJoin(u.Path, "/readyz")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return false
	}
	// Drained so the connection goes back to the pool.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

// singleSlashJoin joins a base path and a path starting with "/".
func singleSlashJoin(base, p string) string {
	for len(base) > 0 && base[len(base)-1] == '/' {
		base = base[:len(base)-1]
	}
	return base + p
}

// Package health serves the probes: /healthz says the process lives and answers;
// /readyz runs the named checks of its dependencies, each under a timeout, and answers
// 200 when all the required ones pass, else 503, with the result of each in JSON.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Check is one dependency test, e.g. a MongoDB ping.
type Check struct {
	// Name is the key of the check in the /readyz answer.
	Name string
	// Run returns nil when the dependency answers; it must honour ctx's deadline.
	Run func(ctx context.Context) error
	// Optional marks a dependency the service keeps serving without for a while (the
	// broker, behind an outbox): its failure is reported, as "degraded", but keeps the
	// service ready, so that an outage of it takes no pod out of its Service.
	Optional bool
}

// Handler registers patterns, as *http.ServeMux and web.Mux do.
type Handler interface {
	Handle(pattern string, h http.Handler)
}

// DefaultTimeout bounds each readiness check. It is well under the pods' probe timeout
// (timeoutSeconds: 2), so that a frozen dependency is answered 503 with its reason in the
// JSON, which the kubelet records, before the kubelet gives up on the probe and records
// only a timeout.
const DefaultTimeout = time.Second

// Register adds GET /healthz and GET /readyz (checks run with DefaultTimeout) to mux.
func Register(mux Handler, checks ...Check) {
	mux.Handle("GET /healthz", Live())
	mux.Handle("GET /readyz", Ready(DefaultTimeout, checks...))
}

// Live answers 200 {"status":"ok"} while the process serves HTTP.
func Live() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// Report is the /readyz answer.
type Report struct {
	// Status is "ok" when every check passed, "degraded" when only optional ones failed
	// (still ready), else "unavailable".
	Status string `json:"status"`
	// Checks holds "ok" or the error of each check by name.
	Checks map[string]string `json:"checks"`
}

// Ready runs every check concurrently, each bounded by timeout, and answers 200 when every
// required one passes, else 503. Errors are reported by check name only in the body of a
// probe, which the gateway never exposes.
func Ready(timeout time.Duration, checks ...Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep := Run(r.Context(), timeout, checks...)
		status := http.StatusOK
		if rep.Status == statusUnavailable {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, rep)
	})
}

// Run runs the checks concurrently, each bounded by timeout, and reports them.
func Run(ctx context.Context, timeout time.Duration, checks ...Check) Report {
	rep := Report{Status: statusOK, Checks: make(map[string]string, len(checks))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			result := "ok"
			if err := c.Run(cctx); err != nil {
				result = err.Error()
			}
			mu.Lock()
			defer mu.Unlock()
			rep.Checks[c.Name] = result
			switch {
			case result == statusOK:
			case !c.Optional:
				rep.Status = statusUnavailable
			case rep.Status == statusOK:
				rep.Status = statusDegraded
			}
		})
	}
	wg.Wait()
	return rep
}

// Report statuses.
const (
	statusOK          = "ok"
	statusDegraded    = "degraded"
	statusUnavailable = "unavailable"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

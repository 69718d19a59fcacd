package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/health"
)

func TestReady(t *testing.T) {
	ok := health.Check{Name: "db", Run: func(context.Context) error { return nil }}
	down := health.Check{Name: "broker", Run: func(context.Context) error { return errors.New("connection refused") }}
	hangs := health.Check{Name: "slow", Run: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	optionalDown := down
	optionalDown.Optional = true

	tests := []struct {
		name   string
		checks []health.Check
		status int
		report health.Report
	}{
		{"no checks", nil, 200, health.Report{Status: "ok", Checks: map[string]string{}}},
		{"all pass", []health.Check{ok}, 200, health.Report{Status: "ok", Checks: map[string]string{"db": "ok"}}},
		{"one fails", []health.Check{ok, down}, 503, health.Report{Status: "unavailable",
			Checks: map[string]string{"db": "ok", "broker": "connection refused"}}},
		{"one times out", []health.Check{ok, hangs}, 503, health.Report{Status: "unavailable",
			Checks: map[string]string{"db": "ok", "slow": "context deadline exceeded"}}},
		{"an optional one fails", []health.Check{ok, optionalDown}, 200, health.Report{Status: "degraded",
			Checks: map[string]string{"db": "ok", "broker": "connection refused"}}},
		{"a required one fails beside an optional one", []health.Check{hangs, optionalDown}, 503, health.Report{Status: "unavailable",
			Checks: map[string]string{"slow": "context deadline exceeded", "broker": "connection refused"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			start := time.Now()
			health.Ready(50*time.Millisecond, tt.checks...).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			if time.Since(start) > time.Second {
				t.Errorf("readiness took %s despite a 50ms timeout", time.Since(start))
			}
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d", rec.Code, tt.status)
			}
			var got health.Report
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.report.Status || len(got.Checks) != len(tt.report.Checks) {
				t.Fatalf("report = %+v, want %+v", got, tt.report)
			}
			for k, v := range tt.report.Checks {
				if got.Checks[k] != v {
					t.Errorf("check %s = %q, want %q", k, got.Checks[k], v)
				}
			}
		})
	}
}

func TestRegister(t *testing.T) {
	mux := http.NewServeMux()
	health.Register(mux)
	for _, path := range []string{"/healthz", "/readyz"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("GET %s = %d %s", path, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
}

// TestRegisterAnswersBeforeTheProbeGivesUp: with a dependency that never answers, /readyz
// must still answer, 503 with the reason, well within the pods' probe timeout, or the
// kubelet records a bare timeout instead. The check's own deadline is what bounds it, and
// that is looked at rather than the time the answer took, which a loaded machine stretches.
func TestRegisterAnswersBeforeTheProbeGivesUp(t *testing.T) {
	const probeTimeout = 2 * time.Second // timeoutSeconds of the pods' probes
	if health.DefaultTimeout > probeTimeout/2 {
		t.Fatalf("DefaultTimeout %s leaves too little of the probe's %s", health.DefaultTimeout, probeTimeout)
	}
	var given atomic.Int64 // nanoseconds the check was given: from its start to its deadline
	frozen := func(ctx context.Context) error {
		if d, ok := ctx.Deadline(); ok {
			given.Store(int64(time.Until(d)))
		}
		<-ctx.Done()
		return ctx.Err()
	}
	tests := []struct {
		name   string
		check  health.Check
		status int
	}{
		{"required dependency frozen", health.Check{Name: "mongodb", Run: frozen}, http.StatusServiceUnavailable},
		{"optional dependency frozen", health.Check{Name: "rabbitmq", Run: frozen, Optional: true}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := http.NewServeMux()
			health.Register(mux, tt.check)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			given.Store(0)
			start := time.Now()
			res, err := http.Get(srv.URL + "/readyz")
			if err != nil {
				t.Fatalf("GET /readyz: %v (took %s)", err, time.Since(start))
			}
			defer res.Body.Close()
			if d := time.Duration(given.Load()); d <= 0 || d > health.DefaultTimeout {
				t.Errorf("the check was given %s, want at most DefaultTimeout (%s)", d, health.DefaultTimeout)
			}
			var rep health.Report
			if err := json.NewDecoder(res.Body).Decode(&rep); err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.status || rep.Checks[tt.check.Name] != context.DeadlineExceeded.Error() {
				t.Errorf("/readyz = %d %+v, want %d naming the deadline", res.StatusCode, rep, tt.status)
			}
		})
	}
}

package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"go.opentelemetry.io/otel"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// TestRun starts the gateway as its binary does, from the environment, proxies one request and
// reads one profile through it, then stops it by cancelling the context: Run must return nil.
func TestRun(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "service saw "+r.URL.Path)
	}))
	defer up.Close()
	port, pprofPort := testenv.FreePort(t), testenv.FreePort(t)
	setEnv(t, port, "127.0.0.1:"+strconv.Itoa(pprofPort), up.URL)
	defer debug.SetGCPercent(debug.SetGCPercent(-1))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx) }()

	base := "http://127.0.0.1:" + strconv.Itoa(port)
	if got := getEventually(t, base+"/user/users/42"); got != "service saw /users/42" {
		t.Errorf("proxied answer = %q", got)
	}
	if got := getEventually(t, "http://127.0.0.1:"+strconv.Itoa(pprofPort)+"/debug/pprof/cmdline"); got == "" {
		t.Error("pprof answered nothing")
	}

	stopRun(t, cancel, done)
}

// TestRunMetricsApart: with METRICS_PORT set, /metrics is served there, counting the
// proxied requests, and the public port answers it 404; a metrics port in use stops the
// gateway at start, naming the variable.
func TestRunMetricsApart(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "service saw "+r.URL.Path)
	}))
	defer up.Close()
	port, metricsPort := testenv.FreePort(t), testenv.FreePort(t)
	setEnv(t, port, "", up.URL)
	t.Setenv("METRICS_PORT", strconv.Itoa(metricsPort))
	defer debug.SetGCPercent(debug.SetGCPercent(-1))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx) }()

	base := "http://127.0.0.1:" + strconv.Itoa(port)
	metricsBase := "http://127.0.0.1:" + strconv.Itoa(metricsPort)
	if got := getEventually(t, base+"/users/42"); got != "service saw /users/42" {
		t.Errorf("proxied answer = %q", got)
	}
	if got := getEventually(t, metricsBase+"/metrics"); !strings.Contains(got, `http_requests_total{method="GET",route="/users/",status="200"} 1`) {
		t.Errorf("the metrics port's /metrics does not count the proxied request:\n%s", got)
	}
	for _, u := range []string{base + "/metrics", metricsBase + "/users/42", metricsBase + "/health"} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %s, want a JSON 404", u, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}

	stopRun(t, cancel, done)

	inUse, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inUse.Close()
	setEnv(t, testenv.FreePort(t), "", up.URL)
	t.Setenv("METRICS_PORT", strconv.Itoa(inUse.Addr().(*net.TCPAddr).Port))
	t.Setenv("LISTEN_HOST", "127.0.0.1")
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	if err := Run(rctx); err == nil || !strings.Contains(err.Error(), "METRICS_PORT") || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Run with its metrics port in use = %v, want an error naming METRICS_PORT", err)
	}
}

// stopRun cancels the context of a Run whose result done gives, and waits for it to return
// nil.
func stopRun(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil after the context ended", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after the context ended")
	}
}

// setEnv sets the gateway's environment: its port, PPROF_ADDR, every service at upstream.
func setEnv(t *testing.T, port int, pprofAddr, upstream string) {
	t.Helper()
	for k, v := range map[string]string{
		"PORT": strconv.Itoa(port), "PPROF_ADDR": pprofAddr,
		"USER_SERVICE_URL": upstream, "PRODUCT_SERVICE_URL": upstream, "ORDER_SERVICE_URL": upstream, "PAYMENT_SERVICE_URL": upstream,
		"LOG_LEVEL": "error", "OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",
	} {
		t.Setenv(k, v)
	}
	t.Setenv("GOGC", "") // set, so Run leaves the GC target alone
}

// TestRunRefusesBadPprofAddr: a PPROF_ADDR the gateway cannot listen on stops it at start,
// with an error naming the variable, instead of leaving it running without profiles.
func TestRunRefusesBadPprofAddr(t *testing.T) {
	inUse, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inUse.Close()
	tests := []struct {
		name, addr, want string
	}{
		{"not an address", "pprof-please", `PPROF_ADDR="pprof-please"`},
		{"port in use", inUse.Addr().String(), "address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, testenv.FreePort(t), tt.addr, "http://127.0.0.1:1")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- Run(ctx) }()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "PPROF_ADDR") {
					t.Errorf("Run = %v, want an error naming PPROF_ADDR and saying %q", err, tt.want)
				}
			case <-time.After(5 * time.Second):
				cancel()
				t.Errorf("Run went on serving with a PPROF_ADDR it cannot listen on (then returned %v)", <-done)
			}
		})
	}
}

// getEventually GETs url until it answers 200 (the server may still be starting) and returns
// the body.
func getEventually(t *testing.T, url string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(body)
			}
			err = rerr
			if err == nil {
				err = &statusError{resp.StatusCode}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "status " + strconv.Itoa(e.code) }

// TestSetGCPercent checks the gateway's GC target applies only when GOGC is not set.
func TestSetGCPercent(t *testing.T) {
	for _, tt := range []struct {
		name string
		gogc *string // nil: unset
		want int
	}{
		{name: "unset", want: gatewayGCPercent},
		{name: "set", gogc: new("150"), want: 77}, // left alone: 77 is what the test set before
		{name: "set empty", gogc: new(""), want: 77},
	} {
		t.Run(tt.name, func(t *testing.T) {
			setOrUnsetEnv(t, "GOGC", tt.gogc)
			defer debug.SetGCPercent(debug.SetGCPercent(77))
			setGCPercent()
			if got := debug.SetGCPercent(77); got != tt.want {
				t.Errorf("GC percent = %d, want %d", got, tt.want)
			}
		})
	}
}

// setOrUnsetEnv sets key to *value for the test, or unsets it when value is nil; either way the
// environment is restored when the test ends.
func setOrUnsetEnv(t *testing.T, key string, value *string) {
	t.Helper()
	t.Setenv(key, "")
	if value == nil {
		_ = os.Unsetenv(key)
	} else {
		t.Setenv(key, *value)
	}
}

// countingProvider is a memory limit provider that answers limit, or err, and counts its calls.
type countingProvider struct {
	limit atomic.Uint64
	err   error
	calls atomic.Int32
}

func (p *countingProvider) get() (uint64, error) {
	p.calls.Add(1)
	return p.limit.Load(), p.err
}

// TestSetMemoryLimit checks the heap limit the gateway derives from its container's memory
// limit, and that the environment overrides it. The cgroup files themselves are read by
// memlimit.FromCgroup, whose own tests cover cgroup v1, v2 and hybrid hierarchies.
func TestSetMemoryLimit(t *testing.T) {
	const before = 1 << 40 // the heap limit the test sets before each case
	const container = 256 << 20
	for _, tt := range []struct {
		name               string
		gomemlimit, share  *string // nil: unset
		err                error
		want               int64
		wantCalls          int32
		wantLog, wantLevel string
	}{
		{name: "container limit", want: 241591910, wantCalls: 1}, // the operator's 256Mi: 90%
		{name: "no limit", err: memlimit.ErrNoLimit, want: math.MaxInt64, wantCalls: 1},
		{
			name: "unreadable", err: errors.New("failed to parse memory.max value"), want: before, wantCalls: 1,
			wantLog: "failed to parse memory.max value", wantLevel: "ERROR",
		},
		{name: "GOMEMLIMIT set", gomemlimit: new("100MiB"), want: before, wantCalls: 0},
		{name: "GOMEMLIMIT set empty", gomemlimit: new(""), want: before, wantCalls: 0},
		{name: "AUTOMEMLIMIT share", share: new("0.5"), want: container / 2, wantCalls: 1},
		{name: "AUTOMEMLIMIT off", share: new("off"), want: before, wantCalls: 0},
		{
			name: "AUTOMEMLIMIT out of range", share: new("1.5"), want: before, wantCalls: 0,
			wantLog: "invalid ratio", wantLevel: "ERROR",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			setOrUnsetEnv(t, "GOMEMLIMIT", tt.gomemlimit)
			setOrUnsetEnv(t, "AUTOMEMLIMIT", tt.share)
			defer debug.SetMemoryLimit(debug.SetMemoryLimit(before))
			p := &countingProvider{err: tt.err}
			p.limit.Store(container)
			var logs bytes.Buffer

			setMemoryLimit(t.Context(), p.get, 0, logging.NewTo(&logs, "gateway", slog.LevelInfo))

			if got := debug.SetMemoryLimit(-1); got != tt.want {
				t.Errorf("heap limit = %d, want %d", got, tt.want)
			}
			if got := p.calls.Load(); got != tt.wantCalls {
				t.Errorf("limit read %d times, want %d", got, tt.wantCalls)
			}
			if tt.wantLog != "" && (!strings.Contains(logs.String(), tt.wantLog) ||
				!strings.Contains(logs.String(), `"level":"`+tt.wantLevel+`"`)) {
				t.Errorf("log = %s, want a %s line saying %q", logs.String(), tt.wantLevel, tt.wantLog)
			}
		})
	}
}

// TestSetMemoryLimitFollowsResize: a container limit changed in place moves the heap limit at
// the next refresh, and no longer once the context has ended.
func TestSetMemoryLimitFollowsResize(t *testing.T) {
	setOrUnsetEnv(t, "GOMEMLIMIT", nil)
	setOrUnsetEnv(t, "AUTOMEMLIMIT", nil)
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	p := &countingProvider{}
	p.limit.Store(100 << 20)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	setMemoryLimit(ctx, p.get, 5*time.Millisecond, logging.Discard())
	if got := debug.SetMemoryLimit(-1); got != 90<<20 {
		t.Fatalf("heap limit = %d, want %d", got, 90<<20)
	}
	p.limit.Store(200 << 20)
	waitFor(t, func() bool { return debug.SetMemoryLimit(-1) == 180<<20 }, "the heap limit to follow the resize")

	cancel()
	// A refresh already running when the context ends may finish: wait until the calls stop.
	waitFor(t, func() bool {
		n := p.calls.Load()
		time.Sleep(50 * time.Millisecond)
		return p.calls.Load() == n
	}, "the refreshes to stop")
	p.limit.Store(300 << 20)
	time.Sleep(50 * time.Millisecond)
	if got := debug.SetMemoryLimit(-1); got != 180<<20 {
		t.Errorf("heap limit = %d after the context ended, want it left at %d", got, 180<<20)
	}
}

// waitFor polls cond for up to 5 s and fails the test, naming what, if it never holds.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestRunStopsWithinShutdownTimeout: the drain of the requests in flight and the flush of the
// last spans share one SHUTDOWN_TIMEOUT, counted from the context's end, as in every service
// of the kit: a request that holds the drain to its end and a collector that does not answer
// take the gateway no longer than that to stop, which the pod's grace period is sized for.
func TestRunStopsWithinShutdownTimeout(t *testing.T) {
	const shutdownTimeout = 2 * time.Second
	release := make(chan struct{}) // closed before the servers close, which wait for their handlers
	collector := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select { // a collector that takes the spans' request and never answers
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer collector.Close()
	arrived := make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select { // a request in flight past the shutdown's end
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer up.Close()
	defer close(release)
	port := testenv.FreePort(t)
	setEnv(t, port, "", up.URL)
	t.Setenv("SHUTDOWN_TIMEOUT", shutdownTimeout.String())
	t.Setenv("UPSTREAM_TIMEOUT", "30s")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	prev := otel.GetTracerProvider()
	defer otel.SetTracerProvider(prev)
	defer debug.SetGCPercent(debug.SetGCPercent(-1))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx) }()
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	getEventually(t, base+"/healthz")
	go func() {
		if res, err := http.Get(base + "/user/users/42"); err == nil {
			_ = res.Body.Close()
		}
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the service")
	}

	cancel()
	start := time.Now()
	select {
	case err := <-done:
		t.Logf("Run = %v", err) // the request cut short, an error: its outcome is not what is checked
	case <-time.After(4 * shutdownTimeout):
		t.Fatal("Run did not return")
	}
	if took := time.Since(start); took > shutdownTimeout+shutdownTimeout/2 {
		t.Errorf("Run took %s to stop after the context ended, want about SHUTDOWN_TIMEOUT (%s)", took.Round(10*time.Millisecond), shutdownTimeout)
	}
}

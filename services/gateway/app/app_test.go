package app

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestRun starts the gateway as its binary does, from the environment, proxies one request and
// reads one profile through it, then stops it by cancelling the context: Run must return nil.
func TestRun(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "service saw "+r.URL.Path)
	}))
	defer up.Close()
	port, pprofPort := freePort(t), freePort(t)
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
			setEnv(t, freePort(t), tt.addr, "http://127.0.0.1:1")
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
			t.Setenv("GOGC", "")
			if tt.gogc == nil {
				_ = os.Unsetenv("GOGC")
			} else {
				t.Setenv("GOGC", *tt.gogc)
			}
			defer debug.SetGCPercent(debug.SetGCPercent(77))
			setGCPercent()
			if got := debug.SetGCPercent(77); got != tt.want {
				t.Errorf("GC percent = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestMemoryLimit(t *testing.T) {
	for _, tt := range []struct {
		memoryMax string
		want      int64
		ok        bool
	}{
		{"268435456\n", 241591910, true}, // the operator's 256Mi: 90%
		{"max\n", 0, false},              // no limit
		{"", 0, false},
		{"0\n", 0, false},
	} {
		got, ok := memoryLimit(tt.memoryMax)
		if got != tt.want || ok != tt.ok {
			t.Errorf("memoryLimit(%q) = %d, %v; want %d, %v", tt.memoryMax, got, ok, tt.want, tt.ok)
		}
	}
}

package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestDemoRefusesALimitTooLowForTheStory: a gateway whose rate limit is below what the
// story needs (make run -rate-limit 10) is said at once, with exit status 3 as for a spent
// allowance, before anything is created; the demo went on and failed at a 429 midway.
func TestDemoRefusesALimitTooLowForTheStory(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("hack/demo.sh needs curl")
	}
	root, err := filepath.Abs(filepath.Join("..", "..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int32
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/health" {
			_, _ = w.Write([]byte(`{"status":"healthy"}`))
			return
		}
		w.Header().Set("RateLimit-Policy", `"default";q=10;w=900`)
		w.Header().Set("RateLimit", `"default";r=9;t=900`)
		if r.Method != http.MethodGet {
			writes.Add(1)
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"id":"6b0b16a4d4a5c2529c929582","status":"PENDING"}`))
			return
		}
		_, _ = w.Write([]byte(`{"items":[]}`))
	}))
	defer gateway.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "demo.sh"), gateway.URL)
	cmd.Env = append(cmd.Environ(), "DEMO_POLL_MAX=1")
	out, err := cmd.CombinedOutput()
	t.Logf("hack/demo.sh:\n%s", out)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Errorf("hack/demo.sh: %v, want exit status 3", err)
	}
	if n := writes.Load(); n != 0 {
		t.Errorf("hack/demo.sh made %d requests that create something, want none", n)
	}
	if !strings.Contains(string(out), "raise the limit") {
		t.Error("hack/demo.sh does not say that the limit is too low")
	}
}

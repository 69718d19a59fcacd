package app

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestShutdownKeepsItsDeadline runs the service as its binary does, makes a reservation
// (which leaves hold removals running in the background), and stops it as on SIGTERM.
// With the database answering, the stop is clean; with it frozen (a stalled disk, a
// paused machine: every operation runs out its whole timeout), the stop still ends at
// SHUTDOWN_TIMEOUT, not one operation timeout later, and says it failed (exit code 1).
func TestShutdownKeepsItsDeadline(t *testing.T) {
	const shutdownTimeout = 2 * time.Second
	for _, tc := range []struct {
		name    string
		freeze  bool
		wantErr bool
	}{
		{name: "database answering", freeze: false, wantErr: false},
		{name: "database frozen", freeze: true, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A server of its own: freezing it must not stall other tests.
			server, err := testenv.StartFerretDB(t.Context(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = server.Stop() })
			port := testenv.FreePort(t)
			t.Setenv("PORT", strconv.Itoa(port))
			t.Setenv("LISTEN_HOST", "127.0.0.1")
			t.Setenv("MONGODB_URL", "")
			t.Setenv("MONGODB_URI", server.URI+"products")
			t.Setenv("SHUTDOWN_TIMEOUT", shutdownTimeout.String())
			t.Setenv("MONGODB_OPERATION_TIMEOUT", "8s") // the default: longer than the shutdown

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- Run(ctx) }()

			base := "http://127.0.0.1:" + strconv.Itoa(port)
			testenv.WaitReady(t, base+"/readyz", done)
			var product struct{ ID string }
			post(t, base+"/products", `{"name": "Mug", "priceCents": 1250, "stock": 10}`, http.StatusCreated, &product)
			post(t, base+"/internal/reservations",
				`{"orderId": "order-1", "items": [{"productId": "`+product.ID+`", "quantity": 2}]}`, http.StatusCreated, nil)

			if tc.freeze {
				if err := server.Freeze(); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				took := time.Since(start)
				t.Logf("stopped after %s: %v", took, err)
				if (err != nil) != tc.wantErr {
					t.Errorf("run = %v after shutdown, want an error: %t", err, tc.wantErr)
				}
				if took > shutdownTimeout+time.Second {
					t.Errorf("shutdown took %s, want at most SHUTDOWN_TIMEOUT (%s) and a moment", took, shutdownTimeout)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("run did not return after its context ended")
			}
		})
	}
}

// post sends body to url, requires the status want and decodes the answer into out
// (when not nil).
func post(t *testing.T, url, body string, want int, out any) {
	t.Helper()
	res, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != want {
		t.Fatalf("POST %s = %d, want %d", url, res.StatusCode, want)
	}
	if out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// BenchmarkMux measures what the middleware costs a request: one GET through a Mux with
// metrics and an access log (JSON, written to io.Discard so the encoding still runs) to a
// handler that writes a fixed body, with and without an incoming traceparent, tracing set
// up as a service does with export off.
func BenchmarkMux(b *testing.B) {
	b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	b.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	if _, err := tracing.Setup(context.Background(), "bench"); err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"ok":true}`)
	mux := web.NewMux(logging.NewTo(io.Discard, "bench", slog.LevelInfo), prometheus.NewRegistry())
	mux.HandleFunc("GET /things/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	for _, bb := range []struct {
		name   string
		header http.Header
	}{
		{"plain", http.Header{}},
		{"traceparent", http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}},
		{"request-id", http.Header{"X-Request-Id": {"abc-123"}}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/things/42", nil)
			w := &discardWriter{header: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				// A fresh header each time: the middleware sets X-Request-ID on the request.
				req.Header = bb.header.Clone()
				clear(w.header)
				mux.ServeHTTP(w, req)
			}
		})
	}
}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark measures the Mux
// and not a recorder.
type discardWriter struct{ header http.Header }

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

package web_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// TestLoggerFor: a service's own line about a request names the request and trace its
// access line names; one about a delivery, the delivery's trace; one outside both, neither.
func TestLoggerFor(t *testing.T) {
	var logs bytes.Buffer
	log := logging.NewTo(&logs, "test", slog.LevelInfo)
	mux := web.NewMux(log, nil)
	mux.HandleFunc("GET /things/{id}", func(w http.ResponseWriter, r *http.Request) {
		// As a service does: the line is logged by code that has the context, not the request.
		web.LoggerFor(context.WithoutCancel(r.Context()), log).Warn("service line")
		web.Respond(w, http.StatusOK, nil)
	})
	rec := serve(mux, "GET", "/things/7")
	access, line := logLine(t, &logs, "request"), logLine(t, &logs, "service line")
	if line["request_id"] != rec.Header().Get("X-Request-ID") || line["trace_id"] == nil || line["trace_id"] != access["trace_id"] {
		t.Errorf("service line %v, want the request_id %q and trace_id %v of the access line", line, rec.Header().Get("X-Request-ID"), access["trace_id"])
	}

	logs.Reset()
	sc := tracing.NewSpanContext() // as a consumer's context holds a delivery's trace
	web.LoggerFor(trace.ContextWithSpanContext(context.Background(), sc), log).Info("delivery line")
	if line := logLine(t, &logs, "delivery line"); line["trace_id"] != sc.TraceID().String() || line["request_id"] != nil {
		t.Errorf("delivery line %v, want trace_id %s and no request_id", line, sc.TraceID())
	}

	if web.LoggerFor(context.Background(), log) != log {
		t.Error("outside a request or delivery, LoggerFor does not return the logger as it is")
	}
}

package outbox_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging/outbox"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// TestNewEventTakesTheRequestsContext: an event stored for later carries the trace context
// of the request that made it, tracestate included, and its request id.
func TestNewEventTakesTheRequestsContext(t *testing.T) {
	const (
		traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		tracestate  = "congo=t61rcWkgMzE"
	)
	ctx := propagation.TraceContext{}.Extract(context.Background(),
		propagation.MapCarrier{"traceparent": traceparent, "tracestate": tracestate})
	ctx = web.WithRequestID(ctx, "req-7")
	e, err := outbox.NewEvent(ctx, "work.done", map[string]int{"n": 1}, true)
	if err != nil {
		t.Fatal(err)
	}
	if e.Traceparent != traceparent || e.Tracestate != tracestate || e.RequestID != "req-7" {
		t.Errorf("event has traceparent %q, tracestate %q, request id %q; want %q, %q, %q",
			e.Traceparent, e.Tracestate, e.RequestID, traceparent, tracestate, "req-7")
	}
}

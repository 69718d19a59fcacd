// Package tracingtest sets up OpenTelemetry's globals for a test the way
// tracing.Setup does in a service, with an in-memory exporter instead of OTLP.
package tracingtest

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// Use installs the W3C trace-context propagator and, when recording (as when a service
// exports its traces), a tracer provider whose spans go to the returned exporter. The
// test's cleanup puts the previous globals back.
func Use(t testing.TB, recording bool) *tracetest.InMemoryExporter {
	t.Helper()
	prevPropagator := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prevPropagator) })

	exp := tracetest.NewInMemoryExporter()
	if recording {
		prev := otel.GetTracerProvider()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		otel.SetTracerProvider(tp)
		t.Cleanup(func() {
			otel.SetTracerProvider(prev)
			_ = tp.Shutdown(context.Background())
		})
	}
	return exp
}

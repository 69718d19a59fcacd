package web

import (
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/propagation"
)

// TestHeaderCarrierGet checks headerCarrier answers as propagation.HeaderCarrier does.
func TestHeaderCarrierGet(t *testing.T) {
	h := http.Header{}
	h.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.Add("Tracestate", "a=1")
	h.Add("Tracestate", "b=2")
	h.Set("baggage", "k=v")
	h.Set("X-Other", "x")
	for _, key := range []string{"traceparent", "tracestate", "baggage", "Traceparent", "x-other", "X-OTHER", "missing", ""} {
		want := propagation.HeaderCarrier(h).Get(key)
		if got := headerCarrier(h).Get(key); got != want {
			t.Errorf("Get(%q) = %q, want %q", key, got, want)
		}
		if got := headerCarrier(http.Header{}).Get(key); got != "" {
			t.Errorf("Get(%q) on an empty header = %q", key, got)
		}
	}
}

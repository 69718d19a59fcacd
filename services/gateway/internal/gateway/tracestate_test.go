package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing/tracingtest"
)

// TestTracestateOfARestartedTraceDropped checks that while spans are recorded, a request whose
// traceparent the gateway cannot continue (absent, or invalid per W3C Trace Context: an unknown
// version's bad form, all-zero ids, upper-case hex) starts a new trace and the service sees no
// tracestate: the client's belongs to a trace the request no longer is part of, and W3C says a
// tracestate without a valid traceparent is discarded. A valid traceparent's tracestate is kept.
func TestTracestateOfARestartedTraceDropped(t *testing.T) {
	const (
		traceID    = "4bf92f3577b34da6a3ce929d0e0e4736"
		tracestate = "congo=t61rcWkgMzE"
	)
	exp := tracingtest.Use(t, true)
	s := newSuite(t, nil)
	for _, tt := range []struct {
		name, traceparent string
		continued         bool
	}{
		{"valid", "00-" + traceID + "-00f067aa0ba902b7-01", true},
		{"absent", "", false},
		{"version ff", "ff-" + traceID + "-00f067aa0ba902b7-01", false},
		{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"zero span id", "00-" + traceID + "-0000000000000000-01", false},
		{"upper-case hex", "00-" + strings.ToUpper(traceID) + "-00f067aa0ba902b7-01", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			exp.Reset()
			h := http.Header{"Tracestate": {tracestate}}
			if tt.traceparent != "" {
				h.Set("Traceparent", tt.traceparent)
			}
			_, body := s.do(t, "GET", "/payments", h)
			e := decode[echo](t, body)
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("recorded %d spans, want the gateway's server span", len(spans))
			}
			sc := spans[0].SpanContext
			if want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-"; !strings.HasPrefix(e.Traceparent, want) {
				t.Fatalf("service saw traceparent %q, want the gateway's span %q…", e.Traceparent, want)
			}
			if got := sc.TraceID().String() == traceID; got != tt.continued {
				t.Fatalf("trace continued = %v, want %v", got, tt.continued)
			}
			got := e.Header.Values("Tracestate")
			if tt.continued {
				if len(got) != 1 || got[0] != tracestate {
					t.Fatalf("service saw tracestate %q, want %q kept", got, tracestate)
				}
				return
			}
			if len(got) != 0 {
				t.Fatalf("service saw tracestate %q with the new trace %s, want none", got, sc.TraceID())
			}
		})
	}
}

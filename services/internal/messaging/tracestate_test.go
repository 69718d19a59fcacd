package messaging_test

import (
	"context"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing/tracingtest"
)

// TestTracestateCrossesTheBroker: a message carries the tracestate of the request's trace
// beside its traceparent (W3C Trace Context: the two go together), and the handler's trace
// context has it, whether spans are recorded or not, as a service's HTTP calls carry it on.
func TestTracestateCrossesTheBroker(t *testing.T) {
	const tracestate = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
	for _, recording := range []bool{false, true} {
		t.Run(map[bool]string{false: "not recording", true: "recording"}[recording], func(t *testing.T) {
			tracingtest.Use(t, recording)
			url := testenv.RabbitMQ(t)
			b := connect(t, url)
			p := messaging.NewPublisher(b)
			t.Cleanup(p.Close)
			handledIn := consumeSpanContext(t, b)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := p.Publish(ctx, messaging.Message{ID: "evt-state", Type: "work.done", Body: []byte(`{}`), Mandatory: true,
				Traceparent: "00-" + requestTraceID + "-" + requestSpanID + "-01", Tracestate: tracestate})
			if err != nil {
				t.Fatal(err)
			}
			if handled := handledIn(); handled.TraceID().String() != requestTraceID || handled.TraceState().String() != tracestate {
				t.Errorf("handler's trace %s, tracestate %q; want %s, %q", handled.TraceID(), handled.TraceState(), requestTraceID, tracestate)
			}
		})
	}
}

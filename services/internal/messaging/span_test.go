package messaging_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing/tracingtest"
)

// The trace context publish gives every message: the request that caused it.
const (
	requestTraceID = "0af7651916cd43dd8448eb211c80319c"
	requestSpanID  = "b7ad6b7169203331"
)

// TestEventSpans: while spans are recorded, publishing a message makes a producer span,
// child of the request that caused it, whose trace context the message carries; handling
// it makes a consumer span, child of that one, in which the handler runs. A handler's
// permanent failure marks the consumer span as failed.
func TestEventSpans(t *testing.T) {
	tests := []struct {
		name      string
		fail      error
		wantError string // the consumer span's error.type, "" for none
	}{
		{"handled", nil, ""},
		{"dead-lettered", messaging.Permanent(errors.New("malformed")), "permanent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp := tracingtest.Use(t, true)
			url := testenv.RabbitMQ(t)
			var mu sync.Mutex
			var handled []trace.SpanContext
			b := connect(t, url)
			p := messaging.NewPublisher(b)
			t.Cleanup(p.Close)
			c := b.Consume(messaging.ConsumerConfig{Queue: workQueue.Name, Handler: func(ctx context.Context, _ messaging.Delivery) error {
				mu.Lock()
				handled = append(handled, trace.SpanContextFromContext(ctx))
				mu.Unlock()
				return tt.fail
			}})
			t.Cleanup(func() { _ = c.Stop(context.Background()) })

			publish(t, p, "evt-span", "work.done")
			var process tracetest.SpanStub
			eventually(t, "the consumer span", func() bool {
				s, ok := spanNamed(exp, "process "+workQueue.Name)
				process = s
				return ok
			})
			publishSpan, ok := spanNamed(exp, "publish "+messaging.Exchange)
			if !ok {
				t.Fatal("no publish span")
			}

			if publishSpan.SpanKind != trace.SpanKindProducer || publishSpan.Parent.SpanID().String() != requestSpanID ||
				publishSpan.SpanContext.TraceID().String() != requestTraceID {
				t.Errorf("publish span: kind %v, parent %s, trace %s; want a producer span, child of the request's span %s in trace %s",
					publishSpan.SpanKind, publishSpan.Parent.SpanID(), publishSpan.SpanContext.TraceID(), requestSpanID, requestTraceID)
			}
			if publishSpan.Status.Code != codes.Unset {
				t.Errorf("publish span status %v, want unset", publishSpan.Status)
			}
			wantAttrs(t, "publish", publishSpan.Attributes, map[string]string{
				"messaging.system": "rabbitmq", "messaging.operation.type": "send", "messaging.destination.name": messaging.Exchange,
				"messaging.rabbitmq.destination.routing_key": "work.done", "messaging.message.id": "evt-span",
			})

			if process.SpanKind != trace.SpanKindConsumer || process.Parent.SpanID() != publishSpan.SpanContext.SpanID() ||
				process.SpanContext.TraceID().String() != requestTraceID {
				t.Errorf("process span: kind %v, parent %s, trace %s; want a consumer span, child of the publish span %s",
					process.SpanKind, process.Parent.SpanID(), process.SpanContext.TraceID(), publishSpan.SpanContext.SpanID())
			}
			wantAttrs(t, "process", process.Attributes, map[string]string{
				"messaging.system": "rabbitmq", "messaging.operation.type": "process", "messaging.destination.name": messaging.Exchange,
				"messaging.destination.subscription.name": workQueue.Name, "messaging.rabbitmq.destination.routing_key": "work.done",
				"messaging.message.id": "evt-span", "error.type": tt.wantError,
			})
			if tt.wantError == "" {
				if process.Status.Code != codes.Unset || len(process.Events) != 0 {
					t.Errorf("process span of a handled delivery: status %v, events %v", process.Status, process.Events)
				}
			} else if process.Status.Code != codes.Error || len(process.Events) != 1 || process.Events[0].Name != "exception" {
				t.Errorf("process span of a failed delivery: status %v, events %v; want an error and the handler's error recorded",
					process.Status, process.Events)
			}

			mu.Lock()
			defer mu.Unlock()
			if len(handled) != 1 || handled[0].SpanID() != process.SpanContext.SpanID() {
				t.Errorf("the handler ran in span contexts %v, want the process span's %s alone", handled, process.SpanContext.SpanID())
			}
		})
	}
}

// TestMessageCarriesThePublishSpan: the traceparent a published message carries is that of
// its publish span, so a consumer elsewhere continues the trace from it.
func TestMessageCarriesThePublishSpan(t *testing.T) {
	exp := tracingtest.Use(t, true)
	url := testenv.RabbitMQ(t)
	p := messaging.NewPublisher(connect(t, url))
	t.Cleanup(p.Close)
	publish(t, p, "evt-carried", "work.done")

	d := getOne(t, url)
	publishSpan, ok := spanNamed(exp, "publish "+messaging.Exchange)
	if !ok {
		t.Fatal("no publish span")
	}
	want := "00-" + requestTraceID + "-" + publishSpan.SpanContext.SpanID().String() + "-01"
	if got := d.Headers["traceparent"]; got != want {
		t.Errorf("traceparent %v, want %s", got, want)
	}
}

// TestNoSpansWhileNotRecording: with no tracer provider installed, as in a service that
// exports no traces, a message carries the request's traceparent as it came and the handler
// runs in the request's trace, with no span made.
func TestNoSpansWhileNotRecording(t *testing.T) {
	exp := tracingtest.Use(t, false)
	url := testenv.RabbitMQ(t)
	b := connect(t, url)
	p := messaging.NewPublisher(b)
	t.Cleanup(p.Close)
	publish(t, p, "evt-plain", "work.done")
	if d := getOne(t, url); d.Headers["traceparent"] != "00-"+requestTraceID+"-"+requestSpanID+"-01" {
		t.Errorf("traceparent %v, want the request's", d.Headers["traceparent"])
	}

	handledIn := consumeSpanContext(t, b)
	publish(t, p, "evt-plain-2", "work.done")
	handled := handledIn()
	if handled.TraceID().String() != requestTraceID || handled.SpanID().String() != requestSpanID {
		t.Errorf("handler's span context %s/%s, want the request's %s/%s", handled.TraceID(), handled.SpanID(), requestTraceID, requestSpanID)
	}
	if spans := exp.GetSpans(); len(spans) != 0 {
		t.Errorf("%d spans recorded, want none", len(spans))
	}
}

// spanNamed returns the ended span named name, if there is one.
func spanNamed(exp *tracetest.InMemoryExporter, name string) (tracetest.SpanStub, bool) {
	for _, s := range exp.GetSpans() {
		if s.Name == name {
			return s, true
		}
	}
	return tracetest.SpanStub{}, false
}

// wantAttrs checks the string attributes of the span what: each of want has its value, and
// one whose wanted value is "" is absent.
func wantAttrs(t *testing.T, what string, attrs []attribute.KeyValue, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, a := range attrs {
		got[string(a.Key)] = a.Value.String()
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s span: %s = %q, want %q", what, k, got[k], v)
		}
	}
}

// getOne takes the one message in the work queue through a plain connection.
func getOne(t *testing.T, url string) amqp.Delivery {
	t.Helper()
	got := testenv.RabbitMQTake(t, url, workQueue.Name)
	if len(got) != 1 {
		t.Fatalf("%d messages in the work queue, want 1", len(got))
	}
	return got[0]
}

// consumeSpanContext consumes workQueue on b; the function it returns waits for a delivery
// to be handled and returns the span context its handler ran in.
func consumeSpanContext(t *testing.T, b *messaging.Broker) func() trace.SpanContext {
	t.Helper()
	var mu sync.Mutex
	var handled trace.SpanContext
	c := b.Consume(messaging.ConsumerConfig{Queue: workQueue.Name, Handler: func(ctx context.Context, _ messaging.Delivery) error {
		mu.Lock()
		handled = trace.SpanContextFromContext(ctx)
		mu.Unlock()
		return nil
	}})
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	return func() trace.SpanContext {
		t.Helper()
		eventually(t, "the delivery handled", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return handled.IsValid()
		})
		mu.Lock()
		defer mu.Unlock()
		return handled
	}
}

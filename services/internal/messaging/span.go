package messaging

import (
	"context"
	"errors"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// While spans are recorded (tracing.Recording), publishing a message and handling a delivery
// each get one, after OpenTelemetry's messaging conventions: a producer span "publish
// shop.events", child of the request that caused the event, whose trace context the message
// carries; and a consumer span "process <queue>", child of that one, in which the handler runs,
// so that what the handler calls (a service over HTTP, an event it stores for publishing) joins
// the same trace. Otherwise no span is made, and the message carries the request's trace context
// as it came.

// tracerName names the messaging spans' instrumentation.
const tracerName = "github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"

// startPublishSpan starts the span of publishing m: its parent is m.Traceparent (with
// m.Tracestate), or the span of ctx when m carries none. It returns the traceparent and
// tracestate the message is to carry, the new span's.
func startPublishSpan(ctx context.Context, m Message) (traceparent, tracestate string, span trace.Span) {
	ctx = extractTraceContext(ctx, m.Traceparent, m.Tracestate)
	ctx, span = otel.Tracer(tracerName).Start(ctx, "publish "+Exchange,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			semconv.MessagingSystemRabbitMQ,
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("publish"),
			semconv.MessagingDestinationName(Exchange),
			semconv.MessagingRabbitMQDestinationRoutingKey(m.Type),
			semconv.MessagingMessageID(m.ID),
		))
	return Traceparent(ctx), Tracestate(ctx), span
}

// endPublishSpan ends the span of a publish that returned err.
func endPublishSpan(span trace.Span, err error) {
	if err != nil {
		kind := "_OTHER"
		switch {
		case errors.Is(err, ErrUnroutable):
			kind = "unroutable"
		case errors.Is(err, ErrNotConfirmed):
			kind = "not_confirmed"
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
			kind = "no_connection"
		}
		span.SetAttributes(semconv.ErrorTypeKey.String(kind))
		span.RecordError(err)
		span.SetStatus(codes.Error, kind)
	}
	span.End()
}

// startProcessSpan starts the span of handling d from queue, the child of the span that
// published it (d's traceparent and tracestate; a delivery without one starts a trace). ctx
// is the handlers' context.
func startProcessSpan(ctx context.Context, queue, traceparent, tracestate string, d amqp.Delivery) (context.Context, trace.Span) {
	ctx = extractTraceContext(ctx, traceparent, tracestate)
	return otel.Tracer(tracerName).Start(ctx, "process "+queue,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			semconv.MessagingSystemRabbitMQ,
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingDestinationName(d.Exchange),
			semconv.MessagingDestinationSubscriptionName(queue),
			semconv.MessagingRabbitMQDestinationRoutingKey(d.RoutingKey),
			semconv.MessagingMessageID(d.MessageId),
			semconv.MessagingRabbitMQMessageDeliveryTag(int(d.DeliveryTag)),
		))
}

// endProcessSpan ends the span of handling a delivery: err is the handler's last error when
// the delivery was not acknowledged (dead-lettered when permanent, else given back to the
// queue), ackErr that of the acknowledgement or its refusal.
func endProcessSpan(span trace.Span, err error, permanent bool, ackErr error) {
	if err != nil {
		kind := "transient"
		if permanent {
			kind = "permanent"
		}
		span.SetAttributes(semconv.ErrorTypeKey.String(kind))
		span.SetStatus(codes.Error, kind)
	}
	if ackErr != nil {
		span.RecordError(ackErr)
		if err == nil {
			span.SetAttributes(semconv.ErrorTypeKey.String("not_acknowledged"))
			span.SetStatus(codes.Error, "not_acknowledged")
		}
	}
	span.End()
}

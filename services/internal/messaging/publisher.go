package messaging

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing"
)

// Errors of Publish. Either way the message may or may not have reached a queue, so
// the caller keeps it and publishes it again (consumers drop duplicates by ID).
var (
	// ErrNotConfirmed: the broker refused the message or the connection dropped
	// before it confirmed it.
	ErrNotConfirmed = errors.New("message not confirmed by the broker")
	// ErrUnroutable: a mandatory message matched no queue and was returned.
	ErrUnroutable = errors.New("message returned by the broker: no queue bound for it")
)

// Message is one event to publish.
type Message struct {
	// ID is the event's unique id, sent as message_id; consumers deduplicate by it.
	ID string
	// Type is the event type, used as routing key and sent as type, e.g. "order.created".
	Type string
	// Body is the event's JSON.
	Body []byte
	// Traceparent is the W3C trace context of the request that caused the event.
	Traceparent string
	// Tracestate is the W3C tracestate of that trace ("" for none), sent beside
	// Traceparent: the vendors' part of the trace context, which W3C Trace Context has go
	// wherever the traceparent goes.
	Tracestate string
	// RequestID is the X-Request-ID of the request that caused the event, sent as the
	// x-request-id header ("" for none): the consumer hands it to its handler
	// (web.RequestID of its context), so that the lines logged about the event, and the
	// requests its handling makes, name the request as the request's own lines do.
	RequestID string
	// Time the event happened; zero means now.
	Time time.Time
	// Mandatory asks the broker to return the message when no queue is bound for it.
	// Set it for events some service must receive, so a missing binding is an error
	// rather than a silently dropped event.
	Mandatory bool
}

// Publisher publishes persistent JSON messages to Exchange with publisher confirms.
// It is safe for concurrent use; concurrent publishes share one channel and wait for
// their confirms in parallel.
type Publisher struct {
	b *Broker

	mu       sync.Mutex
	ch       *amqp.Channel // confirm-mode channel of the current connection
	chDown   <-chan struct{}
	chClosed chan *amqp.Error // why ch was closed, once it is
	// redeclare: a channel was closed for an exchange not found (noteClosed): the next
	// channel is opened after the topology is declared again.
	redeclare bool
	// redeclareAt: a mandatory message was returned; the first publish from then on
	// declares the topology again (zero: none due).
	redeclareAt time.Time
	// returnedInARow counts the mandatory messages returned since one was routed: the
	// pause before each redeclaration grows with it, so a return that no declaration
	// cures (a queue someone declared with other arguments, left out) costs the broker a
	// declaration every 30 s at most, not every second.
	returnedInARow int
	returned       map[string]bool // message ids returned, drained by another publish than their own
	returns        chan amqp.Return
}

// NewPublisher returns a publisher over b's connection.
func NewPublisher(b *Broker) *Publisher {
	return &Publisher{b: b, returned: map[string]bool{}}
}

// Publish sends m and returns nil only once the broker confirmed it (it is then
// stored in every queue bound for it). It waits for a connection while the broker is
// down, up to ctx's deadline.
func (p *Publisher) Publish(ctx context.Context, m Message) (err error) {
	if m.ID == "" || m.Type == "" {
		return errors.New("messaging: message needs an ID and a Type")
	}
	if tracing.Recording() {
		var span trace.Span
		m.Traceparent, m.Tracestate, span = startPublishSpan(ctx, m)
		defer func() { endPublishSpan(span, err) }()
	}
	ch, returns, err := p.channel(ctx)
	if err != nil {
		return err
	}
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	headers := amqp.Table{}
	if m.Traceparent != "" {
		headers["traceparent"] = m.Traceparent
		if m.Tracestate != "" {
			headers["tracestate"] = m.Tracestate
		}
	}
	if m.RequestID != "" {
		headers[requestIDHeader] = m.RequestID
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, Exchange, m.Type, m.Mandatory, false, amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    m.ID,
		Type:         m.Type,
		Timestamp:    m.Time.UTC(),
		AppId:        p.b.cfg.AppID,
		Headers:      headers,
		Body:         m.Body,
	})
	if err != nil {
		p.dropChannel(ch)
		return fmt.Errorf("%w: %w", ErrNotConfirmed, err)
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotConfirmed, err)
	}
	// The broker sends basic.return before the ack of the same message, and the client
	// hands it to our buffered channel before processing the ack: it is there by now.
	if p.takeReturned(returns, m.ID) {
		// A queue lost its binding, or was deleted (and maybe declared again without it).
		// The topology is declared again, but not at once: RabbitMQ (3.10) may never
		// cancel the consumers of a quorum queue deleted and declared again within a few
		// milliseconds, and leaves them stuck on the new queue, taking messages they never
		// receive. The pause lets the broker cancel them first; they subscribe again.
		p.mu.Lock()
		if p.redeclareAt.IsZero() {
			p.returnedInARow++
			p.redeclareAt = time.Now().Add(retryDelay(redeclarePause, maxResubscribeDelay, p.returnedInARow))
		}
		p.mu.Unlock()
		return fmt.Errorf("%w (type %s)", ErrUnroutable, m.Type)
	}
	if !acked {
		return ErrNotConfirmed
	}
	if m.Mandatory {
		p.mu.Lock()
		p.returnedInARow = 0
		p.mu.Unlock()
	}
	return nil
}

// redeclarePause is how long after a mandatory message came back unroutable the topology
// is declared again (see Publish).
const redeclarePause = time.Second

// channel returns the confirm channel of the current connection, opening it when needed.
//
// A channel the broker closed with 404 NOT_FOUND published to an exchange that is gone
// (deleted by hand, say, which drops its bindings too): the topology is declared again on
// the connection before the next channel, or every publish would fail the same way until
// the connection is next made. A mandatory message returned unroutable found a binding
// gone: the topology is declared again before a publish redeclarePause later (declaring
// is idempotent).
func (p *Publisher) channel(ctx context.Context) (*amqp.Channel, chan amqp.Return, error) {
	for {
		p.mu.Lock()
		if p.ch != nil && !p.ch.IsClosed() {
			ch, returns, down := p.ch, p.returns, p.chDown
			redeclare := !p.redeclareAt.IsZero() && !time.Now().Before(p.redeclareAt)
			if redeclare {
				p.redeclareAt = time.Time{}
			}
			p.mu.Unlock()
			if redeclare {
				p.declareAgain(ctx, down)
			}
			return ch, returns, nil
		}
		if p.ch != nil {
			p.noteClosed()
		}
		p.ch = nil
		redeclare := p.redeclare
		p.redeclare = false
		p.mu.Unlock()

		conn, down, err := p.b.session(ctx)
		if err != nil {
			return nil, nil, err
		}
		if redeclare {
			p.declareOn(conn)
		}
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Confirm(false)
		}
		if err != nil {
			// The connection is going away; wait for the next one.
			select {
			case <-down:
				continue
			case <-ctx.Done():
				return nil, nil, fmt.Errorf("%w: %w", ErrDown, ctx.Err())
			case <-time.After(p.b.cfg.ReconnectDelay):
				continue
			}
		}
		returns := ch.NotifyReturn(make(chan amqp.Return, 256))
		closed := ch.NotifyClose(make(chan *amqp.Error, 1))
		p.mu.Lock()
		if p.ch != nil && !p.ch.IsClosed() { // another publish won the race
			p.mu.Unlock()
			_ = ch.Close()
			continue
		}
		p.ch, p.chDown, p.returns, p.chClosed = ch, down, returns, closed
		p.mu.Unlock()
		return ch, returns, nil
	}
}

// declareAgain declares the topology on the connection of the current channel, unless it
// is gone (down closed): a new connection declares it anyway.
func (p *Publisher) declareAgain(ctx context.Context, down <-chan struct{}) {
	conn, connDown, err := p.b.session(ctx)
	if err != nil || connDown != down {
		return
	}
	p.b.log.Debug("declaring the topology again: a message came back unroutable")
	p.declareOn(conn)
}

func (p *Publisher) declareOn(conn *amqp.Connection) {
	if err := p.b.declare(conn); err != nil {
		p.b.log.Warn("topology not declared again after a publish found it missing", "error", err)
	}
}

// takeReturned drains the returns received so far and reports whether id was among
// them. Returns are drained here, by the publishes, rather than by a goroutine of
// their own: a return always precedes its ack, so the publish waiting for that ack
// finds it in the buffer, with no race against another reader. The buffer cannot
// fill, since each return is followed by the publish that drains it.
func (p *Publisher) takeReturned(returns chan amqp.Return, id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for drained := false; !drained; {
		select {
		case r, ok := <-returns:
			if !ok {
				drained = true
				break
			}
			p.returned[r.MessageId] = true
		default:
			drained = true
		}
	}
	was := p.returned[id]
	delete(p.returned, id)
	return was
}

// noteClosed records, with p.mu held, whether the broker closed the current channel for
// an exchange not found, so that the next channel declares the topology first.
func (p *Publisher) noteClosed() {
	select {
	case e := <-p.chClosed:
		if e != nil && e.Code == amqp.NotFound {
			p.redeclare = true
		}
	default:
	}
}

func (p *Publisher) dropChannel(ch *amqp.Channel) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch == ch {
		p.noteClosed()
		p.ch = nil
		_ = ch.Close()
	}
}

// Close closes the publisher's channel.
func (p *Publisher) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch != nil {
		_ = p.ch.Close()
		p.ch = nil
	}
}

// requestIDHeader is the message header carrying Message.RequestID.
const requestIDHeader = "x-request-id"

// Traceparent returns the W3C traceparent of the span in ctx, or "" when there is none,
// for storing with an event that will be published later.
func Traceparent(ctx context.Context) string {
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier.Get("traceparent")
}

// Tracestate returns the W3C tracestate of the span in ctx, or "" when there is none, to
// store beside Traceparent.
func Tracestate(ctx context.Context) string {
	return trace.SpanContextFromContext(ctx).TraceState().String()
}

// extractTraceContext returns ctx carrying the remote span context of traceparent and
// tracestate, as a message carries them; ctx as it is when traceparent is "" or malformed.
func extractTraceContext(ctx context.Context, traceparent, tracestate string) context.Context {
	if traceparent == "" {
		return ctx
	}
	carrier := propagation.MapCarrier{"traceparent": traceparent}
	if tracestate != "" {
		carrier["tracestate"] = tracestate
	}
	return propagation.TraceContext{}.Extract(ctx, carrier)
}

// contextWithTraceparent returns ctx carrying the remote span context of traceparent. A
// delivery that brings none (or a malformed one) gets a trace of its own, not sampled, as an
// HTTP request does (web.Mux): the events its handling writes carry it on.
func contextWithTraceparent(ctx context.Context, traceparent, tracestate string) context.Context {
	ctx = extractTraceContext(ctx, traceparent, tracestate)
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, tracing.NewSpanContext())
	}
	return ctx
}

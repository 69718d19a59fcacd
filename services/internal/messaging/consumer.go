package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// Delivery is one received event.
type Delivery struct {
	// ID is the message_id: the event id, the key for deduplication.
	ID string
	// Type is the event type (the routing key it was published with).
	Type string
	// Body is the event's JSON.
	Body []byte
	// Attempt counts deliveries of this message, 1 for the first.
	Attempt int
}

// Handler stores the effect of one delivery. It returns nil once the effect is stored
// (the delivery is then acknowledged), a Permanent error for a message that can never
// be handled (dead-lettered at once), or any other error for a transient failure (the
// delivery is kept and handled again after a pause, for up to ConsumerConfig.Hold, then
// requeued; the message is dead-lettered once the queue's delivery limit is reached). It
// may be called again for a delivery it already handled.
type Handler func(ctx context.Context, d Delivery) error

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth a retry, e.g. a malformed message.
func Permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err, or an error it wraps, was marked by Permanent.
func IsPermanent(err error) bool { return errors.As(err, new(permanentError)) }

// Prefetch bounds.
const (
	// DefaultPrefetch is the prefetch of a ConsumerConfig that sets none; the services'
	// CONSUMER_PREFETCH defaults to it too.
	DefaultPrefetch = 64
	// MaxPrefetch is the largest prefetch the broker can be asked for: basic.qos carries
	// a 16-bit count, so 65536 would reach it as 0, which means no limit.
	MaxPrefetch = math.MaxUint16
)

// ConsumerConfig says what to consume and how.
type ConsumerConfig struct {
	// Queue to consume; it must be part of the broker's Topology.
	Queue string
	// Prefetch is how many deliveries are handled at once: 1 to MaxPrefetch, 0 for
	// DefaultPrefetch. Consume panics on any other value: configurations check theirs
	// when they read it (CONSUMER_PREFETCH).
	Prefetch int
	// Handler stores each delivery's effect.
	Handler Handler
	// RetryDelay is the pause before a failed delivery is first handled again; default
	// 100ms. Each later attempt waits four times longer, up to MaxRetryDelay.
	RetryDelay time.Duration
	// MaxRetryDelay caps the pause between attempts; default 1m. Only the failing delivery
	// waits: the others are handled meanwhile, up to Prefetch at once.
	MaxRetryDelay time.Duration
	// Hold is how long a delivery whose handling keeps failing is kept and handled again
	// in place before it goes back to the queue, which counts one delivery against the
	// queue's limit; default DefaultHold. A failure is most often a store or a peer that
	// is down for a while (a restart, a rollout, an outage): retried in place, a message
	// outlasts DeliveryLimit+1 holds of it (over three hours with the defaults) before it
	// is dead-lettered, instead of the few minutes its redeliveries would take.
	Hold time.Duration
	// IdleResubscribe is how long a subscription may receive nothing, with no delivery in
	// hand, before it is made again; default DefaultIdleResubscribe. RabbitMQ (3.10) may
	// never cancel the consumers of a quorum queue deleted and declared again within
	// milliseconds: they stay on the new queue, which delivers to them messages this
	// client never receives, until their channel closes. Made again, the subscription's
	// old channel closes, and what it held goes back to the queue.
	IdleResubscribe time.Duration
}

// DefaultIdleResubscribe is ConsumerConfig.IdleResubscribe's default.
const DefaultIdleResubscribe = 30 * time.Second

// DefaultHold is ConsumerConfig.Hold's default: well below the 30 minutes after which
// RabbitMQ closes the channel of a consumer that has not acknowledged a delivery
// (consumer_timeout), which would requeue it anyway.
const DefaultHold = 20 * time.Minute

// retryDelay is the pause after failed attempt n (1 for the first delivery).
func retryDelay(first, maxDelay time.Duration, attempt int) time.Duration {
	d := first
	for i := 1; i < attempt && d < maxDelay; i++ {
		d *= 4
	}
	return min(d, maxDelay)
}

// Consumer consumes one queue with manual acknowledgement, across reconnections,
// until Stop.
type Consumer struct {
	b      *Broker
	cfg    ConsumerConfig
	log    *slog.Logger
	stop   chan struct{}
	done   chan struct{}
	hardCx context.Context // handlers' context, cancelled only when Stop gives up waiting
	hardFn context.CancelFunc

	// unsubscribed is why the queue is not consumed now (Ready); nil while it is.
	unsubscribed atomic.Pointer[error]
	// declaredForDeadLetter is when (Unix nanoseconds) the topology was last declared
	// before a dead letter (handle).
	declaredForDeadLetter atomic.Int64

	stopOnce sync.Once
}

// Ready reports whether the queue is consumed now, else why not (the subscription
// refused, or lost with the connection); it fits health.Check, as an optional check: the
// messages wait in the queue meanwhile.
func (c *Consumer) Ready(context.Context) error {
	if err := c.unsubscribed.Load(); err != nil {
		return *err
	}
	return nil
}

// setUnsubscribed records why the queue is not consumed, or nil once it is.
func (c *Consumer) setUnsubscribed(err error) {
	if err == nil {
		c.unsubscribed.Store(nil)
		return
	}
	err = fmt.Errorf("queue %s not consumed: %w", c.cfg.Queue, err)
	c.unsubscribed.Store(&err)
}

// Consume starts consuming cfg.Queue; it keeps consuming after the broker comes back.
func (b *Broker) Consume(cfg ConsumerConfig) *Consumer {
	if cfg.Prefetch == 0 {
		cfg.Prefetch = DefaultPrefetch
	}
	if cfg.Prefetch < 1 || cfg.Prefetch > MaxPrefetch {
		panic(fmt.Sprintf("messaging: prefetch %d is not between 1 and %d", cfg.Prefetch, MaxPrefetch))
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 100 * time.Millisecond
	}
	if cfg.MaxRetryDelay <= 0 {
		cfg.MaxRetryDelay = time.Minute
	}
	if cfg.Hold <= 0 {
		cfg.Hold = DefaultHold
	}
	if cfg.IdleResubscribe <= 0 {
		cfg.IdleResubscribe = DefaultIdleResubscribe
	}
	hardCx, hardFn := context.WithCancel(context.Background())
	c := &Consumer{
		b: b, cfg: cfg, log: b.log.With("queue", cfg.Queue),
		stop: make(chan struct{}), done: make(chan struct{}),
		hardCx: hardCx, hardFn: hardFn,
	}
	c.setUnsubscribed(errors.New("not subscribed yet"))
	go c.run()
	return c
}

// maxResubscribeDelay caps the pause between failed subscriptions.
const maxResubscribeDelay = 30 * time.Second

// deadLetterDeclarePause is the least time between two declarations of the topology
// before a dead letter (handle).
const deadLetterDeclarePause = time.Second

// errCancelled: the broker ended the subscription, as it does when the queue is deleted.
var errCancelled = errors.New("subscription cancelled by the broker")

// errIdle: the subscription received nothing for IdleResubscribe, with nothing in hand.
var errIdle = errors.New("subscription idle")

func (c *Consumer) run() {
	defer close(c.done)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-c.stop; cancel() }()
	failures := 0
	redeclare := false
	for {
		conn, down, err := c.b.session(ctx)
		if err != nil {
			return // stopped
		}
		if redeclare {
			// The subscription ended, or the queue was in conflict (resolved since? the
			// declaration says).
			redeclare = false
			if err := c.b.declare(conn); err != nil {
				c.log.Warn("topology not declared again", "error", err)
			}
		}
		subscribed, err := c.consume(conn, down)
		if subscribed {
			// The failures counted are those in a row: a subscription made ends them,
			// however it ended (the connection lost, idle), or a failure long after would
			// wait as long as the last of them.
			failures = 0
		}
		select {
		case <-c.stop:
			return
		default:
		}
		if errors.Is(err, errIdle) {
			// Ready all along: the next subscription follows at once.
			c.log.Debug("no delivery for a while: subscribing again, in case the broker lost this subscription",
				"idle", c.cfg.IdleResubscribe)
			continue
		}
		if err != nil {
			c.setUnsubscribed(err)
		} else {
			c.setUnsubscribed(ErrDown)
		}
		var wait time.Duration
		switch {
		case err == nil: // the connection dropped: session waits for the next one
			continue
		case subscribed: // ended by the broker; the next attempt finds out why
			// Most often the queue was deleted. Whoever deleted it may have declared it
			// again, without its bindings: the topology is declared before the next
			// subscription, or this consumer would wait on a queue no event reaches.
			wait = c.b.cfg.ReconnectDelay
			redeclare = true
			c.log.Warn("subscription ended, subscribing again", "error", err)
		default:
			// A missing queue (deleted, or lost with a broker's data) is declared again
			// on this connection: the broker connection does so only when it reconnects.
			failures++
			wait = retryDelay(c.b.cfg.ReconnectDelay, maxResubscribeDelay, failures)
			var amqpErr *amqp.Error
			if errors.Is(err, ErrConflict) {
				redeclare = true // after the pause
			} else if errors.As(err, &amqpErr) && amqpErr.Code == amqp.NotFound {
				if derr := c.b.declare(conn); derr != nil {
					err = errors.Join(err, derr)
				} else if failures == 1 {
					wait = 0
				}
			}
			c.log.Warn("consume failed, retrying", "error", err, "attempt", failures, "retry_in", wait)
		}
		select {
		case <-c.stop:
			return
		case <-time.After(wait):
		}
	}
}

// consume runs one subscription on conn until the connection drops or Stop is called,
// then waits for the in-flight handlers, whose acks go to this subscription's channel.
// It reports whether the subscription began; errCancelled means the broker ended it.
func (c *Consumer) consume(conn *amqp.Connection, down <-chan struct{}) (subscribed bool, err error) {
	// A queue declared by someone else with other arguments is not ours: its messages
	// would not be dead-lettered as the topology says.
	if err := c.b.conflict(c.cfg.Queue); err != nil {
		return false, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return false, err
	}
	// The channel closes without waiting for the broker's reply, which a hung broker
	// never sends: by then the handlers' acks are written, and what was delivered and
	// not handled is requeued as the channel or the connection closes.
	defer func() { go func() { _ = ch.Close() }() }()
	if err := ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
		return false, err
	}
	tag := fmt.Sprintf("%s-%p", c.b.cfg.Name, ch)
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	deliveries, err := ch.Consume(c.cfg.Queue, tag, false, false, false, false, nil)
	if err != nil {
		return false, err
	}
	c.setUnsubscribed(nil)

	var inflight sync.WaitGroup
	defer inflight.Wait()
	gone := make(chan struct{}) // closed as this subscription ends: pauses end, acks go nowhere
	defer close(gone)
	var held atomic.Int64 // deliveries in hand
	idle := time.NewTimer(c.cfg.IdleResubscribe)
	defer idle.Stop()
	for {
		select {
		case <-idle.C:
			if held.Load() == 0 && len(deliveries) == 0 {
				return true, errIdle
			}
			idle.Reset(c.cfg.IdleResubscribe)
		case d, ok := <-deliveries:
			if !ok {
				select {
				case <-down:
					return true, nil
				case err := <-closed: // a channel error
					if err != nil {
						return true, err
					}
					return true, errCancelled
				default:
					return true, errCancelled
				}
			}
			idle.Reset(c.cfg.IdleResubscribe)
			held.Add(1)
			inflight.Go(func() {
				defer held.Add(-1)
				c.handle(conn, d, gone)
			})
		case <-down:
			return true, nil
		case <-c.stop:
			// Ask the broker to send no more, without waiting for its reply: a hung
			// broker would hold Stop, and a reply awaited alongside the channel's
			// close could take the close-ok meant for it. Deliveries received and not
			// yet handled are requeued when the channel closes, after the handlers in
			// flight.
			go func() { _ = ch.Cancel(tag, true) }()
			return true, nil
		}
	}
}

func (c *Consumer) handle(conn *amqp.Connection, d amqp.Delivery, gone <-chan struct{}) {
	attempt := 1
	// Quorum queues count earlier deliveries in x-delivery-count (an integer of
	// whichever width the broker chose).
	switch n := d.Headers["x-delivery-count"].(type) {
	case int64:
		attempt = int(n) + 1
	case int32:
		attempt = int(n) + 1
	case int16:
		attempt = int(n) + 1
	}
	traceparent, _ := d.Headers["traceparent"].(string)
	tracestate, _ := d.Headers["tracestate"].(string)
	var ctx context.Context
	var span trace.Span
	if tracing.Recording() {
		ctx, span = startProcessSpan(c.hardCx, c.cfg.Queue, traceparent, tracestate, d)
	} else {
		ctx = contextWithTraceparent(c.hardCx, traceparent, tracestate)
	}
	// The request that caused the event, when it came with one: the handler's lines
	// (web.LoggerFor), its calls and the events it writes name it on.
	if id, _ := d.Headers[requestIDHeader].(string); web.ValidRequestID(id) {
		ctx = web.WithRequestID(ctx, id)
	}
	// As web.Logger does for a request: the delivery's lines carry its request id and its
	// trace, which the events its handling writes carry on.
	log := web.LoggerFor(ctx, c.log)
	held := time.Now()
	var ackErr, err error
	for try := 1; ; try++ {
		err = c.call(ctx, Delivery{ID: d.MessageId, Type: d.Type, Body: d.Body, Attempt: attempt})
		if err == nil {
			ackErr = d.Ack(false)
			break
		}
		if span != nil {
			span.RecordError(err)
		}
		if IsPermanent(err) {
			log.ErrorContext(ctx, "dead-lettering message", "id", d.MessageId, "type", d.Type, "error", err)
			// The dead-letter queue may have been deleted since the connection declared
			// it, and the broker drops a dead letter no queue takes: declare the topology
			// first, at most once a deadLetterDeclarePause, so that a burst of dead
			// letters does not wait on a declaration each.
			if last := c.declaredForDeadLetter.Load(); time.Since(time.Unix(0, last)) >= deadLetterDeclarePause &&
				c.declaredForDeadLetter.CompareAndSwap(last, time.Now().UnixNano()) {
				if derr := c.b.declare(conn); derr != nil {
					log.WarnContext(ctx, "topology not declared before dead-lettering", "id", d.MessageId, "error", derr)
				}
			}
			ackErr = d.Nack(false, false)
			break
		}
		wait := retryDelay(c.cfg.RetryDelay, c.cfg.MaxRetryDelay, try)
		log.WarnContext(ctx, "handling failed, trying again", "id", d.MessageId, "type", d.Type,
			"attempt", attempt, "try", try, "retry_in", wait, "error", err)
		// A Stop, or the connection gone, ends the pause, and so does the end of the hold:
		// the message goes back to the queue for the next consumer (a nack on a closed
		// channel goes nowhere, and the broker requeues the delivery itself).
		select {
		case <-time.After(wait):
			if time.Since(held) < c.cfg.Hold {
				continue
			}
			log.WarnContext(ctx, "handling still failing, requeueing", "id", d.MessageId, "type", d.Type,
				"attempt", attempt, "held", time.Since(held).Round(time.Second).String())
		case <-c.stop:
		case <-gone:
		case <-c.hardCx.Done():
		}
		ackErr = d.Nack(false, true)
		break
	}
	if ackErr != nil {
		// The channel is gone: the broker requeues the message and the handler sees it
		// again, which it must tolerate.
		log.WarnContext(ctx, "acknowledgement not sent", "id", d.MessageId, "error", ackErr)
	}
	if span != nil {
		endProcessSpan(span, err, IsPermanent(err), ackErr)
	}
}

// call runs the handler, turning a panic into a transient error so that one bad
// message cannot take the consumer down; the delivery limit ends its retries.
func (c *Consumer) call(ctx context.Context, d Delivery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return c.cfg.Handler(ctx, d)
}

// Stop stops receiving, lets the handlers in flight finish and acknowledge, and
// returns. When ctx ends first, the handlers' context is cancelled and Stop returns
// ctx's error at once, without waiting for the handlers or the broker (which may hang):
// a message whose handling was cut short is not acknowledged, so the broker requeues it
// (at the latest when the connection closes).
func (c *Consumer) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() { close(c.stop) })
	select {
	case <-c.done:
		c.hardFn()
		return nil
	case <-ctx.Done():
		c.hardFn()
		return ctx.Err()
	}
}

// Package messaging carries the shop's events over RabbitMQ: a connection that outlives
// broker restarts, the exchanges and queues every service declares, a publisher that
// returns only once the broker has the message, and a consumer that acknowledges only
// after the handler stored its effect.
//
// Delivery is at least once: a publish whose confirm is lost is sent again by the
// caller's outbox, and a delivery whose ack is lost comes again. Handlers must therefore
// be idempotent, keyed by Delivery.ID.
package messaging

import (
	"errors"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopkeeper-dev/shopkeeper/internal/storeuri"
)

// Exchange names.
const (
	// Exchange is the topic exchange every event is published to, with its type as key.
	Exchange = "shop.events"
	// DeadLetterExchange receives what a queue gives up on; each queue's dead letters
	// are routed to its own dead-letter queue by the queue's name.
	DeadLetterExchange = "shop.events.dlx"
)

// DefaultDeliveryLimit is how often a queue delivers a message its consumers keep
// failing before it dead-letters it.
const DefaultDeliveryLimit = 10

// Queue is a durable quorum work queue bound to Exchange.
type Queue struct {
	// Name of the queue, e.g. "payment.order-created".
	Name string
	// RoutingKeys the queue is bound with, e.g. "order.created" or "payment.*".
	RoutingKeys []string
	// DeliveryLimit overrides DefaultDeliveryLimit when positive. It counts returns to
	// the queue: a message is delivered at most DeliveryLimit+1 times.
	DeliveryLimit int
}

// DeadLetterQueue names the queue holding q's dead letters.
func (q Queue) DeadLetterQueue() string { return q.Name + ".dlq" }

func (q Queue) deliveryLimit() int {
	if q.DeliveryLimit > 0 {
		return q.DeliveryLimit
	}
	return DefaultDeliveryLimit
}

// Topology is what a service needs to exist on the broker. Declaring it again is
// harmless, so every connection declares it before use (after an outage the broker
// may be a fresh one).
type Topology struct {
	Queues []Queue
}

// ErrConflict is the error of a queue or exchange of the topology that exists on the
// broker with other settings than the topology's (someone else declared it), so that
// declaring it fails with 406 PRECONDITION_FAILED. It lasts until whoever made it removes it.
var ErrConflict = errors.New("declared on the broker with other settings")

// declare declares the topology on channels of its own on conn. An exchange that cannot
// be declared fails it all. A queue that exists with other arguments (406, which closes
// only the channel) is left out with its bindings, and returned in conflicts by name,
// while the rest of the topology is declared: the service's other queues keep working.
func (t Topology) declare(conn *amqp.Connection) (conflicts map[string]error, err error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	defer func() { _ = ch.Close() }()
	for _, name := range []string{Exchange, DeadLetterExchange} {
		if err := ch.ExchangeDeclare(name, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			if isPreconditionFailed(err) {
				err = fmt.Errorf("%w: %w", ErrConflict, err)
			}
			return nil, fmt.Errorf("declare exchange %s: %w", name, err)
		}
	}
	conflicts = map[string]error{}
	for _, q := range t.Queues {
		err := declareQueue(ch, q)
		if err == nil {
			continue
		}
		if !isPreconditionFailed(err) {
			return nil, err
		}
		conflicts[q.Name] = fmt.Errorf("%w: %w", ErrConflict, err)
		// The broker closed the channel: the next queue gets another.
		next, err := conn.Channel()
		if err != nil {
			return nil, err
		}
		ch = next
	}
	return conflicts, nil
}

func isPreconditionFailed(err error) bool {
	var amqpErr *amqp.Error
	return errors.As(err, &amqpErr) && amqpErr.Code == amqp.PreconditionFailed
}

// declareQueue declares q, its dead-letter queue and their bindings.
func declareQueue(ch *amqp.Channel, q Queue) error {
	dlq := q.DeadLetterQueue()
	if err := declareQueueArgs(ch, dlq, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}); err != nil {
		return err
	}
	if err := ch.QueueBind(dlq, q.Name, DeadLetterExchange, false, nil); err != nil {
		return fmt.Errorf("bind %s: %w", dlq, err)
	}
	args := amqp.Table{
		amqp.QueueTypeArg:           amqp.QueueTypeQuorum,
		"x-delivery-limit":          int64(q.deliveryLimit()),
		"x-dead-letter-exchange":    DeadLetterExchange,
		"x-dead-letter-routing-key": q.Name,
	}
	if err := declareQueueArgs(ch, q.Name, args); err != nil {
		return err
	}
	for _, key := range q.RoutingKeys {
		if err := ch.QueueBind(q.Name, key, Exchange, false, nil); err != nil {
			return fmt.Errorf("bind %s to %s: %w", q.Name, key, err)
		}
	}
	return nil
}

func declareQueueArgs(ch *amqp.Channel, name string, args amqp.Table) error {
	if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		return fmt.Errorf("declare queue %s: %w", name, err)
	}
	return nil
}

// Event types of the shop (the routing keys).
const (
	OrderCreated     = "order.created"
	OrderUpdated     = "order.updated"
	PaymentSucceeded = "payment.succeeded"
	PaymentFailed    = "payment.failed"
)

// The shop's work queues. Every service declares all of them (ShopTopology), so that a
// publisher finds its consumers' queue even when it starts before them.
var (
	// PaymentOrderCreated feeds the payment service.
	PaymentOrderCreated = Queue{Name: "payment.order-created", RoutingKeys: []string{OrderCreated}}
	// OrderPaymentResults feeds the order service.
	OrderPaymentResults = Queue{Name: "order.payment-results", RoutingKeys: []string{PaymentSucceeded, PaymentFailed}}
)

// ShopTopology is the topology of the shop's services.
var ShopTopology = Topology{Queues: []Queue{PaymentOrderCreated, OrderPaymentResults}}

// Settings is the broker part of a service's configuration (from the environment).
type Settings struct {
	// URL of the broker; RABBITMQ_URL is the seed's name.
	URL string `env:"RABBITMQ_URL" envDefault:"amqp://guest:guest@localhost:5672/"`
}

// Validate refuses a URL the client cannot use, naming RABBITMQ_URL and the problem
// (scheme, host, port) without the URL's password: such a URL never connects, and a
// service that started with it would take requests whose events never leave.
func (s Settings) Validate() error {
	if err := storeuri.CheckAMQP(s.URL); err != nil {
		return fmt.Errorf("RABBITMQ_URL=%q: %w", storeuri.RedactURL(s.URL), err)
	}
	return nil
}

package outbox

import (
	"context"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
)

// WorkerConfig describes a service's event plumbing.
type WorkerConfig struct {
	// Broker is the broker part of the service's configuration.
	Broker messaging.Settings
	// Name is the service's name: the app_id of the events it publishes, and, with each
	// connection's role, the name the broker shows for the connection.
	Name string
	// Outbox is the collection whose documents carry outgoing events, Locks the locks
	// its writers hold around each update of a document, and Writes the gate its
	// database's writes go through (nil: none) (see Relay).
	Outbox *mongo.Collection
	Locks  *mongodb.KeyedMutex
	Writes *mongodb.Gate
	// RemovalDelay is how long a published event stays for a writer of its document to
	// remove (Relay.SetRemovalDelay); 0 removes it at once.
	RemovalDelay time.Duration
	// Queue is consumed with Handler; Prefetch deliveries at once.
	Queue    string
	Prefetch int
	Logger   *slog.Logger
}

// Worker is a service's event plumbing: its broker connections (each declaring the shop's
// topology), the relay of its outbox collection and the consumer of its queue.
//
// The relay publishes on one connection and the consumer consumes on another, as RabbitMQ
// advises: under a memory or disk alarm the broker blocks every connection that publishes,
// and a consumer sharing it would stop draining its queue with it, which can be what the
// alarm is waiting for.
type Worker struct {
	cfg      WorkerConfig
	out, in  *messaging.Broker // publishing and consuming connections
	pub      *messaging.Publisher
	relay    *Relay
	consumer *messaging.Consumer
}

// NewWorker connects to the broker (in the background) and starts the relay, which
// sends at once what earlier runs left in the outbox. Start begins consuming.
func NewWorker(cfg WorkerConfig) *Worker {
	connect := func(role string) *messaging.Broker {
		return messaging.Connect(messaging.Config{URL: cfg.Broker.URL, Name: cfg.Name + " (" + role + ")",
			AppID: cfg.Name, Topology: messaging.ShopTopology, Logger: cfg.Logger})
	}
	w := &Worker{cfg: cfg, out: connect("publish"), in: connect("consume")}
	w.pub = messaging.NewPublisher(w.out)
	w.relay = NewRelay(cfg.Outbox, w.pub, cfg.Locks, cfg.Writes, cfg.Logger, time.Second)
	w.relay.SetRemovalDelay(cfg.RemovalDelay)
	go w.relay.Run(context.Background()) // until Close stops it
	return w
}

// Start consumes the configured queue with h.
func (w *Worker) Start(h messaging.Handler) {
	w.consumer = w.in.Consume(messaging.ConsumerConfig{Queue: w.cfg.Queue, Prefetch: w.cfg.Prefetch, Handler: h})
}

// Notify tells the relay that the document with _id id got events (see Relay.Notify).
func (w *Worker) Notify(id any, events ...Event) { w.relay.Notify(id, events...) }

// TakeConfirmed hands the caller the removal of document id's published events (see
// Relay.TakeConfirmed).
func (w *Worker) TakeConfirmed(id any) map[string]bool { return w.relay.TakeConfirmed(id) }

// Ready reports whether both broker connections are open and, once Start has begun
// consuming, whether the queue is consumed (Consumer.Ready); it fits health.Check.
func (w *Worker) Ready(ctx context.Context) error {
	for _, b := range []*messaging.Broker{w.out, w.in} {
		if err := b.Ready(ctx); err != nil {
			return err
		}
	}
	if w.consumer != nil {
		return w.consumer.Ready(ctx)
	}
	return nil
}

// WaitReady waits until both broker connections are open, or ctx ends.
func (w *Worker) WaitReady(ctx context.Context) error {
	for _, b := range []*messaging.Broker{w.out, w.in} {
		if err := b.WaitReady(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Close stops consuming (the deliveries in flight finish and are acknowledged), stops
// the relay and closes the connection, all within ctx: it returns when ctx ends at the
// latest, however the broker behaves.
func (w *Worker) Close(ctx context.Context) error {
	var err error
	if w.consumer != nil {
		err = w.consumer.Stop(ctx)
	}
	// The relay after the consumer, so that what the last deliveries' handlers wrote
	// goes out now rather than at the next start.
	if rerr := w.relay.Stop(ctx); err == nil {
		err = rerr
	}
	// The connections first: closing them closes the publisher's channel without a round
	// trip to a broker that may not answer.
	for _, b := range []*messaging.Broker{w.in, w.out} {
		if cerr := b.Shutdown(ctx); err == nil {
			err = cerr
		}
	}
	w.pub.Close()
	return err
}

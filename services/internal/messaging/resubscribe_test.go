package messaging_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// TestConsumerOutlivesItsQueue: when its queue is deleted under it, a consumer declares
// the topology again and resumes; while it cannot consume, it retries with growing pauses
// and a warning for each, not a flood.
func TestConsumerOutlivesItsQueue(t *testing.T) {
	t.Run("queue deleted", func(t *testing.T) {
		outlivesDeletion(t, func(ch *amqp.Channel) error {
			_, err := ch.QueueDelete(workQueue.Name, false, false, false)
			return err
		})
	})

	t.Run("queue cannot be declared", func(t *testing.T) {
		var logs testproc.Buffer
		b := connectLogging(t, testenv.RabbitMQ(t), &logs)
		// A queue outside the topology: declaring the topology does not bring it.
		c := b.Consume(messaging.ConsumerConfig{Queue: "test.absent", Handler: newRecorder().handle})
		defer func() { _ = c.Stop(context.Background()) }()
		const watch = 2 * time.Second
		time.Sleep(watch)
		// Pauses of 100 ms growing fourfold: attempts at 0, 0.1 s, 0.5 s, 2.1 s. A
		// fixed 100 ms pause made twenty.
		if n := strings.Count(logs.String(), "level=WARN"); n < 1 || n > 4 {
			t.Errorf("%d warnings in %s, want 1 to 4:\n%s", n, watch, logs.String())
		}
		// Its readiness says so, for the service's /readyz.
		if err := c.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), "queue test.absent not consumed") ||
			!strings.Contains(err.Error(), "NOT_FOUND") {
			t.Errorf("Ready() = %v, want the queue not consumed, not found", err)
		}
	})

	t.Run("ready once subscribed", func(t *testing.T) {
		b := connect(t, testenv.RabbitMQ(t))
		c := b.Consume(messaging.ConsumerConfig{Queue: workQueue.Name, Handler: newRecorder().handle})
		defer func() { _ = c.Stop(context.Background()) }()
		eventually(t, "consumer ready", func() bool { return c.Ready(context.Background()) == nil })
	})
}

// channel opens a channel to the broker at url; closeConn closes its connection.
func channel(t *testing.T, url string) (ch *amqp.Channel, closeConn func()) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	ch, err = conn.Channel()
	if err != nil {
		_ = conn.Close()
		t.Fatal(err)
	}
	return ch, func() { _ = conn.Close() }
}

// TestPublisherOutlivesItsExchange: when the exchange is deleted under a running service
// (which drops its bindings too), the next publish finds it missing and the topology is
// declared again, exchange and bindings: messages are routed to the consumer once more,
// without waiting for a new connection.
func TestPublisherOutlivesItsExchange(t *testing.T) {
	outlivesDeletion(t, func(ch *amqp.Channel) error { return ch.ExchangeDelete(messaging.Exchange, false, false) })
}

// outlivesDeletion consumes the work queue and publishes to it, deletes part of the
// topology from another connection with del, and waits until a message published after
// the deletion is routed (mandatory) and handled.
func outlivesDeletion(t *testing.T, del func(*amqp.Channel) error) {
	t.Helper()
	url := testenv.RabbitMQ(t)
	rec := newRecorder()
	p := consumeWorkQueue(t, connect(t, url), rec)
	publish(t, p, "before", "work.done")
	eventually(t, "first message", func() bool { return rec.storedCount("before") == 1 })

	ch, closeConn := channel(t, url)
	if err := del(ch); err != nil {
		t.Fatal(err)
	}
	closeConn()
	eventually(t, "topology declared again", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return p.Publish(ctx, messaging.Message{ID: "after", Type: "work.done", Body: []byte(`{}`), Mandatory: true}) == nil
	})
	eventually(t, "message after the deletion handled", func() bool { return rec.storedCount("after") == 1 })
}

// TestBindingsComeBack: when a queue loses its binding under a running service (the
// binding removed, or the queue deleted and declared again by someone else without it),
// the topology is declared again, bindings included: events are routed to the queue once
// more instead of being returned or dropped for as long as the service stays connected.
func TestBindingsComeBack(t *testing.T) {
	// A publish returned unroutable declares the topology before the next one.
	t.Run("binding removed, publisher", func(t *testing.T) {
		outlivesDeletion(t, func(ch *amqp.Channel) error {
			return ch.QueueUnbind(workQueue.Name, "work.*", messaging.Exchange, nil)
		})
	})

	// A consumer whose subscription the broker cancelled declares the topology before it
	// subscribes again; the messages here are published by another client, not mandatory.
	t.Run("queue declared again without its binding, consumer", func(t *testing.T) {
		url := testenv.RabbitMQ(t)
		// A pause before subscribing again long enough for the queue to be declared
		// again meanwhile (else the consumer finds it missing, and declares it itself).
		b := messaging.Connect(messaging.Config{URL: url, Name: t.Name(), ReconnectDelay: 2 * time.Second,
			Topology: messaging.Topology{Queues: []messaging.Queue{workQueue}}})
		t.Cleanup(b.Close)
		rec := newRecorder()
		c := b.Consume(messaging.ConsumerConfig{Queue: workQueue.Name, Handler: rec.handle})
		defer func() { _ = c.Stop(context.Background()) }()
		eventually(t, "consumer ready", func() bool { return c.Ready(context.Background()) == nil })

		ch, closeConn := channel(t, url)
		defer closeConn()
		if _, err := ch.QueueDelete(workQueue.Name, false, false, false); err != nil {
			t.Fatal(err)
		}
		// Once the broker has cancelled the subscription (RabbitMQ may not, for a quorum
		// queue declared again within milliseconds of its deletion).
		eventually(t, "subscription cancelled", func() bool { return c.Ready(context.Background()) != nil })
		args := amqp.Table{
			amqp.QueueTypeArg:           amqp.QueueTypeQuorum,
			"x-delivery-limit":          int64(workQueue.DeliveryLimit),
			"x-dead-letter-exchange":    messaging.DeadLetterExchange,
			"x-dead-letter-routing-key": workQueue.Name,
		}
		if _, err := ch.QueueDeclare(workQueue.Name, true, false, false, false, args); err != nil {
			t.Fatal(err)
		}
		eventually(t, "consumer subscribed again", func() bool { return c.Ready(context.Background()) == nil })
		handled := func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			return len(rec.stored) > 0
		}
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; !handled(); i++ {
			if time.Now().After(deadline) {
				t.Fatal("no message routed to the queue, declared again without its binding, that the consumer subscribed to again")
			}
			err := ch.PublishWithContext(context.Background(), messaging.Exchange, "work.done", false, false,
				amqp.Publishing{MessageId: fmt.Sprintf("m%d", i), Type: "work.done", Body: []byte(`{}`)})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// TestConsumerLeftOnAQueueDeclaredAgain: a queue deleted and declared again at once, with
// its arguments and binding, by someone else. RabbitMQ (3.10) may then never cancel the
// consumer, which stays on the new queue: the broker delivers to it what this client never
// receives. A subscription idle for IdleResubscribe with nothing in hand is made again, its
// old channel closed, and what the broker held for it goes back to the queue.
func TestConsumerLeftOnAQueueDeclaredAgain(t *testing.T) {
	url := testenv.RabbitMQ(t)
	b := connect(t, url)
	rec := newRecorder()
	p := messaging.NewPublisher(b)
	t.Cleanup(p.Close)
	const idle = 2 * time.Second
	c := b.Consume(messaging.ConsumerConfig{Queue: workQueue.Name, Handler: rec.handle, IdleResubscribe: idle})
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	publish(t, p, "before", "work.done")
	eventually(t, "first message", func() bool { return rec.storedCount("before") == 1 })

	for round := range 3 { // the broker cancels the consumer some of the time
		ch, closeConn := channel(t, url)
		if _, err := ch.QueueDelete(workQueue.Name, false, false, false); err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare(workQueue.Name, true, false, false, false, amqp.Table{
			amqp.QueueTypeArg: amqp.QueueTypeQuorum, "x-delivery-limit": int64(workQueue.DeliveryLimit),
			"x-dead-letter-exchange": messaging.DeadLetterExchange, "x-dead-letter-routing-key": workQueue.Name,
		}); err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(workQueue.Name, "work.*", messaging.Exchange, false, nil); err != nil {
			t.Fatal(err)
		}
		closeConn()
		id := fmt.Sprintf("after-%d", round)
		publish(t, p, id, "work.done")
		deadline := time.Now().Add(idle + 5*time.Second)
		for rec.storedCount(id) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: message on the queue declared again not handled within %s", round, idle+5*time.Second)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

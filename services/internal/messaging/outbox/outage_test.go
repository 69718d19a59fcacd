package outbox_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging/outbox"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// TestRetryAfterAnOutageComesEverySecond: a scan whose publish waited out a broker outage
// is not taken for a slow scan. When that publish then fails (here: no queue bound for
// the event yet), the event goes out at the next retry, every interval, not after five
// times the outage.
func TestRetryAfterAnOutageComesEverySecond(t *testing.T) {
	ctx := context.Background()
	node := testenv.NewRabbitMQNode(t)
	b := messaging.Connect(messaging.Config{URL: node.URL(), Name: t.Name(), ReconnectDelay: 100 * time.Millisecond})
	t.Cleanup(b.Close)
	pub := messaging.NewPublisher(b)
	t.Cleanup(pub.Close)
	readyCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := b.WaitReady(readyCtx); err != nil {
		t.Fatal(err)
	}

	if err := node.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	coll := testenv.MongoDB(t).Collection("things")
	e, _ := outbox.NewEvent(ctx, "thing.created", map[string]int{"n": 1}, true)
	if _, err := coll.InsertOne(ctx, doc{ID: "a", Outbox: []outbox.Event{e}, OutboxPending: true}); err != nil {
		t.Fatal(err)
	}
	var logs testproc.Buffer
	var locks mongodb.KeyedMutex
	relay := outbox.NewRelay(coll, pub, &locks, nil, slog.New(slog.NewTextHandler(&logs, nil)), time.Second)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); relay.Run(runCtx) }()
	defer func() { stop(); <-done }()

	// The start's scan publishes into the outage and waits for the broker.
	const outage = 8 * time.Second
	time.Sleep(outage)
	if err := node.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); !strings.Contains(logs.String(), "no queue bound"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the publish after the outage did not fail as unroutable:\n%s", logs.String())
		}
	}

	// The queue comes: the next retry delivers the event.
	ch, closeConn := amqpChannel(t, node.URL())
	if _, err := ch.QueueDeclare("test.things", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("test.things", "thing.created", messaging.Exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	closeConn()
	bound := time.Now()
	for testenv.RabbitMQQueueDepth(t, node.URL(), "test.things") == 0 {
		if time.Since(bound) > 4*outage {
			t.Fatalf("event not sent %s after its queue was bound", time.Since(bound).Round(time.Second))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d := time.Since(bound); d > outage/2 {
		t.Errorf("event sent %s after its queue was bound, want within a few retries of 1s (the outage lasted over %s)",
			d.Round(100*time.Millisecond), outage)
	}
	var got doc
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Decode(&got); err != nil {
			t.Fatal(err)
		}
		if !got.OutboxPending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("published event not removed from its document")
		}
	}
}

// amqpChannel opens a channel to the broker at url, beside the relay's connection;
// closeConn closes its connection.
func amqpChannel(t *testing.T, url string) (ch *amqp.Channel, closeConn func()) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	if ch, err = conn.Channel(); err != nil {
		_ = conn.Close()
		t.Fatal(err)
	}
	return ch, func() { _ = conn.Close() }
}

package payment_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/payment/payment"
)

// TestDrainsDuringAMemoryAlarm: while RabbitMQ has a memory alarm it blocks every
// connection that publishes. The service's results then wait in its outbox, but its
// consumer, on a connection of its own, goes on charging the orders waiting in its queue:
// a consumer on the publishing connection would stop with it, and the queue it no longer
// drains can be what holds the broker's memory up.
func TestDrainsDuringAMemoryAlarm(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	node := testenv.NewRabbitMQNode(t)
	url := node.URL()
	db := testenv.MongoDB(t)

	// The order service's side: orders waiting for their payment.
	b := messaging.Connect(messaging.Config{URL: url, Name: "orders", Topology: messaging.ShopTopology})
	defer b.Close()
	pub := messaging.NewPublisher(b)
	defer pub.Close()
	const orders = 200
	for i := range orders {
		body, err := json.Marshal(map[string]any{"orderId": bson.NewObjectID().Hex(), "totalCents": 100 + i, "currency": "USD"})
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, messaging.Message{ID: bson.NewObjectID().Hex(), Type: messaging.OrderCreated, Body: body, Mandatory: true}); err != nil {
			t.Fatal(err)
		}
	}

	if err := node.Ctl(ctx, "set_vm_memory_high_watermark", "absolute", "10MB"); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = node.Ctl(context.Background(), "set_vm_memory_high_watermark", "0.4") }()

	app, err := payment.New(ctx, payment.Config{Broker: messaging.Settings{URL: url}, LimitCents: 100000, Prefetch: 16}, db, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = app.Close(ctx)
	}()

	payments := db.Collection("payments")
	deadline := time.Now().Add(time.Minute)
	for {
		n, err := payments.CountDocuments(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		if n == orders {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d orders charged after a minute of the alarm; %d still in the queue", n, orders,
				testenv.RabbitMQQueueDepth(t, url, messaging.PaymentOrderCreated.Name))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The results, blocked, wait in the outbox; they go once the alarm is over.
	if err := node.Ctl(ctx, "set_vm_memory_high_watermark", "0.4"); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(time.Minute)
	for {
		n, err := payments.CountDocuments(ctx, bson.D{{Key: "outboxPending", Value: true}})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d results still unsent a minute after the alarm", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

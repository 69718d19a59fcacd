package payment

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging/outbox"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// notifyNobody stands for the relay of a process that is about to die: it never runs.
type notifyNobody struct{}

func (notifyNobody) Notify(any, ...outbox.Event) {}

// TestCrashBetweenStoreAndAck: a process stores the payment (and its outbox event) and
// dies before it acknowledges order.created or relays the event. The restarted service
// gets the delivery again and charges nothing twice; the stored event goes out once.
func TestCrashBetweenStoreAndAck(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	url, db := testenv.RabbitMQ(t), testenv.MongoDB(t)
	st, err := newStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}

	// The first process: its consumer stores the effect, then the process dies.
	first := messaging.Connect(messaging.Config{URL: url, Name: "payment-1", Topology: messaging.ShopTopology})
	c := &charger{store: st, provider: provider{limitCents: 100000}, relay: notifyNobody{}, log: logging.Discard()}
	stored := make(chan struct{})
	consumer := first.Consume(messaging.ConsumerConfig{Queue: messaging.PaymentOrderCreated.Name, Handler: func(ctx context.Context, d messaging.Delivery) error {
		if err := c.handleOrderCreated(ctx, d); err != nil {
			return err
		}
		first.Close() // the connection dies with the process: no ack is ever sent
		close(stored)
		return nil
	}})
	if err := first.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	orderID := bson.NewObjectID().Hex()
	pubBroker := messaging.Connect(messaging.Config{URL: url, Name: "orders", Topology: messaging.ShopTopology})
	defer pubBroker.Close()
	pub := messaging.NewPublisher(pubBroker)
	defer pub.Close()
	body, _ := json.Marshal(map[string]any{"orderId": orderID, "totalCents": 4200, "currency": "USD"})
	if err := pub.Publish(ctx, messaging.Message{ID: "evt-1", Type: messaging.OrderCreated, Body: body, Mandatory: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stored:
	case <-ctx.Done():
		t.Fatal("the first process never handled the order")
	}
	_ = consumer.Stop(ctx)
	// Unacknowledged, the delivery is back in the queue for the next process.
	for testenv.RabbitMQQueueDepth(t, url, messaging.PaymentOrderCreated.Name) != 1 {
		if ctx.Err() != nil {
			t.Fatal("order.created was not requeued after the crash")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The restarted service.
	app, err := New(ctx, Config{Broker: messaging.Settings{URL: url}, LimitCents: 100000, Prefetch: 4}, db, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = app.Close(context.Background()) }()

	var results []string
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		for _, d := range testenv.RabbitMQTake(t, url, messaging.OrderPaymentResults.Name) {
			results = append(results, d.MessageId)
		}
		depth := testenv.RabbitMQQueueDepth(t, url, messaging.PaymentOrderCreated.Name)
		if len(results) >= 1 && depth == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Give a wrongly made second result the time to show up.
	time.Sleep(500 * time.Millisecond)
	for _, d := range testenv.RabbitMQTake(t, url, messaging.OrderPaymentResults.Name) {
		results = append(results, d.MessageId)
	}
	n, err := st.payments.CountDocuments(ctx, bson.D{{Key: "orderId", Value: orderID}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the crash: payments=%d results published=%d", n, len(results))
	if n != 1 || len(results) != 1 {
		t.Fatalf("payments=%d results=%d, want exactly one of each", n, len(results))
	}
}

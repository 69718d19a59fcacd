package outbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging/outbox"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// TestWorkerCloseSendsWhatTheLastHandlersWrote: the events that the deliveries in
// flight at shutdown write leave before Close returns, and are removed from their
// documents, instead of waiting for the next start.
func TestWorkerCloseSendsWhatTheLastHandlersWrote(t *testing.T) {
	ctx := context.Background()
	url := testenv.RabbitMQ(t)
	coll := testenv.MongoDB(t).Collection("things")
	var locks mongodb.KeyedMutex
	const n = 40
	w := outbox.NewWorker(outbox.WorkerConfig{
		Broker: messaging.Settings{URL: url}, Name: t.Name(), Outbox: coll, Locks: &locks,
		RemovalDelay: time.Minute, // removed by Close, not by the delay
		Queue:        messaging.PaymentOrderCreated.Name, Prefetch: n, Logger: logging.Discard(),
	})
	release := make(chan struct{})
	started := make(chan struct{}, n)
	w.Start(func(ctx context.Context, d messaging.Delivery) error {
		started <- struct{}{}
		<-release
		ev, err := outbox.NewEvent(ctx, messaging.PaymentSucceeded, map[string]string{"order": d.ID}, true)
		if err != nil {
			return err
		}
		err = locks.Serialize(coll, d.ID, func() error {
			_, err := coll.InsertOne(ctx, doc{ID: d.ID, Outbox: []outbox.Event{ev}, OutboxPending: true})
			return err
		})
		if err == nil {
			w.Notify(d.ID, ev)
		}
		return err
	})

	orders := messaging.Connect(messaging.Config{URL: url, Name: "orders", Topology: messaging.ShopTopology})
	defer orders.Close()
	p := messaging.NewPublisher(orders)
	defer p.Close()
	for i := range n {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := p.Publish(pctx, messaging.Message{ID: fmt.Sprintf("order-%d", i), Type: messaging.OrderCreated, Body: []byte(`{}`), Mandatory: true})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		<-started
	}

	closed := make(chan error)
	closeCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	go func() { closed <- w.Close(closeCtx) }()
	time.Sleep(100 * time.Millisecond) // Close waits for the handlers now
	close(release)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}

	if got := len(testenv.RabbitMQTake(t, url, messaging.OrderPaymentResults.Name)); got != n {
		t.Errorf("%d events sent by Close, want %d", got, n)
	}
	left, err := coll.CountDocuments(ctx, bson.D{{Key: outbox.PendingField, Value: true}})
	if err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d documents still hold sent events", left)
	}
}

package order_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging/outbox"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
)

// TestSweepSettlesOrdersWhoseResultWasLost: the payment results of two orders, one paid
// and one declined, are lost on their way to the order service (taken off its queue while
// it is stopped, as the broker's delivery limit dead-letters them). The orders stay
// PENDING until the sweep asks the payment service for their payments and settles them:
// PAID, and CANCELLED with its stock back, once. Every order younger than the sweep's age
// stays PENDING. A third order's order.created is lost on its way to the payment service:
// it stays PENDING until it is older than the age to send it again, then it is sent
// again, charged once, and PAID.
func TestSweepSettlesOrdersWhoseResultWasLost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	url := testenv.RabbitMQ(t)
	updates := watchOrderUpdated(t, url)
	shop, dbs := startShopWithDatabases(t, url)
	user, _ := shop.CreateUser(ctx, "Lost Results", "lost@example.com")
	cheap, err := shop.CreateProduct(ctx, "cheap", 1000, 10)
	if err != nil {
		t.Fatal(err)
	}
	dear, err := shop.CreateProduct(ctx, "dear", 150000, 10)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// queued waits until queue holds n messages ready.
	queued := func(queue string, n int) {
		t.Helper()
		for testenv.RabbitMQQueueDepth(t, url, queue) != n {
			if ctx.Err() != nil {
				t.Fatalf("queue %s never held %d messages", queue, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// relayed waits until the broker has confirmed every event of the orders (their
	// outboxes are empty), so that the order service, started again, sends none again.
	relayed := func() {
		t.Helper()
		for {
			n, err := dbs["orders"].Collection("orders").CountDocuments(ctx, bson.D{{Key: outbox.PendingField, Value: true}})
			must(err)
			if n == 0 {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("%d orders still hold events", n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// The payment service stopped, order.created waits in its queue.
	must(shop.StopPayment(ctx))
	paid, err := shop.PlaceOrder(ctx, user, cheap, 2)
	must(err)
	declined, err := shop.PlaceOrder(ctx, user, dear, 1)
	must(err)
	queued(messaging.PaymentOrderCreated.Name, 2)
	relayed()
	// The order service stopped, the payment service charges both and its results wait
	// in the order service's queue, from which they are lost.
	must(shop.StopOrder(ctx))
	must(shop.StartPayment(ctx))
	queued(messaging.OrderPaymentResults.Name, 2)
	if lost := testenv.RabbitMQTake(t, url, messaging.OrderPaymentResults.Name); len(lost) != 2 {
		t.Fatalf("took %d payment results off the queue, want 2", len(lost))
	}
	must(shop.StartOrder(ctx))
	must(shop.Order.WaitReady(ctx))
	// A third order, whose order.created is lost on its way to the payment service
	// (taken off its queue while it is stopped): it has no payment for it.
	must(shop.StopPayment(ctx))
	unpaid, err := shop.PlaceOrder(ctx, user, cheap, 1)
	must(err)
	queued(messaging.PaymentOrderCreated.Name, 1)
	relayed()
	if lost := testenv.RabbitMQTake(t, url, messaging.PaymentOrderCreated.Name); len(lost) != 1 {
		t.Fatalf("took %d order.created off the queue, want 1", len(lost))
	}
	must(shop.StartPayment(ctx))

	status := func(id string) order.Order {
		t.Helper()
		o, err := shop.GetOrder(ctx, id)
		must(err)
		return o
	}
	if n, err := shop.Order.SweepPending(ctx, time.Hour, time.Hour); err != nil || n != 0 {
		t.Fatalf("sweep of orders PENDING for an hour: %d settled, %v; want 0, nil", n, err)
	}
	for _, id := range []string{paid.ID.Hex(), declined.ID.Hex(), unpaid.ID.Hex()} {
		if o := status(id); o.Status != order.Pending {
			t.Fatalf("order %s is %s before the sweep, want PENDING (its result was lost)", id, o.Status)
		}
	}
	if n, err := shop.Order.SweepPending(ctx, 0, time.Hour); err != nil || n != 2 {
		t.Fatalf("sweep: %d settled, %v; want 2, nil", n, err)
	}
	if o := status(paid.ID.Hex()); o.Status != order.Paid {
		t.Errorf("order under the payment limit: %s, want PAID", o.Status)
	}
	if o := status(declined.ID.Hex()); o.Status != order.Cancelled || !strings.Contains(o.Reason, "exceeds the limit") {
		t.Errorf("order over the payment limit: %s %q, want CANCELLED, the provider's reason", o.Status, o.Reason)
	}
	if o := status(unpaid.ID.Hex()); o.Status != order.Pending {
		t.Errorf("order with no payment: %s, want PENDING", o.Status)
	}
	// PENDING with no payment for longer than resendAfter: its order.created is sent again,
	// and the payment service, which never had it, charges it.
	if n, err := shop.Order.SweepPending(ctx, 0, 0); err != nil || n != 0 {
		t.Fatalf("sweep that sends an order.created again: %d settled, %v; want 0, nil", n, err)
	}
	if o, err := shop.WaitSettled(ctx, unpaid.ID.Hex()); err != nil || o.Status != order.Paid {
		t.Fatalf("order whose order.created was lost, sent again: %s %v, want PAID", o.Status, err)
	}
	if ps, err := shop.Payments(ctx, unpaid.ID.Hex()); err != nil || len(ps) != 1 {
		t.Fatalf("payments of the order sent again: %d %v, want 1", len(ps), err)
	}
	for product, want := range map[string]int64{cheap: 10 - 2 - 1, dear: 10} {
		if stock, err := shop.Stock(ctx, product); err != nil || stock != want {
			t.Errorf("stock of %s: %d %v, want %d", product, stock, err, want)
		}
	}
	// Swept again, nothing changes: each order was announced once.
	if n, err := shop.Order.SweepPending(ctx, 0, 0); err != nil || n != 0 {
		t.Fatalf("second sweep: %d settled, %v; want 0, nil", n, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		u := updates()
		if len(u[paid.ID.Hex()]) == 1 && len(u[declined.ID.Hex()]) == 1 && len(u[unpaid.ID.Hex()]) == 1 {
			if got := u[paid.ID.Hex()][0].Status; got != order.Paid {
				t.Errorf("order.updated of the paid order: %s", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order.updated events %v, want one for each settled order", u)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

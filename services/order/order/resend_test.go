package order_test

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging/outbox"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
)

// TestOrderCreatedLostTwiceIsSentAgain: an order.created lost on its way to the payment
// service (dead-lettered by the delivery limit, a purged queue), and lost again once the
// sweep sent it again, is sent again by a later sweep: the order is charged and settled,
// not left PENDING, its stock held, for good.
func TestOrderCreatedLostTwiceIsSentAgain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	url := testenv.RabbitMQ(t)
	shop, dbs := startShopWithDatabases(t, url)
	user, _ := shop.CreateUser(ctx, "Lost Twice", "twice@example.com")
	cheap, err := shop.CreateProduct(ctx, "cheap", 1000, 10)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// The payment service's queue loses its binding to order.created to a queue of
	// someone else's (as a queue moved or purged, or messages dead-lettered by the delivery
	// limit): an order.created sent meanwhile is confirmed by the broker, and lost.
	conn, err := amqp.Dial(url)
	must(err)
	defer conn.Close()
	ch, err := conn.Channel()
	must(err)
	_, err = ch.QueueDeclare("test.elsewhere", false, false, false, false, nil)
	must(err)
	must(ch.QueueBind("test.elsewhere", messaging.OrderCreated, messaging.Exchange, false, nil))
	must(ch.QueueUnbind(messaging.PaymentOrderCreated.Name, messaging.OrderCreated, messaging.Exchange, nil))
	// elsewhere waits until n order.created went astray and the order's outbox is empty
	// (the broker confirmed them).
	elsewhere := func(n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			unsent, err := dbs["orders"].Collection("orders").CountDocuments(ctx, bson.D{{Key: outbox.PendingField, Value: true}})
			must(err)
			if unsent == 0 && testenv.RabbitMQQueueDepth(t, url, "test.elsewhere") == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("order.created never went astray %d times", n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	o, err := shop.PlaceOrder(ctx, user, cheap, 1)
	must(err)
	elsewhere(1) // lost once
	// The sweep sends it again (PENDING for longer than resendAfter, 0 here, with no
	// payment), and it is lost again.
	if _, err := shop.Order.SweepPending(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	elsewhere(2)
	// The copy the sweep sent carries the trace and the request id of the request that
	// placed the order, as the first did: the sweep has neither of its own.
	var heads []amqp.Table
	for range 2 {
		m, ok, err := ch.Get("test.elsewhere", true)
		must(err)
		if !ok {
			t.Fatal("an order.created that went astray is gone")
		}
		heads = append(heads, m.Headers)
	}
	for _, h := range []string{"x-request-id", "traceparent", "tracestate"} {
		if heads[0][h] != heads[1][h] {
			t.Errorf("%s: the sweep's copy carries %v, the placement's %v", h, heads[1][h], heads[0][h])
		}
	}
	if id, _ := heads[0]["x-request-id"].(string); id == "" {
		t.Errorf("the placement's order.created carries no request id: %v", heads[0])
	}
	// The binding comes back; the sweeps that follow find the order PENDING with no
	// payment, and still nothing under way.
	must(ch.QueueBind(messaging.PaymentOrderCreated.Name, messaging.OrderCreated, messaging.Exchange, false, nil))
	must(ch.QueueUnbind("test.elsewhere", messaging.OrderCreated, messaging.Exchange, nil))
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := shop.Order.SweepPending(ctx, 0, 0); err != nil {
			t.Fatal(err)
		}
		o, err := shop.GetOrder(ctx, o.ID.Hex())
		must(err)
		if o.Status == order.Paid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("order whose order.created was lost twice: %s 30 s on, want PAID", o.Status)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if ps, err := shop.Payments(ctx, o.ID.Hex()); err != nil || len(ps) != 1 {
		t.Fatalf("payments: %d %v, want 1", len(ps), err)
	}
}

package order_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
	"github.com/shopkeeper-dev/shopkeeper/services/order/shoptest"
)

// TestPaymentResultMustMatchTheOrder: a payment result settles an order only when its
// body agrees with its type (status SUCCEEDED for payment.succeeded, FAILED for
// payment.failed) and with the order (amountCents its totalCents, the same currency).
// One that does not is dead-lettered with an ERROR line, the order left PENDING. A valid
// result that contradicts how the order was settled changes nothing and is logged at
// ERROR.
func TestPaymentResultMustMatchTheOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	url := testenv.RabbitMQ(t)
	var logs testproc.Buffer
	shop, _ := startShopWithDatabases(t, url, func(o *shoptest.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	// No payment service: the results come from the test alone.
	if err := shop.Payment.Close(ctx); err != nil {
		t.Fatal(err)
	}
	user, _ := shop.CreateUser(ctx, "Grace Hopper", "grace@example.com")
	product, err := shop.CreateProduct(ctx, "cable", 300, 5)
	if err != nil {
		t.Fatal(err)
	}
	placed, err := shop.PlaceOrder(ctx, user, product, 2)
	if err != nil {
		t.Fatal(err)
	}
	id := placed.ID.Hex()

	b := messaging.Connect(messaging.Config{URL: url, Name: "results", Topology: messaging.ShopTopology})
	defer b.Close()
	pub := messaging.NewPublisher(b)
	defer pub.Close()
	n := 0
	traceparent := "" // of the results sent
	send := func(typ string, r order.PaymentResult) {
		t.Helper()
		body, _ := json.Marshal(r)
		n++
		m := messaging.Message{ID: fmt.Sprintf("result-%d", n), Type: typ, Body: body, Mandatory: true, Traceparent: traceparent}
		if err := pub.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
		for testenv.RabbitMQQueueDepth(t, url, messaging.OrderPaymentResults.Name) != 0 {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // handled by now
	}
	good := func(status string) order.PaymentResult {
		return order.PaymentResult{PaymentID: "p1", OrderID: id, AmountCents: placed.TotalCents, Currency: placed.Currency, Status: status}
	}
	status := func() order.Status {
		t.Helper()
		o, err := shop.GetOrder(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return o.Status
	}

	refused := []struct {
		name   string
		typ    string
		result order.PaymentResult
	}{
		{"succeeded, body FAILED", messaging.PaymentSucceeded, good("FAILED")},
		{"failed, body SUCCEEDED", messaging.PaymentFailed, good("SUCCEEDED")},
		{"another amount", messaging.PaymentSucceeded, func() order.PaymentResult {
			r := good("SUCCEEDED")
			r.AmountCents = 1
			return r
		}()},
		{"another currency", messaging.PaymentSucceeded, func() order.PaymentResult {
			r := good("SUCCEEDED")
			r.Currency = "XTS"
			return r
		}()},
	}
	for i, tt := range refused {
		before := strings.Count(logs.String(), "level=ERROR")
		send(tt.typ, tt.result)
		if s := status(); s != order.Pending {
			t.Errorf("%s: order %s, want PENDING", tt.name, s)
		}
		if dl := testenv.RabbitMQQueueDepth(t, url, messaging.OrderPaymentResults.DeadLetterQueue()); dl != i+1 {
			t.Errorf("%s: %d dead letters, want %d", tt.name, dl, i+1)
		}
		if strings.Count(logs.String(), "level=ERROR") == before {
			t.Errorf("%s: no ERROR line", tt.name)
		}
	}

	send(messaging.PaymentSucceeded, good("SUCCEEDED"))
	if s := status(); s != order.Paid {
		t.Fatalf("after a matching payment.succeeded: %s, want PAID\n%s", s, logs.String())
	}
	// A payment.failed of the same order, valid in itself, contradicts its settlement. Its
	// ERROR line names the trace of the result (its traceparent), as the consumer's own lines
	// do, which leads to the payment and the request that caused them.
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	traceparent = "00-" + traceID + "-b7ad6b7169203331-00"
	before := strings.Count(logs.String(), "level=ERROR")
	send(messaging.PaymentFailed, good("FAILED"))
	traceparent = ""
	if s := status(); s != order.Paid {
		t.Errorf("after a conflicting payment.failed: %s, want PAID", s)
	}
	if dl := testenv.RabbitMQQueueDepth(t, url, messaging.OrderPaymentResults.DeadLetterQueue()); dl != len(refused) {
		t.Errorf("%d dead letters, want %d (a valid result is acknowledged)", dl, len(refused))
	}
	if strings.Count(logs.String(), "level=ERROR") == before || !strings.Contains(logs.String(), id) {
		t.Errorf("no ERROR line naming the order for a result conflicting with its settlement:\n%s", logs.String())
	}
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, "contradicts") && !strings.Contains(l, "trace_id="+traceID) {
			t.Errorf("ERROR line for a conflicting result without its trace_id %s: %s", traceID, l)
		}
	}
	// The same result again is a duplicate, not a conflict.
	before = strings.Count(logs.String(), "level=ERROR")
	send(messaging.PaymentSucceeded, good("SUCCEEDED"))
	if strings.Count(logs.String(), "level=ERROR") != before {
		t.Errorf("ERROR line for a duplicate result:\n%s", logs.String())
	}
}

package payment_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// publish publishes m as an order.created.
func (e *env) publish(t *testing.T, m messaging.Message) {
	t.Helper()
	m.Type, m.Mandatory = messaging.OrderCreated, true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.orders.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// TestUnusableOrderCreatedIsDeadLettered: an order.created another publisher got wrong is
// charged nothing and dead-lettered: no total (it would have been a payment of 0, the order
// PAID), a null one, an order id the order service never gives out, or the same order's id in
// upper case (a second payment for one order).
func TestUnusableOrderCreatedIsDeadLettered(t *testing.T) {
	e := newEnv(t)
	orderID := bson.NewObjectID().Hex()
	e.orderCreated(t, "good", orderID, 500)
	if got := e.results(t, 1); len(got) != 1 {
		t.Fatalf("%d results for a good order.created, want 1", len(got))
	}
	bodies := []string{
		`{"orderId":"` + bson.NewObjectID().Hex() + `","currency":"USD"}`,
		`{"orderId":"` + bson.NewObjectID().Hex() + `","totalCents":null,"currency":"USD"}`,
		`{"orderId":"not-an-order-id","totalCents":500,"currency":"USD"}`,
		`{"orderId":"` + strings.ToUpper(orderID) + `","totalCents":500,"currency":"USD"}`,
		// A negative total is no charge the provider can make: the README dead-letters it.
		`{"orderId":"` + bson.NewObjectID().Hex() + `","totalCents":-500,"currency":"USD"}`,
	}
	for i, body := range bodies {
		e.publish(t, messaging.Message{ID: "bad-" + string(rune('a'+i)), Body: []byte(body)})
	}
	var dead int
	deadline := time.Now().Add(time.Minute)
	for dead < len(bodies) && time.Now().Before(deadline) {
		dead += len(testenv.RabbitMQTake(t, e.url, messaging.PaymentOrderCreated.DeadLetterQueue()))
		time.Sleep(50 * time.Millisecond)
	}
	if dead != len(bodies) {
		t.Errorf("%d of %d dead-lettered", dead, len(bodies))
	}
	if all := e.payments(t, ""); len(all) != 1 {
		t.Errorf("%d payments stored, want the good order's alone: %+v", len(all), all)
	}
	if got := e.results(t, 0); len(got) != 0 {
		t.Errorf("results published for unusable events: %+v", got)
	}
}

// TestResultCarriesATrace: a payment result carries a traceparent header, continuing the
// order.created's trace when it brought one, and a trace of its own when it did not.
func TestResultCarriesATrace(t *testing.T) {
	e := newEnv(t)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	withTrace, without := bson.NewObjectID().Hex(), bson.NewObjectID().Hex()
	for orderID, traceparent := range map[string]string{withTrace: "00-" + traceID + "-00f067aa0ba902b7-01", without: ""} {
		body := `{"orderId":"` + orderID + `","totalCents":100,"currency":"USD"}`
		e.publish(t, messaging.Message{ID: "e-" + orderID, Body: []byte(body), Traceparent: traceparent})
	}
	traces := map[string]string{} // by order id
	deadline := time.Now().Add(time.Minute)
	for len(traces) < 2 && time.Now().Before(deadline) {
		for _, d := range testenv.RabbitMQTake(t, e.url, messaging.OrderPaymentResults.Name) {
			var r struct{ OrderID string }
			_ = json.Unmarshal(d.Body, &r)
			traces[r.OrderID], _ = d.Headers["traceparent"].(string)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tp := traces[withTrace]; !strings.HasPrefix(tp, "00-"+traceID+"-") {
		t.Errorf("result of the traced order: traceparent %q, want trace %s continued", tp, traceID)
	}
	if tp := traces[without]; len(strings.Split(tp, "-")) != 4 || strings.Contains(tp, traceID) {
		t.Errorf("result of the untraced order: traceparent %q, want one of its own", tp)
	}
}

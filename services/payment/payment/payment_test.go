package payment_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apitest"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/payment/payment"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// env is a payment service on a fresh database and vhost, with a publisher standing in
// for the order service.
type env struct {
	url    string
	app    *payment.App
	api    *apitest.Client
	orders *messaging.Publisher
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := testenv.RabbitMQ(t)
	db := testenv.MongoDB(t)
	cfg := payment.Config{Broker: messaging.Settings{URL: url}, LimitCents: 100000, Prefetch: 16}
	app, err := payment.New(ctx, cfg, db, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Close(context.Background()) })
	if err := app.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	b := messaging.Connect(messaging.Config{URL: url, Name: "test-orders", Topology: messaging.ShopTopology})
	t.Cleanup(b.Close)
	pub := messaging.NewPublisher(b)
	t.Cleanup(pub.Close)
	_ = config.Base{}
	return &env{url: url, app: app, api: apitest.New(t, "../openapi.yaml", app.Handler(metrics.NewRegistry())), orders: pub}
}

func (e *env) orderCreated(t *testing.T, eventID, orderID string, total int64) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"orderId": orderID, "userId": "u1", "totalCents": total, "currency": "USD",
		"items": []any{map[string]any{"productId": "p1", "quantity": 1, "unitPriceCents": total}}})
	e.publish(t, messaging.Message{ID: eventID, Body: body})
}

func (e *env) payments(t *testing.T, orderID string) []payment.Payment {
	t.Helper()
	target := "/payments" // every payment
	if orderID != "" {
		target += "?orderId=" + orderID
	}
	res := e.api.Request(t, "GET", target, nil)
	if res.Status != 200 {
		t.Fatalf("list payments: %d %s", res.Status, res.Body)
	}
	var page mongodb.Page[payment.Payment]
	res.JSON(t, &page)
	return page.Items
}

// results waits until n payment results are in the order service's queue and takes them;
// with n = 0 it takes what is there, once (a result that should not be).
func (e *env) results(t *testing.T, n int) []payment.ResultEvent {
	t.Helper()
	var out []payment.ResultEvent
	deadline := time.Now().Add(time.Minute)
	for looked := false; !looked || (len(out) < n && time.Now().Before(deadline)); looked = true {
		for _, d := range testenv.RabbitMQTake(t, e.url, messaging.OrderPaymentResults.Name) {
			var r payment.ResultEvent
			if err := json.Unmarshal(d.Body, &r); err != nil {
				t.Fatalf("result %s: %v", d.Body, err)
			}
			if d.Type != "payment."+map[payment.Status]string{payment.Succeeded: "succeeded", payment.Failed: "failed"}[r.Status] ||
				d.MessageId == "" || d.AppId != "payment" {
				t.Errorf("result of type %q id %q app_id %q for status %s, want app_id payment", d.Type, d.MessageId, d.AppId, r.Status)
			}
			out = append(out, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return out
}

func TestChargesEachOrderOnce(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name       string
		total      int64
		deliveries []string // event ids delivered for the order
		want       payment.Status
	}{
		{name: "approved", total: 5000, deliveries: []string{"e1"}, want: payment.Succeeded},
		{name: "at the limit", total: 100000, deliveries: []string{"e2"}, want: payment.Succeeded},
		{name: "declined above the limit", total: 100001, deliveries: []string{"e3"}, want: payment.Failed},
		{name: "same event delivered twice", total: 700, deliveries: []string{"e4", "e4"}, want: payment.Succeeded},
		{name: "event published twice under two ids", total: 800, deliveries: []string{"e5", "e6", "e5"}, want: payment.Succeeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orderID := bson.NewObjectID().Hex()
			for _, id := range tt.deliveries {
				e.orderCreated(t, id, orderID, tt.total)
			}
			results := e.results(t, 1)
			// Let every duplicate be handled before counting.
			time.Sleep(300 * time.Millisecond)
			results = append(results, e.results(t, 0)...)
			if len(results) != 1 {
				t.Fatalf("%d payment results published, want 1: %+v", len(results), results)
			}
			if r := results[0]; r.OrderID != orderID || r.Status != tt.want || r.AmountCents != tt.total {
				t.Fatalf("result %+v, want order %s status %s amount %d", r, orderID, tt.want, tt.total)
			}
			ps := e.payments(t, orderID)
			if len(ps) != 1 {
				t.Fatalf("%d payments for the order, want 1", len(ps))
			}
			if ps[0].Status != tt.want || (tt.want == payment.Failed) != (ps[0].Reason != "") {
				t.Fatalf("payment %+v, want status %s with a reason only when failed", ps[0], tt.want)
			}
			res := e.api.Request(t, "GET", "/payments/"+ps[0].ID.Hex(), nil)
			var got payment.Payment
			res.JSON(t, &got)
			if res.Status != 200 || got.ID != ps[0].ID || got.OrderID != orderID {
				t.Fatalf("GET /payments/{id}: %d %+v", res.Status, got)
			}
		})
	}
}

func TestMalformedOrderCreatedIsDeadLettered(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.orders.Publish(ctx, messaging.Message{ID: "bad", Type: messaging.OrderCreated, Body: []byte(`{"orderId": 42`), Mandatory: true}); err != nil {
		t.Fatal(err)
	}
	orderID := bson.NewObjectID().Hex()
	e.orderCreated(t, "good", orderID, 100)
	if r := e.results(t, 1); len(r) != 1 || r[0].OrderID != orderID {
		t.Fatalf("the consumer did not go on after the bad message: %+v", r)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		dl := testenv.RabbitMQTake(t, e.url, messaging.PaymentOrderCreated.DeadLetterQueue())
		if len(dl) == 1 && dl[0].MessageId == "bad" {
			break
		}
		if len(dl) > 0 || time.Now().After(deadline) {
			t.Fatalf("dead letters: %d, want the malformed message", len(dl))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPaymentsAPI(t *testing.T) {
	e := newEnv(t)
	for i := range 3 {
		e.orderCreated(t, fmt.Sprintf("e%d", i), bson.NewObjectID().Hex(), int64(100*(i+1)))
	}
	e.results(t, 3)
	tests := []struct {
		path   string
		status int
	}{
		{"/payments/" + bson.NewObjectID().Hex(), 404},
		{"/payments/not-an-id", 404},
		{"/payments?limit=0", 400},
		{"/payments?limit=101", 400},
		{"/payments?after=nope", 400},
		{"/payments?after=", 200}, // the first page, as the openapi document says
		{"/payments?orderId=" + bson.NewObjectID().Hex(), 200},
		{"/payments?orderId=" + bson.NewObjectID().Hex() + "&orderId=" + bson.NewObjectID().Hex(), 400},
		{"/payments?unknown=1&unknown=2", 200},
		// Given empty, it would list every order's payments.
		{"/payments?orderId=&limit=100", 400},
		{"/payments?orderId", 400},
		// Dropped by url.URL.Query, these would list every order's payments.
		{"/payments?orderId=" + bson.NewObjectID().Hex() + "%&limit=100", 400},
		{"/payments?orderId=" + bson.NewObjectID().Hex() + ";limit=100", 400},
		// The probes and metrics are the API's too: the document says what /readyz answers.
		{"/healthz", 200},
		{"/readyz", 200},
		{"/metrics", 200},
	}
	for _, tt := range tests {
		if res := e.api.Request(t, "GET", tt.path, nil); res.Status != tt.status {
			t.Errorf("GET %s: %d, want %d", tt.path, res.Status, tt.status)
		}
	}
	if res := e.api.Request(t, "POST", "/payments", `{}`); res.Status != 405 {
		t.Errorf("POST /payments: %d, want 405", res.Status)
	}
	// Pages of 2: three payments in two pages, in creation order.
	res := e.api.Request(t, "GET", "/payments?limit=2", nil)
	var first mongodb.Page[payment.Payment]
	res.JSON(t, &first)
	if len(first.Items) != 2 || first.Next == "" {
		t.Fatalf("first page: %d items, next %q", len(first.Items), first.Next)
	}
	res = e.api.Request(t, "GET", "/payments?limit=2&after="+first.Next, nil)
	var second mongodb.Page[payment.Payment]
	res.JSON(t, &second)
	if len(second.Items) != 1 || second.Next != "" {
		t.Fatalf("second page: %d items, next %q", len(second.Items), second.Next)
	}
}

// TestPaymentsOfOrders: GET /internal/payments answers the payments of the orders named,
// leaving out those with none, and refuses a list it cannot take.
func TestPaymentsOfOrders(t *testing.T) {
	e := newEnv(t)
	orders := []string{bson.NewObjectID().Hex(), bson.NewObjectID().Hex(), bson.NewObjectID().Hex()}
	for i, id := range orders {
		e.orderCreated(t, fmt.Sprintf("e%d", i), id, int64(100*(i+1)))
	}
	e.results(t, 3)
	none := bson.NewObjectID().Hex()
	res := e.api.Request(t, "GET", "/internal/payments?orderIds="+orders[2]+","+none+","+orders[0], nil)
	var got struct{ Items []payment.Payment }
	res.JSON(t, &got)
	if res.Status != 200 || len(got.Items) != 2 || got.Items[0].OrderID != orders[0] || got.Items[1].OrderID != orders[2] ||
		got.Items[0].AmountCents != 100 || got.Items[1].AmountCents != 300 {
		t.Fatalf("payments of two orders and one without: %d %s", res.Status, res.Body)
	}

	hundred := make([]string, payment.MaxOrderIDs)
	for i := range hundred {
		hundred[i] = bson.NewObjectID().Hex()
	}
	tests := []struct {
		query  string
		status int
		says   string
	}{
		{"orderIds=" + strings.Join(hundred, ","), 200, `"items":[]`},
		{"orderIds=" + strings.Join(hundred, ",") + "," + none, 400, "101 order ids: at most 100"},
		{"", 400, "is required"},
		{"orderIds=", 400, "is required"},
		{"orderIds=" + none + ",", 400, `\"\" is not an order id`},
		{"orderIds=" + strings.ToUpper(none), 400, "is not an order id"},
		{"orderIds=" + none + "&orderIds=" + none, 400, "must be given once"},
		{"orderIds=" + none + "%", 400, "orderIds"},
	}
	for _, tt := range tests {
		res := e.api.Request(t, "GET", "/internal/payments?"+tt.query, nil)
		if res.Status != tt.status || !strings.Contains(string(res.Body), tt.says) {
			t.Errorf("GET /internal/payments?%.60s: %d %s, want %d saying %s", tt.query, res.Status, res.Body, tt.status, tt.says)
		}
	}
}

// TestCurrencyDefaultsToUSD: an order.created with no currency, or an empty one, is charged
// in USD, as the README says, and the payment and its result say so.
func TestCurrencyDefaultsToUSD(t *testing.T) {
	e := newEnv(t)
	orders := map[string]string{
		bson.NewObjectID().Hex(): `"totalCents":250`,
		bson.NewObjectID().Hex(): `"totalCents":250,"currency":""`,
	}
	for orderID, rest := range orders {
		e.publish(t, messaging.Message{ID: "e-" + orderID, Body: []byte(`{"orderId":"` + orderID + `",` + rest + `}`)})
	}
	results := e.results(t, len(orders))
	if len(results) != len(orders) {
		t.Fatalf("%d results, want %d", len(results), len(orders))
	}
	for _, r := range results {
		if _, ok := orders[r.OrderID]; !ok || r.Currency != "USD" || r.AmountCents != 250 || r.Status != payment.Succeeded {
			t.Errorf("result %+v, want 250 USD approved", r)
		}
	}
	for orderID := range orders {
		if ps := e.payments(t, orderID); len(ps) != 1 || ps[0].Currency != "USD" {
			t.Errorf("payments of order %s: %+v, want one in USD", orderID, ps)
		}
	}
}

package order_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apitest"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
)

// TestLostReservationAnswerSaysTheStockIsStillHeld: the product service makes a
// reservation but its answer is lost, and it refuses to give the stock back. Nothing was
// placed, but the stock is still held and the Idempotency-Key still names the attempt
// (until the sweep gives the stock back): the answer is the 503 the openapi document keeps
// for that, "nothing was placed, but its stock is still being given back", not one that
// says the key is freed, after which a retry without the key finds its own stock short.
func TestLostReservationAnswerSaysTheStockIsStillHeld(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var failing atomic.Bool
	shop := startShopWithFailingReservations(t, &failing)
	user, product := userAndProduct(ctx, t, shop, "lamp", 1500, 2)

	failing.Store(true)
	status, answer, err := shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", orderOf(user, product, 2), nil, "Idempotency-Key", "k")
	if err != nil || status != http.StatusServiceUnavailable || !strings.Contains(string(answer), "its stock is still being given back") {
		t.Errorf("lost answer, release refused: %d %s (%v), want 503 saying the stock is still being given back", status, answer, err)
	}
	failing.Store(false)
	// What the answer must warn of: the stock is the abandoned attempt's until the sweep.
	status, answer, _ = shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", orderOf(user, product, 1), nil)
	t.Logf("a new order of 1 without a key: %d %s", status, answer)
}

// TestProductServiceDownFreesTheKey: a reservation that could not be sent (the product
// service refuses connections) took nothing: the 503 "product service unavailable" frees
// the Idempotency-Key, as the openapi document says, and leaves no placement for the sweep.
func TestProductServiceDownFreesTheKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	amqp := testenv.RabbitMQ(t)
	shop := startShop(t, amqp)
	user, product := userAndProduct(ctx, t, shop, "lamp", 1500, 2)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	_ = ln.Close() // nothing listens there
	app, err := order.New(ctx, order.Config{Broker: messaging.Settings{URL: amqp}, UserServiceURL: shop.UserURL,
		ProductServiceURL: down, PaymentServiceURL: shop.PaymentURL, PeerTimeout: 2 * time.Second,
		PlacementTimeout: 4 * time.Second, PendingCheckAfter: time.Minute, Prefetch: 8}, testenv.MongoDB(t), logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Close(context.Background()) })
	api := apitest.New(t, "../openapi.yaml", app.Handler(metrics.NewRegistry()))

	res := api.Request(t, "POST", "/orders", orderOf(user, product, 2), "Idempotency-Key", "k")
	if res.Status != http.StatusServiceUnavailable || res.Error() != "product service unavailable" {
		t.Fatalf("product service down: %d %s, want 503 product service unavailable", res.Status, res.Body)
	}
	// The key is freed: another request with it is served as a new one, not refused (422).
	res = api.Request(t, "POST", "/orders", orderOf(user, product, 1), "Idempotency-Key", "k")
	if res.Status != http.StatusServiceUnavailable || res.Error() != "product service unavailable" {
		t.Errorf("another request with the freed key: %d %s, want 503 product service unavailable", res.Status, res.Body)
	}
	if n, err := app.Sweep(ctx, 0); err != nil || n != 0 {
		t.Errorf("sweep: %d placements finished (%v), want 0: none was left", n, err)
	}
}

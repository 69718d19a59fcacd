package order_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
	"github.com/shopkeeper-dev/shopkeeper/services/order/shoptest"
)

// TestIdempotencyKeyTakesTurns: two requests with one Idempotency-Key, the first of which
// gives up (its reservation's answer comes after the peer timeout) while the second is
// served. The first gives back only what it took; the order the second placed keeps its
// stock, and a retry finds that order.
func TestIdempotencyKeyTakesTurns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var reservations atomic.Int32
	reached := make(chan struct{})
	shop, _ := startShopWithDatabases(t, testenv.RabbitMQ(t), func(o *shoptest.Options) {
		o.PeerTimeout = lostAnswerPeerTimeout
		o.WrapProduct = func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(w, r) // the reservation is made...
				if r.Method == http.MethodPost && r.URL.Path == "/internal/reservations" && reservations.Add(1) == 1 {
					close(reached)
					<-r.Context().Done() // ...and the first one's answer comes after order gave up.
				}
			})
		}
	})
	user, product := userAndProduct(ctx, t, shop, "last lamp", 1500, 1)
	body := orderOf(user, product, 1)
	place := func(out any) (int, []byte, error) {
		return shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", body, out, "Idempotency-Key", "twice")
	}

	first := make(chan int, 1)
	go func() {
		status, _, _ := place(nil)
		first <- status
	}()
	select {
	case <-reached:
	case <-ctx.Done():
		t.Fatal("the first request never reached the product service")
	}
	var placed order.Order
	if status, answer, err := place(&placed); err != nil || status != http.StatusCreated {
		t.Fatalf("second request: %d %s (%v), want 201", status, answer, err)
	}
	if status := <-first; status != http.StatusServiceUnavailable {
		t.Fatalf("first request: %d, want 503 (it gave up)", status)
	}
	// Both requests are done, the first one's giving up included.
	if stock, err := shop.Stock(ctx, product); err != nil || stock != 0 {
		t.Fatalf("stock %d (%v), want 0: the placed order's lamp was given back", stock, err)
	}
	if got, err := shop.WaitSettled(ctx, placed.ID.Hex()); err != nil || got.Status != order.Paid {
		t.Fatalf("order %+v (%v), want PAID", got, err)
	}
	var again order.Order
	if status, answer, err := place(&again); err != nil || status != http.StatusOK || again.ID != placed.ID {
		t.Fatalf("retry: %d %s (%v), want 200 with order %s", status, answer, err, placed.ID.Hex())
	}
}

// TestRefusedOrderFreesItsKey: a request refused for short stock made no order, so its
// Idempotency-Key does not hold the refusal: once the stock is back, a retry with the key
// places the order, and later retries find it. Products priced in different currencies are
// refused as such, with their currencies.
func TestRefusedOrderFreesItsKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	shop := startShop(t, testenv.RabbitMQ(t))
	user, product := userAndProduct(ctx, t, shop, "chair", 4900, 1)
	body := orderOf(user, product, 2)
	place := func(out any) (int, []byte, error) {
		return shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", body, out, "Idempotency-Key", "restocked")
	}

	if status, answer, err := place(nil); err != nil || status != http.StatusConflict {
		t.Fatalf("short stock: %d %s (%v), want 409", status, answer, err)
	}
	if status, answer, err := shop.Call(ctx, http.MethodPatch, shop.ProductURL+"/products/"+product,
		map[string]any{"stock": 5}, nil); err != nil || status != http.StatusOK {
		t.Fatalf("restock: %d %s (%v)", status, answer, err)
	}
	var placed order.Order
	if status, answer, err := place(&placed); err != nil || status != http.StatusCreated {
		t.Fatalf("retry after the restock: %d %s (%v), want 201", status, answer, err)
	}
	var again order.Order
	if status, answer, err := place(&again); err != nil || status != http.StatusOK || again.ID != placed.ID {
		t.Fatalf("second retry: %d %s (%v), want 200 with order %s", status, answer, err, placed.ID.Hex())
	}
	if stock, err := shop.Stock(ctx, product); err != nil || stock != 3 {
		t.Fatalf("stock %d (%v), want 3", stock, err)
	}

	var euro struct{ ID string }
	if status, answer, err := shop.Call(ctx, http.MethodPost, shop.ProductURL+"/products",
		map[string]any{"name": "Euro chair", "priceCents": 5900, "currency": "EUR", "stock": 5}, &euro); err != nil || status != http.StatusCreated {
		t.Fatalf("create a product in EUR: %d %s (%v)", status, answer, err)
	}
	mixed := map[string]any{"userId": user, "items": []map[string]any{
		{"productId": product, "quantity": 1}, {"productId": euro.ID, "quantity": 1}}}
	status, answer, err := shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", mixed, nil)
	if err != nil || status != http.StatusUnprocessableEntity {
		t.Fatalf("mixed currencies: %d %s (%v), want 422", status, answer, err)
	}
	var refusal struct {
		Error   string
		Details []map[string]string
	}
	if err := json.Unmarshal(answer, &refusal); err != nil || !strings.HasPrefix(refusal.Error, "mixed currencies") || len(refusal.Details) != 2 {
		t.Fatalf("mixed currencies answered %s (%v), want the error and both lines' currencies", answer, err)
	}
}

// userAndProduct creates a user and a product (priced priceCents, with stock units) in shop,
// and returns their ids.
func userAndProduct(ctx context.Context, t *testing.T, shop *shoptest.Shop, product string, priceCents, stock int64) (userID, productID string) {
	t.Helper()
	userID, err := shop.CreateUser(ctx, "Ada Lovelace", "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	productID, err = shop.CreateProduct(ctx, product, priceCents, stock)
	if err != nil {
		t.Fatal(err)
	}
	return userID, productID
}

// orderOf is the body of POST /orders for quantity units of product by user.
func orderOf(user, product string, quantity int) map[string]any {
	return map[string]any{"userId": user, "items": []map[string]any{{"productId": product, "quantity": quantity}}}
}

// TestReplayOutlivesItsUser: a retry with the Idempotency-Key of a stored order gets that
// order back (200) although its user has since been deleted, as for any replay; a new key
// for the deleted user is refused as an unknown user.
func TestReplayOutlivesItsUser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	shop := startShop(t, testenv.RabbitMQ(t))
	user, product := userAndProduct(ctx, t, shop, "lamp", 2900, 5)
	body := orderOf(user, product, 1)
	place := func(key string, out any) (int, []byte, error) {
		return shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", body, out, "Idempotency-Key", key)
	}

	var placed order.Order
	if status, answer, err := place("before", &placed); err != nil || status != http.StatusCreated {
		t.Fatalf("place: %d %s (%v), want 201", status, answer, err)
	}
	if status, answer, err := shop.Call(ctx, http.MethodDelete, shop.UserURL+"/users/"+user, nil, nil); err != nil || status != http.StatusNoContent {
		t.Fatalf("delete the user: %d %s (%v)", status, answer, err)
	}
	var again order.Order
	if status, answer, err := place("before", &again); err != nil || status != http.StatusOK || again.ID != placed.ID {
		t.Fatalf("retry: %d %s (%v), want 200 with order %s", status, answer, err, placed.ID.Hex())
	}
	if status, answer, err := place("after", nil); err != nil || status != http.StatusUnprocessableEntity || !strings.Contains(string(answer), "unknown user") {
		t.Fatalf("a new key for the deleted user: %d %s (%v), want 422 unknown user", status, answer, err)
	}
	if stock, err := shop.Stock(ctx, product); err != nil || stock != 4 {
		t.Fatalf("stock %d (%v), want 4", stock, err)
	}
}

// TestHungProductServiceIsA503: the product service takes an order's stock and hangs, its
// answer never coming, and its release of the stock hangs too. With the configuration's
// defaults POST /orders answers 503 at PLACEMENT_TIMEOUT, so before the gateway gives up
// (TestPlacementAnswersBeforeTheGateway), the release going on after the answer. Once the
// product service answers again, the stock goes back, and the same request with its
// Idempotency-Key places the order: its stock is taken once.
func TestHungProductServiceIsA503(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := defaultConfig(t)
	var reservations atomic.Int32
	recovered := make(chan struct{})
	recoverProduct := sync.OnceFunc(func() { close(recovered) })
	t.Cleanup(recoverProduct)
	shop, _ := startShopWithDatabases(t, testenv.RabbitMQ(t), func(o *shoptest.Options) {
		o.PeerTimeout, o.PlacementTimeout = cfg.PeerTimeout, cfg.PlacementTimeout
		o.WrapProduct = func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case !strings.HasPrefix(r.URL.Path, "/internal/reservations"):
				case r.Method == http.MethodPost && reservations.Add(1) == 1:
					h.ServeHTTP(httptest.NewRecorder(), r) // the stock is taken, the answer never comes
					<-r.Context().Done()
					return
				case r.Method == http.MethodDelete:
					select { // the release waits for the service to come back
					case <-recovered:
					case <-r.Context().Done():
						return
					}
				}
				h.ServeHTTP(w, r)
			})
		}
	})
	user, product := userAndProduct(ctx, t, shop, "kettle", 3400, 1)
	place := func(out any) (int, []byte, error) {
		return shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", orderOf(user, product, 1), out, "Idempotency-Key", "hung")
	}

	start := time.Now()
	status, answer, err := place(nil)
	took := time.Since(start)
	// The release of the stock hangs too: the answer says that the stock is not back yet.
	if err != nil || status != http.StatusServiceUnavailable || !strings.Contains(string(answer), "its stock is still being given back") {
		t.Fatalf("order while product hangs: %d %s (%v), want 503 saying its stock is still being given back", status, answer, err)
	}
	// The deadline, and the writing and reading of the answer.
	if took >= cfg.PlacementTimeout+time.Second {
		t.Errorf("503 after %s, want it at PLACEMENT_TIMEOUT %s", took, cfg.PlacementTimeout)
	}
	t.Logf("503 after %s (PEER_TIMEOUT %s, PLACEMENT_TIMEOUT %s)", took, cfg.PeerTimeout, cfg.PlacementTimeout)

	recoverProduct()
	var placed order.Order
	if status, answer, err := place(&placed); err != nil || status != http.StatusCreated {
		t.Fatalf("retry once product answers: %d %s (%v), want 201", status, answer, err)
	}
	if stock, err := shop.Stock(ctx, product); err != nil || stock != 0 {
		t.Fatalf("stock %d (%v), want 0: the one kettle, taken once", stock, err)
	}
	if got, err := shop.WaitSettled(ctx, placed.ID.Hex()); err != nil || got.Status != order.Paid {
		t.Fatalf("order %+v (%v), want PAID", got, err)
	}
}

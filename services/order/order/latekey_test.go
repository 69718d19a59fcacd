package order_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
	"github.com/shopkeeper-dev/shopkeeper/services/order/shoptest"
)

// TestLateKeyRemovalKeepsANewerClaim: the removal of an Idempotency-Key's claim that the
// database gets only after the order service gave up on it (its operation timeout) must
// not remove the claim that a later request with the key made meanwhile: a retry with the
// key would otherwise place a second order.
func TestLateKeyRemovalKeepsANewerClaim(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const opTimeout = 2 * time.Second
	var lose atomic.Bool
	var link *testenv.SlowLink
	shop, _ := startShopWithDatabases(t, testenv.RabbitMQ(t), func(o *shoptest.Options) {
		loseReservationAnswers(o, &lose)
		database := o.Database
		o.Database = func(service string) *mongo.Database {
			db := database(service)
			if service != "orders" {
				return db
			}
			// The order service reaches its database through a link that can hold a message back.
			link = testenv.NewSlowLink(t, testenv.MongoURI(t))
			slow, err := mongodb.Connect(ctx, mongodb.Config{URI: link.URI() + db.Name(),
				ConnectTimeout: 10 * time.Second, OperationTimeout: opTimeout}, db.Name())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = slow.Client().Disconnect(context.Background()) })
			return slow
		}
	})
	user, product := userAndProduct(ctx, t, shop, "lamp", 1500, 5)
	body := orderOf(user, product, 1)
	place := func(out any) (int, []byte) {
		t.Helper()
		status, answer, err := shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", body, out, "Idempotency-Key", "once")
		if err != nil {
			t.Fatal(err)
		}
		return status, answer
	}

	// 1. The reservation's answer is lost: the stock is given back and the key's claim
	// removed, but that removal reaches the database only later.
	lose.Store(true)
	landed := link.DelayNext(8*time.Second, "delete", "idempotency_keys")
	if status, answer := place(nil); status != http.StatusServiceUnavailable {
		t.Fatalf("first attempt: %d %s, want 503", status, answer)
	}
	lose.Store(false)
	// 2. Retries with the key until the order is placed (the first may be told that the
	// earlier attempt was abandoned).
	var first order.Order
	for try := 0; ; try++ {
		status, answer := place(&first)
		if status == http.StatusCreated {
			break
		}
		if status != http.StatusServiceUnavailable || try > 3 {
			t.Fatalf("retry %d: %d %s", try, status, answer)
		}
	}
	select {
	case <-landed:
	case <-ctx.Done():
		t.Fatal("the held-back removal never landed")
	}
	// 3. The order's answer was lost, say: the client sends it again with its key.
	var again order.Order
	status, answer := place(&again)
	if status != http.StatusOK || again.ID != first.ID {
		t.Fatalf("retry after the order was placed: %d %s (order %s), want 200 with order %s",
			status, answer, again.ID.Hex(), first.ID.Hex())
	}
	if stock, err := shop.Stock(ctx, product); err != nil || stock != 4 {
		t.Fatalf("stock %d (%v), want 4: one order of one unit", stock, err)
	}
}

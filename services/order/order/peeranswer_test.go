package order_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/order/shoptest"
)

// TestMalformedReservationAnswer: a product service that takes the stock but answers 201
// with a body that is no JSON is a peer answering what the order service does not expect:
// 503, as for any other unexpected answer, and the stock comes back, as when the answer
// is lost.
func TestMalformedReservationAnswer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var garble atomic.Bool
	shop, _ := startShopWithDatabases(t, testenv.RabbitMQ(t), func(o *shoptest.Options) {
		o.WrapProduct = func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost || r.URL.Path != "/internal/reservations" || !garble.Load() {
					h.ServeHTTP(w, r)
					return
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r) // the stock is taken...
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(rec.Code)
				_, _ = w.Write([]byte("<html>not JSON</html>")) // ...and the answer cannot be read
			})
		}
	})
	user, product := userAndProduct(ctx, t, shop, "lamp", 1500, 5)

	garble.Store(true)
	status, answer, err := shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", orderOf(user, product, 2), nil)
	if err != nil || status != http.StatusServiceUnavailable || !strings.Contains(string(answer), "product service answered malformed JSON") {
		t.Fatalf("%d %s (%v), want 503 saying the product service answered malformed JSON", status, answer, err)
	}
	garble.Store(false)
	if stock, err := shop.Stock(ctx, product); err != nil || stock != 5 {
		t.Fatalf("stock %d (%v), want 5: the reservation given back", stock, err)
	}
}

package order_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apitest"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
	"github.com/shopkeeper-dev/shopkeeper/services/order/shoptest"
)

// TestReservationAnswerIsChecked: the product service makes the reservation, but answers
// it with JSON that is not the reservation asked for (no lines, other lines, fewer units,
// another order, a total that is not its lines'): a product service of another version,
// say. The order service does not store an order from it (an order of no lines, or charged
// 0 for stock that was taken): it answers 503, as for any answer it does not expect, and
// gives the stock back.
func TestReservationAnswerIsChecked(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var rewrite atomic.Pointer[func(map[string]any)]
	shop, _ := startShopWithDatabases(t, testenv.RabbitMQ(t), func(o *shoptest.Options) {
		o.WrapProduct = func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				edit := rewrite.Load()
				if edit == nil || !isReservation(r) {
					h.ServeHTTP(w, r)
					return
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r) // the stock is taken...
				var res map[string]any
				if rec.Code/100 != 2 || json.Unmarshal(rec.Body.Bytes(), &res) != nil {
					t.Errorf("reservation: %d %s", rec.Code, rec.Body)
				}
				if res != nil {
					(*edit)(res) // ...and answered otherwise
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(rec.Code)
				_ = json.NewEncoder(w).Encode(res)
			})
		}
	})
	api := apitest.New(t, "../openapi.yaml", shop.Order.Handler(metrics.NewRegistry()))
	user, product := userAndProduct(ctx, t, shop, "lamp", 1500, 10)
	other, err := shop.CreateProduct(ctx, "bulb", 300, 10)
	if err != nil {
		t.Fatal(err)
	}
	edits := map[string]func(map[string]any){
		"an empty object": func(res map[string]any) { clear(res) },
		"no lines":        func(res map[string]any) { res["items"] = []any{} },
		"another product": func(res map[string]any) {
			res["items"].([]any)[0].(map[string]any)["productId"] = other
		},
		"another quantity": func(res map[string]any) {
			res["items"].([]any)[0].(map[string]any)["quantity"] = 1
		},
		// Fewer units than asked, with the total they make: the total alone does not tell.
		"fewer units, priced as such": func(res map[string]any) {
			res["items"].([]any)[0].(map[string]any)["quantity"] = 1
			res["totalCents"] = 1500
		},
		"a total of 0":    func(res map[string]any) { res["totalCents"] = 0 },
		"another orderId": func(res map[string]any) { res["orderId"] = other },
	}
	for name, edit := range edits {
		rewrite.Store(&edit)
		res := api.Request(t, "POST", "/orders", orderOf(user, product, 2), "Idempotency-Key", name)
		if res.Status != http.StatusServiceUnavailable {
			t.Errorf("reservation answered with %s: %d %s, want 503", name, res.Status, bytes.TrimSpace(res.Body))
		}
	}
	rewrite.Store(nil)
	// Nothing stored, and every unit back (the stock goes back before the 503).
	var page mongodb.Page[order.Order]
	if res := api.Request(t, "GET", "/orders?userId="+user, nil); res.Status != http.StatusOK {
		t.Fatalf("list: %d %s", res.Status, res.Body)
	} else if res.JSON(t, &page); len(page.Items) != 0 {
		t.Errorf("%d orders stored from answers that were no reservation of theirs, want none", len(page.Items))
	}
	if stock, err := shop.Stock(ctx, product); err != nil || stock != 10 {
		t.Errorf("stock %d (%v), want all 10 back", stock, err)
	}
	// And the same request, answered as it should be, places the order.
	res := api.Request(t, "POST", "/orders", orderOf(user, product, 2), "Idempotency-Key", "no lines")
	var o order.Order
	if res.JSON(t, &o); res.Status != http.StatusCreated || o.TotalCents != 3000 || len(o.Items) != 1 {
		t.Errorf("placed again: %d %s, want 201 for 3000", res.Status, res.Body)
	}
}

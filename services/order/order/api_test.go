package order_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apitest"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
)

// TestOrdersAPI checks the HTTP contract of the order service against openapi.yaml,
// with the real user and product services behind it.
func TestOrdersAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	shop := startShop(t, testenv.RabbitMQ(t))
	api := apitest.New(t, "../openapi.yaml", shop.Order.Handler(metrics.NewRegistry()))
	user, err := shop.CreateUser(ctx, "Api Tester", "api@example.com")
	if err != nil {
		t.Fatal(err)
	}
	product, err := shop.CreateProduct(ctx, "gadget", 1999, 3)
	if err != nil {
		t.Fatal(err)
	}
	line := func(productID string, q int) []map[string]any {
		return []map[string]any{{"productId": productID, "quantity": q}}
	}
	unknown := bson.NewObjectID().Hex()
	// Every printable ASCII character, the space (0x20) and the tilde (0x7e) included.
	var printable string
	for c := byte('!'); c <= '~'; c++ {
		printable += string(c)
		if c == 'a' {
			printable += " "
		}
	}

	tests := []struct {
		name   string
		body   any
		header []string
		status int
	}{
		{"malformed JSON", `{"userId":`, nil, http.StatusBadRequest},
		// Not read, though it would place an order: the client did not say it was JSON.
		{"JSON sent as a form", map[string]any{"userId": user, "items": line(product, 1)}, []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"JSON sent as text", map[string]any{"userId": user, "items": line(product, 1)}, []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"unknown field", map[string]any{"userId": user, "items": line(product, 1), "coupon": "x"}, nil, http.StatusBadRequest},
		{"no lines", map[string]any{"userId": user, "items": []any{}}, nil, http.StatusBadRequest},
		{"quantity 0", map[string]any{"userId": user, "items": line(product, 0)}, nil, http.StatusBadRequest},
		{"quantity over 1000", map[string]any{"userId": user, "items": line(product, 1001)}, nil, http.StatusBadRequest},
		{"unknown user", map[string]any{"userId": unknown, "items": line(product, 1)}, nil, http.StatusUnprocessableEntity},
		// "." would be the user service's list, "/users/.": no id it makes.
		{"user id \".\"", map[string]any{"userId": ".", "items": line(product, 1)}, nil, http.StatusUnprocessableEntity},
		{"malformed user id", map[string]any{"userId": "42", "items": line(product, 1)}, nil, http.StatusUnprocessableEntity},
		{"a product on two lines", map[string]any{"userId": user, "items": append(line(product, 1), line(product, 1)...)}, nil, http.StatusBadRequest},
		{"unknown product", map[string]any{"userId": user, "items": line(unknown, 1)}, nil, http.StatusUnprocessableEntity},
		{"malformed product id", map[string]any{"userId": user, "items": line("lamp", 1)}, nil, http.StatusUnprocessableEntity},
		// 200 KB of '<', which JSON escapes to 1.2 MB on the way to the product service.
		{"product id larger than a reservation may be", `{"userId":"` + user + `","items":[{"productId":"` + strings.Repeat("<", 200_000) + `","quantity":1}]}`, nil, http.StatusUnprocessableEntity},
		{"short stock", map[string]any{"userId": user, "items": line(product, 4)}, nil, http.StatusConflict},
		{"placed", map[string]any{"userId": user, "items": line(product, 1)}, []string{"Idempotency-Key", "k1"}, http.StatusCreated},
		{"retry with the same key", map[string]any{"userId": user, "items": line(product, 1)}, []string{"Idempotency-Key", "k1"}, http.StatusOK},
		{"same key, other request", map[string]any{"userId": user, "items": line(product, 2)}, []string{"Idempotency-Key", "k1"}, http.StatusUnprocessableEntity},
		// A key is stored and found again as sent only if it is printable ASCII.
		{"key not UTF-8", map[string]any{"userId": user, "items": line(product, 1)}, []string{"Idempotency-Key", "\xff\xfe"}, http.StatusBadRequest},
		{"key with a control character", map[string]any{"userId": user, "items": line(product, 1)}, []string{"Idempotency-Key", "a\x01b"}, http.StatusBadRequest},
		{"key of 256 characters", map[string]any{"userId": user, "items": line(product, 1)}, []string{"Idempotency-Key", strings.Repeat("k", 256)}, http.StatusBadRequest},
		// Placed without a key, its retry with the same empty key would be a second order.
		{"empty key", map[string]any{"userId": user, "items": line(product, 1)}, []string{"Idempotency-Key", ""}, http.StatusBadRequest},
		{"no user", map[string]any{"items": line(product, 1)}, nil, http.StatusBadRequest},
		// The key's bounds are inclusive: these keys are taken, and the request goes on to
		// its user, who does not exist (422, nothing placed).
		{"key of 255 characters", map[string]any{"userId": unknown, "items": line(product, 1)}, []string{"Idempotency-Key", strings.Repeat("k", 255)}, http.StatusUnprocessableEntity},
		{"key of every printable character", map[string]any{"userId": unknown, "items": line(product, 1)}, []string{"Idempotency-Key", printable}, http.StatusUnprocessableEntity},
	}
	var first order.Order
	for _, tt := range tests {
		res := api.Request(t, "POST", "/orders", tt.body, tt.header...)
		if res.Status != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, res.Status, res.Body, tt.status)
			continue
		}
		switch tt.name {
		case "placed":
			res.JSON(t, &first)
			if loc := res.Header.Get("Location"); loc != "/orders/"+first.ID.Hex() {
				t.Errorf("Location = %q, want /orders/%s", loc, first.ID.Hex())
			}
		case "retry with the same key":
			var again order.Order
			res.JSON(t, &again)
			if again.ID != first.ID {
				t.Errorf("retry made order %s, want the first one %s", again.ID.Hex(), first.ID.Hex())
			}
		}
	}
	// Two keys: refused, as a query parameter given twice is, and nothing is placed.
	req := httptest.NewRequestWithContext(ctx, "POST", "/orders", strings.NewReader(`{"userId":"`+user+`","items":[{"productId":"`+product+`","quantity":1}]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Add("Idempotency-Key", "k2")
	req.Header.Add("Idempotency-Key", "k3")
	res := api.Do(t, req)
	var refused struct {
		Error   string              `json:"error"`
		Details []apperr.FieldError `json:"details"`
	}
	res.JSON(t, &refused)
	if res.Status != http.StatusBadRequest || len(refused.Details) != 1 ||
		refused.Details[0] != (apperr.FieldError{Field: "Idempotency-Key", Message: "must be given once"}) {
		t.Errorf("two Idempotency-Keys: %d %s, want 400 naming the header", res.Status, res.Body)
	}
	// One unit taken, once, despite the retry; the rest is still there.
	if stock, err := shop.Stock(ctx, product); err != nil || stock != 2 {
		t.Fatalf("stock %d (%v), want 2", stock, err)
	}
	if _, err := shop.WaitSettled(ctx, first.ID.Hex()); err != nil {
		t.Fatal(err)
	}

	reads := []struct {
		path   string
		status int
		items  int
	}{
		{"/orders/" + first.ID.Hex(), http.StatusOK, -1},
		{"/orders/" + unknown, http.StatusNotFound, -1},
		{"/orders/not-an-id", http.StatusNotFound, -1},
		{"/orders?userId=" + user, http.StatusOK, 1},
		{"/orders?userId=" + user + "&status=PAID", http.StatusOK, 1},
		{"/orders?userId=" + user + "&status=CANCELLED", http.StatusOK, 0},
		{"/orders?userId=" + user + "&status=PENDING", http.StatusOK, 0},
		{"/orders?userId=" + unknown, http.StatusOK, 0},
		{"/orders?status=SHIPPED", http.StatusBadRequest, -1},
		// A filter given empty is no filter left out: every user's orders would be listed.
		{"/orders?userId=&limit=100", http.StatusBadRequest, -1},
		{"/orders?userId", http.StatusBadRequest, -1},
		{"/orders?status=&limit=100", http.StatusBadRequest, -1},
		{"/orders?limit=0", http.StatusBadRequest, -1},
		{"/orders?limit=101", http.StatusBadRequest, -1},
		{"/orders?after=x", http.StatusBadRequest, -1},
		{"/orders?userId=" + user + "&after=", http.StatusOK, 1}, // the first page, as the openapi document says
		{"/orders?status=PAID&status=CANCELLED", http.StatusBadRequest, -1},
		{"/orders?userId=" + user + "&userId=" + unknown, http.StatusBadRequest, -1},
		{"/orders?userId=" + user + "&other=1&other=2", http.StatusOK, 1},
		// Dropped by url.URL.Query, these would list every user's orders.
		{"/orders?userId=" + user + "%&limit=100", http.StatusBadRequest, -1},
		{"/orders?userId=" + user + ";limit=100", http.StatusBadRequest, -1},
		// The probes and metrics are the API's too: the document says what /readyz answers.
		{"/healthz", http.StatusOK, -1},
		{"/readyz", http.StatusOK, -1},
		{"/metrics", http.StatusOK, -1},
	}
	for _, r := range reads {
		res := api.Request(t, "GET", r.path, nil)
		if res.Status != r.status {
			t.Errorf("GET %s: %d %s, want %d", r.path, res.Status, res.Body, r.status)
			continue
		}
		if r.items >= 0 {
			var page mongodb.Page[order.Order]
			res.JSON(t, &page)
			if len(page.Items) != r.items {
				t.Errorf("GET %s: %d orders, want %d", r.path, len(page.Items), r.items)
			}
		}
	}
	if res := api.Request(t, "DELETE", "/orders/"+first.ID.Hex(), nil); res.Status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /orders/{id}: %d, want 405", res.Status)
	}
}

package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apitest"
)

// testBadInput sends what clients get wrong: each is refused with the contract's 4xx
// JSON error, never a 5xx, and changes nothing.
func testBadInput(t *testing.T, c *apitest.Client) {
	id := createProduct(t, c, "Lamp", 4000, 5, "")
	product := "/products/" + id
	item := func(q any) string {
		return fmt.Sprintf(`{"orderId": "bad-1", "items": [{"productId": %q, "quantity": %v}]}`, id, q)
	}
	tooManyLines := make([]string, 51)
	for i := range tooManyLines {
		tooManyLines[i] = fmt.Sprintf(`{"productId": "%024x", "quantity": 1}`, i)
	}
	huge := `{"name": "` + strings.Repeat("x", 1<<20) + `", "priceCents": 1}`

	tests := []struct {
		name, method, path, body string
		status                   int
		error                    string
		// field named in details, when the error is about one
		field string
	}{
		{"malformed JSON", http.MethodPost, "/products", `{"name": "x",`, 400, "request body is malformed JSON (unexpected end)", ""},
		{"not JSON", http.MethodPost, "/products", `name=x`, 400, "request body is malformed JSON at byte 2", ""},
		{"empty body", http.MethodPost, "/products", ``, 400, "request body must not be empty", ""},
		{"two values", http.MethodPost, "/products", `{"name": "x", "priceCents": 1} {}`, 400, "request body must hold a single JSON value", ""},
		{"array body", http.MethodPost, "/products", `[]`, 400, "request body must be a JSON object", ""},
		{"unknown field", http.MethodPost, "/products", `{"name": "x", "priceCents": 1, "colour": "red"}`, 400, `unknown field "colour"`, "colour"},
		{"price as string", http.MethodPost, "/products", `{"name": "x", "priceCents": "12"}`, 400, `field "priceCents" must be a JSON integer`, "priceCents"},
		{"fractional price", http.MethodPost, "/products", `{"name": "x", "priceCents": 12.5}`, 400, `field "priceCents" must be a JSON integer`, "priceCents"},
		{"missing price", http.MethodPost, "/products", `{"name": "x"}`, 400, "validation failed", "priceCents"},
		{"zero price", http.MethodPost, "/products", `{"name": "x", "priceCents": 0}`, 400, "validation failed", "priceCents"},
		{"negative stock", http.MethodPost, "/products", `{"name": "x", "priceCents": 1, "stock": -1}`, 400, "validation failed", "stock"},
		{"blank name", http.MethodPost, "/products", `{"name": "   ", "priceCents": 1}`, 400, "validation failed", "name"},
		{"name too long", http.MethodPost, "/products", `{"name": "` + strings.Repeat("n", 201) + `", "priceCents": 1}`, 400, "validation failed", "name"},
		{"bad currency", http.MethodPost, "/products", `{"name": "x", "priceCents": 1, "currency": "US"}`, 400, "validation failed", "currency"},
		// A currency sent is a code, on creation as on change: only one left out is USD.
		{"empty currency", http.MethodPost, "/products", `{"name": "x", "priceCents": 1, "currency": ""}`, 400, "validation failed", "currency"},
		{"blank currency", http.MethodPost, "/products", `{"name": "x", "priceCents": 1, "currency": "   "}`, 400, "validation failed", "currency"},
		{"null currency", http.MethodPost, "/products", `{"name": "x", "priceCents": 1, "currency": null}`, 400, `field "currency" must be a JSON string`, "currency"},
		// strings.ToUpper makes USD of it (U+017F, a long s).
		{"currency beyond ASCII", http.MethodPost, "/products", `{"name": "x", "priceCents": 1, "currency": "uſd"}`, 400, "validation failed", "currency"},
		{"patch empty currency", http.MethodPatch, product, `{"currency": ""}`, 400, "validation failed", "currency"},
		{"patch blank currency", http.MethodPatch, product, `{"currency": "  "}`, 400, "validation failed", "currency"},
		{"patch currency beyond ASCII", http.MethodPatch, product, `{"currency": "uſd"}`, 400, "validation failed", "currency"},
		{"body over 1 MiB", http.MethodPost, "/products", huge, 413, "request body must not be larger than 1048576 bytes", ""},
		{"patch over 1 MiB", http.MethodPatch, product, huge, 413, "request body must not be larger than 1048576 bytes", ""},
		{"reservation over 1 MiB", http.MethodPost, "/internal/reservations", `{"orderId": "` + strings.Repeat("o", 1<<20) + `"}`, 413, "request body must not be larger than 1048576 bytes", ""},
		{"empty patch", http.MethodPatch, product, `{}`, 400, "validation failed", "body"},
		// null is no value to set: refused, not ignored while the rest is applied.
		{"patch null only", http.MethodPatch, product, `{"name": null}`, 400, `field "name" must be a JSON string`, "name"},
		{"patch null beside a change", http.MethodPatch, product, `{"name": null, "stock": 5}`, 400, `field "name" must be a JSON string`, "name"},
		{"patch null stock", http.MethodPatch, product, `{"stock": null}`, 400, `field "stock" must be a JSON integer`, "stock"},
		{"name with a control character", http.MethodPost, "/products", `{"name": "a\u0000b", "priceCents": 100}`, 400, "validation failed", "name"},
		{"patch negative stock", http.MethodPatch, product, `{"stock": -3}`, 400, "validation failed", "stock"},
		{"patch unknown field", http.MethodPatch, product, `{"id": "x"}`, 400, `unknown field "id"`, "id"},
		{"limit zero", http.MethodGet, "/products?limit=0", "", 400, "validation failed", "limit"},
		{"limit over 100", http.MethodGet, "/products?limit=101", "", 400, "validation failed", "limit"},
		{"limit not a number", http.MethodGet, "/products?limit=ten", "", 400, "validation failed", "limit"},
		{"after not an id", http.MethodGet, "/products?after=zzz", "", 400, "validation failed", "after"},
		{"after with a broken escape", http.MethodGet, "/products?limit=2&after=" + id + "%", "", 400, "validation failed", "after"},
		{"parameters separated by ;", http.MethodGet, "/products?after=" + id + ";limit=2", "", 400, "validation failed", "after"},
		{"reservation without order id", http.MethodPost, "/internal/reservations", `{"items": [{"productId": "` + id + `", "quantity": 1}]}`, 400, "validation failed", "orderId"},
		{"order id with a dot", http.MethodPost, "/internal/reservations", `{"orderId": "a.b", "items": [{"productId": "` + id + `", "quantity": 1}]}`, 400, "validation failed", "orderId"},
		{"order id starting with $", http.MethodPost, "/internal/reservations", `{"orderId": "$set", "items": [{"productId": "` + id + `", "quantity": 1}]}`, 400, "validation failed", "orderId"},
		{"no lines", http.MethodPost, "/internal/reservations", `{"orderId": "bad-1", "items": []}`, 400, "validation failed", "items"},
		{"51 lines", http.MethodPost, "/internal/reservations", `{"orderId": "bad-1", "items": [` + strings.Join(tooManyLines, ",") + `]}`, 400, "validation failed", "items"},
		{"zero quantity", http.MethodPost, "/internal/reservations", item(0), 400, "validation failed", "items[0].quantity"},
		{"quantity over 1000", http.MethodPost, "/internal/reservations", item(1001), 400, "validation failed", "items[0].quantity"},
		{"quantity as string", http.MethodPost, "/internal/reservations", item(`"1"`), 400, `field "items[0].quantity" must be a JSON integer`, "items[0].quantity"},
		{"missing product id", http.MethodPost, "/internal/reservations", `{"orderId": "bad-1", "items": [{"quantity": 1}]}`, 400, "validation failed", "items[0].productId"},
		{"product on two lines", http.MethodPost, "/internal/reservations",
			`{"orderId": "bad-1", "items": [{"productId": "` + id + `", "quantity": 1}, {"productId": "` + id + `", "quantity": 2}]}`,
			400, "validation failed", "items[1].productId"},
		{"unknown field in a line", http.MethodPost, "/internal/reservations",
			`{"orderId": "bad-1", "items": [{"productId": "` + id + `", "quantity": 1, "price": 1}]}`, 400, `unknown field "items[0].price"`, "items[0].price"},
	}
	if len(tests) < 15 {
		t.Fatalf("the bad-input table has %d cases; the contract asks for at least 15", len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			res := c.Request(t, tc.method, tc.path, body)
			if res.Status != tc.status {
				t.Fatalf("%d %.200s, want %d", res.Status, res.Body, tc.status)
			}
			if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
				t.Errorf("Content-Type = %q, want JSON", res.Header.Get("Content-Type"))
			}
			var e errorBody
			res.JSON(t, &e)
			if e.Error != tc.error {
				t.Errorf("error = %q, want %q", e.Error, tc.error)
			}
			if tc.field != "" && !hasField(e.Details, tc.field) {
				t.Errorf("details %v do not name %q", e.Details, tc.field)
			}
		})
	}
	// A body said to be other than JSON is not read, though it would be taken (curl -d
	// sends a form): nothing is created, changed or reserved.
	for _, s := range []struct{ method, path, body, contentType string }{
		{http.MethodPost, "/products", `{"name": "Form", "priceCents": 1}`, "application/x-www-form-urlencoded"},
		{http.MethodPatch, product, `{"stock": 1}`, "text/plain"},
		{http.MethodPost, "/internal/reservations", `{"orderId": "bad-2", "items": [{"productId": "` + id + `", "quantity": 1}]}`, "application/xml"},
	} {
		res := c.Request(t, s.method, s.path, s.body, "Content-Type", s.contentType)
		if res.Status != http.StatusUnsupportedMediaType || !strings.HasPrefix(res.Error(), "Content-Type must be application/json") {
			t.Errorf("%s %s as %s = %d %.200s, want 415", s.method, s.path, s.contentType, res.Status, res.Body)
		}
	}
	if got := stockOf(t, c, id); got != 5 {
		t.Errorf("stock after refused requests = %d, want 5", got)
	}
}

func hasField(details []map[string]any, field string) bool {
	for _, d := range details {
		if d["field"] == field {
			return true
		}
	}
	return false
}

package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apitest"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/health"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/product/catalog"
	"github.com/shopkeeper-dev/shopkeeper/services/product/httpapi"
	"github.com/shopkeeper-dev/shopkeeper/services/product/store"
)

const specPath = "../openapi.yaml"

// newClient serves the product API over a fresh database of the test server and
// checks every exchange against openapi.yaml.
func newClient(t *testing.T, checks ...health.Check) *apitest.Client {
	t.Helper()
	db := testenv.MongoDB(t)
	if checks == nil {
		checks = []health.Check{mongodb.Check(db)}
	}
	h := httpapi.NewHandler(store.New(db), logging.Discard(), metrics.NewRegistry(), checks...)
	return apitest.New(t, specPath, h)
}

// createProduct makes a product and returns its id.
func createProduct(t *testing.T, c *apitest.Client, name string, priceCents, stock int64, currency string) string {
	t.Helper()
	body := map[string]any{"name": name, "priceCents": priceCents, "stock": stock}
	if currency != "" {
		body["currency"] = currency
	}
	res := c.Request(t, http.MethodPost, "/products", body)
	if res.Status != http.StatusCreated {
		t.Fatalf("create product %q: %d %s", name, res.Status, res.Body)
	}
	var p catalog.Product
	res.JSON(t, &p)
	return p.ID
}

func stockOf(t *testing.T, c *apitest.Client, id string) int64 {
	t.Helper()
	res := c.Request(t, http.MethodGet, "/products/"+id, nil)
	if res.Status != http.StatusOK {
		t.Fatalf("get product %s: %d %s", id, res.Status, res.Body)
	}
	var p catalog.Product
	res.JSON(t, &p)
	return p.Stock
}

// newUnreachableClient serves the product API over a database whose address refuses
// connections, as one that is down does.
func newUnreachableClient(t *testing.T) *apitest.Client {
	t.Helper()
	db := testenv.UnreachableMongoDB(t, "products")
	return apitest.New(t, specPath, httpapi.NewHandler(store.New(db), logging.Discard(), metrics.NewRegistry(), mongodb.Check(db)))
}

// With the database unreachable every operation answers 503 {"error": "database unavailable"}.
func testDatabaseUnreachable(t *testing.T, c *apitest.Client) {
	id, order := mongodb.NewID().Hex(), mongodb.NewID().Hex()
	for _, s := range []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, "/products", `{"name":"Mug","priceCents":100}`},
		{http.MethodGet, "/products", nil},
		{http.MethodGet, "/products/" + id, nil},
		{http.MethodPatch, "/products/" + id, `{"stock":1}`},
		{http.MethodDelete, "/products/" + id, nil},
		{http.MethodPost, "/internal/reservations", `{"orderId":"` + order + `","items":[{"productId":"` + id + `","quantity":1}]}`},
		{http.MethodDelete, "/internal/reservations/" + order, nil},
	} {
		if res := c.Request(t, s.method, s.path, s.body); res.Status != http.StatusServiceUnavailable || res.Error() != "database unavailable" {
			t.Errorf("%s %s = %d %s, want 503 database unavailable", s.method, s.path, res.Status, res.Body)
		}
	}
}

type line = map[string]any

func reservation(order string, lines ...line) map[string]any {
	return map[string]any{"orderId": order, "items": lines}
}

// TestAPI walks every route and every documented answer through one client, then
// requires that each response openapi.yaml documents was seen (and matched).
func TestAPI(t *testing.T) {
	c := newClient(t)

	t.Run("products", func(t *testing.T) { testProducts(t, c) })
	t.Run("pagination", func(t *testing.T) { testPagination(t, c) })
	t.Run("reservations", func(t *testing.T) { testReservations(t, c) })
	t.Run("bad input", func(t *testing.T) { testBadInput(t, c) })
	// HEAD is answered wherever GET is, as HTTP defines it: the GET's status and headers.
	for _, s := range []struct {
		path   string
		status int
	}{{"/products?limit=1", 200}, {"/products/" + mongodb.NewID().Hex(), 404}, {"/healthz", 200}} {
		if res := c.Request(t, http.MethodHead, s.path, nil); res.Status != s.status {
			t.Errorf("HEAD %s = %d, want %d", s.path, res.Status, s.status)
		}
	}
	down := newUnreachableClient(t)
	t.Run("database unreachable", func(t *testing.T) { testDatabaseUnreachable(t, down) })

	// A readiness failure needs a database that does not answer: TestReadiness has it.
	missing := slices.DeleteFunc(c.Uncovered(), func(s string) bool {
		return s == "GET /readyz 503" || !slices.Contains(down.Uncovered(), s)
	})
	if len(missing) > 0 {
		t.Errorf("documented responses never produced:\n%s", strings.Join(missing, "\n"))
	}
}

func testProducts(t *testing.T, c *apitest.Client) {
	res := c.Request(t, http.MethodPost, "/products",
		`{"name": "  Mug  ", "description": " A mug. ", "priceCents": 1250, "currency": "eur", "stock": 7}`)
	if res.Status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.Status, res.Body)
	}
	var created catalog.Product
	res.JSON(t, &created)
	if created.Name != "Mug" || created.Description != "A mug." || created.Currency != "EUR" ||
		created.PriceCents != 1250 || created.Stock != 7 || created.ID == "" || created.CreatedAt.IsZero() {
		t.Errorf("created %+v: want trimmed name and description, EUR, 1250, 7, an id and a time", created)
	}
	if got := res.Header.Get("Location"); got != "/products/"+created.ID {
		t.Errorf("Location = %q, want /products/%s", got, created.ID)
	}
	var defaulted catalog.Product
	c.Request(t, http.MethodPost, "/products", `{"name": "Pen", "priceCents": 99}`).JSON(t, &defaulted)
	if defaulted.Currency != "USD" || defaulted.Stock != 0 || defaulted.Description != "" {
		t.Errorf("defaults: got currency %q stock %d description %q, want USD 0 \"\"",
			defaulted.Currency, defaulted.Stock, defaulted.Description)
	}
	// Around a currency, white space the document's pattern does not allow (a no-break space)
	// is refused, not trimmed: apitest would fail a 201 the document refuses.
	if res := c.Request(t, http.MethodPost, "/products", `{"name": "Cup", "priceCents": 99, "currency": "\u00a0usd"}`); res.Status != http.StatusBadRequest {
		t.Errorf("currency after a no-break space: %d %s, want 400", res.Status, res.Body)
	}

	path := "/products/" + created.ID
	unknown := "/products/" + mongodb.NewID().Hex()
	tests := []struct {
		name, method, path string
		body               any
		status             int
		check              func(t *testing.T, p catalog.Product)
	}{
		{"get", http.MethodGet, path, nil, http.StatusOK, func(t *testing.T, p catalog.Product) {
			if p != created {
				t.Errorf("got %+v, want %+v", p, created)
			}
		}},
		{"patch some fields", http.MethodPatch, path, `{"priceCents": 1500, "stock": 3, "name": " Big mug "}`, http.StatusOK,
			func(t *testing.T, p catalog.Product) {
				if p.PriceCents != 1500 || p.Stock != 3 || p.Name != "Big mug" || p.Description != "A mug." || p.Currency != "EUR" {
					t.Errorf("patched %+v: want only price, stock and name changed", p)
				}
				if !p.UpdatedAt.After(created.UpdatedAt) && !p.UpdatedAt.Equal(created.UpdatedAt) {
					t.Errorf("updatedAt went back: %v < %v", p.UpdatedAt, created.UpdatedAt)
				}
			}},
		{"get patched", http.MethodGet, path, nil, http.StatusOK, func(t *testing.T, p catalog.Product) {
			if p.PriceCents != 1500 || p.Stock != 3 {
				t.Errorf("patch not stored: %+v", p)
			}
		}},
		{"get unknown", http.MethodGet, unknown, nil, http.StatusNotFound, nil},
		{"get malformed id", http.MethodGet, "/products/not-an-id", nil, http.StatusNotFound, nil},
		{"patch unknown", http.MethodPatch, unknown, `{"stock": 1}`, http.StatusNotFound, nil},
		{"patch malformed id", http.MethodPatch, "/products/42", `{"stock": 1}`, http.StatusNotFound, nil},
		// The id is looked at before the body: an unknown one is 404 whatever the body holds.
		{"patch unknown with a bad body", http.MethodPatch, unknown, `{"stock": -1}`, http.StatusNotFound, nil},
		{"patch malformed id with an empty patch", http.MethodPatch, "/products/42", `{}`, http.StatusNotFound, nil},
		{"delete unknown", http.MethodDelete, unknown, nil, http.StatusNotFound, nil},
		{"delete", http.MethodDelete, path, nil, http.StatusNoContent, nil},
		{"get deleted", http.MethodGet, path, nil, http.StatusNotFound, nil},
		{"delete again", http.MethodDelete, path, nil, http.StatusNotFound, nil},
		{"wrong method", http.MethodPut, path, `{}`, http.StatusMethodNotAllowed, nil},
		{"unknown path", http.MethodGet, "/nothing", nil, http.StatusNotFound, nil},
		{"liveness", http.MethodGet, "/healthz", nil, http.StatusOK, nil},
		{"readiness", http.MethodGet, "/readyz", nil, http.StatusOK, nil},
		{"metrics", http.MethodGet, "/metrics", nil, http.StatusOK, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := c.Request(t, tc.method, tc.path, tc.body)
			if res.Status != tc.status {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, res.Status, res.Body, tc.status)
			}
			if res.Status == http.StatusNotFound && strings.HasPrefix(tc.path, "/products/") && res.Error() != "Product not found" {
				t.Errorf("404 error = %q, want \"Product not found\"", res.Error())
			}
			if tc.check != nil {
				var p catalog.Product
				res.JSON(t, &p)
				tc.check(t, p)
			}
		})
	}
	if res := c.Request(t, http.MethodPut, path, `{}`); res.Header.Get("Allow") == "" {
		t.Errorf("405 without Allow")
	}
	if res := c.Request(t, http.MethodGet, "/metrics", nil); !strings.Contains(string(res.Body), "http_requests_total") {
		t.Errorf("/metrics has no http_requests_total")
	}
}

func testPagination(t *testing.T, c *apitest.Client) {
	before := listAll(t, c, 100)
	var made []string
	for i := range 5 {
		made = append(made, createProduct(t, c, fmt.Sprintf("page item %d", i), 100, 1, ""))
	}
	all := listAll(t, c, 2)
	if want := slices.Concat(before, made); !slices.Equal(all, want) {
		t.Errorf("pages of 2 listed %v, want %v (creation order, each once)", all, want)
	}
	var page struct {
		Items []catalog.Product `json:"items"`
		Next  string            `json:"next"`
	}
	c.Request(t, http.MethodGet, "/products?limit=100&after="+made[4], nil).JSON(t, &page)
	if len(page.Items) != 0 || page.Next != "" {
		t.Errorf("after the last product: %d items, next %q; want none", len(page.Items), page.Next)
	}
	c.Request(t, http.MethodGet, "/products", nil).JSON(t, &page)
	if len(page.Items) > mongodb.DefaultLimit {
		t.Errorf("default page holds %d items, more than %d", len(page.Items), mongodb.DefaultLimit)
	}
}

// listAll follows next from the first page and returns every id in order.
func listAll(t *testing.T, c *apitest.Client, limit int) []string {
	t.Helper()
	var ids []string
	after := ""
	for range 1000 {
		var page struct {
			Items []catalog.Product `json:"items"`
			Next  string            `json:"next"`
		}
		res := c.Request(t, http.MethodGet, fmt.Sprintf("/products?limit=%d&after=%s", limit, after), nil)
		if res.Status != http.StatusOK {
			t.Fatalf("list: %d %s", res.Status, res.Body)
		}
		res.JSON(t, &page)
		if len(page.Items) > limit {
			t.Fatalf("page of %d items for limit %d", len(page.Items), limit)
		}
		for _, p := range page.Items {
			ids = append(ids, p.ID)
		}
		if page.Next == "" {
			return ids
		}
		after = page.Next
	}
	t.Fatal("pagination does not end")
	return nil
}

// errorBody is the contract's error answer.
type errorBody struct {
	Error   string           `json:"error"`
	Details []map[string]any `json:"details"`
}

// shortLines checks that an insufficient-stock answer names exactly the lines want, in order.
func shortLines(want ...map[string]any) func(*testing.T, *apitest.Response) {
	return func(t *testing.T, res *apitest.Response) {
		t.Helper()
		var e errorBody
		res.JSON(t, &e)
		if fmt.Sprint(e.Details) != fmt.Sprint(want) {
			t.Errorf("details = %v, want %v", e.Details, want)
		}
	}
}

func testReservations(t *testing.T, c *apitest.Client) {
	mug := createProduct(t, c, "Mug", 1250, 10, "")
	pen := createProduct(t, c, "Pen", 199, 3, "USD")
	euro := createProduct(t, c, "Croissant", 150, 50, "EUR")
	gone := mongodb.NewID().Hex()

	tests := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		error  string
		// stock of mug and pen after the request
		mug, pen int64
		check    func(t *testing.T, res *apitest.Response)
	}{
		{name: "reserve", method: http.MethodPost, path: "/internal/reservations",
			body:   reservation("order-1", line{"productId": mug, "quantity": 2}, line{"productId": pen, "quantity": 3}),
			status: http.StatusCreated, mug: 8, pen: 0,
			check: func(t *testing.T, res *apitest.Response) {
				var r catalog.Reservation
				res.JSON(t, &r)
				want := catalog.Reservation{OrderID: "order-1", TotalCents: 2*1250 + 3*199, Items: []catalog.ReservedItem{
					{ProductID: mug, Quantity: 2, UnitPriceCents: 1250, Currency: "USD"},
					{ProductID: pen, Quantity: 3, UnitPriceCents: 199, Currency: "USD"},
				}}
				if !equalReservations(r, want) {
					t.Errorf("got %+v, want %+v", r, want)
				}
			}},
		{name: "same order again, lines in another order", method: http.MethodPost, path: "/internal/reservations",
			body:   reservation("order-1", line{"productId": pen, "quantity": 3}, line{"productId": mug, "quantity": 2}),
			status: http.StatusOK, mug: 8, pen: 0,
			check: func(t *testing.T, res *apitest.Response) {
				var r catalog.Reservation
				res.JSON(t, &r)
				if r.OrderID != "order-1" || r.TotalCents != 2*1250+3*199 || len(r.Items) != 2 {
					t.Errorf("repeat answered %+v, want the first reservation", r)
				}
			}},
		{name: "same order with other lines", method: http.MethodPost, path: "/internal/reservations",
			body:   reservation("order-1", line{"productId": mug, "quantity": 1}),
			status: http.StatusUnprocessableEntity, error: "orderId already reserved with different items", mug: 8, pen: 0},
		{name: "short stock takes nothing", method: http.MethodPost, path: "/internal/reservations",
			body:   reservation("order-2", line{"productId": mug, "quantity": 5}, line{"productId": pen, "quantity": 1}),
			status: http.StatusConflict, error: "insufficient stock", mug: 8, pen: 0,
			check: shortLines(map[string]any{"productId": pen, "requested": float64(1), "available": float64(0)})},
		{name: "every short line is named", method: http.MethodPost, path: "/internal/reservations",
			body:   reservation("order-3", line{"productId": pen, "quantity": 1}, line{"productId": mug, "quantity": 9}),
			status: http.StatusConflict, error: "insufficient stock", mug: 8, pen: 0,
			check: func(t *testing.T, res *apitest.Response) {
				var e errorBody
				res.JSON(t, &e)
				if len(e.Details) != 2 {
					t.Errorf("details = %v, want both lines", e.Details)
				}
			}},
		// A later line is checked without being taken: one its product's stock covers exactly
		// is not short, and is not named.
		{name: "a line the stock covers exactly is not named", method: http.MethodPost, path: "/internal/reservations",
			body:   reservation("order-9", line{"productId": pen, "quantity": 1}, line{"productId": mug, "quantity": 8}),
			status: http.StatusConflict, error: "insufficient stock", mug: 8, pen: 0,
			check: shortLines(map[string]any{"productId": pen, "requested": float64(1), "available": float64(0)})},
		// A short line names the stock there is, not 0.
		{name: "a short line names what is available", method: http.MethodPost, path: "/internal/reservations",
			body:   reservation("order-10", line{"productId": mug, "quantity": 9}),
			status: http.StatusConflict, error: "insufficient stock", mug: 8, pen: 0,
			check: shortLines(map[string]any{"productId": mug, "requested": float64(9), "available": float64(8)})},
		{name: "a refused order is refused again", method: http.MethodPost, path: "/internal/reservations",
			body:   reservation("order-2", line{"productId": mug, "quantity": 5}, line{"productId": pen, "quantity": 1}),
			status: http.StatusConflict, error: "insufficient stock", mug: 8, pen: 0},
		{name: "unknown product", method: http.MethodPost, path: "/internal/reservations",
			body:   reservation("order-4", line{"productId": mug, "quantity": 1}, line{"productId": gone, "quantity": 1}),
			status: http.StatusUnprocessableEntity, error: "unknown product", mug: 8, pen: 0,
			check: func(t *testing.T, res *apitest.Response) {
				var e errorBody
				res.JSON(t, &e)
				if len(e.Details) != 1 || e.Details[0]["productId"] != gone {
					t.Errorf("details = %v, want %s", e.Details, gone)
				}
			}},
		{name: "malformed product id is unknown", method: http.MethodPost, path: "/internal/reservations",
			body:   reservation("order-5", line{"productId": "nope", "quantity": 1}),
			status: http.StatusUnprocessableEntity, error: "unknown product", mug: 8, pen: 0},
		// An id is its lower-case spelling only: the upper-case one, as a second line of the
		// same product, took no stock of its own and sold what was not there.
		{name: "product id in upper case is unknown", method: http.MethodPost, path: "/internal/reservations",
			body:   reservation("order-8", line{"productId": pen, "quantity": 1}, line{"productId": strings.ToUpper(pen), "quantity": 1000}),
			status: http.StatusUnprocessableEntity, error: "unknown product", mug: 8, pen: 0},
		{name: "mixed currencies", method: http.MethodPost, path: "/internal/reservations",
			body:   reservation("order-6", line{"productId": mug, "quantity": 1}, line{"productId": euro, "quantity": 1}),
			status: http.StatusUnprocessableEntity, error: "mixed currencies", mug: 8, pen: 0},
		{name: "release", method: http.MethodDelete, path: "/internal/reservations/order-1",
			status: http.StatusNoContent, mug: 10, pen: 3},
		{name: "release again gives nothing more", method: http.MethodDelete, path: "/internal/reservations/order-1",
			status: http.StatusNoContent, mug: 10, pen: 3},
		{name: "a released order cannot reserve again", method: http.MethodPost, path: "/internal/reservations",
			body:   reservation("order-1", line{"productId": mug, "quantity": 2}, line{"productId": pen, "quantity": 3}),
			status: http.StatusConflict, error: "reservation released", mug: 10, pen: 3},
		{name: "release of a refused order", method: http.MethodDelete, path: "/internal/reservations/order-2",
			status: http.StatusNoContent, mug: 10, pen: 3},
		{name: "a refused order released is refused again", method: http.MethodPost, path: "/internal/reservations",
			body:   reservation("order-2", line{"productId": mug, "quantity": 5}, line{"productId": pen, "quantity": 1}),
			status: http.StatusConflict, error: "insufficient stock", mug: 10, pen: 3},
		{name: "release of an unknown order", method: http.MethodDelete, path: "/internal/reservations/order-7",
			status: http.StatusNoContent, mug: 10, pen: 3},
		{name: "an order released before it reserved takes nothing", method: http.MethodPost, path: "/internal/reservations",
			body:   reservation("order-7", line{"productId": mug, "quantity": 1}),
			status: http.StatusConflict, error: "reservation released", mug: 10, pen: 3},
		{name: "release of a malformed order id", method: http.MethodDelete, path: "/internal/reservations/a.b",
			status: http.StatusNotFound, mug: 10, pen: 3},
		{name: "release without an order id", method: http.MethodDelete, path: "/internal/reservations/",
			status: http.StatusNotFound, mug: 10, pen: 3},
		{name: "wrong method", method: http.MethodGet, path: "/internal/reservations",
			status: http.StatusMethodNotAllowed, mug: 10, pen: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := c.Request(t, tc.method, tc.path, tc.body)
			if res.Status != tc.status {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, res.Status, res.Body, tc.status)
			}
			if tc.error != "" && res.Error() != tc.error {
				t.Errorf("error = %q, want %q", res.Error(), tc.error)
			}
			if tc.check != nil {
				tc.check(t, res)
			}
			if m, p := stockOf(t, c, mug), stockOf(t, c, pen); m != tc.mug || p != tc.pen {
				t.Errorf("stock mug %d pen %d, want %d %d", m, p, tc.mug, tc.pen)
			}
		})
	}
}

func equalReservations(a, b catalog.Reservation) bool {
	return a.OrderID == b.OrderID && a.TotalCents == b.TotalCents && slices.Equal(a.Items, b.Items)
}

func TestReadiness(t *testing.T) {
	down := health.Check{Name: "mongodb", Run: func(context.Context) error { return errors.New("no answer") }}
	c := newClient(t, down)
	res := c.Request(t, http.MethodGet, "/readyz", nil)
	if res.Status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the database down: %d %s, want 503", res.Status, res.Body)
	}
	if res := c.Request(t, http.MethodGet, "/healthz", nil); res.Status != http.StatusOK {
		t.Errorf("/healthz with the database down: %d, want 200 (the process lives)", res.Status)
	}
}

// concurrently runs f(i) for i in [0, n) at once and waits for all.
func concurrently(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			f(i)
		})
	}
	close(start)
	wg.Wait()
}

package catalog

import (
	"errors"
	"strings"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
)

// fields returns the fields a validation error names, or nil for nil.
func fields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ae *apperr.Error
	if !errors.As(err, &ae) || !errors.Is(ae, apperr.ErrValidation) {
		t.Fatalf("error %v is not a validation error", err)
	}
	var out []string
	for _, d := range ae.Details {
		out = append(out, d.(apperr.FieldError).Field)
	}
	return out
}

func TestNewProductNormalize(t *testing.T) {
	tests := []struct {
		name   string
		in     NewProduct
		want   NewProduct
		fields string
	}{
		{"trims", NewProduct{Name: " Mug ", Description: " d ", PriceCents: 1, Currency: " USD\t"},
			NewProduct{Name: "Mug", Description: "d", PriceCents: 1, Currency: "USD"}, ""},
		{"upper-cases the currency", NewProduct{Name: "Mug", PriceCents: 1, Currency: " eur", Stock: 3},
			NewProduct{Name: "Mug", PriceCents: 1, Currency: "EUR", Stock: 3}, ""},
		// The HTTP API fills the default for a currency left out; one sent empty is no code.
		{"empty currency", NewProduct{Name: "x", PriceCents: 5}, NewProduct{}, "currency"},
		{"blank currency", NewProduct{Name: "x", PriceCents: 5, Currency: "   "}, NewProduct{}, "currency"},
		// strings.ToUpper makes "USD" of it: the code is checked before.
		{"currency with a long s", NewProduct{Name: "x", PriceCents: 5, Currency: "uſd"}, NewProduct{}, "currency"},
		{"currency with a dotless i", NewProduct{Name: "x", PriceCents: 5, Currency: "ıls"}, NewProduct{}, "currency"},
		{"largest values", NewProduct{Name: strings.Repeat("é", MaxNameLength), Description: strings.Repeat("d", MaxDescriptionLength), PriceCents: MaxPriceCents, Currency: "USD", Stock: MaxStock},
			NewProduct{Name: strings.Repeat("é", MaxNameLength), Description: strings.Repeat("d", MaxDescriptionLength), PriceCents: MaxPriceCents, Currency: "USD", Stock: MaxStock}, ""},
		{"everything wrong at once", NewProduct{Name: " ", Description: strings.Repeat("d", MaxDescriptionLength+1), PriceCents: 0, Currency: "DOLLAR", Stock: -1},
			NewProduct{}, "name,description,priceCents,currency,stock"},
		{"too large", NewProduct{Name: strings.Repeat("n", MaxNameLength+1), PriceCents: MaxPriceCents + 1, Currency: "USD", Stock: MaxStock + 1},
			NewProduct{}, "name,priceCents,stock"},
		{"negative price", NewProduct{Name: "x", PriceCents: -5, Currency: "USD"}, NewProduct{}, "priceCents"},
		{"currency with a digit", NewProduct{Name: "x", PriceCents: 5, Currency: "US1"}, NewProduct{}, "currency"},
		// Only the white space openapi.yaml's pattern allows around the code is trimmed.
		{"currency after form feed and CR LF", NewProduct{Name: "x", PriceCents: 5, Currency: "\f\r\nusd \t"},
			NewProduct{Name: "x", PriceCents: 5, Currency: "USD"}, ""},
		{"currency after a no-break space", NewProduct{Name: "x", PriceCents: 5, Currency: "\u00a0usd"}, NewProduct{}, "currency"},
		{"currency before a next line", NewProduct{Name: "x", PriceCents: 5, Currency: "usd\u0085"}, NewProduct{}, "currency"},
		{"currency after a vertical tab", NewProduct{Name: "x", PriceCents: 5, Currency: "\vusd"}, NewProduct{}, "currency"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.in
			got := strings.Join(fields(t, p.Normalize()), ",")
			if got != tc.fields {
				t.Fatalf("invalid fields %q, want %q", got, tc.fields)
			}
			if tc.fields == "" && p != tc.want {
				t.Errorf("normalized to %+v, want %+v", p, tc.want)
			}
		})
	}
}

func TestPatchNormalize(t *testing.T) {
	str := func(s string) *string { return &s }
	num := func(n int64) *int64 { return &n }
	tests := []struct {
		name   string
		in     Patch
		fields string
	}{
		{"one field", Patch{Stock: num(0)}, ""},
		{"all fields", Patch{Name: str("n"), Description: str(""), PriceCents: num(1), Currency: str("gbp"), Stock: num(MaxStock)}, ""},
		{"nothing", Patch{}, "body"},
		{"blank name", Patch{Name: str("  ")}, "name"},
		{"bad values", Patch{PriceCents: num(0), Currency: str("x"), Stock: num(-1)}, "priceCents,currency,stock"},
		{"empty currency", Patch{Currency: str("")}, "currency"},
		{"blank currency", Patch{Currency: str("  ")}, "currency"},
		{"currency with a long s", Patch{Currency: str("uſd")}, "currency"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(fields(t, tc.in.Normalize()), ","); got != tc.fields {
				t.Errorf("invalid fields %q, want %q", got, tc.fields)
			}
		})
	}
	p := Patch{Name: str(" Lamp "), Currency: str("chf")}
	if err := p.Normalize(); err != nil || *p.Name != "Lamp" || *p.Currency != "CHF" {
		t.Errorf("normalized to name %q currency %q (%v), want Lamp CHF", *p.Name, *p.Currency, err)
	}
}

func TestReservationRequestValidate(t *testing.T) {
	item := func(id string, q int64) ReservationItem { return ReservationItem{ProductID: id, Quantity: q} }
	many := make([]ReservationItem, MaxLines+1)
	for i := range many {
		many[i] = item(strings.Repeat("p", i+1), 1)
	}
	tests := []struct {
		name   string
		req    ReservationRequest
		fields string
	}{
		{"valid", ReservationRequest{OrderID: "6650f1c2a4b5c6d7e8f90456", Items: []ReservationItem{item("a", 1), item("b", MaxQuantity)}}, ""},
		{"most lines", ReservationRequest{OrderID: "o_1-x", Items: many[:MaxLines]}, ""},
		{"too many lines", ReservationRequest{OrderID: "o", Items: many}, "items"},
		{"no lines", ReservationRequest{OrderID: "o"}, "items"},
		{"no order id", ReservationRequest{Items: []ReservationItem{item("a", 1)}}, "orderId"},
		{"order id too long", ReservationRequest{OrderID: strings.Repeat("o", 65), Items: []ReservationItem{item("a", 1)}}, "orderId"},
		{"order id that is a path", ReservationRequest{OrderID: "a.b", Items: []ReservationItem{item("a", 1)}}, "orderId"},
		{"bad lines", ReservationRequest{OrderID: "o", Items: []ReservationItem{item("", 1), item("a", 0), item("a", MaxQuantity+1)}},
			"items[0].productId,items[1].quantity,items[2].productId,items[2].quantity"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(fields(t, tc.req.Validate()), ","); got != tc.fields {
				t.Errorf("invalid fields %q, want %q", got, tc.fields)
			}
		})
	}
}

func TestPrice(t *testing.T) {
	products := map[string]Product{
		"mug": {ID: "mug", PriceCents: 1250, Currency: "USD"},
		"pen": {ID: "pen", PriceCents: 199, Currency: "USD"},
		"tea": {ID: "tea", PriceCents: 300, Currency: "EUR"},
	}
	req := func(ids ...string) ReservationRequest {
		r := ReservationRequest{OrderID: "o"}
		for i, id := range ids {
			r.Items = append(r.Items, ReservationItem{ProductID: id, Quantity: int64(i + 2)})
		}
		return r
	}
	tests := []struct {
		name    string
		req     ReservationRequest
		total   int64
		errMsg  string
		details int
	}{
		{"one currency", req("mug", "pen"), 2*1250 + 3*199, "", 0},
		{"other currency alone", req("tea"), 2 * 300, "", 0},
		{"unknown products, all named", req("mug", "cup", "jar"), 0, "unknown product", 2},
		{"mixed currencies, every line named", req("mug", "tea", "pen"), 0, "mixed currencies", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Price(tc.req, products)
			if tc.errMsg == "" {
				if err != nil || res.TotalCents != tc.total || len(res.Items) != len(tc.req.Items) || res.OrderID != "o" {
					t.Fatalf("got %+v, %v; want total %d", res, err, tc.total)
				}
				for i, it := range res.Items {
					p := products[tc.req.Items[i].ProductID]
					if it.UnitPriceCents != p.PriceCents || it.Currency != p.Currency || it.Quantity != tc.req.Items[i].Quantity {
						t.Errorf("line %d = %+v, want the product's price and currency", i, it)
					}
				}
				return
			}
			var ae *apperr.Error
			if !errors.As(err, &ae) || !errors.Is(ae, apperr.ErrUnprocessable) || ae.Message != tc.errMsg || len(ae.Details) != tc.details {
				t.Errorf("error %#v, want 422 %q with %d details", err, tc.errMsg, tc.details)
			}
		})
	}
}

func TestSameItems(t *testing.T) {
	res := Reservation{Items: []ReservedItem{{ProductID: "a", Quantity: 1}, {ProductID: "b", Quantity: 2}}}
	tests := []struct {
		name  string
		items []ReservationItem
		want  bool
	}{
		{"same order", []ReservationItem{{"a", 1}, {"b", 2}}, true},
		{"other order", []ReservationItem{{"b", 2}, {"a", 1}}, true},
		{"other quantity", []ReservationItem{{"a", 1}, {"b", 3}}, false},
		{"a line less", []ReservationItem{{"a", 1}}, false},
		{"other product", []ReservationItem{{"a", 1}, {"c", 2}}, false},
	}
	for _, tc := range tests {
		if got := res.SameItems(ReservationRequest{Items: tc.items}); got != tc.want {
			t.Errorf("%s: SameItems = %v, want %v", tc.name, got, tc.want)
		}
	}
}

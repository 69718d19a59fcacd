package store

import (
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/product/catalog"
)

// Prices are cached for reservations: a reservation made after a product changed or
// went is priced, or refused, as the product is then; one made before keeps its price.
func TestReservationsSeeProductChanges(t *testing.T) {
	ctx := t.Context()
	s := New(testenv.MongoDB(t))
	p, err := s.Create(ctx, catalog.NewProduct{Name: "Mug", PriceCents: 100, Currency: "USD", Stock: 100})
	if err != nil {
		t.Fatal(err)
	}
	reserve := func(order string) (catalog.Reservation, error) {
		res, _, err := s.Reserve(ctx, catalog.ReservationRequest{OrderID: order, Items: []catalog.ReservationItem{{ProductID: p.ID, Quantity: 2}}})
		return res, err
	}
	price := func(cents int64) catalog.Patch { return catalog.Patch{PriceCents: &cents} }
	currency := func(c string) catalog.Patch { return catalog.Patch{Currency: &c} }

	tests := []struct {
		order     string
		change    *catalog.Patch // applied before the reservation
		wantTotal int64
		wantUnit  int64
		wantCurr  string
		wantFirst int64 // total of order "o1" asked again: never repriced
	}{
		{order: "o1", wantTotal: 200, wantUnit: 100, wantCurr: "USD", wantFirst: 200},
		{order: "o2", wantTotal: 200, wantUnit: 100, wantCurr: "USD", wantFirst: 200}, // from the cache
		{order: "o3", change: ptr(price(250)), wantTotal: 500, wantUnit: 250, wantCurr: "USD", wantFirst: 200},
		{order: "o4", wantTotal: 500, wantUnit: 250, wantCurr: "USD", wantFirst: 200},
		{order: "o5", change: ptr(currency("EUR")), wantTotal: 500, wantUnit: 250, wantCurr: "EUR", wantFirst: 200},
	}
	for _, tt := range tests {
		if tt.change != nil {
			if _, err := s.Update(ctx, p.ID, *tt.change); err != nil {
				t.Fatal(err)
			}
		}
		res, err := reserve(tt.order)
		if err != nil {
			t.Fatalf("%s: %v", tt.order, err)
		}
		if res.TotalCents != tt.wantTotal || res.Items[0].UnitPriceCents != tt.wantUnit || res.Items[0].Currency != tt.wantCurr {
			t.Errorf("%s: total %d, unit %d %s; want %d, %d %s", tt.order, res.TotalCents,
				res.Items[0].UnitPriceCents, res.Items[0].Currency, tt.wantTotal, tt.wantUnit, tt.wantCurr)
		}
		if first, err := reserve("o1"); err != nil || first.TotalCents != tt.wantFirst {
			t.Errorf("o1 again after %s: total %d, %v; want %d", tt.order, first.TotalCents, err, tt.wantFirst)
		}
	}

	if err := s.Delete(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	_, err = reserve("after-delete")
	checkErr(t, err, catalog.UnknownProducts(p.ID))
	if err := s.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// A change of price that timed out (answered 503) but lands afterwards prices the orders
// placed after it landed: the price read while its outcome was unknown is not cached.
func TestLatePriceChangePricesLaterOrders(t *testing.T) {
	const timeout = 2 * time.Second
	ctx := t.Context()
	s, link, _ := slowStore(t, timeout)
	s.lateWriteWindow = 2 * timeout // past the held-back update, as in production
	p, err := s.Create(ctx, catalog.NewProduct{Name: "Mug", PriceCents: 100, Currency: "USD", Stock: 10})
	if err != nil {
		t.Fatal(err)
	}
	reserve := func(order string) int64 {
		t.Helper()
		res, _, err := s.Reserve(ctx, catalog.ReservationRequest{OrderID: order, Items: []catalog.ReservationItem{{ProductID: p.ID, Quantity: 1}}})
		if err != nil {
			t.Fatalf("%s: %v", order, err)
		}
		return res.Items[0].UnitPriceCents
	}

	landed := link.DelayNext(timeout+time.Second, "update", ProductsCollection, "priceCents")
	if _, err := s.Update(ctx, p.ID, catalog.Patch{PriceCents: ptr(int64(500))}); err == nil {
		t.Fatal("the held-back update did not time out")
	}
	if got := reserve("placed-while-unknown"); got != 100 && got != 500 {
		t.Errorf("order placed while the change's outcome was unknown: priced %d, want 100 or 500", got)
	}
	<-landed
	for _, order := range []string{"placed-after", "placed-after-again"} {
		if got := reserve(order); got != 500 {
			t.Errorf("%s: priced %d, want 500 (the change landed)", order, got)
		}
	}
	if err := s.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

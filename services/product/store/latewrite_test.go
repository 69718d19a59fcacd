package store

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/product/catalog"
)

// lateStep is one thing done to the one product of TestLateWritesApplyToNothingElse.
type lateStep func(ctx context.Context, s *Store, product string) error

func reserveUnits(order string, quantity int64) lateStep {
	return func(ctx context.Context, s *Store, product string) error {
		_, _, err := s.Reserve(ctx, catalog.ReservationRequest{OrderID: order, Items: []catalog.ReservationItem{{ProductID: product, Quantity: quantity}}})
		return err
	}
}

func release(order string) lateStep {
	return func(ctx context.Context, s *Store, _ string) error { return s.Release(ctx, order) }
}

// An update the database gets after the store gave up on it (its operation timeout: the
// request answered 503, and the order service releases the order at once) applies to
// the state it was computed from or to nothing: the steps that ran meanwhile read a
// state that still holds. Each case runs steps, then one with an update (of the product
// or of the reservation) the network holds back past the timeout, then more steps
// while it is held back (or after it landed), and then checks the books once everything
// has landed, and again once every order is released.
func TestLateWritesApplyToNothingElse(t *testing.T) {
	const (
		stock   = 3
		timeout = 2 * time.Second
	)
	var (
		// What the held-back update holds: a take or a give-back both move the stock; a
		// reservation's record of the lines taken moves it to reserved.
		stockMove = []string{"update", ProductsCollection, "$inc"}
		record    = []string{"update", ReservationsCollection, stateReserved}
	)
	tests := []struct {
		name   string
		before []lateStep
		late   lateStep // one of its updates is held back
		held   []string // what that update holds (stockMove when nil)
		lands  bool     // the held-back update lands before the steps after (else after them)
		after  []lateStep
		want   int64 // the stock at the end
	}{
		{name: "a take lands late; another order takes the rest meanwhile",
			late: reserveUnits("A", 2), after: []lateStep{reserveUnits("B", 3)}, want: 0},
		{name: "a take lands late; the order is released meanwhile",
			late: reserveUnits("A", 2), after: []lateStep{release("A")}, want: 3},
		{name: "a take lands late; the order is retried meanwhile",
			late: reserveUnits("A", 2), after: []lateStep{reserveUnits("A", 2)}, want: 1},
		{name: "a take lands late; the order is retried, then released, meanwhile",
			late: reserveUnits("A", 2), after: []lateStep{reserveUnits("A", 2), release("A")}, want: 3},
		{name: "a take lands late but before the release, which gives it back",
			late: reserveUnits("A", 2), lands: true, after: []lateStep{release("A")}, want: 3},
		{name: "a give-back lands late; the release is repeated meanwhile",
			before: []lateStep{reserveUnits("A", 2)}, late: release("A"), after: []lateStep{release("A")}, want: 3},
		{name: "a give-back lands late; the release is repeated, and another order takes all, meanwhile",
			before: []lateStep{reserveUnits("A", 2)}, late: release("A"),
			after: []lateStep{release("A"), reserveUnits("B", 3)}, want: 0},
		{name: "a reservation's record lands late; the order is released meanwhile",
			late: reserveUnits("A", 2), held: record, after: []lateStep{release("A")}, want: 3},
		{name: "a reservation's record lands late; the order is retried meanwhile",
			late: reserveUnits("A", 2), held: record, after: []lateStep{reserveUnits("A", 2)}, want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s, link, db := slowStore(t, timeout)
			// The link holds the update back before the server reads it: the fence stops
			// it without waiting (TestFenceWaitsForAnUpdateInsideFerretDB has the wait).
			s.lateWriteWindow = 0
			p, err := s.Create(ctx, catalog.NewProduct{Name: "Last three", PriceCents: 100, Currency: "USD", Stock: stock})
			if err != nil {
				t.Fatal(err)
			}
			for i, step := range tc.before {
				if err := step(ctx, s, p.ID); err != nil {
					t.Fatalf("step %d before: %v", i, err)
				}
			}

			held := tc.held
			if held == nil {
				held = stockMove
			}
			answered := link.DelayNext(timeout+time.Second, held...)
			if err := tc.late(ctx, s, p.ID); err == nil {
				t.Fatal("the step whose write is held back past its timeout succeeded")
			}
			landed := func() {
				select {
				case <-answered:
				case <-time.After(30 * time.Second):
					t.Fatal("the held-back write was never answered")
				}
			}
			if tc.lands {
				landed()
			}
			for i, step := range tc.after {
				if err := step(ctx, s, p.ID); err != nil {
					t.Errorf("step %d after: %v", i, err)
				}
			}
			landed()
			if err := s.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			checkBooks(t, New(db), p.ID, stock, tc.want)

			// What landed late changes nothing that comes after: releasing every order
			// again gives back what is reserved, once.
			for _, order := range []string{"A", "B"} {
				if err := s.Release(ctx, order); err != nil {
					t.Errorf("release %s at the end: %v", order, err)
				}
			}
			if err := s.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			checkBooks(t, New(db), p.ID, stock, stock)
		})
	}
}

// checkBooks requires that product (created with initial units) has want in stock, that
// every unit it is short of initial is held by a reserved reservation, and that no hold
// is left on it (every order's record is written).
func checkBooks(t *testing.T, s *Store, product string, initial, want int64) {
	t.Helper()
	ctx := t.Context()
	oid, _ := bson.ObjectIDFromHex(product)
	var doc productDoc
	if err := s.products.FindOne(ctx, byID(oid)).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	cur, err := s.reservations.Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var reservations []reservationDoc
	if err := cur.All(ctx, &reservations); err != nil {
		t.Fatal(err)
	}
	var reserved int64
	for _, r := range reservations {
		for _, l := range r.Lines {
			if r.State == stateReserved && l.ProductID == product {
				reserved += l.Quantity
			}
		}
	}
	if doc.Stock != want || doc.Stock+reserved != initial || len(doc.Holds) != 0 {
		t.Errorf("stock %d, %d units reserved, holds %v; want stock %d, %d units in all, no hold",
			doc.Stock, reserved, doc.Holds, want, initial)
	}
}

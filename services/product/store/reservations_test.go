package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/product/catalog"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// crashState is what a process that stopped midway leaves in the database: the
// reservation document in some state with what it recorded of each line, and for some
// lines the stock taken (held), taken and given back (returned), or taken with the hold
// removed after the record (cleared).
type crashState struct {
	state    string
	failure  *failureDoc
	recorded [2]string // each line's record: "", lineTaken or lineSettled
	held     []int     // lines whose stock was taken: hold {returned: false}
	returned []int     // lines whose stock was taken, then given back: hold {returned: true}
	cleared  []int     // lines whose stock was taken, hold removed once recorded taken
}

func TestCrashMidwayIsRepaired(t *testing.T) {
	const stock = 10
	tests := []struct {
		name  string
		crash crashState
		// quantities of the two lines; the second product has stock 10 too
		quantities [2]int64
		// what is retried: a reservation request (POST) or a release (DELETE)
		release bool
		wantErr error
		// stock of each product once repaired
		want [2]int64
		// holds of the order left on the products once repaired: only those a crash left
		// after the record that made them useless (harmless, see reservations.go)
		leftHolds int
	}{
		{name: "pending, first line taken: the retry takes the second",
			crash: crashState{state: statePending, held: []int{0}}, quantities: [2]int64{3, 4},
			want: [2]int64{7, 6}},
		{name: "pending, both lines taken: the retry takes nothing more",
			crash: crashState{state: statePending, held: []int{0, 1}}, quantities: [2]int64{3, 4},
			want: [2]int64{7, 6}},
		{name: "pending, first line taken, second short: the retry gives the first back",
			crash: crashState{state: statePending, held: []int{0}}, quantities: [2]int64{3, 11},
			wantErr: catalog.InsufficientStock(catalog.Shortage{Requested: 11, Available: 10}),
			want:    [2]int64{10, 10}},
		{name: "failed before its first line was given back: the retry gives it back",
			crash: crashState{state: stateFailed, held: []int{0},
				failure: &failureDoc{Shortages: []shortageDoc{{Requested: 11, Available: 10}}}},
			quantities: [2]int64{3, 11},
			wantErr:    catalog.InsufficientStock(catalog.Shortage{Requested: 11, Available: 10}),
			want:       [2]int64{10, 10}},
		{name: "pending, first line taken, then released: the release gives it back",
			crash: crashState{state: statePending, held: []int{0}}, quantities: [2]int64{3, 4}, release: true,
			want: [2]int64{10, 10}},
		{name: "released with one line given back: the repeated release gives back the other",
			crash: crashState{state: stateReleased, returned: []int{0}, held: []int{1}}, quantities: [2]int64{3, 4}, release: true,
			want: [2]int64{10, 10}},
		{name: "released with one line given back: a reservation request gives back the other",
			crash: crashState{state: stateReleased, returned: []int{0}, held: []int{1}}, quantities: [2]int64{3, 4},
			wantErr: catalog.ErrReleased, want: [2]int64{10, 10}},
		{name: "reserved and recorded, holds not yet removed: the retry takes nothing more",
			crash:      crashState{state: stateReserved, recorded: [2]string{lineTaken, lineTaken}, held: []int{0, 1}},
			quantities: [2]int64{3, 4}, want: [2]int64{7, 6}, leftHolds: 2},
		{name: "reserved and recorded, holds not yet removed: the release gives both back",
			crash:      crashState{state: stateReserved, recorded: [2]string{lineTaken, lineTaken}, held: []int{0, 1}},
			quantities: [2]int64{3, 4}, release: true, want: [2]int64{10, 10}},
		{name: "reserved, one hold removed: the retry takes nothing more",
			crash:      crashState{state: stateReserved, recorded: [2]string{lineTaken, lineTaken}, cleared: []int{0}, held: []int{1}},
			quantities: [2]int64{3, 4}, want: [2]int64{7, 6}, leftHolds: 1},
		{name: "reserved, holds removed: the release gives both back",
			crash:      crashState{state: stateReserved, recorded: [2]string{lineTaken, lineTaken}, cleared: []int{0, 1}},
			quantities: [2]int64{3, 4}, release: true, want: [2]int64{10, 10}},
		{name: "released, a removed hold given back, crash before the record: the repeated release gives back the other",
			crash:      crashState{state: stateReleased, recorded: [2]string{lineTaken, lineTaken}, returned: []int{0}, cleared: []int{1}},
			quantities: [2]int64{3, 4}, release: true, want: [2]int64{10, 10}},
		{name: "released, a removed hold given back, crash before the record: a reservation request gives back the other",
			crash:      crashState{state: stateReleased, recorded: [2]string{lineTaken, lineTaken}, returned: []int{0}, cleared: []int{1}},
			quantities: [2]int64{3, 4}, wantErr: catalog.ErrReleased, want: [2]int64{10, 10}},
		{name: "released and settled, crash before the holds were removed: the repeated release gives nothing more",
			crash:      crashState{state: stateReleased, recorded: [2]string{lineSettled, lineSettled}, returned: []int{0, 1}},
			quantities: [2]int64{3, 4}, release: true, want: [2]int64{10, 10}, leftHolds: 2},
		{name: "failed and recorded, crash before the give back: the retry gives the taken line back",
			crash: crashState{state: stateFailed, recorded: [2]string{lineTaken, ""}, held: []int{0},
				failure: &failureDoc{Shortages: []shortageDoc{{Requested: 11, Available: 10}}}},
			quantities: [2]int64{3, 11},
			wantErr:    catalog.InsufficientStock(catalog.Shortage{Requested: 11, Available: 10}),
			want:       [2]int64{10, 10}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s := New(testenv.MongoDB(t))
			ids := twoProducts(t, s, stock)
			req := catalog.ReservationRequest{OrderID: "crashed", Items: []catalog.ReservationItem{
				{ProductID: ids[0], Quantity: tc.quantities[0]}, {ProductID: ids[1], Quantity: tc.quantities[1]},
			}}
			writeCrashState(t, s, req, tc.crash)

			var err error
			if tc.release {
				err = s.Release(ctx, req.OrderID)
			} else {
				_, _, err = s.Reserve(ctx, req)
			}
			checkErr(t, err, tc.wantErr)
			checkStock(t, s, ids, tc.want)

			if err := s.Wait(t.Context()); err != nil {
				t.Fatal(err)
			}
			if n := countHolds(t, s, ids, req.OrderID); n != tc.leftHolds {
				t.Errorf("%d holds of the order left on its products, want %d", n, tc.leftHolds)
			}

			// Repairing again changes nothing.
			if _, _, err := s.Reserve(ctx, req); tc.wantErr == nil && !tc.release && err != nil {
				t.Errorf("second retry: %v", err)
			}
			if tc.release {
				if err := s.Release(ctx, req.OrderID); err != nil {
					t.Errorf("second release: %v", err)
				}
			}
			checkStock(t, s, ids, tc.want)
		})
	}
}

// twoProducts creates two products of 100 USD cents with stock units each.
func twoProducts(t *testing.T, s *Store, stock int64) [2]string {
	t.Helper()
	var ids [2]string
	for i := range ids {
		p, err := s.Create(t.Context(), catalog.NewProduct{Name: "P", PriceCents: 100, Currency: "USD", Stock: stock})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = p.ID
	}
	return ids
}

// writeCrashState writes req's reservation document and its products' stock as a
// process that stopped in crash would have left them.
func writeCrashState(t *testing.T, s *Store, req catalog.ReservationRequest, crash crashState) {
	t.Helper()
	ctx := t.Context()
	now := time.Now().UTC()
	doc := reservationDoc{OrderID: req.OrderID, State: crash.state, Failure: crash.failure, CreatedAt: now, UpdatedAt: now}
	for i, it := range req.Items {
		doc.Lines = append(doc.Lines, lineDoc{ProductID: it.ProductID, Quantity: it.Quantity, UnitPriceCents: 100, Currency: "USD", Stock: crash.recorded[i]})
		doc.TotalCents += 100 * it.Quantity
	}
	if doc.Failure != nil {
		for i := range doc.Failure.Shortages {
			doc.Failure.Shortages[i].ProductID = req.Items[1].ProductID
		}
	}
	if _, err := s.reservations.InsertOne(ctx, doc); err != nil {
		t.Fatal(err)
	}
	setHold := func(line int, returned, cleared bool) {
		l := doc.Lines[line]
		oid, _ := bson.ObjectIDFromHex(l.ProductID)
		taken := -l.Quantity
		if returned {
			taken = 0
		}
		update := bson.D{{Key: "$inc", Value: bson.D{{Key: "stock", Value: taken}}}}
		if !cleared {
			update = append(update, bson.E{Key: "$set", Value: bson.D{{Key: holdKey(doc.OrderID), Value: hold{Quantity: l.Quantity, Returned: returned}}}})
		}
		if _, err := s.products.UpdateOne(ctx, byID(oid), update); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range crash.held {
		setHold(i, false, false)
	}
	for _, i := range crash.returned {
		setHold(i, true, false)
	}
	for _, i := range crash.cleared {
		setHold(i, false, true)
	}
}

// countHolds counts the holds of order on the products ids.
func countHolds(t *testing.T, s *Store, ids [2]string, order string) int {
	t.Helper()
	n := 0
	for _, id := range ids {
		oid, _ := bson.ObjectIDFromHex(id)
		p, err := s.holdOf(t.Context(), oid, order, false)
		if err != nil {
			t.Fatal(err)
		}
		if p.hold != nil {
			n++
		}
	}
	return n
}

// The holds of an order do not outlive its reservation's record: a product's document
// keeps none for orders reserved or released, however many there were.
func TestHoldsLeaveWithTheRecord(t *testing.T) {
	ctx := t.Context()
	s := New(testenv.MongoDB(t))
	a, _ := s.Create(ctx, catalog.NewProduct{Name: "A", PriceCents: 100, Currency: "USD", Stock: 100})
	b, _ := s.Create(ctx, catalog.NewProduct{Name: "B", PriceCents: 100, Currency: "USD", Stock: 100})
	for i := range 6 {
		order := fmt.Sprintf("order-%d", i)
		req := catalog.ReservationRequest{OrderID: order, Items: []catalog.ReservationItem{
			{ProductID: a.ID, Quantity: 2}, {ProductID: b.ID, Quantity: 3},
		}}
		if _, _, err := s.Reserve(ctx, req); err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			if err := s.Release(ctx, order); err != nil {
				t.Fatal(err)
			}
		}
	}
	// One order fails on B, after taking (and giving back) A.
	_, _, err := s.Reserve(ctx, catalog.ReservationRequest{OrderID: "too-many", Items: []catalog.ReservationItem{
		{ProductID: a.ID, Quantity: 1}, {ProductID: b.ID, Quantity: 1000},
	}})
	checkErr(t, err, catalog.InsufficientStock(catalog.Shortage{Requested: 1000, Available: 91}))
	checkStock(t, s, [2]string{a.ID, b.ID}, [2]int64{94, 91})
	if err := s.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{a.ID, b.ID} {
		oid, _ := bson.ObjectIDFromHex(id)
		var doc productDoc
		if err := s.products.FindOne(ctx, byID(oid)).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Holds) != 0 {
			t.Errorf("product %s keeps holds %v, want none", id, doc.Holds)
		}
	}
}

func checkErr(t *testing.T, got, want error) {
	t.Helper()
	if want == nil {
		if got != nil {
			t.Fatalf("retry: %v, want success", got)
		}
		return
	}
	var g, w *apperr.Error
	if !errors.As(got, &g) || !errors.As(want, &w) || !errors.Is(g, w.Kind) || g.Message != w.Message || len(g.Details) != len(w.Details) {
		t.Fatalf("retry: %v, want %v", got, want)
	}
}

func checkStock(t *testing.T, s *Store, ids [2]string, want [2]int64) {
	t.Helper()
	for i, id := range ids {
		p, err := s.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if p.Stock != want[i] {
			t.Errorf("stock of product %d = %d, want %d", i, p.Stock, want[i])
		}
	}
}

// A product deleted while an order holds it: the reservation request that finds it gone
// fails and gives back the other lines; releasing later has nothing to give back to.
func TestProductDeletedMidway(t *testing.T) {
	ctx := t.Context()
	s := New(testenv.MongoDB(t))
	a, _ := s.Create(ctx, catalog.NewProduct{Name: "A", PriceCents: 100, Currency: "USD", Stock: 5})
	b, _ := s.Create(ctx, catalog.NewProduct{Name: "B", PriceCents: 100, Currency: "USD", Stock: 5})
	req := catalog.ReservationRequest{OrderID: "gone", Items: []catalog.ReservationItem{
		{ProductID: a.ID, Quantity: 2}, {ProductID: b.ID, Quantity: 2},
	}}
	writeCrashState(t, s, req, crashState{state: statePending, held: []int{0}})
	if err := s.Delete(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	_, _, err := s.Reserve(ctx, req)
	checkErr(t, err, catalog.UnknownProducts(b.ID))
	if p, _ := s.Get(ctx, a.ID); p.Stock != 5 {
		t.Errorf("stock of A = %d, want 5 (given back)", p.Stock)
	}
	if err := s.Release(ctx, req.OrderID); err != nil {
		t.Errorf("release: %v", err)
	}
	if p, _ := s.Get(ctx, a.ID); p.Stock != 5 {
		t.Errorf("stock of A after release = %d, want 5", p.Stock)
	}
}

// Many orders at once on two products, some released while others reserve, some too
// big to serve: whatever the batches, each product's stock ends at its start minus the
// units of the orders that hold it, and no hold is left once the removals are done.
func TestConcurrentOrdersKeepTheBooks(t *testing.T) {
	ctx := t.Context()
	s := New(testenv.MongoDB(t))
	const start = 20
	ids := twoProducts(t, s, start)
	const orders = 40
	type outcome struct {
		reserved, released bool
	}
	outcomes := make([]outcome, orders)
	quantity := func(i, line int) int64 { return int64(1 + (i+line)%4) }
	var wg sync.WaitGroup
	for i := range orders {
		wg.Go(func() {
			order := fmt.Sprintf("o-%d", i)
			req := catalog.ReservationRequest{OrderID: order, Items: []catalog.ReservationItem{
				{ProductID: ids[0], Quantity: quantity(i, 0)}, {ProductID: ids[1], Quantity: quantity(i, 1)},
			}}
			if i%7 == 0 {
				req.Items[1].Quantity = catalog.MaxQuantity // never served
			}
			_, _, err := s.Reserve(ctx, req)
			switch {
			case err == nil:
				outcomes[i].reserved = true
			case errors.Is(err, apperr.ErrConflict):
				// short: it holds nothing
			default:
				t.Errorf("reserve %s: %v", order, err)
			}
			if i%3 == 0 {
				if err := s.Release(ctx, order); err != nil {
					t.Errorf("release %s: %v", order, err)
				}
				outcomes[i].released = true
			}
		})
	}
	wg.Wait()
	if err := s.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	var want [2]int64
	for line := range want {
		want[line] = start
		for i, o := range outcomes {
			if o.reserved && !o.released {
				want[line] -= quantity(i, line)
			}
		}
	}
	if want[0] < 0 || want[1] < 0 {
		t.Errorf("the orders holding stock hold more than there was: %v left", want)
	}
	checkStock(t, s, ids, want)
	for i := range orders {
		if n := countHolds(t, s, ids, fmt.Sprintf("o-%d", i)); n != 0 {
			t.Errorf("order %d left %d holds", i, n)
		}
	}
}

package order

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestSweepFinishesEveryPageOfABacklog: a backlog of placements larger than a page (every
// order that failed while the product service was out leaves one) is finished in one run,
// past the placements the sweep keeps (their stock not taken back yet), and past pages that
// end among placements made in the same millisecond; a run stops after a page once its
// budget is spent.
func TestSweepFinishesEveryPageOfABacklog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, product := newServiceWithProduct(ctx, t)
	oldest := s.now().Add(-time.Hour)
	const refused, taken = 2*placementPage + 10, placementPage + 30
	var ids []bson.ObjectID
	for i := range refused + taken {
		id := bson.NewObjectID()
		ids = append(ids, id)
		if i < refused {
			product.answer(id, http.StatusServiceUnavailable) // its stock is not taken back yet
		}
		// Three at a time in one millisecond: pages end among them.
		p := placement{ID: id, CreatedAt: oldest.Add(time.Duration(i/3) * time.Millisecond)}
		if err := s.store.recordPlacement(ctx, p); err != nil {
			t.Fatal(err)
		}
	}

	if n, err := s.sweep(ctx, time.Minute, time.Nanosecond); err != nil || n != 0 {
		t.Fatalf("a run out of budget: %d finished (%v), want 0: it stops after its first page, all kept", n, err)
	}
	if n, err := s.sweep(ctx, time.Minute, time.Minute); err != nil || n != taken {
		t.Fatalf("sweep: %d finished (%v), want %d", n, err, taken)
	}
	left, err := s.store.placements.CountDocuments(ctx, bson.D{})
	if err != nil || left != refused {
		t.Fatalf("%d placements left (%v), want the %d whose stock is not back", left, err, refused)
	}
	for i, id := range ids {
		want := 1 // each tried once in the run with a budget, the first page twice
		if i < placementPage {
			want = 2
		}
		if got := product.released(id); got != want {
			t.Fatalf("placement %d: %d releases, want %d", i, got, want)
		}
	}
}

package store

import (
	"context"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/product/catalog"
)

// A PATCH whose client goes away (a closed connection, the gateway's timeout) while it
// waits for its turn leaves no update of unknown outcome behind: the product's next
// reservation does not wait lateWriteWindow (11 s) for a fence.
func TestUpdateOfAGoneCallerDoesNotStallTheProduct(t *testing.T) {
	s := New(testenv.MongoDB(t))
	ids := twoProducts(t, s, 10)
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	stock := int64(5)
	for range 8 { // Gate.Do picks the free slot or the ended context at random
		_, _ = s.Update(gone, ids[0], catalog.Patch{Stock: &stock})
	}
	start := time.Now()
	ctx, stop := context.WithTimeout(t.Context(), 5*time.Second)
	defer stop()
	_, _, err := s.Reserve(ctx, catalog.ReservationRequest{OrderID: "A", Items: []catalog.ReservationItem{{ProductID: ids[0], Quantity: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the reservation took %v after an update whose caller had gone", took)
	}
}

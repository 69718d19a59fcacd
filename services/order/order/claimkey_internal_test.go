package order

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
)

// TestClaimKeyWhileTheSweepFreesIt: the sweep frees the key of a placement it finishes
// (its stock given back) without the key's lock, so a retry with the key may find it
// claimed on insert and gone on the read that follows. The retry then claims it afresh,
// as the key is free; it must not fail (a 500 to the client, whom the 503 before it told
// to send the request again with the same key).
func TestClaimKeyWhileTheSweepFreesIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := freshStore(ctx, t)
	for i := range 1000 {
		abandoned := mongodb.NewID()
		if _, err := s.claimKey(ctx, idempotencyKey{ID: "user\x00key", OrderID: abandoned, Fingerprint: "f"}); err != nil {
			t.Fatal(err)
		}
		retry := idempotencyKey{ID: "user\x00key", OrderID: mongodb.NewID(), Fingerprint: "f"}
		var got idempotencyKey
		var err error
		var wg sync.WaitGroup
		wg.Go(func() { got, err = s.claimKey(ctx, retry) })
		wg.Go(func() {
			// Spread over the claim's insert and the read after it.
			time.Sleep(time.Duration(i%40) * 50 * time.Microsecond)
			if err := s.forgetKey(ctx, "user\x00key", abandoned); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
		if err != nil {
			t.Fatalf("round %d: claimKey while the sweep frees the key: %v", i, err)
		}
		if got.OrderID != abandoned && got.OrderID != retry.OrderID {
			t.Fatalf("round %d: claim for order %s, want %s or %s", i, got.OrderID.Hex(), abandoned.Hex(), retry.OrderID.Hex())
		}
		if _, err := s.keys.DeleteMany(ctx, bson.D{}); err != nil {
			t.Fatal(err)
		}
	}
}

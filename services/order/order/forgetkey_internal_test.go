package order

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// TestForgetKeyKeepsAnotherOrdersClaim: forgetting a key for an order removes its claim, so
// a retry places a new order, and leaves alone a claim of the key for another order (made
// once the first was forgotten), on a real MongoDB-wire server.
func TestForgetKeyKeepsAnotherOrdersClaim(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := freshStore(ctx, t)
	claim := func(orderID bson.ObjectID) bson.ObjectID {
		t.Helper()
		got, err := s.claimKey(ctx, idempotencyKey{ID: "u1:k1", OrderID: orderID, Fingerprint: "f"})
		if err != nil {
			t.Fatal(err)
		}
		return got.OrderID
	}
	a, b, c := bson.NewObjectID(), bson.NewObjectID(), bson.NewObjectID()
	if got := claim(a); got != a {
		t.Fatalf("first claim for %s, want %s", got.Hex(), a.Hex())
	}
	if err := s.forgetKey(ctx, "u1:k1", a); err != nil {
		t.Fatal(err)
	}
	if got := claim(b); got != b {
		t.Fatalf("after forgetting a's claim, the key is %s's, want b's", got.Hex())
	}
	// A late forget for a, the key now b's: b's claim stays.
	if err := s.forgetKey(ctx, "u1:k1", a); err != nil {
		t.Fatal(err)
	}
	if got := claim(c); got != b {
		t.Errorf("after a late forget for a, the key is %s's, want b's still", got.Hex())
	}
	// Forgetting a key never claimed is nothing.
	if err := s.forgetKey(ctx, "u1:none", a); err != nil {
		t.Errorf("forget of an unclaimed key: %v", err)
	}
}

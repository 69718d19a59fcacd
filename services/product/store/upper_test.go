package store

import (
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/product/catalog"
)

// TestReleaseOfALineStoredInUpperCase: a reservation an earlier version stored with the
// product id as the client spelt it, in upper case, gives its units back when released.
func TestReleaseOfALineStoredInUpperCase(t *testing.T) {
	ctx := t.Context()
	s := New(testenv.MongoDB(t))
	p, err := s.Create(ctx, catalog.NewProduct{Name: "P", PriceCents: 100, Currency: "USD", Stock: 10})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	// As the earlier code left it: units taken, recorded, hold removed.
	doc := reservationDoc{OrderID: "old-order", State: stateReserved, TotalCents: 300, CreatedAt: now, UpdatedAt: now,
		Lines: []lineDoc{{ProductID: strings.ToUpper(p.ID), Quantity: 3, UnitPriceCents: 100, Currency: "USD", Stock: lineTaken}}}
	if _, err := s.reservations.InsertOne(ctx, doc); err != nil {
		t.Fatal(err)
	}
	oid, _ := bson.ObjectIDFromHex(p.ID)
	if _, err := s.products.UpdateOne(ctx, byID(oid), bson.D{{Key: "$inc", Value: bson.D{{Key: "stock", Value: -3}}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, "old-order"); err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := s.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	var after reservationDoc
	_ = s.reservations.FindOne(ctx, bson.D{{Key: "_id", Value: "old-order"}}).Decode(&after)
	t.Logf("after release: stock %d (want 10), reservation state %s, line record %q", got.Stock, after.State, after.Lines[0].Stock)
	if got.Stock != 10 {
		t.Errorf("stock %d after the release, want 10: the 3 units are lost", got.Stock)
	}
}

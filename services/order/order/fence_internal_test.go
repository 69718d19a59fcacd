package order

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// TestFenceSettlesAFailedInsert checks the store's answer to "was this order stored?"
// after its insert failed, on a real MongoDB-wire server: a stand-in takes the id so that
// an insert still on its way cannot land, and the stand-in is never shown.
func TestFenceSettlesAFailedInsert(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := freshStore(ctx, t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	order := func(id bson.ObjectID) document {
		return document{Order: Order{ID: id, UserID: "u1", Status: Pending, TotalCents: 100, Currency: "USD", CreatedAt: now, UpdatedAt: now}}
	}

	t.Run("the insert never landed: fenced, and a late insert fails", func(t *testing.T) {
		id := bson.NewObjectID()
		if _, err := s.fence(ctx, id, now); !errors.Is(err, errNotFound) {
			t.Fatalf("fence = %v, want errNotFound (the stand-in holds the id)", err)
		}
		// The insert that was on its way arrives: it must not store the order.
		if _, err := s.orders.InsertOne(ctx, order(id)); !mongodb.IsDuplicateKey(err) {
			t.Fatalf("late insert: %v, want a duplicate key error", err)
		}
		if _, err := s.get(ctx, id); !errors.Is(err, errNotFound) {
			t.Errorf("get = %v, want errNotFound: the stand-in is no order", err)
		}
		orders, _, err := s.list(ctx, "", "", mongodb.PageRequest{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range orders {
			if o.ID == id {
				t.Errorf("list shows the stand-in %+v", o)
			}
		}
		if _, err := s.fence(ctx, id, now); !errors.Is(err, errNotFound) {
			t.Errorf("fence again = %v, want errNotFound", err)
		}
		if changed, err := s.settle(ctx, id, settlement{status: Paid, now: now, published: func(bson.ObjectID) map[string]bool { return nil }}); changed || err != nil {
			t.Errorf("settle of a stand-in: changed=%v err=%v, want nothing done", changed, err)
		}
	})

	t.Run("the insert landed: the order is found and kept", func(t *testing.T) {
		id := bson.NewObjectID()
		if _, err := s.orders.InsertOne(ctx, order(id)); err != nil {
			t.Fatal(err)
		}
		got, err := s.fence(ctx, id, now)
		if err != nil || got.ID != id || got.Status != Pending {
			t.Fatalf("fence = %+v, %v; want the stored order", got, err)
		}
	})
}

// freshStore returns the store of the order service on a fresh database of a real
// MongoDB-wire server.
func freshStore(ctx context.Context, t *testing.T) *store {
	t.Helper()
	s, err := newStore(ctx, testenv.MongoDB(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

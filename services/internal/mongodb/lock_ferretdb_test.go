package mongodb_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// Read-check-write of one document under Serialize, with every filter exactly {_id}:
// 40 concurrent takes of one unit from stock 10 take exactly 10 (on FerretDB, without
// the lock, several read the same stock and units are lost), and this in each of two
// databases holding a document with the same _id at once.
func TestSerializeMakesReadCheckWriteAtomic(t *testing.T) {
	ctx := context.Background()
	var locks mongodb.KeyedMutex
	id := mongodb.NewID()
	colls := []*mongo.Collection{
		testenv.MongoDB(t).Collection("stock"),
		testenv.MongoDB(t).Collection("stock"),
	}
	for _, c := range colls {
		if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "stock", Value: 10}}); err != nil {
			t.Fatal(err)
		}
	}
	errShort := errors.New("short")
	take := func(c *mongo.Collection) error {
		return locks.Serialize(c, id, func() error {
			var doc struct{ Stock int64 }
			if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc); err != nil {
				return err
			}
			if doc.Stock < 1 {
				return errShort
			}
			_, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "stock", Value: -1}}}})
			return err
		})
	}
	var taken [2]atomic.Int64
	var wg sync.WaitGroup
	for i := range 80 {
		wg.Go(func() {
			switch err := take(colls[i%2]); {
			case err == nil:
				taken[i%2].Add(1)
			case !errors.Is(err, errShort):
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i, c := range colls {
		var doc struct{ Stock int64 }
		if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		if taken[i].Load() != 10 || doc.Stock != 0 {
			t.Errorf("collection %d: %d takes succeeded, stock %d; want 10 and 0", i, taken[i].Load(), doc.Stock)
		}
	}
}

// Package store keeps products and reservations in MongoDB (or FerretDB).
//
// Every write is a single-document update by _id made while holding that document's
// lock in this process (mongodb.KeyedMutex): FerretDB v1 does not make a conditional
// update atomic, and it decodes the whole collection in Go for any filter but exactly
// {_id}, so conditions are checked in Go on the document read under the lock. Stock is
// never negative: a take reads the stock and writes the $inc under one lock, and an
// update that timed out but may still reach the database is fenced off before the next
// read of its document (fence.go), so it cannot land on a state it was not computed
// from (within the limits fence.go states). There are no multi-document transactions (FerretDB has none), so the
// reservation algorithm in reservations.go is built from such updates alone; see its
// comment. The locks being in-process, one process serves a database (one replica).
package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/product/catalog"
)

// Collection names.
const (
	ProductsCollection     = "products"
	ReservationsCollection = "reservations"
)

// errProductNotFound is the contract's 404 for a product id.
var errProductNotFound = apperr.NotFound("Product not found")

// Store is the product service's storage. It is safe for concurrent use.
type Store struct {
	products     *mongo.Collection
	reservations *mongo.Collection
	// locks serializes this process's work on one document (a product) or one order;
	// see reservations.go.
	locks mongodb.KeyedMutex
	// batches queues the takes and hold removals waiting for each product (batch.go).
	batches batches
	// removals runs the removals of holds the requests do not wait for; delayed holds
	// the timers of those waiting for a take to ride along with (removeHold).
	// removalCtx bounds them: Wait cancels it when the shutdown's deadline passes, so a
	// stalled database does not hold the process past it.
	removals     sync.WaitGroup
	removalCtx   context.Context
	stopRemovals context.CancelFunc
	delayed      struct {
		mu     sync.Mutex
		timers map[*time.Timer]func()
	}
	// unknown holds the updates whose outcome is unknown, until fenced (fence.go), and
	// lateWriteWindow how long after one was sent its fence waits (tests shorten it).
	unknown         unknownWrites
	lateWriteWindow time.Duration
	// prices caches what pricing a reservation reads of a product (prices.go).
	prices priceCache
	// writes queues this process's writes, one at a time (see mongodb.Gate: on FerretDB
	// that is much faster than letting SQLite arbitrate).
	writes *mongodb.Gate
	now    func() time.Time
}

// New returns the Store of db. Both collections are keyed by _id only, so there is no
// index to create.
func New(db *mongo.Database) *Store {
	removalCtx, stopRemovals := context.WithCancel(context.Background())
	return &Store{
		products:        db.Collection(ProductsCollection),
		reservations:    db.Collection(ReservationsCollection),
		removalCtx:      removalCtx,
		stopRemovals:    stopRemovals,
		writes:          mongodb.NewGate(1),
		lateWriteWindow: lateWriteWindow,
		now:             func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) },
	}
}

// productDoc is a product as stored. Holds records, per order id, the units a
// reservation took from this product's stock while the reservation has not yet recorded
// it: it lives in the same document as stock so that taking and giving back are each
// one update (see reservations.go), and it is removed once recorded, so it holds only
// the orders in flight.
type productDoc struct {
	ID          bson.ObjectID   `bson:"_id"`
	Name        string          `bson:"name"`
	Description string          `bson:"description"`
	PriceCents  int64           `bson:"priceCents"`
	Currency    string          `bson:"currency"`
	Stock       int64           `bson:"stock"`
	Holds       map[string]hold `bson:"holds,omitempty"`
	CreatedAt   time.Time       `bson:"createdAt"`
	UpdatedAt   time.Time       `bson:"updatedAt"`
}

// hold is the stock one order took from one product.
type hold struct {
	Quantity int64 `bson:"quantity"`
	Returned bool  `bson:"returned"`
}

func (d productDoc) product() catalog.Product {
	return catalog.Product{
		ID: d.ID.Hex(), Name: d.Name, Description: d.Description,
		PriceCents: d.PriceCents, Currency: d.Currency, Stock: d.Stock,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
}

// withoutHolds keeps the holds, which only the reservation algorithm reads, and the
// fences (fence.go) off the wire.
var withoutHolds = bson.D{{Key: "holds", Value: 0}, {Key: "fences", Value: 0}}

// Create stores a new product (already normalized).
func (s *Store) Create(ctx context.Context, np catalog.NewProduct) (catalog.Product, error) {
	now := s.now()
	doc := productDoc{
		ID: mongodb.NewID(), Name: np.Name, Description: np.Description,
		PriceCents: np.PriceCents, Currency: np.Currency, Stock: np.Stock,
		CreatedAt: now, UpdatedAt: now,
	}
	if err := s.write(ctx, func() error { _, err := s.products.InsertOne(ctx, doc); return err }); err != nil {
		return catalog.Product{}, fmt.Errorf("insert product: %w", err)
	}
	return doc.product(), nil
}

// Get returns the product id, or a 404 error when there is none (or id is malformed).
func (s *Store) Get(ctx context.Context, id string) (catalog.Product, error) {
	oid, ok := mongodb.ParseID(id)
	if !ok {
		return catalog.Product{}, errProductNotFound
	}
	doc, err := s.findProduct(ctx, oid)
	if err != nil {
		return catalog.Product{}, err
	}
	return doc.product(), nil
}

func (s *Store) findProduct(ctx context.Context, id bson.ObjectID) (productDoc, error) {
	var doc productDoc
	err := s.products.FindOne(ctx, byID(id), options.FindOne().SetProjection(withoutHolds)).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return productDoc{}, errProductNotFound
	}
	if err != nil {
		return productDoc{}, fmt.Errorf("find product: %w", err)
	}
	return doc, nil
}

// List returns one page of products in id (creation) order.
func (s *Store) List(ctx context.Context, req mongodb.PageRequest) (mongodb.Page[catalog.Product], error) {
	return mongodb.ListPage(ctx, s.products, nil, req, productDoc.product, mongodb.Projection(withoutHolds))
}

// Update applies a (normalized) patch to product id and returns the result. Setting
// stock sets what is available now; units held by reservations stay held.
func (s *Store) Update(ctx context.Context, id string, p catalog.Patch) (catalog.Product, error) {
	// Once asked, the change is made even if the caller goes away (as in Reserve): an
	// update cut by its caller's context has an unknown outcome (update), and the fence
	// then holds every step on the product, its reservations included, for up to
	// lateWriteWindow (11 s, past the order service's PLACEMENT_TIMEOUT). Each operation
	// is still bounded by the client's operation timeout.
	ctx = context.WithoutCancel(ctx)
	oid, ok := mongodb.ParseID(id)
	if !ok {
		return catalog.Product{}, errProductNotFound
	}
	set := bson.D{{Key: "updatedAt", Value: s.now()}}
	add := func(key string, v any) { set = append(set, bson.E{Key: key, Value: v}) }
	if p.Name != nil {
		add("name", *p.Name)
	}
	if p.Description != nil {
		add("description", *p.Description)
	}
	if p.PriceCents != nil {
		add("priceCents", *p.PriceCents)
	}
	if p.Currency != nil {
		add("currency", *p.Currency)
	}
	if p.Stock != nil {
		add("stock", *p.Stock)
	}
	var doc productDoc
	err := s.serializeProduct(ctx, oid, func() error {
		err := s.updateProduct(ctx, oid, "update product", bson.D{{Key: "$set", Value: set}})
		s.prices.invalidate(oid) // also after an error: the write may have happened
		if err != nil {
			return err
		}
		// Read under the lock: the answer is this update's result, not a later one's.
		doc, err = s.findProduct(ctx, oid)
		return err
	})
	if err != nil {
		return catalog.Product{}, err
	}
	return doc.product(), nil
}

// Delete removes product id. Reservations holding it keep their price and quantity;
// releasing them has nothing left to give back to.
func (s *Store) Delete(ctx context.Context, id string) error {
	oid, ok := mongodb.ParseID(id)
	if !ok {
		return errProductNotFound
	}
	return s.serializeProduct(ctx, oid, func() error {
		var deleted int64
		err := s.write(ctx, func() error {
			res, err := s.products.DeleteOne(ctx, byID(oid))
			if err == nil {
				deleted = res.DeletedCount
			}
			return err
		})
		s.prices.invalidate(oid)
		if err != nil {
			return fmt.Errorf("delete product: %w", err)
		}
		if deleted == 0 {
			return errProductNotFound
		}
		return nil
	})
}

// serializeProduct runs fn holding product id's lock, once the updates of unknown
// outcome sent to it are fenced (fence.go): what fn reads stays true until it writes.
func (s *Store) serializeProduct(ctx context.Context, id bson.ObjectID, fn func() error) error {
	return s.locks.Serialize(s.products, id, func() error {
		if err := s.fence(ctx, s.products, id); err != nil {
			return err
		}
		return fn()
	})
}

// write runs the write fn in its turn (s.writes).
func (s *Store) write(ctx context.Context, fn func() error) error { return s.writes.Do(ctx, fn) }

// byID is the filter of the document with _id id: the only filter FerretDB v1 leaves to
// SQLite (for any other it decodes the whole collection; see mongodb.KeyedMutex).
func byID(id any) bson.D { return bson.D{{Key: "_id", Value: id}} }

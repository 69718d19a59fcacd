// Package store keeps products and reservations in MongoDB (or FerretDB).
//
// Stock changes are single-document updates guarded by their filter: a reservation takes
// stock with {stock: {$gte: n}} and $inc, so stock is never negative. There are no
// multi-document transactions (FerretDB has none), so the reservation algorithm in
// reservations.go is built from such updates alone; see its comment.
package store

import (
	"context"
	"errors"
	"fmt"
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
	// locks serializes this process's conditional updates of one document; see update.
	locks keyedMutex
	now   func() time.Time
}

// New returns the Store of db. Both collections are keyed by _id only, so there is no
// index to create.
func New(db *mongo.Database) *Store {
	return &Store{
		products:     db.Collection(ProductsCollection),
		reservations: db.Collection(ReservationsCollection),
		now:          func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) },
	}
}

// productDoc is a product as stored. Holds records, per order id, the units a
// reservation took from this product's stock: it lives in the same document as stock so
// that taking and giving back are each one atomic update (see reservations.go).
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

// withoutHolds keeps the holds, which only the reservation algorithm reads, off the wire.
var withoutHolds = bson.D{{Key: "holds", Value: 0}}

// Create stores a new product (already normalized).
func (s *Store) Create(ctx context.Context, np catalog.NewProduct) (catalog.Product, error) {
	now := s.now()
	doc := productDoc{
		ID: mongodb.NewID(), Name: np.Name, Description: np.Description,
		PriceCents: np.PriceCents, Currency: np.Currency, Stock: np.Stock,
		CreatedAt: now, UpdatedAt: now,
	}
	if _, err := s.products.InsertOne(ctx, doc); err != nil {
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
	err := s.products.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(withoutHolds)).Decode(&doc)
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
	docs, next, err := mongodb.FindPage[productDoc](ctx, s.products, nil, req)
	if err != nil {
		return mongodb.Page[catalog.Product]{}, err
	}
	page := mongodb.Page[catalog.Product]{Items: make([]catalog.Product, len(docs)), Next: next}
	for i, d := range docs {
		page.Items[i] = d.product()
	}
	return page, nil
}

// Update applies a (normalized) patch to product id and returns the result. Setting
// stock sets what is available now; units held by reservations stay held.
func (s *Store) Update(ctx context.Context, id string, p catalog.Patch) (catalog.Product, error) {
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
	matched, err := s.update(ctx, s.products, oid, bson.D{{Key: "_id", Value: oid}}, bson.D{{Key: "$set", Value: set}})
	if err != nil {
		return catalog.Product{}, fmt.Errorf("update product: %w", err)
	}
	if !matched {
		return catalog.Product{}, errProductNotFound
	}
	return s.Get(ctx, id)
}

// Delete removes product id. Reservations holding it keep their price and quantity;
// releasing them has nothing left to give back to.
func (s *Store) Delete(ctx context.Context, id string) error {
	oid, ok := mongodb.ParseID(id)
	if !ok {
		return errProductNotFound
	}
	res, err := s.products.DeleteOne(ctx, bson.D{{Key: "_id", Value: oid}})
	if err != nil {
		return fmt.Errorf("delete product: %w", err)
	}
	if res.DeletedCount == 0 {
		return errProductNotFound
	}
	return nil
}

// update runs a conditional UpdateOne on the document key of coll and reports whether
// filter matched it.
//
// FerretDB v1 evaluates an update's filter, then writes the whole document back by _id,
// with no check that it did not change in between: concurrent conditional updates of one
// document lose writes there (measured: 50 concurrent {stock: {$gte: 1}} / $inc -1 on
// stock 10 all matched and left stock at 8). MongoDB does both atomically. Holding a
// per-document lock around the call makes it atomic on FerretDB too, for all the
// updates of this process; with FerretDB, run one replica of the service.
func (s *Store) update(ctx context.Context, coll *mongo.Collection, key any, filter, update bson.D) (bool, error) {
	unlock := s.locks.lock(coll.Name() + "/" + fmt.Sprint(key))
	defer unlock()
	res, err := coll.UpdateOne(ctx, filter, update)
	if err != nil {
		return false, err
	}
	return res.MatchedCount == 1, nil
}

package payment

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging/outbox"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
)

var errNotFound = errors.New("payment not found")

// document is a payment with its outbox, as stored.
type document struct {
	Payment       `bson:",inline"`
	Outbox        []outbox.Event `bson:"outbox"`
	OutboxPending bool           `bson:"outboxPending"`
}

type store struct {
	payments *mongo.Collection
	// locks serializes the outbox relay's updates of a payment; payments themselves
	// are only inserted.
	locks mongodb.KeyedMutex
	// writes queues the database's writes, the relay's too (see mongodb.Gate).
	writes *mongodb.Gate
}

func newStore(ctx context.Context, db *mongo.Database) (*store, error) {
	s := &store{payments: db.Collection("payments"), writes: mongodb.NewGate(1)}
	// The unique order id is what makes a payment happen once per order.
	models := append(outbox.Indexes(), mongo.IndexModel{
		Keys: bson.D{{Key: "orderId", Value: 1}}, Options: options.Index().SetUnique(true),
	})
	if err := mongodb.EnsureIndexes(ctx, s.payments, models...); err != nil {
		return nil, err
	}
	return s, nil
}

// insert stores d; inserted is false when the order has a payment already.
func (s *store) insert(ctx context.Context, d document) (inserted bool, err error) {
	if err := s.writes.Do(ctx, func() error { _, err := s.payments.InsertOne(ctx, d); return err }); err != nil {
		if mongodb.IsDuplicateKey(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

func (s *store) get(ctx context.Context, id bson.ObjectID) (Payment, error) {
	var p Payment
	err := s.payments.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: outbox.Field, Value: 0}})).Decode(&p)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Payment{}, errNotFound
	}
	return p, err
}

func (s *store) list(ctx context.Context, orderID string, page mongodb.PageRequest) ([]Payment, string, error) {
	filter := bson.D{}
	if orderID != "" {
		filter = append(filter, bson.E{Key: "orderId", Value: orderID})
	}
	return mongodb.FindPage[Payment](ctx, s.payments, filter, page)
}

// lookupTimeout bounds the query of ofOrders in place of the client's per-operation
// timeout: on FerretDB it reads the whole payments collection (some 2 s per 40,000
// payments on 2 cores), which that timeout, sized for single-document operations, would
// cut short once the collection is large, and then no order left PENDING could be
// settled. It stays below the HTTP server's write timeout (HTTP_WRITE_TIMEOUT, 30 s by
// default), which would cut the answer.
const lookupTimeout = 25 * time.Second

// ofOrders returns the payments of the orders orderIDs, in id order (an empty list when
// there are none), within lookupTimeout.
func (s *store) ofOrders(ctx context.Context, orderIDs []string) ([]Payment, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout) // a deadline of its own overrides the client's timeout
	defer cancel()
	cur, err := s.payments.Find(ctx, bson.D{{Key: "orderId", Value: bson.D{{Key: "$in", Value: orderIDs}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetProjection(bson.D{{Key: outbox.Field, Value: 0}}))
	if err != nil {
		return nil, err
	}
	var out []Payment
	if err := cur.All(ctx, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []Payment{} // "items": [], not null
	}
	return out, nil
}

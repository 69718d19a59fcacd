package order

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
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging/outbox"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
)

// errNotFound is returned by the store for an unknown order.
var errNotFound = errors.New("order not found")

// store keeps orders (each with its outbox), idempotency keys, placements and pending
// releases.
type store struct {
	orders     *mongo.Collection
	keys       *mongo.Collection
	placements *mongo.Collection // orders being placed (placement.go)
	releases   *mongo.Collection // stock of cancelled orders still to give back (release.go)
	// locks serializes the updates of an order (and the outbox relay's), which the
	// store cannot do atomically itself (see mongodb.KeyedMutex).
	locks mongodb.KeyedMutex
	// writes queues the database's writes, the relay's too (see mongodb.Gate).
	writes *mongodb.Gate
	// keyRemovals are the removals of idempotency keys' claims whose outcome is unknown
	// (forgetKey): a key is not used again until they have landed or never will.
	keyRemovals lateRemovals
}

// lateWriteWindow is how long after a removal of unknown outcome was sent it may still
// land (mongodb.LateWriteWindow, the window the product service's fence waits too).
const lateWriteWindow = mongodb.LateWriteWindow

// lateRemovals records, per idempotency key, when the last removal of its claim whose
// outcome is unknown was sent.
type lateRemovals struct {
	mu   sync.Mutex
	sent map[string]time.Time
}

// add records that a removal of key's claim, sent at sent, has an unknown outcome, and
// drops the entries of other keys sent lateWriteWindow ago: waited out, they would otherwise
// stay for every key never used again, one for each removal lost while the database is slow.
func (l *lateRemovals) add(key string, sent time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sent == nil {
		l.sent = map[string]time.Time{}
	}
	for k, at := range l.sent {
		if time.Since(at) >= lateWriteWindow {
			delete(l.sent, k)
		}
	}
	if sent.After(l.sent[key]) {
		l.sent[key] = sent
	}
}

// wait waits until the removals of key's claim of unknown outcome were sent window ago,
// or ctx ends (its error). An entry is dropped once waited out, or by the next add after
// lateWriteWindow.
func (l *lateRemovals) wait(ctx context.Context, key string, window time.Duration) error {
	for {
		l.mu.Lock()
		sent, ok := l.sent[key]
		if ok && time.Since(sent) >= window {
			delete(l.sent, key)
			ok = false
		}
		l.mu.Unlock()
		if !ok {
			return nil
		}
		t := time.NewTimer(time.Until(sent.Add(window)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

func newStore(ctx context.Context, db *mongo.Database) (*store, error) {
	s := &store{orders: db.Collection("orders"), keys: db.Collection("idempotency_keys"),
		placements: db.Collection("placements"), releases: db.Collection("releases"), writes: mongodb.NewGate(1)}
	models := append(outbox.Indexes(),
		mongo.IndexModel{Keys: bson.D{{Key: "userId", Value: 1}, {Key: "_id", Value: 1}}},
		mongo.IndexModel{Keys: bson.D{{Key: "status", Value: 1}, {Key: "_id", Value: 1}}},
	)
	if err := mongodb.EnsureIndexes(ctx, s.orders, models...); err != nil {
		return nil, err
	}
	for _, c := range []*mongo.Collection{s.placements, s.releases} {
		if err := mongodb.EnsureIndexes(ctx, c, mongo.IndexModel{Keys: bson.D{{Key: "createdAt", Value: 1}}}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// idempotencyKey maps a client's Idempotency-Key to the order it made.
type idempotencyKey struct {
	ID          string        `bson:"_id"` // user id + key
	OrderID     bson.ObjectID `bson:"orderId"`
	Fingerprint string        `bson:"fingerprint"` // of the request body
}

// claimKey records key for a new order id, or returns the one recorded first. The caller
// holds the key's lock. A removal of the key's claim whose outcome is unknown (forgetKey)
// is waited out first, until ctx ends: landing late, it would remove the claim read or made
// now, and a retry with the key would place a second order. The sweep frees the key of a
// placement it finishes without the key's lock (finishStale), so the claim found on the
// insert may be gone by the read after it: the key is then free, and claimed again.
func (s *store) claimKey(ctx context.Context, k idempotencyKey) (idempotencyKey, error) {
	for {
		if err := s.keyRemovals.wait(ctx, k.ID, lateWriteWindow); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				// The wait, not the database, ran out of time: the 503 of an earlier request
				// with the key still being settled. A claim's write that runs out of time is
				// the database's (web.RespondError), as before.
				return idempotencyKey{}, apperr.Unavailable(earlierStillSettled).Because(err)
			}
			return idempotencyKey{}, err
		}
		err := s.writes.Do(ctx, func() error { _, err := s.keys.InsertOne(ctx, k); return err })
		if err == nil {
			return k, nil
		}
		if !mongodb.IsDuplicateKey(err) {
			return idempotencyKey{}, err
		}
		var first idempotencyKey
		err = s.keys.FindOne(ctx, bson.D{{Key: "_id", Value: k.ID}}).Decode(&first)
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue // freed since the insert (the sweep): claim it again
		}
		if err != nil {
			return idempotencyKey{}, err
		}
		return first, nil
	}
}

// forgetKey removes the claim of idempotency key keyID for orderID, so that a retry with
// the key places a new order; a claim since made for another order is kept. The claim is
// read and deleted by _id alone, both inside the write gate, which every write of the keys
// passes through, so nothing comes between: FerretDB finds a document by its index only for
// a filter of _id alone, and a delete filtered on the order too scanned every key ever
// stored (134 ms with 4,000), holding the gate, so every other write, meanwhile. A removal
// whose answer is lost may still land later, on whatever claim then holds the key: it is
// recorded, and claimKey waits it out before the key is used again.
func (s *store) forgetKey(ctx context.Context, keyID string, orderID bson.ObjectID) error {
	return s.writes.Do(ctx, func() error {
		var claim idempotencyKey
		err := s.keys.FindOne(ctx, bson.D{{Key: "_id", Value: keyID}}).Decode(&claim)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			return nil
		case err != nil:
			return err
		case claim.OrderID != orderID:
			return nil // the key's claim for another order
		}
		sent := time.Now()
		if _, err = s.keys.DeleteOne(ctx, bson.D{{Key: "_id", Value: keyID}}); err != nil {
			s.keyRemovals.add(keyID, sent)
		}
		return err
	})
}

// insert stores a new order with its outbox; inserted is false when an order with
// this id exists already (a retried request), which is then returned.
func (s *store) insert(ctx context.Context, d document) (o Order, inserted bool, err error) {
	if err := s.writes.Do(ctx, func() error { _, err := s.orders.InsertOne(ctx, d); return err }); err != nil {
		if mongodb.IsDuplicateKey(err) {
			o, err := s.get(ctx, d.ID)
			return o, false, err
		}
		return Order{}, false, err
	}
	return d.Order, true, nil
}

// insertOnce stores doc in coll, through the write gate; a document stored before with
// its _id (the same record, made again by a retry) is kept.
func (s *store) insertOnce(ctx context.Context, coll *mongo.Collection, doc any) error {
	err := s.writes.Do(ctx, func() error { _, err := coll.InsertOne(ctx, doc); return err })
	if mongodb.IsDuplicateKey(err) {
		return nil
	}
	return err
}

// deleteID removes the document of coll whose _id is id, through the write gate.
func (s *store) deleteID(ctx context.Context, coll *mongo.Collection, id bson.ObjectID) error {
	return s.writes.Do(ctx, func() error {
		_, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
		return err
	})
}

// createdBefore returns up to limit documents (0: all) of coll whose createdAt is at or
// before before (a record stored in the millisecond of a sweep with no age is one it
// takes), oldest first (by createdAt, then _id): the records a sweep finishes. With a
// cursor, only those after it come; a nil one starts with the oldest.
func createdBefore[T any](ctx context.Context, coll *mongo.Collection, before time.Time, after *cursor, limit int64) ([]T, error) {
	filter := bson.D{{Key: "createdAt", Value: bson.D{{Key: "$lte", Value: before}}}}
	if after != nil {
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "createdAt", Value: bson.D{{Key: "$gt", Value: after.CreatedAt}}}},
			bson.D{{Key: "createdAt", Value: after.CreatedAt}, {Key: "_id", Value: bson.D{{Key: "$gt", Value: after.ID}}}},
		}})
	}
	cur, err := coll.Find(ctx, filter,
		options.Find().SetSort(bson.D{{Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(limit))
	if err != nil {
		return nil, err
	}
	var out []T
	return out, cur.All(ctx, &out)
}

// cursor is where a sweep's page ended: the last record it read.
type cursor struct {
	ID        bson.ObjectID
	CreatedAt time.Time
}

// abandonedField marks the stand-in fence stores for an order whose insert failed.
const abandonedField = "abandoned"

// notAbandoned leaves fence's stand-ins out of a query.
var notAbandoned = bson.E{Key: abandonedField, Value: bson.D{{Key: "$ne", Value: true}}}

// fence settles whether order id, whose insert failed, is stored: the write may still
// be on its way on a stalled connection, so not finding the order now does not mean it
// will never be there. fence stores a stand-in with the order's id, which no client
// sees; the id is unique, so from then on the late insert fails, and the order's stock
// may be given back without the order appearing later, PENDING and then charged. It
// returns the order when the insert landed before the stand-in, errNotFound when the
// stand-in holds the id, and any other error when neither is known.
func (s *store) fence(ctx context.Context, id bson.ObjectID, now time.Time) (Order, error) {
	standIn := bson.D{{Key: "_id", Value: id}, {Key: abandonedField, Value: true}, {Key: "createdAt", Value: now}}
	err := s.writes.Do(ctx, func() error { _, err := s.orders.InsertOne(ctx, standIn); return err })
	switch {
	case err == nil:
		return Order{}, errNotFound
	case mongodb.IsDuplicateKey(err):
		return s.get(ctx, id) // the order, or errNotFound for a stand-in stored before
	default:
		return Order{}, err
	}
}

// get returns order id; a stand-in fence stored (abandoned) is errNotFound. The filter is
// _id alone, the stand-in told apart once read: FerretDB finds a document by its index only
// for a filter of _id alone, and with the abandoned condition beside it every read scanned
// the collection (0.28 s with 3,700 orders, on every payment result).
func (s *store) get(ctx context.Context, id bson.ObjectID) (Order, error) {
	var d struct {
		Order     `bson:",inline"`
		Abandoned bool `bson:"abandoned"`
	}
	err := s.orders.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: outbox.Field, Value: 0}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) || err == nil && d.Abandoned {
		return Order{}, errNotFound
	}
	return d.Order, err
}

// list returns a page of orders, filtered by user and status when given.
func (s *store) list(ctx context.Context, userID string, status Status, page mongodb.PageRequest) ([]Order, string, error) {
	filter := bson.D{notAbandoned}
	if userID != "" {
		filter = append(filter, bson.E{Key: "userId", Value: userID})
	}
	if status != "" {
		filter = append(filter, bson.E{Key: "status", Value: status})
	}
	return mongodb.FindPage[Order](ctx, s.orders, filter, page)
}

// settlement is a move of a PENDING order to PAID or CANCELLED.
type settlement struct {
	status Status
	reason string
	event  outbox.Event // its order.updated
	now    time.Time
	// prepare runs before the write, holding the order's lock, once the order is known
	// PENDING (nil: nothing); its error stops the settlement.
	prepare func() error
	// published returns the events of the order the relay published and left for this
	// write to remove (outbox.Relay.TakeConfirmed).
	published func(id bson.ObjectID) map[string]bool
}

// settle applies st to order id if it is PENDING, appending its event in the same write
// and removing the published ones. changed is false when the order was not PENDING (a
// result handled before); an unknown order is errNotFound.
func (s *store) settle(ctx context.Context, id bson.ObjectID, st settlement) (changed bool, err error) {
	changed, err = s.updatePending(ctx, id, func(d document) (bson.D, error) {
		if st.prepare != nil {
			if err := st.prepare(); err != nil {
				return nil, err
			}
		}
		set := bson.D{{Key: "status", Value: st.status}, {Key: "updatedAt", Value: st.now}}
		if st.reason != "" {
			set = append(set, bson.E{Key: "reason", Value: st.reason})
		}
		return append(set, outbox.Set(d.Outbox, st.published(id), st.event)...), nil
	})
	if err != nil && !errors.Is(err, errNotFound) {
		return false, fmt.Errorf("settle order %s: %w", id.Hex(), err)
	}
	return changed, err
}

// updatePending reads order id under its lock and, if it is PENDING, writes the $set that
// update returns for it (none: nothing is written), still under the lock, through the
// write gate: the updates of an order that the store cannot make atomic itself (it
// rewrites the whole document). changed is true when it wrote; an unknown order is
// errNotFound.
func (s *store) updatePending(ctx context.Context, id bson.ObjectID, update func(d document) (bson.D, error)) (changed bool, err error) {
	err = s.locks.Serialize(s.orders, id, func() error {
		var d document
		err := s.orders.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return errNotFound
		}
		if err != nil || d.Status != Pending {
			return err
		}
		set, err := update(d)
		if err != nil || len(set) == 0 {
			return err
		}
		err = s.writes.Do(ctx, func() error {
			_, err := s.orders.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: set}})
			return err
		})
		changed = err == nil
		return err
	})
	return changed, err
}

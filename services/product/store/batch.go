package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
)

// Group commit of a product's takes.
//
// Every change of a product's document is a read and a write under that product's lock
// (see store.go), so one popular product serves at most one change per two round trips,
// however many orders wait for it. The orders waiting for one product are therefore
// served in batches: the first to get the lock takes every take and hold removal queued
// for that product, reads the document once, applies them one after the other in Go, as
// they would have been one by one, and writes the result in one update (one $inc of the
// stock, a $set per hold taken, an $unset per hold removed). The others find their step
// done when they get the lock.
//
// For the reasoning in reservations.go nothing changes: each step's effect on the stock
// and its order's hold is still in one single-document write, now shared with other
// orders' steps; a crash falls before or after all of them. A batch takes at most one
// step per order (one update cannot both set and unset a hold); a second one waits for
// the next batch.

// productStep is one step of one order on a product: a take of quantity units, or the
// removal of the order's hold if it is {returned: returned}.
type productStep struct {
	order    string
	quantity int64
	remove   bool
	returned bool

	// The outcome, written by the batch that ran the step, under the product's lock.
	done      bool
	available int64 // the stock a short take found
	err       error // errShort, errProductNotFound, or why the batch failed
}

// batches holds the steps waiting for each product.
type batches struct {
	mu      sync.Mutex
	waiting map[bson.ObjectID][]*productStep
}

func (b *batches) add(id bson.ObjectID, step *productStep) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.waiting == nil {
		b.waiting = map[bson.ObjectID][]*productStep{}
	}
	b.waiting[id] = append(b.waiting[id], step)
}

func (b *batches) takeAll(id bson.ObjectID) []*productStep {
	b.mu.Lock()
	defer b.mu.Unlock()
	steps := b.waiting[id]
	delete(b.waiting, id)
	return steps
}

// onProduct runs step on product id, in a batch with the steps other orders have queued
// for it meanwhile, and returns its outcome.
func (s *Store) onProduct(ctx context.Context, id bson.ObjectID, step *productStep) error {
	s.batches.add(id, step)
	return s.runQueued(ctx, id, step)
}

// runQueued waits until step, queued for product id, has run, running it (and all the
// steps queued with it) when it gets the product's lock first, and returns its outcome.
func (s *Store) runQueued(ctx context.Context, id bson.ObjectID, step *productStep) error {
	// Waiting for the lock ends with ctx: a hold removal stops when Wait says so.
	unlock, err := s.locks.LockContext(ctx, mongodb.DocumentKey(s.products, id))
	if err != nil {
		return err
	}
	defer unlock()
	// A step queued before this one got the lock ran it, or this one runs it now:
	// whoever holds the lock runs everything queued.
	for !step.done {
		s.runBatch(ctx, id, s.batches.takeAll(id))
	}
	return step.err
}

// runBatch runs steps on product id (whose lock the caller holds) with one read and at
// most one write, and records each step's outcome; a second step of one order goes back
// to the queue.
func (s *Store) runBatch(ctx context.Context, id bson.ObjectID, steps []*productStep) {
	orders := make(map[string]bool, len(steps))
	n := 0
	for _, st := range steps {
		if orders[st.order] {
			s.batches.add(id, st)
			continue
		}
		orders[st.order] = true
		steps[n] = st
		n++
	}
	steps = steps[:n]

	finish := func(steps []*productStep, err error) {
		for _, st := range steps {
			st.done, st.err = true, err
		}
	}
	// What is read below must stay true until the write (fence.go).
	if err := s.fence(ctx, s.products, id); err != nil {
		finish(steps, err)
		return
	}
	projection := bson.D{{Key: "stock", Value: 1}}
	for _, st := range steps {
		projection = append(projection, bson.E{Key: holdKey(st.order), Value: 1})
	}
	var doc struct {
		Stock int64           `bson:"stock"`
		Holds map[string]hold `bson:"holds"`
	}
	err := s.products.FindOne(ctx, byID(id), options.FindOne().SetProjection(projection)).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		finish(steps, errProductNotFound)
		return
	}
	if err != nil {
		finish(steps, fmt.Errorf("read stock: %w", err))
		return
	}

	var (
		written    []*productStep // steps whose outcome is the write's
		taken      int64
		set, unset bson.D
	)
	for _, st := range steps {
		h, held := doc.Holds[st.order]
		switch {
		case st.remove:
			if held && h.Returned == st.returned {
				unset = append(unset, bson.E{Key: holdKey(st.order), Value: ""})
				written = append(written, st)
				continue
			}
		case held: // taken before: by a crashed attempt
		case doc.Stock < st.quantity:
			st.available, st.err = doc.Stock, errShort
		default:
			doc.Stock -= st.quantity
			taken += st.quantity
			set = append(set, bson.E{Key: holdKey(st.order), Value: hold{Quantity: st.quantity}})
			written = append(written, st)
			continue
		}
		st.done = true
	}
	if len(written) == 0 {
		return
	}
	update := bson.D{}
	if taken > 0 {
		update = append(update,
			bson.E{Key: "$inc", Value: bson.D{{Key: "stock", Value: -taken}}},
			bson.E{Key: "$set", Value: set})
	}
	if len(unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	finish(written, s.updateProduct(ctx, id, "take stock", update))
}

package order

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// A pendingRelease records that the stock of an order cancelled by a failed payment is
// still to be given back: the product service did not take it back when the payment.failed
// was handled (unreachable, an error, no answer in time). Waiting for it there would hold
// the delivery, and with it one of the consumer's CONSUMER_PREFETCH slots, for as long as
// the product service is out; once every slot held such a delivery, no other payment
// result would be handled, a payment.succeeded included. So the order is cancelled at once
// and the release left to the sweep, which retries it until the product service takes it.
type pendingRelease struct {
	ID        bson.ObjectID `bson:"_id"` // the order's id
	CreatedAt time.Time     `bson:"createdAt"`
}

// releaseSweepAge is how old a pending release must be for the sweep to retry it: the
// product service failed it moments ago, and a settlement may still be writing its order.
const releaseSweepAge = 5 * time.Second

// releaseOrDefer gives back the stock of order id, PENDING and about to be CANCELLED by a
// failed payment; the caller holds the order's lock. When the product service takes it,
// the stock is back before the order is CANCELLED. When the outcome is not known (the
// product service unreachable, an error, no answer within PEER_TIMEOUT), a pending release
// is stored before the order is CANCELLED, so that a crash in between leaves the
// redelivery or the sweep to finish it, and the order is cancelled all the same (nil). An
// error is returned only when the record could not be stored: the delivery is then
// retried.
func (s *service) releaseOrDefer(ctx context.Context, id bson.ObjectID, now time.Time) error {
	err := s.peers.release(ctx, id.Hex())
	if err == nil {
		return nil
	}
	if recErr := s.store.insertOnce(ctx, s.store.releases, pendingRelease{ID: id, CreatedAt: now}); recErr != nil {
		return fmt.Errorf("stock of order %s not given back (%w), nor its release recorded: %w", id.Hex(), err, recErr)
	}
	web.LoggerFor(ctx, s.log).Warn("stock of a cancelled order not given back yet; the sweep gives it back", "order", id.Hex(), "error", err)
	return nil
}

// sweepReleases finishes the pending releases recorded before olderThan ago, and returns
// how many it removed. It stops at the first failure that the others would meet as well
// (the product service unreachable, answering 5xx or not in time; the database out), and
// returns it; the next sweep tries again. A release the product service refuses (a 4xx
// other than 404) is kept, and the others tried.
//
// It reads every record due, not a page of the oldest: the records it keeps (a PENDING
// order's, a refused release's) would otherwise hide the others once a page is full of
// them. There are few: a record lasts only while product does not take the release.
func (s *service) sweepReleases(ctx context.Context, olderThan time.Duration) (int, error) {
	stale, err := createdBefore[pendingRelease](ctx, s.store.releases, s.now().Add(-olderThan), nil, 0)
	if err != nil {
		return 0, err
	}
	done := 0
	var refused error
	for _, r := range stale {
		finished, err := s.finishRelease(ctx, r.ID)
		switch {
		case err == nil:
		case errors.Is(err, errReleaseRefused):
			// An answer about this order alone: the others are tried all the same.
			refused = errors.Join(refused, err)
		default: // the product service or the database out, or the sweep stopped
			return done, errors.Join(refused, err)
		}
		if finished {
			done++
		}
	}
	return done, refused
}

// finishRelease settles the pending release of order id under the order's lock, so that
// no settlement of the order runs meanwhile. Only a CANCELLED order's stock is given back,
// and then the record removed. A PAID order keeps its stock, and an order not found holds
// none: their record is removed with no release. A PENDING order (the process stopped
// between the record and the CANCELLED write) is left to its redelivered payment result,
// which settles it; its record stays for a later sweep.
func (s *service) finishRelease(ctx context.Context, id bson.ObjectID) (finished bool, err error) {
	unlock, err := s.store.locks.LockContext(ctx, mongodb.DocumentKey(s.store.orders, id))
	if err != nil {
		return false, err
	}
	defer unlock()
	o, err := s.store.get(ctx, id)
	switch {
	case errors.Is(err, errNotFound):
	case err != nil:
		return false, err
	case o.Status == Pending:
		return false, nil
	case o.Status == Cancelled:
		if err := s.peers.release(ctx, id.Hex()); err != nil {
			return false, err
		}
	}
	if err := s.store.deleteID(ctx, s.store.releases, id); err != nil {
		return false, err
	}
	return true, nil
}

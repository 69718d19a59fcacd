package order

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// A placement records an order being placed, from before its stock is taken until the
// order is stored or its stock given back. Placing takes several steps in two services
// with no transaction between them; a placement left behind (the process stopped, the
// product service or the database did not answer when the stock was to be given back)
// is finished by the sweep: the order is fenced off (store.fence) unless it was stored,
// and its stock given back. Nothing reserved is kept by an order that does not exist.
type placement struct {
	ID        bson.ObjectID `bson:"_id"`             // the order's id
	KeyID     string        `bson:"keyId,omitempty"` // its idempotency key's, if any
	CreatedAt time.Time     `bson:"createdAt"`
}

// placementLockPrefix puts the locks of placements apart from the store's other locks,
// in the same KeyedMutex: a request holds its order's while placing it, so the sweep
// never finishes a placement still under way.
const placementLockPrefix = "placement/"

// Sweep timing: how often the placements are looked at, and how old one must be. The
// lock already keeps the sweep off placements under way; the age keeps it from
// queueing behind them.
const (
	sweepInterval = 30 * time.Second
	sweepAge      = 30 * time.Second
	// sweepBudget bounds a run of the sweep, which finishes placementPage placements at a
	// time: a backlog (every placement that failed while the product service was out) is
	// finished within a run or two, at a bounded share of the product service's time, and
	// the stock that orders cut short really held comes back with it.
	sweepBudget   = 10 * time.Second
	placementPage = 100
)

// recordPlacement stores p; one stored before (a retry of the same order) is kept.
func (s *store) recordPlacement(ctx context.Context, p placement) error {
	return s.insertOnce(ctx, s.placements, p)
}

// placed removes the placement of order id: the order is stored, or its stock given back.
func (s *store) placed(ctx context.Context, id bson.ObjectID) error {
	return s.deleteID(ctx, s.placements, id)
}

// stalePlacements returns up to limit placements made before before, oldest first, from
// the one after after (nil: from the oldest).
func (s *store) stalePlacements(ctx context.Context, before time.Time, after *cursor, limit int64) ([]placement, error) {
	return createdBefore[placement](ctx, s.placements, before, after, limit)
}

// placementExists tells whether order id's placement is still there.
func (s *store) placementExists(ctx context.Context, id bson.ObjectID) (bool, error) {
	err := s.placements.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	return err == nil, err
}

// finishPlacement records that order id's placement is over, logging a failure: the
// sweep then finds the placement, finds the order stored, and removes it.
func (s *service) finishPlacement(ctx context.Context, id bson.ObjectID) {
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	if err := s.store.placed(ctx, id); err != nil {
		web.LoggerFor(ctx, s.log).Warn("placement of an order kept; the sweep removes it", "order", id.Hex(), "error", err)
	}
}

// sweep finishes the placements made before olderThan ago that no request is placing, a
// page at a time, until none is left or budget is spent (0: no bound; a page at least), and
// returns how many it finished. Pages follow one another past the placements it keeps (their
// stock not taken back yet), so those do not hide the others.
func (s *service) sweep(ctx context.Context, olderThan, budget time.Duration) (int, error) {
	start := time.Now()
	before := s.now().Add(-olderThan)
	var after *cursor
	done := 0
	for {
		stale, err := s.store.stalePlacements(ctx, before, after, placementPage)
		if err != nil {
			return done, err
		}
		for _, p := range stale {
			finished, err := s.finishStale(ctx, p)
			if err != nil {
				return done, err
			}
			if finished {
				done++
			}
		}
		if len(stale) < placementPage || budget > 0 && time.Since(start) >= budget {
			return done, nil
		}
		last := stale[len(stale)-1]
		after = &cursor{ID: last.ID, CreatedAt: last.CreatedAt}
	}
}

// finishStale finishes placement p: a stored order keeps its stock, any other gives it
// back. It waits for a request still placing the order.
func (s *service) finishStale(ctx context.Context, p placement) (bool, error) {
	unlock, err := s.store.locks.LockContext(ctx, placementLockPrefix+p.ID.Hex())
	if err != nil {
		return false, err
	}
	defer unlock()
	if ok, err := s.store.placementExists(ctx, p.ID); err != nil || !ok {
		return false, err // finished by its request meanwhile, or not known
	}
	_, err = s.store.fence(ctx, p.ID, s.now())
	switch {
	case err == nil: // stored: its stock is the order's
		return true, s.store.placed(ctx, p.ID)
	case errors.Is(err, errNotFound): // fenced off: never stored, its stock goes back
		return s.abandon(ctx, p.ID, p.KeyID), nil
	default:
		return false, err
	}
}

// sweepEvery sweeps the placements made before olderThan ago, and the pending releases
// of cancelled orders made before releaseSweepAge ago (release.go), until ctx ends.
func (s *service) sweepEvery(ctx context.Context, interval, olderThan time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.sweep(ctx, olderThan, sweepBudget); err != nil && ctx.Err() == nil {
			s.log.Warn("sweep of unfinished placements failed; trying again later", "error", err)
		} else if n > 0 {
			s.log.Info("unfinished placements finished", "count", n)
		}
		if n, err := s.sweepReleases(ctx, releaseSweepAge); err != nil && ctx.Err() == nil {
			s.log.Warn("sweep of pending stock releases stopped; trying again later", "released", n, "error", err)
		} else if n > 0 {
			s.log.Info("pending stock releases finished", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

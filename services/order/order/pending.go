package order

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging/outbox"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// An order stays PENDING until its payment result is handled, and a result can be lost on
// its way: the broker dead-letters one delivered more often than the queue's delivery
// limit allows (RabbitMQ counts a prefetched message that comes back when a connection
// closes, so a connection closed again and again can use up the limit of a result that
// was never handled), and someone may purge or move a queue. The payment itself is kept
// by the payment service, which charges an order once. So the sweep asks the payment
// service for the payments of the orders PENDING for longer than PENDING_CHECK_AFTER
// whose order.created the broker has, a page at a time (GET /internal/payments), and
// settles each order that has one as its result would have (applyPaymentResult: the same
// checks, the stock of a declined order given back, the same order.updated). A result
// still on its way then finds the order settled and changes nothing. An order the payment
// service holds no payment for has its order.created queued there still (a backlog), or
// lost on its way there (dead-lettered by the same delivery limit): once PENDING for
// pendingResendFactor times as long, its order.created is sent again, and again each time
// its age has doubled since (resendDue: the payment service charges an order once, however
// often the event comes; the copy sent again can be lost too, by the same causes); each
// pass over the orders says how many have no payment, at WARN.

const (
	// pendingPage is how many PENDING orders the sweep reads, and asks the payment
	// service about, at a time: at most what GET /internal/payments takes (100).
	pendingPage = 100
	// pendingResendFactor: an order PENDING for pendingResendFactor times
	// PENDING_CHECK_AFTER with no payment at the payment service has its order.created
	// sent again, and again each time its age has doubled since (resendDue).
	pendingResendFactor = 5
	// pendingSweepBudget bounds a run of the background sweep: past it the run stops
	// after the order it is settling (whose stock release may wait up to PEER_TIMEOUT),
	// and the next resumes where it stopped, so that a long list of PENDING orders (a
	// payment backlog after an outage) costs the payment service a bounded share of its
	// time.
	pendingSweepBudget = 10 * time.Second
	// pendingScanTimeout bounds each read of a page of PENDING orders. On FerretDB it
	// reads the whole orders collection (as the outbox relay's scans do), which the
	// client's per-operation timeout, sized for single-document operations, would cut
	// short once the collection is large.
	pendingScanTimeout = 2 * time.Minute
	// pendingScanShare bounds the database's time spent on those reads: the next run
	// waits pendingScanShare times the database's work in the reads of the last two runs
	// (the shorter), when that is longer than the interval (outbox.ScanTimes, as the
	// relay's scans).
	pendingScanShare = 20
)

// pendingPass is how far a pass over the PENDING orders has gone, which may take several
// runs of the sweep: the last order it is done with, and the orders it found no payment
// for so far.
type pendingPass struct {
	after        bson.ObjectID
	unpaid       int
	oldestUnpaid bson.ObjectID
	// read is the database's work in the reads of PENDING orders of the runs of the sweep,
	// the last two (outbox.TimedQuery: a read that failed before its deadline counts
	// nothing).
	read outbox.ScanTimes
}

// sweepPending takes pass on over the orders PENDING since before olderThan ago, a page
// at a time, until budget is spent (0: until the pass is over; one order at least). For
// each page it asks the payment service for the payments in one call, and settles each
// order that has one, and sends again the order.created of each order with none whose
// resendDue (after resendAfter) has come; it returns how many it settled. It stops at the
// first failure of the payment service or the database, leaving pass before the orders it has not
// finished: the next run tries them again. A payment that cannot settle its order (of an
// amount other than the order's, say) is logged at ERROR, and the pass goes on.
func (s *service) sweepPending(ctx context.Context, pass *pendingPass, olderThan, resendAfter, budget time.Duration) (settled int, err error) {
	start := time.Now()
	now := s.now()
	before := now.Add(-olderThan)
	for {
		var page []document
		read, err := outbox.TimedQuery(ctx, pendingScanTimeout, func(ctx context.Context) (err error) {
			page, err = s.store.pendingBefore(ctx, pass.after, before, pendingPage)
			return err
		})
		pass.read.Add(read)
		if err != nil {
			return settled, err
		}
		if len(page) == 0 {
			s.endPass(pass, olderThan)
			return settled, nil
		}
		ids := make([]string, len(page))
		for i, d := range page {
			ids[i] = d.ID.Hex()
		}
		payments, err := s.peers.paymentsOf(ctx, ids)
		if err != nil {
			return settled, err
		}
		for _, d := range page {
			if r, found := payments[d.ID.Hex()]; found {
				changed, err := s.settleFromPayment(ctx, r)
				if err != nil {
					return settled, err
				}
				if changed {
					settled++
				}
			} else {
				pass.unpaid++
				if pass.oldestUnpaid.IsZero() {
					pass.oldestUnpaid = d.ID
				}
				if !now.Before(resendDue(d.CreatedAt, d.ResentAt, resendAfter)) { // inclusive, as pendingBefore
					if err := s.resendCreated(ctx, d, now, resendAfter); err != nil {
						return settled, err
					}
				}
			}
			pass.after = d.ID
			if budget > 0 && time.Since(start) >= budget {
				// A declined order's release may wait up to PEER_TIMEOUT: stop between
				// orders, not only between pages.
				return settled, nil
			}
		}
		if len(page) < pendingPage {
			s.endPass(pass, olderThan)
			return settled, nil
		}
	}
}

// resendDue is when an order created at created, whose order.created the sweep last sent
// again at resent (zero: never), is due to have it sent again, with no payment at the
// payment service: resendAfter after its creation, and then each time its age has doubled
// since the last (at 2, 4, 8... times resendAfter). Not only once: the copy sent again can
// be lost as the first was (the queue's delivery limit used up by a connection closed again
// and again, a queue purged), and the order would then stay PENDING, its stock held, for
// good. Doubling, a backlog at the payment service meets few copies however long it lasts.
func resendDue(created, resent time.Time, resendAfter time.Duration) time.Time {
	if resent.IsZero() {
		return created.Add(resendAfter)
	}
	return resent.Add(max(resendAfter, resent.Sub(created)))
}

// resendCreated sends the order.created of d's order again, through its outbox, with the
// trace and request id of the request that placed it, unless the order was settled, or its
// event sent again so that it is not due (resendDue), meanwhile.
func (s *service) resendCreated(ctx context.Context, d document, now time.Time, resendAfter time.Duration) error {
	o := d.Order
	ev, err := createdEvent(ctx, o)
	if err != nil {
		return err
	}
	d.Origin.stamp(&ev)
	sent, err := s.store.resend(ctx, o.ID, ev, now, resendAfter)
	if err != nil || !sent {
		return err
	}
	s.relay.Notify(o.ID, ev)
	if ev.RequestID != "" {
		ctx = web.WithRequestID(ctx, ev.RequestID) // the line is the placing request's too
	}
	s.log.WarnContext(ctx, "order.created sent again: the order has been PENDING with no payment at the payment service",
		"order", o.ID.Hex(), "since", o.CreatedAt, "event", ev.ID)
	return nil
}

// resend adds ev, order id's order.created, to its outbox if the order is still PENDING
// and due to have it sent again (resendDue) at now, and records when (now) in the same
// write, under the order's lock; sent is false when it was not.
func (s *store) resend(ctx context.Context, id bson.ObjectID, ev outbox.Event, now time.Time, resendAfter time.Duration) (sent bool, err error) {
	sent, err = s.updatePending(ctx, id, func(d document) (bson.D, error) {
		if now.Before(resendDue(d.CreatedAt, d.ResentAt, resendAfter)) {
			return nil, nil
		}
		return append(outbox.Set(d.Outbox, nil, ev), bson.E{Key: "resentAt", Value: now}), nil
	})
	if errors.Is(err, errNotFound) {
		return false, nil
	}
	return sent, err
}

// settleFromPayment settles an order left PENDING from its payment r, as r's result event
// would have. A payment that cannot settle the order is logged at ERROR (not returned: the
// pass goes on); the error returned is a failure of the store.
func (s *service) settleFromPayment(ctx context.Context, r PaymentResult) (changed bool, err error) {
	typ := messaging.PaymentSucceeded
	if r.Status == paymentFailed {
		typ = messaging.PaymentFailed
	}
	changed, err = s.applyPaymentResult(ctx, typ, r, "from", "payment service")
	switch {
	case messaging.IsPermanent(err):
		s.log.ErrorContext(ctx, "payment does not settle its PENDING order, order left as it is",
			"order", r.OrderID, "payment", r.PaymentID, "error", err)
		return false, nil
	case err != nil:
		return false, err
	case changed:
		s.log.WarnContext(ctx, "order settled from its payment at the payment service: its payment result was lost, or late",
			"order", r.OrderID, "payment", r.PaymentID, "paymentStatus", r.Status)
	}
	return changed, nil
}

// endPass says how many orders the pass over found no payment for, and starts the next
// pass from the first PENDING order.
func (s *service) endPass(pass *pendingPass, olderThan time.Duration) {
	if pass.unpaid > 0 {
		s.log.Warn("orders PENDING with no payment at the payment service: their order.created is queued there, or was dead-lettered",
			"count", pass.unpaid, "oldest", pass.oldestUnpaid.Hex(), "pendingOver", olderThan)
	}
	*pass = pendingPass{read: pass.read}
}

// sweepPendingEvery runs the sweep of the orders PENDING for over s.pendingAge at start
// and then interval after each run ends (or pendingScanShare times as long as the reads
// of PENDING orders of the last two runs took, the shorter, when that is longer), each
// run for up to pendingSweepBudget, until ctx ends. Counted from a run's end, a payment
// service slow to answer the run's call is asked again only interval after it answered.
func (s *service) sweepPendingEvery(ctx context.Context, interval time.Duration) {
	var pass pendingPass
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pass.read.Begin()
		if n, err := s.sweepPending(ctx, &pass, s.pendingAge, pendingResendFactor*s.pendingAge, pendingSweepBudget); err != nil && ctx.Err() == nil {
			attrs := []any{"settled", n, "error", err}
			if ae := (*apperr.Error)(nil); errors.As(err, &ae) && ae.Cause != nil {
				attrs = append(attrs, "cause", ae.Cause) // a peer's timeout, say
			}
			s.log.Warn("sweep of orders left PENDING stopped; the next one goes on from there", attrs...)
		}
		t.Reset(pass.read.Wait(interval, pendingScanShare))
	}
}

// pendingBefore returns up to limit PENDING orders created at or before before (an order
// stored in the millisecond of a sweep with no age is one it takes), with ids after
// after, in id order, leaving out those whose outbox still holds their order.created (the
// payment service cannot have it yet). Their outbox is left out. The sweep gives the
// read pendingScanTimeout (outbox.TimedQuery).
func (s *store) pendingBefore(ctx context.Context, after bson.ObjectID, before time.Time, limit int64) ([]document, error) {
	filter := bson.D{
		{Key: "status", Value: Pending},
		{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}},
		{Key: "createdAt", Value: bson.D{{Key: "$lte", Value: before}}},
		{Key: outbox.PendingField, Value: bson.D{{Key: "$ne", Value: true}}},
	}
	cur, err := s.orders.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetLimit(limit).SetProjection(bson.D{{Key: outbox.Field, Value: 0}}))
	if err != nil {
		return nil, err
	}
	var out []document
	err = cur.All(ctx, &out)
	return out, err
}

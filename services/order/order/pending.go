package order

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging/outbox"
)

// An order stays PENDING until its payment result is handled, and a result can be lost on
// its way: the broker dead-letters one delivered more often than the queue's delivery
// limit allows (RabbitMQ counts a prefetched message that comes back when a connection
// closes, so a connection closed again and again can use up the limit of a result that
// was handled, and of one that was not), and someone may move or purge a queue. The
// payment itself is kept by the payment service, which charges an order once. So the
// sweep asks the payment service for the payment of each order PENDING for longer than
// PENDING_CHECK_AFTER, once the broker has its order.created, and settles the order from
// it as the result would have (applyPaymentResult: the same checks, the stock of a
// declined order given back, the same order.updated). A result still on its way finds
// the order settled and changes nothing. An order the payment service holds no payment
// for is left PENDING: its order.created is queued there still, or was dead-lettered
// there, which someone must look at (the sweep says how many at WARN).

// pendingPage is how many PENDING orders the sweep reads at a time.
const pendingPage = 100

// sweepPending settles the orders PENDING since before olderThan ago that the payment
// service holds a payment for, and returns how many it settled. It stops at the first
// failure the others would meet as well (the payment service or the database out) and
// returns it: the next sweep tries again. A payment that cannot settle its order (of an
// amount other than the order's, say) is logged at ERROR, and the others are settled.
func (s *service) sweepPending(ctx context.Context, olderThan time.Duration) (settled int, err error) {
	before := s.now().Add(-olderThan)
	var after bson.ObjectID
	var unpaid []string
	defer func() {
		if len(unpaid) > 0 {
			s.log.Warn("orders PENDING with no payment at the payment service: their order.created is queued there, or was dead-lettered",
				"count", len(unpaid), "oldest", unpaid[0], "pendingOver", olderThan)
		}
	}()
	for {
		page, err := s.store.pendingBefore(ctx, after, before, pendingPage)
		if err != nil {
			return settled, err
		}
		for _, o := range page {
			after = o.ID
			r, found, err := s.peers.paymentOf(ctx, o.ID.Hex())
			if err != nil {
				return settled, err
			}
			if !found {
				unpaid = append(unpaid, o.ID.Hex())
				continue
			}
			typ := messaging.PaymentSucceeded
			if r.Status == paymentFailed {
				typ = messaging.PaymentFailed
			}
			changed, err := s.applyPaymentResult(ctx, typ, r, "from", "payment service")
			switch {
			case messaging.IsPermanent(err):
				s.log.ErrorContext(ctx, "payment does not settle its PENDING order, order left as it is",
					"order", o.ID.Hex(), "payment", r.PaymentID, "error", err)
			case err != nil:
				return settled, err
			case changed:
				settled++
				s.log.WarnContext(ctx, "order settled from its payment: its payment result was not handled",
					"order", o.ID.Hex(), "payment", r.PaymentID, "paymentStatus", r.Status)
			}
		}
		if len(page) < pendingPage {
			return settled, nil
		}
	}
}

// pendingBefore returns up to limit PENDING orders created before before, with ids after
// after, in id order, leaving out those whose outbox still holds their order.created (the
// payment service cannot have it yet).
func (s *store) pendingBefore(ctx context.Context, after bson.ObjectID, before time.Time, limit int64) ([]Order, error) {
	filter := bson.D{
		{Key: "status", Value: Pending},
		{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}},
		{Key: "createdAt", Value: bson.D{{Key: "$lt", Value: before}}},
		{Key: outbox.PendingField, Value: bson.D{{Key: "$ne", Value: true}}},
	}
	cur, err := s.orders.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetLimit(limit).SetProjection(bson.D{{Key: outbox.Field, Value: 0}}))
	if err != nil {
		return nil, err
	}
	var out []Order
	return out, cur.All(ctx, &out)
}

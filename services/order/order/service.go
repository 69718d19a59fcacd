package order

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging/outbox"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// relay is what the service needs of the outbox relay (outbox.Worker).
type relay interface {
	// Notify tells it of new events.
	Notify(id any, events ...outbox.Event)
	// TakeConfirmed hands over the removal of published events.
	TakeConfirmed(id any) map[string]bool
}

// service is the order domain over its store, its peers and its outbox relay.
type service struct {
	store *store
	peers *peers
	relay relay
	log   *slog.Logger
	now   func() time.Time
	// budget bounds a placement up to its answer (PLACEMENT_TIMEOUT).
	budget time.Duration
	// pendingAge is how long an order stays PENDING before the sweep asks the payment
	// service for its payment (PENDING_CHECK_AFTER, pending.go).
	pendingAge time.Duration
	// background counts the stock releases of failed placements (abandonWithin), which
	// may outlive their request; Close waits for them.
	background sync.WaitGroup
}

// place places an order: it claims the idempotency key if there is one, checks the user,
// reserves the stock under the order's id, and stores the order PENDING with its
// order.created event in one write. With an idempotency key, a retry reuses the first
// attempt's order id, so every step repeats harmlessly and the same order comes back,
// whatever the user service says meanwhile (the user deleted, the service down): the order
// exists. created is false for such a replay.
//
// It answers within s.budget, below the gateway's timeout, so that a client is told what
// became of its order (a 503 says nothing was placed) rather than that the gateway gave up
// (a 504 says the order may exist). The steps before the write (locks, peers) must be over
// storeMargin before that deadline, which leaves the write and its fence (settleInsert) time
// to say whether the order was stored; giving back stock that may have been taken, and
// settling a write whose answer is still missing at the deadline, go on past it if need be.
func (s *service) place(ctx context.Context, req PlaceRequest, idemKey string) (o Order, created bool, err error) {
	if err := req.Validate(); err != nil {
		return Order{}, false, err
	}
	deadline, margin := time.Now().Add(s.budget), storeMargin(s.budget)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	steps, cancelSteps := context.WithDeadline(ctx, deadline.Add(-margin))
	defer cancelSteps()
	// The locks this request takes, released when it returns unless a step still running
	// after the answer takes them over.
	var locks heldLocks
	defer locks.release()
	id := mongodb.NewID()
	keyID := ""
	claimed := false // this request claimed the key, for id
	if idemKey != "" {
		fp, _ := json.Marshal(req)
		sum := sha256.Sum256(fp)
		keyID = req.UserID + "\x00" + idemKey
		// The requests of one key take turns. They share an order id, so one that gives
		// up (its answer lost, its client gone) and gives the stock back would otherwise
		// release the reservation of another that stored the order meanwhile. The order
		// service runs as one process, so a lock in it is enough. A request whose client
		// goes while it waits stops waiting.
		if err := locks.take(steps, &s.store.locks, idempotencyLockPrefix+keyID); err != nil {
			return Order{}, false, err
		}
		k, err := s.store.claimKey(steps, idempotencyKey{ID: keyID, OrderID: id, Fingerprint: hex.EncodeToString(sum[:])})
		if err != nil {
			return Order{}, false, err
		}
		if k.Fingerprint != hex.EncodeToString(sum[:]) {
			return Order{}, false, apperr.Unprocessable("Idempotency-Key was used for a different request")
		}
		claimed = k.OrderID == id
		id = k.OrderID
		if !claimed {
			// A retry: the order comes back if an earlier attempt stored it.
			if o, err := s.store.get(steps, id); err == nil {
				return o, false, nil
			} else if !errors.Is(err, errNotFound) {
				return Order{}, false, err
			}
		}
	}
	if err := s.checkNew(steps, req); err != nil {
		// A request for no user, or for no product, makes no order: the key it claimed is
		// freed. One claimed by an earlier attempt stays with that attempt's placement,
		// which frees it once settled.
		if claimed {
			s.forgetKey(ctx, id, keyID)
		}
		return Order{}, false, err
	}

	// The placement is recorded before any stock is taken, and the order's placement
	// lock held until it is over: should anything stop this request before the order
	// is stored or its stock given back, the sweep finishes it (placement.go).
	if err := locks.take(steps, &s.store.locks, placementLockPrefix+id.Hex()); err != nil {
		return Order{}, false, err
	}
	if err := s.store.recordPlacement(steps, placement{ID: id, KeyID: keyID, CreatedAt: s.now()}); err != nil {
		return Order{}, false, err
	}

	res, err := s.peers.reserve(steps, id.Hex(), req.Items)
	if err != nil {
		if reservationSettled(err) {
			// Nothing was reserved and no order made: the key is freed, so that a retry
			// once the stock is back places the order instead of repeating this answer.
			s.forgetKey(ctx, id, keyID)
			s.finishPlacement(ctx, id)
		} else if !s.abandonWithin(ctx, id, keyID, locks.handOver()) {
			// The stock may have been taken before the answer was lost, and is not back
			// (a release slow or refused): nothing was placed, but the key still names this
			// attempt, and the stock is held until the release is over, as the 503 says.
			return Order{}, false, stockNotBack(err)
		}
		return Order{}, false, err
	}
	now := s.now()
	o = Order{ID: id, UserID: req.UserID, TotalCents: res.TotalCents, Currency: "USD",
		Status: Pending, CreatedAt: now, UpdatedAt: now}
	for _, it := range res.Items {
		o.Items = append(o.Items, Item{ProductID: it.ProductID, Quantity: it.Quantity, UnitPriceCents: it.UnitPriceCents})
		if it.Currency != "" {
			o.Currency = it.Currency
		}
	}
	ev, err := createdEvent(ctx, o)
	if err != nil {
		return Order{}, false, err
	}
	// The insert leaves half the margin to its fence, so that a write lost on its way is
	// settled, and its stock given back, before the answer.
	write, cancelWrite := context.WithDeadline(ctx, deadline.Add(-margin/2))
	defer cancelWrite()
	stored, inserted, err := s.store.insert(write, document{Order: o, Outbox: []outbox.Event{ev}, OutboxPending: true, Origin: originOf(ev)})
	if err != nil {
		return s.settleInsert(ctx, id, keyID, now, ev, err, locks.handOver())
	}
	if inserted {
		s.relay.Notify(id, ev)
	}
	s.finishPlacement(ctx, id)
	return stored, inserted, nil
}

// storeMargin is what a placement's budget keeps, after the steps before the write, for
// the write and, should its answer not come, the fence that settles it: about two of the
// database's round trips on a loaded node, and no more than a quarter of a small budget.
func storeMargin(budget time.Duration) time.Duration {
	return min(1500*time.Millisecond, budget/4)
}

// outcomeUnknown answers a placement whose write (insertErr) is not known, at the
// deadline, to have stored the order or to never store it. Unlike the other 503s it does
// not say that nothing was placed: the same Idempotency-Key settles it (the order, or a
// fresh placement), and a request without one may find the order under GET /orders.
func outcomeUnknown(insertErr error) error {
	return apperr.Unavailable(orderMayExist).Because(insertErr)
}

// orderMayExist is the message of outcomeUnknown's 503.
const orderMayExist = "the order may have been placed: send the request again with the same Idempotency-Key, or look for the order before placing it again without one"

// stockNotBack answers a placement whose order was not stored and never will be (fenced
// off, or its reservation's answer lost), but whose stock was not given back by the
// deadline: the release is slow, and goes on after the answer, or failed, and is left to
// the sweep. Unlike the 503s that say nothing was placed, it does not say that a retry
// places the order: until the stock is back the key still names the abandoned attempt,
// and a request without one may find the stock short. The same Idempotency-Key waits for
// the release, or finishes it. cause is why the order was not stored.
func stockNotBack(cause error) error {
	return apperr.Unavailable(stockStillHeld).Because(cause)
}

// stockStillHeld is the message of stockNotBack's 503.
const stockStillHeld = "nothing was placed, but its stock is still being given back: send the request again with the same Idempotency-Key, or without one in a minute"

// settleInsert settles the placement of order id, whose insert failed (insertErr): the
// write may have landed although its answer did not, or may yet land. The fence
// (store.fence) settles which: a stored order is kept, with its stock, and answered; one
// fenced off gives its stock back (abandon) and is answered with insertErr, nothing being
// placed and the key freed, once its stock is back. The fence runs on a context of its
// own, never the answer's deadline, which the failed insert may have used up, and holds
// the request's locks (unlock releases them) until the placement is settled; the answer
// waits for it until ctx ends. An outcome not known by then is outcomeUnknown, and the
// fence, and the release of stock it may lead to, go on after the answer; a fence that
// fails leaves the placement to the sweep. An order fenced off whose stock is not back by
// then (a slow or failed release) is stockNotBack: nothing was placed, but a retry now
// would find the stock short, or its key still claimed.
func (s *service) settleInsert(ctx context.Context, id bson.ObjectID, keyID string, now time.Time,
	ev outbox.Event, insertErr error, unlock func()) (Order, bool, error) {
	type outcome struct {
		order Order
		err   error
	}
	fenced := make(chan outcome, 1)
	released := make(chan bool, 1) // abandon's result, for an order fenced off
	s.background.Go(func() {
		defer unlock()
		settle, cancel := cleanupContext(context.WithoutCancel(ctx))
		defer cancel()
		found, err := s.store.fence(settle, id, now)
		switch {
		case err == nil:
			s.relay.Notify(id, ev)
			fenced <- outcome{found, nil}
			s.finishPlacement(settle, id)
		case errors.Is(err, errNotFound):
			fenced <- outcome{err: err}
			released <- s.abandon(settle, id, keyID)
		default:
			fenced <- outcome{err: err}
			web.LoggerFor(ctx, s.log).Warn("order not stored, or not known to be: its stock stays reserved until the sweep settles it",
				"order", id.Hex(), "error", insertErr, "lookup", err)
		}
	})
	var r outcome
	select {
	case r = <-fenced:
	case <-ctx.Done():
		web.LoggerFor(ctx, s.log).Warn("order not known to be stored at the deadline: it is settled after the answer",
			"order", id.Hex(), "error", insertErr)
		return Order{}, false, outcomeUnknown(insertErr)
	}
	switch {
	case r.err == nil:
		return r.order, true, nil
	case errors.Is(r.err, errNotFound):
		// Nothing is placed: the answer waits for the stock to go back, as abandonWithin,
		// and says that nothing is held only once it is, and the key freed.
		back := false
		select {
		case back = <-released:
		case <-ctx.Done():
		}
		switch {
		case !back:
			web.LoggerFor(ctx, s.log).Warn("order not stored, its stock not back at the answer: it is given back after it",
				"order", id.Hex(), "error", insertErr)
			return Order{}, false, stockNotBack(insertErr)
		case errors.Is(insertErr, errNotFound):
			// The insert found the id fenced off: an earlier attempt with this
			// Idempotency-Key was abandoned, and its key is now freed.
			return Order{}, false, errAttemptAbandoned
		default:
			return Order{}, false, insertErr
		}
	default:
		return Order{}, false, outcomeUnknown(insertErr)
	}
}

// checkNew checks what a new order names before any stock is taken: its user, with the
// user service, and its products' ids. An id the product service never makes names no
// product, and is not sent on: the reservation's body, its characters escaped, could
// outgrow what the product service reads, and its refusal would be a 503.
func (s *service) checkNew(ctx context.Context, req PlaceRequest) error {
	if err := s.peers.checkUser(ctx, req.UserID); err != nil {
		return err
	}
	var malformed []any
	for _, it := range req.Items {
		if _, ok := mongodb.ParseID(it.ProductID); !ok {
			malformed = append(malformed, map[string]string{"productId": it.ProductID})
		}
	}
	if malformed != nil {
		return apperr.Unprocessable("unknown product", malformed...)
	}
	return nil
}

// abandon gives back the stock of order id, which was not and will not be stored, even
// when the client has gone (ctx done), and tells whether it did. With an idempotency key
// (keyID), the key's claim is removed too, so a retry places the order afresh instead of
// finding its stock released; then the placement is over. The product service remembers
// a release that arrives before its reservation, so a late reservation takes nothing.
// Stock the product service did not take back stays with the placement, for the sweep.
func (s *service) abandon(ctx context.Context, id bson.ObjectID, keyID string) bool {
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	if err := s.peers.release(ctx, id.Hex()); err != nil {
		web.LoggerFor(ctx, s.log).Warn("stock of an unstored order not released yet; the sweep tries again", "order", id.Hex(), "error", err)
		return false
	}
	s.forgetKey(ctx, id, keyID)
	s.finishPlacement(ctx, id)
	return true
}

// abandonWithin abandons order id (abandon) holding the request's locks (unlock releases
// them) until it is over, and waits for it until ctx ends: the placement's deadline, or
// its client gone. A release still running then (a hung product service holds it for
// PEER_TIMEOUT) goes on after the answer, a 503, which the gateway would otherwise cut
// short. A retry with the order's Idempotency-Key waits for the lock, so it finds the key
// freed (the stock is back) or, if the release failed, the same order id, whose
// reservation the product service answers as before or as released: a release never
// runs alongside a retry that stores the order. A release that fails is the sweep's.
// back tells whether the stock was back, and the key freed, by the answer.
func (s *service) abandonWithin(ctx context.Context, id bson.ObjectID, keyID string, unlock func()) (back bool) {
	done := make(chan bool, 1)
	background := context.WithoutCancel(ctx) // the release is not cut short with the answer
	s.background.Go(func() {
		released := false
		defer func() {
			unlock() // before the answer, so that a retry it leads to finds the order free
			done <- released
		}()
		released = s.abandon(background, id, keyID)
	})
	select {
	case back = <-done:
	case <-ctx.Done():
	}
	return back
}

// cleanupContext returns the context of a step that puts the store or the stock back in
// order, which must run even when the client has gone (ctx done): at most 5 s, and no
// later than ctx's deadline, the placement's budget when it answers a request.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(5 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return context.WithDeadline(context.WithoutCancel(ctx), deadline)
}

// heldLocks are the locks a placement holds, taken in order and released in reverse.
type heldLocks []func()

// take waits for lock name of locks until ctx ends. A wait that outlasts the placement's
// steps (its budget less the store margin) is a 503: an earlier request with the same
// Idempotency-Key, or the sweep, still settles the order, which may have been stored
// meanwhile (a fence still running after a 503 "the order may have been placed"), so the
// answer does not say that nothing was placed. Requests without a key have an order id of
// their own and never wait.
func (h *heldLocks) take(ctx context.Context, locks *mongodb.KeyedMutex, name string) error {
	unlock, err := locks.LockContext(ctx, name)
	if errors.Is(err, context.DeadlineExceeded) {
		return apperr.Unavailable(earlierStillSettled).Because(err)
	}
	if err != nil {
		return err
	}
	*h = append(*h, unlock)
	return nil
}

// earlierStillSettled is the message of the 503 of a lock not taken in time.
const earlierStillSettled = "an earlier request with this Idempotency-Key is still being settled: send the same request again with the same key"

// handOver returns a function that releases the locks, which release then leaves alone.
func (h *heldLocks) handOver() func() {
	held := *h
	*h = nil
	return func() {
		for i := len(held) - 1; i >= 0; i-- {
			held[i]()
		}
	}
}

// release releases the locks still held.
func (h *heldLocks) release() { h.handOver()() }

// forgetKey removes the claim of idempotency key keyID (none when "") for order id, which
// was not stored, even when the client has gone (ctx done). A claim left in place is
// harmless: a retry with the key reuses the order id, of which nothing is held.
func (s *service) forgetKey(ctx context.Context, id bson.ObjectID, keyID string) {
	if keyID == "" {
		return
	}
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	if err := s.store.forgetKey(ctx, keyID, id); err != nil {
		web.LoggerFor(ctx, s.log).Error("idempotency key of an unstored order kept", "order", id.Hex(), "error", err)
	}
}

// idempotencyLockPrefix puts the locks of idempotency keys apart from the store's locks of
// orders, in the same KeyedMutex.
const idempotencyLockPrefix = "idempotency-key/"

func (s *service) get(ctx context.Context, id string) (Order, error) {
	oid, ok := mongodb.ParseID(id)
	if !ok {
		return Order{}, apperr.NotFound("Order not found")
	}
	o, err := s.store.get(ctx, oid)
	if errors.Is(err, errNotFound) {
		return Order{}, apperr.NotFound("Order not found")
	}
	return o, err
}

// handlePaymentResult settles an order from a payment.succeeded or payment.failed
// delivery. The result must agree with its type (status SUCCEEDED or FAILED) and with
// the order (its amount and currency): one that does not is refused (dead-lettered), as a
// malformed one is. Handling it again changes nothing: only a PENDING order is settled,
// and a result that contradicts how the order was settled is logged at ERROR. A
// failed payment gives the stock back before the order is marked CANCELLED (under the
// order's lock, once it is known PENDING), so that a client that sees CANCELLED finds the
// stock back. When the product service does not take it back (out, failing, or not
// answering in time), a pending release is stored instead, and the order CANCELLED all
// the same: the sweep gives the stock back once the product service answers
// (releaseOrDefer). The delivery is not held while the product service is out, so the
// other results, which need nothing of it, are not held behind it either. A crash
// before the CANCELLED write leaves the order PENDING, and the redelivery finishes the
// job.
func (s *service) handlePaymentResult(ctx context.Context, d messaging.Delivery) error {
	var r PaymentResult
	if err := json.Unmarshal(d.Body, &r); err != nil {
		return messaging.Permanent(fmt.Errorf("malformed %s: %w", d.Type, err))
	}
	_, err := s.applyPaymentResult(ctx, d.Type, r, "id", d.ID)
	return err
}

// applyPaymentResult settles an order from payment result r of type typ (see
// handlePaymentResult, and the sweep of orders left PENDING, sweepPending, which builds r
// from the payment service's record of the payment). changed is true when it settled the
// order, false when the order was settled before. A result that cannot settle the order
// (for a malformed or unknown order id, of another type, or not matching its type or the
// order) is a Permanent error. logAttrs say where r came from, in the ERROR line of a
// result that contradicts the order's settlement.
func (s *service) applyPaymentResult(ctx context.Context, typ string, r PaymentResult, logAttrs ...any) (changed bool, err error) {
	id, ok := mongodb.ParseID(r.OrderID)
	if !ok {
		return false, messaging.Permanent(fmt.Errorf("%s for malformed order id %q", typ, r.OrderID))
	}
	var status Status
	var reason, paymentStatus string
	switch typ {
	case messaging.PaymentSucceeded:
		status, paymentStatus = Paid, paymentSucceeded
	case messaging.PaymentFailed:
		status, paymentStatus, reason = Cancelled, paymentFailed, "payment failed"
		if r.Reason != "" {
			reason = "payment failed: " + r.Reason
		}
	default:
		return false, messaging.Permanent(fmt.Errorf("unexpected event type %q", typ))
	}
	if r.Status != paymentStatus {
		return false, messaging.Permanent(fmt.Errorf("%s of order %s with status %q, want %s", typ, r.OrderID, r.Status, paymentStatus))
	}
	// An order's amount and currency never change once it is stored: read outside its lock.
	o, err := s.store.get(ctx, id)
	if errors.Is(err, errNotFound) {
		return false, messaging.Permanent(fmt.Errorf("%s for unknown order %s", typ, r.OrderID))
	}
	if err != nil {
		return false, err
	}
	if r.AmountCents != o.TotalCents || r.Currency != o.Currency {
		return false, messaging.Permanent(fmt.Errorf("%s of order %s for %d %s, want its total %d %s",
			typ, r.OrderID, r.AmountCents, r.Currency, o.TotalCents, o.Currency))
	}

	now := s.now()
	ev, err := outbox.NewEvent(ctx, messaging.OrderUpdated,
		UpdatedEvent{OrderID: r.OrderID, Status: status, Reason: reason, UpdatedAt: now}, false)
	if err != nil {
		return false, err
	}
	var releaseStock func() error
	if status == Cancelled {
		releaseStock = func() error { return s.releaseOrDefer(ctx, id, now) }
	}
	var published map[string]bool
	changed, err = s.store.settle(ctx, id, settlement{
		status: status, reason: reason, event: ev, now: now, prepare: releaseStock,
		published: func(id bson.ObjectID) map[string]bool {
			published = s.relay.TakeConfirmed(id)
			return published
		},
	})
	if errors.Is(err, errNotFound) {
		return false, messaging.Permanent(fmt.Errorf("%s for unknown order %s", typ, r.OrderID))
	}
	if err != nil {
		if len(published) > 0 {
			// Their removal was ours: the relay reads the order again and sends what is left.
			s.relay.Notify(id)
		}
		return false, err
	}
	if changed {
		s.relay.Notify(id, ev)
		return true, nil
	}
	// Settled before: by this result (a duplicate), or otherwise, which someone must look at.
	if o.Status == Pending { // settled since it was read
		if o, err = s.store.get(ctx, id); err != nil {
			return false, err
		}
	}
	if o.Status != status {
		// The line names the delivery's trace (web.LoggerFor), as the consumer's own lines
		// do: it leads to the payment and the request behind it.
		web.LoggerFor(ctx, s.log).ErrorContext(ctx, "payment result contradicts the order's settlement, order left as it is",
			append([]any{"order", r.OrderID, "status", o.Status, "type", typ, "payment", r.PaymentID}, logAttrs...)...)
	}
	return false, nil
}

// createdEvent is the order.created of order o.
func createdEvent(ctx context.Context, o Order) (outbox.Event, error) {
	return outbox.NewEvent(ctx, messaging.OrderCreated, CreatedEvent{
		OrderID: o.ID.Hex(), UserID: o.UserID, Items: o.Items, TotalCents: o.TotalCents,
		Currency: o.Currency, CreatedAt: o.CreatedAt,
	}, true)
}

// The statuses of a payment result (the payment service's payment statuses).
const (
	paymentSucceeded = "SUCCEEDED"
	paymentFailed    = "FAILED"
)

// Package payment is the payment service: it charges each order once through the
// simulated provider when order.created arrives, publishes the result through its
// outbox, and serves the payments it made.
package payment

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging/outbox"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// Status of a payment.
type Status string

// The statuses.
const (
	Succeeded Status = "SUCCEEDED"
	Failed    Status = "FAILED"
)

// Payment is a charge for one order, as stored and shown.
type Payment struct {
	ID          bson.ObjectID `json:"id" bson:"_id"`
	OrderID     string        `json:"orderId" bson:"orderId"`
	AmountCents int64         `json:"amountCents" bson:"amountCents"`
	Currency    string        `json:"currency" bson:"currency"`
	Status      Status        `json:"status" bson:"status"`
	Reason      string        `json:"reason,omitempty" bson:"reason,omitempty"`
	CreatedAt   time.Time     `json:"createdAt" bson:"createdAt"`
}

// orderCreated is the part of order.created a payment needs.
type orderCreated struct {
	OrderID    string `json:"orderId"`
	TotalCents *int64 `json:"totalCents"`
	Currency   string `json:"currency"`
}

// ResultEvent is the body of payment.succeeded and payment.failed.
type ResultEvent struct {
	PaymentID   string `json:"paymentId"`
	OrderID     string `json:"orderId"`
	AmountCents int64  `json:"amountCents"`
	Currency    string `json:"currency"`
	Status      Status `json:"status"`
	Reason      string `json:"reason,omitempty"`
}

// provider is the simulated payment provider of the contract: it declines amounts
// above its limit and approves the rest.
type provider struct{ limitCents int64 }

func (p provider) charge(amountCents int64) (Status, string) {
	if amountCents > p.limitCents {
		return Failed, fmt.Sprintf("amount %d exceeds the limit of %d cents", amountCents, p.limitCents)
	}
	return Succeeded, ""
}

// charger turns order.created deliveries into payments.
type charger struct {
	store    *store
	provider provider
	relay    interface {
		Notify(id any, events ...outbox.Event)
	} // the outbox relay, told of new events
	log *slog.Logger
}

// handleOrderCreated charges the order once. The payment and its result event are one
// document, inserted under a unique order id: a second delivery of the same order
// (redelivery or duplicate event) finds the key taken and changes nothing.
func (c *charger) handleOrderCreated(ctx context.Context, d messaging.Delivery) error {
	var oc orderCreated
	if err := json.Unmarshal(d.Body, &oc); err != nil {
		return messaging.Permanent(fmt.Errorf("malformed order.created: %w", err))
	}
	if _, ok := mongodb.ParseID(oc.OrderID); !ok || oc.TotalCents == nil || *oc.TotalCents < 0 {
		return messaging.Permanent(fmt.Errorf("order.created %s lacks an order id or a total, or has a negative total", d.ID))
	}
	total := *oc.TotalCents
	if oc.Currency == "" {
		oc.Currency = "USD"
	}
	status, reason := c.provider.charge(total)
	p := Payment{
		ID: mongodb.NewID(), OrderID: oc.OrderID, AmountCents: total, Currency: oc.Currency,
		Status: status, Reason: reason, CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
	}
	typ := messaging.PaymentSucceeded
	if status == Failed {
		typ = messaging.PaymentFailed
	}
	ev, err := outbox.NewEvent(ctx, typ, ResultEvent{
		PaymentID: p.ID.Hex(), OrderID: p.OrderID, AmountCents: p.AmountCents,
		Currency: p.Currency, Status: p.Status, Reason: p.Reason,
	}, true)
	if err != nil {
		return err
	}
	inserted, err := c.store.insert(ctx, document{Payment: p, Outbox: []outbox.Event{ev}, OutboxPending: true})
	if err != nil {
		return err
	}
	if inserted {
		c.relay.Notify(p.ID, ev)
	} else {
		web.LoggerFor(ctx, c.log).Info("order already charged", "order", oc.OrderID, "event", d.ID)
	}
	return nil
}

// Package order is the order service: placing an order (user check, stock reservation,
// the order stored PENDING with its order.created event), reading orders, and moving an
// order to PAID or CANCELLED when the payment result arrives.
package order

import (
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging/outbox"
)

// Status of an order: PENDING, then PAID or CANCELLED, never anything else.
type Status string

// The statuses.
const (
	Pending   Status = "PENDING"
	Paid      Status = "PAID"
	Cancelled Status = "CANCELLED"
)

// Limits of a request.
const (
	maxLines    = 50
	maxQuantity = 1000
)

// Item is one line of an order.
type Item struct {
	ProductID      string `json:"productId" bson:"productId"`
	Quantity       int    `json:"quantity" bson:"quantity"`
	UnitPriceCents int64  `json:"unitPriceCents" bson:"unitPriceCents"`
}

// Order is an order as stored and shown.
type Order struct {
	ID         bson.ObjectID `json:"id" bson:"_id"`
	UserID     string        `json:"userId" bson:"userId"`
	Items      []Item        `json:"items" bson:"items"`
	TotalCents int64         `json:"totalCents" bson:"totalCents"`
	Currency   string        `json:"currency" bson:"currency"`
	Status     Status        `json:"status" bson:"status"`
	Reason     string        `json:"reason,omitempty" bson:"reason,omitempty"`
	CreatedAt  time.Time     `json:"createdAt" bson:"createdAt"`
	UpdatedAt  time.Time     `json:"updatedAt" bson:"updatedAt"`
}

// document is an order with its outbox, as stored.
type document struct {
	Order         `bson:",inline"`
	Outbox        []outbox.Event `bson:"outbox"`
	OutboxPending bool           `bson:"outboxPending"`
	// ResentAt is when the sweep last sent the order's order.created again (pending.go);
	// the zero time if it has not.
	ResentAt time.Time `bson:"resentAt,omitempty"`
	// Origin ties the order to the request that placed it, for the order.created the sweep
	// sends again; nil for an order placed before it was kept.
	Origin *origin `bson:"origin,omitempty"`
}

// origin is what an event carries of the request it came from: its trace and request id.
type origin struct {
	Traceparent string `bson:"traceparent,omitempty"`
	Tracestate  string `bson:"tracestate,omitempty"`
	RequestID   string `bson:"requestId,omitempty"`
}

// originOf is the origin ev carries, nil when it carries none.
func originOf(ev outbox.Event) *origin {
	o := origin{Traceparent: ev.Traceparent, Tracestate: ev.Tracestate, RequestID: ev.RequestID}
	if o == (origin{}) {
		return nil
	}
	return &o
}

// stamp makes ev carry o, when o is known: an event sent again for the order (the sweep's
// order.created) is tied, in the logs and traces, to the request that placed it, not to
// the sweep that has none.
func (o *origin) stamp(ev *outbox.Event) {
	if o != nil {
		ev.Traceparent, ev.Tracestate, ev.RequestID = o.Traceparent, o.Tracestate, o.RequestID
	}
}

// PlaceRequest is the body of POST /orders.
type PlaceRequest struct {
	UserID string        `json:"userId"`
	Items  []RequestItem `json:"items"`
}

// RequestItem is one requested line.
type RequestItem struct {
	ProductID string `json:"productId"`
	Quantity  int    `json:"quantity"`
}

// Validate checks the request's shape; existence is checked by the user and product
// services.
func (r PlaceRequest) Validate() error {
	var v apperr.Validator
	v.Check(r.UserID != "", "userId", "is required")
	if v.Check(len(r.Items) >= 1 && len(r.Items) <= maxLines, "items", "must hold 1 to 50 lines") {
		seen := make(map[string]bool, len(r.Items))
		for i, it := range r.Items {
			// Named with the line's index, as the decoder names a wrong type there.
			field := fmt.Sprintf("items[%d]", i)
			if !v.Check(it.ProductID != "", field+".productId", "is required") ||
				!v.Check(it.Quantity >= 1 && it.Quantity <= maxQuantity, field+".quantity", "must be from 1 to 1000") ||
				!v.Check(!seen[it.ProductID], field+".productId", "names a product already on another line") {
				break
			}
			seen[it.ProductID] = true
		}
	}
	return v.Err()
}

// Event payloads.
type (
	// CreatedEvent is the body of order.created.
	CreatedEvent struct {
		OrderID    string    `json:"orderId"`
		UserID     string    `json:"userId"`
		Items      []Item    `json:"items"`
		TotalCents int64     `json:"totalCents"`
		Currency   string    `json:"currency"`
		CreatedAt  time.Time `json:"createdAt"`
	}
	// UpdatedEvent is the body of order.updated.
	UpdatedEvent struct {
		OrderID   string    `json:"orderId"`
		Status    Status    `json:"status"`
		Reason    string    `json:"reason,omitempty"`
		UpdatedAt time.Time `json:"updatedAt"`
	}
	// PaymentResult is the body of payment.succeeded and payment.failed.
	PaymentResult struct {
		PaymentID   string `json:"paymentId"`
		OrderID     string `json:"orderId"`
		AmountCents int64  `json:"amountCents"`
		Currency    string `json:"currency"`
		Status      string `json:"status"`
		Reason      string `json:"reason,omitempty"`
	}
)

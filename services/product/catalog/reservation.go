package catalog

import (
	"fmt"
	"regexp"
	"slices"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
)

// Limits of a reservation, the same as an order's.
const (
	MaxLines    = 50
	MaxQuantity = 1000
)

// orderIDPattern is the shape of an order id. Stores use the id as a document key
// (a field name), so '.' and a leading '$' must never reach them.
var orderIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidOrderID reports whether id can name a reservation.
func ValidOrderID(id string) bool { return orderIDPattern.MatchString(id) }

// ReservationRequest is the body of POST /internal/reservations: take Quantity of each
// product for the order, all lines or none.
type ReservationRequest struct {
	OrderID string            `json:"orderId"`
	Items   []ReservationItem `json:"items"`
}

// ReservationItem is one line of a ReservationRequest.
type ReservationItem struct {
	ProductID string `json:"productId"`
	Quantity  int64  `json:"quantity"`
}

// Validate checks the request's shape. A product listed twice is refused rather than
// merged: each line is one stock movement, and the caller owns its order's lines.
func (r ReservationRequest) Validate() error {
	var v apperr.Validator
	v.Check(ValidOrderID(r.OrderID), "orderId", "must be 1 to 64 letters, digits, '-' or '_'")
	v.Check(len(r.Items) >= 1 && len(r.Items) <= MaxLines, "items", fmt.Sprintf("must hold 1 to %d lines", MaxLines))
	seen := make(map[string]bool, len(r.Items))
	for i, it := range r.Items {
		field := fmt.Sprintf("items[%d]", i)
		if v.Check(it.ProductID != "", field+".productId", "is required") {
			v.Check(!seen[it.ProductID], field+".productId", "appears on another line; merge the lines")
			seen[it.ProductID] = true
		}
		v.Check(it.Quantity >= 1 && it.Quantity <= MaxQuantity, field+".quantity",
			fmt.Sprintf("must be an integer from 1 to %d", MaxQuantity))
	}
	return v.Err()
}

// Reservation is stock held for an order, priced when it was first made.
type Reservation struct {
	OrderID    string         `json:"orderId"`
	Items      []ReservedItem `json:"items"`
	TotalCents int64          `json:"totalCents"`
}

// ReservedItem is one line of a Reservation.
type ReservedItem struct {
	ProductID      string `json:"productId"`
	Quantity       int64  `json:"quantity"`
	UnitPriceCents int64  `json:"unitPriceCents"`
	Currency       string `json:"currency"`
}

// Price makes the reservation of req from the products it names (by id; a missing one is
// unknown). Every line must be in one currency, since a total of mixed currencies means
// nothing: otherwise it is refused (422), like an unknown product.
func Price(req ReservationRequest, products map[string]Product) (Reservation, error) {
	res := Reservation{OrderID: req.OrderID, Items: make([]ReservedItem, 0, len(req.Items))}
	var unknown []string
	for _, it := range req.Items {
		p, ok := products[it.ProductID]
		if !ok {
			unknown = append(unknown, it.ProductID)
			continue
		}
		res.Items = append(res.Items, ReservedItem{
			ProductID: it.ProductID, Quantity: it.Quantity,
			UnitPriceCents: p.PriceCents, Currency: p.Currency,
		})
		res.TotalCents += it.Quantity * p.PriceCents
	}
	if len(unknown) > 0 {
		return Reservation{}, UnknownProducts(unknown...)
	}
	if err := checkOneCurrency(res.Items); err != nil {
		return Reservation{}, err
	}
	return res, nil
}

// CurrencyLine names a line's product and its currency in a mixed-currency error.
type CurrencyLine struct {
	ProductID string `json:"productId"`
	Currency  string `json:"currency"`
}

func checkOneCurrency(items []ReservedItem) error {
	for _, it := range items[1:] {
		if it.Currency != items[0].Currency {
			details := make([]any, len(items))
			for i, it := range items {
				details[i] = CurrencyLine{ProductID: it.ProductID, Currency: it.Currency}
			}
			return apperr.Unprocessable("mixed currencies", details...)
		}
	}
	return nil
}

// SameItems reports whether req asks for exactly the lines of res (in any order): a
// repeated request for an order must be the same request.
func (res Reservation) SameItems(req ReservationRequest) bool {
	if len(res.Items) != len(req.Items) {
		return false
	}
	key := func(id string, q int64) string { return fmt.Sprintf("%s\x00%d", id, q) }
	have := make([]string, len(res.Items))
	for i, it := range res.Items {
		have[i] = key(it.ProductID, it.Quantity)
	}
	want := make([]string, len(req.Items))
	for i, it := range req.Items {
		want[i] = key(it.ProductID, it.Quantity)
	}
	slices.Sort(have)
	slices.Sort(want)
	return slices.Equal(have, want)
}

// UnknownProduct names a product a reservation asked for that does not exist.
type UnknownProduct struct {
	ProductID string `json:"productId"`
}

// UnknownProducts is the 422 answer naming the products that do not exist.
func UnknownProducts(ids ...string) error {
	details := make([]any, len(ids))
	for i, id := range ids {
		details[i] = UnknownProduct{ProductID: id}
	}
	return apperr.Unprocessable("unknown product", details...)
}

// Shortage is a line that cannot be served: Requested units, only Available in stock.
type Shortage struct {
	ProductID string `json:"productId"`
	Requested int64  `json:"requested"`
	Available int64  `json:"available"`
}

// InsufficientStock is the 409 answer listing the lines that cannot be served.
func InsufficientStock(shortages ...Shortage) error {
	details := make([]any, len(shortages))
	for i, s := range shortages {
		details[i] = s
	}
	return apperr.Conflict("insufficient stock", details...)
}

// ErrReleased answers a reservation request for an order whose reservation was
// released (or released before it was ever made): its stock is not taken again.
var ErrReleased = apperr.Conflict("reservation released")

// ErrDifferentItems answers a reservation request reusing an order id with other lines.
var ErrDifferentItems = apperr.Unprocessable("orderId already reserved with different items")

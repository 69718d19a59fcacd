package order

import (
	"net/http"
	"strings"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// IdempotencyKeyHeader names the header that makes a retried POST /orders return the
// first order.
const IdempotencyKeyHeader = "Idempotency-Key"

// validIdempotencyKey reports whether key ("" for none) can be an Idempotency-Key: at most
// 255 printable ASCII characters, the characters of the header's Structured Field string.
// Other bytes could not be stored and found again as sent (a store may replace bytes that
// are not UTF-8), so a retry would not find its key.
func validIdempotencyKey(key string) bool {
	return len(key) <= 255 && !strings.ContainsFunc(key, func(c rune) bool { return c < 0x20 || c > 0x7e })
}

func (a *App) routes(mux *web.Mux) {
	mux.HandleFunc("POST /orders", a.placeOrder)
	mux.HandleFunc("GET /orders", a.listOrders)
	mux.HandleFunc("GET /orders/{id}", a.getOrder)
}

func (a *App) placeOrder(w http.ResponseWriter, r *http.Request) {
	var req PlaceRequest
	if err := web.Decode(w, r, &req); err != nil {
		web.RespondError(w, r, err)
		return
	}
	// Two keys are refused as a query parameter given twice is: the first would be used
	// and the second said nothing of, though the client may have meant it.
	keys := r.Header.Values(IdempotencyKeyHeader)
	if len(keys) > 1 {
		web.RespondError(w, r, apperr.Validation(apperr.FieldError{Field: IdempotencyKeyHeader, Message: "must be given once"}))
		return
	}
	// A key given empty is refused as a filter given empty is: placed without one, the
	// request and its retry with the same (empty) key would make two orders, though the
	// client sent a key to make the retry safe.
	if len(keys) == 1 && keys[0] == "" {
		web.RespondError(w, r, apperr.Validation(apperr.FieldError{Field: IdempotencyKeyHeader, Message: "must not be empty when given"}))
		return
	}
	key := r.Header.Get(IdempotencyKeyHeader)
	if !validIdempotencyKey(key) {
		web.RespondError(w, r, apperr.BadRequest(IdempotencyKeyHeader+" must be at most 255 printable ASCII characters"))
		return
	}
	o, created, err := a.svc.place(r.Context(), req, key)
	if err != nil {
		web.RespondError(w, r, err)
		return
	}
	status := http.StatusCreated
	if !created {
		// The same order as the first request with this key; 200 tells the client
		// nothing new was made.
		status = http.StatusOK
	} else {
		w.Header().Set("Location", "/orders/"+o.ID.Hex())
	}
	web.Respond(w, status, o)
}

func (a *App) getOrder(w http.ResponseWriter, r *http.Request) {
	o, err := a.svc.get(r.Context(), r.PathValue("id"))
	if err != nil {
		web.RespondError(w, r, err)
		return
	}
	web.Respond(w, http.StatusOK, o)
}

func (a *App) listOrders(w http.ResponseWriter, r *http.Request) {
	q, err := web.Query(r, "limit", "after", "userId", "status")
	if err == nil {
		err = web.Filters(q, "userId", "status")
	}
	if err != nil {
		web.RespondError(w, r, err)
		return
	}
	page, err := mongodb.ParsePageRequest(q)
	if err != nil {
		web.RespondError(w, r, err)
		return
	}
	status := Status(q.Get("status"))
	switch status {
	case "", Pending, Paid, Cancelled:
	default:
		web.RespondError(w, r, apperr.Validation(apperr.FieldError{Field: "status", Message: "must be PENDING, PAID or CANCELLED"}))
		return
	}
	items, next, err := a.svc.store.list(r.Context(), q.Get("userId"), status, page)
	if err != nil {
		web.RespondError(w, r, err)
		return
	}
	web.Respond(w, http.StatusOK, mongodb.Page[Order]{Items: items, Next: next})
}

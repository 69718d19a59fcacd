package payment

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

func (a *App) routes(mux *web.Mux) {
	mux.HandleFunc("GET /payments", a.listPayments)
	mux.HandleFunc("GET /payments/{id}", a.getPayment)
	mux.HandleFunc("GET /internal/payments", a.paymentsOfOrders)
}

// MaxOrderIDs is how many orders GET /internal/payments takes at once.
const MaxOrderIDs = 100

// paymentsOfOrders answers the payments of the orders that ?orderIds= names (1 to
// MaxOrderIDs order ids, comma-separated), found in one query: the order service asks
// for those of a page of orders left PENDING at once (on FerretDB a query by orderId reads
// the whole collection, so one for each order would cost as many reads). An order with
// no payment is left out of the answer.
func (a *App) paymentsOfOrders(w http.ResponseWriter, r *http.Request) {
	q, err := web.Query(r, "orderIds")
	if err != nil {
		web.RespondError(w, r, err)
		return
	}
	var v apperr.Validator
	ids := strings.Split(q.Get("orderIds"), ",")
	if v.Check(q.Get("orderIds") != "", "orderIds", "is required: 1 to 100 order ids, comma-separated") &&
		v.Check(len(ids) <= MaxOrderIDs, "orderIds", fmt.Sprintf("%d order ids: at most %d", len(ids), MaxOrderIDs)) {
		for _, id := range ids {
			if _, ok := mongodb.ParseID(id); !ok {
				v.Add("orderIds", fmt.Sprintf("%q is not an order id (24 lower-case hex digits)", id))
			}
		}
	}
	if err := v.Err(); err != nil {
		web.RespondError(w, r, err)
		return
	}
	items, err := a.store.ofOrders(r.Context(), ids)
	if err != nil {
		web.RespondError(w, r, err)
		return
	}
	web.Respond(w, http.StatusOK, struct {
		Items []Payment `json:"items"`
	}{items})
}

func (a *App) getPayment(w http.ResponseWriter, r *http.Request) {
	id, ok := mongodb.ParseID(r.PathValue("id"))
	if !ok {
		web.RespondError(w, r, apperr.NotFound("Payment not found"))
		return
	}
	p, err := a.store.get(r.Context(), id)
	if errors.Is(err, errNotFound) {
		err = apperr.NotFound("Payment not found")
	}
	if err != nil {
		web.RespondError(w, r, err)
		return
	}
	web.Respond(w, http.StatusOK, p)
}

func (a *App) listPayments(w http.ResponseWriter, r *http.Request) {
	q, err := web.Query(r, "limit", "after", "orderId")
	if err == nil {
		err = web.Filters(q, "orderId")
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
	items, next, err := a.store.list(r.Context(), q.Get("orderId"), page)
	if err != nil {
		web.RespondError(w, r, err)
		return
	}
	web.Respond(w, http.StatusOK, mongodb.Page[Payment]{Items: items, Next: next})
}

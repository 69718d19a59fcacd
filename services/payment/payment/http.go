package payment

import (
	"errors"
	"net/http"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

func (a *App) routes(mux *web.Mux) {
	mux.HandleFunc("GET /payments", a.listPayments)
	mux.HandleFunc("GET /payments/{id}", a.getPayment)
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

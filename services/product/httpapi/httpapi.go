// Package httpapi serves the product service's HTTP API (openapi.yaml): products CRUD
// and the internal reservations API the order service calls. Handlers decode, validate,
// call the store and encode; errors go to web.RespondError, the one mapping to statuses.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/health"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
	"github.com/shopkeeper-dev/shopkeeper/services/product/catalog"
)

// Store is what the handlers need from storage (store.Store).
type Store interface {
	Create(ctx context.Context, np catalog.NewProduct) (catalog.Product, error)
	Get(ctx context.Context, id string) (catalog.Product, error)
	List(ctx context.Context, req mongodb.PageRequest) (mongodb.Page[catalog.Product], error)
	Update(ctx context.Context, id string, p catalog.Patch) (catalog.Product, error)
	Delete(ctx context.Context, id string) error
	Reserve(ctx context.Context, req catalog.ReservationRequest) (res catalog.Reservation, created bool, err error)
	Release(ctx context.Context, orderID string) error
}

// NewHandler returns the service's whole HTTP handler: the API, /healthz, /readyz
// (running checks) and /metrics of reg, behind the kit's middleware.
func NewHandler(store Store, logger *slog.Logger, reg *prometheus.Registry, checks ...health.Check) http.Handler {
	mux := web.NewMux(logger, reg)
	health.Register(mux, checks...)
	mux.Handle("GET /metrics", metrics.Handler(reg))

	h := handlers{store: store}
	mux.HandleFunc("POST /products", h.createProduct)
	mux.HandleFunc("GET /products", web.List(h.store.List))
	mux.HandleFunc("GET /products/{id}", web.Get(h.store.Get))
	mux.HandleFunc("PATCH /products/{id}", h.updateProduct)
	mux.HandleFunc("DELETE /products/{id}", h.deleteProduct)
	mux.HandleFunc("POST /internal/reservations", h.reserve)
	mux.HandleFunc("DELETE /internal/reservations/{orderId}", h.release)
	return mux
}

type handlers struct {
	store Store
}

// decode reads the body into v, then runs check (which normalizes or validates v); on
// failure it answers the error and returns false.
func decode(w http.ResponseWriter, r *http.Request, v any, check func() error) bool {
	err := web.Decode(w, r, v)
	if err == nil {
		err = check()
	}
	if err != nil {
		web.RespondError(w, r, err)
		return false
	}
	return true
}

// newProductBody is a POST /products request. Its currency tells one left out (the
// default) from one sent: that one is held to the rules, so "" and "  " are refused, as
// PATCH refuses them. (A catalog.NewProduct embedded here would name its fields
// "NewProduct.priceCents" in encoding/json's type errors.)
type newProductBody struct {
	Name        string               `json:"name"`
	Description string               `json:"description"`
	PriceCents  int64                `json:"priceCents"`
	Currency    web.Optional[string] `json:"currency"`
	Stock       int64                `json:"stock"`
}

func (h handlers) createProduct(w http.ResponseWriter, r *http.Request) {
	var in newProductBody
	var np catalog.NewProduct
	normalize := func() error {
		np = catalog.NewProduct{Name: in.Name, Description: in.Description, PriceCents: in.PriceCents,
			Currency: catalog.DefaultCurrency, Stock: in.Stock}
		if c := in.Currency.Ptr(); c != nil {
			np.Currency = *c
		}
		return np.Normalize()
	}
	if !decode(w, r, &in, normalize) {
		return
	}
	p, err := h.store.Create(r.Context(), np)
	if err != nil {
		web.RespondError(w, r, err)
		return
	}
	w.Header().Set("Location", "/products/"+p.ID)
	web.Respond(w, http.StatusCreated, p)
}

// patchBody is a PATCH request: a field left out keeps its value; null is refused like
// any other wrong type.
type patchBody struct {
	Name        web.Optional[string] `json:"name"`
	Description web.Optional[string] `json:"description"`
	PriceCents  web.Optional[int64]  `json:"priceCents"`
	Currency    web.Optional[string] `json:"currency"`
	Stock       web.Optional[int64]  `json:"stock"`
}

func (h handlers) updateProduct(w http.ResponseWriter, r *http.Request) {
	// A malformed or unknown id is 404 before the body is looked at.
	if _, err := h.store.Get(r.Context(), r.PathValue("id")); err != nil {
		web.RespondError(w, r, err)
		return
	}
	var in patchBody
	var patch catalog.Patch
	normalize := func() error {
		patch = catalog.Patch{Name: in.Name.Ptr(), Description: in.Description.Ptr(),
			PriceCents: in.PriceCents.Ptr(), Currency: in.Currency.Ptr(), Stock: in.Stock.Ptr()}
		return patch.Normalize()
	}
	if !decode(w, r, &in, normalize) {
		return
	}
	p, err := h.store.Update(r.Context(), r.PathValue("id"), patch)
	if err != nil {
		web.RespondError(w, r, err)
		return
	}
	web.Respond(w, http.StatusOK, p)
}

func (h handlers) deleteProduct(w http.ResponseWriter, r *http.Request) {
	if err := h.store.Delete(r.Context(), r.PathValue("id")); err != nil {
		web.RespondError(w, r, err)
		return
	}
	web.Respond(w, http.StatusNoContent, nil)
}

func (h handlers) reserve(w http.ResponseWriter, r *http.Request) {
	var req catalog.ReservationRequest
	// A closure, not the method value req.Validate: that would copy req before decode fills it.
	if !decode(w, r, &req, func() error { return req.Validate() }) { //nolint:gocritic // see above
		return
	}
	res, created, err := h.store.Reserve(r.Context(), req)
	if err != nil {
		web.RespondError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	web.Respond(w, status, res)
}

func (h handlers) release(w http.ResponseWriter, r *http.Request) {
	order := r.PathValue("orderId")
	if !catalog.ValidOrderID(order) {
		web.RespondError(w, r, errOrderNotFound)
		return
	}
	if err := h.store.Release(r.Context(), order); err != nil {
		web.RespondError(w, r, err)
		return
	}
	web.Respond(w, http.StatusNoContent, nil)
}

// errOrderNotFound answers a release of an order id that cannot exist (the contract:
// a malformed id is 404). A well-formed unknown one is released: 204.
var errOrderNotFound = apperr.NotFound("Reservation not found")

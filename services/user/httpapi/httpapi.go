// Package httpapi serves the user service's HTTP API, as openapi.yaml describes it.
// Handlers decode, normalize (the domain's rules), call the store and encode; every
// error goes to web.RespondError, the one mapping to statuses.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/health"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
	"github.com/shopkeeper-dev/shopkeeper/services/user/users"
)

// Store is what the handlers need from storage (store.Store). Its errors are apperr
// errors for what a client did wrong and plain errors for what went wrong inside.
type Store interface {
	Create(ctx context.Context, n users.NewUser) (users.User, error)
	Get(ctx context.Context, id string) (users.User, error)
	List(ctx context.Context, req mongodb.PageRequest) (mongodb.Page[users.User], error)
	Update(ctx context.Context, id string, p users.Patch) (users.User, error)
	Delete(ctx context.Context, id string) error
}

// NewHandler returns the service's whole HTTP handler: the users API, /healthz,
// /readyz (running checks) and /metrics of reg, behind the kit's middleware.
func NewHandler(store Store, logger *slog.Logger, reg *prometheus.Registry, checks ...health.Check) http.Handler {
	mux := web.NewServiceMux(logger, reg, checks...)
	h := handlers{store: store}
	mux.HandleFunc("POST /users", h.create)
	mux.HandleFunc("GET /users", web.List(h.store.List))
	mux.HandleFunc("GET /users/{id}", web.Get(h.store.Get))
	mux.HandleFunc("PATCH /users/{id}", h.update)
	mux.HandleFunc("DELETE /users/{id}", h.delete)
	return mux
}

type handlers struct {
	store Store
}

func (h handlers) create(w http.ResponseWriter, r *http.Request) {
	var in users.NewUser
	if err := web.Decode(w, r, &in); err != nil {
		web.RespondError(w, r, err)
		return
	}
	if err := in.Normalize(); err != nil {
		web.RespondError(w, r, err)
		return
	}
	u, err := h.store.Create(r.Context(), in)
	if err != nil {
		web.RespondError(w, r, err)
		return
	}
	w.Header().Set("Location", "/users/"+u.ID)
	web.Respond(w, http.StatusCreated, u)
}

// patchBody is a PATCH request: a field left out keeps its value; null is refused like
// any other wrong type.
type patchBody struct {
	Name  web.Optional[string] `json:"name"`
	Email web.Optional[string] `json:"email"`
}

func (h handlers) update(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	// A malformed id is not found, whatever the body says.
	if _, ok := mongodb.ParseID(id); !ok {
		web.RespondError(w, r, users.NotFound())
		return
	}
	var in patchBody
	var patch users.Patch
	err := web.Decode(w, r, &in)
	if err == nil {
		patch = users.Patch{Name: in.Name.Ptr(), Email: in.Email.Ptr()}
		err = patch.Normalize()
	}
	if err != nil {
		// An unknown user is 404 whatever the body says, as the product service answers
		// a PATCH; the read is made only for a body refused.
		if _, getErr := h.store.Get(r.Context(), id); errors.Is(getErr, apperr.ErrNotFound) {
			err = getErr
		}
		web.RespondError(w, r, err)
		return
	}
	u, err := h.store.Update(r.Context(), id, patch)
	if err != nil {
		web.RespondError(w, r, err)
		return
	}
	web.Respond(w, http.StatusOK, u)
}

func (h handlers) delete(w http.ResponseWriter, r *http.Request) {
	if err := h.store.Delete(r.Context(), r.PathValue("id")); err != nil {
		web.RespondError(w, r, err)
		return
	}
	web.Respond(w, http.StatusNoContent, nil)
}

package web

import (
	"context"
	"net/http"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
)

// Get serves GET of one resource by the route's {id}: 200 with what get returns, or
// get's error through RespondError (apperr.NotFound is 404).
func Get[T any](get func(ctx context.Context, id string) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := get(r.Context(), r.PathValue("id"))
		if err != nil {
			RespondError(w, r, err)
			return
		}
		Respond(w, http.StatusOK, v)
	}
}

// List serves GET of a collection, a page at a time: ?limit= and ?after= as
// mongodb.ParsePageRequest reads them (a bad value is 400), answered
// {"items": [...], "next": "..."}.
func List[T any](list func(ctx context.Context, req mongodb.PageRequest) (mongodb.Page[T], error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := mongodb.ParsePageRequest(r.URL.Query())
		if err != nil {
			RespondError(w, r, err)
			return
		}
		page, err := list(r.Context(), req)
		if err != nil {
			RespondError(w, r, err)
			return
		}
		Respond(w, http.StatusOK, page)
	}
}

package web

import (
	"context"
	"net/http"
	"net/url"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
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
// mongodb.ParsePageRequest reads them (a bad value, or one given twice, is 400; other
// parameters are ignored), answered {"items": [...], "next": "..."}.
func List[T any](list func(ctx context.Context, req mongodb.PageRequest) (mongodb.Page[T], error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, err := Query(r, "limit", "after")
		if err != nil {
			RespondError(w, r, err)
			return
		}
		req, err := mongodb.ParsePageRequest(q)
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

// Query returns r's query parameters, refusing with a 400 naming each (apperr.Validation)
// those of names, the parameters the operation takes, given more than once: for
// ?limit=1&limit=1000 a handler would take one of them and say nothing. Any other
// parameter is ignored, given once or more, as the operation ignores it.
func Query(r *http.Request, names ...string) (url.Values, error) {
	q := r.URL.Query()
	var v apperr.Validator
	for _, name := range names {
		v.Check(len(q[name]) <= 1, name, "must be given once")
	}
	return q, v.Err()
}

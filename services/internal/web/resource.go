package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"

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
//
// A query that does not parse is refused the same way, naming each parameter that does
// not: a malformed %-escape or a ";" (url.URL.Query drops such a parameter without a
// word, so ?userId=x%&limit=100 would list every user's orders, and ?after=x% the first
// page again).
func Query(r *http.Request, names ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, malformedQuery(r.URL.RawQuery, err)
	}
	var v apperr.Validator
	for _, name := range names {
		v.Check(len(q[name]) <= 1, name, "must be given once")
	}
	return q, v.Err()
}

// Filters refuses (400, apperr.Validation naming each) those of names, the filters a list
// operation takes, given with no value (?userId=, ?status): a client whose value came out
// blank would otherwise get the list unfiltered, every user's orders, as if it had named no
// filter.
func Filters(q url.Values, names ...string) error {
	var v apperr.Validator
	for _, name := range names {
		v.Check(!q.Has(name) || q.Get(name) != "", name, "must not be empty when given")
	}
	return v.Err()
}

// malformedQuery returns the 400 of a query url.ParseQuery refuses with err: one field
// error per parameter it cannot read, named as the client wrote it; when none is at fault,
// the query as a whole (over the number of parameters url.ParseQuery reads, 10,000 unless
// GODEBUG urlmaxqueryparams says otherwise), in ParseQuery's words.
func malformedQuery(query string, err error) error {
	var v apperr.Validator
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, nameErr := url.QueryUnescape(rawName)
		if nameErr != nil {
			name = rawName
		}
		_, valueErr := url.QueryUnescape(rawValue)
		switch {
		case strings.Contains(pair, ";"):
			v.Add(name, `must not contain ";" (parameters are separated by "&")`)
		case nameErr != nil || valueErr != nil:
			v.Add(name, "is not URL-encoded (a % must start an escape such as %25)")
		}
	}
	if verr := v.Err(); verr != nil {
		return verr
	}
	return apperr.BadRequest("the query string cannot be read: " + err.Error())
}

package mongodb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
)

// Pagination bounds of every list (the contract's).
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// PageRequest is a list request: at most Limit items whose id comes after After.
type PageRequest struct {
	Limit int
	// After is the zero ObjectID for the first page.
	After bson.ObjectID
}

// Page is the contract's list answer: {"items": [...], "next": "<id or empty>"}.
// Pass Next as ?after= to get the following page; "" means this is the last one.
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next"`
}

// ParsePageRequest reads ?limit= (default 20, 1-100) and ?after=<id>. A bad value is
// a 400 apperr validation error naming the parameter.
func ParsePageRequest(q url.Values) (PageRequest, error) {
	req := PageRequest{Limit: DefaultLimit}
	var v apperr.Validator
	if s := q.Get("limit"); s != "" || q.Has("limit") {
		n, err := strconv.Atoi(s)
		if v.Check(err == nil && n >= 1 && n <= MaxLimit, "limit",
			fmt.Sprintf("must be an integer from 1 to %d", MaxLimit)) {
			req.Limit = n
		}
	}
	if s := q.Get("after"); s != "" {
		id, ok := ParseID(s)
		if v.Check(ok, "after", "must be an id from a previous page's next") {
			req.After = id
		}
	}
	return req, v.Err()
}

// PageOption changes how FindPage reads a page.
type PageOption func(*options.FindOptionsBuilder)

// Projection makes FindPage read only the fields projection keeps (or all but those it
// drops, e.g. {bookkeeping: 0}), so what a list never shows is not shipped. _id is always
// read: the page's next depends on it.
func Projection(projection bson.D) PageOption {
	return func(o *options.FindOptionsBuilder) { o.SetProjection(projection) }
}

// FindPage returns the documents of coll matching filter (nil for all), in id order,
// one page of req, decoded as D. next is the id to pass as after for the following
// page, or "" when there is none. It reads one document more than the page to know.
func FindPage[D any](ctx context.Context, coll *mongo.Collection, filter bson.D, req PageRequest, opts ...PageOption) (items []D, next string, err error) {
	if req.Limit <= 0 {
		req.Limit = DefaultLimit
	}
	f := filter
	if !req.After.IsZero() {
		f = append(bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: req.After}}}}, filter...)
	}
	if f == nil {
		f = bson.D{}
	}
	find := options.Find().
		SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetLimit(int64(req.Limit) + 1)
	for _, o := range opts {
		o(find)
	}
	cur, err := coll.Find(ctx, f, find)
	if err != nil {
		return nil, "", fmt.Errorf("find %s: %w", coll.Name(), err)
	}
	defer func() { _ = cur.Close(ctx) }()

	items = make([]D, 0, req.Limit)
	var lastID bson.ObjectID
	for len(items) < req.Limit && cur.Next(ctx) {
		var d D
		if err := cur.Decode(&d); err != nil {
			return nil, "", fmt.Errorf("decode %s: %w", coll.Name(), err)
		}
		id, ok := cur.Current.Lookup("_id").ObjectIDOK()
		if !ok {
			return nil, "", errors.New("find " + coll.Name() + ": a document's _id is not an ObjectID")
		}
		items, lastID = append(items, d), id
	}
	if len(items) == req.Limit && cur.Next(ctx) {
		next = lastID.Hex()
	}
	if err := cur.Err(); err != nil {
		return nil, "", fmt.Errorf("find %s: %w", coll.Name(), err)
	}
	return items, next, nil
}

// ListPage is FindPage answering the contract's page of domain values: each stored
// document D becomes a T through convert.
func ListPage[D, T any](ctx context.Context, coll *mongo.Collection, filter bson.D, req PageRequest, convert func(D) T, opts ...PageOption) (Page[T], error) {
	docs, next, err := FindPage[D](ctx, coll, filter, req, opts...)
	if err != nil {
		return Page[T]{}, err
	}
	page := Page[T]{Items: make([]T, len(docs)), Next: next}
	for i, d := range docs {
		page.Items[i] = convert(d)
	}
	return page, nil
}

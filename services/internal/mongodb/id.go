package mongodb

import (
	"errors"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// Every entity's id is its ObjectID, given to clients as its 24-character hex string:
// ids sort by creation time, which pagination relies on, and need no counter.

// NewID returns a fresh id.
func NewID() bson.ObjectID { return bson.NewObjectID() }

// ParseID reads a client's id. ok is false for anything that is not an id; stores
// answer it as not found (the contract: a malformed id is 404). An id has one spelling,
// the lower-case one the services give out: stores, locks, idempotency keys and the check
// for an order's duplicate lines all compare ids as strings, so "6650F1…" beside
// "6650f1…" would be two products to them and one to the database.
func ParseID(s string) (id bson.ObjectID, ok bool) {
	id, err := bson.ObjectIDFromHex(s)
	return id, err == nil && id.Hex() == s
}

// StoredID reads an id the services stored themselves, in any case: before ParseID took
// only the lower-case spelling, a reservation's lines were stored as the client spelt them,
// and giving their units back must still find the product.
func StoredID(s string) (id bson.ObjectID, ok bool) {
	id, err := bson.ObjectIDFromHex(s)
	return id, err == nil
}

// IsDuplicateKey reports whether err is a unique-index violation. FerretDB v1 (SQLite)
// reports one as E11000 on insert but, on update and findAndModify, as an
// InternalError carrying SQLite's "UNIQUE constraint failed"; both count.
func IsDuplicateKey(err error) bool {
	if mongo.IsDuplicateKeyError(err) {
		return true
	}
	var ce mongo.CommandError
	return errors.As(err, &ce) && ce.Name == "InternalError" &&
		strings.Contains(ce.Message, "UNIQUE constraint failed")
}

package mongodb

import "go.mongodb.org/mongo-driver/v2/bson"

// Every entity's id is its ObjectID, given to clients as its 24-character hex string:
// ids sort by creation time, which pagination relies on, and need no counter.

// NewID returns a fresh id.
func NewID() bson.ObjectID { return bson.NewObjectID() }

// ParseID reads a client's id. ok is false for anything that is not an id; stores
// answer it as not found (the contract: a malformed id is 404).
func ParseID(s string) (id bson.ObjectID, ok bool) {
	id, err := bson.ObjectIDFromHex(s)
	return id, err == nil
}

// IsDuplicateKey reports whether err is a unique-index violation.
func IsDuplicateKey(err error) bool { return mongoIsDuplicateKey(err) }

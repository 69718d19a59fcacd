// Package store keeps the user service's users in MongoDB (or FerretDB). Emails are
// unique through a unique index, so two requests racing for one email cannot both win:
// the database refuses the second insert and the store answers users.EmailTaken.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/user/users"
)

// Store is the users collection.
type Store struct {
	coll *mongo.Collection
	now  func() time.Time
	// writes runs this process's writes one at a time (a mongodb.Gate of 1). FerretDB
	// rewrites the whole document on any update, so two PATCHes of one user's different
	// fields at once could lose one (see mongodb.KeyedMutex); one write at a time rules
	// that out, and on FerretDB it is faster than letting SQLite arbitrate. Unlike a
	// plain lock, the Gate does not let an outage add up: when a write finds the database
	// unreachable, the writes queued behind it fail at once (a 503) instead of each
	// waiting for the one before to time out, past the HTTP server's write timeout.
	writes *mongodb.Gate
}

// userDoc is a user as stored.
type userDoc struct {
	ID        bson.ObjectID `bson:"_id"`
	Name      string        `bson:"name"`
	Email     string        `bson:"email"`
	CreatedAt time.Time     `bson:"createdAt"`
	UpdatedAt time.Time     `bson:"updatedAt"`
}

func (d userDoc) user() users.User {
	return users.User{ID: d.ID.Hex(), Name: d.Name, Email: d.Email, CreatedAt: d.CreatedAt}
}

// New returns the store of db's "users" collection. Call EnsureIndexes before serving.
func New(db *mongo.Database) *Store {
	return &Store{coll: db.Collection("users"), now: time.Now, writes: mongodb.NewGate(1)}
}

// EnsureIndexes creates the unique index on email.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	return mongodb.EnsureIndexes(ctx, s.coll, mongo.IndexModel{
		Keys:    bson.D{{Key: "email", Value: 1}},
		Options: options.Index().SetName("email_unique").SetUnique(true),
	})
}

// Create stores a new, normalized user.
func (s *Store) Create(ctx context.Context, n users.NewUser) (users.User, error) {
	// Millisecond precision: what BSON dates hold, so a read gives back what was written.
	now := s.now().UTC().Truncate(time.Millisecond)
	d := userDoc{ID: mongodb.NewID(), Name: n.Name, Email: n.Email, CreatedAt: now, UpdatedAt: now}
	err := s.writes.Do(ctx, func() error {
		_, err := s.coll.InsertOne(ctx, d)
		return err
	})
	if err != nil {
		if mongodb.IsDuplicateKey(err) {
			return users.User{}, users.EmailTaken()
		}
		return users.User{}, fmt.Errorf("insert user: %w", err)
	}
	return d.user(), nil
}

// Get returns the user with id.
func (s *Store) Get(ctx context.Context, id string) (users.User, error) {
	oid, ok := mongodb.ParseID(id)
	if !ok {
		return users.User{}, users.NotFound()
	}
	var d userDoc
	if err := s.coll.FindOne(ctx, bson.D{{Key: "_id", Value: oid}}).Decode(&d); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return users.User{}, users.NotFound()
		}
		return users.User{}, fmt.Errorf("find user: %w", err)
	}
	return d.user(), nil
}

// List returns a page of users in id (creation) order.
func (s *Store) List(ctx context.Context, req mongodb.PageRequest) (mongodb.Page[users.User], error) {
	return mongodb.ListPage(ctx, s.coll, nil, req, userDoc.user)
}

// Update applies a normalized patch to the user with id and returns the result.
func (s *Store) Update(ctx context.Context, id string, p users.Patch) (users.User, error) {
	oid, ok := mongodb.ParseID(id)
	if !ok {
		return users.User{}, users.NotFound()
	}
	set := bson.D{{Key: "updatedAt", Value: s.now().UTC().Truncate(time.Millisecond)}}
	if p.Name != nil {
		set = append(set, bson.E{Key: "name", Value: *p.Name})
	}
	if p.Email != nil {
		set = append(set, bson.E{Key: "email", Value: *p.Email})
	}
	var d userDoc
	err := s.writes.Do(ctx, func() error {
		return s.coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: oid}}, bson.D{{Key: "$set", Value: set}},
			options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	})
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return users.User{}, users.NotFound()
	case mongodb.IsDuplicateKey(err):
		return users.User{}, users.EmailTaken()
	case err != nil:
		return users.User{}, fmt.Errorf("update user: %w", err)
	}
	return d.user(), nil
}

// Delete removes the user with id.
func (s *Store) Delete(ctx context.Context, id string) error {
	oid, ok := mongodb.ParseID(id)
	if !ok {
		return users.NotFound()
	}
	var deleted int64
	err := s.writes.Do(ctx, func() error {
		res, err := s.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: oid}})
		if err == nil {
			deleted = res.DeletedCount
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	if deleted == 0 {
		return users.NotFound()
	}
	return nil
}

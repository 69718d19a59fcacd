package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/user/users"
)

// EmailsMigration names the migration that rewrites stored emails to the form
// users.CanonicalEmail gives, and is the _id of the document in the migrations collection
// that records it done. A change to what CanonicalEmail maps an email to needs a new name,
// so that the next start rewrites the emails again: canonical-emails-2 rewrites the emails
// that canonical-emails-1's form left with an xn-- label read only once folded (one spelt
// with a letter that folds to ASCII, such as the long s ſ, folded to s, was stored folded
// but unread).
const EmailsMigration = "canonical-emails-2"

// MigrationsCollection holds one document per migration done on the database.
const MigrationsCollection = "migrations"

// emailDoc is the part of a stored user the migration reads.
type emailDoc struct {
	ID    bson.ObjectID `bson:"_id"`
	Email string        `bson:"email"`
}

// MigrateEmails rewrites the emails stored before emails had a canonical form (they were
// only trimmed and lower-cased: e and U+0301 for é, a domain's xn-- form, the final ς) to
// users.CanonicalEmail's form, so that the unique index finds such an address taken in
// any spelling. It runs once per database: a document of the migrations collection
// records it done, and a start that finds that document reads no user.
//
// It never merges or drops a user. A user whose canonical email another user already
// holds keeps its email as stored and is logged (both users' ids) for a person to settle;
// it is still read, listed, changed and deleted by its id. Among stored users that are one
// address, the first one rewritten holds it.
//
// Replicas starting at once may each run it: a rewrite applies only while the email is
// still the one read (on MongoDB the update compares it; on FerretDB it is compared after a
// read by _id, under the writes' gate, and FerretDB writes back the whole document it read,
// so there a change another process makes meanwhile can be undone, which is why the
// operator runs one user process on FerretDB, and runs it here before that process
// serves), the unique index lets one user hold an address, and a second record of the
// migration is no error. A failure stops the start, as EnsureIndexes' does, and the next
// start runs the migration again.
func (s *Store) MigrateEmails(ctx context.Context, log *slog.Logger) error {
	migrations := s.coll.Database().Collection(MigrationsCollection)
	err := migrations.FindOne(ctx, bson.D{{Key: "_id", Value: EmailsMigration}}).Err()
	if err == nil {
		return nil
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("read migration %s: %w", EmailsMigration, err)
	}

	started := time.Now()
	stale, checked, err := s.staleEmails(ctx)
	if err != nil {
		return err
	}
	rewritten, leftAsStored, err := s.rewriteEmails(ctx, log, stale)
	if err != nil {
		return err
	}

	record := bson.D{
		{Key: "_id", Value: EmailsMigration},
		{Key: "doneAt", Value: s.now().UTC().Truncate(time.Millisecond)},
		{Key: "users", Value: checked},
		{Key: "rewritten", Value: rewritten},
		{Key: "leftAsStored", Value: leftAsStored},
	}
	if _, err := migrations.InsertOne(ctx, record); err != nil && !mongodb.IsDuplicateKey(err) {
		return fmt.Errorf("record migration %s: %w", EmailsMigration, err)
	}
	log.Info("stored emails rewritten to their canonical form", "migration", EmailsMigration,
		"users", checked, "rewritten", rewritten, "leftAsStored", len(leftAsStored), slog.Duration("duration", time.Since(started)))
	return nil
}

// rewriteEmails rewrites each user of stale whose email is still the one read to its
// canonical form, and returns how many it rewrote and those it left as stored because
// another user holds their address.
func (s *Store) rewriteEmails(ctx context.Context, log *slog.Logger, stale []emailDoc) (rewritten int, leftAsStored []bson.ObjectID, err error) {
	leftAsStored = []bson.ObjectID{}
	// On FerretDB an update filtered by _id and the email read reads the whole collection
	// (a migration of 20,000 users, 2,000 of them stale, ran past ten minutes; 9 s so): there the
	// email is compared in Go, after a read by _id, under the writes' gate, the one guard
	// FerretDB has (one user process writes there); MongoDB compares it in the update.
	ferretDB, err := mongodb.IsFerretDB(ctx, s.coll.Database())
	if err != nil {
		return 0, nil, fmt.Errorf("migration %s: %w", EmailsMigration, err)
	}
	for _, d := range stale {
		canonical := users.CanonicalEmail(d.Email)
		rewrote := false
		err := s.writes.Do(ctx, func() error {
			filter := bson.D{{Key: "_id", Value: d.ID}, {Key: "email", Value: d.Email}}
			if ferretDB {
				var now emailDoc
				if err := s.coll.FindOne(ctx, bson.D{{Key: "_id", Value: d.ID}}).Decode(&now); err != nil {
					if errors.Is(err, mongo.ErrNoDocuments) {
						return nil // deleted meanwhile
					}
					return err
				}
				if now.Email != d.Email {
					return nil // changed meanwhile: kept
				}
				filter = bson.D{{Key: "_id", Value: d.ID}} // the email compared above
			}
			// updatedAt stays: the user changed nothing, and a rewrite run twice is the same.
			res, err := s.coll.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{{Key: "email", Value: canonical}}}})
			rewrote = err == nil && res.ModifiedCount > 0
			return err
		})
		switch {
		case mongodb.IsDuplicateKey(err):
			leftAsStored = append(leftAsStored, d.ID)
			// Ids only: an address is personal data, and the ids find both users.
			log.Warn("a user's email is another user's in its canonical form: it is left as stored, for a person to settle",
				"migration", EmailsMigration, "user", d.ID.Hex(), "heldBy", s.holder(ctx, canonical))
		case err != nil:
			return 0, nil, fmt.Errorf("migration %s: rewrite the email of user %s: %w", EmailsMigration, d.ID.Hex(), err)
		case rewrote:
			rewritten++
		}
	}
	return rewritten, leftAsStored, nil
}

// staleEmails returns the users whose stored email is not in its canonical form, and how
// many users it read. One cursor, not pages: FerretDB reads the whole collection for each
// page's {_id: {$gt: …}}, and a cursor's batches each get their own operation timeout.
func (s *Store) staleEmails(ctx context.Context) (stale []emailDoc, checked int, err error) {
	cur, err := s.coll.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "email", Value: 1}}))
	if err != nil {
		return nil, 0, fmt.Errorf("migration %s: read users: %w", EmailsMigration, err)
	}
	defer func() { _ = cur.Close(ctx) }()
	for cur.Next(ctx) {
		var d emailDoc
		if err := cur.Decode(&d); err != nil {
			return nil, 0, fmt.Errorf("migration %s: decode user: %w", EmailsMigration, err)
		}
		checked++
		if users.CanonicalEmail(d.Email) != d.Email {
			stale = append(stale, d)
		}
	}
	if err := cur.Err(); err != nil {
		return nil, 0, fmt.Errorf("migration %s: read users: %w", EmailsMigration, err)
	}
	return stale, checked, nil
}

// holder returns the id of the user whose email is email, for the log ("" if none is).
func (s *Store) holder(ctx context.Context, email string) string {
	var d emailDoc
	if err := s.coll.FindOne(ctx, bson.D{{Key: "email", Value: email}}).Decode(&d); err != nil {
		return ""
	}
	return d.ID.Hex()
}

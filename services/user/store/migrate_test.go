package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/user/store"
	"github.com/shopkeeper-dev/shopkeeper/services/user/users"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newStore returns the store of a fresh database, with its indexes, as a start makes it.
func newStore(t *testing.T) (*store.Store, *mongo.Database) {
	t.Helper()
	db := testenv.MongoDB(t)
	s := store.New(db)
	if err := s.EnsureIndexes(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s, db
}

// storedAt is the creation time of the users storeOld writes.
var storedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// storeOld writes a user as a version before canonical emails did: its email only
// trimmed and lower-cased.
func storeOld(t *testing.T, db *mongo.Database, name, email string) string {
	t.Helper()
	id := bson.NewObjectID()
	_, err := db.Collection("users").InsertOne(t.Context(), bson.D{
		{Key: "_id", Value: id}, {Key: "name", Value: name}, {Key: "email", Value: email},
		{Key: "createdAt", Value: storedAt}, {Key: "updatedAt", Value: storedAt},
	})
	if err != nil {
		t.Fatalf("store %+q: %v", email, err)
	}
	return id.Hex()
}

// emailOf returns the email of the user with id, as the API reads it.
func emailOf(t *testing.T, s *store.Store, id string) string {
	t.Helper()
	u, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return u.Email
}

// migrationRecord returns the document recording the emails migration done, or nil.
func migrationRecord(t *testing.T, db *mongo.Database) bson.M {
	t.Helper()
	var m bson.M
	err := db.Collection(store.MigrationsCollection).FindOne(t.Context(), bson.D{{Key: "_id", Value: store.EmailsMigration}}).Decode(&m)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// assertTaken checks that creating a user, or changing another user's email, with each
// spelling is refused: the address is taken.
func assertTaken(t *testing.T, s *store.Store, other string, spellings ...string) {
	t.Helper()
	for _, spelling := range spellings {
		n := users.NewUser{Name: "Someone Else", Email: spelling}
		if err := n.Normalize(); err != nil {
			t.Fatalf("normalize %+q: %v", spelling, err)
		}
		if _, err := s.Create(t.Context(), n); !isConflict(err) {
			t.Errorf("create with %+q = %v, want email already in use", spelling, err)
		}
		p := users.Patch{Email: &spelling}
		if err := p.Normalize(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(t.Context(), other, p); !isConflict(err) {
			t.Errorf("change another user's email to %+q = %v, want email already in use", spelling, err)
		}
	}
}

func isConflict(err error) bool { return errors.Is(err, apperr.ErrConflict) }

// TestMigrateEmailsRewritesOldSpellings: the emails stored before canonical emails are
// rewritten, so the address is taken in every spelling, and nothing else of the user
// changes.
func TestMigrateEmailsRewritesOldSpellings(t *testing.T) {
	s, db := newStore(t)
	cases := []struct {
		stored, canonical string
		others            []string // other spellings of the address
	}{
		{"jose\u0301@example.com", "jos\u00e9@example.com", []string{"Jos\u00e9@example.com", "JOSE\u0301@EXAMPLE.COM"}},
		{"ana@xn--bcher-kva.example", "ana@b\u00fccher.example", []string{"ana@bu\u0308cher.example", "Ana@XN--BCHER-KVA.example"}},
		{"\u03bf\u03b4\u03bf\u03c2@example.com", "\u03bf\u03b4\u03bf\u03c3@example.com", []string{"\u039f\u0394\u039f\u03a3@example.com"}},
	}
	ids := make([]string, len(cases))
	for i, c := range cases {
		ids[i] = storeOld(t, db, fmt.Sprintf("Old %d", i), c.stored)
	}
	ada := storeOld(t, db, "Ada", "ada@example.com")

	if err := s.MigrateEmails(t.Context(), logging.Discard()); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		u, err := s.Get(t.Context(), ids[i])
		if err != nil {
			t.Fatal(err)
		}
		if u.Email != c.canonical || u.Name != fmt.Sprintf("Old %d", i) || !u.CreatedAt.Equal(storedAt) {
			t.Errorf("user stored with %+q is now %+v, want email %+q and the rest unchanged", c.stored, u, c.canonical)
		}
		assertTaken(t, s, ada, append([]string{c.stored, c.canonical}, c.others...)...)
	}
	if got := emailOf(t, s, ada); got != "ada@example.com" {
		t.Errorf("canonical email rewritten to %+q", got)
	}
	rec := migrationRecord(t, db)
	if rec == nil || rec["users"] != int32(4) || rec["rewritten"] != int32(3) {
		t.Errorf("migration record = %v, want 4 users, 3 rewritten", rec)
	}
	var doc bson.M
	if err := db.Collection("users").FindOne(t.Context(), bson.D{{Key: "email", Value: cases[0].canonical}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if at, _ := doc["updatedAt"].(bson.DateTime); !at.Time().Equal(storedAt) {
		t.Errorf("updatedAt = %v, want it unchanged", doc["updatedAt"])
	}
}

// TestMigrateEmailsLeavesCollisions: stored users that are one address once canonical are
// neither merged nor dropped: one holds the address, the others keep their email as
// stored, are logged, and are still read and changed by id.
func TestMigrateEmailsLeavesCollisions(t *testing.T) {
	s, db := newStore(t)
	// An old spelling, and the canonical one a later version let another user register.
	joseOld := storeOld(t, db, "Jose Old", "jose\u0301@example.com")
	joseNew := storeOld(t, db, "Jose New", "jos\u00e9@example.com")
	// Two old spellings of one address, none canonical.
	anaA := storeOld(t, db, "Ana A", "ana@xn--bcher-kva.example")
	anaB := storeOld(t, db, "Ana B", "ana@bu\u0308cher.example")

	var logs bytes.Buffer
	if err := s.MigrateEmails(t.Context(), logging.NewTo(&logs, "user", nil)); err != nil {
		t.Fatal(err)
	}

	if got := emailOf(t, s, joseOld); got != "jose\u0301@example.com" {
		t.Errorf("colliding old email rewritten to %+q", got)
	}
	if got := emailOf(t, s, joseNew); got != "jos\u00e9@example.com" {
		t.Errorf("holder's email changed to %+q", got)
	}
	a, b := emailOf(t, s, anaA), emailOf(t, s, anaB)
	var leftID, heldID string
	switch held := "ana@b\u00fccher.example"; {
	case a == held && b == "ana@bu\u0308cher.example":
		leftID, heldID = anaB, anaA
	case b == held && a == "ana@xn--bcher-kva.example":
		leftID, heldID = anaA, anaB
	default:
		t.Fatalf("two old spellings of one address are now %+q and %+q; want one rewritten, one as stored", a, b)
	}
	assertTaken(t, s, leftID, "Jos\u00e9@Example.com", "ana@b\u00fccher.example", "ana@xn--bcher-kva.example")

	// Both users of each pair are still read, changed and listed by id.
	for _, id := range []string{joseOld, joseNew, anaA, anaB} {
		name := "Renamed " + id[len(id)-4:]
		if u, err := s.Update(t.Context(), id, users.Patch{Name: &name}); err != nil || u.Name != name {
			t.Errorf("rename %s = %+v, %v", id, u, err)
		}
	}
	if n, _ := db.Collection("users").CountDocuments(t.Context(), bson.D{}); n != 4 {
		t.Errorf("%d users stored, want 4", n)
	}

	rec := migrationRecord(t, db)
	gotLeft := []string{}
	if l, ok := rec["leftAsStored"].(bson.A); ok {
		for _, id := range l {
			gotLeft = append(gotLeft, id.(bson.ObjectID).Hex())
		}
	}
	if slices.Sort(gotLeft); !slices.Equal(gotLeft, sorted(joseOld, leftID)) {
		t.Errorf("migration record's leftAsStored = %v, want %v", gotLeft, sorted(joseOld, leftID))
	}
	for _, pair := range [][2]string{{joseOld, joseNew}, {leftID, heldID}} {
		if !logsCollision(logs.String(), pair[0], pair[1]) {
			t.Errorf("no warning names user %s left as stored and %s holding its address; logs:\n%s", pair[0], pair[1], logs.String())
		}
	}
	if strings.Contains(logs.String(), "example") {
		t.Errorf("the log carries an email, which is personal data:\n%s", logs.String())
	}
}

func sorted(s ...string) []string { slices.Sort(s); return s }

// logsCollision tells whether a warning in logs names user left as stored and holder.
func logsCollision(logs, user, holder string) bool {
	for line := range strings.Lines(logs) {
		if strings.Contains(line, `"level":"WARN"`) && strings.Contains(line, `"user":"`+user+`"`) && strings.Contains(line, `"heldBy":"`+holder+`"`) {
			return true
		}
	}
	return false
}

// TestMigrateEmailsRunsOnce: a start that finds the migration recorded reads no user, so
// a start costs nothing once the emails are rewritten.
func TestMigrateEmailsRunsOnce(t *testing.T) {
	s, db := newStore(t)
	first := storeOld(t, db, "First", "jose\u0301@example.com")
	if err := s.MigrateEmails(t.Context(), logging.Discard()); err != nil {
		t.Fatal(err)
	}
	rec := migrationRecord(t, db)
	if rec == nil {
		t.Fatal("migration not recorded")
	}
	if got := emailOf(t, s, first); got != "jos\u00e9@example.com" {
		t.Fatalf("email = %+q, want rewritten", got)
	}

	// Written behind the service's back after the migration: a second start, which reads
	// no user, leaves it alone.
	later := storeOld(t, db, "Later", "ana@xn--bcher-kva.example")
	restarted := store.New(db)
	if err := restarted.MigrateEmails(t.Context(), logging.Discard()); err != nil {
		t.Fatal(err)
	}
	if got := emailOf(t, restarted, later); got != "ana@xn--bcher-kva.example" {
		t.Errorf("a second start rewrote an email to %+q: it scanned the users again", got)
	}
	if again := migrationRecord(t, db); !reflect.DeepEqual(again, rec) {
		t.Errorf("migration record changed from %v to %v", rec, again)
	}
}

// TestMigrateEmailsKeepsAChangeMadeMeanwhile: a user whose email another replica changes
// between the migration's read and its rewrite keeps the new email: the rewrite applies
// only while the email is still the one read.
func TestMigrateEmailsKeepsAChangeMadeMeanwhile(t *testing.T) {
	s, db := newStore(t)
	id := storeOld(t, db, "Jose", "jose\u0301@example.com")
	stale, _, err := store.StaleEmails(s, t.Context())
	if err != nil {
		t.Fatal(err)
	}
	changed := "jose@example.org"
	if _, err := s.Update(t.Context(), id, users.Patch{Email: &changed}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.RewriteEmails(s, t.Context(), logging.Discard(), stale); err != nil {
		t.Fatal(err)
	}
	if got := emailOf(t, s, id); got != changed {
		t.Errorf("email = %+q, want %+q: the rewrite undid a change made meanwhile", got, changed)
	}
}

// TestMigrateEmailsConcurrently: replicas starting at once, each with its own client, all
// migrate without error, and the users end as one migration leaves them: none lost or
// merged, each old email rewritten unless another user holds its address.
func TestMigrateEmailsConcurrently(t *testing.T) {
	s, db := newStore(t)
	const singles, pairs, replicas = 60, 10, 3
	names := map[string]string{}
	single := map[string]string{} // id: canonical email
	for i := range singles {
		id := storeOld(t, db, fmt.Sprintf("Single %d", i), fmt.Sprintf("jose\u0301%d@example.com", i))
		single[id], names[id] = fmt.Sprintf("jos\u00e9%d@example.com", i), fmt.Sprintf("Single %d", i)
	}
	pair := map[[2]string]string{} // ids: canonical email
	for i := range pairs {
		a := storeOld(t, db, fmt.Sprintf("Pair %da", i), fmt.Sprintf("ana%d@xn--bcher-kva.example", i))
		b := storeOld(t, db, fmt.Sprintf("Pair %db", i), fmt.Sprintf("ana%d@bu\u0308cher.example", i))
		pair[[2]string{a, b}] = fmt.Sprintf("ana%d@b\u00fccher.example", i)
		names[a], names[b] = fmt.Sprintf("Pair %da", i), fmt.Sprintf("Pair %db", i)
	}

	errs := make([]error, replicas)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for r := range replicas {
		client, err := mongo.Connect(options.Client().ApplyURI(testenv.MongoURI(t)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
		replica := store.New(client.Database(db.Name()))
		wg.Go(func() {
			<-start
			errs[r] = replica.MigrateEmails(t.Context(), logging.Discard())
		})
	}
	close(start)
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Errorf("replica %d: %v", r, err)
		}
	}

	if n, _ := db.Collection("users").CountDocuments(t.Context(), bson.D{}); n != singles+2*pairs {
		t.Errorf("%d users stored, want %d", n, singles+2*pairs)
	}
	for id, name := range names {
		if u, err := s.Get(t.Context(), id); err != nil || u.Name != name {
			t.Errorf("user %s = %+v, %v; want name %q", id, u, err, name)
		}
	}
	for id, want := range single {
		if got := emailOf(t, s, id); got != want {
			t.Errorf("user %s's email = %+q, want %+q", id, got, want)
		}
	}
	for ids, canonical := range pair {
		a, b := emailOf(t, s, ids[0]), emailOf(t, s, ids[1])
		if (a == canonical) == (b == canonical) || a == b {
			t.Errorf("pair %v = %+q, %+q; want exactly one holding %+q, the other as stored", ids, a, b, canonical)
		}
	}
	if migrationRecord(t, db) == nil {
		t.Error("migration not recorded")
	}
}

// TestMigrateEmailsAfterTheFirstForm: a database the first form's migration
// (canonical-emails-1) went through is migrated again: an email that form stored with an
// A-label that only folding made one (xn--ſtrae-oqa, ſ folded to s) is rewritten to its
// Unicode domain, so that spelling is taken too.
func TestMigrateEmailsAfterTheFirstForm(t *testing.T) {
	s, db := newStore(t)
	if _, err := db.Collection(store.MigrationsCollection).InsertOne(t.Context(),
		bson.D{{Key: "_id", Value: "canonical-emails-1"}}); err != nil {
		t.Fatal(err)
	}
	ana := storeOld(t, db, "Ana", "ana@xn--strae-oqa.de")
	ada := storeOld(t, db, "Ada", "ada@example.com")
	if err := s.MigrateEmails(t.Context(), logging.Discard()); err != nil {
		t.Fatal(err)
	}
	if got := emailOf(t, s, ana); got != "ana@stra\u00dfe.de" {
		t.Errorf("email stored as ana@xn--strae-oqa.de is now %+q, want %+q", got, "ana@stra\u00dfe.de")
	}
	assertTaken(t, s, ada, "ana@xn--strae-oqa.de", "ana@xn--\u017ftrae-oqa.de", "ana@stra\u00dfe.de")
}

// TestMigrateEmailsUpdatesByIDOnFerretDB: on FerretDB, which looks a document up by its
// index only for a filter of exactly {_id}, every rewrite the migration sends filters by
// _id alone (the email read is compared before it, under the writes' gate): a filter on the
// email as well read the whole collection for each stale user (20,000 users, 2,000 stale:
// past ten minutes). On MongoDB the update compares the email itself.
func TestMigrateEmailsUpdatesByIDOnFerretDB(t *testing.T) {
	db := testenv.MongoDB(t)
	var mu sync.Mutex
	var filters []string
	client, err := mongo.Connect(options.Client().ApplyURI(testenv.MongoURI(t)).SetMonitor(&event.CommandMonitor{
		Started: func(_ context.Context, e *event.CommandStartedEvent) {
			if e.CommandName != "update" || e.DatabaseName != db.Name() {
				return
			}
			updates, _ := e.Command.Lookup("updates").ArrayOK()
			values, _ := updates.Values()
			mu.Lock()
			defer mu.Unlock()
			for _, u := range values {
				q, _ := u.Document().Lookup("q").DocumentOK()
				elems, _ := q.Elements()
				var keys []string
				for _, el := range elems {
					keys = append(keys, el.Key())
				}
				filters = append(filters, strings.Join(keys, ","))
			}
		},
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	s := store.New(client.Database(db.Name()))
	if err := s.EnsureIndexes(t.Context()); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for i := range 5 {
		ids[storeOld(t, db, fmt.Sprintf("Jose %d", i), fmt.Sprintf("jose\u0301%d@example.com", i))] = fmt.Sprintf("jos\u00e9%d@example.com", i)
	}
	if err := s.MigrateEmails(t.Context(), logging.Discard()); err != nil {
		t.Fatal(err)
	}
	for id, want := range ids {
		if got := emailOf(t, s, id); got != want {
			t.Errorf("user %s's email = %+q, want %+q", id, got, want)
		}
	}
	ferretDB, err := mongodb.IsFerretDB(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	want := "_id,email"
	if ferretDB {
		want = "_id"
	}
	mu.Lock()
	defer mu.Unlock()
	if len(filters) != len(ids) {
		t.Errorf("%d updates sent, want one a user (%d): %v", len(filters), len(ids), filters)
	}
	for _, f := range filters {
		if f != want {
			t.Errorf("an update filtered by %s, want %s (FerretDB: %v)", f, want, ferretDB)
		}
	}
}

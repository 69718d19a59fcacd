package mongodb_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestParsePageRequest(t *testing.T) {
	id := bson.NewObjectID()
	tests := []struct {
		query     string
		want      mongodb.PageRequest
		badFields []string
	}{
		{"", mongodb.PageRequest{Limit: 20}, nil},
		{"limit=1", mongodb.PageRequest{Limit: 1}, nil},
		{"limit=100&after=" + id.Hex(), mongodb.PageRequest{Limit: 100, After: id}, nil},
		{"limit=0", mongodb.PageRequest{}, []string{"limit"}},
		{"limit=101", mongodb.PageRequest{}, []string{"limit"}},
		{"limit=-5", mongodb.PageRequest{}, []string{"limit"}},
		{"limit=ten", mongodb.PageRequest{}, []string{"limit"}},
		{"limit=", mongodb.PageRequest{}, []string{"limit"}},
		{"after=zzz", mongodb.PageRequest{}, []string{"after"}},
		{"limit=500&after=42", mongodb.PageRequest{}, []string{"limit", "after"}},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		got, err := mongodb.ParsePageRequest(q)
		if tt.badFields == nil {
			if err != nil || got != tt.want {
				t.Errorf("ParsePageRequest(%q) = %+v, %v; want %+v", tt.query, got, err, tt.want)
			}
			continue
		}
		var ae *apperr.Error
		if !errors.As(err, &ae) || !errors.Is(err, apperr.ErrValidation) || len(ae.Details) != len(tt.badFields) {
			t.Errorf("ParsePageRequest(%q) error = %v, want validation of %v", tt.query, err, tt.badFields)
			continue
		}
		for i, f := range tt.badFields {
			if ae.Details[i].(apperr.FieldError).Field != f {
				t.Errorf("ParsePageRequest(%q) detail %d = %+v, want field %s", tt.query, i, ae.Details[i], f)
			}
		}
	}
}

type doc struct {
	ID    bson.ObjectID `bson:"_id"`
	Color string        `bson:"color"`
}

func TestFindPage(t *testing.T) {
	ctx := context.Background()
	coll := testenv.MongoDB(t).Collection("things")
	var all []bson.ObjectID
	for i := range 7 {
		d := doc{ID: mongodb.NewID(), Color: []string{"red", "blue"}[i%2]}
		if _, err := coll.InsertOne(ctx, d); err != nil {
			t.Fatal(err)
		}
		all = append(all, d.ID)
	}

	// Walk every page of 3: 3 + 3 + 1, in insertion order, next empty at the end.
	var seen []bson.ObjectID
	req := mongodb.PageRequest{Limit: 3}
	for pages := 1; ; pages++ {
		items, next, err := mongodb.FindPage[doc](ctx, coll, nil, req)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range items {
			seen = append(seen, d.ID)
		}
		if next == "" {
			if pages != 3 {
				t.Errorf("pages = %d, want 3", pages)
			}
			break
		}
		if pages > 3 {
			t.Fatal("pagination does not end")
		}
		req.After, _ = mongodb.ParseID(next)
	}
	if len(seen) != len(all) {
		t.Fatalf("saw %d documents, want %d", len(seen), len(all))
	}
	for i := range all {
		if seen[i] != all[i] {
			t.Errorf("item %d = %s, want %s", i, seen[i].Hex(), all[i].Hex())
		}
	}

	// A filter composes with after; an exact page has no next.
	items, next, err := mongodb.FindPage[doc](ctx, coll, bson.D{{Key: "color", Value: "red"}},
		mongodb.PageRequest{Limit: 3, After: all[0]})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || next != "" || items[0].ID != all[2] {
		t.Errorf("red after the first = %d items, next %q", len(items), next)
	}

	// ListPage converts each document.
	page, err := mongodb.ListPage(ctx, coll, nil, mongodb.PageRequest{Limit: 2}, func(d doc) string { return d.ID.Hex() })
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 || page.Items[1] != all[1].Hex() || page.Next != all[1].Hex() {
		t.Errorf("ListPage = %+v", page)
	}

	// A projection leaves out what it drops; paging still works (it needs _id).
	for _, tc := range []struct {
		name       string
		projection bson.D
		wantColor  string
	}{
		{"drop color", bson.D{{Key: "color", Value: 0}}, ""},
		{"keep color", bson.D{{Key: "color", Value: 1}}, "red"},
	} {
		page, err := mongodb.ListPage(ctx, coll, nil, mongodb.PageRequest{Limit: 1},
			func(d doc) doc { return d }, mongodb.Projection(tc.projection))
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 1 || page.Items[0].ID != all[0] || page.Items[0].Color != tc.wantColor || page.Next != all[0].Hex() {
			t.Errorf("%s: page %+v, want the first document with color %q and a next", tc.name, page, tc.wantColor)
		}
	}
}

// A service creates its indexes at every start, so several that exist already must pass.
func TestEnsureIndexesAgain(t *testing.T) {
	ctx := context.Background()
	coll := testenv.MongoDB(t).Collection("things")
	models := []mongo.IndexModel{
		{Keys: bson.D{{Key: "a", Value: 1}}},
		{Keys: bson.D{{Key: "b", Value: 1}, {Key: "_id", Value: 1}}},
		{Keys: bson.D{{Key: "c", Value: 1}}, Options: options.Index().SetUnique(true)},
	}
	for i := range 3 {
		if err := mongodb.EnsureIndexes(ctx, coll, models...); err != nil {
			t.Fatalf("EnsureIndexes, start %d: %v", i+1, err)
		}
	}
	specs, err := coll.Indexes().ListSpecifications(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != len(models)+1 { // and _id
		t.Errorf("indexes = %d, want %d", len(specs), len(models)+1)
	}
}

func TestUniqueIndex(t *testing.T) {
	ctx := context.Background()
	coll := testenv.MongoDB(t).Collection("people")
	err := mongodb.EnsureIndexes(ctx, coll, mongo.IndexModel{
		Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Again: creating an existing index is a no-op.
	if err := mongodb.EnsureIndexes(ctx, coll, mongo.IndexModel{
		Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetUnique(true),
	}); err != nil {
		t.Fatalf("second EnsureIndexes: %v", err)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "email", Value: "a@x"}}); err != nil {
		t.Fatal(err)
	}
	_, err = coll.InsertOne(ctx, bson.D{{Key: "email", Value: "a@x"}})
	if !mongodb.IsDuplicateKey(err) {
		t.Errorf("duplicate insert: %v, want a duplicate-key error", err)
	}
	res, err := coll.InsertOne(ctx, bson.D{{Key: "email", Value: "b@x"}})
	if err != nil {
		t.Fatal(err)
	}
	set := bson.D{{Key: "$set", Value: bson.D{{Key: "email", Value: "a@x"}}}}
	_, err = coll.UpdateByID(ctx, res.InsertedID, set)
	if !mongodb.IsDuplicateKey(err) {
		t.Errorf("duplicate update: %v, want a duplicate-key error", err)
	}
	err = coll.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: res.InsertedID}}, set).Err()
	if !mongodb.IsDuplicateKey(err) {
		t.Errorf("duplicate findAndModify: %v, want a duplicate-key error", err)
	}
	if mongodb.IsDuplicateKey(errors.New("E11000 in a plain error")) || mongodb.IsDuplicateKey(nil) {
		t.Error("IsDuplicateKey is true for an error that is no server's")
	}
}

func TestConnect(t *testing.T) {
	uri := testenv.MongoURI(t)
	tests := []struct {
		name   string
		cfg    mongodb.Config
		wantDB string
	}{
		{"URI", mongodb.Config{URI: uri}, "fallback"},
		{"legacy MONGODB_URL", mongodb.Config{LegacyURL: uri}, "fallback"},
		{"database in the path", mongodb.Config{URI: testenv.MongoURIFor(t, "shop_users")}, "shop_users"},
		{"MONGODB_DATABASE wins", mongodb.Config{URI: testenv.MongoURIFor(t, "shop_users"), Database: "other"}, "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.ConnectTimeout, tt.cfg.OperationTimeout = 5*time.Second, 5*time.Second
			db, err := mongodb.Connect(context.Background(), tt.cfg, "fallback")
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = db.Client().Disconnect(context.Background()) }()
			if db.Name() != tt.wantDB {
				t.Errorf("database = %s, want %s", db.Name(), tt.wantDB)
			}
			if err := mongodb.Check(db).Run(context.Background()); err != nil {
				t.Errorf("readiness: %v", err)
			}
		})
	}

	// A database name the server refuses stops the service at start, naming where the name
	// came from: the ping, the admin database's, would pass, and every request fail.
	for _, tt := range []struct {
		name string
		cfg  mongodb.Config
		want string
	}{
		{"MONGODB_DATABASE with a dot", mongodb.Config{URI: uri, Database: "my.shop"}, `mongodb database "my.shop" (MONGODB_DATABASE): `},
		{"MONGODB_DATABASE with a space", mongodb.Config{URI: uri, Database: "my shop"}, `mongodb database "my shop" (MONGODB_DATABASE): `},
		{"the URI's path", mongodb.Config{URI: testenv.MongoURIFor(t, "my.shop")}, `mongodb database "my.shop" (the path of MONGODB_URI): `},
	} {
		t.Run("refused name, "+tt.name, func(t *testing.T) {
			tt.cfg.ConnectTimeout, tt.cfg.OperationTimeout = 5*time.Second, 5*time.Second
			db, err := mongodb.Connect(context.Background(), tt.cfg, "fallback")
			if err == nil {
				_ = db.Client().Disconnect(context.Background())
				t.Fatalf("Connect to database %q succeeded, want the name refused", db.Name())
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Connect = %v, want an error saying %q", err, tt.want)
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		_, err := mongodb.Connect(context.Background(),
			mongodb.Config{URI: "mongodb://127.0.0.1:1/", ConnectTimeout: 300 * time.Millisecond, OperationTimeout: time.Second}, "x")
		if err == nil {
			t.Error("Connect to a closed port succeeded")
		}
	})
	t.Run("no URI", func(t *testing.T) {
		if _, err := mongodb.Connect(context.Background(), mongodb.Config{}, "x"); err == nil {
			t.Error("Connect without a URI succeeded")
		}
	})
}

// TestIsFerretDB: the test server is FerretDB exactly when MONGODB_URI does not name
// another (testenv starts FerretDB then), and IsFerretDB says which.
func TestIsFerretDB(t *testing.T) {
	db := testenv.MongoDB(t)
	got, err := mongodb.IsFerretDB(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	if want := os.Getenv("MONGODB_URI") == ""; got != want {
		t.Errorf("IsFerretDB = %v, want %v (MONGODB_URI %q)", got, want, os.Getenv("MONGODB_URI"))
	}
}

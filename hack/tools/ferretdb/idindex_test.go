package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// TestIDIndex runs FerretDB on a fresh folder, makes collections through the wire
// protocol, and checks that after a sweep SQLite answers FerretDB's _id filter from an
// index, for collections made before and after the first sweep, and that the documents
// are still found by _id.
func TestIDIndex(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	coll := startFerretDB(ctx, t, dir).Database("shop").Collection

	x := idIndexer{dir: dir, log: slog.New(slog.DiscardHandler)}
	x.sweep(ctx) // no database yet: nothing to do, nothing created
	if files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite")); len(files) != 0 {
		t.Fatalf("a sweep of an empty folder made %v", files)
	}

	insert := func(name string, ids ...any) {
		t.Helper()
		for _, id := range ids {
			if _, err := coll(name).InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "n", Value: 1}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	insert("orders", "a", "b", "c")
	x.sweep(ctx)
	insert("payments", "x") // after the first sweep
	x.sweep(ctx)
	x.sweep(ctx) // a second sweep finds nothing to do

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "shop.sqlite")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	for _, name := range []string{"orders", "payments"} {
		var table string
		if err := db.QueryRowContext(ctx, `SELECT table_name FROM _ferretdb_collections WHERE name = ?`, name).Scan(&table); err != nil {
			t.Fatal(err)
		}
		// The statement FerretDB's sqlite backend runs for a filter {_id: <string>}.
		plan := queryPlan(ctx, t, db, fmt.Sprintf(`SELECT _ferretdb_sjson FROM %q WHERE _ferretdb_sjson->'$._id' = ?`, table), `"a"`)
		if want := idIndexPrefix + table; !strings.Contains(plan, want) {
			t.Errorf("%s: query plan %q does not use index %s", name, plan, want)
		}
	}
	var got bson.M
	if err := coll("orders").FindOne(ctx, bson.D{{Key: "_id", Value: "b"}}).Decode(&got); err != nil || got["_id"] != "b" {
		t.Fatalf("find by _id after indexing: %v, %v", got, err)
	}
	var indexes []bson.M
	cur, err := coll("orders").Indexes().List(ctx)
	if err == nil {
		err = cur.All(ctx, &indexes)
	}
	if err != nil || len(indexes) != 1 {
		t.Fatalf("listIndexes: %v, %v; want FerretDB's _id_ alone", indexes, err)
	}
}

func queryPlan(ctx context.Context, t *testing.T, db *sql.DB, query string, args ...any) string {
	t.Helper()
	rows, err := db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; ")
}

// startFerretDB runs FerretDB on dir until the test ends and returns a client of it.
func startFerretDB(ctx context.Context, t *testing.T, dir string) *mongo.Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: addr},
		Logger:   slog.New(slog.DiscardHandler),
		Handler:  "sqlite", SQLiteURL: "file:" + dir + "/",
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(runCtx) }()
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(f.MongoDBURI()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.Disconnect(context.Background())
		stop()
		<-done
	})
	return client
}

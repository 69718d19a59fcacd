package testenv_test

import (
	"context"
	"net"
	"net/url"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestMongoDBIsFreshPerTest(t *testing.T) {
	ctx := context.Background()
	var names []string
	for _, sub := range []string{"first", "second"} {
		t.Run(sub, func(t *testing.T) {
			db := testenv.MongoDB(t)
			names = append(names, db.Name())
			n, err := db.Collection("c").CountDocuments(ctx, bson.D{})
			if err != nil || n != 0 {
				t.Fatalf("new database holds %d documents (%v)", n, err)
			}
			if _, err := db.Collection("c").InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
				t.Fatal(err)
			}
		})
	}
	if names[0] == names[1] {
		t.Errorf("two tests got the same database %s", names[0])
	}
}

func TestStartFerretDB(t *testing.T) {
	f, err := testenv.StartFerretDB(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(f.URI)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, time.Second)
	if err != nil {
		t.Fatalf("FerretDB does not accept connections at %s: %v", u.Host, err)
	}
	_ = conn.Close()

	if err := f.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		_ = conn.Close()
		t.Errorf("FerretDB still listens at %s after Stop", u.Host)
	}
	if err := f.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// A frozen server answers nothing until thawed, and stops even while frozen.
func TestFreezeFerretDB(t *testing.T) {
	f, err := testenv.StartFerretDB(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Stop() })
	client, err := mongo.Connect(options.Client().ApplyURI(f.URI))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	ping := func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
		defer cancel()
		return client.Ping(ctx, readpref.Primary())
	}
	if err := ping(); err != nil {
		t.Fatal(err)
	}

	if err := f.Freeze(); err != nil {
		t.Fatal(err)
	}
	if err := ping(); !mongo.IsTimeout(err) {
		t.Errorf("ping of a frozen server = %v, want a timeout", err)
	}
	if err := f.Thaw(); err != nil {
		t.Fatal(err)
	}
	if err := ping(); err != nil {
		t.Errorf("ping after Thaw = %v", err)
	}

	if err := f.Freeze(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := f.Stop(); err != nil || time.Since(start) > 5*time.Second {
		t.Errorf("Stop of a frozen server = %v after %s, want nil within 5s", err, time.Since(start))
	}
}

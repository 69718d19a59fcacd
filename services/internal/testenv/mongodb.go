package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/shopkeeper-dev/shopkeeper/internal/storeuri"
)

// shared is the MongoDB-wire server and client of this test binary.
var shared struct {
	once   sync.Once
	err    error
	uri    string
	client *mongo.Client
	server *FerretDB
	dir    string
}

// Main runs a test package's tests and then stops what they started, so no server
// outlives the test binary:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// stoppers are the cleanups other shared servers of this package registered.
var stoppers struct {
	sync.Mutex
	funcs []func()
}

// OnStop registers f to run in Stop, last registered first; a shared server of this
// package (such as a message broker) registers its shutdown here when it starts.
func OnStop(f func()) {
	stoppers.Lock()
	defer stoppers.Unlock()
	stoppers.funcs = append(stoppers.funcs, f)
}

// Stop stops every shared server this test binary started: the registered ones, then
// the MongoDB client and FerretDB server. Main calls it.
func Stop() {
	stoppers.Lock()
	funcs := stoppers.funcs
	stoppers.funcs = nil
	stoppers.Unlock()
	for i := len(funcs) - 1; i >= 0; i-- {
		funcs[i]()
	}
	if shared.client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = shared.client.Disconnect(ctx)
		cancel()
	}
	if shared.server != nil {
		_ = shared.server.Stop()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
}

// MongoURI returns the connection string of the test server, starting FerretDB on
// first use when MONGODB_URI is unset. Its path is "/", naming no database, with
// MONGODB_URI's options after it, however MONGODB_URI was written (with or without
// the slash, with or without a database): use MongoURIFor for one naming a database.
func MongoURI(t testing.TB) string {
	t.Helper()
	start()
	if shared.err != nil {
		t.Fatalf("test MongoDB: %v", shared.err)
	}
	return shared.uri
}

// MongoURIFor returns the connection string of the test server naming database in its
// path, as a service's MONGODB_URI may.
func MongoURIFor(t testing.TB, database string) string {
	t.Helper()
	uri, err := withDatabase(MongoURI(t), database)
	if err != nil {
		t.Fatalf("test MongoDB: %v", err)
	}
	return uri
}

// withDatabase returns the MongoDB connection string uri with database ("" for none) as
// its path, its options kept. The database of a URI with credentials is also where they
// are checked unless an authSource option says otherwise, so a database uri named moves
// into authSource, and the credentials keep working whichever database the result names.
func withDatabase(uri, database string) (string, error) {
	cs, err := storeuri.ParseMongoDB(uri)
	if err != nil {
		return "", fmt.Errorf("MONGODB_URI: %w", err)
	}
	// Past the scheme: [userinfo@]hosts[/[database]][?options]. The userinfo has any
	// '/', '?' and '@' of its own escaped, so the hosts end at the first '/' or '?'
	// after its last '@'.
	scheme, rest, _ := strings.Cut(uri, "://")
	hostsStart := strings.LastIndex(rest, "@") + 1
	hostsEnd := len(rest)
	if i := strings.IndexAny(rest[hostsStart:], "/?"); i >= 0 {
		hostsEnd = hostsStart + i
	}
	_, query, _ := strings.Cut(rest[hostsEnd:], "?")
	// The driver made the database the AuthSource only where the database decides it.
	if cs.Database != "" && !cs.AuthSourceSet && cs.AuthSource == cs.Database {
		opts, err := url.ParseQuery(query)
		if err != nil {
			return "", fmt.Errorf("MONGODB_URI options: %w", err)
		}
		opts.Set("authSource", cs.Database)
		query = opts.Encode()
	}
	out := scheme + "://" + rest[:hostsEnd] + "/" + url.PathEscape(database)
	if query != "" {
		out += "?" + query
	}
	return out, nil
}

// MongoDB returns a new, empty database on the test server, dropped when the test ends.
func MongoDB(t testing.TB) *mongo.Database {
	t.Helper()
	MongoURI(t)
	db := shared.client.Database(databaseName(t))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			t.Logf("drop test database %s: %v", db.Name(), err)
		}
	})
	return db
}

func start() {
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared.uri = os.Getenv("MONGODB_URI")
		if shared.uri != "" {
			if shared.uri, shared.err = withDatabase(shared.uri, ""); shared.err != nil {
				return
			}
		} else {
			if shared.dir, shared.err = os.MkdirTemp("", "ferretdb-"); shared.err != nil {
				return
			}
			if shared.server, shared.err = StartFerretDB(ctx, shared.dir); shared.err != nil {
				return
			}
			shared.uri = shared.server.URI
		}
		shared.client, shared.err = mongo.Connect(options.Client().ApplyURI(shared.uri).
			SetServerSelectionTimeout(10 * time.Second).
			SetTimeout(30 * time.Second))
		if shared.err == nil {
			shared.err = shared.client.Ping(ctx, readpref.Primary())
		}
	})
}

// databaseName is short (FerretDB limits names), unique, and says which test made it.
func databaseName(t testing.TB) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		default:
			return '_'
		}
	}, t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("t_%s_%s", name, hex.EncodeToString(b[:]))
}

// UnreachableMongoDB returns database name on a server that is not there (ClosedAddr):
// every operation fails as with a database that is down, within about a second.
func UnreachableMongoDB(t testing.TB, name string) *mongo.Database {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + ClosedAddr(t) + "/").
		SetServerSelectionTimeout(200 * time.Millisecond).SetTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client.Database(name)
}

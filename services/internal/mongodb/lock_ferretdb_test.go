package mongodb_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// Read-check-write of one document under Serialize, with every filter exactly {_id}:
// 40 concurrent takes of one unit from stock 10 take exactly 10 (on FerretDB, without
// the lock, several read the same stock and units are lost), and this in each of two
// databases holding a document with the same _id at once.
func TestSerializeMakesReadCheckWriteAtomic(t *testing.T) {
	ctx := context.Background()
	var locks mongodb.KeyedMutex
	id := mongodb.NewID()
	colls := []*mongo.Collection{
		testenv.MongoDB(t).Collection("stock"),
		testenv.MongoDB(t).Collection("stock"),
	}
	for _, c := range colls {
		if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "stock", Value: 10}}); err != nil {
			t.Fatal(err)
		}
	}
	errShort := errors.New("short")
	take := func(c *mongo.Collection) error {
		return locks.Serialize(c, id, func() error {
			var doc struct{ Stock int64 }
			if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc); err != nil {
				return err
			}
			if doc.Stock < 1 {
				return errShort
			}
			_, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "stock", Value: -1}}}})
			return err
		})
	}
	var taken [2]atomic.Int64
	var wg sync.WaitGroup
	for i := range 80 {
		wg.Go(func() {
			switch err := take(colls[i%2]); {
			case err == nil:
				taken[i%2].Add(1)
			case !errors.Is(err, errShort):
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i, c := range colls {
		var doc struct{ Stock int64 }
		if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		if taken[i].Load() != 10 || doc.Stock != 0 {
			t.Errorf("collection %d: %d takes succeeded, stock %d; want 10 and 0", i, taken[i].Load(), doc.Stock)
		}
	}
}

// With FerretDB stopped or frozen, writes sent at once through a Gate of 1 (as a store
// sends them) each answer with an unreachable error (a 503) within about one operation
// timeout, not one timeout per write queued before them.
func TestGateAnswersQueuedWritesWithinOneTimeoutWhenTheDatabaseIsDown(t *testing.T) {
	const timeout = time.Second
	for _, tc := range []struct {
		name string
		// down takes the database away from a client of uri, which down returns.
		down func(t *testing.T, server *testenv.FerretDB) (uri string, takeAway func())
	}{
		{"stopped", func(t *testing.T, server *testenv.FerretDB) (string, func()) {
			return server.URI, func() {
				if err := server.Stop(); err != nil {
					t.Fatal(err)
				}
			}
		}},
		// A frozen server (SIGSTOP, a stalled disk) keeps its connections open and
		// accepts new ones, but answers nothing: each write runs out its whole timeout.
		{"frozen", func(t *testing.T, server *testenv.FerretDB) (string, func()) {
			p := startFreezer(t, strings.TrimSuffix(strings.TrimPrefix(server.URI, "mongodb://"), "/"))
			return "mongodb://" + p.addr() + "/", p.freeze
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, err := testenv.StartFerretDB(t.Context(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = server.Stop() })
			uri, takeAway := tc.down(t, server)
			db, err := mongodb.Connect(t.Context(), mongodb.Config{URI: uri, ConnectTimeout: timeout, OperationTimeout: timeout}, "shop")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_ = db.Client().Disconnect(ctx)
			})
			coll := db.Collection("products")
			gate := mongodb.NewGate(1)
			insert := func(ctx context.Context) error {
				return gate.Do(ctx, func() error { _, err := coll.InsertOne(ctx, bson.D{{Key: "name", Value: "lamp"}}); return err })
			}
			if err := insert(t.Context()); err != nil { // the client has a connection, as a serving store has
				t.Fatal(err)
			}

			takeAway()
			errs, took := mongodb.DoAtOnce(6, func() error { return insert(t.Context()) }, nil)
			for i, err := range errs {
				if !mongodb.Unreachable(err) || took[i] > timeout*3/2 {
					t.Errorf("write %d: %v after %s; want an unreachable error within %s", i, err, took[i], timeout*3/2)
				}
			}
			t.Logf("answered after %v", took)
		})
	}
}

// freezer relays TCP connections to a server until freeze; then it relays nothing more
// either way and leaves new connections unanswered, closing none: to a client, a server
// that stopped running without closing its sockets.
type freezer struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn // closed when the test ends
}

func startFreezer(t *testing.T, target string) *freezer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target}
	t.Cleanup(func() {
		_ = ln.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			f.keep(client)
			if f.frozen.Load() {
				continue
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				_ = client.Close()
				continue
			}
			f.keep(server)
			go f.relay(server, client)
			go f.relay(client, server)
		}
	}()
	return f
}

func (f *freezer) addr() string { return f.ln.Addr().String() }

func (f *freezer) freeze() { f.frozen.Store(true) }

func (f *freezer) keep(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns = append(f.conns, c)
}

// relay copies src to dst until either fails, or until the freeze, after which it
// drops what it reads and leaves both open.
func (f *freezer) relay(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if f.frozen.Load() {
			if err != nil {
				return
			}
			continue
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			_ = dst.Close()
			_ = src.Close()
			return
		}
	}
}

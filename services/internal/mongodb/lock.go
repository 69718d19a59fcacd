package mongodb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// KeyedMutex serializes work by key within this process: a mutex per key, made on
// demand and dropped when nobody holds or waits for it, so memory stays bounded by the
// keys in use at once. The zero value is ready to use; it must not be copied after use.
//
// Stores need it on FerretDB. FerretDB v1 (SQLite) does not run an update atomically:
// it evaluates the filter on a copy of the document, applies the update in Go, then
// writes the whole document back by _id, with no check that the document did not change
// in between. Two concurrent conditional updates of one document can therefore both
// match and one write is lost (measured with v1.24.2: 50 concurrent
// {stock: {$gte: 1}} / {$inc: {stock: -1}} on stock 10 all matched and left stock at 8);
// every update, even an unconditional $set or $unset, rewrites the whole document and
// can undo a concurrent one. MongoDB does each update atomically.
//
// Holding the document's lock (Serialize) around every update of a document, and around
// a read whose answer decides the update, makes read-check-write atomic for this
// process. It is the only guard on FerretDB, so a store relying on it must be the only
// process writing those documents (one replica).
//
// Checking in Go under the lock also lets a store keep every filter FerretDB sees to
// exactly {_id: <string or ObjectID>}, the only filter FerretDB v1 hands to SQLite: for
// any other one it decodes every document of the collection in Go (an update filter
// {_id: x, state: "pending"} reads the whole collection). FerretDB v1.24.2's own _id
// index is on an expression its queries do not use (_ferretdb_sjson->"_id" against
// ->'$._id'); the FerretDB server of hack/tools adds one they use, so there a lookup by
// _id costs the same however large the collection.
type KeyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	token chan struct{} // holds one value while the key is locked
	users int           // holders and waiters; the entry goes when it drops to 0
}

// Lock locks key, waiting while another holder has it, and returns the function that
// unlocks it.
func (k *KeyedMutex) Lock(key string) (unlock func()) {
	unlock, _ = k.LockContext(context.Background(), key)
	return unlock
}

// LockContext is Lock, giving up with ctx's error when ctx ends first: a request whose
// client has gone stops waiting.
func (k *KeyedMutex) LockContext(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{token: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.users++
	k.mu.Unlock()

	leave := func() {
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.token <- struct{}{}:
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
	return func() {
		<-l.token
		leave()
	}, nil
}

// Serialize runs fn holding the lock of the document of coll whose _id is id (a string
// or an ObjectID), so fn's reads and updates of that document are not interleaved with
// those of another Serialize of it in this process.
func (k *KeyedMutex) Serialize(coll *mongo.Collection, id any, fn func() error) error {
	defer k.Lock(DocumentKey(coll, id))()
	return fn()
}

// DocumentKey is the KeyedMutex key of the document of coll with _id id.
func DocumentKey(coll *mongo.Collection, id any) string {
	return fmt.Sprintf("%s.%s/%v", coll.Database().Name(), coll.Name(), id)
}

// Gate lets at most a fixed number of operations run at once, the others waiting their
// turn in this process.
//
// A store on FerretDB puts its writes through a Gate of 1. SQLite, under FerretDB v1,
// lets one transaction write a database at a time, and a writer that finds the database
// locked sleeps in steps of 1 to 100 ms (its busy handler) before it tries again, so
// writes sent at once mostly wait in those sleeps (measured: with 32 reservations at
// once, an update by _id took 100-200 ms, about 1 ms alone). Queued in Go instead, each
// starts the moment the previous one ends: the product store's reservation benchmark
// went from 64 to 117 reservations/s (same machine and FerretDB, with its _id index
// made usable).
//
// A queue must not turn an outage into waits that add up: with the database down or
// frozen, each write tries for up to the client's operation timeout, so the Nth write
// queued would answer after N timeouts, past any HTTP server's write timeout. So when
// a write finds the database unreachable, the writes waiting behind it fail at once with
// its error (see Do), and every write answers within about one operation timeout of
// arriving.
type Gate struct {
	slots chan struct{}
	// outage is the signal of the writes waiting now: fired, and replaced, when a write
	// finds the database unreachable.
	outage atomic.Pointer[outage]
}

// outage tells the writes that waited for a Gate's slot while the write holding it
// found the database unreachable.
type outage struct {
	fired chan struct{} // closed once err is set
	err   error
}

// NewGate returns a Gate letting n (at least 1) operations run at once.
func NewGate(n int) *Gate {
	g := &Gate{slots: make(chan struct{}, max(n, 1))}
	g.outage.Store(&outage{fired: make(chan struct{})})
	return g
}

// Do runs fn when a slot is free, or returns ctx's error if ctx ends first. A nil Gate
// runs fn at once.
//
// When fn fails because the database is unreachable (Unreachable), while ctx still runs
// (a client that went away says nothing of the database) or after ctx's own deadline cut
// a try of at least silenceIsOutage, the calls of Do that were waiting for a slot then
// return at once, without running their fn, an error wrapping ErrNotSent and fn's error,
// which Unreachable recognises too. Calls that arrive later run their fn: the database
// may be back.
func (g *Gate) Do(ctx context.Context, fn func() error) error {
	if g == nil {
		return fn()
	}
	o := g.outage.Load()
	select {
	case g.slots <- struct{}{}:
	case <-o.fired:
		return o.failure()
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-g.slots }()
	// A failed write frees its slot after firing, so both cases may have been ready
	// above: the outage wins.
	select {
	case <-o.fired:
		return o.failure()
	default:
	}
	start := time.Now()
	err := fn()
	if err != nil && Unreachable(err) && saysOutage(ctx.Err(), time.Since(start)) {
		g.fire(err)
	}
	return err
}

// silenceIsOutage is how long a write must have waited for the database, when its own
// deadline ends the wait, for that silence to count as an outage: the writes queued
// behind it would each wait as long (the order service's clean-up writes have 5 s, its
// placements their PLACEMENT_TIMEOUT, both under the driver's operation timeout). A
// deadline that left a write less than this says more of the request than of the
// database.
const silenceIsOutage = 2 * time.Second

// saysOutage tells whether a write that found the database unreachable, with its
// context ending in ctxErr (nil if it still runs) after tried, says the database is out.
func saysOutage(ctxErr error, tried time.Duration) bool {
	switch {
	case ctxErr == nil:
		return true
	case errors.Is(ctxErr, context.DeadlineExceeded):
		return tried >= silenceIsOutage
	default: // its client went away
		return false
	}
}

// fire fails the writes waiting now with err, and gives those arriving after a new,
// unfired signal.
func (g *Gate) fire(err error) {
	o := g.outage.Swap(&outage{fired: make(chan struct{})})
	o.err = err
	close(o.fired)
}

// ErrNotSent is in the error of a Gate's Do that did not run its fn because a write
// ahead of it in the queue found the database unreachable: unlike that write's, whose
// outcome is unknown, this one certainly did not reach the database.
var ErrNotSent = errors.New("not sent: the write ahead of it found the database unreachable")

// failure is the error of a write that did not run because of the outage.
func (o *outage) failure() error {
	return fmt.Errorf("%w: %w", ErrNotSent, o.err)
}

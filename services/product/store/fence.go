package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
)

// Writes of unknown outcome.
//
// An update the store gave up on (its operation timeout, a connection lost) may still
// reach the database and apply later: it was in a socket buffer, on a slow network, in
// a server that stalled. The document's lock is released when the request fails, so
// the steps that run next read a document that may still change under them, and the
// late update, computed from an older state, lands on a newer one: a take checked
// against units another order has taken since (stock below zero), a give-back of units
// a repeated release gave back again (counted twice), a reservation's record written
// over a later one.
//
// So every update carries a fence, a token of its own in $pop: {"fences.<token>": 1},
// which does nothing while fences.<token> is missing (always, unless fenced) and makes
// the whole update fail once it holds a value that is not an array. When an update
// fails after it was sent, its token is kept for its document, and before the next step
// reads that document (holding its lock) the store fences it: one update sets
// fences.<token> to true. From then on the lost update cannot apply, and the read that
// follows shows whether it did before: every step computes from the state it writes to,
// as the reasoning in reservations.go requires. Until that fencing update succeeds, each
// step on the document tries it first and fails as the database does (a 503); a fencing
// update that fails after it was sent is itself one of unknown outcome, which the next
// one waits for and fences.
//
// The fence stops an update that reads its document after it. FerretDB v1 reads the
// document when the update arrives, and writes the whole of it back later, once SQLite's
// write lock is free, waiting up to its busy timeout (10 s) for it: an update the client
// gave up on while it waited there has passed its own check, and would write back over
// the fence and over every step since. So the fence waits lateWriteWindow after the
// update was sent, by when such an update has landed or failed (see fence).
//
// The token rides in the update rather than in its filter because a write's filter
// must stay exactly {_id}: on FerretDB a filter on a version field as well would read
// the whole collection (see mongodb.KeyedMutex). A fence stays in its document (a few
// bytes per update lost in an outage): the update it stops may arrive at any time.
// What it does not cover: an update lost by a process that then stopped (the one after
// it knows nothing of the token; reservations.go assumes a stopped process's writes
// are over), and, on FerretDB only, which does not apply an update atomically, a lost
// update that reaches the server only just before the fence (delayed on the network), or
// that a server stalled longer than lateWriteWindow (its process frozen) holds.

// lateWriteWindow is how long after an update of unknown outcome was sent the store waits
// before it fences it (mongodb.LateWriteWindow). On MongoDB, after a timeout of the default
// 8 s (MONGODB_OPERATION_TIMEOUT), about 3 s.
const lateWriteWindow = mongodb.LateWriteWindow

// unknownWrite is an update of unknown outcome: its fence token, and when it was sent.
type unknownWrite struct {
	token string
	sent  time.Time
}

// unknownWrites holds, per document (mongodb.DocumentKey), the fence tokens of the
// updates sent to it whose outcome is unknown.
type unknownWrites struct {
	mu     sync.Mutex
	writes map[string][]unknownWrite
}

func (u *unknownWrites) add(key string, w unknownWrite) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.writes == nil {
		u.writes = map[string][]unknownWrite{}
	}
	u.writes[key] = append(u.writes[key], w)
}

// has reports whether key has updates of unknown outcome.
func (u *unknownWrites) has(key string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.writes[key]) > 0
}

func (u *unknownWrites) of(key string) []unknownWrite {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.writes[key])
}

// fenced forgets the updates ws of key: they can no longer apply.
func (u *unknownWrites) fenced(key string, ws []unknownWrite) {
	u.mu.Lock()
	defer u.mu.Unlock()
	left := slices.DeleteFunc(u.writes[key], func(w unknownWrite) bool { return slices.Contains(ws, w) })
	if len(left) == 0 {
		delete(u.writes, key)
		return
	}
	u.writes[key] = left
}

func fenceKey(token string) string { return "fences." + token }

// update applies update, fenced, to the document of coll with _id id, whose lock the
// caller holds, and returns how many documents matched (0 or 1). When it fails after it
// was sent, its outcome is unknown and the next fence of its document (fence) stops it.
func (s *Store) update(ctx context.Context, coll *mongo.Collection, id any, update bson.D) (matched int64, err error) {
	token := "w" + bson.NewObjectID().Hex() // never all digits: a field name, never an array index
	update = append(slices.Clip(update), bson.E{Key: "$pop", Value: bson.D{{Key: fenceKey(token), Value: 1}}})
	var sent time.Time
	err = s.write(ctx, func() error {
		sent = time.Now()
		res, err := coll.UpdateOne(ctx, byID(id), update)
		if err == nil {
			matched = res.MatchedCount
		}
		return err
	})
	if err != nil && !sent.IsZero() {
		s.unknown.add(mongodb.DocumentKey(coll, id), unknownWrite{token: token, sent: sent})
	}
	return matched, err
}

// fence fences the updates of unknown outcome sent to the document of coll with _id
// id, whose lock the caller holds, so that what it reads next stays true until it
// writes. It first waits until the last of them was sent lateWriteWindow ago, or ctx
// ends. A document gone has nothing left to protect.
func (s *Store) fence(ctx context.Context, coll *mongo.Collection, id any) error {
	key := mongodb.DocumentKey(coll, id)
	writes := s.unknown.of(key)
	if len(writes) == 0 {
		return nil
	}
	var last time.Time
	for _, w := range writes {
		if w.sent.After(last) {
			last = w.sent
		}
	}
	if wait := time.Until(last.Add(s.lateWriteWindow)); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("wait for %d updates of unknown outcome to land: %w", len(writes), ctx.Err())
		}
	}
	set := make(bson.D, len(writes))
	for i, w := range writes {
		set[i] = bson.E{Key: fenceKey(w.token), Value: true}
	}
	// Fenced itself (update): a fencing update that fails after it was sent is one of
	// unknown outcome like any other, which on FerretDB may still write back the document
	// it read, over the steps after it, so the next fence waits for it too.
	if _, err := s.update(ctx, coll, id, bson.D{{Key: "$set", Value: set}}); err != nil {
		return fmt.Errorf("fence %d updates of unknown outcome: %w", len(writes), err)
	}
	s.unknown.fenced(key, writes)
	return nil
}

package outbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// findCounter counts the find commands on one collection: scans (a filter on
// PendingField) and reads of single documents (any other filter).
type findCounter struct {
	db, coll     string
	scans, reads atomic.Int64
}

func (c *findCounter) started(_ context.Context, e *event.CommandStartedEvent) {
	if e.CommandName != "find" || e.DatabaseName != c.db {
		return
	}
	if coll, _ := e.Command.Lookup("find").StringValueOK(); coll != c.coll {
		return
	}
	filter, _ := e.Command.Lookup("filter").DocumentOK()
	if _, err := filter.LookupErr(PendingField); err == nil {
		c.scans.Add(1)
	} else {
		c.reads.Add(1)
	}
}

// insertBacklog inserts n documents with one event each to send, their _ids
// backlogID(0) to backlogID(n-1), and returns the events in that order.
func insertBacklog(t *testing.T, coll *mongo.Collection, n int) []Event {
	t.Helper()
	events := make([]Event, n)
	docs := make([]any, n)
	for i := range n {
		e, err := NewEvent(t.Context(), "thing.created", map[string]int{"n": i}, true)
		if err != nil {
			t.Fatal(err)
		}
		events[i] = e
		docs[i] = bson.D{{Key: "_id", Value: backlogID(i)}, {Key: Field, Value: []Event{e}}, {Key: PendingField, Value: true}}
	}
	if _, err := coll.InsertMany(t.Context(), docs); err != nil {
		t.Fatal(err)
	}
	return events
}

// backlogID is the _id of the i-th document of insertBacklog.
func backlogID(i int) string { return fmt.Sprintf("d%04d", i) }

// TestBacklogIsSentOnceAndReadOnce: a relay starting on a backlog of several batches
// publishes each event once and reads each document once to send it and once to remove
// what it sent, whether it removes published events at once or after a delay. While
// their removal waits, documents keep PendingField: the scan must neither send their
// events again nor read them again and again until the removals land, yet it must reach
// the documents after them.
func TestBacklogIsSentOnceAndReadOnce(t *testing.T) {
	tests := []struct {
		name  string
		delay time.Duration
	}{
		{"removed at once", 0},
		{"removed after a delay", 2 * time.Second},
	}
	const docs, batch = 600, 64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			db := testenv.MongoDB(t) // the database, dropped at the end
			finds := &findCounter{db: db.Name(), coll: "things"}
			client, err := mongo.Connect(options.Client().ApplyURI(testenv.MongoURI(t)).
				SetMonitor(&event.CommandMonitor{Started: finds.started}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
			coll := client.Database(db.Name()).Collection(finds.coll)

			insertBacklog(t, coll, docs)

			pub := &countingPublisher{n: map[string]int{}}
			var locks mongodb.KeyedMutex
			r := NewRelay(coll, pub, &locks, nil, logging.Discard(), time.Second)
			r.batch = batch
			r.SetRemovalDelay(tt.delay)
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			start := time.Now()
			go func() { defer close(done); r.Run(runCtx) }()
			defer func() { stop(); <-done }()

			for deadline := start.Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
				left, err := coll.CountDocuments(ctx, bson.D{{Key: PendingField, Value: true}})
				if err != nil {
					t.Fatal(err)
				}
				if left == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d documents still pending after a minute", left, docs)
				}
			}
			took := time.Since(start)
			stop()
			<-done // and with it the scan's publishes under way

			pub.mu.Lock()
			defer pub.mu.Unlock()
			var publishes, twice int
			for _, n := range pub.n {
				publishes += n
				if n > 1 {
					twice++
				}
			}
			t.Logf("all sent and removed in %s: %d publishes of %d events; %d scan queries, %d single-document reads",
				took.Round(time.Millisecond), publishes, len(pub.n), finds.scans.Load(), finds.reads.Load())
			if len(pub.n) != docs || twice > 0 {
				t.Errorf("%d events published, %d of them more than once; want each of the %d once", len(pub.n), twice, docs)
			}
			// One scan pages through the backlog once (a last, empty page when the
			// backlog is a whole number of batches); another would start only after
			// idleScan, or after a failure.
			if pages := int64(docs/batch + 1); finds.scans.Load() > pages {
				t.Errorf("%d scan queries, want at most %d (one per batch)", finds.scans.Load(), pages)
			}
			if finds.reads.Load() > 2*docs {
				t.Errorf("%d single-document reads, want at most %d (one to send, one to remove)", finds.reads.Load(), 2*docs)
			}
		})
	}
}

// TestEventsBeingRemovedAreNotSentAgain: a pass over a document (a scan's) that runs
// while the document's published events are being removed, by the relay after the delay
// or by a writer that took them over, does not take them for unsent: both stop counting
// them as published before their write lands.
func TestEventsBeingRemovedAreNotSentAgain(t *testing.T) {
	tests := []struct {
		name   string
		remove func(ctx context.Context, r *Relay, id string) error
	}{
		{"removed by the relay", func(ctx context.Context, r *Relay, id string) error {
			return r.removeConfirmed(ctx, id)
		}},
		{"taken over by a writer", func(ctx context.Context, r *Relay, id string) error {
			return r.locks.Serialize(r.coll, id, func() error {
				byID := bson.D{{Key: "_id", Value: id}}
				var d pendingDoc
				if err := r.coll.FindOne(ctx, byID).Decode(&d); err != nil {
					return err
				}
				_, err := r.coll.UpdateOne(ctx, byID, bson.D{{Key: "$set", Value: Set(d.Outbox, r.TakeConfirmed(id))}})
				return err
			})
		}},
	}
	const docs = 200
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			coll := testenv.MongoDB(t).Collection("things")
			pub := &countingPublisher{n: map[string]int{}}
			var locks mongodb.KeyedMutex
			r := NewRelay(coll, pub, &locks, nil, logging.Discard(), time.Hour)
			r.SetRemovalDelay(time.Hour) // removals come from the test alone
			for i, e := range insertBacklog(t, coll, docs) {
				r.confirm(backlogID(i), map[string]bool{e.ID: true}) // published; its removal waits
			}

			var wg sync.WaitGroup
			errs := make([]error, 2*docs)
			for i := range docs {
				id := backlogID(i)
				wg.Go(func() { errs[2*i] = tt.remove(ctx, r, id) })
				wg.Go(func() { errs[2*i+1] = r.relay(ctx, notification{id: id}) })
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			if left, err := coll.CountDocuments(ctx, bson.D{{Key: PendingField, Value: true}}); err != nil || left != 0 {
				t.Fatalf("%d documents still pending (%v), want their events removed", left, err)
			}
			pub.mu.Lock()
			defer pub.mu.Unlock()
			if len(pub.n) > 0 {
				t.Errorf("%d published events sent again as they were being removed", len(pub.n))
			}
		})
	}
}

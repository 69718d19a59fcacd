// Package outbox stores a document's outgoing events in the document itself and relays
// them to the broker. The store has no multi-document transactions, so a state change
// and the event announcing it must be one write to one document: the change is then
// never stored without its event, nor the event sent for a change that was not stored.
//
// A document with events to send carries them in its "outbox" array and has
// "outboxPending" set; the Relay publishes each with publisher confirms and only then
// removes it. An event may be published twice (a crash between confirm and removal, or
// two relays): consumers deduplicate by event id.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
)

// Field names in the documents.
const (
	// Field holds the array of pending events.
	Field = "outbox"
	// PendingField is true while Field may hold events. It exists because the store
	// cannot be trusted to test an array for elements (FerretDB matched an emptied
	// array with "outbox.0": {$exists: true}), and it is indexed for the relay.
	PendingField = "outboxPending"
)

// Event is an event waiting in a document's outbox.
type Event struct {
	ID          string    `bson:"id"`
	Type        string    `bson:"type"`
	Body        string    `bson:"body"` // the JSON, kept byte for byte
	Traceparent string    `bson:"traceparent,omitempty"`
	Time        time.Time `bson:"time"`
	Mandatory   bool      `bson:"mandatory"`
}

// NewEvent makes an event of type typ with payload as its JSON body. Mandatory events
// must reach a queue (see messaging.Message.Mandatory). ctx gives the traceparent.
func NewEvent(ctx context.Context, typ string, payload any, mandatory bool) (Event, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return Event{}, err
	}
	return Event{
		ID:          bson.NewObjectID().Hex(),
		Type:        typ,
		Body:        string(body),
		Traceparent: messaging.Traceparent(ctx),
		Time:        time.Now().UTC().Truncate(time.Millisecond),
		Mandatory:   mandatory,
	}, nil
}

// Push returns the update operators that append events to a document's outbox; the
// caller adds its own $set to the same update.
func Push(events ...Event) bson.D {
	return bson.D{
		{Key: "$push", Value: bson.D{{Key: Field, Value: bson.D{{Key: "$each", Value: events}}}}},
	}
}

// Indexes are the indexes a collection with an outbox needs.
func Indexes() []mongo.IndexModel {
	return []mongo.IndexModel{{Keys: bson.D{{Key: PendingField, Value: 1}}}}
}

// Publisher is what the relay needs of messaging.Publisher.
type Publisher interface {
	Publish(ctx context.Context, m messaging.Message) error
}

// Relay publishes the events waiting in one collection's documents.
type Relay struct {
	coll     *mongo.Collection
	pub      Publisher
	log      *slog.Logger
	interval time.Duration
	batch    int
	wake     chan struct{}
}

// NewRelay returns a relay for coll. It polls every interval (default 1s) and when
// Notify is called after a write.
func NewRelay(coll *mongo.Collection, pub Publisher, log *slog.Logger, interval time.Duration) *Relay {
	if interval <= 0 {
		interval = time.Second
	}
	return &Relay{
		coll: coll, pub: pub, log: log.With("component", "outbox", "collection", coll.Name()),
		interval: interval, batch: 256, wake: make(chan struct{}, 1),
	}
}

// Notify tells the relay that a document got events, so they go out now rather than
// at the next poll.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run relays until ctx ends: at once (events left by a crash or an outage), after
// every Notify, and every interval.
func (r *Relay) Run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		for {
			n, err := r.Drain(ctx)
			if err != nil && ctx.Err() == nil {
				r.log.Warn("relay", "error", err)
			}
			if err != nil || n < r.batch {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-t.C:
		}
	}
}

type pendingDoc struct {
	ID     any     `bson:"_id"`
	Outbox []Event `bson:"outbox"`
}

// Drain publishes the events of up to one batch of documents and returns how many
// documents it looked at. Documents go in parallel; a document's events go in order,
// so an aggregate's events are published in the order they happened.
func (r *Relay) Drain(ctx context.Context) (int, error) {
	cur, err := r.coll.Find(ctx, bson.D{{Key: PendingField, Value: true}},
		options.Find().SetProjection(bson.D{{Key: Field, Value: 1}}).SetLimit(int64(r.batch)))
	if err != nil {
		return 0, err
	}
	var docs []pendingDoc
	if err := cur.All(ctx, &docs); err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(docs))
	for i, d := range docs {
		wg.Go(func() { errs[i] = r.relay(ctx, d) })
	}
	wg.Wait()
	return len(docs), errors.Join(errs...)
}

func (r *Relay) relay(ctx context.Context, d pendingDoc) error {
	for _, e := range d.Outbox {
		err := r.pub.Publish(ctx, messaging.Message{
			ID: e.ID, Type: e.Type, Body: []byte(e.Body),
			Traceparent: e.Traceparent, Time: e.Time, Mandatory: e.Mandatory,
		})
		if err != nil {
			return err // kept; the next pass sends it again
		}
		// $pull by the whole element: FerretDB does not match a $pull condition
		// ({id: ...}) against array elements, but does remove an equal value.
		_, err = r.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}},
			bson.D{{Key: "$pull", Value: bson.D{{Key: Field, Value: e}}}})
		if err != nil {
			return err
		}
	}
	// Clear the flag only if no event was added meanwhile.
	_, err := r.coll.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: d.ID}, {Key: Field, Value: bson.D{{Key: "$size", Value: 0}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: PendingField, Value: false}}}})
	return err
}

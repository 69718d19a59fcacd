package outbox_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging/outbox"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// recordingPublisher confirms what it is given, or fails while failing is set. The
// relay's contract with the broker is tested in package messaging; here what matters
// is what the relay does with the store around each publish.
type recordingPublisher struct {
	mu        sync.Mutex
	published []string
	failing   bool
}

func (p *recordingPublisher) Publish(_ context.Context, m messaging.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failing {
		return messaging.ErrNotConfirmed
	}
	p.published = append(p.published, m.ID)
	return nil
}

type doc struct {
	ID            string         `bson:"_id"`
	Outbox        []outbox.Event `bson:"outbox"`
	OutboxPending bool           `bson:"outboxPending"`
}

func TestRelay(t *testing.T) {
	ctx := context.Background()
	coll := testenv.MongoDB(t).Collection("things")
	pub := &recordingPublisher{}
	var locks mongodb.KeyedMutex
	relay := outbox.NewRelay(coll, pub, &locks, nil, logging.Discard(), time.Hour)

	e1, _ := outbox.NewEvent(ctx, "thing.created", map[string]int{"n": 1}, true)
	e2, _ := outbox.NewEvent(ctx, "thing.updated", map[string]int{"n": 2}, false)
	if _, err := coll.InsertOne(ctx, doc{ID: "a", Outbox: []outbox.Event{e1}, OutboxPending: true}); err != nil {
		t.Fatal(err)
	}
	// A second event appended by an update, as a state change does.
	update := append(bson.D{{Key: "$set", Value: bson.D{{Key: outbox.PendingField, Value: true}}}}, outbox.Push(e2)...)
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "a"}}, update); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertOne(ctx, doc{ID: "b"}); err != nil { // nothing to send
		t.Fatal(err)
	}

	// While the broker refuses, everything stays.
	pub.failing = true
	if _, err := relay.Drain(ctx); !errors.Is(err, messaging.ErrNotConfirmed) {
		t.Fatalf("drain with a failing publisher: %v", err)
	}
	var got doc
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got.Outbox) != 2 || !got.OutboxPending {
		t.Fatalf("after a failed publish: %d events, pending %v; want both kept", len(got.Outbox), got.OutboxPending)
	}

	pub.failing = false
	if n, err := relay.Drain(ctx); err != nil || n != 1 {
		t.Fatalf("drain: %d documents, %v", n, err)
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got.Outbox) != 0 || got.OutboxPending {
		t.Fatalf("after relaying: %d events left, pending %v", len(got.Outbox), got.OutboxPending)
	}
	if want := []string{e1.ID, e2.ID}; len(pub.published) != 2 || pub.published[0] != want[0] || pub.published[1] != want[1] {
		t.Fatalf("published %v, want %v in order", pub.published, want)
	}
	// Nothing left: a second pass publishes nothing.
	if n, err := relay.Drain(ctx); err != nil || n != 0 || len(pub.published) != 2 {
		t.Fatalf("second drain: %d documents, %v, %d published", n, err, len(pub.published))
	}
}

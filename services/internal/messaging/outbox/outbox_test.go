package outbox_test

import (
	"context"
	"errors"
	"maps"
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

// With a removal delay the relay leaves a published event in its document for a while:
// a writer of the document takes it over and removes it in its own update; what no
// writer takes is removed after the delay, or when the relay stops.
func TestRelayLeavesPublishedEventsToTheNextWriter(t *testing.T) {
	ctx := context.Background()
	coll := testenv.MongoDB(t).Collection("things")
	pub := &recordingPublisher{}
	var locks mongodb.KeyedMutex
	relay := outbox.NewRelay(coll, pub, &locks, nil, logging.Discard(), time.Hour)
	relay.SetRemovalDelay(2 * time.Second)

	e1, _ := outbox.NewEvent(ctx, "thing.created", map[string]int{"n": 1}, true)
	e2, _ := outbox.NewEvent(ctx, "thing.updated", map[string]int{"n": 2}, false)
	e3, _ := outbox.NewEvent(ctx, "thing.created", map[string]int{"n": 3}, true)
	for id, e := range map[string]outbox.Event{"a": e1, "b": e3} {
		if _, err := coll.InsertOne(ctx, doc{ID: id, Outbox: []outbox.Event{e}, OutboxPending: true}); err != nil {
			t.Fatal(err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); relay.Run(runCtx) }()
	waitPublished := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			pub.mu.Lock()
			got := len(pub.published)
			pub.mu.Unlock()
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d events published, want %d", got, n)
			}
		}
	}
	get := func(id string) doc {
		t.Helper()
		var d doc
		if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	waitPublished(2) // the start's scan sends both documents' events

	// A writer changes "a" at once: it takes e1 over and adds e2 in one update.
	err := locks.Serialize(coll, "a", func() error {
		cur := get("a")
		// The relay records a publish as confirmed just after the publisher returns: wait
		// for that too, not only for the publish.
		taken := map[string]bool{}
		for deadline := time.Now().Add(10 * time.Second); !taken[e1.ID] && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			maps.Copy(taken, relay.TakeConfirmed("a"))
		}
		if !taken[e1.ID] {
			t.Errorf("taken over: %v, want %s", taken, e1.ID)
		}
		_, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "a"}}, bson.D{{Key: "$set", Value: outbox.Set(cur.Outbox, taken, e2)}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if d := get("a"); len(d.Outbox) != 1 || d.Outbox[0].ID != e2.ID || !d.OutboxPending {
		t.Fatalf("a after the writer: %+v, want e2 alone, pending", d)
	}
	relay.Notify("a", e2)
	waitPublished(3)

	// Nobody writes "b": its event goes after the delay.
	for deadline := time.Now().Add(10 * time.Second); get("b").OutboxPending; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("b's published event was never removed")
		}
	}
	// e2 may still wait for its delay: stopping removes it.
	stopCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := relay.Stop(stopCtx); err != nil {
		t.Fatal(err)
	}
	<-done
	stop()
	if d := get("a"); len(d.Outbox) != 0 || d.OutboxPending {
		t.Fatalf("a after the relay stopped: %+v, want an empty outbox", d)
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if len(pub.published) != 3 {
		t.Fatalf("published %v, want each of the 3 events once", pub.published)
	}
}

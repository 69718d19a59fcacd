package outbox

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// countingPublisher counts the publishes of each message id.
type countingPublisher struct {
	mu sync.Mutex
	n  map[string]int
}

func (p *countingPublisher) Publish(_ context.Context, m messaging.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n[m.ID]++
	return nil
}

// TestScanBeforeANotificationPublishesOnce: a scan sends a document whose writer's
// notification is still queued; the notification, handled after it, reads the document
// (whose events the scan sent and removed) instead of sending the events it carries again.
func TestScanBeforeANotificationPublishesOnce(t *testing.T) {
	ctx := context.Background()
	coll := testenv.MongoDB(t).Collection("things")
	pub := &countingPublisher{n: map[string]int{}}
	var locks mongodb.KeyedMutex
	r := NewRelay(coll, pub, &locks, nil, logging.Discard(), time.Hour)
	ev, _ := NewEvent(ctx, "payment.succeeded", map[string]int{"n": 1}, true)
	type doc struct {
		ID            string  `bson:"_id"`
		Outbox        []Event `bson:"outbox"`
		OutboxPending bool    `bson:"outboxPending"`
	}
	if _, err := coll.InsertOne(ctx, doc{ID: "p1", Outbox: []Event{ev}, OutboxPending: true}); err != nil {
		t.Fatal(err)
	}
	r.Notify("p1", ev) // the writer's notification, not yet taken when the scan runs
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); r.Run(runCtx) }()
	time.Sleep(time.Second)
	stop()
	<-done
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if pub.n[ev.ID] != 1 {
		t.Errorf("event published %d times, want 1", pub.n[ev.ID])
	}
}

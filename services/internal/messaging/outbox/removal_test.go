package outbox

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// TestDelayedRemovalsLeaveTheGateToRequests: when the removals of a whole backlog fall
// due together (it was sent at once, as after a broker outage), a request's write through
// the store's write gate waits for one of them at most, not behind all of them.
func TestDelayedRemovalsLeaveTheGateToRequests(t *testing.T) {
	const docs, delay = 100, time.Second
	ctx := context.Background()
	coll := testenv.MongoDB(t).Collection("things")
	insertBacklog(t, coll, docs)

	pub := &countingPublisher{n: map[string]int{}}
	var locks mongodb.KeyedMutex
	gate := mongodb.NewGate(1)
	r := NewRelay(coll, pub, &locks, gate, logging.Discard(), time.Second)
	r.SetRemovalDelay(delay)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); r.Run(runCtx) }()
	defer func() { stop(); <-done }()

	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		pub.mu.Lock()
		sent := len(pub.n)
		pub.mu.Unlock()
		if sent == docs {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events published after a minute", sent, docs)
		}
	}

	// Hold the gate while every removal falls due and queues for it.
	held, release := make(chan struct{}), make(chan struct{})
	go func() {
		_ = gate.Do(ctx, func() error { close(held); <-release; return nil })
	}()
	<-held
	time.Sleep(delay + time.Second)

	// A request's write queues after them; when its turn comes, count the removals done.
	removedBefore := make(chan int64, 1)
	go func() {
		_ = gate.Do(ctx, func() error {
			left, err := coll.CountDocuments(ctx, bson.D{{Key: PendingField, Value: true}})
			if err != nil {
				t.Error(err)
			}
			removedBefore <- docs - left
			return nil
		})
	}()
	time.Sleep(100 * time.Millisecond) // it is queued
	close(release)
	select {
	case n := <-removedBefore:
		if n > 2 {
			t.Errorf("the request's write waited for %d removals, want at most 2 (the one queued before it, and one that ran before the request got there)", n)
		}
	case <-time.After(time.Minute):
		t.Fatal("the request's write did not get the gate within a minute")
	}
}

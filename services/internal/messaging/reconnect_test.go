package messaging_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// TestReconnectDoesNotWaitForARetryPause: when the connection drops, a handler sleeping in
// its retry pause (up to MaxRetryDelay, 1 min by default), whose nack can go nowhere, ends
// its pause, so the consumer subscribes again at once instead of stalling the queue.
func TestReconnectDoesNotWaitForARetryPause(t *testing.T) {
	node := testenv.NewRabbitMQNode(t)
	b := connect(t, node.URL())
	p := messaging.NewPublisher(b)
	defer p.Close()
	rec := newRecorder()
	rec.fail = func(messaging.Delivery) error { return errors.New("store down") }
	c := b.Consume(messaging.ConsumerConfig{Queue: workQueue.Name, Handler: rec.handle,
		RetryDelay: 45 * time.Second, MaxRetryDelay: 45 * time.Second})
	defer func() { _ = c.Stop(context.Background()) }()
	publish(t, p, "poison", "work.done")
	time.Sleep(500 * time.Millisecond) // the poison message is in its pause now
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := node.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := node.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	publish(t, p, "x-next", "work.done")
	eventually(t, "x-next handled", func() bool { return rec.storedCount("x-next") == 1 })
	// Well under the 45 s pause, on however busy a machine.
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("a message published after the reconnection was handled %s later: the consumer waited out the pause", d.Round(time.Second))
	}
}

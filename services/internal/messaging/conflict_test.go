package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// otherQueue is a second queue of the topology, which nobody else declares.
var otherQueue = messaging.Queue{Name: "test.other", RoutingKeys: []string{"other.*"}}

// TestQueueDeclaredWithOtherArguments: a queue of the topology that someone else declared
// with other arguments (a classic queue without a dead-letter exchange) fails its
// declaration with 406 PRECONDITION_FAILED. The connection stays up and the rest of the
// topology works: the other queue is consumed and published to. The conflicting queue is
// not consumed, its consumer's readiness says why, and an ERROR line names it with the
// broker's message. Once the conflict is gone, the queue is declared and consumed.
func TestQueueDeclaredWithOtherArguments(t *testing.T) {
	var logs testproc.Buffer
	url, b := connectBesideForeignWorkQueue(t, &logs, slog.LevelInfo)

	rec := newRecorder()
	p := messaging.NewPublisher(b)
	t.Cleanup(p.Close)
	other := b.Consume(messaging.ConsumerConfig{Queue: otherQueue.Name, Handler: rec.handle})
	t.Cleanup(func() { _ = other.Stop(context.Background()) })
	work := b.Consume(messaging.ConsumerConfig{Queue: workQueue.Name, Handler: rec.handle})
	t.Cleanup(func() { _ = work.Stop(context.Background()) })

	publish(t, p, "other-1", "other.done")
	eventually(t, "message of the other queue handled", func() bool { return rec.storedCount("other-1") == 1 })

	time.Sleep(2 * time.Second)
	err := work.Ready(context.Background())
	if err == nil || !strings.Contains(err.Error(), "queue test.work not consumed") || !strings.Contains(err.Error(), "PRECONDITION_FAILED") {
		t.Errorf("Ready() of the conflicting queue's consumer = %v, want not consumed, PRECONDITION_FAILED", err)
	}
	out := logs.String()
	var errorLines int
	for line := range strings.Lines(out) {
		if strings.Contains(line, "level=ERROR") {
			errorLines++
			if !strings.Contains(line, "test.work") || !strings.Contains(line, "PRECONDITION_FAILED") {
				t.Errorf("ERROR line without the queue or the broker's message: %s", line)
			}
		}
	}
	if errorLines == 0 {
		t.Errorf("no ERROR line for the conflict:\n%s", out)
	}
	if n := strings.Count(out, "broker connected"); n != 1 {
		t.Errorf("%d connections in 2s, want one kept:\n%s", n, out)
	}

	// The foreign queue goes: ours is declared and consumed.
	ch, closeConn := channel(t, url)
	if _, err := ch.QueueDelete(workQueue.Name, false, false, false); err != nil {
		t.Fatal(err)
	}
	closeConn()
	eventually(t, "conflicting queue's consumer ready once the queue is gone", func() bool {
		return work.Ready(context.Background()) == nil
	})
	publish(t, p, "work-1", "work.done")
	eventually(t, "message of the queue once in conflict handled", func() bool { return rec.storedCount("work-1") == 1 })
}

// TestExchangeDeclaredWithOtherType: an exchange someone else declared with another type
// fails every connection's declaration. The connection is made again with growing pauses,
// as a subscription is, each failure an ERROR naming the exchange and the broker's message,
// not a warning and a new connection every ReconnectDelay.
func TestExchangeDeclaredWithOtherType(t *testing.T) {
	url := testenv.RabbitMQ(t)
	ch, closeConn := channel(t, url)
	if err := ch.ExchangeDeclare(messaging.Exchange, "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	closeConn()

	var logs testproc.Buffer
	b := messaging.Connect(messaging.Config{
		URL: url, Name: t.Name(), ReconnectDelay: 100 * time.Millisecond,
		Topology: messaging.Topology{Queues: []messaging.Queue{workQueue}},
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
	})
	t.Cleanup(b.Close)
	const watch = 2 * time.Second
	time.Sleep(watch)
	out := logs.String()
	// Pauses of 100 ms growing fourfold: attempts at 0, 0.1 s, 0.5 s, 2.1 s.
	if n := strings.Count(out, "level=ERROR"); n < 1 || n > 4 {
		t.Errorf("%d ERROR lines in %s, want 1 to 4:\n%s", n, watch, out)
	}
	if !strings.Contains(out, "shop.events") || !strings.Contains(out, "PRECONDITION_FAILED") {
		t.Errorf("the log names neither the exchange nor the broker's message:\n%s", out)
	}
	if b.Ready(context.Background()) == nil {
		t.Error("broker ready without its exchange")
	}
}

// TestUnroutableRedeclaresBackOff: while a queue someone declared with other arguments
// (and no binding) leaves every message for it unroutable, which no declaration cures, the
// publisher declares the topology again after growing pauses, not a second after every
// returned message.
func TestUnroutableRedeclaresBackOff(t *testing.T) {
	var logs testproc.Buffer
	_, b := connectBesideForeignWorkQueue(t, &logs, slog.LevelDebug)
	p := messaging.NewPublisher(b)
	t.Cleanup(p.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := 0; i < 60; i++ { // 6 s
		err := p.Publish(ctx, messaging.Message{ID: fmt.Sprintf("w-%d", i), Type: "work.done", Body: []byte(`{}`), Mandatory: true})
		if !errors.Is(err, messaging.ErrUnroutable) {
			t.Fatalf("publish %d: %v, want unroutable", i, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// After 1 s, then 4 s more: two in 6 s (one a second would be five or six).
	if n := strings.Count(logs.String(), "declaring the topology again"); n < 1 || n > 3 {
		t.Errorf("%d declarations in 6 s of unroutable messages, want 1 to 3:\n%s", n, logs.String())
	}
}

// connectBesideForeignWorkQueue declares the work queue as someone else would, a classic
// queue without arguments or binding, then connects a broker whose topology has it and
// otherQueue, logging at level into logs, and waits until it is ready.
func connectBesideForeignWorkQueue(t *testing.T, logs *testproc.Buffer, level slog.Level) (string, *messaging.Broker) {
	t.Helper()
	url := testenv.RabbitMQ(t)
	ch, closeConn := channel(t, url)
	if _, err := ch.QueueDeclare(workQueue.Name, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	closeConn()
	b := messaging.Connect(messaging.Config{
		URL: url, Name: t.Name(), ReconnectDelay: 100 * time.Millisecond,
		Topology: messaging.Topology{Queues: []messaging.Queue{workQueue, otherQueue}},
		Logger:   slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level})),
	})
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.WaitReady(ctx); err != nil {
		t.Fatalf("broker not ready with one queue in conflict: %v\n%s", err, logs.String())
	}
	return url, b
}

package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var workQueue = messaging.Queue{Name: "test.work", RoutingKeys: []string{"work.*"}, DeliveryLimit: 3}

func connect(t *testing.T, url string) *messaging.Broker {
	t.Helper()
	return connectLogging(t, url, nil)
}

// connectLogging is connect with the broker's log lines written to logs (nil: the
// default logger).
func connectLogging(t *testing.T, url string, logs *testproc.Buffer) *messaging.Broker {
	t.Helper()
	var logger *slog.Logger
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	b := messaging.Connect(messaging.Config{
		URL: url, Name: t.Name(), ReconnectDelay: 100 * time.Millisecond,
		Topology: messaging.Topology{Queues: []messaging.Queue{workQueue}},
		Logger:   logger,
	})
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return b
}

// consumeWorkQueue consumes workQueue on b with rec and returns a publisher on b; both
// stop when the test ends.
func consumeWorkQueue(t *testing.T, b *messaging.Broker, rec *recorder) *messaging.Publisher {
	t.Helper()
	p := messaging.NewPublisher(b)
	t.Cleanup(p.Close)
	c := b.Consume(messaging.ConsumerConfig{Queue: workQueue.Name, Handler: rec.handle})
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	return p
}

func publish(t *testing.T, p *messaging.Publisher, id, typ string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := p.Publish(ctx, messaging.Message{ID: id, Type: typ, Body: []byte(`{"n":1}`), Mandatory: true,
		Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
	if err != nil {
		t.Fatalf("publish %s: %v", id, err)
	}
}

// recorder is a handler that records what it stored, failing as told.
type recorder struct {
	mu      sync.Mutex
	stored  map[string]int // id -> times handled successfully
	seen    map[string][]int
	fail    func(d messaging.Delivery) error
	release chan struct{} // when set, handlers wait for it
}

func newRecorder() *recorder {
	return &recorder{stored: map[string]int{}, seen: map[string][]int{}}
}

func (r *recorder) handle(ctx context.Context, d messaging.Delivery) error {
	r.mu.Lock()
	r.seen[d.ID] = append(r.seen[d.ID], d.Attempt)
	fail := r.fail
	r.mu.Unlock()
	if r.release != nil {
		<-r.release
	}
	if fail != nil && !strings.HasSuffix(d.ID, "-next") {
		if err := fail(d); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.stored[d.ID]++
	r.mu.Unlock()
	return nil
}

func (r *recorder) storedCount(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stored[id]
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// queueDepth counts ready messages in a queue through a plain connection.
func queueDepth(t *testing.T, url, queue string) int {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}

func TestPublishAndConsume(t *testing.T) {
	url := testenv.RabbitMQ(t)
	b := connect(t, url)
	p := messaging.NewPublisher(b)
	defer p.Close()

	// failing fails the first n tries of every delivery, then stores it.
	failing := func(n int) func(messaging.Delivery) error {
		tries := 0
		return func(messaging.Delivery) error {
			if tries++; tries <= n {
				return errors.New("store unavailable")
			}
			return nil
		}
	}
	tests := []struct {
		name     string
		fail     func(d messaging.Delivery) error
		hold     time.Duration // 0: the default
		wantDLQ  bool
		attempts []int
	}{
		{name: "stored first time", attempts: []int{1}},
		// Handled again in place, without a redelivery (which would count against the
		// queue's limit): a store down for a while does not dead-letter the message.
		{name: "transient error is retried in place", attempts: []int{1, 1, 1, 1}, fail: failing(3)},
		{name: "transient error past the hold is requeued", hold: time.Nanosecond, attempts: []int{1, 2}, fail: failing(1)},
		{name: "permanent error is dead-lettered at once", wantDLQ: true, attempts: []int{1},
			fail: func(messaging.Delivery) error { return messaging.Permanent(errors.New("malformed")) }},
		// The limit counts redeliveries: the first delivery and DeliveryLimit more.
		{name: "poison message is dead-lettered after the delivery limit", hold: time.Nanosecond, wantDLQ: true,
			attempts: []int{1, 2, 3, 4}, fail: func(messaging.Delivery) error { panic("cannot handle this") }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			rec.fail = tt.fail
			c := b.Consume(messaging.ConsumerConfig{Queue: workQueue.Name, Handler: rec.handle,
				RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 20 * time.Millisecond, Hold: tt.hold})
			defer func() { _ = c.Stop(context.Background()) }()
			id := fmt.Sprintf("event-%d", i)
			// A good message behind the bad one shows the consumer keeps going.
			publish(t, p, id, "work.done")
			publish(t, p, id+"-next", "work.done")

			eventually(t, "next message stored", func() bool { return rec.storedCount(id+"-next") == 1 })
			if tt.wantDLQ {
				eventually(t, "dead letter", func() bool { return queueDepth(t, url, workQueue.DeadLetterQueue()) == 1 })
				drainDLQ(t, url)
			} else {
				eventually(t, "message stored", func() bool { return rec.storedCount(id) == 1 })
			}
			if err := c.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if fmt.Sprint(rec.seen[id]) != fmt.Sprint(tt.attempts) {
				t.Errorf("attempts = %v, want %v", rec.seen[id], tt.attempts)
			}
			if n := queueDepth(t, url, workQueue.Name); n != 0 {
				t.Errorf("%d messages left in the queue", n)
			}
		})
	}
}

func drainDLQ(t *testing.T, url string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	if _, err := ch.QueuePurge(workQueue.DeadLetterQueue(), false); err != nil {
		t.Fatal(err)
	}
}

func TestPublishUnroutable(t *testing.T) {
	b := connect(t, testenv.RabbitMQ(t))
	p := messaging.NewPublisher(b)
	defer p.Close()
	ctx := context.Background()
	err := p.Publish(ctx, messaging.Message{ID: "x", Type: "nobody.listens", Body: []byte(`{}`), Mandatory: true})
	if !errors.Is(err, messaging.ErrUnroutable) {
		t.Fatalf("mandatory publish with no queue: err = %v, want ErrUnroutable", err)
	}
	// Without mandatory the broker drops it and confirms: fine for informational events.
	if err := p.Publish(ctx, messaging.Message{ID: "y", Type: "nobody.listens", Body: []byte(`{}`)}); err != nil {
		t.Fatalf("non-mandatory publish: %v", err)
	}
	// The channel still works for routable messages after a return.
	publish(t, p, "z", "work.done")
}

func TestDeliveryCarriesHeaders(t *testing.T) {
	url := testenv.RabbitMQ(t)
	b := connect(t, url)
	p := messaging.NewPublisher(b)
	defer p.Close()
	publish(t, p, "evt-1", "work.created")

	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	d, ok, err := ch.Get(workQueue.Name, true)
	if err != nil || !ok {
		t.Fatalf("get: ok=%v err=%v", ok, err)
	}
	if d.MessageId != "evt-1" || d.Type != "work.created" || d.DeliveryMode != amqp.Persistent ||
		d.ContentType != "application/json" || d.Headers["traceparent"] == nil || d.Timestamp.IsZero() {
		t.Fatalf("unexpected properties: id=%q type=%q mode=%d ct=%q headers=%v ts=%v",
			d.MessageId, d.Type, d.DeliveryMode, d.ContentType, d.Headers, d.Timestamp)
	}
}

// TestStopLetsInFlightWorkFinish: Stop waits for a handler in progress, which is
// then acknowledged, so the message is not delivered again.
func TestStopLetsInFlightWorkFinish(t *testing.T) {
	url := testenv.RabbitMQ(t)
	b := connect(t, url)
	p := messaging.NewPublisher(b)
	defer p.Close()
	rec := newRecorder()
	rec.release = make(chan struct{})
	c := b.Consume(messaging.ConsumerConfig{Queue: workQueue.Name, Handler: rec.handle})
	publish(t, p, "slow", "work.done")
	eventually(t, "handler started", func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return len(rec.seen["slow"]) == 1 })

	stopped := make(chan error)
	go func() { stopped <- c.Stop(context.Background()) }()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a handler was running", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(rec.release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if rec.storedCount("slow") != 1 {
		t.Fatal("in-flight message not stored")
	}
	// Acknowledged: nothing is left for the next consumer.
	if n := queueDepth(t, url, workQueue.Name); n != 0 {
		t.Fatalf("%d messages back in the queue after a graceful stop", n)
	}
}

// TestBrokerOutage: while the broker is down Ready fails and publishes wait; after
// it is back both sides carry on and every message is handled.
func TestBrokerOutage(t *testing.T) {
	node := testenv.NewRabbitMQNode(t)
	b := connect(t, node.URL())
	rec := newRecorder()
	p := consumeWorkQueue(t, b, rec)
	publish(t, p, "before", "work.done")
	eventually(t, "first message", func() bool { return rec.storedCount("before") == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := node.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "not ready while down", func() bool { return b.Ready(ctx) != nil })

	const n = 20
	var confirmed atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("during-%d", i)
			for ctx.Err() == nil { // an outbox relay does the same: retry until confirmed
				if err := p.Publish(ctx, messaging.Message{ID: id, Type: "work.done", Body: []byte(`{}`), Mandatory: true}); err == nil {
					confirmed.Add(1)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	time.Sleep(time.Second)
	if got := confirmed.Load(); got != 0 {
		t.Fatalf("%d publishes confirmed while the broker was down", got)
	}
	if err := node.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("not ready after the broker came back: %v", err)
	}
	for i := range n {
		id := fmt.Sprintf("during-%d", i)
		eventually(t, id+" handled", func() bool { return rec.storedCount(id) >= 1 })
	}
}

// TestPublishedAppID: a message's app_id names the service that published it (Config.AppID),
// whatever the connection is called; without an AppID it is the connection's name.
func TestPublishedAppID(t *testing.T) {
	url := testenv.RabbitMQ(t)
	tests := []struct {
		name, connection, appID, want string
	}{
		{name: "AppID set", connection: "order (publish)", appID: "order", want: "order"},
		{name: "AppID empty", connection: "payment", want: "payment"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := messaging.Connect(messaging.Config{URL: url, Name: tt.connection, AppID: tt.appID,
				Topology: messaging.Topology{Queues: []messaging.Queue{workQueue}}})
			defer b.Close()
			p := messaging.NewPublisher(b)
			defer p.Close()
			id := fmt.Sprintf("app-%d", i)
			publish(t, p, id, "work.done")
			got := testenv.RabbitMQTake(t, url, workQueue.Name)
			if len(got) != 1 || got[0].MessageId != id || got[0].AppId != tt.want {
				t.Fatalf("took %d messages, want %s with app_id %q: %+v", len(got), id, tt.want, got)
			}
		})
	}
}

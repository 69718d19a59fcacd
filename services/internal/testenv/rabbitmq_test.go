package testenv_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// TestRabbitMQNodeStopStart checks what the outage tests rely on: a stopped node
// refuses connections, and after Start a durable queue and its persistent message
// are back.
func TestRabbitMQNodeStopStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	node := testenv.NewRabbitMQNode(t)

	conn, err := amqp.Dial(node.URL())
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("kept", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", "kept", false, false,
		amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(ctx); err != nil || !ok {
		t.Fatalf("confirm: ok=%v err=%v", ok, err)
	}
	_ = conn.Close()

	exited := node.Done()
	if err := node.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// The node's process is gone. (Not a failing dial: its port, free again, may be taken
	// by another test's node at once, which would answer.)
	select {
	case <-exited:
	default:
		t.Fatal("Stop returned while the node still ran")
	}
	if err := node.Start(ctx); err != nil {
		t.Fatal(err)
	}

	conn, err = amqp.Dial(node.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err = conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// A quorum queue elects its leader shortly after boot: poll briefly.
	var got amqp.Delivery
	var ok bool
	for i := 0; i < 100 && !ok; i++ {
		if got, ok, err = ch.Get("kept", true); err != nil {
			t.Fatal(err)
		}
		if !ok {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !ok || string(got.Body) != "hello" {
		t.Fatalf("after restart got ok=%v body=%q, want the persisted message", ok, got.Body)
	}
}

// TestRabbitMQVhostsAreIsolated checks that two callers' queues do not meet.
func TestRabbitMQVhostsAreIsolated(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	node := testenv.NewRabbitMQNode(t)
	messages := func(url string) int {
		conn, err := amqp.Dial(url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare("q", false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.Confirm(false); err != nil {
			t.Fatal(err)
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", "q", false, false, amqp.Publishing{Body: []byte("x")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dc.WaitContext(ctx); err != nil {
			t.Fatal(err)
		}
		q, err := ch.QueueDeclarePassive("q", false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		return q.Messages
	}
	a, err := node.NewVhost(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := node.NewVhost(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two calls returned the same vhost %s", a)
	}
	if n := messages(a); n != 1 {
		t.Fatalf("vhost a holds %d messages, want 1", n)
	}
	if n := messages(b); n != 1 {
		t.Fatalf("vhost b holds %d messages, want 1 (it saw vhost a's queue)", n)
	}
}

// TestRabbitMQLogsKeepTheirNames checks that a log folder kept between runs (make run's) holds
// the same files after the second node as after the first: the node's name is new at every
// start, and its logs would otherwise be a new pair of files each time.
func TestRabbitMQLogsKeepTheirNames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	logDir := t.TempDir()
	var after [][]string
	for range 2 {
		node, err := testenv.StartRabbitMQ(ctx, t.TempDir(), testenv.LogDir(logDir))
		if err != nil {
			t.Fatal(err)
		}
		node.Close()
		entries, err := os.ReadDir(logDir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		after = append(after, names)
	}
	if !slices.Equal(after[0], after[1]) {
		t.Errorf("log files after the first node %q, after the second %q; want the same", after[0], after[1])
	}
	if !slices.Contains(after[1], "rabbitmq-node.log") {
		t.Errorf("log files %q, want the node's own log, rabbitmq-node.log", after[1])
	}
}

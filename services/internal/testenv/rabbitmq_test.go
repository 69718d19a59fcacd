package testenv_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	const marker = "a line of an earlier run\n"
	for i := range 2 {
		if i == 1 {
			// The node's log starts empty with the node, as the other logs do.
			f, err := os.OpenFile(filepath.Join(logDir, "rabbitmq-node.log"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = f.WriteString(marker)
			_ = f.Close()
		}
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
	if log, err := os.ReadFile(filepath.Join(logDir, "rabbitmq-node.log")); err != nil || strings.Contains(string(log), marker) {
		t.Errorf("the second node's log holds the first run's lines (%v)", err)
	}
}

// A start given up (Ctrl-C in make run) ends within seconds, its node stopped, however
// far the node's boot had come: a VM still booting does not heed SIGTERM.
func TestRabbitMQStartGivenUp(t *testing.T) {
	// Given up within 100 ms, before this change, the node ignored SIGTERM and was waited
	// for a minute.
	for _, after := range []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 300 * time.Millisecond, 1500 * time.Millisecond} {
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), after)
		start := time.Now()
		node, err := testenv.StartRabbitMQ(ctx, dir, testenv.LogDir(t.TempDir()))
		cancel()
		if err == nil {
			node.Close()
			t.Fatalf("given up after %v, the start succeeded", after)
		}
		if took := time.Since(start); took > after+10*time.Second {
			t.Errorf("given up after %v, the start returned %v later", after, took-after)
		}
		// No process of the node is left: each names its data folder in its command line. A
		// killed VM may take a moment to exit on a busy machine, and the broker's short-lived
		// epmd-starter VM, in a session of its own, halts by itself: give them 10 s.
		var left []string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if left = processesNaming(dir); len(left) == 0 || time.Now().After(deadline) {
				break
			}
		}
		for _, p := range left {
			t.Errorf("given up after %v, a process is left: %s", after, p)
		}
	}
}

// processesNaming returns the live processes (not zombies) whose command line holds s: each
// as its PID and command line.
func processesNaming(s string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), s) {
			continue
		}
		// A zombie has an empty command line; state Z or X in stat is one being reaped.
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			// The state follows the command's name, in parentheses that may hold any byte.
			if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
				continue
			}
		}
		found = append(found, e.Name()+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return found
}

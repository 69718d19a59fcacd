package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopkeeper-dev/shopkeeper/internal/storeuri"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// startMongoDB returns MONGODB_URI when set, else starts FerretDB with its files in
// tmp/ferretdb (tmp is the log folder's .data) and its log in the log folder, and returns its URI.
func (s *suite) startMongoDB(ctx context.Context, tmp string) (string, error) {
	if uri := os.Getenv("MONGODB_URI"); uri != "" {
		fmt.Println("mongodb: MONGODB_URI from the environment")
		return uri, nil
	}
	f, err := testenv.StartFerretDB(ctx, filepath.Join(tmp, "ferretdb"), testenv.LogDir(s.logDir))
	if err != nil {
		return "", err
	}
	// Stopped after the services (cleanups run once the children have stopped).
	s.cleanups = append(s.cleanups, f.Stop)
	s.watch("ferretdb", f.Done(), filepath.Join(s.logDir, "ferretdb.log"))
	fmt.Printf("mongodb: FerretDB at %s\n", f.URI)
	return f.URI, nil
}

// startRabbitMQ returns RABBITMQ_URL when set, else starts a private node (its own
// name, loopback ports, epmd and folders under tmp/rabbitmq, its logs in the log
// folder) and returns its URL.
func (s *suite) startRabbitMQ(ctx context.Context, tmp string) (string, error) {
	if u := os.Getenv("RABBITMQ_URL"); u != "" {
		// The services wait for a broker they cannot reach and count it as optional in
		// their readiness: the suite would look healthy while every order stays PENDING.
		// One connection now says at once whether the URL works.
		// In a goroutine: the client's dial heeds no context, and Ctrl-C must not wait out its
		// 10 s on a port that takes connections and never answers.
		type dialed struct {
			conn *amqp.Connection
			err  error
		}
		done := make(chan dialed, 1)
		go func() {
			conn, err := amqp.DialConfig(u, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
			done <- dialed{conn, err}
		}()
		var d dialed
		select {
		case d = <-done:
		case <-ctx.Done():
			go func() {
				if d := <-done; d.conn != nil {
					_ = d.conn.Close()
				}
			}()
			return "", ctx.Err()
		}
		if d.err != nil {
			return "", fmt.Errorf("RABBITMQ_URL: cannot connect: %w", storeuri.RedactError(d.err, u))
		}
		_ = d.conn.Close()
		fmt.Println("rabbitmq: RABBITMQ_URL from the environment")
		return u, nil
	}
	dir := filepath.Join(tmp, "rabbitmq")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	node, err := testenv.StartRabbitMQ(ctx, dir, testenv.LogDir(s.logDir))
	if err != nil {
		if ctx.Err() != nil {
			return "", err // stopped while it started: no hint needed
		}
		return "", fmt.Errorf("%w (or set RABBITMQ_URL)", err)
	}
	s.cleanups = append(s.cleanups, func() error { node.Close(); return nil })
	s.watch("rabbitmq", node.Done(), filepath.Join(s.logDir, "rabbitmq.log"))
	fmt.Printf("rabbitmq: private node at %s\n", node.URL())
	return node.URL(), nil
}

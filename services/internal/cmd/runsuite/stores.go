package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopkeeper-dev/shopkeeper/internal/storeuri"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// startMongoDB returns MONGODB_URI when set, else starts FerretDB with its files in
// tmp/ferretdb (tmp is the log folder's .data) and its log in the log folder, and returns its URI.
func (s *suite) startMongoDB(ctx context.Context, tmp string) (string, error) {
	if uri := os.Getenv("MONGODB_URI"); uri != "" {
		// As the first service gets it (storeEnv): its MONGODB_DATABASE, not the URI's
		// path (where credentials are checked) or a MONGODB_DATABASE of this shell's.
		if err := checkMongoDB(ctx, append(os.Environ(), storeEnv(uri, services[0].database)...)); err != nil {
			return "", err
		}
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

// checkMongoDB connects to the server the MONGODB_URI of environ names as each service does
// at its start (mongodb.Connect, within the same MONGODB_CONNECT_TIMEOUT): environ is a
// service's, MONGODB_DATABASE included, which names the database it lists. Otherwise a URI
// that does not parse, or names no server that answers, would be found only once the broker
// had started, as "user exited early", half a minute after the start.
func checkMongoDB(ctx context.Context, environ []string) error {
	var cfg struct{ MongoDB mongodb.Config }
	if err := config.LoadFrom(&cfg, environ); err != nil {
		return err
	}
	db, err := mongodb.Connect(ctx, cfg.MongoDB, "users")
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // interrupted: run says so
		}
		return fmt.Errorf("MONGODB_URI: cannot connect: %w", err)
	}
	_ = db.Client().Disconnect(context.WithoutCancel(ctx))
	return nil
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

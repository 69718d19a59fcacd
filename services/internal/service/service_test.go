package service_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/service"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childMode); mode != "" {
		runChild(mode)
		return
	}
	testenv.Main(m)
}

type testConfig struct {
	config.Base
	Mongo mongodb.Config
}

func TestStartRefusesBadEnvironment(t *testing.T) {
	t.Setenv("SHUTDOWN_TIMEOUT", "forever")
	var cfg testConfig
	_, err := service.Start(context.Background(), "test", &cfg)
	if err == nil || !strings.Contains(err.Error(), "SHUTDOWN_TIMEOUT") {
		t.Errorf("Start = %v, want an error naming SHUTDOWN_TIMEOUT", err)
	}
}

func TestCloseRunsCleanupsLastFirst(t *testing.T) {
	t.Setenv("MONGODB_URI", testenv.MongoURI(t))
	var cfg testConfig
	ctx, cancel := context.WithCancel(context.Background())
	rt, err := service.Start(ctx, "test", &cfg)
	if err != nil {
		t.Fatal(err)
	}
	db, err := rt.MongoDB(ctx, cfg.Mongo, "test")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	rt.OnClose(func(context.Context) error { order = append(order, "first"); return nil })
	rt.OnClose(func(ctx context.Context) error {
		if ctx.Err() != nil {
			t.Error("cleanup got an ended context")
		}
		order = append(order, "second")
		return errors.New("a cleanup failed")
	})
	cancel() // as on SIGTERM: cleanups still get time
	if err := rt.Close(); err == nil || !strings.Contains(err.Error(), "a cleanup failed") {
		t.Errorf("Close = %v, want the failed cleanup's error", err)
	}

	if !slices.Equal(order, []string{"second", "first"}) {
		t.Errorf("cleanups ran in order %v", order)
	}
	if err := db.Client().Ping(context.Background(), nil); !errors.Is(err, mongo.ErrClientDisconnected) {
		t.Errorf("after Close, ping = %v, want the client disconnected", err)
	}
}

// TestCloseSharesTheShutdownTimeout: the cleanups get what the shutdown that began with
// the context's end has left, not a whole timeout of their own after the HTTP drain, so
// that the pod's termination grace period covers the whole shutdown.
func TestCloseSharesTheShutdownTimeout(t *testing.T) {
	t.Setenv("SHUTDOWN_TIMEOUT", "2s")
	t.Setenv("MONGODB_URI", "mongodb://127.0.0.1:1/") // required; never dialled here
	var cfg testConfig
	ctx, cancel := context.WithCancel(context.Background())
	rt, err := service.Start(ctx, "test", &cfg)
	if err != nil {
		t.Fatal(err)
	}
	var deadline time.Time
	rt.OnClose(func(ctx context.Context) error { deadline, _ = ctx.Deadline(); return nil })
	stopped := time.Now()
	cancel()
	time.Sleep(500 * time.Millisecond) // the HTTP server's drain
	if err := rt.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if want := stopped.Add(2 * time.Second); deadline.Before(want.Add(-200*time.Millisecond)) || deadline.After(want.Add(200*time.Millisecond)) {
		t.Errorf("cleanups' deadline %s after the stop, want 2s", deadline.Sub(stopped))
	}
}

// fakeService answers every request with its database's name and checks, when it is
// closed, that the database is still connected; then it returns what stop returns (nil
// when stop is nil).
type fakeService struct {
	t      *testing.T
	db     *mongo.Database
	closed chan struct{}
	stop   func(ctx context.Context) error
}

func (f *fakeService) Handler(*prometheus.Registry) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, f.db.Name()) })
}

func (f *fakeService) Close(ctx context.Context) error {
	if err := f.db.Client().Ping(ctx, nil); err != nil {
		f.t.Errorf("the service closed after its database: ping = %v", err)
	}
	close(f.closed)
	if f.stop == nil {
		return nil
	}
	return f.stop(ctx)
}

// TestRunWithMongoDB serves a service until its context ends (SIGTERM), then closes it
// before the database; a close that fails or outlasts SHUTDOWN_TIMEOUT (consumers that do
// not stop) is returned, so the process exits non-zero as for an HTTP drain that timed out.
func TestRunWithMongoDB(t *testing.T) {
	tests := []struct {
		name    string
		stop    func(ctx context.Context) error
		wantErr error
	}{
		{"graceful", nil, nil},
		{"close fails", func(context.Context) error { return errBrokerGone }, errBrokerGone},
		{"close outlasts the timeout", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &fakeService{t: t, closed: make(chan struct{}), stop: tt.stop}
			err := runUntilStopped(t, svc)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("RunWithMongoDB = %v, want %v", err, tt.wantErr)
			}
			select {
			case <-svc.closed:
			default:
				t.Error("the service was not closed")
			}
		})
	}
}

var errBrokerGone = errors.New("broker gone")

// runUntilStopped runs svc with RunWithMongoDB, checks that it serves, ends its context and
// returns what RunWithMongoDB returned.
func runUntilStopped(t *testing.T, svc *fakeService) error {
	t.Helper()
	ports, err := testproc.FreeLoopbackPorts(1)
	if err != nil {
		t.Fatal(err)
	}
	port := ports[0]
	t.Setenv("PORT", strconv.Itoa(port))
	t.Setenv("MONGODB_URI", testenv.MongoURI(t))
	t.Setenv("SHUTDOWN_TIMEOUT", "1s")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var cfg testConfig
	done := make(chan error, 1)
	go func() {
		done <- service.RunWithMongoDB(ctx, "test", "fallback-db", &cfg, &cfg.Mongo,
			func(_ context.Context, db *mongo.Database, _ *slog.Logger) (service.Service, error) {
				svc.db = db
				return svc, nil
			})
	}()

	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/anything"
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		res, err := http.Get(url) //nolint:noctx // a test's short poll
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		body = string(b)
		break
	}
	if body != "fallback-db" {
		t.Fatalf("served %q, want the default database's name (the URI names none)", body)
	}

	cancel() // as on SIGTERM
	select {
	case err := <-done:
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("RunWithMongoDB did not return after its context ended")
		return nil
	}
}

func TestRunWithMongoDBReturnsBuildError(t *testing.T) {
	t.Setenv("PORT", "8080") // never listened on: the build fails first
	t.Setenv("MONGODB_URI", testenv.MongoURI(t))
	var cfg testConfig
	want := errors.New("broker unreachable")
	err := service.RunWithMongoDB(context.Background(), "test", "db", &cfg, &cfg.Mongo,
		func(context.Context, *mongo.Database, *slog.Logger) (service.Service, error) { return nil, want })
	if !errors.Is(err, want) {
		t.Errorf("RunWithMongoDB = %v, want the build's error", err)
	}
}

// Package service is the life of a service binary, written once: main's signal
// handling and exit code, and the first steps of run (configuration, logger, tracing,
// database) with their cleanup in reverse order.
//
//	func main() { service.Main("user", run) }
//
//	func run(ctx context.Context) (err error) {
//		var cfg Config // embeds config.Base
//		rt, err := service.Start(ctx, "user", &cfg)
//		if err != nil {
//			return err
//		}
//		defer func() { err = errors.Join(err, rt.Close()) }() // run returns (err error)
//		db, err := rt.MongoDB(ctx, cfg.Mongo, "users")
//		...
//		return web.Serve(ctx, handler, cfg.Base, rt.Logger)
//	}
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// Main runs a service binary: run's context ends on SIGTERM or SIGINT; an error is
// printed as "name: error" and the process exits 1. The first signal starts a graceful
// shutdown; a second one ends the process at once (the signals' default handling is back
// once the first arrived), for an operator who will not wait.
func Main(name string, run func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-signals
		// The default handling is back before the shutdown begins, so that no second
		// signal can come in between and be swallowed.
		signal.Stop(signals)
		cancel()
	}()
	err := run(ctx)
	signal.Stop(signals)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Configuration is a service's config struct: it embeds config.Base.
type Configuration interface {
	Settings() config.Base
}

// Runtime is what Start made; Close releases it.
type Runtime struct {
	// Logger is the service's JSON logger at the configured level.
	Logger *slog.Logger

	ctx     context.Context
	base    config.Base
	closers []func(context.Context) error

	mu sync.Mutex
	// stopBy is when the shutdown that began as ctx ended must be over: the HTTP server's
	// drain and the closers share one ShutdownTimeout, which the pod's termination grace
	// period is sized for.
	stopBy time.Time
}

// Start loads cfg from the environment (config.Load), makes the service's logger and
// sets up tracing from the OTEL_* variables.
func Start(ctx context.Context, name string, cfg Configuration) (*Runtime, error) {
	if err := config.Load(cfg); err != nil {
		return nil, err
	}
	base := cfg.Settings()
	return NewRuntime(ctx, name, base, logging.New(name, base.LogLevel))
}

// NewRuntime is Start for a service that loaded its configuration, whose settings are
// base, and made its logger, log, itself (the gateway, whose log lines are batched): it
// sets up tracing from the OTEL_* variables, and the shutdown's deadline from ctx's end.
func NewRuntime(ctx context.Context, name string, base config.Base, log *slog.Logger) (*Runtime, error) {
	rt := &Runtime{Logger: log, ctx: ctx, base: base}
	context.AfterFunc(ctx, func() {
		rt.mu.Lock()
		defer rt.mu.Unlock()
		rt.stopBy = time.Now().Add(base.ShutdownTimeout)
	})
	tracing.SetLogger(rt.Logger)
	shutdownTracing, err := tracing.Setup(ctx, name)
	if err != nil {
		return nil, err
	}
	rt.OnClose(shutdownTracing)
	return rt, nil
}

// MongoDB connects to cfg's database (mongodb.Connect) and disconnects on Close.
func (rt *Runtime) MongoDB(ctx context.Context, cfg mongodb.Config, defaultDatabase string) (*mongo.Database, error) {
	db, err := mongodb.Connect(ctx, cfg, defaultDatabase)
	if err != nil {
		return nil, err
	}
	rt.OnClose(db.Client().Disconnect)
	return db, nil
}

// OnClose registers f to run in Close; the last registered runs first.
func (rt *Runtime) OnClose(f func(context.Context) error) {
	rt.closers = append(rt.closers, f)
}

// Close runs the registered cleanups, last first, and returns (and logs) what failed, so
// that a shutdown step that fails or runs out of time makes the exit code non-zero. They get
// what is left of the shutdown timeout that began when Start's context ended (the HTTP
// server's drain has used the rest), or the whole timeout when it has not ended.
func (rt *Runtime) Close() error {
	rt.mu.Lock()
	stopBy := rt.stopBy
	rt.mu.Unlock()
	if stopBy.IsZero() {
		stopBy = time.Now().Add(rt.base.ShutdownTimeout)
	}
	ctx, cancel := context.WithDeadline(context.WithoutCancel(rt.ctx), stopBy)
	defer cancel()
	var errs []error
	for _, f := range slices.Backward(rt.closers) {
		errs = append(errs, f(ctx))
	}
	rt.closers = nil
	err := errors.Join(errs...)
	if err != nil {
		rt.Logger.Error("shutdown", slog.String("error", err.Error()))
		err = fmt.Errorf("shutdown: %w", err)
	}
	return err
}

// Service is what a service that keeps its state in MongoDB builds once its
// configuration is loaded and its database connected: the HTTP handler it serves, and
// what must close before the database does (consumers finishing their in-flight
// messages, relays, background writes).
type Service interface {
	Handler(reg *prometheus.Registry) http.Handler
	Close(ctx context.Context) error
}

// Funcs is a Service made of a function building its handler and, unless nil, a
// function closing what it runs in the background.
func Funcs(handler func(reg *prometheus.Registry) http.Handler, close func(ctx context.Context) error) Service {
	return funcs{handler: handler, close: close}
}

type funcs struct {
	handler func(*prometheus.Registry) http.Handler
	close   func(context.Context) error
}

func (f funcs) Handler(reg *prometheus.Registry) http.Handler { return f.handler(reg) }

func (f funcs) Close(ctx context.Context) error {
	if f.close == nil {
		return nil
	}
	return f.close(ctx)
}

// RunWithMongoDB is the whole life of such a service: Start with cfg, connect the
// database *mongoCfg names (a field of cfg, filled when cfg is loaded; defaultDatabase
// when its URI names none), build the service, serve it until ctx ends, then close it
// before the database. The HTTP drain and the closing share one SHUTDOWN_TIMEOUT, counted
// from ctx's end; any of them that fails or runs out of time is in the error returned.
func RunWithMongoDB(ctx context.Context, name, defaultDatabase string, cfg Configuration, mongoCfg *mongodb.Config,
	build func(ctx context.Context, db *mongo.Database, log *slog.Logger) (Service, error),
) (err error) {
	rt, err := Start(ctx, name, cfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, rt.Close()) }()

	db, err := rt.MongoDB(ctx, *mongoCfg, defaultDatabase)
	if err != nil {
		return err
	}
	svc, err := build(ctx, db, rt.Logger)
	if err != nil {
		return err
	}
	// Closers run last first: the service closes before the database it writes to.
	rt.OnClose(svc.Close)
	return web.Serve(ctx, svc.Handler(metrics.NewRegistry()), cfg.Settings(), rt.Logger)
}

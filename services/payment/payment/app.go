package payment

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/health"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging/outbox"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// Config is the payment service's configuration, read from the environment.
type Config struct {
	config.Base
	Mongo  mongodb.Config
	Broker messaging.Settings
	// LimitCents is the simulated provider's limit: larger amounts are declined.
	LimitCents int64 `env:"PAYMENT_LIMIT_CENTS" envDefault:"100000"`
	// Prefetch is how many orders are charged at once.
	Prefetch int `env:"CONSUMER_PREFETCH" envDefault:"64"`
}

// App is a running payment service: order.created consumer, outbox relay, HTTP API.
type App struct {
	store  *store
	db     *mongo.Database
	worker *outbox.Worker
	log    *slog.Logger
}

// New builds the service on db, connects to the broker in the background and starts
// charging orders.
func New(ctx context.Context, cfg Config, db *mongo.Database, log *slog.Logger) (*App, error) {
	st, err := newStore(ctx, db)
	if err != nil {
		return nil, err
	}
	w := outbox.NewWorker(outbox.WorkerConfig{
		Broker: cfg.Broker, Name: "payment", Outbox: st.payments, Locks: &st.locks, Writes: st.writes,
		Queue: messaging.PaymentOrderCreated.Name, Prefetch: cfg.Prefetch, Logger: log,
	})
	c := &charger{store: st, provider: provider{limitCents: cfg.LimitCents}, relay: w, log: log}
	w.Start(c.handleOrderCreated)
	return &App{store: st, db: db, worker: w, log: log}, nil
}

// Handler serves GET /payments… with /healthz, /readyz (the store; the broker is reported but optional: its events wait in the outbox) and /metrics.
func (a *App) Handler(reg *prometheus.Registry) http.Handler {
	mux := web.NewMux(a.log, reg)
	a.routes(mux)
	health.Register(mux, mongodb.Check(a.db), health.Check{Name: "rabbitmq", Run: a.worker.Ready, Optional: true})
	mux.Handle("GET /metrics", metrics.Handler(reg))
	return mux
}

// WaitReady waits until the app's broker connections are open, or ctx ends (tests wait
// for it).
func (a *App) WaitReady(ctx context.Context) error { return a.worker.WaitReady(ctx) }

// Close stops charging (charges in flight finish), stops the relay and closes the
// broker connection, within ctx.
func (a *App) Close(ctx context.Context) error { return a.worker.Close(ctx) }

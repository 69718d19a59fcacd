package order

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

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

// Config is the order service's configuration, read from the environment.
type Config struct {
	config.Base
	Mongo  mongodb.Config
	Broker messaging.Settings
	// UserServiceURL, ProductServiceURL and PaymentServiceURL are the peers' base URLs.
	UserServiceURL    string `env:"USER_SERVICE_URL" envDefault:"http://user:8080"`
	ProductServiceURL string `env:"PRODUCT_SERVICE_URL" envDefault:"http://product:8080"`
	PaymentServiceURL string `env:"PAYMENT_SERVICE_URL" envDefault:"http://payment:8080"`
	// PeerTimeout bounds each call to a peer.
	PeerTimeout time.Duration `env:"PEER_TIMEOUT" envDefault:"5s"`
	// PlacementTimeout bounds POST /orders up to its answer, peer calls included; the peer
	// calls end a store margin (storeMargin) before it, leaving the order's write the rest. Its
	// default stays 2 s below the gateway's UPSTREAM_TIMEOUT default (10s), so that a
	// client behind the gateway gets the order service's answer (a 503 when a peer
	// hangs: nothing placed, send it again), not the gateway's 504 (the order may exist).
	PlacementTimeout time.Duration `env:"PLACEMENT_TIMEOUT" envDefault:"8s"`
	// PendingCheckAfter is how long an order stays PENDING before the sweep asks the
	// payment service for its payment (pending.go): its result event may have been lost.
	PendingCheckAfter time.Duration `env:"PENDING_CHECK_AFTER" envDefault:"2m"`
	// Prefetch is how many payment results are handled at once.
	Prefetch int `env:"CONSUMER_PREFETCH" envDefault:"64"`
}

// App is a running order service: HTTP API, payment-result consumer, outbox relay.
type App struct {
	svc    *service
	db     *mongo.Database
	worker *outbox.Worker
	log    *slog.Logger

	stopSweep context.CancelFunc
	swept     chan struct{} // closed when the sweeps have stopped
}

// New builds the service on db and connects to the broker (in the background: the
// service runs, not ready, while the broker is down), then starts consuming.
func New(ctx context.Context, cfg Config, db *mongo.Database, log *slog.Logger) (*App, error) {
	st, err := newStore(ctx, db)
	if err != nil {
		return nil, err
	}
	p, err := newPeers(cfg.UserServiceURL, cfg.ProductServiceURL, cfg.PaymentServiceURL, cfg.PeerTimeout)
	if err != nil {
		return nil, err
	}
	w := outbox.NewWorker(outbox.WorkerConfig{
		Broker: cfg.Broker, Name: "order", Outbox: st.orders, Locks: &st.locks, Writes: st.writes,
		// order.created is published before its payment result comes back, which
		// settles the order: that write removes it.
		RemovalDelay: 2 * time.Second,
		Queue:        messaging.OrderPaymentResults.Name, Prefetch: cfg.Prefetch, Logger: log,
	})
	svc := &service{store: st, peers: p, relay: w, log: log, budget: cfg.PlacementTimeout, pendingAge: cfg.PendingCheckAfter,
		now: func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }}
	w.Start(svc.handlePaymentResult)
	sweepCtx, stopSweep := context.WithCancel(context.WithoutCancel(ctx))
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		var sweeps sync.WaitGroup
		sweeps.Go(func() { svc.sweepEvery(sweepCtx, sweepInterval, sweepAge) })
		// Apart, so that a slow payment service holds back no placement or release.
		sweeps.Go(func() { svc.sweepPendingEvery(sweepCtx, sweepInterval) })
		sweeps.Wait()
	}()
	return &App{svc: svc, db: db, worker: w, log: log, stopSweep: stopSweep, swept: swept}, nil
}

// Sweep finishes now every placement made before olderThan ago that no request is placing
// (see placement), and returns how many; the app sweeps by itself every 30 s, for up to 10 s.
func (a *App) Sweep(ctx context.Context, olderThan time.Duration) (int, error) {
	return a.svc.sweep(ctx, olderThan, 0)
}

// SweepReleases finishes now the pending stock releases of cancelled orders recorded
// before olderThan ago (see pendingRelease), and returns how many records it removed; the
// app sweeps them by itself every 30 s.
func (a *App) SweepReleases(ctx context.Context, olderThan time.Duration) (int, error) {
	return a.svc.sweepReleases(ctx, olderThan)
}

// SweepPending settles now the orders PENDING since before olderThan ago whose payment the
// payment service holds, and sends again the order.created of those with none PENDING
// since before resendAfter ago, in one whole pass over them (see sweepPending); it returns
// how many it settled. The app sweeps those PENDING for over PENDING_CHECK_AFTER by itself
// (resendAfter five times that) every 30 s.
func (a *App) SweepPending(ctx context.Context, olderThan, resendAfter time.Duration) (int, error) {
	return a.svc.sweepPending(ctx, &pendingPass{}, olderThan, resendAfter, 0)
}

// Handler serves the HTTP API with /healthz, /readyz (the store; the broker is reported but optional: its events wait in the outbox) and /metrics.
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

// Close stops the sweep, waits for the stock releases that outlived their requests, stops
// consuming, letting the results in flight finish, stops the relay and closes the broker
// connection, within ctx. A release cut short is the sweep's after a restart.
func (a *App) Close(ctx context.Context) error {
	a.stopSweep()
	released := make(chan struct{})
	go func() {
		a.svc.background.Wait()
		close(released)
	}()
	for _, done := range []<-chan struct{}{a.swept, released} {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	return a.worker.Close(ctx)
}

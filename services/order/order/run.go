package order

import (
	"context"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	// Named kit: this package has a type service of its own.
	kit "github.com/shopkeeper-dev/shopkeeper/services/internal/service"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// Run runs the order service as its binary does: configuration from the environment,
// the database, the broker and the HTTP server, until ctx ends (SIGTERM), then a
// graceful stop.
func Run(ctx context.Context) error {
	var cfg Config
	rt, err := kit.Start(ctx, "order", &cfg)
	if err != nil {
		return err
	}
	defer rt.Close()

	db, err := rt.MongoDB(ctx, cfg.Mongo, "orders")
	if err != nil {
		return err
	}
	app, err := New(ctx, cfg, db, rt.Logger)
	if err != nil {
		return err
	}
	// Closed before the database: in-flight messages finish and their effects are stored.
	rt.OnClose(app.Close)
	return web.Serve(ctx, app.Handler(metrics.NewRegistry()), cfg.Base, rt.Logger)
}

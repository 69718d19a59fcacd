// Command order is the shop's order service: POST/GET /orders. It publishes
// order.created through an outbox and settles orders from payment results.
package main

import (
	"context"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/service"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
)

func main() { service.Main("order", run) }

func run(ctx context.Context) error {
	var cfg order.Config
	rt, err := service.Start(ctx, "order", &cfg)
	if err != nil {
		return err
	}
	defer rt.Close()

	db, err := rt.MongoDB(ctx, cfg.Mongo, "orders")
	if err != nil {
		return err
	}
	app, err := order.New(ctx, cfg, db, rt.Logger)
	if err != nil {
		return err
	}
	// Closed before the database: in-flight messages finish and their effects are stored.
	rt.OnClose(app.Close)
	return web.Serve(ctx, app.Handler(metrics.NewRegistry()), cfg.Base, rt.Logger)
}

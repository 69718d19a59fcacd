// Command payment is the shop's payment service: it charges each order once when
// order.created arrives and serves GET /payments.
package main

import (
	"context"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/service"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
	"github.com/shopkeeper-dev/shopkeeper/services/payment/payment"
)

func main() { service.Main("payment", run) }

func run(ctx context.Context) error {
	var cfg payment.Config
	rt, err := service.Start(ctx, "payment", &cfg)
	if err != nil {
		return err
	}
	defer rt.Close()

	db, err := rt.MongoDB(ctx, cfg.Mongo, "payments")
	if err != nil {
		return err
	}
	app, err := payment.New(ctx, cfg, db, rt.Logger)
	if err != nil {
		return err
	}
	// Closed before the database: in-flight messages finish and their effects are stored.
	rt.OnClose(app.Close)
	return web.Serve(ctx, app.Handler(metrics.NewRegistry()), cfg.Base, rt.Logger)
}

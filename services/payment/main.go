// Command payment is the shop's payment service: it charges each order once when
// order.created arrives and serves GET /payments.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
	"github.com/shopkeeper-dev/shopkeeper/services/payment/payment"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "payment:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg payment.Config
	if err := config.Load(&cfg); err != nil {
		return err
	}
	log := logging.New("payment", cfg.LogLevel)
	shutdownTracing, err := tracing.Setup(ctx, "payment")
	if err != nil {
		return err
	}
	defer func() { _ = shutdownTracing(context.WithoutCancel(ctx)) }()

	db, err := mongodb.Connect(ctx, cfg.Mongo, "payments")
	if err != nil {
		return err
	}
	defer func() { _ = db.Client().Disconnect(context.WithoutCancel(ctx)) }()

	app, err := payment.New(ctx, cfg, db, log)
	if err != nil {
		return err
	}
	err = web.Serve(ctx, app.Handler(metrics.NewRegistry()), cfg.Base, log)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	return errors.Join(err, app.Close(sctx))
}

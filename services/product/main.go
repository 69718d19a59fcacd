// Command product is the shop's product service: the catalogue (CRUD /products) and
// the stock reservations the order service makes (/internal/reservations). Its API is
// openapi.yaml; it stores in MongoDB or FerretDB.
package main

import (
	"context"
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
	"github.com/shopkeeper-dev/shopkeeper/services/product/httpapi"
	"github.com/shopkeeper-dev/shopkeeper/services/product/store"
)

// Config is the product service's configuration, read from the environment.
type Config struct {
	config.Base
	Mongo mongodb.Config
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "product:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg Config
	if err := config.Load(&cfg); err != nil {
		return err
	}
	log := logging.New("product", cfg.LogLevel)

	shutdownTracing, err := tracing.Setup(ctx, "product")
	if err != nil {
		return err
	}
	defer func() { _ = shutdownTracing(context.WithoutCancel(ctx)) }()

	db, err := mongodb.Connect(ctx, cfg.Mongo, "products")
	if err != nil {
		return err
	}
	defer func() { _ = db.Client().Disconnect(context.WithoutCancel(ctx)) }()

	st := store.New(db)
	// Deferred after the disconnect, so it runs first: background hold removals finish.
	defer st.Wait()
	h := httpapi.NewHandler(st, log, metrics.NewRegistry(), mongodb.Check(db))
	return web.Serve(ctx, h, cfg.Base, log)
}

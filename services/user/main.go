// Command user is the shop's user service: its customers (CRUD /users) with unique
// emails. Its API is openapi.yaml; it stores in MongoDB or FerretDB (MONGODB_URI).
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
	"github.com/shopkeeper-dev/shopkeeper/services/user/httpapi"
	"github.com/shopkeeper-dev/shopkeeper/services/user/store"
)

// Config is the user service's configuration, read from the environment.
type Config struct {
	config.Base
	Mongo mongodb.Config
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "user:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg Config
	if err := config.Load(&cfg); err != nil {
		return err
	}
	log := logging.New("user", cfg.LogLevel)

	shutdownTracing, err := tracing.Setup(ctx, "user")
	if err != nil {
		return err
	}
	defer func() { _ = shutdownTracing(context.WithoutCancel(ctx)) }()

	db, err := mongodb.Connect(ctx, cfg.Mongo, "users")
	if err != nil {
		return err
	}
	defer func() { _ = db.Client().Disconnect(context.WithoutCancel(ctx)) }()

	users := store.New(db)
	if err := users.EnsureIndexes(ctx); err != nil {
		return err
	}
	h := httpapi.NewHandler(users, log, metrics.NewRegistry(), mongodb.Check(db))
	return web.Serve(ctx, h, cfg.Base, log)
}

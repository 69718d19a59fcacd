// Package app runs the product service: it wires the store, the catalogue's HTTP API
// and the service kit together, so that the product binary and a binary running several
// services call the same Run.
package app

import (
	"context"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/service"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
	"github.com/shopkeeper-dev/shopkeeper/services/product/httpapi"
	"github.com/shopkeeper-dev/shopkeeper/services/product/store"
)

// Config is the product service's configuration, read from the environment.
type Config struct {
	config.Base
	Mongo mongodb.Config
}

// Run runs the product service as its binary does: configuration from the environment,
// the database and the HTTP server, until ctx ends (SIGTERM), then a graceful stop.
func Run(ctx context.Context) error {
	var cfg Config
	rt, err := service.Start(ctx, "product", &cfg)
	if err != nil {
		return err
	}
	defer rt.Close()

	db, err := rt.MongoDB(ctx, cfg.Mongo, "products")
	if err != nil {
		return err
	}
	st := store.New(db)
	// Registered after the database, so it runs before the disconnect: background hold
	// removals finish first.
	rt.OnClose(func(context.Context) error { st.Wait(); return nil })
	h := httpapi.NewHandler(st, rt.Logger, metrics.NewRegistry(), mongodb.Check(db))
	return web.Serve(ctx, h, cfg.Base, rt.Logger)
}

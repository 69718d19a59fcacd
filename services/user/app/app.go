// Package app runs the user service: its customers (CRUD /users) with unique emails,
// stored in MongoDB or FerretDB (MONGODB_URI). Its API is ../openapi.yaml. Run is what
// both the service's own command and the multi-call binary of the services image call.
package app

import (
	"context"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/service"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
	"github.com/shopkeeper-dev/shopkeeper/services/user/httpapi"
	"github.com/shopkeeper-dev/shopkeeper/services/user/store"
)

// Name is the service's name in logs, traces and metrics.
const Name = "user"

// Config is the user service's configuration, read from the environment.
type Config struct {
	config.Base
	Mongo mongodb.Config
}

// Run serves the user service until ctx ends, then shuts it down gracefully.
func Run(ctx context.Context) error {
	var cfg Config
	rt, err := service.Start(ctx, Name, &cfg)
	if err != nil {
		return err
	}
	defer rt.Close()

	db, err := rt.MongoDB(ctx, cfg.Mongo, "users")
	if err != nil {
		return err
	}
	users := store.New(db)
	if err := users.EnsureIndexes(ctx); err != nil {
		return err
	}
	h := httpapi.NewHandler(users, rt.Logger, metrics.NewRegistry(), mongodb.Check(db))
	return web.Serve(ctx, h, cfg.Base, rt.Logger)
}

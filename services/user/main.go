// Command user is the shop's user service: its customers (CRUD /users) with unique
// emails. Its API is openapi.yaml; it stores in MongoDB or FerretDB (MONGODB_URI).
package main

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

// Config is the user service's configuration, read from the environment.
type Config struct {
	config.Base
	Mongo mongodb.Config
}

func main() { service.Main("user", run) }

func run(ctx context.Context) error {
	var cfg Config
	rt, err := service.Start(ctx, "user", &cfg)
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

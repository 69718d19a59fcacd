// Package app runs the user service: its customers (CRUD /users) with unique emails,
// stored in MongoDB or FerretDB (MONGODB_URI). Its API is ../openapi.yaml. Run is what
// both the service's own command and the multi-call binary of the services image call.
package app

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/service"
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
	return service.RunWithMongoDB(ctx, Name, "users", &cfg, &cfg.Mongo,
		func(ctx context.Context, db *mongo.Database, log *slog.Logger) (service.Service, error) {
			users := store.New(db)
			if err := users.EnsureIndexes(ctx); err != nil {
				return nil, err
			}
			if err := users.MigrateEmails(ctx, log); err != nil {
				return nil, err
			}
			return service.Funcs(func(reg *prometheus.Registry) http.Handler {
				return httpapi.NewHandler(users, log, reg, mongodb.Check(db))
			}, nil), nil
		})
}

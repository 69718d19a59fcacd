// Package app runs the product service: it wires the store, the catalogue's HTTP API
// and the service kit together, so that the product binary and a binary running several
// services call the same Run.
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
	return service.RunWithMongoDB(ctx, "product", "products", &cfg, &cfg.Mongo,
		func(_ context.Context, db *mongo.Database, log *slog.Logger) (service.Service, error) {
			st := store.New(db)
			return service.Funcs(
				func(reg *prometheus.Registry) http.Handler {
					return httpapi.NewHandler(st, log, reg, mongodb.Check(db))
				},
				// Closed before the database: background hold removals finish first, or
				// are cut at the shutdown's deadline (an error: exit code 1).
				st.Wait,
			), nil
		})
}

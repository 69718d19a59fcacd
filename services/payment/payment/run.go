package payment

import (
	"context"
	"log/slog"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/service"
)

// Run runs the payment service as its binary does: configuration from the environment,
// the database, the broker and the HTTP server, until ctx ends (SIGTERM), then a
// graceful stop in which in-flight messages finish and their effects are stored.
func Run(ctx context.Context) error {
	var cfg Config
	return service.RunWithMongoDB(ctx, "payment", "payments", &cfg, &cfg.Mongo,
		func(ctx context.Context, db *mongo.Database, log *slog.Logger) (service.Service, error) {
			app, err := New(ctx, cfg, db, log)
			if err != nil {
				return nil, err // not a nil *App in a non-nil interface
			}
			return app, nil
		})
}

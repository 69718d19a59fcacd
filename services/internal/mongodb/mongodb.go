// Package mongodb connects a service to its MongoDB-wire database (MongoDB or FerretDB)
// with mongo-driver v2, creates its indexes at start, reports readiness, and holds the
// helpers every store shares: string ids over ObjectIDs and the contract's pagination.
package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/shopkeeper-dev/shopkeeper/internal/storeuri"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/health"
)

// Config says where the database is. Embed it in a service's config.
type Config struct {
	// URI is the connection string; its path may name the database.
	URI string `env:"MONGODB_URI"`
	// LegacyURL is the seed's name for URI, used when URI is empty.
	LegacyURL string `env:"MONGODB_URL"`
	// Database overrides the database named in the URI's path.
	Database string `env:"MONGODB_DATABASE"`
	// ConnectTimeout bounds dialing and server selection.
	ConnectTimeout time.Duration `env:"MONGODB_CONNECT_TIMEOUT" envDefault:"10s"`
	// OperationTimeout bounds each operation, server selection included (the driver's
	// client-side timeout), so a stuck or unreachable database turns into the service's
	// 503 instead of a hung request. Its default stays 2 s below the gateway's
	// UPSTREAM_TIMEOUT (10 s), so the client gets that 503, which says the database is
	// unavailable, before the gateway gives up with a 504 (the operator lowers it with a
	// Shop's shorter gateway.upstreamTimeout).
	OperationTimeout time.Duration `env:"MONGODB_OPERATION_TIMEOUT" envDefault:"8s"`
}

// ConnectionURI is URI, or LegacyURL when URI is empty.
func (c Config) ConnectionURI() string {
	if c.URI != "" {
		return c.URI
	}
	return c.LegacyURL
}

// Validate requires a parseable connection string and positive timeouts: a connect
// timeout of 0 would fail every connection, an operation timeout of 0 or less would let a
// stuck database hang requests.
func (c Config) Validate() error {
	var errs []error
	if err := c.validateURI(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, config.Positive(
		config.Duration{Name: "MONGODB_CONNECT_TIMEOUT", Value: c.ConnectTimeout},
		config.Duration{Name: "MONGODB_OPERATION_TIMEOUT", Value: c.OperationTimeout},
	))
	return errors.Join(errs...)
}

func (c Config) validateURI() error {
	uri := c.ConnectionURI()
	if uri == "" {
		return errors.New("MONGODB_URI must be set (MONGODB_URL is accepted too)")
	}
	if _, err := storeuri.ParseMongoDB(uri); err != nil {
		// The driver's message may quote the password: do not repeat it. The variable named is
		// the one the URI came from: the seed's MONGODB_URL when MONGODB_URI is empty.
		return fmt.Errorf("%s is not a valid MongoDB connection string", c.uriVariable())
	}
	return nil
}

// uriVariable names the variable ConnectionURI comes from.
func (c Config) uriVariable() string {
	if c.URI == "" && c.LegacyURL != "" {
		return "MONGODB_URL"
	}
	return "MONGODB_URI"
}

// DatabaseName is Database, else the database in the URI's path, else fallback.
func (c Config) DatabaseName(fallback string) string {
	if c.Database != "" {
		return c.Database
	}
	if cs, err := storeuri.ParseMongoDB(c.ConnectionURI()); err == nil && cs.Database != "" {
		return cs.Database
	}
	return fallback
}

// Connect opens a client to cfg's server and pings it (within ConnectTimeout), and
// returns the service's database: cfg.DatabaseName(defaultDatabase). Close it with
// db.Client().Disconnect.
func Connect(ctx context.Context, cfg Config, defaultDatabase string) (*mongo.Database, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := options.Client().
		ApplyURI(cfg.ConnectionURI()).
		SetConnectTimeout(cfg.ConnectTimeout).
		SetServerSelectionTimeout(cfg.ConnectTimeout).
		SetTimeout(cfg.OperationTimeout)
	// mongo.Connect parses the URI again, this time with its DNS lookups (mongodb+srv).
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("mongodb connect: %w", storeuri.RedactError(err, cfg.ConnectionURI()))
	}
	pctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	if err := client.Ping(pctx, readpref.Primary()); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("mongodb ping: %w", storeuri.RedactError(err, cfg.ConnectionURI()))
	}
	db := client.Database(cfg.DatabaseName(defaultDatabase))
	// The ping is the admin database's: a database name the server refuses (my.shop on
	// MongoDB, anything but letters, digits, _ and - on FerretDB) would pass it, and the
	// service serve, ready, a 500 to every request. The server says here what it takes.
	if _, err := db.ListCollectionNames(pctx, bson.D{}); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("mongodb database %q (%s): %w", db.Name(), cfg.databaseSource(),
			storeuri.RedactError(err, cfg.ConnectionURI()))
	}
	return db, nil
}

// databaseSource says where DatabaseName took the name from, for an error about it.
func (c Config) databaseSource() string {
	if c.Database != "" {
		return "MONGODB_DATABASE"
	}
	if cs, err := storeuri.ParseMongoDB(c.ConnectionURI()); err == nil && cs.Database != "" {
		return "the path of " + c.uriVariable()
	}
	return "the service's default"
}

// Check is the readiness check of db: a ping of its server.
func Check(db *mongo.Database) health.Check {
	return health.Check{Name: "mongodb", Run: func(ctx context.Context) error {
		return db.Client().Ping(ctx, readpref.Primary())
	}}
}

// EnsureIndexes creates models on coll (creating existing indexes is a no-op), so a
// store's constraints, such as a unique email, hold before it serves. It creates them one
// at a time: FerretDB drops the connection when one createIndexes names several indexes
// that all exist already, as they do at every restart.
func EnsureIndexes(ctx context.Context, coll *mongo.Collection, models ...mongo.IndexModel) error {
	for _, m := range models {
		if _, err := coll.Indexes().CreateOne(ctx, m); err != nil {
			return fmt.Errorf("create indexes on %s: %w", coll.Name(), err)
		}
	}
	return nil
}

// IsFerretDB reports whether db's server is FerretDB (its buildInfo names a FerretDB
// version), for the rare write that must then be shaped otherwise: FerretDB v1 looks a
// document up by its index only for a filter of exactly {_id} (see KeyedMutex), so a
// conditional update by _id and another field reads the whole collection.
func IsFerretDB(ctx context.Context, db *mongo.Database) (bool, error) {
	var info bson.Raw
	if err := db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return false, fmt.Errorf("buildInfo: %w", err)
	}
	_, err := info.LookupErr("ferretdbVersion")
	return err == nil, nil
}

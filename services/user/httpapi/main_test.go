package httpapi_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apitest"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/user/httpapi"
	"github.com/shopkeeper-dev/shopkeeper/services/user/store"
	"github.com/shopkeeper-dev/shopkeeper/services/user/users"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const spec = "../openapi.yaml"

// newAPI returns a contract-checking client of the service over a fresh database.
func newAPI(t *testing.T) *apitest.Client {
	t.Helper()
	db := testenv.MongoDB(t)
	s := store.New(db)
	if err := s.EnsureIndexes(context.Background()); err != nil {
		t.Fatal(err)
	}
	return apitest.New(t, spec, httpapi.NewHandler(s, logging.Discard(), metrics.NewRegistry(), mongodb.Check(db)))
}

// newAPIOver returns a client of the service whose store and readiness use client's
// database "users".
func newAPIOver(t *testing.T, client *mongo.Client) *apitest.Client {
	t.Helper()
	db := client.Database("users")
	return apitest.New(t, spec, httpapi.NewHandler(store.New(db), logging.Discard(), metrics.NewRegistry(), mongodb.Check(db)))
}

// newBrokenAPI returns a client of the service whose own database client is closed:
// every store call fails with an error of the service's making, not the database's.
func newBrokenAPI(t *testing.T) *apitest.Client {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(testenv.MongoURI(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Disconnect(context.Background()); err != nil {
		t.Fatal(err)
	}
	return newAPIOver(t, client)
}

// newUnreachableAPI returns a client of the service whose database is not there: its
// address refuses connections, as a database that is down does.
func newUnreachableAPI(t *testing.T) *apitest.Client {
	t.Helper()
	return newAPIOver(t, testenv.UnreachableMongoDB(t, "users").Client())
}

// createUser creates a user through the API and returns it.
func createUser(t *testing.T, api *apitest.Client, name, email string) users.User {
	t.Helper()
	res := api.Request(t, "POST", "/users", map[string]string{"name": name, "email": email})
	if res.Status != 201 {
		t.Fatalf("create %s: %d %s", email, res.Status, res.Body)
	}
	var u users.User
	res.JSON(t, &u)
	return u
}

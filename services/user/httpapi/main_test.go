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

// newBrokenAPI returns a client of the service whose database connection is closed:
// every store call fails with a driver error, as when the database goes away.
func newBrokenAPI(t *testing.T) *apitest.Client {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(testenv.MongoURI(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Disconnect(context.Background()); err != nil {
		t.Fatal(err)
	}
	db := client.Database("closed")
	return apitest.New(t, spec, httpapi.NewHandler(store.New(db), logging.Discard(), metrics.NewRegistry(), mongodb.Check(db)))
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

package store

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// slowStore returns a Store on a fresh test database reached through a testenv.SlowLink, with
// operations timing out after timeout, the link, and the database itself.
func slowStore(t *testing.T, timeout time.Duration) (*Store, *testenv.SlowLink, *mongo.Database) {
	t.Helper()
	db := testenv.MongoDB(t)
	link := testenv.NewSlowLink(t, testenv.MongoURI(t))
	slow, err := mongodb.Connect(t.Context(), mongodb.Config{URI: link.URI() + db.Name(), ConnectTimeout: timeout, OperationTimeout: timeout}, db.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = slow.Client().Disconnect(context.Background()) })
	return New(slow), link, db
}

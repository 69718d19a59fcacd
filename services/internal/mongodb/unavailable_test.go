package mongodb_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// TestUnreachable checks the errors a real driver gives when nothing answers at the
// database's address, or a server accepts the connection and never answers.
func TestUnreachable(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never speaks
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	closedAddr := testenv.ClosedAddr(t)

	for _, addr := range []string{closedAddr, silent.Addr().String()} {
		t.Run(addr, func(t *testing.T) {
			client, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + addr).
				SetServerSelectionTimeout(300 * time.Millisecond).SetConnectTimeout(300 * time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = client.Disconnect(context.Background()) }()
			err = client.Database("shop").Collection("users").FindOne(context.Background(), bson.D{}).Err()
			if err == nil || !mongodb.Unreachable(fmt.Errorf("get user: %w", err)) {
				t.Errorf("Unreachable(%v) = false, want true", err)
			}
		})
	}
	for _, err := range []error{errors.New("boom"), mongo.ErrNoDocuments, mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 11000}}}} {
		if mongodb.Unreachable(err) {
			t.Errorf("Unreachable(%v) = true, want false", err)
		}
	}
}

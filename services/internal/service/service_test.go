package service_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/service"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type testConfig struct {
	config.Base
	Mongo mongodb.Config
}

func TestStartRefusesBadEnvironment(t *testing.T) {
	t.Setenv("SHUTDOWN_TIMEOUT", "forever")
	var cfg testConfig
	_, err := service.Start(context.Background(), "test", &cfg)
	if err == nil || !strings.Contains(err.Error(), "SHUTDOWN_TIMEOUT") {
		t.Errorf("Start = %v, want an error naming SHUTDOWN_TIMEOUT", err)
	}
}

func TestCloseRunsCleanupsLastFirst(t *testing.T) {
	t.Setenv("MONGODB_URI", testenv.MongoURI(t))
	var cfg testConfig
	ctx, cancel := context.WithCancel(context.Background())
	rt, err := service.Start(ctx, "test", &cfg)
	if err != nil {
		t.Fatal(err)
	}
	db, err := rt.MongoDB(ctx, cfg.Mongo, "test")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	rt.OnClose(func(context.Context) error { order = append(order, "first"); return nil })
	rt.OnClose(func(ctx context.Context) error {
		if ctx.Err() != nil {
			t.Error("cleanup got an ended context")
		}
		order = append(order, "second")
		return errors.New("logged, not fatal")
	})
	cancel() // as on SIGTERM: cleanups still get time
	rt.Close()

	if !slices.Equal(order, []string{"second", "first"}) {
		t.Errorf("cleanups ran in order %v", order)
	}
	if err := db.Client().Ping(context.Background(), nil); !errors.Is(err, mongo.ErrClientDisconnected) {
		t.Errorf("after Close, ping = %v, want the client disconnected", err)
	}
}

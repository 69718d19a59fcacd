package mongodb_test

import (
	"strings"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
)

// TestConfigLoad: a bad MongoDB setting stops the service at start with an error naming
// its variable, never later as a failed ping or a request with no deadline.
func TestConfigLoad(t *testing.T) {
	const uri = "MONGODB_URI=mongodb://db:27017/shop"
	tests := []struct {
		name    string
		environ []string
		wantErr string // "" means success
	}{
		{"defaults", []string{uri}, ""},
		{"no URI", nil, "MONGODB_URI must be set"},
		{"not a connection string", []string{"MONGODB_URI=postgres://db/shop"}, "MONGODB_URI is not a valid MongoDB connection string"},
		{"connect timeout 0", []string{uri, "MONGODB_CONNECT_TIMEOUT=0s"}, "MONGODB_CONNECT_TIMEOUT=0s: must be positive"},
		{"connect timeout negative", []string{uri, "MONGODB_CONNECT_TIMEOUT=-1s"}, "MONGODB_CONNECT_TIMEOUT=-1s: must be positive"},
		{"operation timeout negative", []string{uri, "MONGODB_OPERATION_TIMEOUT=-1s"}, "MONGODB_OPERATION_TIMEOUT=-1s: must be positive"},
		{"operation timeout 0", []string{uri, "MONGODB_OPERATION_TIMEOUT=0"}, "MONGODB_OPERATION_TIMEOUT=0s: must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg struct{ Mongo mongodb.Config }
			err := config.LoadFrom(&cfg, append([]string{}, tt.environ...))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("LoadFrom: %v", err)
				}
				if cfg.Mongo.ConnectTimeout != 10*time.Second || cfg.Mongo.OperationTimeout != 10*time.Second {
					t.Errorf("timeouts = %s, %s; want the documented 10s, 10s", cfg.Mongo.ConnectTimeout, cfg.Mongo.OperationTimeout)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("LoadFrom = %v, want an error saying %q", err, tt.wantErr)
			}
		})
	}
}

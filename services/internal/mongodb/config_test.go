package mongodb_test

import (
	"context"
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
		// The seed's name, when it is the one set, is the one named.
		{"seed's URL not a connection string", []string{"MONGODB_URL=postgres://db/shop"}, "MONGODB_URL is not a valid MongoDB connection string"},
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
				if cfg.Mongo.ConnectTimeout != 10*time.Second || cfg.Mongo.OperationTimeout != 8*time.Second {
					t.Errorf("timeouts = %s, %s; want the documented 10s, 8s", cfg.Mongo.ConnectTimeout, cfg.Mongo.OperationTimeout)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("LoadFrom = %v, want an error saying %q", err, tt.wantErr)
			}
		})
	}
}

// TestSRVLookupFailsAtConnect: a mongodb+srv URI is checked for syntax only when the
// configuration is read; its DNS lookup is the connection's, and a failed one is reported
// as such, without the password.
func TestSRVLookupFailsAtConnect(t *testing.T) {
	tests := []struct {
		name       string
		uri        string
		configErr  string // "" when the configuration is accepted
		connectErr string // what Connect's error says then
	}{
		{name: "unknown host", uri: "mongodb+srv://u:s3cr%21t@nosuch.invalid/x", connectErr: "nosuch.invalid"},
		{name: "options", uri: "mongodb+srv://nosuch.invalid/x?srvServiceName=db&srvMaxHosts=2&appName=shop", connectErr: "nosuch.invalid"},
		{name: "two hosts", uri: "mongodb+srv://a.invalid,b.invalid/x", configErr: "MONGODB_URI is not a valid MongoDB connection string"},
		{name: "a port", uri: "mongodb+srv://a.invalid:27017/x", configErr: "MONGODB_URI is not a valid MongoDB connection string"},
		{name: "bad option", uri: "mongodb+srv://a.invalid/x?w=0&journal=true", configErr: "MONGODB_URI is not a valid MongoDB connection string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg struct{ Mongo mongodb.Config }
			err := config.LoadFrom(&cfg, []string{"MONGODB_URI=" + tt.uri, "MONGODB_CONNECT_TIMEOUT=2s"})
			if tt.configErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.configErr) {
					t.Errorf("LoadFrom = %v, want an error saying %q", err, tt.configErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadFrom = %v, want the syntax accepted", err)
			}
			if got := cfg.Mongo.DatabaseName("fallback"); got != "x" {
				t.Errorf("database = %q, want x", got)
			}
			_, err = mongodb.Connect(context.Background(), cfg.Mongo, "fallback")
			if err == nil || !strings.Contains(err.Error(), tt.connectErr) {
				t.Fatalf("Connect = %v, want an error naming %q", err, tt.connectErr)
			}
			for _, secret := range []string{"s3cr%21t", "s3cr!t"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("Connect's error %q shows the password", err)
				}
			}
		})
	}
}

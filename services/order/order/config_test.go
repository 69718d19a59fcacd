package order_test

import (
	"strings"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
)

// TestConfigLoad: a setting that would break every order later stops the service at start,
// with an error naming its variable and what it allows.
func TestConfigLoad(t *testing.T) {
	const uri = "MONGODB_URI=mongodb://db:27017/"
	tests := []struct {
		name    string
		environ []string
		wantErr string // "" means success
	}{
		{"defaults", nil, ""},
		{"https peers", []string{"USER_SERVICE_URL=https://user.shop:8443", "PRODUCT_SERVICE_URL=https://product.shop/api"}, ""},
		// Every POST /orders would then be a 503.
		{"ftp peer", []string{"USER_SERVICE_URL=ftp://user:21"}, `USER_SERVICE_URL="ftp://user:21": want an absolute http or https URL`},
		{"no scheme", []string{"PRODUCT_SERVICE_URL=product:8080"}, `PRODUCT_SERVICE_URL="product:8080": want an absolute http or https URL`},
		{"query", []string{"PRODUCT_SERVICE_URL=http://product:8080?x=1"}, `PRODUCT_SERVICE_URL="http://product:8080?x=1": want no query or fragment`},
		{"peer timeout negative", []string{"PEER_TIMEOUT=-1s"}, "PEER_TIMEOUT=-1s: must be positive"},
		// 0 is no timeout at all in an http.Client: a hung peer would hold the request.
		{"peer timeout 0", []string{"PEER_TIMEOUT=0s"}, "PEER_TIMEOUT=0s: must be positive"},
		{"prefetch 0", []string{"CONSUMER_PREFETCH=0"}, "CONSUMER_PREFETCH=0: must be between 1 and 65535"},
		{"prefetch past 16 bits", []string{"CONSUMER_PREFETCH=65536"}, "CONSUMER_PREFETCH=65536: must be between 1 and 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg order.Config
			err := config.LoadFrom(&cfg, append([]string{uri}, tt.environ...))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("LoadFrom: %v", err)
				}
				if tt.environ == nil && (cfg.PeerTimeout != 5*time.Second || cfg.Prefetch != 64 || cfg.UserServiceURL != "http://user:8080") {
					t.Errorf("defaults = %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("LoadFrom = %v, want an error saying %q", err, tt.wantErr)
			}
		})
	}
}

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
		// The password of a URL refused is not shown, nor any piece of it.
		{"query, password hidden", []string{"USER_SERVICE_URL=http://svc:s3cret@user:8080?x=1"}, `USER_SERVICE_URL="http://svc:xxxxx@user:8080?x=1": want no query or fragment`},
		{"unparsable, password hidden", []string{"USER_SERVICE_URL=http://svc:s3cr/et@user:8080"}, `USER_SERVICE_URL="http://svc:xxxxx@user:8080": invalid port`},
		{"peer timeout negative", []string{"PEER_TIMEOUT=-1s"}, "PEER_TIMEOUT=-1s: must be positive"},
		// 0 is no timeout at all in an http.Client: a hung peer would hold the request.
		{"peer timeout 0", []string{"PEER_TIMEOUT=0s"}, "PEER_TIMEOUT=0s: must be positive"},
		{"placement timeout 0", []string{"PLACEMENT_TIMEOUT=0s"}, "PLACEMENT_TIMEOUT=0s: must be positive"},
		// The server would cut the connection before POST /orders answers.
		{"placement timeout at the write timeout", []string{"PLACEMENT_TIMEOUT=30s"}, "PLACEMENT_TIMEOUT=30s: must be below HTTP_WRITE_TIMEOUT (30s)"},
		{"write timeout below the placement", []string{"HTTP_WRITE_TIMEOUT=5s"}, "PLACEMENT_TIMEOUT=8s: must be below HTTP_WRITE_TIMEOUT (5s)"},
		{"placement timeout just below the write timeout", []string{"PLACEMENT_TIMEOUT=39s", "HTTP_WRITE_TIMEOUT=40s"}, ""},
		{"payment peer without host", []string{"PAYMENT_SERVICE_URL=http:///payments"}, `PAYMENT_SERVICE_URL="http:///payments": want an absolute http or https URL`},
		// 0 would ask the payment service about every order still being paid.
		{"pending check 0", []string{"PENDING_CHECK_AFTER=0s"}, "PENDING_CHECK_AFTER=0s: must be positive"},
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
				if tt.environ == nil && (cfg.PeerTimeout != 5*time.Second || cfg.PlacementTimeout != 8*time.Second ||
					cfg.Prefetch != 64 || cfg.UserServiceURL != "http://user:8080" ||
					cfg.PaymentServiceURL != "http://payment:8080" || cfg.PendingCheckAfter != 2*time.Minute) {
					t.Errorf("defaults = %+v", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("LoadFrom = %v, want an error saying %q", err, tt.wantErr)
			}
			for _, secret := range []string{"s3cret", "s3cr/et", "s3cr", "et@user"} {
				if err != nil && strings.Contains(err.Error(), secret) {
					t.Errorf("LoadFrom = %v, which shows the password", err)
				}
			}
		})
	}
}

// defaultConfig is the order service's configuration with every default.
func defaultConfig(t *testing.T) order.Config {
	t.Helper()
	var cfg order.Config
	if err := config.LoadFrom(&cfg, []string{"MONGODB_URI=mongodb://db:27017/"}); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestPeerCallFitsThePlacementBudget: with every default, one hung peer call fits in the time
// the placement budget gives the peer calls (all but its store margin), so its 503 names the
// peer. (That POST /orders answers before the gateway gives up is checked in the gateway's
// package, TestPlacementAnswersBeforeTheGateway, where both configurations can be loaded.)
func TestPeerCallFitsThePlacementBudget(t *testing.T) {
	cfg := defaultConfig(t)
	if peers := cfg.PlacementTimeout - order.StoreMargin(cfg.PlacementTimeout); cfg.PeerTimeout >= peers {
		t.Errorf("PEER_TIMEOUT %s >= PLACEMENT_TIMEOUT %s less its store margin (%s): a hung peer's call would use up the time of the peer calls",
			cfg.PeerTimeout, cfg.PlacementTimeout, peers)
	}
}

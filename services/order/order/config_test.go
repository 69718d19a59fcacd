package order_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"strconv"
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
		{"placement timeout 0", []string{"PLACEMENT_TIMEOUT=0s"}, "PLACEMENT_TIMEOUT=0s: must be positive"},
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

// gatewayMargin is what the gateway's UPSTREAM_TIMEOUT must leave past the order
// service's PLACEMENT_TIMEOUT: the request's and the answer's trips and the gateway's own
// steps, on a loaded node.
const gatewayMargin = 2 * time.Second

// TestPlacementAnswersBeforeTheGateway: with every default, POST /orders answers before the
// gateway gives up on it, by gatewayMargin, so a client gets the order service's own answer
// (a 503 that says what became of the order) and never the gateway's 504 (the order may
// exist); and one hung peer call fits in the time the budget gives the peer calls (all but
// its store margin), so its 503 names the peer. The gateway's default is read from its
// source, whose package is internal to the gateway.
func TestPlacementAnswersBeforeTheGateway(t *testing.T) {
	cfg := defaultConfig(t)
	upstream := gatewayDefault(t, "../../gateway/internal/gateway/config.go", "UpstreamTimeout")
	if cfg.PlacementTimeout+gatewayMargin > upstream {
		t.Errorf("PLACEMENT_TIMEOUT %s + %s > the gateway's UPSTREAM_TIMEOUT %s", cfg.PlacementTimeout, gatewayMargin, upstream)
	}
	if peers := cfg.PlacementTimeout - order.StoreMargin(cfg.PlacementTimeout); cfg.PeerTimeout >= peers {
		t.Errorf("PEER_TIMEOUT %s >= PLACEMENT_TIMEOUT %s less its store margin (%s): a hung peer's call would use up the time of the peer calls",
			cfg.PeerTimeout, cfg.PlacementTimeout, peers)
	}
}

// gatewayDefault returns the envDefault of the duration field of the gateway's Config in
// the Go source file path.
func gatewayDefault(t *testing.T, path, field string) time.Duration {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var tag string
	ast.Inspect(f, func(n ast.Node) bool {
		spec, ok := n.(*ast.TypeSpec)
		if !ok || spec.Name.Name != "Config" {
			return true
		}
		st, ok := spec.Type.(*ast.StructType)
		if !ok {
			return false
		}
		for _, fd := range st.Fields.List {
			if len(fd.Names) == 1 && fd.Names[0].Name == field && fd.Tag != nil {
				tag, _ = strconv.Unquote(fd.Tag.Value)
			}
		}
		return false
	})
	value, ok := reflect.StructTag(tag).Lookup("envDefault")
	if !ok {
		t.Fatalf("%s: no envDefault on Config.%s", path, field)
	}
	d, err := time.ParseDuration(value)
	if err != nil {
		t.Fatalf("%s: Config.%s: %v", path, field, err)
	}
	return d
}

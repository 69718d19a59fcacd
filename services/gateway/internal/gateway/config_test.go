package gateway

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
)

var serviceURLs = []string{
	"USER_SERVICE_URL=http://user:8080",
	"PRODUCT_SERVICE_URL=http://product:8080",
	"ORDER_SERVICE_URL=http://order:8080",
	"PAYMENT_SERVICE_URL=http://payment:8080",
}

func TestConfigDefaults(t *testing.T) {
	var cfg Config
	if err := config.LoadFrom(&cfg, serviceURLs); err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 8080 || cfg.RateLimitRequests != 100 || cfg.RateLimitWindow != 15*time.Minute ||
		cfg.UpstreamTimeout != 10*time.Second || cfg.TrustedProxies != "" || cfg.PprofAddr != "" {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    string // the variable the error names
	}{
		{name: "service URL missing", environ: serviceURLs[1:], want: "USER_SERVICE_URL"},
		{name: "service URL not absolute", environ: withServiceURLs("ORDER_SERVICE_URL=order:8080"), want: "ORDER_SERVICE_URL"},
		{name: "service URL with a query, password hidden", environ: withServiceURLs("ORDER_SERVICE_URL=http://gw:s3cret@order:8080/?x=1"),
			want: `ORDER_SERVICE_URL="http://gw:xxxxx@order:8080/?x=1": want no query or fragment`},
		{name: "service URL unparsable, password hidden", environ: withServiceURLs("ORDER_SERVICE_URL=http://gw:s3cr/et@order:8080"),
			want: `ORDER_SERVICE_URL="http://gw:xxxxx@order:8080": invalid port`},
		{name: "window not a duration", environ: withServiceURLs("RATE_LIMIT_WINDOW=900000"), want: "RATE_LIMIT_WINDOW"},
		{name: "no requests allowed", environ: withServiceURLs("RATE_LIMIT_REQUESTS=0"), want: "RATE_LIMIT_REQUESTS"},
		{name: "fewer clients tracked than the limiter's shards", environ: withServiceURLs("RATE_LIMIT_MAX_CLIENTS=63"), want: "RATE_LIMIT_MAX_CLIENTS=63: must be at least 64"},
		{name: "a window too long to count in nanoseconds", environ: withServiceURLs("RATE_LIMIT_WINDOW=2562047h"), want: "RATE_LIMIT_WINDOW=2562047h0m0s: must be at most 8760h0m0s (a year)"},
		// The README's bound exactly: an hour past a year is refused here, naming the variable
		// (the limiter would refuse it too, at start, naming none).
		{name: "a window an hour past a year", environ: withServiceURLs("RATE_LIMIT_WINDOW=8761h"), want: "RATE_LIMIT_WINDOW=8761h0m0s: must be at most 8760h0m0s (a year)"},
		// More requests than nanoseconds in the window: the limiter cannot space them.
		{name: "more requests than nanoseconds in the window", environ: withServiceURLs("RATE_LIMIT_REQUESTS=2000000000", "RATE_LIMIT_WINDOW=1s"),
			want: "RATE_LIMIT_REQUESTS=2000000000: must be at most RATE_LIMIT_WINDOW in nanoseconds (1000000000 for 1s)"},
		{name: "no connection for a client", environ: withServiceURLs("MAX_CONNS_PER_CLIENT=0"), want: "MAX_CONNS_PER_CLIENT=0: must be at least 1"},
		{name: "bad proxy CIDR", environ: withServiceURLs("TRUSTED_PROXIES=10.0.0.0/8,10.0.0.0/40"), want: "TRUSTED_PROXIES"},
		{name: "metrics port out of range", environ: withServiceURLs("METRICS_PORT=70000"), want: "METRICS_PORT=70000: must be between 1 and 65535"},
		{name: "metrics port negative", environ: withServiceURLs("METRICS_PORT=-1"), want: "METRICS_PORT=-1: must be between 1 and 65535"},
		{name: "metrics on the public port", environ: withServiceURLs("PORT=9090", "METRICS_PORT=9090"), want: "METRICS_PORT=9090: must differ from PORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg Config
			err := config.LoadFrom(&cfg, tt.environ)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one naming %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cr") {
				t.Errorf("error %v shows the password", err)
			}
		})
	}
}

// withServiceURLs returns the service URLs with overrides set over them.
func withServiceURLs(overrides ...string) []string {
	out := append([]string(nil), overrides...)
	for _, kv := range serviceURLs {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.Contains(strings.Join(overrides, "\n")+"\n", k+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// TestConfigRateLimitUpToOneANanosecond: as many requests as nanoseconds in the window are
// accepted, and the gateway is built with them.
func TestConfigRateLimitUpToOneANanosecond(t *testing.T) {
	var cfg Config
	if err := config.LoadFrom(&cfg, withServiceURLs("RATE_LIMIT_REQUESTS=1000000000", "RATE_LIMIT_WINDOW=1s")); err != nil {
		t.Fatal(err)
	}
	if _, err := New(&cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("New = %v, want the gateway of an accepted configuration", err)
	}
}

// TestConfigRateLimitWindowOfAYear: the longest window the README allows, 8760h, is accepted,
// and the gateway is built with it.
func TestConfigRateLimitWindowOfAYear(t *testing.T) {
	var cfg Config
	if err := config.LoadFrom(&cfg, withServiceURLs("RATE_LIMIT_WINDOW=8760h")); err != nil {
		t.Fatal(err)
	}
	if _, err := New(&cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("New = %v, want the gateway of an accepted configuration", err)
	}
}

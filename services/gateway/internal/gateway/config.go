package gateway

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/internal/storeuri"
	"github.com/shopkeeper-dev/shopkeeper/services/gateway/internal/clientip"
	"github.com/shopkeeper-dev/shopkeeper/services/gateway/internal/ratelimit"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
)

// Config is the gateway's configuration, read from the environment.
type Config struct {
	config.Base

	// UserServiceURL and the three below are the base URLs of the services (the seed's names).
	UserServiceURL    string `env:"USER_SERVICE_URL,required,notEmpty"`
	ProductServiceURL string `env:"PRODUCT_SERVICE_URL,required,notEmpty"`
	OrderServiceURL   string `env:"ORDER_SERVICE_URL,required,notEmpty"`
	PaymentServiceURL string `env:"PAYMENT_SERVICE_URL,required,notEmpty"`

	// RateLimitRequests is how many requests a client may make per RateLimitWindow.
	RateLimitRequests int `env:"RATE_LIMIT_REQUESTS" envDefault:"100"`
	// RateLimitWindow is the window of the limit, as a Go duration ("15m", "1h").
	RateLimitWindow time.Duration `env:"RATE_LIMIT_WINDOW" envDefault:"15m"`
	// RateLimitMaxClients caps the clients the limiter tracks at once (memory bound).
	RateLimitMaxClients int `env:"RATE_LIMIT_MAX_CLIENTS" envDefault:"1048576"`
	// TrustedProxies lists the CIDRs (or single addresses), comma-separated, whose
	// X-Forwarded-For is believed.
	TrustedProxies string `env:"TRUSTED_PROXIES"`

	// UpstreamTimeout bounds a service's whole answer, from sending it the request to reading the
	// last byte of its response; past it → 504. Keep it at least 2 s above the order
	// service's PLACEMENT_TIMEOUT (8s) and the services' MONGODB_OPERATION_TIMEOUT (8s), so
	// that POST /orders, and a request whose database does not answer, get the service's own
	// 503 rather than a 504 (order_contract_test.go checks both defaults).
	UpstreamTimeout time.Duration `env:"UPSTREAM_TIMEOUT" envDefault:"10s"`
	// MaxConnsPerService caps the kept-alive connections to each service, so the requests in
	// flight to it; a request finding them all busy waits for one for half of UpstreamTimeout,
	// at most maxConnWait (1s), then is answered 503: a service that busy is overloaded.
	MaxConnsPerService int `env:"MAX_CONNS_PER_SERVICE" envDefault:"512"`
	// MaxConnsPerClient caps the connections one client (an IPv4 address, an IPv6 /64) holds
	// to the gateway at once, idle kept-alive ones and ones with a body half sent included,
	// which cost tens of KiB each; one past it is answered 429 and closed. A trusted proxy's
	// connections are not counted.
	MaxConnsPerClient int `env:"MAX_CONNS_PER_CLIENT" envDefault:"256"`
	// HealthTimeout bounds each service's /readyz check made for GET /health.
	HealthTimeout time.Duration `env:"HEALTH_TIMEOUT" envDefault:"2s"`
	// HealthCacheTTL is how long one /health result is served before the services are asked
	// again, so that /health cannot be used to flood them.
	HealthCacheTTL time.Duration `env:"HEALTH_CACHE_TTL" envDefault:"1s"`

	// LogFlushInterval batches log lines and writes them at least this often (0: one write per
	// line). Access logs are a line per request; batching saves a system call per request.
	LogFlushInterval time.Duration `env:"LOG_FLUSH_INTERVAL" envDefault:"200ms"`

	// MetricsPort, when set, serves GET /metrics on that port of LISTEN_HOST alone, apart
	// from the public port, which then answers it 404: a gateway open to the internet need
	// not show its metrics to it. 0 (the default, for local runs): /metrics on PORT.
	MetricsPort int `env:"METRICS_PORT"`

	// PprofAddr, when set (e.g. "127.0.0.1:6060"), serves net/http/pprof there; off by default.
	PprofAddr string `env:"PPROF_ADDR"`
}

// Validate checks what the types alone cannot.
func (c *Config) Validate() error {
	var errs []error
	for _, u := range []struct{ name, value string }{
		{"USER_SERVICE_URL", c.UserServiceURL},
		{"PRODUCT_SERVICE_URL", c.ProductServiceURL},
		{"ORDER_SERVICE_URL", c.OrderServiceURL},
		{"PAYMENT_SERVICE_URL", c.PaymentServiceURL},
	} {
		if _, err := parseServiceURL(u.value); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", u.name, storeuri.RedactURL(u.value), err))
		}
	}
	if c.RateLimitRequests < 1 {
		errs = append(errs, fmt.Errorf("RATE_LIMIT_REQUESTS=%d: must be at least 1", c.RateLimitRequests))
	}
	if c.RateLimitWindow <= 0 {
		errs = append(errs, fmt.Errorf("RATE_LIMIT_WINDOW=%s: must be positive", c.RateLimitWindow))
	}
	if c.RateLimitWindow > ratelimit.MaxWindow {
		errs = append(errs, fmt.Errorf("RATE_LIMIT_WINDOW=%s: must be at most %s (a year)", c.RateLimitWindow, ratelimit.MaxWindow))
	}
	if c.RateLimitRequests >= 1 && c.RateLimitWindow > 0 && c.RateLimitWindow <= ratelimit.MaxWindow &&
		int64(c.RateLimitWindow)/int64(c.RateLimitRequests) == 0 {
		// The limiter spaces requests by RATE_LIMIT_WINDOW/RATE_LIMIT_REQUESTS in whole
		// nanoseconds: it refuses a spacing of 0, and would otherwise stop the gateway with an
		// error naming neither variable.
		errs = append(errs, fmt.Errorf("RATE_LIMIT_REQUESTS=%d: must be at most RATE_LIMIT_WINDOW in nanoseconds (%d for %s)",
			c.RateLimitRequests, int64(c.RateLimitWindow), c.RateLimitWindow))
	}
	if c.RateLimitMaxClients < ratelimit.MinMaxClients {
		errs = append(errs, fmt.Errorf("RATE_LIMIT_MAX_CLIENTS=%d: must be at least %d", c.RateLimitMaxClients, ratelimit.MinMaxClients))
	}
	if _, err := clientip.ParsePrefixes(c.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("TRUSTED_PROXIES=%q: %w", c.TrustedProxies, err))
	}
	for _, d := range []struct {
		name  string
		value time.Duration
	}{
		{"UPSTREAM_TIMEOUT", c.UpstreamTimeout},
		{"HEALTH_TIMEOUT", c.HealthTimeout},
	} {
		if d.value <= 0 {
			errs = append(errs, fmt.Errorf("%s=%s: must be positive", d.name, d.value))
		}
	}
	if c.LogFlushInterval < 0 {
		errs = append(errs, fmt.Errorf("LOG_FLUSH_INTERVAL=%s: must not be negative", c.LogFlushInterval))
	}
	if c.HealthCacheTTL < 0 {
		errs = append(errs, fmt.Errorf("HEALTH_CACHE_TTL=%s: must not be negative", c.HealthCacheTTL))
	}
	if c.MaxConnsPerService < 1 {
		errs = append(errs, fmt.Errorf("MAX_CONNS_PER_SERVICE=%d: must be at least 1", c.MaxConnsPerService))
	}
	if c.MetricsPort < 0 || c.MetricsPort > 65535 {
		errs = append(errs, fmt.Errorf("METRICS_PORT=%d: must be between 1 and 65535, or 0 to serve /metrics on PORT", c.MetricsPort))
	}
	if c.MetricsPort != 0 && c.MetricsPort == c.Port {
		errs = append(errs, fmt.Errorf("METRICS_PORT=%d: must differ from PORT, or be 0 to serve /metrics on PORT", c.MetricsPort))
	}
	if c.MaxConnsPerClient < 1 {
		errs = append(errs, fmt.Errorf("MAX_CONNS_PER_CLIENT=%d: must be at least 1", c.MaxConnsPerClient))
	}
	return errors.Join(errs...)
}

// parseServiceURL is config.ParseServiceURL, the rule every service applies to its peers'
// URLs.
func parseServiceURL(s string) (*url.URL, error) { return config.ParseServiceURL(s) }

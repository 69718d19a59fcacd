package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
)

// BenchmarkProxy measures one proxied GET in process (the upstream is a real loopback server),
// through the whole deployed handler and through the routes alone, to show what the shared
// middleware (request id, tracing, access log, metrics) costs per request.
func BenchmarkProxy(b *testing.B) {
	body := []byte(`{"id":"1","name":"Espresso cup","priceCents":1299,"currency":"USD","stock":42}`)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	defer up.Close()
	cfg := &Config{
		UserServiceURL: up.URL, ProductServiceURL: up.URL, OrderServiceURL: up.URL, PaymentServiceURL: up.URL,
		RateLimitRequests: 1_000_000, RateLimitWindow: time.Hour, RateLimitMaxClients: 1000,
		UpstreamTimeout: 5 * time.Second, MaxIdleConnsPerService: 64, HealthTimeout: time.Second,
	}
	g, err := New(cfg, logging.Discard())
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	routesOnly := http.NewServeMux()
	g.Register(routesOnly)

	for _, bc := range []struct {
		name    string
		handler http.Handler
	}{
		{name: "deployed", handler: g.Handler(metrics.NewRegistry())},
		{name: "routes-only", handler: routesOnly},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodGet, "/products/1", nil)
					req.RemoteAddr = "192.0.2.1:1234"
					rec := httptest.NewRecorder()
					bc.handler.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("status %d", rec.Code)
					}
				}
			})
		})
	}
}

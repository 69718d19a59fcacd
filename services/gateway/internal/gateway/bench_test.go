package gateway

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
)

// BenchmarkProxy measures one proxied GET in process (the upstream is a real loopback server)
// through the whole handler: routing, rate limit, request id, metrics and the round trip.
func BenchmarkProxy(b *testing.B) {
	body := []byte(`{"id":"1","name":"Espresso cup","priceCents":1299,"currency":"USD","stock":42}`)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	defer up.Close()
	cfg := &Config{
		UserServiceURL: up.URL, ProductServiceURL: up.URL, OrderServiceURL: up.URL, PaymentServiceURL: up.URL,
		RateLimitRequests: 1_000_000_000, RateLimitWindow: time.Hour, RateLimitMaxClients: 1000,
		UpstreamTimeout: 5 * time.Second, MaxConnsPerService: 64, MaxConnsPerClient: 256, HealthTimeout: time.Second,
	}
	g, err := New(cfg, logging.Discard())
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	h := g.Handler(metrics.NewRegistry())
	peer := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1234}

	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var req fasthttp.Request
		var ctx fasthttp.RequestCtx
		for pb.Next() {
			req.Reset()
			req.SetRequestURI("/products/1")
			req.Header.SetHost("gateway")
			ctx.Init(&req, peer, nil)
			h.Serve(&ctx)
			if ctx.Response.StatusCode() != http.StatusOK {
				b.Fatalf("status %d", ctx.Response.StatusCode())
			}
		}
	})
}

// Command gateway is the shop's API gateway: it routes /users, /products, /orders and /payments
// (and the seed's /user/…, /product/…, /order/…, /payment/… form) to the services, limits each
// client's request rate and serves GET /health for the suite.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/gateway/internal/gateway"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var cfg gateway.Config
	if err := config.Load(&cfg); err != nil {
		return err
	}
	log := logging.New("gateway", cfg.LogLevel)

	shutdownTracing, err := tracing.Setup(ctx, "gateway")
	if err != nil {
		return err
	}
	defer func() { _ = shutdownTracing(context.WithoutCancel(ctx)) }()

	g, err := gateway.New(&cfg, log)
	if err != nil {
		return err
	}
	defer g.Close()
	go g.Run(ctx)

	if cfg.PprofAddr != "" {
		go servePprof(cfg.PprofAddr, log)
	}

	return web.Serve(ctx, g.Handler(metrics.NewRegistry()), cfg.Base, log)
}

// servePprof serves the runtime profiles on their own listener, kept off the public port.
func servePprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("pprof listening", "addr", addr)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.Error("pprof server stopped", "err", err)
	}
}

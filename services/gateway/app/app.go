// Package app is the gateway's program: Run is what its binary runs, importable so that one
// multi-call binary can run every service of the suite.
//
//	func main() { service.Main("gateway", app.Run) }
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/shopkeeper-dev/shopkeeper/services/gateway/internal/gateway"
	"github.com/shopkeeper-dev/shopkeeper/services/gateway/internal/logbuf"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/service"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// Run runs the gateway, configured from the environment (gateway.Config), until ctx ends;
// then it shuts down gracefully and returns nil, or what failed in the shutdown. It sets the
// process's GC target and heap limit (gatewayGCPercent, setMemoryLimit), so a binary running
// several services runs the gateway alone.
func Run(ctx context.Context) (err error) {
	setGCPercent()
	var cfg gateway.Config
	if err := config.Load(&cfg); err != nil {
		return err
	}
	logOut := io.Writer(os.Stdout)
	if cfg.LogFlushInterval > 0 {
		buffered := logbuf.New(os.Stdout, 64<<10, cfg.LogFlushInterval)
		defer buffered.Close()
		logOut = buffered
	}
	log := logging.NewTo(logOut, "gateway", cfg.LogLevel)
	setMemoryLimit(ctx, memlimit.FromCgroup, memoryLimitRefresh, log)

	// The drain of the requests in flight and the flush of the last spans share one
	// SHUTDOWN_TIMEOUT, counted from ctx's end, as in every service of the kit: the pod's
	// grace period is sized for one. A flush that fails is a failed shutdown step: a
	// non-zero exit.
	rt, err := service.NewRuntime(ctx, "gateway", cfg.Base, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, rt.Close()) }()

	g, err := gateway.New(&cfg, log)
	if err != nil {
		return err
	}
	defer g.Close()
	go g.Run(ctx)

	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(ctx, cfg.PprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}

	reg := metrics.NewRegistry()
	if cfg.MetricsPort == 0 {
		return gateway.Serve(ctx, g.Handler(reg), cfg.Base, log)
	}
	return serveWithMetrics(ctx, g, reg, &cfg, log)
}

// serveWithMetrics serves the gateway on cfg.Port and its metrics on cfg.MetricsPort until ctx
// ends, then shuts both down. It listens on both before serving either, so that a metrics port
// in use stops the gateway at start; a server that stops on an error stops the other too.
func serveWithMetrics(ctx context.Context, g *gateway.Gateway, reg *prometheus.Registry, cfg *gateway.Config, log *slog.Logger) error {
	metricsBase := cfg.Base
	metricsBase.Port = cfg.MetricsPort
	mln, err := web.Listen(ctx, metricsBase)
	if err != nil {
		return fmt.Errorf("METRICS_PORT=%d: %w", cfg.MetricsPort, err)
	}
	ln, err := web.Listen(ctx, cfg.Base)
	if err != nil {
		_ = mln.Close()
		return err
	}
	group, gctx := errgroup.WithContext(ctx)
	group.Go(func() error {
		return gateway.ServeListener(gctx, ln, g.Handler(reg), cfg.Base, log)
	})
	group.Go(func() error {
		return web.ServeListener(gctx, mln, g.MetricsHandler(reg), metricsBase, log.With(slog.String("server", "metrics")))
	})
	return group.Wait()
}

// gatewayGCPercent is the gateway's GOGC unless the environment sets one. A proxied request
// allocates about 2.5 KiB that dies with it while the live heap stays a few MiB, so at the
// default of 100 the collector runs dozens of times a second under load; measured under load,
// 400 cuts the gateway's CPU per request by 15-25%.
const gatewayGCPercent = 400

func setGCPercent() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gatewayGCPercent)
	}
}

// memoryLimitShare is the share of its container's memory limit the gateway's heap aims to
// stay under unless GOMEMLIMIT is set: with GOGC at 400 the heap may otherwise grow to five
// times what is live, past the limit, and the container be killed rather than collect.
const memoryLimitShare = 0.9

// memoryLimitRefresh is how often the container's memory limit is read again, so that a pod
// resized in place moves the heap limit with it.
const memoryLimitRefresh = time.Minute

// setMemoryLimit sets the Go heap limit to memoryLimitShare of the memory limit that provider
// reports, and again every refresh until ctx ends. In the gateway provider is
// memlimit.FromCgroup: the limit of the process's own cgroup, found through /proc/self/cgroup
// and /proc/self/mountinfo, on cgroup v1 (memory.limit_in_bytes and the hierarchical limit in
// memory.stat, the kernel's "unlimited" value meaning none) as on v2 (the smallest memory.max
// from the process's cgroup up to the mount). No limit leaves the heap unlimited. GOMEMLIMIT,
// when set, wins and nothing is read; AUTOMEMLIMIT may set another share, or "off". A limit
// that cannot be read is logged and the gateway runs on without one: a heap limit is a
// safeguard, not a condition of serving.
func setMemoryLimit(ctx context.Context, provider memlimit.Provider, refresh time.Duration, log *slog.Logger) {
	// Set logs what it sets, and why it set nothing.
	_, _ = memlimit.Set(
		memlimit.WithProvider(provider),
		memlimit.WithRatio(memoryLimitShare),
		memlimit.WithRefreshInterval(ctx, refresh),
		memlimit.WithLogger(log),
	)
}

// servePprof serves the runtime profiles on their own listener, kept off the public port, until
// the returned function is called. It listens before returning, so that an address that is
// not one, or is in use, stops the gateway at start rather than leaving it without profiles.
func servePprof(ctx context.Context, addr string, log *slog.Logger) (stop func(), err error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("PPROF_ADDR=%q: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("pprof listening", "addr", ln.Addr().String())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof server stopped", "err", err)
		}
	}()
	return func() { _ = srv.Close() }, nil
}

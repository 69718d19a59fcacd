package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
)

// NewServer returns an http.Server for h with cfg's timeouts, logging its own errors
// (TLS handshakes, bad requests) through logger.
func NewServer(h http.Handler, cfg config.Base, logger *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// Serve listens on cfg.Port and serves h until ctx is cancelled (main passes a context
// from signal.NotifyContext for SIGTERM and SIGINT); then it stops accepting, lets
// in-flight requests finish within cfg.ShutdownTimeout and returns nil.
func Serve(ctx context.Context, h http.Handler, cfg config.Base, logger *slog.Logger) error {
	ln, err := Listen(ctx, cfg)
	if err != nil {
		return err
	}
	return ServeListener(ctx, ln, h, cfg, logger)
}

// Listen listens on cfg.Port, on cfg.Host (every address when empty).
func Listen(ctx context.Context, cfg config.Base) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	return ln, nil
}

// ServeListener is Serve on a listener the caller made (tests listen on port 0).
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, cfg config.Base, logger *slog.Logger) error {
	return Run(ctx, ln, NewServer(h, cfg, logger), cfg, logger)
}

// Server is a server Run can serve and stop: an *http.Server, or an adapter to another
// HTTP server (the gateway's fasthttp one). Serve returns once Shutdown was called, with nil
// or http.ErrServerClosed; Shutdown stops accepting and waits for in-flight requests until
// ctx ends. A Server that also has Close() error is closed when Shutdown runs out of time.
type Server interface {
	Serve(ln net.Listener) error
	Shutdown(ctx context.Context) error
}

// ErrCutAtShutdown is the cause of a request's context cancelled because the server's
// shutdown ran out of time before the request finished: its connection is being closed.
var ErrCutAtShutdown = errors.New("request cut short: the server's shutdown ran out of time")

// Run is the life cycle every server of the suite has: it serves ln until ctx is cancelled,
// then shuts srv down within cfg.ShutdownTimeout and returns nil, or why it could not.
//
// A request still running when the shutdown runs out of time has its context cancelled with
// the cause ErrCutAtShutdown (for an *http.Server without a BaseContext of its own), so that
// RespondError does not take it for one its client abandoned.
func Run(ctx context.Context, ln net.Listener, srv Server, cfg config.Base, logger *slog.Logger) error {
	cut := func() {}
	if hs, ok := srv.(*http.Server); ok && hs.BaseContext == nil {
		base, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		hs.BaseContext = func(net.Listener) context.Context { return base }
		cut = func() { cancel(ErrCutAtShutdown) }
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("listening", slog.String("addr", ln.Addr().String()))

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	logger.Info("shutting down", slog.Duration("timeout", cfg.ShutdownTimeout))
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		cut() // before Close, whose closed connections would cancel the requests as a gone client's
		if c, ok := srv.(interface{ Close() error }); ok {
			_ = c.Close()
		}
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("stopped")
	return nil
}

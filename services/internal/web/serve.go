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
		Addr:              net.JoinHostPort("", strconv.Itoa(cfg.Port)),
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
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort("", strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return ServeListener(ctx, ln, h, cfg, logger)
}

// ServeListener is Serve on a listener the caller made (tests listen on port 0).
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, cfg config.Base, logger *slog.Logger) error {
	srv := NewServer(h, cfg, logger)
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
		_ = srv.Close()
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("stopped")
	return nil
}

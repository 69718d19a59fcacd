// Package logging makes the services' structured logger: log/slog, JSON lines on
// standard output, each carrying the service name.
package logging

import (
	"io"
	"log/slog"
	"os"
)

// New returns a JSON logger on standard output for service at level.
func New(service string, level slog.Leveler) *slog.Logger {
	return NewTo(os.Stdout, service, level)
}

// NewTo is New writing to w (tests pass a buffer).
func NewTo(w io.Writer, service string, level slog.Leveler) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(h).With(slog.String("service", service))
}

// Discard returns a logger that writes nothing, for tests that do not look at logs.
func Discard() *slog.Logger {
	return slog.New(slog.DiscardHandler)
}

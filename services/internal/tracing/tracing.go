// Package tracing sets up OpenTelemetry from the standard OTEL_* variables.
//
// The W3C trace-context and baggage propagators are always installed, so an incoming
// traceparent is continued by the web middleware and forwarded by clients made with
// HTTPClient, even when no spans are exported. Export (OTLP over HTTP) is on when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set and
// OTEL_TRACES_EXPORTER is not "none"; the exporter itself reads the other
// OTEL_EXPORTER_OTLP_* variables, the SDK reads OTEL_TRACES_SAMPLER*, and
// OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES override the resource.
package tracing

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"unicode"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopkeeper-dev/shopkeeper/internal/storeuri"
)

// Shutdown flushes and stops the exporter; it is a no-op when export is off.
type Shutdown func(ctx context.Context) error

// Setup installs the propagators and, when the environment asks for it, a tracer
// provider exporting over OTLP/HTTP for service. Call the returned Shutdown on exit, and
// SetLogger before, so that what OpenTelemetry reports of itself is in the service's log.
func Setup(ctx context.Context, service string) (Shutdown, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{}, propagation.Baggage{}))

	on, err := exportEnabled(os.Getenv)
	if err == nil && on {
		err = errors.Join(checkExporterEndpoint(os.Getenv), checkExporterHeaders(os.Getenv))
	}
	if err != nil || !on {
		return func(context.Context) error { return nil }, err
	}

	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
		resource.WithTelemetrySDK(),
		resource.WithHost(),
	)
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return tp.Shutdown, nil
}

// SetLogger sends OpenTelemetry's own errors and messages (a failed export, dropped spans)
// to log, so that they are JSON lines among the service's others, not plain text that
// OpenTelemetry otherwise prints on standard error.
func SetLogger(log *slog.Logger) {
	otelLog := log.With(slog.String("component", "opentelemetry"))
	otel.SetLogger(logr.FromSlogHandler(otelLevels{otelLog.Handler()}))
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		otelLog.Error("opentelemetry error", slog.String("error", err.Error()))
	}))
}

// otelLevels passes OpenTelemetry's log records to a slog handler at levels that say how
// much they matter. OpenTelemetry logs warnings at V(1), information at V(4) and debugging
// at V(8), which logr hands to slog as levels -1, -4 and -8, all below INFO: its warnings
// (spans dropped) would never show. They become WARN, DEBUG and DEBUG-4.
type otelLevels struct{ slog.Handler }

func otelLevel(l slog.Level) slog.Level {
	switch {
	case l >= slog.LevelInfo:
		return l
	case l >= -1:
		return slog.LevelWarn
	case l >= -4:
		return slog.LevelDebug
	default:
		return slog.LevelDebug - 4
	}
}

func (h otelLevels) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, otelLevel(l))
}

func (h otelLevels) Handle(ctx context.Context, r slog.Record) error {
	r.Level = otelLevel(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h otelLevels) WithAttrs(attrs []slog.Attr) slog.Handler {
	return otelLevels{h.Handler.WithAttrs(attrs)}
}

func (h otelLevels) WithGroup(name string) slog.Handler {
	return otelLevels{h.Handler.WithGroup(name)}
}

// exportEnabled decides from the environment whether spans are exported.
func exportEnabled(getenv func(string) string) (bool, error) {
	switch exporter := getenv("OTEL_TRACES_EXPORTER"); exporter {
	case "none":
		return false, nil
	case "", "otlp":
	default:
		return false, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: only \"otlp\" and \"none\" are supported", exporter)
	}
	// The traces' own variable, when set, wins over the one for every signal (OpenTelemetry's
	// SDK configuration): a service must refuse a gRPC asked for its traces alone, and
	// export its traces over HTTP when only the other signals are said to use gRPC.
	name := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	p := getenv(name)
	if p == "" {
		name = "OTEL_EXPORTER_OTLP_PROTOCOL"
		p = getenv(name)
	}
	if p != "" && p != "http/protobuf" {
		return false, fmt.Errorf("%s=%q: only \"http/protobuf\" is supported", name, p)
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "", nil
}

// defaultProvider is the global tracer provider before anything installs one: it records
// no spans. It is read at package initialisation, before main can call Setup.
var defaultProvider = otel.GetTracerProvider()

// Recording reports whether a tracer provider is installed, so spans are recorded: Setup
// installs one only when export is on (a test may install its own). Servers call it per
// request to skip span bookkeeping while it is false; it is an atomic load.
func Recording() bool {
	// Comparing interfaces of different dynamic types is false, never a panic.
	return otel.GetTracerProvider() != defaultProvider
}

// Transport wraps base (http.DefaultTransport when nil) so outgoing requests carry the
// caller's traceparent and get a client span.
func Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return otelhttp.NewTransport(base)
}

// NewSpanContext returns a span context with fresh random trace and span ids, not sampled:
// the trace context of work that no caller's trace reached, when no span is recorded.
func NewSpanContext() trace.SpanContext {
	var tid trace.TraceID
	var sid trace.SpanID
	// Never all zero, which would be invalid: the odds of a zero from two 64-bit draws are
	// nil, and the loop makes sure.
	for !tid.IsValid() {
		binary.BigEndian.PutUint64(tid[:8], rand.Uint64())
		binary.BigEndian.PutUint64(tid[8:], rand.Uint64())
	}
	for !sid.IsValid() {
		binary.BigEndian.PutUint64(sid[:], rand.Uint64())
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid})
}

// checkExporterEndpoint refuses an OTLP endpoint the exporter cannot send to: the traces'
// own OTEL_EXPORTER_OTLP_TRACES_ENDPOINT when set, which wins, else
// OTEL_EXPORTER_OTLP_ENDPOINT. It must be an http or https URL with a host. The exporter
// takes the host of whatever url.Parse makes of it: "collector:4318" (the form the gRPC
// exporter takes) parses as the scheme "collector" with no host, and every export then
// fails with an error naming neither the variable nor the value, while the service
// started as if tracing worked; a value url.Parse refuses is logged and the exporter sends
// to https://localhost:4318 instead. The error names the variable, its password hidden.
func checkExporterEndpoint(getenv func(string) string) error {
	name := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	v := getenv(name)
	if strings.TrimSpace(v) == "" {
		name = "OTEL_EXPORTER_OTLP_ENDPOINT"
		v = getenv(name)
	}
	u, err := url.Parse(strings.TrimSpace(v))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s=%q: want an http or https URL with a host, such as http://collector:4318", name, shownURL(v))
	}
	return nil
}

// shownURL is raw as written, or with its password hidden when it has one
// (storeuri.RedactURL, which writes a URL it parsed again: " " would read "%20").
func shownURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		if _, has := u.User.Password(); !has {
			return raw
		}
	}
	return storeuri.RedactURL(raw)
}

// checkExporterHeaders refuses OTEL_EXPORTER_OTLP_HEADERS or
// OTEL_EXPORTER_OTLP_TRACES_HEADERS holding an entry the exporter would drop: one with no
// "=", a name that is not an HTTP token, or a value with a bad %-escape. The exporter
// would log such an entry whole at ERROR (its "input" or "value": most often the
// credentials the headers are there for, "Authorization: Bearer …" written with a colon)
// and send every export without it. The error names the variable and the entry by its
// position (and its name when it is one), never its value. An empty entry (a trailing
// comma) drops nothing and is let through.
func checkExporterHeaders(getenv func(string) string) error {
	for _, name := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		for i, entry := range strings.Split(strings.TrimSpace(getenv(name)), ",") {
			if strings.TrimSpace(entry) == "" {
				continue
			}
			key, value, found := strings.Cut(entry, "=")
			key = strings.TrimSpace(key)
			switch {
			case !found:
				return fmt.Errorf("%s: entry %d has no \"=\": want name=value pairs separated by \",\" (the entry not shown)", name, i+1)
			case !validHeaderName(key):
				// Not quoted: "Authorization: Bearer <token>=" has its token in what
				// precedes the "=".
				return fmt.Errorf("%s: the name of entry %d is not an HTTP header name (the entry not shown)", name, i+1)
			}
			if _, err := url.PathUnescape(value); err != nil {
				return fmt.Errorf("%s: the value of entry %d (%s) is not valid %%-escaped text (the value not shown)", name, i+1, key)
			}
		}
	}
	return nil
}

// validHeaderName reports whether s is an HTTP token, as the exporter requires of a name.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		token := c <= unicode.MaxASCII &&
			(unicode.IsLetter(c) || unicode.IsDigit(c) || strings.ContainsRune("!#$%&'*+-.^_`|~", c))
		if !token {
			return false
		}
	}
	return true
}

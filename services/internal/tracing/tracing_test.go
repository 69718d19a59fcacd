package tracing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
)

func TestExportEnabled(t *testing.T) {
	tests := []struct {
		env     map[string]string
		want    bool
		wantErr bool
	}{
		{env: nil, want: false},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, want: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, want: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, want: false},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "otlp"}, want: true},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, wantErr: true},
		// The traces' own protocol wins over the one for every signal, either way.
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, wantErr: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, wantErr: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, want: true},
	}
	for _, tt := range tests {
		got, err := exportEnabled(func(k string) string { return tt.env[k] })
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("exportEnabled(%v) = %v, %v; want %v, error %v", tt.env, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestRecording(t *testing.T) {
	if Recording() {
		t.Fatal("Recording() = true before any tracer provider is installed")
	}
	prev := otel.GetTracerProvider()
	tp := sdktrace.NewTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prev)
		_ = tp.Shutdown(context.Background())
	})
	if !Recording() {
		t.Fatal("Recording() = false with an SDK tracer provider installed")
	}
}

func TestSetupWithoutExportRecordsNothing(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	shutdown, err := Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	if Recording() {
		t.Error("Recording() = true after Setup with export off")
	}
}

// TestSetupLogsOpenTelemetryMessages: what OpenTelemetry reports of itself (an export that
// failed, a warning) is a JSON line of the service's log at a level that says how much it
// matters, not plain text on standard error between the JSON lines.
func TestSetupLogsOpenTelemetryMessages(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	tests := []struct {
		name   string
		report func()
		level  string // "" when nothing is logged at INFO
		msg    string
	}{
		{"error", func() { otel.Handle(errors.New("traces export: connection refused")) },
			"ERROR", "traces export: connection refused"},
		{"warning", func() { _ = sdktrace.NewSimpleSpanProcessor(nil) }, "WARN", "SimpleSpanProcessor is not recommended"},
		{"information", func() { _ = sdktrace.NewTracerProvider().Shutdown(context.Background()) }, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			SetLogger(logging.NewTo(&out, "test", slog.LevelInfo))
			shutdown, err := Setup(context.Background(), "test")
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = shutdown(context.Background()) }()
			tt.report()
			if tt.level == "" {
				if out.Len() != 0 {
					t.Errorf("logged %q, want nothing at INFO", out.String())
				}
				return
			}
			var line map[string]any
			if err := json.Unmarshal(out.Bytes(), &line); err != nil {
				t.Fatalf("log = %q, want one JSON line: %v", out.String(), err)
			}
			if line["level"] != tt.level || line["service"] != "test" || !strings.Contains(out.String(), tt.msg) {
				t.Errorf("log line = %v, want %s naming %q", line, tt.level, tt.msg)
			}
		})
	}
}

// TestSetupRefusesHeadersItWouldLog: OTEL_EXPORTER_OTLP_HEADERS (or its traces' own
// variable) with an entry the exporter cannot read stops the service at start, naming the
// variable, and neither the error nor the log shows the credentials the entry holds. The
// exporter would log the entry whole at ERROR and send every export without it.
func TestSetupRefusesHeadersItWouldLog(t *testing.T) {
	const secret = "s3cret-t0ken"
	tests := []struct {
		name, variable, value, want string
	}{
		{"a colon for the =", "OTEL_EXPORTER_OTLP_HEADERS", "Authorization: Bearer " + secret, "entry 1 has no \"=\""},
		{"a colon and an = in the token", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=shop,Authorization: Basic " + secret + "==", "the name of entry 2 is not an HTTP header name"},
		{"a bad escape", "OTEL_EXPORTER_OTLP_HEADERS", "api-key=" + secret + "%zz", "the value of entry 1 (api-key) is not valid %-escaped text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
			t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
			t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "")
			t.Setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "")
			t.Setenv(tt.variable, tt.value)
			keepTracerProvider(t)
			var out bytes.Buffer
			SetLogger(logging.NewTo(&out, "test", slog.LevelInfo))
			shutdown, err := Setup(context.Background(), "test")
			if shutdown != nil {
				defer func() { _ = shutdown(context.Background()) }()
			}
			if strings.Contains(out.String(), secret) {
				t.Errorf("log shows the header's credentials: %s", out.String())
			}
			if err == nil || !strings.Contains(err.Error(), tt.variable+": "+tt.want) {
				t.Fatalf("Setup = %v, want an error naming %s and saying %q", err, tt.variable, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows the header's credentials", err)
			}
		})
	}
}

// TestSetupTakesWellFormedHeaders: headers as the exporter reads them (spaces around the
// names and values, %-escapes, a trailing comma) start the service.
func TestSetupTakesWellFormedHeaders(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", " Authorization = Bearer%20abc , x-tenant=shop,")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "")
	keepTracerProvider(t)
	shutdown, err := Setup(context.Background(), "test")
	if err != nil {
		t.Fatalf("Setup = %v, want the headers taken", err)
	}
	_ = shutdown(context.Background())
}

// keepTracerProvider puts back, when the test ends, the tracer provider a Setup of the test
// may replace.
func keepTracerProvider(t *testing.T) {
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
}

// TestSetupRefusesEndpointItCannotSendTo: an OTLP endpoint that is no http or https URL with
// a host stops the service at start, naming the variable the exporter reads it from (the
// traces' own one wins), its password hidden; the exporter would start and fail every
// export with an error naming neither ("collector:4318" is the scheme "collector" with no
// host), or send to https://localhost:4318 instead of a URL it cannot parse.
func TestSetupRefusesEndpointItCannotSendTo(t *testing.T) {
	tests := []struct {
		name            string
		endpoint, trace string // OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
		want            string // "" when taken
	}{
		{name: "host and port", endpoint: "collector:4318", want: `OTEL_EXPORTER_OTLP_ENDPOINT="collector:4318": want an http or https URL`},
		{name: "traces' host and port", trace: "localhost:4318", want: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="localhost:4318": want`},
		{name: "traces' own wins over a good one", endpoint: "http://c:4318", trace: "c:4318", want: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="},
		{name: "blank", endpoint: " ", want: `OTEL_EXPORTER_OTLP_ENDPOINT=" ": want`},
		{name: "no host", endpoint: "http://", want: `OTEL_EXPORTER_OTLP_ENDPOINT="http://": want`},
		{name: "gRPC scheme", endpoint: "grpc://c:4317", want: "OTEL_EXPORTER_OTLP_ENDPOINT="},
		{name: "unparsable, password hidden", endpoint: "https://u:s3cret@[c", want: `OTEL_EXPORTER_OTLP_ENDPOINT="https://u:xxxxx@[c": want`},
		{name: "http", endpoint: "http://collector:4318"},
		{name: "https with a path", endpoint: "HTTPS://collector/otlp"},
		{name: "a host and port for other signals, traces' own URL", endpoint: "collector:4317", trace: "http://collector:4318/v1/traces"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tt.endpoint)
			t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", tt.trace)
			keepTracerProvider(t)
			shutdown, err := Setup(context.Background(), "test")
			if shutdown != nil {
				defer func() { _ = shutdown(context.Background()) }()
			}
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Setup = %v, want the endpoint taken", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Setup = %v, want an error saying %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

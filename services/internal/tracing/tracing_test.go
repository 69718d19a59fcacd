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

package config_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
)

type serviceConfig struct {
	config.Base
	Limit int64 `env:"PAYMENT_LIMIT_CENTS" envDefault:"100000"`
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		check   func(t *testing.T, c serviceConfig)
		wantErr []string // substrings of the error; nil means success
	}{
		{
			name:    "defaults",
			environ: []string{},
			check: func(t *testing.T, c serviceConfig) {
				if c.Port != 8080 || c.LogLevel != slog.LevelInfo || c.ShutdownTimeout != 20*time.Second || c.Limit != 100000 {
					t.Errorf("defaults = %+v", c)
				}
			},
		},
		{
			name:    "values",
			environ: []string{"LISTEN_HOST=127.0.0.1", "PORT=9000", "LOG_LEVEL=debug", "SHUTDOWN_TIMEOUT=3s", "PAYMENT_LIMIT_CENTS=5"},
			check: func(t *testing.T, c serviceConfig) {
				if c.Host != "127.0.0.1" || c.Port != 9000 || c.LogLevel != slog.LevelDebug || c.ShutdownTimeout != 3*time.Second || c.Limit != 5 {
					t.Errorf("config = %+v", c)
				}
			},
		},
		{name: "bad port", environ: []string{"PORT=eighty"}, wantErr: []string{`PORT="eighty": must be a whole number (`}},
		{name: "host not an address", environ: []string{"LISTEN_HOST=localhost"}, wantErr: []string{`LISTEN_HOST="localhost"`}},
		{name: "port out of range", environ: []string{"PORT=70000"}, wantErr: []string{"PORT=70000: must be between 1 and 65535"}},
		// 0 would listen on a random port, which the probes cannot find.
		{name: "port 0", environ: []string{"PORT=0"}, wantErr: []string{"PORT=0: must be between 1 and 65535"}},
		{name: "read timeout 0", environ: []string{"HTTP_READ_TIMEOUT=0s"}, wantErr: []string{"HTTP_READ_TIMEOUT=0s: must be positive"}},
		{name: "read header timeout negative", environ: []string{"HTTP_READ_HEADER_TIMEOUT=-1s"}, wantErr: []string{"HTTP_READ_HEADER_TIMEOUT=-1s: must be positive"}},
		{name: "write timeout negative", environ: []string{"HTTP_WRITE_TIMEOUT=-5s"}, wantErr: []string{"HTTP_WRITE_TIMEOUT=-5s: must be positive"}},
		{name: "idle timeout 0", environ: []string{"HTTP_IDLE_TIMEOUT=0"}, wantErr: []string{"HTTP_IDLE_TIMEOUT=0s: must be positive"}},
		{name: "shutdown timeout negative", environ: []string{"SHUTDOWN_TIMEOUT=-1s"}, wantErr: []string{"SHUTDOWN_TIMEOUT=-1s: must be positive"}},
		{
			name:    "every out-of-range variable is named, once",
			environ: []string{"PORT=0", "SHUTDOWN_TIMEOUT=-1s", "LISTEN_HOST=here"},
			wantErr: []string{"PORT=0", "SHUTDOWN_TIMEOUT=-1s", `LISTEN_HOST="here"`},
		},
		{name: "bad duration", environ: []string{"SHUTDOWN_TIMEOUT=soon"}, wantErr: []string{`SHUTDOWN_TIMEOUT="soon": must be a duration such as 500ms, 5s or 2m (`}},
		{name: "bad level", environ: []string{"LOG_LEVEL=loud"}, wantErr: []string{`LOG_LEVEL="loud": must be debug, info, warn or error (`}},
		{name: "fraction for a whole number", environ: []string{"PAYMENT_LIMIT_CENTS=1.5"}, wantErr: []string{`PAYMENT_LIMIT_CENTS="1.5": must be a whole number (`}},
		{
			name:    "every bad variable is named",
			environ: []string{"PORT=x", "PAYMENT_LIMIT_CENTS=y"},
			wantErr: []string{`PORT="x"`, `PAYMENT_LIMIT_CENTS="y"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c serviceConfig
			err := config.LoadFrom(&c, tt.environ)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("LoadFrom: %v", err)
				}
				tt.check(t, c)
				return
			}
			if err == nil {
				t.Fatalf("LoadFrom succeeded: %+v", c)
			}
			for _, want := range tt.wantErr {
				if n := strings.Count(err.Error(), want); n != 1 {
					t.Errorf("error %q contains %q %d times, want once", err, want, n)
				}
			}
		})
	}
}

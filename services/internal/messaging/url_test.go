package messaging_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

const password = "s3cret"

// TestSettingsRefuseAnUnusableURL: a RABBITMQ_URL the client cannot use stops the
// configuration's loading with an error that names the variable and the problem,
// never the password.
func TestSettingsRefuseAnUnusableURL(t *testing.T) {
	tests := []struct {
		url     string
		wantErr []string // substrings of the error; nil means valid
	}{
		{url: "", wantErr: nil}, // unset: the default
		{url: "amqp://guest:" + password + "@rabbitmq:5672/shop"},
		{url: "amqps://guest:" + password + "@rabbitmq/"},
		{url: "garbage", wantErr: []string{"RABBITMQ_URL", "scheme"}},
		{url: "guest:" + password + "@rabbitmq/", wantErr: []string{"RABBITMQ_URL", "scheme"}},
		{url: "http://guest:" + password + "@rabbitmq:5672/", wantErr: []string{"RABBITMQ_URL", "scheme"}},
		{url: "amqp://guest:" + password + "@127.0.0.1:notaport/", wantErr: []string{"RABBITMQ_URL", `invalid port ":notaport"`, "guest:xxxxx@"}},
		{url: "amqp://guest:" + password + "@127.0.0.1:99999/", wantErr: []string{"RABBITMQ_URL", "port 99999"}},
		{url: "amqp://guest:" + password + "@rabbit mq/", wantErr: []string{"RABBITMQ_URL"}},
		{url: "amqp://guest:s3/cret@rabbitmq:5672/", wantErr: []string{"RABBITMQ_URL", "percent-encoded"}},
		// Parsable, the password read as a query or a path: the client refuses the port, the scheme.
		{url: "amqp://guest:99999?" + password + "@rabbitmq/", wantErr: []string{"RABBITMQ_URL", "port xxxxx", "guest:xxxxx@"}},
		{url: "http://guest:/" + password + "@rabbitmq:5672/", wantErr: []string{"RABBITMQ_URL", "scheme"}},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			var cfg struct{ Broker messaging.Settings }
			env := []string{}
			if tt.url != "" {
				env = append(env, "RABBITMQ_URL="+tt.url)
			}
			err := config.LoadFrom(&cfg, env)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), "s3/cret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// TestConnectLogsNoPassword: what the broker connection logs about a URL it cannot
// use or a broker it cannot reach never shows the URL's password.
func TestConnectLogsNoPassword(t *testing.T) {
	closedPort := testenv.ClosedAddr(t) // connection refused

	tests := []struct {
		name, url, wantLog string
	}{
		{"malformed", "amqp://guest:" + password + "@127.0.0.1:notaport/", "broker URL unusable"},
		{"no scheme", "guest:" + password + "@127.0.0.1/", "broker URL unusable"},
		{"unreachable", "amqp://guest:" + password + "@" + closedPort + "/", "broker unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs testproc.Buffer
			b := messaging.Connect(messaging.Config{URL: tt.url, Name: t.Name(),
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			defer b.Close()
			eventually(t, "a log line", func() bool { return strings.Contains(logs.String(), tt.wantLog) })
			if strings.Contains(logs.String(), password) {
				t.Errorf("the log shows the password:\n%s", logs.String())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if b.WaitReady(ctx) == nil {
				t.Error("ready")
			}
		})
	}
}

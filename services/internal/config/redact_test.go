package config_test

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
)

func TestRedactURL(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"amqp://guest:s3cret@rabbitmq:5672/shop", "amqp://guest:xxxxx@rabbitmq:5672/shop"},
		{"mongodb://u:p%40ss@db1,db2/x?replicaSet=rs", "mongodb://u:xxxxx@db1,db2/x?replicaSet=rs"},
		{"amqp://guest@rabbitmq/", "amqp://guest@rabbitmq/"},
		{"amqp://rabbitmq/", "amqp://rabbitmq/"},
		// Unparsable or opaque: an unescaped "/" or "@" in the password, no scheme.
		{"amqp://guest:s3/cret@rabbitmq/", "amqp://guest:xxxxx@rabbitmq/"},
		{"amqp://guest:p@ss@rabbitmq:notaport/", "amqp://guest:xxxxx@rabbitmq:notaport/"},
		{"guest:s3cret@rabbitmq/", "guest:xxxxx@rabbitmq/"},
		{"garbage", "garbage"},
	}
	for _, tt := range tests {
		if got := config.RedactURL(tt.raw); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
}

func TestRedactError(t *testing.T) {
	tests := []struct{ uri, msg, want string }{
		{"amqp://guest:s3cret@127.0.0.1:1/", `dial "amqp://guest:s3cret@127.0.0.1:1/": refused`, `dial "amqp://guest:xxxxx@127.0.0.1:1/": refused`},
		{"mongodb://u:pw@db/x", "auth failed for u:pw", "auth failed for u:xxxxx"},
		{"mongodb+srv://u:p%40ss@db/x", "bad password p@ss (p%40ss)", "bad password xxxxx (xxxxx)"},
		{"mongodb://u@db/x", "no password in u@db", "no password in u@db"},
		{"mongodb://db/x", "server selection error", "server selection error"},
		{"", "server selection error", "server selection error"},
	}
	for _, tt := range tests {
		if got := config.RedactError(errors.New(tt.msg), tt.uri).Error(); got != tt.want {
			t.Errorf("RedactError(%q, %q) = %q, want %q", tt.msg, tt.uri, got, tt.want)
		}
	}
	if config.RedactError(nil, "amqp://u:p@h/") != nil {
		t.Error("RedactError(nil) is not nil")
	}
	// What the error was stays visible to errors.Is once its text is redacted.
	err := config.RedactError(&fs.PathError{Op: "open", Path: "mongodb://u:pw@db/x", Err: fs.ErrNotExist}, "mongodb://u:pw@db/x")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
	}
}

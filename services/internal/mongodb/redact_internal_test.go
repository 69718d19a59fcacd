package mongodb

import (
	"errors"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		uri, msg, want string
	}{
		{"mongodb://u:pw@db/x", "auth failed for u:pw", "auth failed for u:xxxxx"},
		{"mongodb+srv://u:p%40ss@db/x", "bad password p@ss (p%40ss)", "bad password xxxxx (xxxxx)"},
		{"mongodb://u@db/x", "no password in u@db", "no password in u@db"},
		{"mongodb://db/x", "server selection error", "server selection error"},
	}
	for _, tt := range tests {
		if got := redact(errors.New(tt.msg), tt.uri).Error(); got != tt.want {
			t.Errorf("redact(%q, %q) = %q, want %q", tt.msg, tt.uri, got, tt.want)
		}
	}
}

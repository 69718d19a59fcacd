package config_test

import (
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
)

func TestParseServiceURL(t *testing.T) {
	tests := []struct {
		in      string
		wantErr bool
	}{
		{"http://user:8080", false},
		{"https://user.shop.svc:8443/base", false},
		{"ftp://user:8080", true},
		{"user:8080", true}, // a scheme "user", no host
		{"/users", true},
		{"http://", true},
		{"http://user:8080?x=1", true},
		{"http://user:8080/#top", true},
		{"http://user:8080/?", true},
		{"http://user:bad port", true},
	}
	for _, tt := range tests {
		u, err := config.ParseServiceURL(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseServiceURL(%q) = %v, %v; want error %v", tt.in, u, err, tt.wantErr)
		}
	}
}

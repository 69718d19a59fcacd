package payment_test

import (
	"strings"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/payment/payment"
)

// TestConfigLoad: a setting that would decline or stall every payment stops the service at
// start, with an error naming its variable and what it allows.
func TestConfigLoad(t *testing.T) {
	const uri = "MONGODB_URI=mongodb://db:27017/"
	tests := []struct {
		name    string
		environ []string
		wantErr string // "" means success
	}{
		{"defaults", nil, ""},
		{"smallest limit", []string{"PAYMENT_LIMIT_CENTS=1"}, ""},
		{"limit negative", []string{"PAYMENT_LIMIT_CENTS=-1"}, "PAYMENT_LIMIT_CENTS=-1: must be at least 1"},
		{"limit 0", []string{"PAYMENT_LIMIT_CENTS=0"}, "PAYMENT_LIMIT_CENTS=0: must be at least 1"},
		{"prefetch negative", []string{"CONSUMER_PREFETCH=-3"}, "CONSUMER_PREFETCH=-3: must be between 1 and 65535"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg payment.Config
			err := config.LoadFrom(&cfg, append([]string{uri}, tt.environ...))
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("LoadFrom: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("LoadFrom = %v, want an error saying %q", err, tt.wantErr)
			}
		})
	}
}

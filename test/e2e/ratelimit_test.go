package e2e

import (
	"maps"
	"testing"
)

func TestParseRateLimitField(t *testing.T) {
	tests := []struct {
		in      string
		policy  string
		params  map[string]int64
		wantErr bool
	}{
		{in: `"default";q=60;w=60`, policy: "default", params: map[string]int64{"q": 60, "w": 60}},
		{in: `"default";r=0;t=17`, policy: "default", params: map[string]int64{"r": 0, "t": 17}},
		{in: ` "default" ; r=59 ; t=1 `, policy: "default", params: map[string]int64{"r": 59, "t": 1}},
		{in: `"default"`, policy: "default", params: map[string]int64{}},
		{in: `default;q=60`, wantErr: true},
		{in: `"default;q=60`, wantErr: true},
		{in: `"default";q`, wantErr: true},
		{in: `"default";q=sixty`, wantErr: true},
		{in: ``, wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseRateLimitField(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("parseRateLimitField(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if got.policy != tt.policy || !maps.Equal(got.params, tt.params) {
			t.Errorf("parseRateLimitField(%q) = %q %v, want %q %v", tt.in, got.policy, got.params, tt.policy, tt.params)
		}
	}
}

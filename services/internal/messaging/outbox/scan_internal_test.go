package outbox

import (
	"testing"
	"time"
)

// TestScanWait: scans come every interval while behind and every idleScan otherwise, but a
// scan that reads a large collection slowly is spaced out, so that scanning never takes
// more than a fifth of the time while behind, or a twentieth otherwise.
func TestScanWait(t *testing.T) {
	tests := []struct {
		name   string
		behind bool
		took   time.Duration
		want   time.Duration
	}{
		{"behind, quick scan", true, 50 * time.Millisecond, time.Second},
		{"behind, slow scan", true, 12 * time.Second, time.Minute},
		{"idle, quick scan", false, 50 * time.Millisecond, idleScan},
		{"idle, slow scan", false, 12 * time.Second, 4 * time.Minute},
	}
	for _, tt := range tests {
		if got := scanWait(tt.behind, time.Second, tt.took); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

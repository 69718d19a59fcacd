package outbox

import (
	"testing"
	"time"
)

// TestScanWait: scans come every interval while behind and every idleScan otherwise, but
// scans that read a large collection slowly are spaced out, so that scanning never takes
// more than a fifth of the time while behind, or a twentieth otherwise; one scan slowed by
// a stall of the store (the one before it quick) spaces out nothing.
func TestScanWait(t *testing.T) {
	const quick = 50 * time.Millisecond
	tests := []struct {
		name             string
		behind           bool
		took, tookBefore time.Duration
		want             time.Duration
	}{
		{"behind, quick scans", true, quick, quick, time.Second},
		{"behind, slow scans", true, 12 * time.Second, 12 * time.Second, time.Minute},
		{"idle, quick scans", false, quick, quick, idleScan},
		{"idle, slow scans", false, 12 * time.Second, 15 * time.Second, 4 * time.Minute},
		// A query that hung on a stalled store for its whole deadline, after a quick scan.
		{"behind, one stalled scan", true, scanTimeout, quick, time.Second},
		{"idle, one stalled scan", false, scanTimeout, quick, idleScan},
		// A collection too large for the deadline: every query runs into it.
		{"idle, every scan cut short", false, scanTimeout, scanTimeout, 20 * scanTimeout},
	}
	for _, tt := range tests {
		if got := scanWait(tt.behind, time.Second, tt.took, tt.tookBefore); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

package outbox

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// TestScanWait: scans come every interval while behind and every idleScan otherwise, but a
// scan that reads a large collection slowly is spaced out, so that scanning never takes
// more than a fifth of the time while behind, or a twentieth otherwise; and a scan that
// hung on a stalled store spaces them out by MaxScanWait at most.
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
		// A query that hung on a stalled store for its 5 min, then answered.
		{"behind, stalled scan", true, scanTimeout, MaxScanWait},
		{"idle, stalled scan", false, scanTimeout, MaxScanWait},
	}
	for _, tt := range tests {
		if got := scanWait(tt.behind, time.Second, tt.took); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestFailedScanQueryIsNotCounted: a scan's query that failed (the store unreachable, or
// stalled past scanTimeout) counts no time, so it does not space out the scans after it,
// which retry every interval while the relay is behind.
func TestFailedScanQueryIsNotCounted(t *testing.T) {
	coll := testenv.UnreachableMongoDB(t, "outbox").Collection("orders")
	r := NewRelay(coll, nil, &mongodb.KeyedMutex{}, nil, slog.New(slog.DiscardHandler), time.Second)
	began := time.Now()
	_, _, query, err := r.drain(context.Background(), nil)
	if err == nil {
		t.Fatal("a scan of an unreachable store succeeded")
	}
	if query != 0 {
		t.Fatalf("a query that failed after %s counted %s", time.Since(began), query)
	}
}

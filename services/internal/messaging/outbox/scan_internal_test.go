package outbox

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
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
		// The first scan after a start, slow: nothing to compare it with.
		{"idle, first scan slow", false, 12 * time.Second, 0, 4 * time.Minute},
		// The store unreachable: its failed queries count nothing (queryTime).
		{"behind, store unreachable", true, 0, 0, time.Second},
	}
	for _, tt := range tests {
		if got := scanWait(tt.behind, time.Second, tt.took, tt.tookBefore); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestQueryTime: a scan's query counts as the store's work when it answered or ran into
// its own deadline, and not when it failed before (the store unreachable).
func TestQueryTime(t *testing.T) {
	failed := errors.New("server selection error")
	if got := queryTime(time.Second, nil, false); got != time.Second {
		t.Errorf("answered: %s", got)
	}
	if got := queryTime(scanTimeout, context.DeadlineExceeded, true); got != scanTimeout {
		t.Errorf("cut short by its deadline: %s", got)
	}
	if got := queryTime(10*time.Second, failed, false); got != 0 {
		t.Errorf("failed before its deadline: %s", got)
	}
}

// TestUnreachableStoreCountsNoScanTime: the query of a scan of a store that is not there
// fails after the driver's wait for a server, and counts nothing: the scans after it
// retry every interval while the relay is behind.
func TestUnreachableStoreCountsNoScanTime(t *testing.T) {
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

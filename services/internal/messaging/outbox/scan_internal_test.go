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
// a stall of the store (the one before it quick, or failed at once) spaces out nothing.
func TestScanWait(t *testing.T) {
	const quick = 50 * time.Millisecond
	tests := []struct {
		name   string
		behind bool
		scans  []time.Duration // the work counted in each scan since the start, the last last
		want   time.Duration
	}{
		{"behind, quick scans", true, []time.Duration{quick, quick}, time.Second},
		{"behind, slow scans", true, []time.Duration{12 * time.Second, 12 * time.Second}, time.Minute},
		{"idle, quick scans", false, []time.Duration{quick, quick}, idleScan},
		{"idle, slow scans", false, []time.Duration{15 * time.Second, 12 * time.Second}, 4 * time.Minute},
		{"idle, slow scans, then a quick one", false, []time.Duration{15 * time.Second, 12 * time.Second, quick}, idleScan},
		// A query that hung on a stalled store for its whole deadline, after a quick scan.
		{"behind, one stalled scan", true, []time.Duration{quick, scanTimeout}, time.Second},
		{"idle, one stalled scan", false, []time.Duration{quick, scanTimeout}, idleScan},
		// A collection too large for the deadline: every query runs into it.
		{"idle, every scan cut short", false, []time.Duration{scanTimeout, scanTimeout, scanTimeout}, 20 * scanTimeout},
		// The first scan after a start, slow: nothing to compare it with.
		{"idle, first scan slow", false, []time.Duration{12 * time.Second}, 4 * time.Minute},
		{"idle, first scan stalled", false, []time.Duration{scanTimeout}, 20 * scanTimeout},
		// The store unreachable: its failed queries count nothing (queryTime).
		{"behind, store unreachable", true, []time.Duration{0, 0}, time.Second},
		{"behind, store unreachable at the first scan", true, []time.Duration{0}, time.Second},
		// Back, but stalled for the whole deadline, right after a scan that found it
		// unreachable: the stall alone spaces out nothing, as after a quick scan.
		{"behind, a stalled scan after the store was unreachable", true, []time.Duration{quick, 0, scanTimeout}, time.Second},
		{"idle, a stalled scan after the store was unreachable", false, []time.Duration{quick, 0, scanTimeout}, idleScan},
		{"idle, a stalled scan after the first found the store unreachable", false, []time.Duration{0, scanTimeout}, idleScan},
	}
	for _, tt := range tests {
		var times ScanTimes
		for _, d := range tt.scans {
			times.Begin()
			// A scan's queries add up: a page read quickly, the rest in the next one.
			times.Add(d / 4)
			times.Add(d - d/4)
		}
		if got := scanWait(tt.behind, time.Second, &times); got != tt.want {
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

package messaging

import (
	"testing"
	"time"
)

func TestRetryDelay(t *testing.T) {
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{1, 100 * time.Millisecond},
		{2, 400 * time.Millisecond},
		{3, 1600 * time.Millisecond},
		{5, 25600 * time.Millisecond},
		{6, time.Minute},
		{10, time.Minute},
		{1000, time.Minute}, // no overflow
	}
	for _, tt := range tests {
		if got := retryDelay(100*time.Millisecond, time.Minute, tt.attempt); got != tt.want {
			t.Errorf("attempt %d: %s, want %s", tt.attempt, got, tt.want)
		}
	}
	// The default delivery limit (10 redeliveries) spans a pod's restart or a store's rollout.
	var total time.Duration
	for a := 1; a <= DefaultDeliveryLimit; a++ {
		total += retryDelay(100*time.Millisecond, time.Minute, a)
	}
	if total < 5*time.Minute {
		t.Errorf("the retries before a dead letter span %s, want at least 5m", total)
	}
}

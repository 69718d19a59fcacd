package messaging_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// TestConsumerLogsCarryTheTrace: what the consumer logs about a delivery names the
// trace of the request that caused it (the delivery's traceparent), as a request's
// log lines do.
func TestConsumerLogsCarryTheTrace(t *testing.T) {
	const traceID = "0af7651916cd43dd8448eb211c80319c" // publish's traceparent
	tests := []struct {
		name, line string
		fail       error
	}{
		{"tried again", "handling failed, trying again", errors.New("store down")},
		{"dead-lettered", "dead-lettering message", messaging.Permanent(errors.New("malformed"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs testproc.Buffer
			rec := newRecorder()
			rec.fail = func(messaging.Delivery) error { return tt.fail }
			p := consumeWorkQueue(t, connectLogging(t, testenv.RabbitMQ(t), &logs), rec)
			publish(t, p, "traced", "work.done")
			var line string
			eventually(t, tt.line, func() bool {
				for l := range strings.Lines(logs.String()) {
					if strings.Contains(l, tt.line) {
						line = l
						return true
					}
				}
				return false
			})
			if !strings.Contains(line, "trace_id="+traceID) {
				t.Errorf("log line without the delivery's trace_id %s: %s", traceID, line)
			}
		})
	}
}

package messaging_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// TestDeliveryCarriesTheRequestID: a message published with the request id of the request
// that caused it hands that id to its handler (web.RequestID of the handler's context, which
// web.LoggerFor and the services' clients read), and the consumer's own lines about the
// delivery name it, as a request's lines do. An id that is not a sane one is not taken.
func TestDeliveryCarriesTheRequestID(t *testing.T) {
	var logs testproc.Buffer
	rec := newRecorder()
	seen := make(chan string, 10)
	var mu sync.Mutex
	calls := map[string]int{}
	rec.fail = func(d messaging.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		if calls[d.ID]++; calls[d.ID] == 1 {
			return errors.New("store down") // one "handling failed, trying again" line
		}
		return nil
	}
	b := connectLogging(t, testenv.RabbitMQ(t), &logs)
	p := messaging.NewPublisher(b)
	t.Cleanup(p.Close)
	c := b.Consume(messaging.ConsumerConfig{Queue: workQueue.Name, RetryDelay: 10 * time.Millisecond,
		Handler: func(ctx context.Context, d messaging.Delivery) error {
			seen <- d.ID + " " + web.RequestID(ctx)
			return rec.handle(ctx, d)
		}})
	t.Cleanup(func() { _ = c.Stop(context.Background()) })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, m := range []struct{ id, requestID string }{{"with-id", "req-42"}, {"odd-id", "bad id"}} {
		err := p.Publish(ctx, messaging.Message{ID: m.id, Type: "work.done", Body: []byte(`{}`), Mandatory: true,
			Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", RequestID: m.requestID})
		if err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"with-id": "with-id req-42", "odd-id": "odd-id "}
	for range 4 { // each is handled twice
		select {
		case got := <-seen:
			id, _, _ := strings.Cut(got, " ")
			if got != want[id] {
				t.Errorf("handler saw %q, want %q", got, want[id])
			}
		case <-ctx.Done():
			t.Fatal("timed out waiting for the deliveries")
		}
	}
	var line string
	eventually(t, "the retry line", func() bool {
		for l := range strings.Lines(logs.String()) {
			if strings.Contains(l, "handling failed, trying again") && strings.Contains(l, "id=with-id") {
				line = l
				return true
			}
		}
		return false
	})
	if !strings.Contains(line, "request_id=req-42") {
		t.Errorf("consumer line without the delivery's request_id: %s", line)
	}
}

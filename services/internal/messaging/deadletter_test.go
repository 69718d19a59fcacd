package messaging_test

import (
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// TestDeadLetterQueueDeletedWhileRunning: a message dead-lettered after its dead-letter
// queue was deleted under the running service is not dropped: the topology is declared
// again before the message is given up, so the dead-letter queue is there to take it.
func TestDeadLetterQueueDeletedWhileRunning(t *testing.T) {
	url := testenv.RabbitMQ(t)
	rec := newRecorder()
	rec.fail = func(messaging.Delivery) error { return messaging.Permanent(errors.New("malformed")) }
	p := consumeWorkQueue(t, connect(t, url), rec)

	ch, closeConn := channel(t, url)
	if _, err := ch.QueueDelete(workQueue.DeadLetterQueue(), false, false, false); err != nil {
		t.Fatal(err)
	}
	closeConn()

	publish(t, p, "poison", "work.done")
	eventually(t, "poison handled", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.seen["poison"]) > 0
	})
	deadline := time.Now().Add(10 * time.Second)
	for dlqDepth(t, url) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("dead letter not in %s (depth %d): dropped", workQueue.DeadLetterQueue(), dlqDepth(t, url))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dlqDepth is the work queue's dead-letter queue's depth, -1 while it does not exist.
func dlqDepth(t *testing.T, url string) int {
	t.Helper()
	ch, closeConn := channel(t, url)
	defer closeConn()
	q, err := ch.QueueDeclarePassive(workQueue.DeadLetterQueue(), true, false, false, false, nil)
	var amqpErr *amqp.Error
	if errors.As(err, &amqpErr) && amqpErr.Code == amqp.NotFound {
		return -1
	}
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}

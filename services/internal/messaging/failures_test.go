package messaging_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// TestConsumeFailuresDoNotOutliveASubscription: the pause after a failed subscription
// grows with the failures in a row, and a subscription made ends the row. Before, only a
// subscription the broker cancelled did: failures of long ago, separated by subscriptions
// that worked and ended idle or with the connection, added up, and one failure later
// stopped consuming for the longest pause (30 s in the services) instead of the first.
func TestConsumeFailuresDoNotOutliveASubscription(t *testing.T) {
	node := testenv.NewRabbitMQNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctl := func(args ...string) {
		t.Helper()
		if err := node.Ctl(ctx, args...); err != nil {
			t.Fatal(err)
		}
	}
	ctl("add_user", "svc", "svc-password")
	ctl("set_permissions", "-p", "/", "svc", ".*", ".*", ".*")
	u, err := url.Parse(node.URL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword("svc", "svc-password")
	var logs testproc.Buffer
	b := connectLogging(t, u.String(), &logs) // ReconnectDelay 100ms

	// onQueue runs f on a channel of another user's connection.
	onQueue := func(f func(ch *amqp.Channel) error) {
		t.Helper()
		conn, err := amqp.Dial(node.URL())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err == nil {
			err = f(ch)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// conflict replaces the queue with a classic one, as someone else may declare it: the
	// service leaves it out and does not consume it (ErrConflict) until resolve removes it.
	conflict := func() (resolve func()) {
		t.Helper()
		onQueue(func(ch *amqp.Channel) error {
			if _, err := ch.QueueDelete(workQueue.Name, false, false, false); err != nil {
				return err
			}
			_, err := ch.QueueDeclare(workQueue.Name, true, false, false, false, nil)
			return err
		})
		return func() {
			onQueue(func(ch *amqp.Channel) error {
				_, err := ch.QueueDelete(workQueue.Name, false, false, false)
				return err
			})
		}
	}

	// Three refusals in a row, then a subscription.
	resolve := conflict()
	ctl("close_all_connections", "test") // the service's connection declares again, and finds the conflict
	c := b.Consume(messaging.ConsumerConfig{Queue: workQueue.Name, Handler: newRecorder().handle, IdleResubscribe: 500 * time.Millisecond})
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	refused := func() bool {
		err := c.Ready(ctx)
		return err != nil && errors.Is(err, messaging.ErrConflict)
	}
	eventually(t, "subscription refused", refused)
	time.Sleep(time.Second) // refused at 0, 0.1 s and 0.5 s; the next try at 2.1 s
	resolve()
	eventually(t, "subscribed", func() bool { return c.Ready(ctx) == nil })

	// Subscribed again and again (idle), then refused once: the user may no longer read
	// the queue, for a moment.
	time.Sleep(time.Second)
	ctl("set_permissions", "-p", "/", "svc", ".*", ".*", "^$")
	eventually(t, "subscription refused again", func() bool {
		err := c.Ready(ctx)
		return err != nil && strings.Contains(err.Error(), "ACCESS_REFUSED")
	})
	ctl("set_permissions", "-p", "/", "svc", ".*", ".*", ".*")
	eventually(t, "subscribed again", func() bool { return c.Ready(ctx) == nil })
	// The first refusal after the subscriptions is the first of its row, whatever the
	// moment the permission came back: its pause is the shortest. (Counted from the three
	// refusals before, it was the fourth, its pause 6.4 s here and 30 s in the services.)
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, "consume failed") && strings.Contains(line, "ACCESS_REFUSED") {
			if !strings.Contains(line, " attempt=1 ") {
				t.Errorf("the first refusal after subscriptions was counted in the earlier row:\n%s", line)
			}
			return
		}
	}
	t.Fatalf("no refused subscription logged:\n%s", logs.String())
}

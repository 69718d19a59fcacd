package messaging_test

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// TestShopQueuesAreDeclaredAsDocumented: the shop's work queues are the durable quorum
// queues the payment and order READMEs describe, with x-delivery-limit 10 (a message is
// delivered at most 11 times) and their dead letters sent to shop.events.dlx under the
// queue's name. A declaration with exactly those arguments is taken by the broker; one
// with another delivery limit is refused (406), so the broker holds the queue to them.
func TestShopQueuesAreDeclaredAsDocumented(t *testing.T) {
	url := testenv.RabbitMQ(t)
	b := messaging.Connect(messaging.Config{URL: url, Name: t.Name(), Topology: messaging.ShopTopology})
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := b.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	declare := func(name string, limit int64) error {
		ch, closeConn := channel(t, url)
		defer closeConn()
		_, err := ch.QueueDeclare(name, true, false, false, false, amqp.Table{
			amqp.QueueTypeArg:           amqp.QueueTypeQuorum,
			"x-delivery-limit":          limit,
			"x-dead-letter-exchange":    "shop.events.dlx",
			"x-dead-letter-routing-key": name,
		})
		return err
	}
	for _, name := range []string{"payment.order-created", "order.payment-results"} {
		if err := declare(name, 10); err != nil {
			t.Errorf("%s declared as documented: %v, want the queue there with those arguments", name, err)
		}
		var amqpErr *amqp.Error
		if err := declare(name, 11); !errors.As(err, &amqpErr) || amqpErr.Code != amqp.PreconditionFailed {
			t.Errorf("%s declared with x-delivery-limit 11: %v, want 406 PRECONDITION_FAILED", name, err)
		}
	}
}

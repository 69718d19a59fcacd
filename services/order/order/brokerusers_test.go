package order_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/controllers/resources"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
	"github.com/shopkeeper-dev/shopkeeper/services/order/shoptest"
)

// TestServicesWithTheOperatorsBrokerUsers runs the shop with the order and payment
// services each connected as a user of its own holding exactly the permissions the
// operator grants it on an in-cluster broker (resources.RabbitMQServiceUsers), on a
// virtual host no one has declared anything on, so that each declaration of the topology
// is a first one (the one that asks the most). An order is paid and another cancelled:
// each service declared, published and consumed as its user.
func TestServicesWithTheOperatorsBrokerUsers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	node := testenv.NewRabbitMQNode(t)
	vhostURL, err := node.NewVhost(ctx)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(vhostURL)
	if err != nil {
		t.Fatal(err)
	}
	vhost := strings.TrimPrefix(u.Path, "/")
	serviceURL := map[string]string{}
	for _, service := range []string{resources.Order, resources.Payment} {
		p, ok := resources.RabbitMQServiceUsers[service]
		if !ok {
			t.Fatalf("the operator makes no broker user for %s", service)
		}
		password := service + "-secret"
		if err := node.Ctl(ctx, "add_user", service, password); err != nil {
			t.Fatal(err)
		}
		if err := node.Ctl(ctx, "set_permissions", "-p", vhost, service, p.Configure, p.Write, p.Read); err != nil {
			t.Fatal(err)
		}
		own := *u
		own.User = url.UserPassword(service, password)
		serviceURL[service] = own.String()
	}
	shop, _ := startShopWithDatabases(t, vhostURL, func(o *shoptest.Options) {
		o.OrderAMQPURL, o.PaymentAMQPURL = serviceURL[resources.Order], serviceURL[resources.Payment]
	})
	for _, ready := range []func(context.Context) error{shop.Order.WaitReady, shop.Payment.WaitReady} {
		if err := ready(ctx); err != nil {
			t.Fatalf("a service did not connect as its user: %v", err)
		}
	}
	user, err := shop.CreateUser(ctx, "Ada Lovelace", "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		price int64
		want  order.Status
	}{{2500, order.Paid}, {600000, order.Cancelled}} {
		product, err := shop.CreateProduct(ctx, "widget", tt.price, 10)
		if err != nil {
			t.Fatal(err)
		}
		placed, err := shop.PlaceOrder(ctx, user, product, 1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := shop.WaitSettled(ctx, placed.ID.Hex())
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != tt.want {
			t.Errorf("order of %d ended %s, want %s", tt.price, got.Status, tt.want)
		}
	}
}

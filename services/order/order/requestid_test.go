package order_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing/tracingtest"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
	"github.com/shopkeeper-dev/shopkeeper/services/order/shoptest"
)

// TestEventsCarryTheRequestID: the request id of an order's request goes with its events,
// order.created to the payment service and the payment result back, so that what the handling
// of the result does names it: a declined order's stock, given back by the order service's
// consumer, is released by a call whose access line at the product service names the order
// request's id, as well as its trace.
func TestEventsCarryTheRequestID(t *testing.T) {
	const (
		requestID = "order-request-1"
		traceID   = "4bf92f3577b34da6a3ce929d0e0e4736"
	)
	tracingtest.Use(t, false) // the propagator a service installs (tracing.Setup), no spans
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	logs := &testproc.Buffer{}
	shop, _ := startShopWithDatabases(t, testenv.RabbitMQ(t), func(o *shoptest.Options) {
		o.Logger = logging.NewTo(logs, "shop", slog.LevelInfo)
	})
	user, product := userAndProduct(ctx, t, shop, "piano", 60000, 5) // over the payment limit
	var placed order.Order
	status, body, err := shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", orderOf(user, product, 2), &placed,
		"X-Request-ID", requestID, "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	if err != nil || status != http.StatusCreated {
		t.Fatalf("%d %s (%v), want 201", status, body, err)
	}
	if got, err := shop.WaitSettled(ctx, placed.ID.Hex()); err != nil || got.Status != order.Cancelled {
		t.Fatalf("order %+v (%v), want CANCELLED", got, err)
	}
	release := "/internal/reservations/" + placed.ID.Hex()
	var line map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for line == nil && time.Now().Before(deadline) {
		for l := range strings.Lines(logs.String()) {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" && m["method"] == "DELETE" && m["path"] == release {
				line = m
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if line == nil {
		t.Fatalf("no access line for DELETE %s in %s", release, logs)
	}
	if line["request_id"] != requestID || line["trace_id"] != traceID {
		t.Errorf("the release's access line names request %v, trace %v; want %s, %s", line["request_id"], line["trace_id"], requestID, traceID)
	}
}

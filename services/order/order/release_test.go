package order_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
	"github.com/shopkeeper-dev/shopkeeper/services/order/shoptest"
)

// releaseFault is what the product service does with a release while it is out.
type releaseFault func(w http.ResponseWriter, r *http.Request)

// hangUp closes the connection without an answer: the product service is unreachable.
func hangUp(w http.ResponseWriter, _ *http.Request) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = c.Close()
	}
}

// failingProduct is a shop whose product service, while out is set, fails every release
// with fault; its reservations and reads are served throughout. served counts the
// releases the product service itself handled.
type failingProduct struct {
	*shoptest.Shop
	dbs    map[string]*mongo.Database
	out    atomic.Bool
	served atomic.Int32
	// failures counts the payment results the order service failed to handle (and
	// retried in place).
	failures atomic.Int32
}

// startShopWithFailingReleases starts such a shop on the broker amqpURL, with the order
// service's CONSUMER_PREFETCH prefetch and PEER_TIMEOUT peerTimeout.
func startShopWithFailingReleases(t *testing.T, amqpURL string, fault releaseFault, prefetch int, peerTimeout time.Duration) *failingProduct {
	t.Helper()
	f := &failingProduct{}
	f.Shop, f.dbs = startShopWithDatabases(t, amqpURL, func(o *shoptest.Options) {
		o.Prefetch, o.PeerTimeout = prefetch, peerTimeout
		o.Logger = slog.New(&countingHandler{Handler: o.Logger.Handler(), message: "handling failed", count: &f.failures})
		o.WrapProduct = func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !isRelease(r) {
					h.ServeHTTP(w, r)
					return
				}
				if f.out.Load() {
					fault(w, r)
					return
				}
				f.served.Add(1)
				h.ServeHTTP(w, r)
			})
		}
	})
	return f
}

// countingHandler counts the log records whose message contains message.
type countingHandler struct {
	slog.Handler
	message string
	count   *atomic.Int32
}

func (h *countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.message) {
		h.count.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (h *countingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &countingHandler{Handler: h.Handler.WithAttrs(attrs), message: h.message, count: h.count}
}

func (h *countingHandler) WithGroup(name string) slog.Handler {
	return &countingHandler{Handler: h.Handler.WithGroup(name), message: h.message, count: h.count}
}

// waitPublished waits until the payment service has charged n orders and published every
// result (its outbox emptied): the results are in order.payment-results, in that order.
func (f *failingProduct) waitPublished(ctx context.Context, t *testing.T, n int64) {
	t.Helper()
	payments := f.dbs["payments"].Collection("payments")
	for {
		all, err := payments.CountDocuments(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		unsent, err := payments.CountDocuments(ctx, bson.D{{Key: "outboxPending", Value: true}})
		if err != nil {
			t.Fatal(err)
		}
		if all == n && unsent == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d payments, %d unsent, want %d all sent: %v", all, unsent, n, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestPaymentSucceededIsNotHeldUpByFailedReleases: with the product service out, the
// payment.failed results ahead of a payment.succeeded in order.payment-results outnumber
// the consumer's prefetch (2). They are handled at once, their orders CANCELLED, and the
// order behind them is PAID within seconds: a release the product service cannot take
// now holds up no other result.
func TestPaymentSucceededIsNotHeldUpByFailedReleases(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	shop := startShopWithFailingReleases(t, testenv.RabbitMQ(t), hangUp, 2, 2*time.Second)
	user, err := shop.CreateUser(ctx, "Ada Lovelace", "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	dear, err := shop.CreateProduct(ctx, "piano", 150000, 10) // over the payment limit
	if err != nil {
		t.Fatal(err)
	}
	cheap, err := shop.CreateProduct(ctx, "pencil", 100, 10)
	if err != nil {
		t.Fatal(err)
	}

	shop.out.Store(true)
	var declined []string
	for range 3 {
		o, err := shop.PlaceOrder(ctx, user, dear, 1)
		if err != nil {
			t.Fatal(err)
		}
		declined = append(declined, o.ID.Hex())
	}
	shop.waitPublished(ctx, t, 3) // the payment.failed results are ahead in the queue
	paid, err := shop.PlaceOrder(ctx, user, cheap, 1)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	within, cancelWithin := context.WithTimeout(ctx, 15*time.Second)
	defer cancelWithin()
	got, err := shop.WaitSettled(within, paid.ID.Hex())
	if err != nil || got.Status != order.Paid {
		t.Fatalf("order behind 3 failed releases: %+v (%v), want PAID within 15 s", got.Status, err)
	}
	t.Logf("PAID %s after it was placed, behind 3 payment.failed with the product service out", time.Since(start).Round(time.Millisecond))
	for _, id := range declined {
		if got, err := shop.WaitSettled(within, id); err != nil || got.Status != order.Cancelled {
			t.Fatalf("declined order %s: %s (%v), want CANCELLED", id, got.Status, err)
		}
	}
	if n := shop.failures.Load(); n != 0 {
		t.Errorf("%d payment results failed and were retried, want none", n)
	}
	shop.expectStock(ctx, t, dear, 7, "while the product service is out")
	shop.expectPendingReleases(ctx, t, len(declined))

	shop.out.Store(false)
	// The service's own sweep may have finished some meanwhile (every 30 s): what is
	// checked is the stock and the records left.
	if n, err := shop.Order.SweepReleases(ctx, 0); err != nil || n > len(declined) {
		t.Fatalf("sweep once the product service is back: %d (%v), want at most %d", n, err, len(declined))
	}
	shop.expectStock(ctx, t, dear, 10, "once swept")
	shop.expectPendingReleases(ctx, t, 0)
}

// expectStock fails the test unless product's stock is want.
func (f *failingProduct) expectStock(ctx context.Context, t *testing.T, product string, want int64, when string) {
	t.Helper()
	if stock, err := f.Stock(ctx, product); err != nil || stock != want {
		t.Fatalf("stock %d (%v) %s, want %d", stock, err, when, want)
	}
}

// expectPendingReleases fails the test unless the order service records want pending
// releases.
func (f *failingProduct) expectPendingReleases(ctx context.Context, t *testing.T, want int) {
	t.Helper()
	if n, err := f.dbs["orders"].Collection("releases").CountDocuments(ctx, bson.D{}); err != nil || n != int64(want) {
		t.Fatalf("%d pending releases (%v), want %d", n, err, want)
	}
}

// TestFailedPaymentWhileTheProductServiceIsOut: an order over the payment limit is
// declined while the product service does not take its stock back. The payment.failed is
// handled at once, without a retry: the order is CANCELLED, announced once, and a pending
// release recorded. Once the product service is back, the sweep gives the stock back,
// once, and removes the record. When the product service answers, the stock is back
// before the order is CANCELLED, and nothing is left to the sweep.
func TestFailedPaymentWhileTheProductServiceIsOut(t *testing.T) {
	const peerTimeout = 2 * time.Second
	tests := []struct {
		name  string
		fault releaseFault // nil: the product service answers
	}{
		{name: "product service answers"},
		{name: "unreachable", fault: hangUp},
		{name: "answers 503", fault: func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, `{"error":"database unavailable"}`, http.StatusServiceUnavailable)
		}},
		{name: "no answer within PEER_TIMEOUT", fault: func(_ http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(3 * peerTimeout):
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			url := testenv.RabbitMQ(t)
			updates := watchOrderUpdated(t, url)
			shop := startShopWithFailingReleases(t, url, tt.fault, 64, peerTimeout)
			user, product := userAndProduct(ctx, t, shop.Shop, "piano", 150000, 5) // over the payment limit
			out := tt.fault != nil
			shop.out.Store(out)
			placed, err := shop.PlaceOrder(ctx, user, product, 2)
			if err != nil {
				t.Fatal(err)
			}

			within, cancelWithin := context.WithTimeout(ctx, 20*time.Second)
			defer cancelWithin()
			got, err := shop.WaitSettled(within, placed.ID.Hex())
			if err != nil || got.Status != order.Cancelled {
				t.Fatalf("order %s (%v), want CANCELLED within 20 s", got.Status, err)
			}
			// Read at once: a client that sees CANCELLED finds the stock back, unless the
			// product service was out.
			wantStock, wantPending := int64(5), 0
			if out {
				wantStock, wantPending = 3, 1
			}
			shop.expectStock(ctx, t, product, wantStock, "when the order is CANCELLED")
			shop.expectPendingReleases(ctx, t, wantPending)
			if n := shop.failures.Load(); n != 0 {
				t.Errorf("the payment.failed failed %d times and was retried, want handled at once", n)
			}

			shop.out.Store(false)
			for i, want := range []int{wantPending, 0} {
				// At most: the service's own sweep (every 30 s) may have been first.
				if n, err := shop.Order.SweepReleases(ctx, 0); err != nil || n > want {
					t.Fatalf("sweep %d: %d (%v), want at most %d", i+1, n, err, want)
				}
				shop.expectStock(ctx, t, product, 5, "once swept")
				shop.expectPendingReleases(ctx, t, 0)
				if n := shop.served.Load(); n != 1 {
					t.Fatalf("after sweep %d the product service gave the stock back %d times, want once", i+1, n)
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for len(updates()[placed.ID.Hex()]) == 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if u := updates()[placed.ID.Hex()]; len(u) != 1 || u[0].Status != order.Cancelled {
				t.Fatalf("order.updated events %+v, want one CANCELLED", u)
			}
		})
	}
}

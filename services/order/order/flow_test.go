package order_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/health"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
	"github.com/shopkeeper-dev/shopkeeper/services/order/shoptest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// startShop runs the four services on fresh databases against amqpURL.
func startShop(t *testing.T, amqpURL string) *shoptest.Shop {
	t.Helper()
	s, _ := startShopWithDatabases(t, amqpURL)
	return s
}

// startShopWithDatabases is startShop also returning each service's database; edits
// change the options before the start.
func startShopWithDatabases(t *testing.T, amqpURL string, edits ...func(*shoptest.Options)) (*shoptest.Shop, map[string]*mongo.Database) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dbs := map[string]*mongo.Database{}
	opts := shoptest.Options{
		AMQPURL: amqpURL,
		// Warnings (broker lost, retries) show with a failing test's output.
		Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Database: func(service string) *mongo.Database {
			dbs[service] = testenv.MongoDB(t)
			return dbs[service]
		},
	}
	for _, e := range edits {
		e(&opts)
	}
	s, err := shoptest.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, dbs
}

// update is an order.updated event as received: its status, and the app_id it was
// published with.
type update struct {
	Status order.Status
	AppID  string
}

// watchOrderUpdated binds a queue to order.updated (no service consumes it) and
// returns a function listing the events received per order so far.
func watchOrderUpdated(t *testing.T, url string) func() map[string][]update {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// Declared here as the services declare it, so the watch may start before them.
	err = ch.ExchangeDeclare(messaging.Exchange, amqp.ExchangeTopic, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("test.order-updated", false, false, true, false, nil)
	if err == nil {
		err = ch.QueueBind(q.Name, messaging.OrderUpdated, messaging.Exchange, false, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string][]update{}
	go func() {
		for d := range deliveries {
			var e order.UpdatedEvent
			_ = json.Unmarshal(d.Body, &e)
			mu.Lock()
			seen[e.OrderID] = append(seen[e.OrderID], update{Status: e.Status, AppID: d.AppId})
			mu.Unlock()
		}
	}()
	return func() map[string][]update {
		mu.Lock()
		defer mu.Unlock()
		out := make(map[string][]update, len(seen))
		for k, v := range seen {
			out[k] = append([]update(nil), v...)
		}
		return out
	}
}

// TestOrderIsPaidOrCancelled: an order under the provider's limit ends PAID with its
// stock taken; one over it ends CANCELLED with a reason and its stock back. Each
// change is announced once as order.updated.
func TestOrderIsPaidOrCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	url := testenv.RabbitMQ(t)
	updates := watchOrderUpdated(t, url)
	shop := startShop(t, url)
	user, err := shop.CreateUser(ctx, "Ada Lovelace", "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		price      int64
		quantity   int
		want       order.Status
		stockAfter int64
	}{
		{name: "paid", price: 2500, quantity: 4, want: order.Paid, stockAfter: 6},
		{name: "declined over the limit", price: 60000, quantity: 2, want: order.Cancelled, stockAfter: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			product, err := shop.CreateProduct(ctx, "widget "+tt.name, tt.price, 10)
			if err != nil {
				t.Fatal(err)
			}
			placed, err := shop.PlaceOrder(ctx, user, product, tt.quantity)
			if err != nil {
				t.Fatal(err)
			}
			if placed.Status != order.Pending || placed.TotalCents != tt.price*int64(tt.quantity) {
				t.Fatalf("placed %+v", placed)
			}
			got, err := shop.WaitSettled(ctx, placed.ID.Hex())
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.want || (tt.want == order.Cancelled) != (got.Reason != "") {
				t.Fatalf("order ended %s (reason %q), want %s", got.Status, got.Reason, tt.want)
			}
			if stock, err := shop.Stock(ctx, product); err != nil || stock != tt.stockAfter {
				t.Fatalf("stock %d (%v), want %d", stock, err, tt.stockAfter)
			}
			ps, err := shop.Payments(ctx, placed.ID.Hex())
			if err != nil || len(ps) != 1 {
				t.Fatalf("%d payments (%v), want 1", len(ps), err)
			}
			// The reason says that the payment failed, and why, as the payment says.
			if want := "payment failed: " + ps[0].Reason; tt.want == order.Cancelled && (ps[0].Reason == "" || got.Reason != want) {
				t.Fatalf("reason %q, want %q", got.Reason, want)
			}
			deadline := time.Now().Add(30 * time.Second)
			for len(updates()[placed.ID.Hex()]) == 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			// The app_id is the service's name, as its README says.
			if u := updates()[placed.ID.Hex()]; len(u) != 1 || u[0] != (update{Status: tt.want, AppID: "order"}) {
				t.Fatalf("order.updated events %+v, want one %s with app_id order", u, tt.want)
			}
		})
	}
}

// TestOrderIsInItsProductsCurrency: an order of products priced in EUR is in EUR, as the
// product service priced its lines, and so is the payment charged for it: USD is only what
// an order is in when its lines name no currency.
func TestOrderIsInItsProductsCurrency(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	shop := startShop(t, testenv.RabbitMQ(t))
	user, err := shop.CreateUser(ctx, "Ada Lovelace", "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	var euro struct{ ID string }
	if status, answer, err := shop.Call(ctx, http.MethodPost, shop.ProductURL+"/products",
		map[string]any{"name": "Croissant", "priceCents": 150, "currency": "EUR", "stock": 5}, &euro); err != nil || status != http.StatusCreated {
		t.Fatalf("create a product in EUR: %d %s (%v)", status, answer, err)
	}
	placed, err := shop.PlaceOrder(ctx, user, euro.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	if placed.Currency != "EUR" || placed.TotalCents != 300 {
		t.Fatalf("placed %s %d, want EUR 300", placed.Currency, placed.TotalCents)
	}
	got, err := shop.WaitSettled(ctx, placed.ID.Hex())
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != order.Paid || got.Currency != "EUR" {
		t.Fatalf("order ended %s in %s, want PAID in EUR", got.Status, got.Currency)
	}
	if ps, err := shop.Payments(ctx, placed.ID.Hex()); err != nil || len(ps) != 1 || ps[0].Currency != "EUR" || ps[0].AmountCents != 300 {
		t.Fatalf("payments %+v (%v), want one of EUR 300", ps, err)
	}
}

// TestReservationAnswerLost: when the product service takes the stock but its answer
// never reaches order (here: it comes after order's peer timeout), the order is not
// placed and the stock comes back. A retry with the same Idempotency-Key then places the
// order afresh, taking the stock once.
func TestReservationAnswerLost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var lose atomic.Bool
	shop, _ := startShopWithDatabases(t, testenv.RabbitMQ(t), func(o *shoptest.Options) { loseReservationAnswers(o, &lose) })
	user, product := userAndProduct(ctx, t, shop, "lamp", 1500, 5)
	body := orderOf(user, product, 2)
	stockIs := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			stock, err := shop.Stock(ctx, product)
			if err == nil && stock == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("stock %d (%v), want %d", stock, err, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	lose.Store(true)
	for _, key := range []string{"", "retry-me"} {
		var header []string
		if key != "" {
			header = []string{"Idempotency-Key", key}
		}
		status, answer, err := shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", body, nil, header...)
		if err != nil || status != http.StatusServiceUnavailable {
			t.Fatalf("key %q: %d %s (%v), want 503", key, status, answer, err)
		}
		stockIs(5)
	}

	lose.Store(false)
	var placed order.Order
	status, answer, err := shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", body, &placed, "Idempotency-Key", "retry-me")
	if err != nil || status != http.StatusCreated {
		t.Fatalf("retry: %d %s (%v), want 201", status, answer, err)
	}
	stockIs(3)
	if got, err := shop.WaitSettled(ctx, placed.ID.Hex()); err != nil || got.Status != order.Paid {
		t.Fatalf("retried order %+v (%v), want PAID", got, err)
	}
}

// lostAnswerPeerTimeout is order's peer timeout in the tests whose product service answers
// a reservation only once order has given up on it (its request's context ends): short, so
// that each lost answer costs little, but far longer than the calls meant to succeed take
// on a loaded machine (300 ms failed one run in about 120).
const lostAnswerPeerTimeout = 2 * time.Second

// loseReservationAnswers has the product service of o, while lose is set, make each
// reservation but answer it only after order gave up on it (lostAnswerPeerTimeout).
func loseReservationAnswers(o *shoptest.Options, lose *atomic.Bool) {
	o.PeerTimeout = lostAnswerPeerTimeout
	o.WrapProduct = func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r) // the reservation is made...
			if r.Method == http.MethodPost && r.URL.Path == "/internal/reservations" && lose.Load() {
				<-r.Context().Done() // ...and its answer comes after order gave up.
			}
		})
	}
}

// startShopWithFailingReservations starts a shop whose product service, while failing is
// set, makes a reservation but answers only after order gave up on it, and refuses to give
// stock back.
func startShopWithFailingReservations(t *testing.T, failing *atomic.Bool, edits ...func(*shoptest.Options)) *shoptest.Shop {
	t.Helper()
	shop, _ := startShopWithDatabases(t, testenv.RabbitMQ(t), func(o *shoptest.Options) {
		for _, edit := range edits {
			edit(o)
		}
		o.PeerTimeout = lostAnswerPeerTimeout
		o.WrapProduct = func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !failing.Load() || !strings.HasPrefix(r.URL.Path, "/internal/reservations") {
					h.ServeHTTP(w, r)
					return
				}
				if r.Method == http.MethodDelete {
					http.Error(w, `{"error":"overloaded"}`, http.StatusServiceUnavailable)
					return
				}
				h.ServeHTTP(w, r)    // the reservation is made...
				<-r.Context().Done() // ...and its answer comes after order gave up.
			})
		}
	})
	return shop
}

// TestSweepGivesBackTheStockOfAnUnstoredOrder: an order whose reservation answer was
// lost, while the product service also refused to give the stock back, leaves its
// stock reserved; the sweep gives it back once the product service answers, and leaves
// stored orders alone.
func TestSweepGivesBackTheStockOfAnUnstoredOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var failing atomic.Bool
	logs := &testproc.Buffer{}
	shop := startShopWithFailingReservations(t, &failing, func(o *shoptest.Options) {
		o.Logger = logging.NewTo(logs, "shop", slog.LevelInfo)
	})
	user, product := userAndProduct(ctx, t, shop, "lamp", 1500, 5)
	stock := func() int64 {
		t.Helper()
		n, err := shop.Stock(ctx, product)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	failing.Store(true)
	status, answer, err := shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", orderOf(user, product, 2), nil)
	if err != nil || status != http.StatusServiceUnavailable {
		t.Fatalf("%d %s (%v), want 503", status, answer, err)
	}
	if got := stock(); got != 3 {
		t.Fatalf("stock %d, want 3: the release was refused", got)
	}
	// The warning names the request (and its trace) its access line names.
	warned := false
	for l := range strings.SplitSeq(logs.String(), "\n") {
		var line map[string]any
		if json.Unmarshal([]byte(l), &line) == nil && line["msg"] == "stock of an unstored order not released yet; the sweep tries again" {
			warned = true
			if line["request_id"] == nil || line["trace_id"] == nil {
				t.Errorf("warning %s names no request_id or trace_id", l)
			}
		}
	}
	if !warned {
		t.Errorf("no warning that the stock was not released in %s", logs)
	}
	// While the product service still refuses, the sweep keeps the placement.
	if n, err := shop.Order.Sweep(ctx, 0); err != nil || n != 0 {
		t.Fatalf("sweep while refused: %d (%v), want 0", n, err)
	}

	failing.Store(false)
	placed, err := shop.PlaceOrder(ctx, user, product, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := shop.Order.Sweep(ctx, 0); err != nil || n != 1 {
		t.Fatalf("sweep: %d (%v), want 1 (the unstored order, not the stored one)", n, err)
	}
	if got := stock(); got != 4 {
		t.Fatalf("stock %d, want 4: 2 units back, 1 held by the stored order", got)
	}
	if got, err := shop.WaitSettled(ctx, placed.ID.Hex()); err != nil || got.Status != order.Paid {
		t.Fatalf("stored order %+v (%v), want PAID", got, err)
	}
	if n, err := shop.Order.Sweep(ctx, 0); err != nil || n != 0 {
		t.Fatalf("second sweep: %d (%v), want 0", n, err)
	}
}

// TestRetryOfAFencedOffOrder: a retry with the Idempotency-Key of an order the sweep fenced
// off, whose stock the product service had not yet taken back, is told to send again (and
// the stock goes back); the next retry places the order afresh.
func TestRetryOfAFencedOffOrder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var failing atomic.Bool
	shop := startShopWithFailingReservations(t, &failing)
	user, product := userAndProduct(ctx, t, shop, "lamp", 1500, 5)
	body := orderOf(user, product, 2)
	post := func(want int, saying string) order.Order {
		t.Helper()
		var o order.Order
		status, answer, err := shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", body, &o, "Idempotency-Key", "k")
		if err != nil || status != want || !strings.Contains(string(answer), saying) {
			t.Fatalf("%d %s (%v), want %d saying %q", status, answer, err, want, saying)
		}
		return o
	}

	failing.Store(true)
	// Its answer came after order gave up, and the product service refused the stock back.
	post(http.StatusServiceUnavailable, "its stock is still being given back")
	if n, err := shop.Order.Sweep(ctx, 0); err != nil || n != 0 {
		t.Fatalf("sweep: %d (%v), want 0: the product service still refuses", n, err)
	}
	failing.Store(false)
	// The order is fenced off: send again.
	post(http.StatusServiceUnavailable, "an earlier attempt with this Idempotency-Key was abandoned")
	if stock, err := shop.Stock(ctx, product); err != nil || stock != 5 {
		t.Fatalf("stock %d (%v), want 5", stock, err)
	}
	placed := post(http.StatusCreated, "")
	if got, err := shop.WaitSettled(ctx, placed.ID.Hex()); err != nil || got.Status != order.Paid {
		t.Fatalf("order %+v (%v), want PAID", got, err)
	}
}

// TestPaymentResultTwice: a payment result delivered again (a redelivery after a lost
// ack, or a duplicate publish) changes nothing and announces nothing twice.
func TestPaymentResultTwice(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	url := testenv.RabbitMQ(t)
	updates := watchOrderUpdated(t, url)
	shop := startShop(t, url)
	user, _ := shop.CreateUser(ctx, "Grace Hopper", "grace@example.com")
	product, err := shop.CreateProduct(ctx, "cable", 300, 5)
	if err != nil {
		t.Fatal(err)
	}
	placed, err := shop.PlaceOrder(ctx, user, product, 1)
	if err != nil {
		t.Fatal(err)
	}
	paid, err := shop.WaitSettled(ctx, placed.ID.Hex())
	if err != nil || paid.Status != order.Paid {
		t.Fatalf("order %s (%v), want PAID", paid.Status, err)
	}

	b := messaging.Connect(messaging.Config{URL: url, Name: "replay", Topology: messaging.ShopTopology})
	defer b.Close()
	pub := messaging.NewPublisher(b)
	defer pub.Close()
	// Results valid in themselves (a payment.failed contradicting the settlement is logged,
	// and changes nothing either).
	statuses := map[string]string{messaging.PaymentSucceeded: "SUCCEEDED", messaging.PaymentFailed: "FAILED"}
	for i, typ := range []string{messaging.PaymentSucceeded, messaging.PaymentFailed, messaging.PaymentSucceeded} {
		body, _ := json.Marshal(order.PaymentResult{OrderID: placed.ID.Hex(), AmountCents: placed.TotalCents,
			Currency: placed.Currency, Status: statuses[typ]})
		if err := pub.Publish(ctx, messaging.Message{ID: fmt.Sprintf("replay-%d", i), Type: typ, Body: body, Mandatory: true}); err != nil {
			t.Fatal(err)
		}
	}
	for testenv.RabbitMQQueueDepth(t, url, messaging.OrderPaymentResults.Name) != 0 {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a wrong second update would be out by now
	got, err := shop.GetOrder(ctx, placed.ID.Hex())
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != order.Paid || !got.UpdatedAt.Equal(paid.UpdatedAt) {
		t.Fatalf("after replays: %s updated %v, want PAID unchanged since %v", got.Status, got.UpdatedAt, paid.UpdatedAt)
	}
	if stock, _ := shop.Stock(ctx, product); stock != 4 {
		t.Fatalf("stock %d after a replayed payment.failed, want 4 (no release of a paid order)", stock)
	}
	if u := updates()[placed.ID.Hex()]; len(u) != 1 {
		t.Fatalf("order.updated events %v, want exactly one", u)
	}
}

// TestBrokerOutage: RabbitMQ stops while 200 orders are being placed and starts again.
// Orders are accepted throughout (their events wait in the outbox), and in the end every
// order is PAID or CANCELLED with exactly one payment: none lost, none stuck.
func TestBrokerOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	node := testenv.NewRabbitMQNode(t)
	shop, dbs := startShopWithDatabases(t, node.URL())
	user, _ := shop.CreateUser(ctx, "Outage Tester", "outage@example.com")
	cheap, err := shop.CreateProduct(ctx, "cheap", 1000, 100000)
	if err != nil {
		t.Fatal(err)
	}
	dear, err := shop.CreateProduct(ctx, "dear", 150000, 100000)
	if err != nil {
		t.Fatal(err)
	}

	const total = 200
	ids := make([]string, total)
	var placed atomic.Int32
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				product := cheap
				if i%5 == 0 { // one in five over the limit: declined, CANCELLED
					product = dear
				}
				o, err := shop.PlaceOrder(ctx, user, product, 1)
				if err != nil {
					t.Errorf("order %d: %v", i, err)
					continue
				}
				ids[i] = o.ID.Hex()
				placed.Add(1)
			}
		})
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for placed.Load() < 30 {
			time.Sleep(5 * time.Millisecond)
		}
		if err := node.Stop(ctx); err != nil {
			t.Errorf("stop RabbitMQ: %v", err)
		}
	}()
	for i := range total {
		if i == 120 {
			<-stopped // the rest are placed while the broker is down
			// Still ready, so that a cluster keeps sending them requests: the outbox holds
			// the events; the broker's absence is reported.
			for _, svc := range []string{shop.OrderURL, shop.PaymentURL} {
				var rep health.Report
				status, body, err := shop.Call(ctx, "GET", svc+"/readyz", nil, &rep)
				if err != nil || status != http.StatusOK || rep.Status != "degraded" || rep.Checks["rabbitmq"] == "ok" {
					t.Errorf("GET %s/readyz while RabbitMQ is down: %d %s %v, want 200, degraded", svc, status, body, err)
				}
			}
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if err := node.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Wait until no order is PENDING; on timeout, say where the work stands.
	pending := bson.D{{Key: "status", Value: order.Pending}}
	deadline := time.Now().Add(4 * time.Minute)
	for {
		n, err := dbs["orders"].Collection("orders").CountDocuments(ctx, pending)
		if err == nil && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			count := func(db, coll string, filter bson.D) int64 {
				n, _ := dbs[db].Collection(coll).CountDocuments(ctx, filter)
				return n
			}
			unsent := bson.D{{Key: "outboxPending", Value: true}}
			t.Fatalf("%d orders still PENDING: orders with unsent events %d, payments %d (unsent %d), ready in %s %d, %s %d, dead letters %d+%d",
				n, count("orders", "orders", unsent), count("payments", "payments", bson.D{}), count("payments", "payments", unsent),
				messaging.PaymentOrderCreated.Name, testenv.RabbitMQQueueDepth(t, node.URL(), messaging.PaymentOrderCreated.Name),
				messaging.OrderPaymentResults.Name, testenv.RabbitMQQueueDepth(t, node.URL(), messaging.OrderPaymentResults.Name),
				testenv.RabbitMQQueueDepth(t, node.URL(), messaging.PaymentOrderCreated.DeadLetterQueue()),
				testenv.RabbitMQQueueDepth(t, node.URL(), messaging.OrderPaymentResults.DeadLetterQueue()))
		}
		time.Sleep(500 * time.Millisecond)
	}

	var paid, cancelled, payments, lost int
	for _, id := range ids {
		if id == "" {
			lost++
			continue
		}
		o, err := shop.WaitSettled(ctx, id)
		if err != nil {
			t.Errorf("order %s: %v", id, err)
			lost++
			continue
		}
		switch o.Status {
		case order.Paid:
			paid++
		case order.Cancelled:
			cancelled++
		}
		ps, err := shop.Payments(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 1 {
			t.Errorf("order %s has %d payments, want 1", id, len(ps))
		}
		payments += len(ps)
	}
	t.Logf("broker outage: orders placed=%d PAID=%d CANCELLED=%d payments=%d lost=%d", placed.Load(), paid, cancelled, payments, lost)
	if int(placed.Load()) != total || paid != total*4/5 || cancelled != total/5 || payments != total || lost != 0 {
		t.Fatalf("want placed=%d PAID=%d CANCELLED=%d payments=%d lost=0", total, total*4/5, total/5, total)
	}
	stock, _ := shop.Stock(ctx, dear)
	if stock != 100000 {
		t.Errorf("stock of the declined product %d, want all of it back (100000)", stock)
	}
}

// Command benchorders measures the order flow: it runs the user, product, order and
// payment services in one process against a private RabbitMQ node and FerretDB (or
// RABBITMQ_URL and MONGODB_URI), places orders through the order service's HTTP API
// and reports orders per second and the latency from an order placed to its PAID
// event. As a reference measured in the same run on the same broker, it reports the
// round trip of a confirmed publish to its consumer, the floor under placed → PAID,
// which takes two such trips (order.created, payment.succeeded) plus the store writes.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
	"github.com/shopkeeper-dev/shopkeeper/services/order/shoptest"
)

func main() {
	orders := flag.Int("orders", 500, "orders to place")
	concurrency := flag.Int("concurrency", 16, "clients placing orders at once")
	rate := flag.Float64("rate", 0, "orders per second to place (an open load); 0: as fast as the clients go")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the services (this process) while orders are placed to `file`")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *orders, *concurrency, *rate, *cpuProfile)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchorders:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, total, concurrency int, rate float64, cpuProfile string) error {
	dir, err := os.MkdirTemp("", "benchorders-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()

	amqpURL := os.Getenv("RABBITMQ_URL")
	if amqpURL == "" {
		node, err := testenv.StartRabbitMQ(ctx, mkdir(dir, "rabbitmq"))
		if err != nil {
			return err
		}
		defer node.Close()
		amqpURL = node.URL()
	}
	mongoURI := os.Getenv("MONGODB_URI")
	if mongoURI == "" {
		fdb, err := testenv.StartFerretDB(ctx, mkdir(dir, "ferretdb"))
		if err != nil {
			return err
		}
		defer func() { _ = fdb.Stop() }()
		mongoURI = fdb.URI
	}
	counter := newCommandCounter()
	client, err := mongo.Connect(options.Client().ApplyURI(mongoURI).SetMonitor(counter.monitor()))
	if err != nil {
		return err
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	run := time.Now().Format("150405")
	shop, err := shoptest.Start(ctx, shoptest.Options{
		AMQPURL:  amqpURL,
		Database: func(service string) *mongo.Database { return client.Database("bench_" + run + "_" + service) },
	})
	if err != nil {
		return err
	}
	defer shop.Close()

	ref, err := publishRoundTrip(ctx, amqpURL, 2000, concurrency)
	if err != nil {
		return fmt.Errorf("reference: %w", err)
	}
	fmt.Printf("reference  confirmed publish -> consume over RabbitMQ: %6.0f msg/s  p50 %6.2f ms  p99 %6.2f ms\n",
		ref.rate, ms(ref.p50), ms(ref.p99))

	stopProfile, err := startCPUProfile(cpuProfile)
	if err != nil {
		return err
	}
	res, err := placeOrders(ctx, shop, amqpURL, total, concurrency, rate, counter)
	stopProfile()
	if err != nil {
		return err
	}
	load := fmt.Sprintf("by %d clients", concurrency)
	if rate > 0 {
		load += fmt.Sprintf(" at %g/s", rate)
	}
	fmt.Printf("orders     %d placed %s in %.2fs: %6.0f orders/s placed, %6.0f orders/s PAID\n",
		total, load, res.placing.Seconds(), float64(total)/res.placing.Seconds(), float64(total)/res.allPaid.Seconds())
	fmt.Printf("           POST /orders      p50 %6.2f ms  p99 %6.2f ms\n", ms(res.post.p50), ms(res.post.p99))
	fmt.Printf("           placed -> PAID    p50 %6.2f ms  p99 %6.2f ms  (goal: >= 300 orders/s, p99 < 50 ms)\n", ms(res.paid.p50), ms(res.paid.p99))
	printCommands(os.Stdout, res.commands, total)
	return nil
}

// startCPUProfile profiles this process into path until the returned function is
// called; an empty path profiles nothing.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}

func mkdir(parent, name string) string {
	d := parent + "/" + name
	_ = os.MkdirAll(d, 0o755)
	return d
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

type percentiles struct{ p50, p99 time.Duration }

func percentilesOf(ds []time.Duration) percentiles {
	slices.Sort(ds)
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return percentiles{p50: at(0.50), p99: at(0.99)}
}

type ordersResult struct {
	placing, allPaid time.Duration
	post, paid       percentiles
	commands         map[string]int
}

// dispatch hands the order numbers 0..total-1 to the clients: at rate per second
// (an open load: latencies at a rate the shop sustains), or as fast as the clients take
// them when rate is 0 (a closed load: the shop's capacity).
func dispatch(ctx context.Context, work chan<- int, total int, rate float64) {
	defer close(work)
	var tick <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer t.Stop()
		tick = t.C
	}
	for i := range total {
		if tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
				return
			}
		}
		select {
		case work <- i:
		case <-ctx.Done():
			return
		}
	}
}

// placeOrders places total orders with concurrency clients; placed → PAID is measured
// from the 201 answer to the order.updated(PAID) event, seen on a queue of our own.
func placeOrders(ctx context.Context, shop *shoptest.Shop, amqpURL string, total, concurrency int, rate float64, counter *commandCounter) (ordersResult, error) {
	users, products := make([]string, 16), make([]string, 16)
	for i := range users {
		var err error
		if users[i], err = shop.CreateUser(ctx, fmt.Sprintf("Bench User %d", i), fmt.Sprintf("bench%d@example.com", i)); err != nil {
			return ordersResult{}, err
		}
		if products[i], err = shop.CreateProduct(ctx, fmt.Sprintf("bench product %d", i), 500, 1_000_000); err != nil {
			return ordersResult{}, err
		}
	}
	paidAt, stopWatch, err := watchPaid(amqpURL)
	if err != nil {
		return ordersResult{}, err
	}
	defer stopWatch()

	counter.reset()
	var mu sync.Mutex
	placedAt := make(map[string]time.Time, total)
	posts := make([]time.Duration, 0, total)
	var failOnce sync.Once
	var failed error
	start := time.Now()
	work := make(chan int)
	go dispatch(ctx, work, total, rate)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for i := range work {
				t0 := time.Now()
				o, err := shop.PlaceOrder(ctx, users[i%len(users)], products[i%len(products)], 1)
				t1 := time.Now()
				if err != nil {
					failOnce.Do(func() { failed = err })
					continue
				}
				mu.Lock()
				placedAt[o.ID.Hex()] = t1
				posts = append(posts, t1.Sub(t0))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	placing := time.Since(start)
	if failed != nil {
		return ordersResult{}, fmt.Errorf("placing orders: %w", failed)
	}

	deadline := time.Now().Add(2 * time.Minute)
	var latencies []time.Duration
	var last time.Time
	for {
		latencies, last = latencies[:0], time.Time{}
		for id, placed := range placedAt {
			if paid, ok := paidAt(id); ok {
				latencies = append(latencies, paid.Sub(placed))
				if paid.After(last) {
					last = paid
				}
			}
		}
		if len(latencies) == total {
			break
		}
		if time.Now().After(deadline) {
			return ordersResult{}, fmt.Errorf("only %d of %d orders PAID after 2 minutes", len(latencies), total)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Count the background work an order leaves too: hold removals and outbox removals
	// wait up to 2 s for a write to ride along with.
	time.Sleep(3 * time.Second)
	return ordersResult{placing: placing, allPaid: last.Sub(start), post: percentilesOf(posts), paid: percentilesOf(latencies),
		commands: counter.reset()}, nil
}

// watchPaid records when each order's order.updated(PAID) event arrives.
func watchPaid(amqpURL string) (func(id string) (time.Time, bool), func(), error) {
	conn, deliveries, err := subscribe(amqpURL, "bench.order-updated", messaging.OrderUpdated)
	if err != nil {
		return nil, nil, err
	}
	var mu sync.Mutex
	paid := map[string]time.Time{}
	go func() {
		for d := range deliveries {
			now := time.Now()
			var e order.UpdatedEvent
			if json.Unmarshal(d.Body, &e) == nil && e.Status == order.Paid {
				mu.Lock()
				paid[e.OrderID] = now
				mu.Unlock()
			}
		}
	}()
	get := func(id string) (time.Time, bool) {
		mu.Lock()
		defer mu.Unlock()
		t, ok := paid[id]
		return t, ok
	}
	return get, func() { _ = conn.Close() }, nil
}

// subscribe binds a new auto-delete queue to key on the shop's exchange and consumes it.
func subscribe(amqpURL, queue, key string) (*amqp.Connection, <-chan amqp.Delivery, error) {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.ExchangeDeclare(messaging.Exchange, amqp.ExchangeTopic, true, false, false, false, nil)
	}
	if err == nil {
		_, err = ch.QueueDeclare(queue, false, true, true, false, nil)
	}
	if err == nil {
		err = ch.QueueBind(queue, key, messaging.Exchange, false, nil)
	}
	var deliveries <-chan amqp.Delivery
	if err == nil {
		deliveries, err = ch.Consume(queue, "", true, true, false, false, nil)
	}
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return conn, deliveries, nil
}

type roundTrip struct {
	rate     float64
	p50, p99 time.Duration
}

// publishRoundTrip publishes n persistent messages with the services' publisher
// (confirms, mandatory) from concurrency goroutines and times each from publish to
// delivery on a consumer.
func publishRoundTrip(ctx context.Context, amqpURL string, n, concurrency int) (roundTrip, error) {
	const key = "bench.reference"
	conn, deliveries, err := subscribe(amqpURL, "bench.reference", key)
	if err != nil {
		return roundTrip{}, err
	}
	defer func() { _ = conn.Close() }()
	b := messaging.Connect(messaging.Config{URL: amqpURL, Name: "bench"})
	defer b.Close()
	pub := messaging.NewPublisher(b)
	defer pub.Close()
	if err := b.WaitReady(ctx); err != nil {
		return roundTrip{}, err
	}

	sent := make([]time.Time, n)
	var mu sync.Mutex
	var next atomic.Int64
	errc := make(chan error, concurrency)
	start := time.Now()
	for range concurrency {
		go func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					errc <- nil
					return
				}
				mu.Lock()
				sent[i] = time.Now()
				mu.Unlock()
				if err := pub.Publish(ctx, messaging.Message{ID: fmt.Sprint(i), Type: key, Body: []byte(`{}`), Mandatory: true}); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	latencies := make([]time.Duration, 0, n)
	timeout := time.After(time.Minute)
	for len(latencies) < n {
		select {
		case d := <-deliveries:
			var i int
			_, _ = fmt.Sscan(d.MessageId, &i)
			mu.Lock()
			latencies = append(latencies, time.Since(sent[i]))
			mu.Unlock()
		case <-timeout:
			return roundTrip{}, fmt.Errorf("only %d of %d messages consumed", len(latencies), n)
		}
	}
	elapsed := time.Since(start)
	for range concurrency {
		if err := <-errc; err != nil {
			return roundTrip{}, err
		}
	}
	p := percentilesOf(latencies)
	return roundTrip{rate: float64(n) / elapsed.Seconds(), p50: p.p50, p99: p.p99}, nil
}

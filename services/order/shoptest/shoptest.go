// Package shoptest runs the user, product, order and payment services in one process,
// each on its own loopback HTTP server and database, against a real broker and store:
// what the order flow's end-to-end tests and the order benchmark need.
package shoptest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
	"github.com/shopkeeper-dev/shopkeeper/services/payment/payment"
	producthttp "github.com/shopkeeper-dev/shopkeeper/services/product/httpapi"
	productstore "github.com/shopkeeper-dev/shopkeeper/services/product/store"
	userhttp "github.com/shopkeeper-dev/shopkeeper/services/user/httpapi"
	userstore "github.com/shopkeeper-dev/shopkeeper/services/user/store"
)

// Options says where the shop's stores are.
type Options struct {
	// AMQPURL is the broker (a vhost of its own).
	AMQPURL string
	// OrderAMQPURL and PaymentAMQPURL, when set, are the order and payment services' own
	// URLs of that broker (a user of their own each, as the operator gives them); AMQPURL
	// otherwise.
	OrderAMQPURL, PaymentAMQPURL string
	// Database returns the database of a service ("users", "products", "orders", "payments").
	Database func(service string) *mongo.Database
	// PaymentLimitCents is the provider's limit; 0 means the default 100000.
	PaymentLimitCents int64
	// Logger for the services; nil discards.
	Logger *slog.Logger
	// PeerTimeout bounds order's calls to user and product; 0 means 10 s.
	PeerTimeout time.Duration
	// PlacementTimeout bounds a POST /orders up to its answer; 0 means 30 s.
	PlacementTimeout time.Duration
	// WrapProduct, if set, wraps the product service's handler: a test's way to slow it
	// down or lose its answers.
	WrapProduct func(http.Handler) http.Handler
	// Prefetch is the order service's CONSUMER_PREFETCH; 0 means 64.
	Prefetch int
	// PendingCheckAfter is the order service's PENDING_CHECK_AFTER; 0 means 2 min.
	PendingCheckAfter time.Duration
}

// Shop is the running suite. Its URLs are the services' base URLs.
type Shop struct {
	UserURL, ProductURL, OrderURL, PaymentURL string

	opts    Options
	Order   *order.App
	Payment *payment.App
	// order and payment serve Order's and Payment's handlers at OrderURL and PaymentURL.
	order, payment *swappable
	servers        []*httptest.Server
	client         *http.Client
	dbs            map[string]*mongo.Database // Options.Database's answers, each asked once
}

// database returns the database of service, the same one each time.
func (s *Shop) database(service string) *mongo.Database {
	if s.dbs[service] == nil {
		s.dbs[service] = s.opts.Database(service)
	}
	return s.dbs[service]
}

// Start starts the four services and waits until order and payment reach the broker.
func Start(ctx context.Context, opts Options) (*Shop, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PaymentLimitCents == 0 {
		opts.PaymentLimitCents = 100000
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 512
	s := &Shop{opts: opts, client: &http.Client{Transport: transport, Timeout: 30 * time.Second},
		dbs: map[string]*mongo.Database{}}
	users := userstore.New(s.database("users"))
	if err := users.EnsureIndexes(ctx); err != nil {
		return nil, err
	}
	s.UserURL = s.serve(userhttp.NewHandler(users, opts.Logger, metrics.NewRegistry()))
	product := producthttp.NewHandler(productstore.New(s.database("products")), opts.Logger, metrics.NewRegistry())
	if opts.WrapProduct != nil {
		product = opts.WrapProduct(product)
	}
	s.ProductURL = s.serve(product)
	if opts.PeerTimeout == 0 {
		opts.PeerTimeout = 10 * time.Second
	}
	if opts.PlacementTimeout == 0 {
		opts.PlacementTimeout = 30 * time.Second
	}
	if opts.Prefetch == 0 {
		opts.Prefetch = 64
	}
	if opts.PendingCheckAfter == 0 {
		opts.PendingCheckAfter = 2 * time.Minute
	}
	s.opts = opts

	s.payment, s.PaymentURL = s.serveSwappable()
	s.order, s.OrderURL = s.serveSwappable()
	for _, start := range []func(context.Context) error{s.StartPayment, s.StartOrder} {
		if err := start(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	for _, wait := range []func(context.Context) error{s.Order.WaitReady, s.Payment.WaitReady} {
		if err := wait(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// StartOrder starts the order service at OrderURL, on its database as it is. Start starts
// it; a test starts it again after StopOrder.
func (s *Shop) StartOrder(ctx context.Context) error {
	app, err := order.New(ctx, order.Config{
		Broker: messaging.Settings{URL: cmp.Or(s.opts.OrderAMQPURL, s.opts.AMQPURL)}, UserServiceURL: s.UserURL, ProductServiceURL: s.ProductURL,
		PaymentServiceURL: s.PaymentURL, PeerTimeout: s.opts.PeerTimeout, PlacementTimeout: s.opts.PlacementTimeout,
		PendingCheckAfter: s.opts.PendingCheckAfter, Prefetch: s.opts.Prefetch,
	}, s.database("orders"), s.opts.Logger)
	if err != nil {
		return err
	}
	s.Order = app
	s.order.set(app.Handler(metrics.NewRegistry()))
	return nil
}

// StopOrder stops the order service: it stops consuming, and OrderURL answers 503 until
// StartOrder.
func (s *Shop) StopOrder(ctx context.Context) error {
	s.order.set(nil)
	app := s.Order
	s.Order = nil
	return app.Close(ctx)
}

// StartPayment starts the payment service at PaymentURL, on its database as it is.
// Start starts it; a test starts it again after StopPayment.
func (s *Shop) StartPayment(ctx context.Context) error {
	app, err := payment.New(ctx, payment.Config{
		Base: config.Base{}, Broker: messaging.Settings{URL: cmp.Or(s.opts.PaymentAMQPURL, s.opts.AMQPURL)},
		LimitCents: s.opts.PaymentLimitCents, Prefetch: 64,
	}, s.database("payments"), s.opts.Logger)
	if err != nil {
		return err
	}
	s.Payment = app
	s.payment.set(app.Handler(metrics.NewRegistry()))
	return nil
}

// StopPayment stops the payment service: it stops consuming, and PaymentURL answers 503
// until StartPayment.
func (s *Shop) StopPayment(ctx context.Context) error {
	s.payment.set(nil)
	app := s.Payment
	s.Payment = nil
	return app.Close(ctx)
}

// swappable serves the handler set last, and 503 while there is none: a service stopped
// and started again keeps its URL, which its peers were given.
type swappable struct{ h atomic.Pointer[http.Handler] }

func (sw *swappable) set(h http.Handler) {
	if h == nil {
		sw.h.Store(nil)
		return
	}
	sw.h.Store(&h)
}

func (sw *swappable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := sw.h.Load()
	if h == nil {
		http.Error(w, `{"error":"service stopped"}`, http.StatusServiceUnavailable)
		return
	}
	(*h).ServeHTTP(w, r)
}

// serveSwappable starts a server for a service that a test may stop and start again.
func (s *Shop) serveSwappable() (*swappable, string) {
	sw := &swappable{}
	return sw, s.serve(sw)
}

func (s *Shop) serve(h http.Handler) string {
	srv := httptest.NewServer(h)
	s.servers = append(s.servers, srv)
	return srv.URL
}

// Close stops everything.
func (s *Shop) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if s.Order != nil {
		_ = s.Order.Close(ctx)
	}
	if s.Payment != nil {
		_ = s.Payment.Close(ctx)
	}
	for _, srv := range s.servers {
		srv.Close()
	}
}

// Call sends a JSON request and decodes a 2xx JSON answer into out; it returns the
// status and the raw body.
func (s *Shop) Call(ctx context.Context, method, url string, body, out any, header ...string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, data, err
		}
	}
	return resp.StatusCode, data, nil
}

// CreateUser creates a user and returns its id.
func (s *Shop) CreateUser(ctx context.Context, name, email string) (string, error) {
	var u struct{ ID string }
	if err := s.expect(ctx, http.StatusCreated, "POST", s.UserURL+"/users", map[string]string{"name": name, "email": email}, &u); err != nil {
		return "", err
	}
	return u.ID, nil
}

// CreateProduct creates a product and returns its id.
func (s *Shop) CreateProduct(ctx context.Context, name string, priceCents, stock int64) (string, error) {
	var p struct{ ID string }
	body := map[string]any{"name": name, "description": "test product", "priceCents": priceCents, "currency": "USD", "stock": stock}
	if err := s.expect(ctx, http.StatusCreated, "POST", s.ProductURL+"/products", body, &p); err != nil {
		return "", err
	}
	return p.ID, nil
}

// Stock returns a product's stock.
func (s *Shop) Stock(ctx context.Context, productID string) (int64, error) {
	var p struct{ Stock int64 }
	err := s.expect(ctx, http.StatusOK, "GET", s.ProductURL+"/products/"+productID, nil, &p)
	return p.Stock, err
}

// PlaceOrder places an order of quantity units of productID.
func (s *Shop) PlaceOrder(ctx context.Context, userID, productID string, quantity int) (order.Order, error) {
	var o order.Order
	body := order.PlaceRequest{UserID: userID, Items: []order.RequestItem{{ProductID: productID, Quantity: quantity}}}
	err := s.expect(ctx, http.StatusCreated, "POST", s.OrderURL+"/orders", body, &o)
	return o, err
}

// GetOrder reads an order.
func (s *Shop) GetOrder(ctx context.Context, id string) (order.Order, error) {
	var o order.Order
	err := s.expect(ctx, http.StatusOK, "GET", s.OrderURL+"/orders/"+id, nil, &o)
	return o, err
}

// Payments lists the payments of an order.
func (s *Shop) Payments(ctx context.Context, orderID string) ([]payment.Payment, error) {
	var page mongodb.Page[payment.Payment]
	err := s.expect(ctx, http.StatusOK, "GET", s.PaymentURL+"/payments?orderId="+orderID, nil, &page)
	return page.Items, err
}

// WaitSettled polls an order until it is no longer PENDING.
func (s *Shop) WaitSettled(ctx context.Context, id string) (order.Order, error) {
	for {
		o, err := s.GetOrder(ctx, id)
		if err == nil && o.Status != order.Pending {
			return o, nil
		}
		select {
		case <-ctx.Done():
			return o, fmt.Errorf("order %s still %s: %w", id, o.Status, errors.Join(err, ctx.Err()))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *Shop) expect(ctx context.Context, want int, method, url string, body, out any) error {
	status, data, err := s.Call(ctx, method, url, body, out)
	if err != nil {
		return err
	}
	if status != want {
		return fmt.Errorf("%s %s: %d %s", method, url, status, bytes.TrimSpace(data))
	}
	return nil
}

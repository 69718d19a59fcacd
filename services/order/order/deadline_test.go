package order_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
	"github.com/shopkeeper-dev/shopkeeper/services/order/shoptest"
)

// dbProxy forwards TCP connections to the test database, and can hold back the database's
// replies (a slow database: they arrive late) or drop what the service sends (writes lost
// on their way, which never reach the database).
type dbProxy struct {
	hold, drop atomic.Bool
}

// startDBProxy starts a dbProxy in front of the test database and returns a database of
// the test server reached through it.
func startDBProxy(t *testing.T) (*dbProxy, *mongo.Database) {
	t.Helper()
	u, err := url.Parse(testenv.MongoURI(t))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dbProxy{}
	var conns sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); conns.Wait() })
	conns.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() { p.serve(c, u.Host) })
		}
	})
	client, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + ln.Addr().String() + "/").SetTimeout(30 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return p, client.Database(testenv.MongoDB(t).Name())
}

// serve forwards c to the database at addr until either side closes.
func (p *dbProxy) serve(c net.Conn, addr string) {
	defer c.Close()
	db, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer db.Close()
	var both sync.WaitGroup
	both.Go(func() { // the service's requests
		defer db.Close()
		p.copy(db, c, func() bool { return !p.drop.Load() })
	})
	both.Go(func() { // the database's replies
		defer c.Close()
		p.copy(c, db, func() bool {
			for p.hold.Load() {
				time.Sleep(time.Millisecond)
			}
			return true
		})
	})
	both.Wait()
}

// copy copies src to dst, each read passed on when pass says so.
func (p *dbProxy) copy(dst io.Writer, src io.Reader, pass func() bool) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && pass() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// startShopBehindDBProxy starts a shop whose order service reaches its database as
// ordersDB (startDBProxy), with PEER_TIMEOUT peerTimeout and PLACEMENT_TIMEOUT budget, and
// the product service's handler wrapped in wrapProduct.
func startShopBehindDBProxy(t *testing.T, ordersDB *mongo.Database, peerTimeout, budget time.Duration,
	wrapProduct func(http.Handler) http.Handler) *shoptest.Shop {
	t.Helper()
	shop, _ := startShopWithDatabases(t, testenv.RabbitMQ(t), func(o *shoptest.Options) {
		o.PeerTimeout, o.PlacementTimeout = peerTimeout, budget
		others := o.Database
		o.Database = func(service string) *mongo.Database {
			if service == "orders" {
				return ordersDB
			}
			return others(service)
		}
		o.WrapProduct = wrapProduct
	})
	return shop
}

// isReservation tells the product service's reservation requests; isRelease, its releases.
func isReservation(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/internal/reservations")
}

func isRelease(r *http.Request) bool {
	return r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/internal/reservations")
}

// TestPlacementAnswerTellsWhatBecameOfTheOrder: the product service answers the
// reservation late in the placement's budget (PLACEMENT_TIMEOUT 4 s), and then the order's
// database is slow, or loses the service's writes for a while. Whatever the answer, it
// tells the truth, and the stock follows it without waiting for the sweep (30 s):
//   - 201: the order is stored, its stock taken;
//   - 503 "the order may have been placed": the order is stored with its stock, or not
//     stored and its stock given back;
//   - any other 503 (nothing placed): no order is stored, the stock is back, and the same
//     request sent again without a key places the order.
//
// The write and its fence run past the deadline of the peers (budget - storeMargin), so a
// reservation answered that late is given up instead of cutting the write short.
func TestPlacementAnswerTellsWhatBecameOfTheOrder(t *testing.T) {
	// Wide margins around each deadline, so that a busy machine (the race detector, other
	// packages' tests) moves no step across one: steps before the write until 6.5 s, the
	// write until 7.25 s.
	const budget = 8 * time.Second
	tests := []struct {
		name string
		// reserved is when the product service answers the reservation.
		reserved time.Duration
		// fault is what the database does for faultFor once the reservation is answered.
		fault    func(*dbProxy) *atomic.Bool
		faultFor time.Duration
		// want is the answer expected (its status, and a part of its error).
		wantStatus int
		wantError  string
	}{
		{
			name:     "reservation answered past the peers' deadline, database slow",
			reserved: 7 * time.Second, fault: func(p *dbProxy) *atomic.Bool { return &p.hold }, faultFor: 800 * time.Millisecond,
			wantStatus: http.StatusServiceUnavailable, wantError: "product service unavailable",
		},
		{
			name:     "database answers the write after the deadline",
			reserved: 3500 * time.Millisecond, fault: func(p *dbProxy) *atomic.Bool { return &p.hold }, faultFor: 5 * time.Second,
			wantStatus: http.StatusServiceUnavailable, wantError: "the order may have been placed",
		},
		{
			name:     "write lost on its way to the database",
			reserved: 3500 * time.Millisecond, fault: func(p *dbProxy) *atomic.Bool { return &p.drop }, faultFor: 800 * time.Millisecond,
			wantStatus: http.StatusServiceUnavailable, wantError: "database unavailable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			proxy, ordersDB := startDBProxy(t)
			fault := tt.fault(proxy)
			var reservations atomic.Int32
			var posted atomic.Int64 // when the POST was sent, in Unix nanoseconds
			shop := startShopBehindDBProxy(t, ordersDB, 10*time.Second, budget, func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					first := isReservation(r) && reservations.Add(1) == 1
					if first {
						time.Sleep(tt.reserved - time.Since(time.Unix(0, posted.Load())))
					}
					h.ServeHTTP(w, r)
					if first {
						fault.Store(true)
						time.AfterFunc(tt.faultFor, func() { fault.Store(false) })
					}
				})
			})
			user, product := userAndProduct(ctx, t, shop, "kettle", 3400, 1)

			start := time.Now()
			posted.Store(start.UnixNano())
			status, answer, err := shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", orderOf(user, product, 1), nil)
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("answer after %s: %d %s", took.Round(time.Millisecond), status, answer)
			if took >= budget+time.Second {
				t.Errorf("answer after %s, want it by PLACEMENT_TIMEOUT %s", took, budget)
			}
			if status != tt.wantStatus || !strings.Contains(string(answer), tt.wantError) {
				t.Errorf("answer %d %s, want %d %q", status, answer, tt.wantStatus, tt.wantError)
			}

			// The outcome settles within seconds, well before the sweep.
			orders, stock := settled(ctx, t, shop, user, product)
			mayExist := strings.Contains(string(answer), "the order may have been placed")
			switch {
			case status == http.StatusCreated && (orders != 1 || stock != 0):
				t.Fatalf("201, yet %d orders stored and stock %d, want 1 and 0", orders, stock)
			case status == http.StatusServiceUnavailable && mayExist && int64(orders)+stock != 1:
				t.Fatalf("the order may exist: %d orders stored and stock %d, want the kettle in one or the other", orders, stock)
			case status == http.StatusServiceUnavailable && !mayExist && (orders != 0 || stock != 1):
				t.Fatalf("503, nothing placed, yet %d orders stored and stock %d, want 0 and 1", orders, stock)
			}
			if status == http.StatusServiceUnavailable && !mayExist {
				// Send it again, as the answer says.
				var placed order.Order
				if status, answer, err := shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", orderOf(user, product, 1), &placed); err != nil || status != http.StatusCreated {
					t.Fatalf("the same request again: %d %s (%v), want 201", status, answer, err)
				}
				if got, err := shop.WaitSettled(ctx, placed.ID.Hex()); err != nil || got.Status != order.Paid {
					t.Fatalf("order %+v (%v), want PAID", got, err)
				}
			}
		})
	}
}

// settled waits until the placement of user's order of product is over (its stock taken
// by a stored order or given back), for at most 5 s, and returns how many orders the user
// has and the product's stock then.
func settled(ctx context.Context, t *testing.T, shop *shoptest.Shop, user, product string) (orders int, stock int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var page struct{ Items []order.Order }
		status, answer, err := shop.Call(ctx, http.MethodGet, shop.OrderURL+"/orders?userId="+user, nil, &page)
		if err != nil || status != http.StatusOK {
			t.Fatalf("list orders: %d %s (%v)", status, answer, err)
		}
		stock, err := shop.Stock(ctx, product)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items)+int(stock) == 1 || time.Now().After(deadline) {
			return len(page.Items), stock
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatal(ctx.Err())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFencedOffOrderIsNothingPlacedOnceItsStockIsBack: the order's write is lost on its
// way, the fence settles that it will never be stored, and the release of its stock is
// slow (it ends after the answer) or fails (the sweep's, 30 s later). The answer is a 503
// that says nothing was placed, but not that the stock is back nor the key freed: a retry
// then would find the stock short. Sent again with the same Idempotency-Key, as it says,
// the request places the order.
func TestFencedOffOrderIsNothingPlacedOnceItsStockIsBack(t *testing.T) {
	// The write is lost until it gives up, at 7.25 s (PLACEMENT_TIMEOUT 8 s less half its
	// store margin); a slow release then ends 3 s later, 2 s after the answer, and 2 s
	// before PEER_TIMEOUT.
	const budget, peerTimeout = 8 * time.Second, 5 * time.Second
	tests := []struct {
		name string
		// release is what the product service does with the order's first release.
		release func(w http.ResponseWriter) (served bool)
	}{
		{
			name: "release slower than the deadline",
			release: func(http.ResponseWriter) bool {
				time.Sleep(3 * time.Second)
				return false
			},
		},
		{
			name: "release failed",
			release: func(w http.ResponseWriter) bool {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = io.WriteString(w, `{"error":"busy"}`)
				return true
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			proxy, ordersDB := startDBProxy(t)
			var reservations, releases atomic.Int32
			shop := startShopBehindDBProxy(t, ordersDB, peerTimeout, budget, func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if isRelease(r) && releases.Add(1) == 1 && tt.release(w) {
						return
					}
					first := isReservation(r) && reservations.Add(1) == 1
					h.ServeHTTP(w, r)
					if first {
						proxy.drop.Store(true)
						time.AfterFunc(time.Second, func() { proxy.drop.Store(false) })
					}
				})
			})
			user, product := userAndProduct(ctx, t, shop, "kettle", 3400, 1)
			key := []string{"Idempotency-Key", "kettle-1"}

			start := time.Now()
			status, answer, err := shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", orderOf(user, product, 1), nil, key...)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("answer after %s: %d %s", time.Since(start).Round(time.Millisecond), status, answer)
			if status != http.StatusServiceUnavailable || !strings.Contains(string(answer), "its stock is still being given back") {
				t.Fatalf("answer %d %s, want 503 saying the stock is still being given back", status, answer)
			}

			// Sent again with the key, as the answer says, until placed: an attempt may
			// finish the release and find the key's attempt abandoned, which frees it.
			var placed order.Order
			for attempt := 2; status != http.StatusCreated; attempt++ {
				if attempt > 3 {
					t.Fatalf("not placed after %d attempts with the key", attempt-1)
				}
				status, answer, err = shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", orderOf(user, product, 1), &placed, key...)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("attempt %d: %d %s", attempt, status, answer)
				if status != http.StatusCreated && (status != http.StatusServiceUnavailable || strings.Contains(string(answer), "may have been placed")) {
					t.Fatalf("attempt %d: %d %s, want 201, or a 503 saying nothing was placed", attempt, status, answer)
				}
			}
			if orders, stock := settled(ctx, t, shop, user, product); orders != 1 || stock != 0 {
				t.Fatalf("placed, yet %d orders stored and stock %d, want 1 and 0", orders, stock)
			}
		})
	}
}

// TestRetryWhileTheFenceRunsIsNotToldNothingWasPlaced: the database answers the order's
// write, which lands, and its fence late, after the answer (a 503 "the order may have been
// placed"). The same request sent again at once with the same Idempotency-Key, as that
// answer says, waits for the fence until its own steps' deadline: its 503 must not say that
// nothing was placed, for the order is stored. Once the fence is over, the key answers the
// order.
func TestRetryWhileTheFenceRunsIsNotToldNothingWasPlaced(t *testing.T) {
	// PLACEMENT_TIMEOUT 2 s: the write gives up at 1.75 s, the first answer at 2 s, the
	// retry stops waiting at about 3.5 s (2 s + 2 s less its store margin); the database's
	// replies come at 5 s, and the fence would give up at 6.75 s (5 s after it starts).
	const budget = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	proxy, ordersDB := startDBProxy(t)
	var reservations atomic.Int32
	var posted atomic.Int64 // when the POST was sent, in Unix nanoseconds
	shop := startShopBehindDBProxy(t, ordersDB, time.Second, budget, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			first := isReservation(r) && reservations.Add(1) == 1
			h.ServeHTTP(w, r)
			if first {
				proxy.hold.Store(true)
				time.AfterFunc(5*time.Second-time.Since(time.Unix(0, posted.Load())), func() { proxy.hold.Store(false) })
			}
		})
	})
	user, product := userAndProduct(ctx, t, shop, "kettle", 3400, 1)
	key := []string{"Idempotency-Key", "kettle-1"}

	tests := []struct {
		name       string
		wantStatus int
		wantError  string
	}{
		{name: "first attempt, the fence still running", wantStatus: http.StatusServiceUnavailable, wantError: "the order may have been placed"},
		{name: "retry at once, the fence still running", wantStatus: http.StatusServiceUnavailable, wantError: "still being settled"},
	}
	posted.Store(time.Now().UnixNano())
	for _, tt := range tests {
		start := time.Now()
		status, answer, err := shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", orderOf(user, product, 1), nil, key...)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: answer after %s: %d %s", tt.name, time.Since(start).Round(time.Millisecond), status, answer)
		if status != tt.wantStatus || !strings.Contains(string(answer), tt.wantError) {
			t.Fatalf("%s: answer %d %s, want %d %q", tt.name, status, answer, tt.wantStatus, tt.wantError)
		}
	}
	if orders, stock := settled(ctx, t, shop, user, product); orders != 1 || stock != 0 {
		t.Fatalf("%d orders stored and stock %d, want the order stored with its stock", orders, stock)
	}
	var again order.Order
	if status, answer, err := shop.Call(ctx, http.MethodPost, shop.OrderURL+"/orders", orderOf(user, product, 1), &again, key...); err != nil || status != http.StatusOK {
		t.Fatalf("once settled, the same request again: %d %s (%v), want 200 and the order", status, answer, err)
	}
}

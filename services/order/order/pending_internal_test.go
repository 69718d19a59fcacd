package order

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging/outbox"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/payment/payment"
)

// payingService stands in for the payment service's GET /internal/payments: it answers
// the payments it holds, by order id, notes the order ids of each call, and answers 503
// while failing is set.
type payingService struct {
	mu       sync.Mutex
	payments map[string]PaymentResult
	calls    [][]string
	failing  bool
	delay    time.Duration // before each answer
}

func (p *payingService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	time.Sleep(p.delay)
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := strings.Split(r.URL.Query().Get("orderIds"), ",")
	p.calls = append(p.calls, ids)
	if r.URL.Path != "/internal/payments" || p.failing {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	items := []payment.Payment{} // as the payment service answers them
	for _, id := range ids {
		if r, ok := p.payments[id]; ok {
			paymentID, _ := bson.ObjectIDFromHex(r.PaymentID)
			items = append(items, payment.Payment{ID: paymentID, OrderID: id, AmountCents: r.AmountCents,
				Currency: r.Currency, Status: payment.Status(r.Status), Reason: r.Reason})
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"items": items})
}

// newServiceWithPayments returns a service on a fresh database whose payment service is
// pay, called with peerTimeout as PEER_TIMEOUT.
func newServiceWithPayments(ctx context.Context, t *testing.T, pay *payingService, peerTimeout time.Duration) *service {
	t.Helper()
	s, _ := newServiceWithProduct(ctx, t)
	srv := httptest.NewServer(pay)
	t.Cleanup(srv.Close)
	var err error
	if s.peers, err = newPeers("http://user.invalid", s.peers.product.String(), srv.URL, peerTimeout); err != nil {
		t.Fatal(err)
	}
	return s
}

// set holds payment r for its order, and fails every call while failing is set.
func (p *payingService) set(r *PaymentResult, failing bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r != nil {
		p.payments[r.OrderID] = *r
	}
	p.failing = failing
}

// firstAsked returns the first order id of each call so far, and forgets them.
func (p *payingService) firstAsked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, c := range p.calls {
		out = append(out, c[0])
	}
	p.calls = nil
	return out
}

// TestSweepPendingResumesWhereItStopped: a pass over the PENDING orders goes on, run after
// run, from the last order it finished, whether a run stopped at its budget or at a failure
// of the payment service; so the orders at the end of a long list are reached. A whole
// pass asks about a page of orders per call.
func TestSweepPendingResumesWhereItStopped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pay := &payingService{payments: map[string]PaymentResult{}}
	s := newServiceWithPayments(ctx, t, pay, 2*time.Second)
	// 250 PENDING orders, three pages; the first, the 151st and the last have a payment.
	ids := make([]bson.ObjectID, 250)
	for i := range ids {
		ids[i] = bson.NewObjectID()
		if err := storeOrder(s, Pending)(ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{0, 150, 249} {
		pay.set(&PaymentResult{PaymentID: bson.NewObjectID().Hex(), OrderID: ids[i].Hex(),
			AmountCents: 100, Currency: "USD", Status: paymentSucceeded}, false)
	}
	// A budget spent at once: one order a run, and the next run goes on after it. The
	// payment service failing at the 121st: that run stops, and the next asks again from it.
	var pass pendingPass
	var want []string
	settled := 0
	for run := 0; run <= len(ids); run++ {
		if run == 120 {
			pay.set(nil, true)
			if _, err := s.sweepPending(ctx, &pass, 0, time.Hour, time.Nanosecond); err == nil {
				t.Fatal("a run with the payment service failing returned no error")
			}
			if pass.after != ids[119] {
				t.Fatalf("the failed run moved the pass to %s", pass.after.Hex())
			}
			pay.set(nil, false)
			want = append(want, ids[120].Hex())
		}
		n, err := s.sweepPending(ctx, &pass, 0, time.Hour, time.Nanosecond)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		settled += n
		if run < len(ids) {
			want = append(want, ids[run].Hex())
			if pass.after != ids[run] {
				t.Fatalf("run %d ended after %s, want after its one order %s", run, pass.after.Hex(), ids[run].Hex())
			}
		}
	}
	if got := pay.firstAsked(); !slices.Equal(got, want) {
		t.Fatalf("calls asked from %d orders, want %d: one a run, the failed one twice, none past the last", len(got), len(want))
	}
	if settled != 3 {
		t.Fatalf("the pass settled %d orders, want 3", settled)
	}
	// The pass is over: the next starts from the first order still PENDING.
	if !pass.after.IsZero() {
		t.Fatalf("pass not over: after %s", pass.after.Hex())
	}
	if n, err := s.sweepPending(ctx, &pass, 0, time.Hour, 0); err != nil || n != 0 {
		t.Fatalf("second pass settled %d, %v; want 0, nil", n, err)
	}
	if got := pay.firstAsked(); len(got) != 3 || got[0] != ids[1].Hex() {
		t.Fatalf("second pass asked from %v, want three calls from the second order", got)
	}
	for _, i := range []int{0, 150, 249} {
		if o, err := s.store.get(ctx, ids[i]); err != nil || o.Status != Paid {
			t.Errorf("order %d: %s %v, want PAID", i, o.Status, err)
		}
	}
}

// TestSweepPendingWaitsPastPeerTimeout: the sweep's call for payments may take longer than
// PEER_TIMEOUT (on FerretDB the payment service reads every payment for it), and no
// request waits for it: it is bounded by pendingLookupTimeout instead.
func TestSweepPendingWaitsPastPeerTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pay := &payingService{payments: map[string]PaymentResult{}, delay: 600 * time.Millisecond}
	s := newServiceWithPayments(ctx, t, pay, 200*time.Millisecond)
	id := bson.NewObjectID()
	if err := storeOrder(s, Pending)(id); err != nil {
		t.Fatal(err)
	}
	pay.set(&PaymentResult{PaymentID: bson.NewObjectID().Hex(), OrderID: id.Hex(), AmountCents: 100, Currency: "USD",
		Status: paymentSucceeded}, false)
	if n, err := s.sweepPending(ctx, &pendingPass{}, 0, time.Hour, 0); err != nil || n != 1 {
		t.Fatalf("sweep with the payment service answering past PEER_TIMEOUT: %d settled, %v; want 1, nil", n, err)
	}
}

// TestSweepPendingCountsNoReadOfAnUnreachableDatabase: a read of PENDING orders that fails
// before its deadline (the database unreachable) counts none of the database's work, so
// it does not space out the runs after it; a read that answered counts.
func TestSweepPendingCountsNoReadOfAnUnreachableDatabase(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, _ := newServiceWithProduct(ctx, t)
	var pass pendingPass
	if _, err := s.sweepPending(ctx, &pass, 0, time.Hour, 0); err != nil || pass.read.Last() <= 0 {
		t.Fatalf("a read that answered: %v, read %s; want it counted", err, pass.read.Last())
	}
	pass = pendingPass{}
	s.store.orders = testenv.UnreachableMongoDB(t, "orders").Collection("orders")
	began := time.Now()
	if _, err := s.sweepPending(ctx, &pass, 0, time.Hour, 0); err == nil {
		t.Fatal("a read of an unreachable database succeeded")
	}
	if pass.read.Last() != 0 {
		t.Fatalf("a read that failed after %s counted %s", time.Since(began), pass.read.Last())
	}
}

// TestSweepPendingSendsOrderCreatedAgain: an order PENDING for longer than the age to
// send again, with no payment at the payment service, has its order.created sent again
// through its outbox; after the broker confirmed it, a sweep sends nothing more until the
// order's age has doubled, and then, the order still PENDING with no payment (the copy
// lost too), sends it again. A younger order is left as it is.
func TestSweepPendingSendsOrderCreatedAgain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := newServiceWithPayments(ctx, t, &payingService{payments: map[string]PaymentResult{}}, 2*time.Second)
	relay := &notedRelay{}
	s.relay = relay
	// The service's clock is the test's: the ages below do not depend on how long the
	// database takes to store an order.
	var clock atomic.Pointer[time.Time]
	advance := func(d time.Duration) { t := clock.Load().Add(d); clock.Store(&t) }
	start := time.Now().UTC().Truncate(time.Millisecond)
	clock.Store(&start)
	s.now = func() time.Time { return *clock.Load() }
	old, young := bson.NewObjectID(), bson.NewObjectID()
	if err := storeOrder(s, Pending)(old); err != nil {
		t.Fatal(err)
	}
	advance(300 * time.Millisecond)
	if err := storeOrder(s, Pending)(young); err != nil {
		t.Fatal(err)
	}
	advance(10 * time.Millisecond)
	sweep := func() {
		t.Helper()
		if n, err := s.sweepPending(ctx, &pendingPass{}, 0, 200*time.Millisecond, 0); err != nil || n != 0 {
			t.Fatalf("sweep: %d settled, %v; want 0, nil", n, err)
		}
	}
	sweep()
	if got := relay.told(); len(got) != 1 || got[0] != messaging.OrderCreated {
		t.Fatalf("relay told of %v, want one order.created", got)
	}
	var d document
	if err := s.store.orders.FindOne(ctx, bson.D{{Key: "_id", Value: old}}).Decode(&d); err != nil {
		t.Fatal(err)
	}
	var ev CreatedEvent
	if len(d.Outbox) != 1 || !d.OutboxPending || d.ResentAt.IsZero() || json.Unmarshal([]byte(d.Outbox[0].Body), &ev) != nil ||
		ev.OrderID != old.Hex() || ev.TotalCents != 100 || ev.Currency != "USD" {
		t.Fatalf("order sent again: outbox %+v, pending %v, resent at %v", d.Outbox, d.OutboxPending, d.ResentAt)
	}
	// The broker confirmed it (the relay removed it); the order is still PENDING.
	if _, err := s.store.orders.UpdateOne(ctx, bson.D{{Key: "_id", Value: old}},
		bson.D{{Key: "$set", Value: bson.D{{Key: outbox.Field, Value: bson.A{}}, {Key: outbox.PendingField, Value: false}}}}); err != nil {
		t.Fatal(err)
	}
	advance(195 * time.Millisecond) // the young order is now old enough too
	sweep()
	if got := relay.told(); len(got) != 2 {
		t.Fatalf("relay told of %v, want the young order's order.created and nothing more for the old one", got)
	}
	if err := s.store.orders.FindOne(ctx, bson.D{{Key: "_id", Value: young}}).Decode(&d); err != nil || d.ResentAt.IsZero() {
		t.Fatalf("young order once old enough: resent at %v, %v", d.ResentAt, err)
	}
	// The copy was lost too. The old order, sent again at 310 ms of age, is due again at
	// 620 ms; the young one's copy, just sent, waits in its outbox.
	advance(110 * time.Millisecond) // 615 ms
	sweep()
	if got := relay.told(); len(got) != 2 {
		t.Fatalf("relay told of %v before the old order's age doubled, want nothing more", got)
	}
	advance(5 * time.Millisecond)
	sweep()
	if got := relay.told(); len(got) != 3 || got[2] != messaging.OrderCreated {
		t.Fatalf("relay told of %v, want the old order's order.created a third time", got)
	}
	resentAt := *clock.Load()
	if err := s.store.orders.FindOne(ctx, bson.D{{Key: "_id", Value: old}}).Decode(&d); err != nil || !d.ResentAt.Equal(resentAt) {
		t.Fatalf("old order sent again: resent at %v (%v), want %v", d.ResentAt, err, resentAt)
	}
}

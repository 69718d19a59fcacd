package order

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// payingService stands in for the payment service's GET /internal/payments: it answers
// the payments it holds, by order id, notes the order ids of each call, and answers 503
// while failing is set.
type payingService struct {
	mu       sync.Mutex
	payments map[string]PaymentResult
	calls    [][]string
	failing  bool
}

func (p *payingService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := strings.Split(r.URL.Query().Get("orderIds"), ",")
	p.calls = append(p.calls, ids)
	if r.URL.Path != "/internal/payments" || p.failing {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	type item struct {
		ID          string `json:"id"`
		OrderID     string `json:"orderId"`
		AmountCents int64  `json:"amountCents"`
		Currency    string `json:"currency"`
		Status      string `json:"status"`
	}
	items := []item{}
	for _, id := range ids {
		if r, ok := p.payments[id]; ok {
			items = append(items, item{ID: r.PaymentID, OrderID: id, AmountCents: r.AmountCents, Currency: r.Currency, Status: r.Status})
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"items": items})
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
// of the payment service; so the orders at the end of a long list are reached, and asked
// about once per pass, a page per call.
func TestSweepPendingResumesWhereItStopped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, _ := newServiceWithProduct(ctx, t)
	pay := &payingService{payments: map[string]PaymentResult{}}
	srv := httptest.NewServer(pay)
	t.Cleanup(srv.Close)
	var err error
	if s.peers, err = newPeers("http://user.invalid", s.peers.product.String(), srv.URL, 2*time.Second); err != nil {
		t.Fatal(err)
	}
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
	var pass pendingPass
	run := func(budget time.Duration) int {
		t.Helper()
		n, err := s.sweepPending(ctx, &pass, 0, budget)
		if err != nil {
			t.Fatalf("sweep: %v", err)
		}
		return n
	}

	// A budget spent at once: one page a run.
	if n := run(time.Nanosecond); n != 1 {
		t.Fatalf("first run settled %d, want 1", n)
	}
	if got := pay.firstAsked(); len(got) != 1 || got[0] != ids[0].Hex() {
		t.Fatalf("first run asked from %v, want one call from the first order", got)
	}
	// The payment service failing: the run stops, and the next asks the same page again.
	pay.set(nil, true)
	if _, err := s.sweepPending(ctx, &pass, 0, time.Nanosecond); err == nil {
		t.Fatal("a run with the payment service failing returned no error")
	}
	pay.set(nil, false)
	if n := run(time.Nanosecond); n != 1 {
		t.Fatalf("run after the failure settled %d, want 1 (the 151st order)", n)
	}
	if got := pay.firstAsked(); len(got) != 2 || got[0] != ids[100].Hex() || got[1] != ids[100].Hex() {
		t.Fatalf("runs around the failure asked from %v, want the second page twice", got)
	}
	if n := run(time.Nanosecond); n != 1 {
		t.Fatalf("last run settled %d, want 1 (the last order)", n)
	}
	if got := pay.firstAsked(); len(got) != 1 || got[0] != ids[200].Hex() {
		t.Fatalf("last run asked from %v, want the third page", got)
	}
	// The pass is over: the next starts from the first order still PENDING.
	if !pass.after.IsZero() {
		t.Fatalf("pass not over: after %s", pass.after.Hex())
	}
	if n := run(0); n != 0 {
		t.Fatalf("second pass settled %d, want 0", n)
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

package order

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging/outbox"
)

// releasingProduct stands in for the product service's releases: it answers each
// DELETE /internal/reservations/{orderId} with the status set for the order (204 unless
// told), and counts them per order.
// A status of 0 holds the answer until the client goes; onRelease, if set, runs as each
// release arrives.
type releasingProduct struct {
	mu        sync.Mutex
	answers   map[string]int
	releases  map[string]int
	onRelease func()
}

func (p *releasingProduct) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/internal/reservations/")
	if r.Method != http.MethodDelete || !ok {
		http.NotFound(w, r)
		return
	}
	p.mu.Lock()
	p.releases[id]++
	status, set := p.answers[id]
	onRelease := p.onRelease
	p.mu.Unlock()
	if onRelease != nil {
		onRelease()
	}
	switch {
	case !set:
		w.WriteHeader(http.StatusNoContent)
	case status == 0:
		<-r.Context().Done()
	default:
		w.WriteHeader(status)
	}
}

// answer makes p answer the releases of order id with status (0: none until the client
// goes); a negative status restores 204.
func (p *releasingProduct) answer(id bson.ObjectID, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if status < 0 {
		delete(p.answers, id.Hex())
		return
	}
	p.answers[id.Hex()] = status
}

// whenReleased makes p run f as each release arrives.
func (p *releasingProduct) whenReleased(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.onRelease = f
}

// released returns how many releases of order id the product service was sent.
func (p *releasingProduct) released(id bson.ObjectID) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.releases[id.Hex()]
}

// newServiceWithProduct returns a service on a fresh database, and the product service
// it calls.
func newServiceWithProduct(ctx context.Context, t *testing.T) (*service, *releasingProduct) {
	t.Helper()
	st := freshStore(ctx, t)
	p := &releasingProduct{answers: map[string]int{}, releases: map[string]int{}}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	peers, err := newPeers("http://user.invalid", srv.URL, "http://payment.invalid", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return &service{store: st, peers: peers, relay: &notedRelay{}, log: slog.New(slog.DiscardHandler),
		now: func() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }}, p
}

// notedRelay stands in for the outbox relay: it notes the events it is told of, and has
// published none.
type notedRelay struct {
	mu     sync.Mutex
	events []outbox.Event
}

func (r *notedRelay) Notify(_ any, events ...outbox.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, events...)
}

func (r *notedRelay) TakeConfirmed(any) map[string]bool { return nil }

// told returns the types of the events r was told of.
func (r *notedRelay) told() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var types []string
	for _, e := range r.events {
		types = append(types, e.Type)
	}
	return types
}

// TestFailedPaymentDefersAReleaseTheProductServiceDoesNotTake: handling a payment.failed
// gives the order's stock back before it is CANCELLED when the product service takes it;
// when it does not, the order is CANCELLED all the same, with a pending release recorded
// first, and the delivery handled (acknowledged). Only a handling cut short before the
// record is stored (the consumer stopping) fails, and leaves the order PENDING for the
// redelivery.
func TestFailedPaymentDefersAReleaseTheProductServiceDoesNotTake(t *testing.T) {
	tests := []struct {
		name   string
		status int // the product service's answer to the release; -1: 204
		// recorded stores a pending release before the delivery: the process stopped
		// after the record, before the CANCELLED write, and the result comes again.
		recorded    bool
		stopAtFirst bool // the handling is cut short as the release arrives
		wantErr     bool
		wantStatus  Status
		wantPending bool // a pending release is recorded afterwards
	}{
		{name: "product service takes the stock back", status: -1, wantStatus: Cancelled},
		{name: "product service answers 503", status: http.StatusServiceUnavailable, wantStatus: Cancelled, wantPending: true},
		{name: "product service refuses with 400", status: http.StatusBadRequest, wantStatus: Cancelled, wantPending: true},
		{name: "redelivered after a crash, product service out", status: http.StatusServiceUnavailable, recorded: true,
			wantStatus: Cancelled, wantPending: true},
		{name: "handling cut short during the release", status: 0, stopAtFirst: true, wantErr: true, wantStatus: Pending},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s, product := newServiceWithProduct(ctx, t)
			id := bson.NewObjectID()
			if err := storeOrder(s, Pending)(id); err != nil {
				t.Fatal(err)
			}
			product.answer(id, tt.status)
			if tt.recorded {
				if err := s.store.insertOnce(ctx, s.store.releases, pendingRelease{ID: id, CreatedAt: s.now()}); err != nil {
					t.Fatal(err)
				}
			}
			handling, stop := context.WithCancel(ctx)
			defer stop()
			if tt.stopAtFirst {
				product.whenReleased(stop)
			}
			body, _ := json.Marshal(PaymentResult{OrderID: id.Hex(), AmountCents: 100, Currency: "USD", Status: "FAILED", Reason: "over the limit"})
			err := s.handlePaymentResult(handling, messaging.Delivery{ID: "p1", Type: messaging.PaymentFailed, Body: body, Attempt: 1})
			if (err != nil) != tt.wantErr {
				t.Fatalf("handled: %v, want an error: %v", err, tt.wantErr)
			}
			got, err := s.store.get(ctx, id)
			if err != nil || got.Status != tt.wantStatus {
				t.Fatalf("order %s (%v), want %s", got.Status, err, tt.wantStatus)
			}
			if pending := releaseRecorded(ctx, t, s, id); pending != tt.wantPending {
				t.Errorf("pending release recorded: %v, want %v", pending, tt.wantPending)
			}
			if n := product.released(id); n != 1 {
				t.Errorf("%d releases sent, want 1", n)
			}
			wantEvents := []string{messaging.OrderUpdated}
			if tt.wantStatus == Pending {
				wantEvents = nil
			}
			if told := s.relay.(*notedRelay).told(); !slices.Equal(told, wantEvents) {
				t.Errorf("events %v, want %v", told, wantEvents)
			}
		})
	}
}

// TestSweepReleasesGivesBackOnlyACancelledOrdersStock: the sweep gives back the stock of
// a CANCELLED order and removes its record; it removes with no release the record of a PAID
// order (the stock is its own), of an order not found, and of an order's fenced-off
// stand-in; it leaves the record of a PENDING order (its payment result still to be
// handled again), and a record younger than its age, for later.
func TestSweepReleasesGivesBackOnlyACancelledOrdersStock(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, product := newServiceWithProduct(ctx, t)
	now := s.now()
	tests := []struct {
		name string
		// order stores the order under id (nil: none).
		order       func(id bson.ObjectID) error
		recorded    time.Time // the record's createdAt
		wantRelease int       // releases sent to the product service
		wantKept    bool      // the record is still there
	}{
		{name: "CANCELLED", order: storeOrder(s, Cancelled), recorded: now.Add(-time.Minute), wantRelease: 1},
		{name: "PAID", order: storeOrder(s, Paid), recorded: now.Add(-time.Minute)},
		{name: "PENDING", order: storeOrder(s, Pending), recorded: now.Add(-time.Minute), wantKept: true},
		{name: "not found", recorded: now.Add(-time.Minute)},
		{name: "fenced off", order: func(id bson.ObjectID) error {
			_, err := s.store.fence(ctx, id, now)
			if errors.Is(err, errNotFound) {
				return nil
			}
			return err
		}, recorded: now.Add(-time.Minute)},
		{name: "CANCELLED, recorded just now", order: storeOrder(s, Cancelled), recorded: now, wantKept: true},
	}
	ids := make([]bson.ObjectID, len(tests))
	for i, tt := range tests {
		ids[i] = bson.NewObjectID()
		if tt.order != nil {
			if err := tt.order(ids[i]); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.store.insertOnce(ctx, s.store.releases, pendingRelease{ID: ids[i], CreatedAt: tt.recorded}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.sweepReleases(ctx, 10*time.Second); err != nil || n != 4 {
		t.Fatalf("sweep: %d (%v), want 4 records removed", n, err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := product.released(ids[i]); got != tt.wantRelease {
				t.Errorf("%d releases sent, want %d", got, tt.wantRelease)
			}
			if kept := releaseRecorded(ctx, t, s, ids[i]); kept != tt.wantKept {
				t.Errorf("record kept: %v, want %v", kept, tt.wantKept)
			}
		})
	}
	// The records kept are looked at again; nothing is released twice.
	if n, err := s.sweepReleases(ctx, 10*time.Second); err != nil || n != 0 {
		t.Fatalf("second sweep: %d (%v), want 0", n, err)
	}
	if got := product.released(ids[0]); got != 1 {
		t.Errorf("the CANCELLED order's stock released %d times, want once", got)
	}
}

// TestSweepReleasesIsNotHeldUpByRecordsItKeeps: records the sweep keeps (PENDING orders),
// however many and however old, do not hide a CANCELLED order's record behind them.
func TestSweepReleasesIsNotHeldUpByRecordsItKeeps(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, product := newServiceWithProduct(ctx, t)
	oldest := s.now().Add(-time.Hour)
	for i := range 150 {
		id := bson.NewObjectID()
		if err := storeOrder(s, Pending)(id); err != nil {
			t.Fatal(err)
		}
		if err := s.store.insertOnce(ctx, s.store.releases, pendingRelease{ID: id, CreatedAt: oldest.Add(time.Duration(i) * time.Millisecond)}); err != nil {
			t.Fatal(err)
		}
	}
	cancelled := bson.NewObjectID()
	if err := storeOrder(s, Cancelled)(cancelled); err != nil {
		t.Fatal(err)
	}
	if err := s.store.insertOnce(ctx, s.store.releases, pendingRelease{ID: cancelled, CreatedAt: s.now().Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.sweepReleases(ctx, 10*time.Second); err != nil || n != 1 || product.released(cancelled) != 1 {
		t.Fatalf("sweep: %d removed (%v), %d releases of the CANCELLED order; want 1 and 1", n, err, product.released(cancelled))
	}
}

// TestSweepReleasesWhenTheProductServiceFails: a release the product service fails (a
// 5xx, or no answer) stops the sweep, whose next round tries again: the other records
// would meet the same outage. One it refuses (a 4xx other than 404, an answer about that
// order) is kept, and the others are released.
func TestSweepReleasesWhenTheProductServiceFails(t *testing.T) {
	tests := []struct {
		name      string
		status    int // the product service's answer to the oldest record's release
		wantErr   func(error) bool
		wantN     int  // records removed
		wantTried int  // releases sent for the second record
		wantKept  bool // the first record is still there
	}{
		{name: "503 stops the sweep", status: http.StatusServiceUnavailable,
			wantErr: func(err error) bool { return err != nil && !errors.Is(err, errReleaseRefused) }, wantKept: true},
		{name: "400 skips the order", status: http.StatusBadRequest,
			wantErr: func(err error) bool { return errors.Is(err, errReleaseRefused) }, wantN: 1, wantTried: 1, wantKept: true},
		{name: "404: nothing to give back", status: http.StatusNotFound,
			wantErr: func(err error) bool { return err == nil }, wantN: 2, wantTried: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s, product := newServiceWithProduct(ctx, t)
			first, second := bson.NewObjectID(), bson.NewObjectID()
			for i, id := range []bson.ObjectID{first, second} {
				if err := storeOrder(s, Cancelled)(id); err != nil {
					t.Fatal(err)
				}
				rec := pendingRelease{ID: id, CreatedAt: s.now().Add(time.Duration(i-10) * time.Second)}
				if err := s.store.insertOnce(ctx, s.store.releases, rec); err != nil {
					t.Fatal(err)
				}
			}
			product.answer(first, tt.status)

			if n, err := s.sweepReleases(ctx, 0); n != tt.wantN || !tt.wantErr(err) {
				t.Fatalf("sweep: %d records removed (error %v), want %d", n, err, tt.wantN)
			}
			if got := product.released(second); got != tt.wantTried {
				t.Errorf("second record's release sent %d times, want %d", got, tt.wantTried)
			}
			if kept := releaseRecorded(ctx, t, s, first); kept != tt.wantKept {
				t.Errorf("first record kept: %v, want %v", kept, tt.wantKept)
			}

			// The product service takes them back: the next sweep finishes what is left.
			product.answer(first, -1)
			if n, err := s.sweepReleases(ctx, 0); err != nil || n != 2-tt.wantN {
				t.Fatalf("next sweep: %d (%v), want %d", n, err, 2-tt.wantN)
			}
			for _, id := range []bson.ObjectID{first, second} {
				if releaseRecorded(ctx, t, s, id) {
					t.Errorf("order %s: record kept after the product service took its stock back", id.Hex())
				}
			}
		})
	}
}

// storeOrder returns a function storing an order of s with id and status.
func storeOrder(s *service, status Status) func(id bson.ObjectID) error {
	return func(id bson.ObjectID) error {
		now := s.now()
		_, err := s.store.orders.InsertOne(context.Background(), document{Order: Order{ID: id, UserID: "u1", Status: status,
			TotalCents: 100, Currency: "USD", CreatedAt: now, UpdatedAt: now}})
		return err
	}
}

// releaseRecorded tells whether order id has a pending release.
func releaseRecorded(ctx context.Context, t *testing.T, s *service, id bson.ObjectID) bool {
	t.Helper()
	n, err := s.store.releases.CountDocuments(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

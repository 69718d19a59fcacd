//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
)

// placedOrder is an order the placer placed, and the state the contract says it ends in.
type placedOrder struct {
	order
	line orderLine
	want string // PAID or CANCELLED
	at   time.Time
}

// orderPlacer places orders one after another, in the background, until stopped:
// two of every three within the payment limit, the third above it. Each order is
// retried under its Idempotency-Key until the shop takes it, so an outage delays an
// order and never loses or doubles one.
type orderPlacer struct {
	stopping atomic.Bool
	done     chan struct{}

	mu     sync.Mutex
	placed []placedOrder
	err    error
}

// startPlacing starts placing orders of buyer: cheap (under the payment limit) and,
// every third, two of dear (together above it).
func startPlacing(ctx context.Context, api *shopAPI, buyer user, cheap, dear product, pause time.Duration) *orderPlacer {
	p := &orderPlacer{done: make(chan struct{})}
	run := rand.Uint64() // keys are per user, but a rerun against a kept shop must not reuse them
	go func() {
		defer GinkgoRecover()
		defer close(p.done)
		for i := 0; !p.stopping.Load(); i++ {
			line, want := orderLine{ProductID: cheap.ID, Quantity: 1}, statusPaid
			if i%3 == 2 {
				line, want = orderLine{ProductID: dear.ID, Quantity: 2}, statusCancelled
			}
			o, err := api.placeOrder(ctx, fmt.Sprintf("e2e-%x-%d", run, i), newOrder{UserID: buyer.ID, Items: []orderLine{line}})
			p.mu.Lock()
			if err != nil {
				p.err = err
				p.mu.Unlock()
				return
			}
			p.placed = append(p.placed, placedOrder{order: o, line: line, want: want, at: time.Now()})
			p.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
		}
	}()
	return p
}

// count is how many orders were placed so far.
func (p *orderPlacer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.placed)
}

// stop lets the order being placed finish, places no other, and returns every order
// placed. An order is never abandoned midway: one whose answer was lost would exist
// in the shop without the placer knowing it.
func (p *orderPlacer) stop() ([]placedOrder, error) {
	p.stopping.Store(true)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.placed, p.err
}

package mongodb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

// operationTimeout stands for MONGODB_OPERATION_TIMEOUT in the fake-clock tests below:
// how long the driver lets a write try before it fails.
const operationTimeout = 10 * time.Second

// The errors a write gets from the driver, as Unreachable sees them.
var (
	errNoServer = topology.ServerSelectionError{Wrapped: errors.New("server selection timeout")}
	// A request whose client went away mid-write: the driver cuts the connection, so
	// the error is labelled a network error though the database is fine.
	errClientGone = fmt.Errorf("insert: %w", mongo.CommandError{Labels: []string{"NetworkError"}, Wrapped: context.Canceled})
	errDuplicate  = mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 11000}}}
)

// DoAtOnce runs do n times at once and returns what each returned and how long after
// the first started it did. started, unless nil, runs after each is started: a
// fake-clock test waits there for it to queue.
func DoAtOnce(n int, do func() error, started func()) (errs []error, took []time.Duration) {
	errs, took = make([]error, n), make([]time.Duration, n)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = do()
			took[i] = time.Since(start)
		})
		if started != nil {
			started()
		}
	}
	wg.Wait()
	return errs, took
}

// With the database down, each write through a Gate of 1 tries for a whole operation
// timeout and fails; the writes queued behind the first must not each wait for all
// those before them (the Nth would answer after N timeouts, past the HTTP server's
// write timeout), but answer with the first one's outage.
func TestGateOutageAnswersEveryQueuedWriteWithinOneTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewGate(1)
		var tries atomic.Int64
		write := func() error {
			tries.Add(1)
			time.Sleep(operationTimeout) // the driver trying, then giving up
			return fmt.Errorf("insert product: %w", errNoServer)
		}
		errs, took := DoAtOnce(6, func() error { return g.Do(context.Background(), write) },
			synctest.Wait) // each queues behind the one before
		for i, err := range errs {
			if i > 0 && !errors.Is(err, ErrNotSent) {
				t.Errorf("queued write %d = %v, want ErrNotSent in it: it did not reach the database", i, err)
			}
			if !Unreachable(err) || took[i] > operationTimeout {
				t.Errorf("write %d: %v after %s; want an unreachable error within %s", i, err, took[i], operationTimeout)
			}
		}
		if n := tries.Load(); n != 1 {
			t.Errorf("%d writes tried the database, want 1 (the others queued behind its failure)", n)
		}

		// Writes that arrive after the failure try again: the database may be back.
		if err := g.Do(context.Background(), func() error { tries.Add(1); return nil }); err != nil || tries.Load() != 2 {
			t.Errorf("write after the outage = %v (%d tries in all); want it tried and nil", err, tries.Load())
		}
	})
}

// Only an outage seen by a request still waiting for its answer, or cut by its own
// deadline after waiting long for the database (silenceIsOutage), ends the waits of the
// writes queued behind it: a write that failed otherwise, because its own client went
// away or its own deadline left it little time, says nothing of the database.
func TestGateHolderOutcomeDecidesForTheQueue(t *testing.T) {
	for _, tc := range []struct {
		name string
		// holder is the queue's first write: it returns err, and first ends its own
		// context when cancelOwn.
		err       error
		cancelOwn bool
		// deadline, unless zero, ends the holder's own context that long after it starts.
		deadline time.Duration
		// queueFails: the writes waiting behind it fail at once, without trying.
		queueFails bool
	}{
		{name: "database unreachable", err: errNoServer, queueFails: true},
		{name: "network error", err: mongo.CommandError{Labels: []string{"NetworkError"}}, queueFails: true},
		{name: "driver timeout", err: fmt.Errorf("insert: %w", context.DeadlineExceeded), queueFails: true},
		{name: "own client gone", err: errClientGone, cancelOwn: true},
		{name: "own deadline passed after a long silence", err: fmt.Errorf("insert: %w", context.DeadlineExceeded), deadline: silenceIsOutage, queueFails: true},
		{name: "own deadline passed soon", err: fmt.Errorf("insert: %w", context.DeadlineExceeded), deadline: silenceIsOutage - time.Millisecond},
		{name: "refused by the database", err: errDuplicate},
		{name: "success"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := NewGate(1)
				holderCtx, cancel := context.WithCancel(context.Background())
				defer cancel()
				holds := operationTimeout // how long the holder's write takes to fail
				if tc.deadline > 0 {
					holderCtx, cancel = context.WithTimeout(holderCtx, tc.deadline)
					defer cancel()
					holds = tc.deadline
				}
				go func() {
					_ = g.Do(holderCtx, func() error {
						if tc.deadline > 0 {
							<-holderCtx.Done() // the driver gives up with the context
						} else {
							time.Sleep(holds)
						}
						if tc.cancelOwn {
							cancel()
						}
						return tc.err
					})
				}()
				synctest.Wait() // the holder has the slot

				start := time.Now()
				var tried atomic.Int64
				errs := make([]error, 3)
				var wg sync.WaitGroup
				for i := range errs {
					wg.Go(func() {
						errs[i] = g.Do(context.Background(), func() error { tried.Add(1); return nil })
					})
				}
				wg.Wait()

				if elapsed := time.Since(start); elapsed != holds {
					t.Errorf("queue answered after %s, want %s (when the holder ended)", elapsed, holds)
				}
				for i, err := range errs {
					if tc.queueFails != (err != nil) || err != nil && (!Unreachable(err) || !errors.Is(err, ErrNotSent)) {
						t.Errorf("queued write %d = %v; want an unreachable ErrNotSent: %v", i, err, tc.queueFails)
					}
				}
				wantTried := int64(len(errs))
				if tc.queueFails {
					wantTried = 0
				}
				if tried.Load() != wantTried {
					t.Errorf("%d queued writes tried the database, want %d", tried.Load(), wantTried)
				}
				// A write arriving now tries whatever happened before.
				ran := false
				if err := g.Do(context.Background(), func() error { ran = true; return nil }); err != nil || !ran {
					t.Errorf("later write = %v (ran %v), want it run", err, ran)
				}
			})
		})
	}
}

// With more than one slot, an outage fails the writes waiting for one, not a write that
// was already running: it has its own answer coming.
func TestGateOutageLeavesRunningWritesAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := NewGate(2)
		var running, queued error
		var wg sync.WaitGroup
		wg.Go(func() {
			_ = g.Do(context.Background(), func() error { time.Sleep(operationTimeout); return errNoServer })
		})
		wg.Go(func() {
			running = g.Do(context.Background(), func() error { time.Sleep(2 * operationTimeout); return nil })
		})
		synctest.Wait() // both slots taken
		wg.Go(func() { queued = g.Do(context.Background(), func() error { return nil }) })
		wg.Wait()
		if running != nil || !Unreachable(queued) {
			t.Errorf("running write = %v, queued write = %v; want nil and an unreachable error", running, queued)
		}
	})
}

func TestNilGateRunsAtOnce(t *testing.T) {
	var g *Gate
	errFn := errors.New("fn failed")
	if err := g.Do(context.Background(), func() error { return errFn }); !errors.Is(err, errFn) {
		t.Errorf("nil Gate's Do = %v, want fn's error", err)
	}
}
func TestGateBoundsConcurrency(t *testing.T) {
	for _, n := range []int{1, 3} {
		g := NewGate(n)
		var running, most, ran atomic.Int64
		var wg sync.WaitGroup
		for range 60 {
			wg.Go(func() {
				err := g.Do(context.Background(), func() error {
					now := running.Add(1)
					for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
					}
					time.Sleep(time.Millisecond)
					running.Add(-1)
					ran.Add(1)
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if ran.Load() != 60 || most.Load() != int64(n) {
			t.Errorf("gate of %d: %d ran, at most %d at once; want 60 and %d", n, ran.Load(), most.Load(), n)
		}
	}
}

func TestGateWaitEndsWithContext(t *testing.T) {
	g := NewGate(1)
	release := make(chan struct{})
	go func() { _ = g.Do(context.Background(), func() error { <-release; return nil }) }()
	for len(g.slots) == 0 { // until the first holds the slot
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	ran := false
	err := g.Do(ctx, func() error { ran = true; return nil })
	close(release)
	if !errors.Is(err, context.DeadlineExceeded) || ran {
		t.Errorf("Do on a full gate = %v (ran %v), want the context's deadline and no run", err, ran)
	}
}

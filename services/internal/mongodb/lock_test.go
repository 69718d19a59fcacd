package mongodb

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestKeyedMutexSerializesOneKeyAndForgetsIt(t *testing.T) {
	var k KeyedMutex
	var wg sync.WaitGroup
	counts := map[string]int{} // written under the key's lock only
	var mapMu sync.Mutex       // guards the map itself, not the counts' read-modify-write
	for i := range 400 {
		key := []string{"a", "b"}[i%2]
		wg.Go(func() {
			unlock := k.Lock(key)
			defer unlock()
			mapMu.Lock()
			n := counts[key]
			mapMu.Unlock()
			// Without the key's lock, another goroutine could read the same n here.
			mapMu.Lock()
			counts[key] = n + 1
			mapMu.Unlock()
		})
	}
	wg.Wait()
	if counts["a"] != 200 || counts["b"] != 200 {
		t.Errorf("counts %v, want 200 each (lost increments mean the lock did not hold)", counts)
	}
	if n := k.held(); n != 0 {
		t.Errorf("%d locks left after every holder unlocked, want 0", n)
	}
}

func TestKeyedMutexLockContextGivesUp(t *testing.T) {
	var k KeyedMutex
	unlock := k.Lock("a")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if u, err := k.LockContext(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) || u != nil {
		t.Fatalf("LockContext of a held key = %v, want the context's error", err)
	}
	if got, err := k.LockContext(context.Background(), "b"); err != nil {
		t.Fatalf("LockContext of a free key: %v", err)
	} else {
		got()
	}
	unlock()
	// The waiter that gave up left nothing behind, and the key can be taken again.
	if n := k.held(); n != 0 {
		t.Errorf("%d locks left, want 0", n)
	}
	again, err := k.LockContext(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	again()
}

// held reports how many keys are locked or waited for.
func (k *KeyedMutex) held() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.locks)
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

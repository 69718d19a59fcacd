package mongodb

import (
	"context"
	"errors"
	"sync"
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

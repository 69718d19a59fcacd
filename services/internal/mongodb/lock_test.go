package mongodb

import (
	"sync"
	"testing"
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

// held reports how many keys are locked or waited for.
func (k *KeyedMutex) held() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.locks)
}

package order

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestLateRemovalsAreWaitedOut: a key whose claim's removal has an unknown outcome is
// used again only once that removal was sent the window ago; a wait cut short by its
// context says so, and other keys never wait.
func TestLateRemovalsAreWaitedOut(t *testing.T) {
	const window = 200 * time.Millisecond
	var l lateRemovals
	sent := time.Now()
	l.add("k", sent)
	if err := l.wait(t.Context(), "other", window); err != nil {
		t.Fatalf("another key: %v", err)
	}
	short, cancel := context.WithTimeout(t.Context(), window/4)
	defer cancel()
	if err := l.wait(short, "k", window); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait cut short: %v, want the context's deadline", err)
	}
	if err := l.wait(t.Context(), "k", window); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(sent); waited < window {
		t.Fatalf("used again %v after the removal was sent, want %v at least", waited, window)
	}
	start := time.Now()
	if err := l.wait(t.Context(), "k", window); err != nil || time.Since(start) > window/4 {
		t.Fatalf("second wait: %v after %v, want none", err, time.Since(start))
	}
}

// TestLateRemovalsDoNotGrow: the entries of keys never used again go once waited out,
// with the next removal of unknown outcome, rather than one staying for each.
func TestLateRemovalsDoNotGrow(t *testing.T) {
	var l lateRemovals
	long := time.Now().Add(-lateWriteWindow)
	for i := range 1000 {
		l.add(fmt.Sprint("old", i), long)
	}
	l.add("new", time.Now())
	if n := len(l.sent); n != 1 {
		t.Fatalf("%d entries, want 1: the removals sent %v ago are waited out", n, lateWriteWindow)
	}
}

package order

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
)

// TestClaimKeyDeadlineIsNotAnEarlierRequest: a request with a key never used before whose
// claim's write is not over by its steps' deadline (the database slow, its writes queued)
// is told that the database is unavailable, not that an earlier request with its key is
// still being settled: there was none. Only the wait for a late removal of the key's
// claim says so.
func TestClaimKeyDeadlineIsNotAnEarlierRequest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, _ := newServiceWithProduct(ctx, t)
	s.budget = time.Second
	// The database's writes are queued behind a slow one past the steps' deadline.
	held, release := make(chan struct{}), make(chan struct{})
	go func() {
		_ = s.store.writes.Do(ctx, func() error { close(held); <-release; return nil })
	}()
	<-held
	_, _, err := s.place(ctx, PlaceRequest{UserID: "u1", Items: []RequestItem{{ProductID: mongodb.NewID().Hex(), Quantity: 1}}}, "fresh-key")
	close(release)
	if err == nil || strings.Contains(err.Error(), earlierStillSettled) {
		t.Fatalf("place with a fresh key, the database's writes queued: %v, want no earlier request named", err)
	}
	if !mongodb.Unreachable(err) {
		t.Errorf("place: %v, want the database not answering in time (a 503 database unavailable)", err)
	}

	// A late removal of the key's claim not waited out in time is the earlier request's 503.
	s.store.keyRemovals.add("u1\x00late-key", time.Now())
	_, _, err = s.place(ctx, PlaceRequest{UserID: "u1", Items: []RequestItem{{ProductID: mongodb.NewID().Hex(), Quantity: 1}}}, "late-key")
	if err == nil || !strings.Contains(err.Error(), earlierStillSettled) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("place while a removal of the key's claim may land: %v, want %q", err, earlierStillSettled)
	}
}

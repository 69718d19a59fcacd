package store

import (
	"bufio"
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
	"github.com/shopkeeper-dev/shopkeeper/services/product/catalog"
)

// FerretDB reads a document when an update arrives and writes it back whole once SQLite's
// write lock is free (waiting up to its busy timeout, 10 s). An update the store gave up
// on while it waited there must not write back over the steps that came after it: the
// fence waits lateWriteWindow after it was sent before the next step reads. Without the
// wait, the PATCH below, stuck behind another writer of the database file, could be
// written back after the reservation of the last three units, and the product showed
// them in stock again.
func TestFenceWaitsForAnUpdateInsideFerretDB(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	f, err := testenv.StartFerretDB(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Stop() })
	const dbName = "shop"
	db, err := mongodb.Connect(ctx, mongodb.Config{URI: f.URI + dbName, ConnectTimeout: time.Second, OperationTimeout: time.Second}, dbName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Client().Disconnect(context.Background()) })
	s := New(db)
	if err := s.Release(ctx, "warmup"); err != nil { // the reservations collection made
		t.Fatal(err)
	}
	// Which write SQLite lets through first once the lock is free is chance: without the
	// wait this went wrong in 2 runs of 6 on a busy machine, in none of 9 on a quiet one.
	lateUpdateBeforeReservation(t, s, filepath.Join(dir, dbName+".sqlite"), "B")
}

// lateUpdateBeforeReservation makes a product of three units, sends a PATCH of it that
// another writer of the database file holds up past the store's operation timeout,
// reserves the three units for order, and checks the books once everything has landed.
func lateUpdateBeforeReservation(t *testing.T, s *Store, file, order string) {
	ctx := t.Context()
	p, err := s.Create(ctx, catalog.NewProduct{Name: "Last three", PriceCents: 100, Currency: "USD", Stock: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Another writer holds SQLite's write lock past the store's operation timeout.
	lock := exec.CommandContext(ctx, "python3", "-c", `
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(1.6)
c.execute("ROLLBACK")
`, file)
	out, err := lock.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Start(); err != nil {
		t.Fatalf("python3 holds the database's lock: %v", err)
	}
	if l, _ := bufio.NewReader(out).ReadString('\n'); l != "locked\n" {
		t.Fatalf("python3 did not lock the database: %q", l)
	}
	name := "Renamed"
	if _, err := s.Update(ctx, p.ID, catalog.Patch{Name: &name}); err == nil {
		t.Fatal("the PATCH behind the lock answered before the operation timeout; want it cut")
	}
	// The next step, while the PATCH still waits inside FerretDB.
	start := time.Now()
	if _, _, err := s.Reserve(ctx, catalog.ReservationRequest{OrderID: order, Items: []catalog.ReservationItem{{ProductID: p.ID, Quantity: 3}}}); err != nil {
		t.Fatalf("reserve the last three: %v", err)
	}
	t.Logf("the reservation waited %s for the PATCH to land or fail", time.Since(start).Round(time.Millisecond))
	if err := lock.Wait(); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second) // the hold's removal, in the background
	defer cancel()
	if err := s.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	checkBooks(t, s, p.ID, 3, 0)
}

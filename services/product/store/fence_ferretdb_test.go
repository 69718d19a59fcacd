package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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
	s, file := storeOnOwnFerretDB(t)
	// Which write SQLite lets through first once the lock is free is chance: without the
	// wait this went wrong in 2 runs of 6 on a busy machine, in none of 9 on a quiet one.
	lateUpdateBeforeReservation(t, s, file, "B")
}

// storeOnOwnFerretDB returns a Store, with an operation timeout of 1 s, over a FerretDB of
// its own, and the SQLite file of its database, for holdSQLiteLock.
func storeOnOwnFerretDB(t *testing.T) (*Store, string) {
	t.Helper()
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
	return s, filepath.Join(dir, dbName+".sqlite")
}

// lateUpdateBeforeReservation makes a product of three units, sends a PATCH of it that
// another writer of the database file holds up past the store's operation timeout,
// reserves the three units for order, and checks the books once everything has landed.
func lateUpdateBeforeReservation(t *testing.T, s *Store, file, order string) {
	ctx := t.Context()
	p, lock := lastThreeRenamedBehindALock(t, s, file)
	// The next step, while the PATCH still waits inside FerretDB.
	start := time.Now()
	if _, _, err := s.Reserve(ctx, catalog.ReservationRequest{OrderID: order, Items: []catalog.ReservationItem{{ProductID: p.ID, Quantity: 3}}}); err != nil {
		t.Fatalf("reserve the last three: %v", err)
	}
	t.Logf("the reservation waited %s for the PATCH to land or fail", time.Since(start).Round(time.Millisecond))
	lock.wait()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second) // the hold's removal, in the background
	defer cancel()
	if err := s.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	checkBooks(t, s, p.ID, 3, 0)
}

// lastThreeRenamedBehindALock makes a product of three units and sends a PATCH of it that
// another writer of the database file (the lock it returns) holds up past the store's
// operation timeout: the PATCH fails, and still waits inside FerretDB.
func lastThreeRenamedBehindALock(t *testing.T, s *Store, file string) (catalog.Product, sqliteLock) {
	t.Helper()
	ctx := t.Context()
	p, err := s.Create(ctx, catalog.NewProduct{Name: "Last three", PriceCents: 100, Currency: "USD", Stock: 3})
	if err != nil {
		t.Fatal(err)
	}
	lock := holdSQLiteLock(t, file, 1600*time.Millisecond)
	name := "Renamed"
	if _, err := s.Update(ctx, p.ID, catalog.Patch{Name: &name}); err == nil {
		t.Fatal("the PATCH behind the lock answered before the operation timeout; want it cut")
	}
	return p, lock
}

// sqliteLock is another writer of a database file, holding SQLite's write lock.
type sqliteLock struct {
	t   *testing.T
	cmd *exec.Cmd
	out *bufio.Reader
}

// holdSQLiteLock makes another writer of the database file take SQLite's write lock and
// hold it for d, so that FerretDB's writes wait for it (past an operation timeout shorter
// than d). It returns once the lock is held.
func holdSQLiteLock(t *testing.T, file string, d time.Duration) sqliteLock {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "python3", "-c", fmt.Sprintf(`
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(%g)
c.execute("ROLLBACK")
print("released", flush=True)
`, d.Seconds()), file)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("python3 holds the database's lock: %v", err)
	}
	lines := bufio.NewReader(out)
	if l, _ := lines.ReadString('\n'); l != "locked\n" {
		t.Fatalf("python3 did not lock the database: %q", l)
	}
	return sqliteLock{t: t, cmd: cmd, out: lines}
}

// released returns as soon as the lock is given up: the writes that waited for it inside
// FerretDB are then between two tries (SQLite's busy handler sleeps up to 100 ms), so a
// write sent at once likely goes first.
func (l sqliteLock) released() {
	l.t.Helper()
	if line, _ := l.out.ReadString('\n'); line != "released\n" {
		l.t.Fatalf("python3 did not release the database: %q", line)
	}
}

// wait waits until the lock is given up and its holder gone.
func (l sqliteLock) wait() {
	l.t.Helper()
	_, _ = io.Copy(io.Discard, l.out)
	if err := l.cmd.Wait(); err != nil {
		l.t.Fatal(err)
	}
}

// A reservation whose insert timed out (503) while it waited inside FerretDB, and landed
// after, must be released by the release the order service sends on that 503: the release
// found no reservation, and its insert of a released one met the late insert (E11000),
// which it answered as an error (a 500), leaving the reservation pending, not released.
func TestReleaseMeetsALateReservationInsert(t *testing.T) {
	ctx := t.Context()
	s, file := storeOnOwnFerretDB(t)
	p, err := s.Create(ctx, catalog.NewProduct{Name: "Mug", PriceCents: 100, Currency: "USD", Stock: 3})
	if err != nil {
		t.Fatal(err)
	}
	req := catalog.ReservationRequest{OrderID: "O", Items: []catalog.ReservationItem{{ProductID: p.ID, Quantity: 1}}}
	lock := holdSQLiteLock(t, file, 1600*time.Millisecond)
	if _, _, err := s.Reserve(ctx, req); err == nil {
		t.Fatal("the reservation behind the lock answered before the operation timeout; want it cut")
	}
	// The release, while the reservation's insert still waits inside FerretDB. Which insert
	// SQLite lets through first once the lock is free is chance (the reservation's, in 4
	// runs of 4 here).
	if err := s.Release(ctx, req.OrderID); err != nil {
		t.Errorf("release after the reservation timed out: %v", err)
	}
	lock.wait()
	if _, _, err := s.Reserve(ctx, req); !errors.Is(err, catalog.ErrReleased) {
		t.Errorf("reserve after the release = %v, want %v", err, catalog.ErrReleased)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	checkBooks(t, s, p.ID, 3, 3)
}

// A fencing update is an update too: one that timed out (503) while it waited inside
// FerretDB writes back, when it lands, the document it read on arrival. The next step
// must not run before it has: here a reservation of the last three units was answered
// and then undone by the late fence, which wrote the stock of three back (three units
// sold twice). The reservation is sent the moment the lock is given up, while the late
// fence sleeps between two tries, so that it likely goes first; that is still chance, so
// the test tries three times.
func TestFenceWaitsForALateFence(t *testing.T) {
	ctx := t.Context()
	s, file := storeOnOwnFerretDB(t)
	// Past the lock below, as lateWriteWindow is past FerretDB's busy timeout.
	s.lateWriteWindow = 2 * time.Second
	for round := range 3 {
		p, lock := lastThreeRenamedBehindALock(t, s, file)
		lock.wait()
		time.Sleep(s.lateWriteWindow) // the PATCH has landed: the next step fences it at once
		lock = holdSQLiteLock(t, file, 1600*time.Millisecond)
		description := "Renamed again"
		if _, err := s.Update(ctx, p.ID, catalog.Patch{Description: &description}); err == nil {
			t.Fatal("the PATCH whose fence waited behind the lock answered before the operation timeout; want it cut")
		}
		// The next step, while the fence of that PATCH still waits inside FerretDB.
		lock.released()
		order := fmt.Sprintf("B%d", round)
		if _, _, err := s.Reserve(ctx, catalog.ReservationRequest{OrderID: order, Items: []catalog.ReservationItem{{ProductID: p.ID, Quantity: 3}}}); err != nil {
			t.Fatalf("reserve the last three: %v", err)
		}
		lock.wait()
		time.Sleep(time.Second)                                  // the late fence lands, or fails, by now
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second) // the hold's removal, in the background
		if err := s.Wait(wctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		checkBooks(t, s, p.ID, 3, 0)
	}
}

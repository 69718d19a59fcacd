package store

// Reservations without multi-document transactions.
//
// A reservation document, keyed by the order id (unique _id), records the request as
// priced when it was first seen, its state, and for each line what it did to the stock:
//
//	pending ──all lines taken──▶ reserved ──release──▶ released
//	   │ └──────────────release──────────────────────▲
//	   └──a line short or gone──▶ failed
//
//	line: ""  ──take recorded──▶ taken ──give back recorded──▶ settled
//	      └──────(failed or released, never taken)───────────▲
//
// The stock moves in the product document, where a hold keyed by order id,
// holds.<order> = {quantity, returned}, stands for the line until the reservation has
// recorded what happened; then the hold is removed, so a product document carries only
// the orders in flight, not every order that ever bought it.
//
// Serialization. All the work on one order (Reserve, Release) runs holding that order's
// lock, and every read-check-write of a product document holds that product's lock
// (mongodb.KeyedMutex; the order lock is taken first, a product lock inside it, one at
// a time, so they cannot deadlock). So the steps of one order never interleave with
// other steps of the same order: takes and give-backs happen under both locks. The one
// exception is the removal of a hold, which runs in the background after the request
// that allowed it (the answer does not wait for it): it removes the hold only if it
// still is what the record allowed to remove, checked under the product lock, and a
// record never goes back (taken → settled), so it is right whenever it runs. The locks
// are in-process: one process serves a database. A crash stops every step at once, so
// after a crash no step of the old process is still running and only crash points
// matter. An update that failed after it was sent (a timeout) is one too: it may still
// reach the database, but the next step on its document fences it first (fence.go, which
// says what it does not cover), so it has applied before that step reads, or never will:
// a crash point before or after it.
//
// What a line's record r and its product's hold h mean together, and why no line is
// taken twice or given back twice whatever step a crash interrupts:
//
//	r        h                      the line's units are
//	""       none                   not taken
//	""       {returned: false}      taken (crash before the record)
//	""       {returned: true}       taken and given back (crash before the record)
//	taken    {returned: false}      taken (crash before the hold was removed)
//	taken    none                   taken
//	taken    {returned: true}       given back (crash before the record)
//	settled  any                    given back, or never taken: nothing is held
//
// Every state names the units unambiguously, because a hold is only ever removed after
// r records it: {returned: false} only once r = taken, {returned: true} only once
// r = settled, and r = settled only once the hold is {returned: true} or gone. The one
// pair that would be ambiguous, r = "" with no hold, cannot mean "taken" for that
// reason. The steps:
//
//   - take (pending, r = ""): under the product lock, read stock and holds.<order>; a
//     hold means a crashed attempt already took it; else take:
//     {$inc: {stock: -n}, $set: {holds.<order>: {quantity: n, returned: false}}}.
//   - record (one reservation update): r = taken for the lines taken, state reserved or
//     failed. Only then is the hold removed ($unset, if still {returned: false}), which
//     leaves (taken, none).
//   - give back (failed or released, r ≠ settled): under the product lock, read
//     holds.<order>: {returned: false} → $inc +n and set returned; (taken, none) → $inc +n
//     and set the hold {returned: true} again, so a crash before the record still shows
//     "given back"; {returned: true} → nothing; ("", none) → nothing (never taken).
//     Then r = settled for all those lines in one update, then the holds are removed
//     (if {returned: true}).
//
// A retry finds the reservation stored (its insert is refused as a duplicate, then it
// reads it) and drives it on from whatever state a crash left:
// a pending one takes its lines with r = "" (a hold found counts as taken), then records;
// a failed or released one gives back every line not settled. Each product update is one
// single-document write that moves the stock and changes the hold together, so a crash
// falls before or after it, never in between, and the table above covers every point.
// A crash between a record and the removal of the hold it allows leaves that hold behind
// (consistent with the record, so harmless); such leftovers are bounded by the number of
// crashes, not by the number of orders.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/product/catalog"
)

// Reservation states.
const (
	statePending  = "pending"
	stateReserved = "reserved"
	stateFailed   = "failed"
	stateReleased = "released"
)

// reservationDoc is a reservation as stored.
type reservationDoc struct {
	OrderID    string    `bson:"_id"`
	State      string    `bson:"state"`
	Lines      []lineDoc `bson:"lines"`
	TotalCents int64     `bson:"totalCents"`
	// Failure is why a failed reservation failed, answered again to a repeated request.
	Failure   *failureDoc `bson:"failure,omitempty"`
	CreatedAt time.Time   `bson:"createdAt"`
	UpdatedAt time.Time   `bson:"updatedAt"`
}

// lineDoc is one line of a reservation, priced when the reservation was made.
type lineDoc struct {
	ProductID      string `bson:"productId"`
	Quantity       int64  `bson:"quantity"`
	UnitPriceCents int64  `bson:"unitPriceCents"`
	Currency       string `bson:"currency"`
	// Stock is what the reservation has recorded about the line's units: "" (nothing
	// yet), lineTaken or lineSettled (see the top).
	Stock string `bson:"stock,omitempty"`
}

// Line records.
const (
	lineTaken   = "taken"   // the units are taken; the hold may be gone
	lineSettled = "settled" // nothing is held: given back, or never taken and never to be
)

// failureDoc records a failed reservation's answer: the short lines, or the products gone.
type failureDoc struct {
	Shortages []shortageDoc `bson:"shortages,omitempty"`
	Unknown   []string      `bson:"unknown,omitempty"`
}

// shortageDoc is a catalog.Shortage as stored.
type shortageDoc struct {
	ProductID string `bson:"productId"`
	Requested int64  `bson:"requested"`
	Available int64  `bson:"available"`
}

func (f *failureDoc) err() error {
	if len(f.Unknown) > 0 {
		return catalog.UnknownProducts(f.Unknown...)
	}
	shortages := make([]catalog.Shortage, len(f.Shortages))
	for i, s := range f.Shortages {
		shortages[i] = catalog.Shortage(s)
	}
	return catalog.InsufficientStock(shortages...)
}

func (d reservationDoc) reservation() catalog.Reservation {
	res := catalog.Reservation{OrderID: d.OrderID, Items: make([]catalog.ReservedItem, len(d.Lines)), TotalCents: d.TotalCents}
	for i, l := range d.Lines {
		res.Items[i] = catalog.ReservedItem{ProductID: l.ProductID, Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents, Currency: l.Currency}
	}
	return res
}

// Reserve takes the stock of every line of req (validated) or of none. created is true
// when this call made the reservation; a repeated request gets the same reservation
// (created false) and takes nothing more, and resumes one a crash left pending.
func (s *Store) Reserve(ctx context.Context, req catalog.ReservationRequest) (res catalog.Reservation, created bool, err error) {
	// Once started, a reservation is driven to its end even if the caller goes away, so a
	// client's timeout does not leave it half taken (each operation is still bounded by
	// the client's operation timeout).
	ctx = context.WithoutCancel(ctx)
	defer s.lockOrder(req.OrderID)()
	if err := s.fence(ctx, s.reservations, req.OrderID); err != nil {
		return catalog.Reservation{}, false, err
	}
	doc, created, err := s.findOrCreateReservation(ctx, req)
	if err != nil {
		return catalog.Reservation{}, false, err
	}
	// A released order answers "released" whatever it asks for (settle says it).
	if doc.State != stateReleased && !doc.reservation().SameItems(req) {
		return catalog.Reservation{}, false, catalog.ErrDifferentItems
	}
	if doc.State == statePending {
		if err := s.takeLines(ctx, &doc); err != nil {
			return catalog.Reservation{}, false, err
		}
	}
	if err := s.settle(ctx, &doc); err != nil {
		return catalog.Reservation{}, false, err
	}
	return doc.reservation(), created, nil
}

// lockOrder locks order: the steps of one order run one at a time (see the top).
func (s *Store) lockOrder(order string) (unlock func()) {
	return s.locks.Lock(mongodb.DocumentKey(s.reservations, order))
}

// findOrCreateReservation returns order's reservation, storing req priced as pending
// when there is none. A new order is the common case, so it prices and inserts first and
// reads only when the insert finds the order stored already. An unknown product or
// mixed currencies refuse a new order before anything is written.
func (s *Store) findOrCreateReservation(ctx context.Context, req catalog.ReservationRequest) (reservationDoc, bool, error) {
	doc, priceErr := s.price(ctx, req)
	if priceErr == nil {
		err := s.write(ctx, func() error { _, err := s.reservations.InsertOne(ctx, doc); return err })
		if err == nil {
			return doc, true, nil
		}
		if !mongodb.IsDuplicateKey(err) {
			return reservationDoc{}, false, fmt.Errorf("insert reservation: %w", err)
		}
	}
	// Stored already (the products it names may have changed or gone since).
	doc, err := s.findReservation(ctx, req.OrderID)
	if errors.Is(err, mongo.ErrNoDocuments) && priceErr != nil {
		return reservationDoc{}, false, priceErr
	}
	return doc, false, err
}

// price makes req's pending reservation document from its products as they are now.
func (s *Store) price(ctx context.Context, req catalog.ReservationRequest) (reservationDoc, error) {
	products := make(map[string]catalog.Product, len(req.Items))
	for _, it := range req.Items {
		p, err := s.priced(ctx, it.ProductID)
		if errors.Is(err, errProductNotFound) {
			continue
		}
		if err != nil {
			return reservationDoc{}, err
		}
		products[it.ProductID] = p
	}
	priced, err := catalog.Price(req, products)
	if err != nil {
		return reservationDoc{}, err
	}
	now := s.now()
	doc := reservationDoc{
		OrderID: req.OrderID, State: statePending, Lines: make([]lineDoc, len(priced.Items)),
		TotalCents: priced.TotalCents, CreatedAt: now, UpdatedAt: now,
	}
	for i, it := range priced.Items {
		doc.Lines[i] = lineDoc{ProductID: it.ProductID, Quantity: it.Quantity, UnitPriceCents: it.UnitPriceCents, Currency: it.Currency}
	}
	return doc, nil
}

// priced returns product id as pricing needs it: from the cache, else read by _id (one
// lookup per line: FerretDB leaves those to SQLite, while for an $in filter it decodes
// the whole collection).
func (s *Store) priced(ctx context.Context, id string) (catalog.Product, error) {
	oid, ok := mongodb.ParseID(id)
	if !ok {
		return catalog.Product{}, errProductNotFound
	}
	p, ok, gen := s.prices.get(oid)
	// While an update of the product has an unknown outcome (it timed out, and may land up to
	// lateWriteWindow later), the product is read each time and not cached: a read made
	// before the update lands would stay cached after it. Asked after the generation: an
	// update failing in between is either seen here or drops the fill (Update invalidates
	// after its write).
	uncertain := s.unknown.has(mongodb.DocumentKey(s.products, oid))
	if ok && !uncertain {
		return p, nil
	}
	doc, err := s.findProduct(ctx, oid)
	if err != nil {
		return catalog.Product{}, err
	}
	p = doc.product()
	if !uncertain {
		s.prices.fill(oid, p, gen)
	}
	return p, nil
}

// takeLines takes every line of a pending reservation not taken yet, then records the
// lines taken and moves it to reserved, or to failed when a line cannot be served, and
// removes the holds the record made useless. doc is updated to match.
func (s *Store) takeLines(ctx context.Context, doc *reservationDoc) error {
	var failure failureDoc
	for i := range doc.Lines {
		l := &doc.Lines[i]
		if l.Stock != "" {
			continue
		}
		available, err := s.take(ctx, doc.OrderID, *l)
		switch {
		case errors.Is(err, errProductNotFound):
			failure.Unknown = append(failure.Unknown, l.ProductID)
		case errors.Is(err, errShort):
			failure.Shortages = append(failure.Shortages, shortageDoc{ProductID: l.ProductID, Requested: l.Quantity, Available: available})
		case err != nil:
			return err
		default:
			l.Stock = lineTaken
			continue
		}
		// Nothing more is taken; the answer still names every line that cannot be served.
		if err := s.checkRest(ctx, doc.OrderID, doc.Lines[i+1:], &failure); err != nil {
			return err
		}
		break
	}
	set := bson.D{{Key: "lines", Value: doc.Lines}}
	doc.State = stateReserved
	if len(failure.Unknown) > 0 || len(failure.Shortages) > 0 {
		doc.State, doc.Failure = stateFailed, &failure
		set = append(set, bson.E{Key: "failure", Value: failure})
	}
	if err := s.setReservation(ctx, doc, set); err != nil {
		return err
	}
	if doc.State == stateReserved {
		// Recorded: the holds can go. (A failed reservation gives its lines back first.)
		for _, l := range doc.Lines {
			s.removeHold(doc.OrderID, l, false)
		}
	}
	return nil
}

var errShort = errors.New("insufficient stock")

// take takes line l's units for order from its product, once. It returns nil when the
// units are held for the order (now, or by an attempt a crash interrupted), errShort
// with the units available, or errProductNotFound.
func (s *Store) take(ctx context.Context, order string, l lineDoc) (available int64, err error) {
	oid, ok := mongodb.ParseID(l.ProductID)
	if !ok {
		return 0, errProductNotFound
	}
	step := &productStep{order: order, quantity: l.Quantity}
	err = s.onProduct(ctx, oid, step)
	return step.available, err
}

// checkRest adds to failure the lines of lines that could not be served either (a line
// a crashed attempt took could), without taking anything.
func (s *Store) checkRest(ctx context.Context, order string, lines []lineDoc, failure *failureDoc) error {
	for _, l := range lines {
		oid, ok := mongodb.ParseID(l.ProductID)
		if !ok {
			failure.Unknown = append(failure.Unknown, l.ProductID)
			continue
		}
		p, err := s.holdOf(ctx, oid, order, true)
		switch {
		case errors.Is(err, errProductNotFound):
			failure.Unknown = append(failure.Unknown, l.ProductID)
		case err != nil:
			return err
		case p.hold == nil && p.stock < l.Quantity:
			failure.Shortages = append(failure.Shortages, shortageDoc{ProductID: l.ProductID, Requested: l.Quantity, Available: p.stock})
		}
	}
	return nil
}

// productHold is what a step needs of a product: its stock and order's hold, if any.
type productHold struct {
	stock int64
	hold  *hold
}

// holdOf reads product id's stock (when withStock) and order's hold on it, or
// errProductNotFound. Only those fields travel.
func (s *Store) holdOf(ctx context.Context, id bson.ObjectID, order string, withStock bool) (productHold, error) {
	var doc struct {
		Stock int64           `bson:"stock"`
		Holds map[string]hold `bson:"holds"`
	}
	projection := bson.D{{Key: holdKey(order), Value: 1}}
	if withStock {
		projection = append(projection, bson.E{Key: "stock", Value: 1})
	}
	err := s.products.FindOne(ctx, byID(id), options.FindOne().SetProjection(projection)).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return productHold{}, errProductNotFound
	}
	if err != nil {
		return productHold{}, fmt.Errorf("read stock: %w", err)
	}
	p := productHold{stock: doc.Stock}
	if h, ok := doc.Holds[order]; ok {
		p.hold = &h
	}
	return p, nil
}

// updateProduct applies update to product id (whose lock the caller holds). A product
// deleted meanwhile is errProductNotFound.
func (s *Store) updateProduct(ctx context.Context, id bson.ObjectID, what string, update bson.D) error {
	matched, err := s.update(ctx, s.products, id, update)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if matched == 0 {
		return errProductNotFound
	}
	return nil
}

// removeHold removes order's hold on l's product, in the background, if it is still
// {returned: returned}: the reservation has recorded r = taken (returned false) or
// r = settled (returned true), which makes such a hold useless (see the top). The answer
// does not wait for it: the removal waits in the product's queue for the next take of
// that product, whose read and write it shares (batch.go), or runs alone after
// holdRemovalDelay. Wait runs the waiting ones at once and waits for them.
func (s *Store) removeHold(order string, l lineDoc, returned bool) {
	oid, ok := mongodb.StoredID(l.ProductID) // a line stored by an earlier version may be in upper case
	if !ok {
		return
	}
	step := &productStep{order: order, remove: true, returned: returned}
	s.batches.add(oid, step)
	s.removals.Add(1)
	s.delayed.mu.Lock()
	defer s.delayed.mu.Unlock()
	if s.delayed.timers == nil {
		s.delayed.timers = map[*time.Timer]func(){}
	}
	var t *time.Timer
	run := func() {
		defer s.removals.Done()
		// An error leaves the hold behind, which is harmless (see the top).
		_ = s.runQueued(s.removalCtx, oid, step)
	}
	t = time.AfterFunc(holdRemovalDelay, func() {
		s.delayed.mu.Lock()
		delete(s.delayed.timers, t)
		s.delayed.mu.Unlock()
		run()
	})
	s.delayed.timers[t] = run
}

// holdRemovalDelay is how long a hold removal waits for a take of its product to ride
// along with. A product taken often has its holds removed with its next take, within
// moments; this bounds how long one taken rarely keeps the holds of orders done.
const holdRemovalDelay = 2 * time.Second

// Wait runs the hold removals still waiting for a take, and waits for every removal
// started so far: call it before closing the database. When ctx ends first it stops
// them (each leaves its hold behind, which is harmless, see the top) and returns
// ctx's error at once: the shutdown's deadline bounds it, however long the database
// takes to answer.
func (s *Store) Wait(ctx context.Context) error {
	s.delayed.mu.Lock()
	var now []func()
	for t, run := range s.delayed.timers {
		if t.Stop() { // not started: run it now instead
			now = append(now, run)
		}
		delete(s.delayed.timers, t)
	}
	s.delayed.mu.Unlock()
	for _, run := range now {
		go run()
	}
	done := make(chan struct{})
	go func() {
		s.removals.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.stopRemovals()
		return fmt.Errorf("hold removals still running: %w", ctx.Err())
	}
}

func holdKey(order string) string { return "holds." + order }

// settle finishes what doc's state asks for: a failed or released reservation gives
// back every line not settled (again after a crash; a repeat gives back nothing). It
// returns the answer a failed or released reservation gives.
func (s *Store) settle(ctx context.Context, doc *reservationDoc) error {
	switch doc.State {
	case stateReserved:
		return nil
	case stateFailed:
		if err := s.giveBack(ctx, doc); err != nil {
			return err
		}
		if doc.Failure == nil {
			return errors.New("failed reservation " + doc.OrderID + " has no failure recorded")
		}
		return doc.Failure.err()
	case stateReleased:
		if err := s.giveBack(ctx, doc); err != nil {
			return err
		}
		return catalog.ErrReleased
	default:
		return fmt.Errorf("reservation %s is %s after it was driven", doc.OrderID, doc.State)
	}
}

// giveBack returns each line of doc (failed or released) not settled to its product's
// stock, once, records the lines settled, then removes their holds. doc is updated.
func (s *Store) giveBack(ctx context.Context, doc *reservationDoc) error {
	var settled []lineDoc
	for i := range doc.Lines {
		l := &doc.Lines[i]
		if l.Stock == lineSettled {
			continue
		}
		if err := s.giveBackLine(ctx, doc.OrderID, *l); err != nil {
			return err
		}
		l.Stock = lineSettled
		settled = append(settled, *l)
	}
	if len(settled) == 0 {
		return nil
	}
	if err := s.setReservation(ctx, doc, bson.D{{Key: "lines", Value: doc.Lines}}); err != nil {
		return err
	}
	for _, l := range settled {
		s.removeHold(doc.OrderID, l, true)
	}
	return nil
}

// giveBackLine gives line l of order back to its product's stock unless that is done or
// it was never taken, leaving the hold {returned: true} in every case where units were
// taken (see the table at the top).
func (s *Store) giveBackLine(ctx context.Context, order string, l lineDoc) error {
	oid, ok := mongodb.StoredID(l.ProductID) // a line stored by an earlier version may be in upper case
	if !ok {
		return nil
	}
	err := s.serializeProduct(ctx, oid, func() error {
		p, err := s.holdOf(ctx, oid, order, false)
		if err != nil {
			return err
		}
		set := bson.E{Key: holdKey(order) + ".returned", Value: true}
		switch {
		case p.hold != nil && p.hold.Returned:
			return nil // given back before a crash
		case p.hold == nil && l.Stock != lineTaken:
			return nil // never taken
		case p.hold == nil:
			// Taken, recorded, hold removed: set it again, returned, with the units.
			set = bson.E{Key: holdKey(order), Value: hold{Quantity: l.Quantity, Returned: true}}
		}
		return s.updateProduct(ctx, oid, "give back stock", bson.D{
			{Key: "$inc", Value: bson.D{{Key: "stock", Value: l.Quantity}}},
			{Key: "$set", Value: bson.D{set}},
		})
	})
	if errors.Is(err, errProductNotFound) {
		return nil // nothing left to give back to
	}
	return err
}

// Release gives back the stock of order's reservation, once; releasing again, or an
// order never reserved, does nothing more. An order released before its reservation
// arrives is remembered as released, so a late reservation request takes nothing; a
// reservation's insert that lands between the read and that record is released like any
// other.
func (s *Store) Release(ctx context.Context, order string) error {
	ctx = context.WithoutCancel(ctx) // as in Reserve
	defer s.lockOrder(order)()
	if err := s.fence(ctx, s.reservations, order); err != nil {
		return err
	}
	doc, err := s.findReservation(ctx, order)
	if errors.Is(err, mongo.ErrNoDocuments) {
		now := s.now()
		insertErr := s.write(ctx, func() error {
			_, err := s.reservations.InsertOne(ctx, reservationDoc{
				OrderID: order, State: stateReleased, Lines: []lineDoc{}, CreatedAt: now, UpdatedAt: now,
			})
			return err
		})
		if insertErr == nil {
			return nil
		}
		if !mongodb.IsDuplicateKey(insertErr) {
			return fmt.Errorf("insert released reservation: %w", insertErr)
		}
		// Stored meanwhile: an insert whose answer was lost (a reservation, or a release,
		// that timed out) landed after the read. Release what it stored.
		doc, err = s.findReservation(ctx, order)
	}
	if err != nil {
		return err
	}
	if doc.State == statePending || doc.State == stateReserved {
		doc.State = stateReleased
		if err := s.setReservation(ctx, &doc, nil); err != nil {
			return err
		}
	}
	// Released now, or failed: give back whatever is still held.
	return s.giveBack(ctx, &doc)
}

// setReservation writes doc's state and updatedAt, and set, to order's reservation. The
// caller holds the order's lock, so it writes over what it read.
func (s *Store) setReservation(ctx context.Context, doc *reservationDoc, set bson.D) error {
	doc.UpdatedAt = s.now()
	set = append(set, bson.E{Key: "state", Value: doc.State}, bson.E{Key: "updatedAt", Value: doc.UpdatedAt})
	if _, err := s.update(ctx, s.reservations, doc.OrderID, bson.D{{Key: "$set", Value: set}}); err != nil {
		return fmt.Errorf("reservation %s → %s: %w", doc.OrderID, doc.State, err)
	}
	return nil
}

func (s *Store) findReservation(ctx context.Context, order string) (reservationDoc, error) {
	var doc reservationDoc
	err := s.reservations.FindOne(ctx, byID(order)).Decode(&doc)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return reservationDoc{}, fmt.Errorf("find reservation: %w", err)
	}
	return doc, err
}

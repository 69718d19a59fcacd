package store

// Reservations without multi-document transactions.
//
// A reservation document, keyed by the order id (unique _id), records the request as
// priced when it was first seen and its state:
//
//	pending ──all lines taken──▶ reserved ──release──▶ released
//	   │ └──────────────release──────────────────────▲
//	   └──a line short or gone──▶ failed
//
// Each state change is an update conditional on the current state, so of two racing
// changes one wins and the loser reads the winner's. The stock itself moves in the
// product document, where a hold, keyed by order id, records each line next to the stock
// it came from; taking and giving back are single-document updates whose filter makes
// them happen once:
//
//	take:      {_id: p, stock: {$gte: n}, holds.<order>: {$exists: false}}
//	           → $inc stock -n, set holds.<order> = {quantity: n, returned: false}
//	give back: {_id: p, holds.<order>.returned: false}
//	           → $inc stock +n, set holds.<order>.returned = true
//
// A hold is never removed, so no line is taken twice for an order, nor given back twice,
// whoever runs the steps and however often. That is what makes repair safe: any request
// for an order drives its reservation forward from whatever state a crash left it in.
// A pending reservation's lines are taken (a line already held counts as taken), then it
// becomes reserved or failed; a failed or released reservation gives back every line
// still held. A request that took a line after another request ended the reservation
// sees the end when its own state change loses, and gives the line back itself.

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
}

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
		res.Items[i] = catalog.ReservedItem(l)
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
	doc, err := s.findReservation(ctx, req.OrderID)
	if errors.Is(err, mongo.ErrNoDocuments) {
		doc, created, err = s.createReservation(ctx, req)
	}
	if err != nil {
		return catalog.Reservation{}, false, err
	}
	// A released order answers "released" whatever it asks for (settle says it).
	if doc.State != stateReleased && !doc.reservation().SameItems(req) {
		return catalog.Reservation{}, false, catalog.ErrDifferentItems
	}
	if doc.State == statePending {
		if doc, err = s.takeLines(ctx, doc); err != nil {
			return catalog.Reservation{}, false, err
		}
	}
	if err := s.settle(ctx, doc); err != nil {
		return catalog.Reservation{}, false, err
	}
	return doc.reservation(), created, nil
}

// createReservation prices req and stores it as pending. An unknown product or mixed
// currencies refuse it before anything is written. When another request stored the
// same order first, it returns that one.
func (s *Store) createReservation(ctx context.Context, req catalog.ReservationRequest) (reservationDoc, bool, error) {
	products := make(map[string]catalog.Product, len(req.Items))
	for _, it := range req.Items {
		// One lookup by _id per line: FerretDB answers those from its index, while an $in
		// filter reads the whole collection.
		p, err := s.Get(ctx, it.ProductID)
		if errors.Is(err, errProductNotFound) {
			continue
		}
		if err != nil {
			return reservationDoc{}, false, err
		}
		products[it.ProductID] = p
	}
	priced, err := catalog.Price(req, products)
	if err != nil {
		return reservationDoc{}, false, err
	}
	now := s.now()
	doc := reservationDoc{
		OrderID: req.OrderID, State: statePending, Lines: make([]lineDoc, len(priced.Items)),
		TotalCents: priced.TotalCents, CreatedAt: now, UpdatedAt: now,
	}
	for i, it := range priced.Items {
		doc.Lines[i] = lineDoc(it)
	}
	_, err = s.reservations.InsertOne(ctx, doc)
	if mongodb.IsDuplicateKey(err) {
		doc, err = s.findReservation(ctx, req.OrderID)
		return doc, false, err
	}
	if err != nil {
		return reservationDoc{}, false, fmt.Errorf("insert reservation: %w", err)
	}
	return doc, true, nil
}

// takeLines takes every line of a pending reservation, then moves it to reserved, or to
// failed when a line cannot be served, and returns it as it then stands (the outcome of
// a racing request may have won).
func (s *Store) takeLines(ctx context.Context, doc reservationDoc) (reservationDoc, error) {
	var failure failureDoc
	for i, l := range doc.Lines {
		available, err := s.take(ctx, doc.OrderID, l)
		switch {
		case errors.Is(err, errProductNotFound):
			failure.Unknown = append(failure.Unknown, l.ProductID)
		case errors.Is(err, errShort):
			failure.Shortages = append(failure.Shortages, shortageDoc{ProductID: l.ProductID, Requested: l.Quantity, Available: available})
		case err != nil:
			return reservationDoc{}, err
		default:
			continue
		}
		// Nothing more is taken; the answer still names every line that cannot be served.
		if err := s.checkRest(ctx, doc.OrderID, doc.Lines[i+1:], &failure); err != nil {
			return reservationDoc{}, err
		}
		break
	}
	to, set := stateReserved, bson.D{}
	if len(failure.Unknown) > 0 || len(failure.Shortages) > 0 {
		to, set = stateFailed, bson.D{{Key: "failure", Value: failure}}
	}
	if err := s.transition(ctx, doc.OrderID, []string{statePending}, to, set); err != nil {
		return reservationDoc{}, err
	}
	return s.findReservation(ctx, doc.OrderID)
}

var errShort = errors.New("insufficient stock")

// take takes line l's units for order from its product, once. It returns nil when the
// units are held for the order (now or already), errShort with the units available, or
// errProductNotFound.
func (s *Store) take(ctx context.Context, order string, l lineDoc) (available int64, err error) {
	oid, ok := mongodb.ParseID(l.ProductID)
	if !ok {
		return 0, errProductNotFound
	}
	holdKey := "holds." + order
	for {
		taken, err := s.update(ctx, s.products, oid,
			bson.D{
				{Key: "_id", Value: oid},
				{Key: "stock", Value: bson.D{{Key: "$gte", Value: l.Quantity}}},
				{Key: holdKey, Value: bson.D{{Key: "$exists", Value: false}}},
			},
			bson.D{
				{Key: "$inc", Value: bson.D{{Key: "stock", Value: -l.Quantity}}},
				{Key: "$set", Value: bson.D{{Key: holdKey, Value: hold{Quantity: l.Quantity}}}},
			})
		if err != nil {
			return 0, fmt.Errorf("take stock: %w", err)
		}
		if taken {
			return 0, nil
		}
		// Why not: gone, already held, or short. Stock may also have grown in between;
		// then try again.
		stock, held, err := s.stockOf(ctx, oid, order)
		switch {
		case err != nil:
			return 0, err
		case held:
			return 0, nil
		case stock < l.Quantity:
			return stock, errShort
		}
	}
}

// checkRest adds to failure the lines of lines that could not be served either, without
// taking anything.
func (s *Store) checkRest(ctx context.Context, order string, lines []lineDoc, failure *failureDoc) error {
	for _, l := range lines {
		oid, ok := mongodb.ParseID(l.ProductID)
		if !ok {
			failure.Unknown = append(failure.Unknown, l.ProductID)
			continue
		}
		stock, held, err := s.stockOf(ctx, oid, order)
		switch {
		case errors.Is(err, errProductNotFound):
			failure.Unknown = append(failure.Unknown, l.ProductID)
		case err != nil:
			return err
		case !held && stock < l.Quantity:
			failure.Shortages = append(failure.Shortages, shortageDoc{ProductID: l.ProductID, Requested: l.Quantity, Available: stock})
		}
	}
	return nil
}

// stockOf reads product id's stock and whether order holds units of it.
func (s *Store) stockOf(ctx context.Context, id bson.ObjectID, order string) (stock int64, held bool, err error) {
	var doc struct {
		Stock int64           `bson:"stock"`
		Holds map[string]hold `bson:"holds"`
	}
	err = s.products.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: "stock", Value: 1}, {Key: "holds." + order, Value: 1}})).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, false, errProductNotFound
	}
	if err != nil {
		return 0, false, fmt.Errorf("read stock: %w", err)
	}
	_, held = doc.Holds[order]
	return doc.Stock, held, nil
}

// settle finishes what doc's state asks for: a failed or released reservation gives
// back every line still held (again after a crash; a repeat gives back nothing). It
// returns the answer a failed reservation gives.
func (s *Store) settle(ctx context.Context, doc reservationDoc) error {
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

// giveBack returns each line of doc held for its order to its product's stock, once.
func (s *Store) giveBack(ctx context.Context, doc reservationDoc) error {
	prefix := "holds." + doc.OrderID + "."
	for _, l := range doc.Lines {
		oid, ok := mongodb.ParseID(l.ProductID)
		if !ok {
			continue
		}
		_, err := s.update(ctx, s.products, oid,
			bson.D{{Key: "_id", Value: oid}, {Key: prefix + "returned", Value: false}},
			bson.D{
				{Key: "$inc", Value: bson.D{{Key: "stock", Value: l.Quantity}}},
				{Key: "$set", Value: bson.D{{Key: prefix + "returned", Value: true}}},
			})
		if err != nil {
			return fmt.Errorf("give back stock: %w", err)
		}
	}
	return nil
}

// Release gives back the stock of order's reservation, once; releasing again, or an
// order never reserved, does nothing more. An order released before its reservation
// arrives is remembered as released, so a late reservation request takes nothing.
func (s *Store) Release(ctx context.Context, order string) error {
	ctx = context.WithoutCancel(ctx) // as in Reserve
	doc, err := s.findReservation(ctx, order)
	if errors.Is(err, mongo.ErrNoDocuments) {
		now := s.now()
		_, err = s.reservations.InsertOne(ctx, reservationDoc{
			OrderID: order, State: stateReleased, Lines: []lineDoc{}, CreatedAt: now, UpdatedAt: now,
		})
		if err == nil {
			return nil
		}
		if !mongodb.IsDuplicateKey(err) {
			return fmt.Errorf("insert released reservation: %w", err)
		}
		// A reservation request made it first: release that one.
		doc, err = s.findReservation(ctx, order)
	}
	if err != nil {
		return err
	}
	if doc.State == statePending || doc.State == stateReserved {
		if err := s.transition(ctx, order, []string{statePending, stateReserved}, stateReleased, nil); err != nil {
			return err
		}
		if doc, err = s.findReservation(ctx, order); err != nil {
			return err
		}
	}
	// Released now, or failed: give back whatever is still held.
	return s.giveBack(ctx, doc)
}

// transition moves order's reservation to state to (setting set too) if it is in one of
// from; when it is not, another request changed it first, and the caller reads it again.
func (s *Store) transition(ctx context.Context, order string, from []string, to string, set bson.D) error {
	set = append(set, bson.E{Key: "state", Value: to}, bson.E{Key: "updatedAt", Value: s.now()})
	_, err := s.update(ctx, s.reservations, order,
		bson.D{{Key: "_id", Value: order}, {Key: "state", Value: bson.D{{Key: "$in", Value: from}}}},
		bson.D{{Key: "$set", Value: set}})
	if err != nil {
		return fmt.Errorf("reservation %s → %s: %w", order, to, err)
	}
	return nil
}

func (s *Store) findReservation(ctx context.Context, order string) (reservationDoc, error) {
	var doc reservationDoc
	err := s.reservations.FindOne(ctx, bson.D{{Key: "_id", Value: order}}).Decode(&doc)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return reservationDoc{}, fmt.Errorf("find reservation: %w", err)
	}
	return doc, err
}

// Package outbox stores a document's outgoing events in the document itself and relays
// them to the broker. The store has no multi-document transactions, so a state change
// and the event announcing it must be one write to one document: the change is then
// never stored without its event, nor the event sent for a change that was not stored.
//
// A document with events to send carries them in its "outbox" array and has
// "outboxPending" set; the Relay publishes each with publisher confirms and only then
// removes it. An event may be published twice (a crash between confirm and removal, or
// two relays): consumers deduplicate by event id.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/messaging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// Field names in the documents.
const (
	// Field holds the array of pending events.
	Field = "outbox"
	// PendingField is true while Field may hold events. It exists because the store
	// cannot be trusted to test an array for elements (FerretDB matched an emptied
	// array with "outbox.0": {$exists: true}), and it is indexed for the relay.
	PendingField = "outboxPending"
)

// Event is an event waiting in a document's outbox.
type Event struct {
	ID          string    `bson:"id"`
	Type        string    `bson:"type"`
	Body        string    `bson:"body"` // the JSON, kept byte for byte
	Traceparent string    `bson:"traceparent,omitempty"`
	Tracestate  string    `bson:"tracestate,omitempty"`
	RequestID   string    `bson:"requestId,omitempty"`
	Time        time.Time `bson:"time"`
	Mandatory   bool      `bson:"mandatory"`
}

// NewEvent makes an event of type typ with payload as its JSON body. Mandatory events
// must reach a queue (see messaging.Message.Mandatory). ctx gives the traceparent, the
// tracestate and the request id (web.RequestID).
func NewEvent(ctx context.Context, typ string, payload any, mandatory bool) (Event, error) {
	body, err := json.Marshal(payload)
	if err != nil {
		return Event{}, err
	}
	return Event{
		ID:          bson.NewObjectID().Hex(),
		Type:        typ,
		Body:        string(body),
		Traceparent: messaging.Traceparent(ctx),
		Tracestate:  messaging.Tracestate(ctx),
		RequestID:   web.RequestID(ctx),
		Time:        time.Now().UTC().Truncate(time.Millisecond),
		Mandatory:   mandatory,
	}, nil
}

// Push returns the update operators that append events to a document's outbox; the
// caller adds its own $set to the same update, which must set PendingField to true,
// and holds the document's lock (Relay.Locks) while it runs the update.
func Push(events ...Event) bson.D {
	return bson.D{
		{Key: "$push", Value: bson.D{{Key: Field, Value: bson.D{{Key: "$each", Value: events}}}}},
	}
}

// Set returns the fields of a $set that rewrites a document's outbox: current without
// the events in drop (those the relay handed over with TakeConfirmed), then events. The
// caller holds the document's lock and read current under it.
func Set(current []Event, drop map[string]bool, events ...Event) bson.D {
	kept := make([]Event, 0, len(current)+len(events))
	for _, e := range current {
		if !drop[e.ID] {
			kept = append(kept, e)
		}
	}
	kept = append(kept, events...)
	return bson.D{{Key: Field, Value: kept}, {Key: PendingField, Value: len(kept) > 0}}
}

// Indexes are the indexes a collection with an outbox needs.
func Indexes() []mongo.IndexModel {
	return []mongo.IndexModel{{Keys: bson.D{{Key: PendingField, Value: 1}}}}
}

// Publisher is what the relay needs of messaging.Publisher.
type Publisher interface {
	Publish(ctx context.Context, m messaging.Message) error
}

// Relay publishes the events waiting in one collection's documents.
//
// On FerretDB an update rewrites the whole document from a copy read before it, so
// two concurrent updates of one document can undo each other (see mongodb.KeyedMutex).
// The relay therefore changes a document only under its lock in Locks, and every other
// writer of the collection's documents must hold the same lock (Locks().Serialize).
//
// With a removal delay, the relay does not remove a published event at once: a writer
// that changes the document meanwhile takes it over (TakeConfirmed) and removes it in
// its own update, which saves a read and a write of the document.
//
// A document's events go out in the order they were added: the relay works on one
// document at a time (passes), and it publishes the events a writer hands to Notify
// without reading them back only while it knows of no event left unsent in any
// document (a failed publish, a dropped notification, a restart); otherwise it reads
// the document's whole outbox and sends it from the first event.
type Relay struct {
	coll     *mongo.Collection
	pub      Publisher
	locks    *mongodb.KeyedMutex
	writes   *mongodb.Gate
	log      *slog.Logger
	interval time.Duration
	batch    int
	notes    chan notification // documents that just got events: the fast path
	inflight chan struct{}     // bounds the documents relayed at once
	passes   mongodb.KeyedMutex
	delay    time.Duration        // how long a published event waits for a writer to remove it
	stop     chan context.Context // Stop's request to Run, with its deadline
	stopped  chan struct{}        // closed when Run returns

	mu        sync.Mutex
	behind    bool                 // events may wait that no notification names; a scan is due
	failures  uint64               // how many times behind was set, so a scan knows it saw them all
	scans     uint64               // scans started: a notification older than a scan may name events it sent
	confirmed map[string]*pending  // by document key: published events not yet removed
	timers    map[*time.Timer]bool // removals due after the delay, not started yet
	removals  sync.WaitGroup       // removals due after the delay, not finished yet

	// removing lets one removal due after the delay run at a time. Each takes a turn of
	// the write gate, and a burst of them (a backlog sent at once, as after a broker
	// outage) queued there together would put every request's write behind all of them;
	// one at a time, a request's write waits for one removal at most.
	removing sync.Mutex
}

// pending are the published events of one document whose removal waits.
type pending struct {
	id  any
	ids map[string]bool
}

// notification names a document that got events, and the events when the writer
// handed them over.
type notification struct {
	id     any
	events []Event
	scans  uint64
}

// idleScan is how often the relay scans when nothing failed: on FerretDB a scan reads
// every document of the collection, so it runs only as a safety net.
const idleScan = 30 * time.Second

// scanTimeout bounds the query of a scan. On FerretDB it reads every document of the
// collection (some 2 s per 20,000 orders on 2 cores), which the client's per-operation
// timeout, sized for single-document operations, would cut short once the collection
// is large, and then no scan would ever finish.
const scanTimeout = 5 * time.Minute

// scanWait is how long after the last scan the next one is due: every interval while
// the relay is behind, else every idleScan; but never so often that scanning takes more
// than a fifth of the time while behind, or a twentieth otherwise (ScanTimes.Wait, over
// the store's work in the last two scans). A scan's time is its queries' alone: its
// publishes wait for the broker as long as it is down, and an outage must not space out
// the retries that follow it.
func scanWait(behind bool, interval time.Duration, times *ScanTimes) time.Duration {
	if behind {
		return times.Wait(interval, 5)
	}
	return times.Wait(idleScan, 20)
}

// ScanTimes is the store's work (TimedQuery) in the last two scans of a store, which
// ScanTimes.Wait spaces the scans by. The zero value is that of a start: no scan yet.
type ScanTimes struct {
	last, before time.Duration
	scans        int
}

// Begin starts counting the work of a new scan; the last one's becomes the one before.
func (s *ScanTimes) Begin() {
	s.before, s.last = s.last, 0
	s.scans++
}

// Add counts d, the work of one of its queries (TimedQuery), in the scan begun last.
func (s *ScanTimes) Add(d time.Duration) { s.last += d }

// Last is the work counted in the scan begun last.
func (s *ScanTimes) Last() time.Duration { return s.last }

// Wait is how long after the scan begun last the next is due: every interval, but never
// so often that the scans take more than a share-th of the store's time (on FerretDB a
// query on anything but _id reads the whole collection). Of the last two scans, the
// shorter counts, so that one scan slowed by a stall of the store does not space out the
// next ones, while a collection slow to read every time keeps its share; a scan that
// found the store unreachable counted nothing, and so the stalled scan after it spaces
// out nothing either. After the first scan from a start, it alone counts.
func (s *ScanTimes) Wait(interval time.Duration, share int) time.Duration {
	took := s.last
	if s.scans > 1 {
		took = min(s.last, s.before)
	}
	return max(interval, time.Duration(share)*took)
}

// TimedQuery runs query with a deadline of its own, timeout, in place of the client's
// per-operation timeout (on FerretDB a scan's query reads the whole collection), and returns
// how much of the store's work it counts (queryTime) with query's error.
func TimedQuery(ctx context.Context, timeout time.Duration, query func(ctx context.Context) error) (counted time.Duration, err error) {
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	err = query(qctx)
	cutShort := err != nil && qctx.Err() != nil && ctx.Err() == nil // its own deadline ran out
	return queryTime(time.Since(start), err, cutShort), err
}

// queryTime is how much of the store's work a scan's query that took took and ended with
// err counts: all of it when it answered, or when its own deadline cut it short (a
// collection too large to read in time is read for that long, and scanning it again at
// once would read it for ever); nothing when it failed before (the store unreachable: no
// work done, and the retries must not be spaced out by the driver's wait for a server).
func queryTime(took time.Duration, err error, cutShort bool) time.Duration {
	if err != nil && !cutShort {
		return 0
	}
	return took
}

// NewRelay returns a relay for coll whose writers serialize on locks and writes (nil:
// no gate; see mongodb.Gate). It sends the documents named by Notify at once, and scans
// the collection for events left by a crash, an outage or a full notification queue:
// at start, every interval (default 1s) while sending fails, and every 30s otherwise.
func NewRelay(coll *mongo.Collection, pub Publisher, locks *mongodb.KeyedMutex, writes *mongodb.Gate, log *slog.Logger, interval time.Duration) *Relay {
	if interval <= 0 {
		interval = time.Second
	}
	return &Relay{
		coll: coll, pub: pub, locks: locks, writes: writes, log: log.With("component", "outbox", "collection", coll.Name()),
		interval: interval, batch: 256, notes: make(chan notification, 4096), inflight: make(chan struct{}, 128),
		stop: make(chan context.Context), stopped: make(chan struct{}),
		behind:    true, // until the first scan has sent what earlier runs left
		confirmed: map[string]*pending{}, timers: map[*time.Timer]bool{},
	}
}

// SetRemovalDelay makes the relay wait d after publishing a document's events before it
// removes them, so that a writer of the document can take them over (TakeConfirmed).
// Call it before Run.
func (r *Relay) SetRemovalDelay(d time.Duration) { r.delay = d }

// TakeConfirmed returns the ids of the events of document id that the broker confirmed
// and the relay has not removed yet, and leaves their removal to the caller: it holds
// the document's lock and removes them in its next update (see Set). It keeps holding
// the lock until that update has landed: the relay reads an outbox under the lock, and
// would otherwise see the events neither published nor removed, and send them again.
// If that update fails, it calls Notify(id), and the relay sends what is left again.
func (r *Relay) TakeConfirmed(id any) map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := mongodb.DocumentKey(r.coll, id)
	p := r.confirmed[key]
	delete(r.confirmed, key)
	if p == nil {
		return nil
	}
	return p.ids
}

// confirm records events of document id as published, for removal after the delay.
func (r *Relay) confirm(id any, ids map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := mongodb.DocumentKey(r.coll, id)
	p := r.confirmed[key]
	if p == nil {
		p = &pending{id: id, ids: map[string]bool{}}
		r.confirmed[key] = p
	}
	for e := range ids {
		p.ids[e] = true
	}
}

// isConfirmed reports whether event e of document id waits for its removal.
func (r *Relay) isConfirmed(id any, e string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.confirmed[mongodb.DocumentKey(r.coll, id)]
	return p != nil && p.ids[e]
}

// removeLater removes the published events of document id that no writer took over
// once the delay has passed. Run, as it stops, stops the removals not started yet
// (stopRemovals); after Stop it removes their events at once and waits for those
// started.
func (r *Relay) removeLater(ctx context.Context, id any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removals.Add(1)
	var t *time.Timer
	// The function takes r.mu first, so it sees t assigned.
	t = time.AfterFunc(r.delay, func() {
		defer r.removals.Done()
		r.mu.Lock()
		delete(r.timers, t)
		r.mu.Unlock()
		r.removing.Lock()
		defer r.removing.Unlock()
		if err := r.removeConfirmed(context.WithoutCancel(ctx), id); err != nil {
			r.log.Warn("relay", "error", err)
			r.fellBehind()
		}
	})
	r.timers[t] = true
}

// stopRemovals stops the removals due after the delay that have not started: their
// events are removed at once by removeAllConfirmed.
func (r *Relay) stopRemovals() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for t := range r.timers {
		if t.Stop() {
			r.removals.Done()
		}
		delete(r.timers, t)
	}
}

// removeConfirmed removes the published events of document id that no writer took over.
func (r *Relay) removeConfirmed(ctx context.Context, id any) error {
	return r.locks.Serialize(r.coll, id, func() error {
		ids := r.TakeConfirmed(id)
		if len(ids) == 0 {
			return nil
		}
		return r.removeLocked(ctx, id, ids)
	})
}

// removeAllConfirmed removes every published event still waiting, as the relay stops.
func (r *Relay) removeAllConfirmed(ctx context.Context) {
	r.mu.Lock()
	ids := make([]any, 0, len(r.confirmed))
	for _, p := range r.confirmed {
		ids = append(ids, p.id)
	}
	r.mu.Unlock()
	for _, id := range ids {
		if err := r.removeConfirmed(ctx, id); err != nil {
			r.log.Warn("relay: published events left in their document (sent again at the next start)", "error", err)
		}
	}
}

// Notify tells the relay that the document with _id id got events, so they go out now
// rather than at the next scan. events are the events the caller's write added, in
// order; with them the relay need not read the document back before publishing.
func (r *Relay) Notify(id any, events ...Event) {
	r.mu.Lock()
	scans := r.scans
	r.mu.Unlock()
	select {
	case r.notes <- notification{id: id, events: events, scans: scans}:
	default: // queue full: the next scan finds the document
		r.fellBehind()
	}
}

// fellBehind records that an event may wait with no notification naming it.
func (r *Relay) fellBehind() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.behind = true
	r.failures++
}

// state returns whether the relay is behind and the failures so far.
func (r *Relay) state() (behind bool, failures uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.behind, r.failures
}

// caughtUp records a scan that sent everything it found, unless something failed
// since it started (failures then differs).
func (r *Relay) caughtUp(failures uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failures == failures {
		r.behind = false
	}
}

// Run relays until ctx ends or Stop is called: a scan at once (events left by earlier
// runs), the documents named by Notify as they come, and a scan every interval while
// behind. When ctx ends, it returns at once; what it published and has not removed yet
// stays in the documents and is sent again at the next start (consumers deduplicate).
func (r *Relay) Run(ctx context.Context) {
	defer close(r.stopped)
	// work is the context of everything the relay does; Stop bounds it by its own.
	work, cancelWork := context.WithCancel(ctx)
	defer cancelWork()
	t := time.NewTicker(r.interval)
	defer t.Stop()
	var wg sync.WaitGroup
	lastScan := time.Now()
	var times ScanTimes // the queries of the last scan, and of the one before
	scan := func() {
		lastScan = time.Now()
		times.Begin()
		r.mu.Lock()
		r.scans++
		r.mu.Unlock()
		_, failures := r.state()
		// Page through the documents by _id rather than query from the start again:
		// those sent whose removal waits still match, and would fill every batch
		// (each query of which reads the whole collection on FerretDB) until the
		// removals land.
		var after any
		for {
			n, last, query, err := r.drain(work, after)
			times.Add(query)
			if err != nil {
				if work.Err() == nil {
					r.log.Warn("relay", "error", err)
				}
				r.fellBehind()
				return
			}
			if n < r.batch {
				r.caughtUp(failures)
				return
			}
			after = last
		}
	}
	relay := func(n notification) {
		r.inflight <- struct{}{}
		wg.Go(func() {
			defer func() { <-r.inflight }()
			if err := r.relay(work, n); err != nil {
				if work.Err() == nil {
					r.log.Warn("relay", "error", err)
				}
				r.fellBehind() // the next scan retries
			}
		})
	}
	scan()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			r.stopRemovals()
			return
		case stopCtx := <-r.stop:
			context.AfterFunc(stopCtx, cancelWork)
			r.finish(work, &wg, relay, scan)
			return
		case n := <-r.notes:
			relay(n)
		case <-t.C:
			if behind, _ := r.state(); time.Since(lastScan) >= scanWait(behind, r.interval, &times) {
				scan()
			}
		}
	}
}

// finish sends what waits as the relay stops, within ctx: the documents notified so
// far (the writes of the last requests and deliveries), and all of them in a last scan
// when something is known to be left behind. Then it removes what it published, so
// that a restart does not send it again, and waits for the removals under way: the
// process may exit next.
func (r *Relay) finish(ctx context.Context, wg *sync.WaitGroup, relay func(notification), scan func()) {
	for queued := true; queued; {
		select {
		case n := <-r.notes:
			relay(n)
		default:
			queued = false
		}
	}
	wg.Wait()
	if behind, _ := r.state(); behind && ctx.Err() == nil {
		scan()
	}
	r.stopRemovals()
	r.removeAllConfirmed(ctx)
	removed := make(chan struct{})
	go func() { r.removals.Wait(); close(removed) }()
	select {
	case <-removed:
	case <-ctx.Done():
	}
}

// Stop makes Run send what waits (see finish) and return, within ctx. It returns when
// Run has, or ctx's error when ctx ends first; Run then returns soon after, its work
// cut short.
func (r *Relay) Stop(ctx context.Context) error {
	select {
	case r.stop <- ctx:
	case <-r.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-r.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pendingDocs finds up to one batch of documents with events, in the order of their
// _id and after the _id after (nil: from the first). Paging by _id takes a collection's
// _ids to be of one BSON type, as they are: $gt compares only values of after's type.
func (r *Relay) pendingDocs(ctx context.Context, after any) ([]pendingDoc, error) {
	filter := bson.D{{Key: PendingField, Value: true}}
	if after != nil {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}})
	}
	cur, err := r.coll.Find(ctx, filter, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}).
		SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(r.batch)))
	if err != nil {
		return nil, err
	}
	var docs []pendingDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	return docs, nil
}

type pendingDoc struct {
	ID     any     `bson:"_id"`
	Outbox []Event `bson:"outbox"`
}

// Drain publishes the events of up to one batch of documents and returns how many
// documents it looked at. Documents go in parallel; a document's events go in order,
// so an aggregate's events are published in the order they happened.
func (r *Relay) Drain(ctx context.Context) (int, error) {
	n, _, _, err := r.drain(ctx, nil)
	return n, err
}

// drain is Drain for the batch of documents after the _id after (nil: from the first);
// it also returns the _id of the last document of the batch, and how long the query
// for the batch took (TimedQuery; the publishes, which wait for the broker, not counted).
func (r *Relay) drain(ctx context.Context, after any) (n int, last any, query time.Duration, err error) {
	var docs []pendingDoc
	query, err = TimedQuery(ctx, scanTimeout, func(ctx context.Context) (err error) {
		docs, err = r.pendingDocs(ctx, after)
		return err
	})
	if err != nil || len(docs) == 0 {
		return 0, nil, query, err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(docs))
	for i, d := range docs {
		r.inflight <- struct{}{}
		wg.Go(func() {
			defer func() { <-r.inflight }()
			errs[i] = r.relay(ctx, notification{id: d.ID})
		})
	}
	wg.Wait()
	return len(docs), docs[len(docs)-1].ID, query, errors.Join(errs...)
}

// relay publishes the events of the document n names, in order, then removes those
// the broker confirmed. It sends the events n carries as they are, unless the relay is
// behind: then an older event of the document may still wait, and it reads the
// document's outbox and sends all of it. An event added meanwhile stays for its own
// notification or the next scan.
func (r *Relay) relay(ctx context.Context, n notification) error {
	// One pass per document at a time, so that its events cannot overtake each other.
	defer r.passes.Lock(mongodb.DocumentKey(r.coll, n.id))()
	events := n.events
	r.mu.Lock()
	scanned := r.scans != n.scans
	r.mu.Unlock()
	if behind, _ := r.state(); behind || scanned || len(events) == 0 {
		var err error
		if events, err = r.unsent(ctx, n.id); err != nil || len(events) == 0 {
			return err
		}
	}
	sent := map[string]bool{}
	var pubErr error
	for _, e := range events {
		pubErr = r.pub.Publish(ctx, messaging.Message{
			ID: e.ID, Type: e.Type, Body: []byte(e.Body),
			Traceparent: e.Traceparent, Tracestate: e.Tracestate, RequestID: e.RequestID, Time: e.Time, Mandatory: e.Mandatory,
		})
		if pubErr != nil {
			break // the rest waits, to keep the order
		}
		sent[e.ID] = true
	}
	if len(sent) == 0 {
		return pubErr
	}
	if r.delay > 0 {
		r.confirm(n.id, sent)
		r.removeLater(ctx, n.id)
		return pubErr
	}
	err := r.locks.Serialize(r.coll, n.id, func() error { return r.removeLocked(ctx, n.id, sent) })
	return errors.Join(pubErr, err)
}

// unsent reads the outbox of document id and returns its events but those published
// whose removal waits. It reads under the document's lock: whoever removes published
// events (removeConfirmed, or a writer that took them over) stops counting them as
// published before its write lands, and an outbox read in between would hold them as
// unsent, to be published again.
func (r *Relay) unsent(ctx context.Context, id any) ([]Event, error) {
	unlock, err := r.locks.LockContext(ctx, mongodb.DocumentKey(r.coll, id))
	if err != nil {
		return nil, err
	}
	defer unlock()
	var d pendingDoc
	err = r.coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: Field, Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(d.Outbox, func(e Event) bool { return r.isConfirmed(id, e.ID) }), nil
}

// removeLocked removes the events sent from document id, whose lock the caller holds.
func (r *Relay) removeLocked(ctx context.Context, id any, sent map[string]bool) error {
	byID := bson.D{{Key: "_id", Value: id}}
	var cur pendingDoc
	err := r.coll.FindOne(ctx, byID, options.FindOne().SetProjection(bson.D{{Key: Field, Value: 1}})).Decode(&cur)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(cur.Outbox, func(e Event) bool { return sent[e.ID] }) {
		return nil // removed by another pass (a scan's) already
	}
	update := Set(cur.Outbox, sent)
	return r.writes.Do(ctx, func() error {
		_, err := r.coll.UpdateOne(ctx, byID, bson.D{{Key: "$set", Value: update}})
		return err
	})
}

// Package ratelimit limits requests per client with the generic cell rate algorithm (GCRA).
//
// Semantics, exactly: each client has a bucket of Limit requests that refills continuously at
// Limit requests per Window (one request every Window/Limit). A client that has been quiet for a
// Window has the full Limit available, so Limit requests in a burst are allowed and the next one
// is refused until Window/Limit has passed. This is the token bucket of golang.org/x/time/rate
// (burst Limit, rate Limit/Window); unlike a fixed window, it never lets a client through with
// 2×Limit requests across a window boundary.
//
// The state of a client is one integer, its theoretical arrival time (TAT): the instant at which
// its bucket will be full again. A TAT in the past means exactly the same as no entry, so idle
// clients are dropped without changing any answer. Entries live in a sharded, pointer-free map
// (the garbage collector does not scan it) with a hard cap: memory stays bounded when millions of
// distinct clients call, and when a shard is full the entry closest to expiring is evicted.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// numShards spreads clients over independently locked maps so that concurrent requests from
// different clients rarely contend on one mutex.
const numShards = 64

// evictionSample is how many entries of a full shard are examined to choose one to evict: Go's
// map iteration starts at a random position, so this is a cheap random sample.
const evictionSample = 8

// Key identifies a client. IPv4 addresses are kept whole; IPv6 addresses are reduced to their
// /64 prefix, the smallest block a network hands one subscriber, so that a client cannot escape
// its limit by cycling through the addresses of its own network (one given a /56 or a /48 has
// as many allowances as it has /64s).
type Key [16]byte

// KeyFor returns the key of a client address.
func KeyFor(addr netip.Addr) Key {
	addr = addr.Unmap()
	k := Key(addr.As16())
	if addr.Is6() {
		clear(k[8:])
	}
	return k
}

// Config says how many requests a client may make per window and how many clients are tracked.
type Config struct {
	// Limit is the number of requests a client may make per Window (and in one burst).
	Limit int
	// Window is the period over which Limit requests are allowed.
	Window time.Duration
	// MaxClients caps the number of tracked clients, exactly; 0 means DefaultMaxClients.
	// It is at least MinMaxClients, one per shard.
	MaxClients int
	// Now returns the current time; nil means time.Now. Tests set it to drive the clock.
	Now func() time.Time
}

// DefaultMaxClients bounds the tracked clients at about 60 MiB of map memory in the worst case.
const DefaultMaxClients = 1 << 20

// MinMaxClients is the smallest cap: the clients are spread over this many shards, each of
// which tracks one at least.
const MinMaxClients = numShards

// Decision is the outcome of one request.
type Decision struct {
	// Allowed is true when the request may proceed.
	Allowed bool
	// Remaining is the number of further requests the client may make right now.
	Remaining int
	// Reset is the time until the client has its whole quota again.
	Reset time.Duration
	// RetryAfter is, for a refused request, the time until one request is allowed again.
	RetryAfter time.Duration
}

// Limiter is a per-client GCRA rate limiter, safe for concurrent use.
type Limiter struct {
	limit    int
	window   int64 // nanoseconds
	interval int64 // nanoseconds between two requests at the sustained rate: window/limit
	// burst is limit intervals, the window rounded down to them: a client's requests are
	// allowed while its theoretical arrival time is at most burst ahead of now, so that
	// exactly limit fit at once.
	burst  int64
	epoch  time.Time
	now    func() time.Time
	seed   maphash.Seed
	shards [numShards]shard
}

type shard struct {
	mu       sync.Mutex
	capacity int           // clients tracked at most
	tats     map[Key]int64 // theoretical arrival time, nanoseconds since Limiter.epoch
	// peak is the largest size since the map was last rebuilt: Go maps never give memory back,
	// so Sweep rebuilds a map that has shrunk well below it.
	peak int
	_    [40]byte // keep shards on separate cache lines
}

// MaxWindow is the longest window (a year): the limiter counts in nanoseconds from now, and a
// longer one would overflow its arithmetic.
const MaxWindow = 365 * 24 * time.Hour

// New returns a limiter for cfg.
func New(cfg Config) (*Limiter, error) {
	if cfg.Limit < 1 {
		return nil, errors.New("ratelimit: limit must be at least 1")
	}
	if cfg.Window <= 0 {
		return nil, errors.New("ratelimit: window must be positive")
	}
	if cfg.Window > MaxWindow {
		return nil, fmt.Errorf("ratelimit: window must be at most %s", MaxWindow)
	}
	// window/limit rounded down to whole nanoseconds: the sustained rate is faster than asked
	// by less than a nanosecond a request; the burst is limit exactly, whatever the remainder.
	interval := int64(cfg.Window) / int64(cfg.Limit)
	if interval == 0 {
		return nil, errors.New("ratelimit: window shorter than a nanosecond a request")
	}
	maxClients := cfg.MaxClients
	if maxClients == 0 {
		maxClients = DefaultMaxClients
	}
	if maxClients < MinMaxClients {
		return nil, fmt.Errorf("ratelimit: max clients must be at least %d", MinMaxClients)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	l := &Limiter{
		limit:    cfg.Limit,
		window:   int64(cfg.Window),
		interval: interval,
		burst:    interval * int64(cfg.Limit),
		now:      now,
		seed:     maphash.MakeSeed(),
	}
	l.epoch = now()
	for i := range l.shards {
		l.shards[i].tats = make(map[Key]int64)
		// The cap spread over the shards, the remainder one each to the first: they sum
		// to it exactly.
		l.shards[i].capacity = maxClients / numShards
		if i < maxClients%numShards {
			l.shards[i].capacity++
		}
	}
	return l, nil
}

// Limit returns the number of requests allowed per window.
func (l *Limiter) Limit() int { return l.limit }

// Window returns the window.
func (l *Limiter) Window() time.Duration { return time.Duration(l.window) }

// elapsed is the current time in nanoseconds since the epoch; time.Time.Sub uses the monotonic
// clock, so a wall-clock step does not reset or freeze anyone's limit.
func (l *Limiter) elapsed() int64 { return int64(l.now().Sub(l.epoch)) }

func (l *Limiter) shardOf(k Key) *shard {
	h := maphash.Bytes(l.seed, k[:])
	return &l.shards[h%numShards]
}

// Allow records one request of client k and says whether it may proceed.
func (l *Limiter) Allow(k Key) Decision {
	now := l.elapsed()
	s := l.shardOf(k)

	s.mu.Lock()
	tat, ok := s.tats[k]
	if !ok || tat < now {
		tat = now // an empty or expired entry is a full bucket
	}
	newTat := tat + l.interval
	allowAt := newTat - l.burst // the request fits once now reaches allowAt
	if now < allowAt {
		s.mu.Unlock()
		return Decision{
			Allowed:    false,
			Remaining:  0,
			Reset:      time.Duration(tat - now),
			RetryAfter: time.Duration(allowAt - now),
		}
	}
	if !ok && len(s.tats) >= s.capacity {
		s.evictOne(now)
	}
	s.tats[k] = newTat
	s.peak = max(s.peak, len(s.tats))
	s.mu.Unlock()

	return Decision{
		Allowed:   true,
		Remaining: min(l.limit, int((now-allowAt)/l.interval)),
		Reset:     time.Duration(newTat - now),
	}
}

// evictOne makes room in a full shard: it drops an expired entry if the sample holds one, else
// the sampled entry closest to expiring, whose client loses the least of its history.
func (s *shard) evictOne(now int64) {
	var victim Key
	oldest := int64(0)
	n := 0
	for k, tat := range s.tats {
		if tat <= now {
			victim = k
			break
		}
		if n == 0 || tat < oldest {
			victim, oldest = k, tat
		}
		n++
		if n == evictionSample {
			break
		}
	}
	delete(s.tats, victim)
}

// Len returns the number of clients tracked.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.tats)
		s.mu.Unlock()
	}
	return n
}

// Sweep drops every client whose bucket is full again; no answer changes, since such an entry
// means the same as none. A map that shrank to under a quarter of its peak is rebuilt so that
// its memory returns to the runtime.
func (l *Limiter) Sweep() {
	now := l.elapsed()
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for k, tat := range s.tats {
			if tat <= now {
				delete(s.tats, k)
			}
		}
		if s.peak >= 1024 && len(s.tats) < s.peak/4 {
			rebuilt := make(map[Key]int64, len(s.tats))
			for k, tat := range s.tats {
				rebuilt[k] = tat
			}
			s.tats = rebuilt
			s.peak = len(rebuilt)
		}
		s.mu.Unlock()
	}
}

// SweepInterval is how often Run sweeps: often enough that idle entries do not pile up for
// long, rarely enough that the sweep costs nothing noticeable.
func (l *Limiter) SweepInterval() time.Duration {
	return min(max(time.Duration(l.window), time.Second), time.Minute)
}

// Run sweeps every SweepInterval until ctx is done.
func (l *Limiter) Run(ctx context.Context) {
	t := time.NewTicker(l.SweepInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.Sweep()
		}
	}
}

package ratelimit

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"
)

// clock is a manual clock for driving the limiter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newLimiter(t *testing.T, cfg Config) (*Limiter, *clock) {
	t.Helper()
	c := newClock()
	cfg.Now = c.Now
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

// keyFromUint64 makes a distinct IPv4-mapped key from n.
func keyFromUint64(n uint64) Key {
	var k Key
	k[10], k[11] = 0xff, 0xff
	binary.BigEndian.PutUint32(k[12:], uint32(n))
	binary.BigEndian.PutUint32(k[4:8], uint32(n>>32))
	return k
}

var alice = KeyFor(netip.MustParseAddr("192.0.2.1"))

func TestLimitIsExact(t *testing.T) {
	tests := []struct {
		limit  int
		window time.Duration
	}{
		{limit: 1, window: time.Second},
		{limit: 3, window: time.Minute},
		{limit: 100, window: 15 * time.Minute},
		{limit: 7, window: 10 * time.Second},          // window/limit is not a whole number of nanoseconds
		{limit: 1000, window: 2001 * time.Nanosecond}, // 2 ns per request, 1 ns left over
		// A remainder of at least one interval: limit+1 intervals fit in the window.
		{limit: 99999, window: time.Second},
		{limit: 999999, window: 15 * time.Minute},
		{limit: 1000, window: 1999 * time.Nanosecond},
		{limit: 10, window: 19 * time.Nanosecond},
	}
	for _, tt := range tests {
		l, _ := newLimiter(t, Config{Limit: tt.limit, Window: tt.window})
		for i := range tt.limit {
			d := l.Allow(alice)
			if !d.Allowed {
				t.Fatalf("limit %d/%s: request %d refused", tt.limit, tt.window, i+1)
			}
			if want := tt.limit - 1 - i; d.Remaining != want {
				t.Fatalf("limit %d/%s: request %d remaining %d, want %d", tt.limit, tt.window, i+1, d.Remaining, want)
			}
		}
		d := l.Allow(alice)
		if d.Allowed {
			t.Fatalf("limit %d/%s: request %d allowed", tt.limit, tt.window, tt.limit+1)
		}
		interval := tt.window / time.Duration(tt.limit)
		// window/limit rounds down to whole nanoseconds, so the wait may be short by < limit ns.
		if gap := interval - d.RetryAfter; gap < 0 || gap >= time.Duration(tt.limit) || d.Remaining != 0 {
			t.Errorf("limit %d/%s: refused with retry after %s remaining %d, want %s and 0",
				tt.limit, tt.window, d.RetryAfter, d.Remaining, interval)
		}
		if d.Reset < tt.window-time.Duration(tt.limit) || d.Reset > tt.window {
			t.Errorf("limit %d/%s: reset %s, want the window", tt.limit, tt.window, d.Reset)
		}
	}
}

func TestRefill(t *testing.T) {
	l, c := newLimiter(t, Config{Limit: 4, Window: 4 * time.Minute})
	for range 4 {
		l.Allow(alice)
	}
	steps := []struct {
		advance   time.Duration
		allowed   bool
		remaining int
	}{
		{advance: 59 * time.Second, allowed: false},
		{advance: time.Second, allowed: true, remaining: 0}, // one interval: one request back
		{advance: 0, allowed: false},
		{advance: 2 * time.Minute, allowed: true, remaining: 1},
		{advance: 0, allowed: true, remaining: 0},
		{advance: 0, allowed: false},
		{advance: 10 * time.Minute, allowed: true, remaining: 3}, // idle past the window: full quota
	}
	for i, s := range steps {
		c.Advance(s.advance)
		d := l.Allow(alice)
		if d.Allowed != s.allowed || (s.allowed && d.Remaining != s.remaining) {
			t.Fatalf("step %d: allowed %v remaining %d, want %v %d", i, d.Allowed, d.Remaining, s.allowed, s.remaining)
		}
	}
}

func TestRefusedRequestsDoNotCount(t *testing.T) {
	l, c := newLimiter(t, Config{Limit: 2, Window: 2 * time.Second})
	l.Allow(alice)
	l.Allow(alice)
	for range 50 {
		if l.Allow(alice).Allowed {
			t.Fatal("allowed over the limit")
		}
	}
	c.Advance(time.Second)
	if !l.Allow(alice).Allowed {
		t.Fatal("refused requests were counted against the client")
	}
}

func TestKeys(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{a: "192.0.2.1", b: "192.0.2.2", same: false},
		{a: "192.0.2.1", b: "::ffff:192.0.2.1", same: true},
		{a: "2001:db8:1:2::1", b: "2001:db8:1:2:ffff::7", same: true}, // one /64
		{a: "2001:db8:1:2::1", b: "2001:db8:1:3::1", same: false},
		{a: "::1", b: "127.0.0.1", same: false},
	}
	for _, tt := range tests {
		same := KeyFor(netip.MustParseAddr(tt.a)) == KeyFor(netip.MustParseAddr(tt.b))
		if same != tt.same {
			t.Errorf("KeyFor(%s) == KeyFor(%s): %v, want %v", tt.a, tt.b, same, tt.same)
		}
	}
}

func TestClientsAreIndependent(t *testing.T) {
	l, _ := newLimiter(t, Config{Limit: 1, Window: time.Minute})
	bob := KeyFor(netip.MustParseAddr("2001:db8::1"))
	if !l.Allow(alice).Allowed || l.Allow(alice).Allowed {
		t.Fatal("alice: want one allowed, then refused")
	}
	if !l.Allow(bob).Allowed {
		t.Fatal("bob refused because of alice")
	}
}

func TestSweepDropsOnlyIdleClients(t *testing.T) {
	l, c := newLimiter(t, Config{Limit: 2, Window: time.Minute})
	for i := range 100 {
		l.Allow(keyFromUint64(uint64(i)))
	}
	c.Advance(30 * time.Second) // their buckets are full again: (one request) * 30 s per request
	l.Allow(alice)
	l.Allow(alice)
	l.Sweep()
	if n := l.Len(); n != 1 {
		t.Fatalf("after sweep %d clients tracked, want 1 (alice)", n)
	}
	if l.Allow(alice).Allowed {
		t.Fatal("sweep forgot alice's requests")
	}
}

func TestSweepReleasesShrunkenMaps(t *testing.T) {
	l, c := newLimiter(t, Config{Limit: 1, Window: time.Second})
	for i := range 200_000 {
		l.Allow(keyFromUint64(uint64(i)))
	}
	c.Advance(2 * time.Second)
	l.Sweep()
	for i := range l.shards {
		if p := l.shards[i].peak; p != 0 {
			t.Fatalf("shard %d keeps peak %d after every client went idle: map not rebuilt", i, p)
		}
	}
}

// TestMemoryBound calls with a million distinct clients, all active within the window, and
// checks that the limiter tracks exactly its cap, one that is no multiple of its shards.
func TestMemoryBound(t *testing.T) {
	const maxClients = 64*100 + 37
	l, c := newLimiter(t, Config{Limit: 10, Window: time.Hour, MaxClients: maxClients})
	for i := range 1_000_000 {
		if !l.Allow(keyFromUint64(uint64(i))).Allowed {
			t.Fatalf("new client %d refused", i)
		}
		if i%100_000 == 0 {
			c.Advance(time.Millisecond)
		}
	}
	if n := l.Len(); n != maxClients {
		t.Fatalf("%d clients tracked, want the cap %d", n, maxClients)
	}
}

// TestMemoryPerClient checks the heap a full limiter holds: a client costs a map slot of a
// 16-byte key and an 8-byte TAT, not an allocation of its own.
func TestMemoryPerClient(t *testing.T) {
	const maxClients = 1 << 16
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	l, _ := newLimiter(t, Config{Limit: 10, Window: time.Hour, MaxClients: maxClients})
	for i := range 4 * maxClients {
		l.Allow(keyFromUint64(uint64(i)))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perClient := float64(after.HeapAlloc-before.HeapAlloc) / maxClients
	if perClient > 100 {
		t.Fatalf("%.0f bytes of heap per tracked client, want under 100", perClient)
	}
	runtime.KeepAlive(l)
}

// TestEviction: a full shard makes room for a new client by dropping one whose allowance is
// whole again (forgetting it changes nothing), else the one closest to that, never the
// client furthest over its allowance (forgetting it would reset its limit).
func TestEviction(t *testing.T) {
	// Room for three clients in each shard.
	l, c := newLimiter(t, Config{Limit: 10, Window: time.Minute, MaxClients: 3 * numShards})
	s := l.shardOf(alice)
	sameShard := func(n int) []Key {
		var keys []Key
		for i := uint64(0); len(keys) < n; i++ {
			if k := keyFromUint64(i); l.shardOf(k) == s && k != alice {
				keys = append(keys, k)
			}
		}
		return keys
	}
	keys := sameShard(4)
	heavy, light, idle, newcomer := keys[0], keys[1], keys[2], keys[3]

	for range 10 {
		l.Allow(heavy) // its whole allowance: a minute until it is whole again
	}
	l.Allow(idle) // whole again in 6 s
	c.Advance(10 * time.Second)
	l.Allow(light) // whole again in 6 s from now
	l.Allow(newcomer)
	if _, ok := s.tats[idle]; ok {
		t.Errorf("the client whose allowance is whole again was kept")
	}
	if _, ok := s.tats[heavy]; !ok {
		t.Fatalf("the heaviest client was evicted: its limit is reset")
	}

	// None whole again: the one closest to it goes.
	l.Allow(alice)
	if _, ok := s.tats[heavy]; !ok {
		t.Fatalf("the heaviest client was evicted, not the one closest to a whole allowance")
	}
	if len(s.tats) != 3 {
		t.Fatalf("shard holds %d clients, want 3", len(s.tats))
	}
}

func TestAllowDoesNotAllocate(t *testing.T) {
	l, _ := newLimiter(t, Config{Limit: 1_000_000, Window: time.Hour})
	l.Allow(alice)
	if n := testing.AllocsPerRun(1000, func() { l.Allow(alice) }); n != 0 {
		t.Fatalf("Allow allocates %v times per call", n)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []Config{
		{Limit: 0, Window: time.Minute},
		{Limit: 10, Window: 0},
		{Limit: 1000, Window: 999 * time.Nanosecond},
		{Limit: 10, Window: time.Minute, MaxClients: -1},
		{Limit: 10, Window: time.Minute, MaxClients: MinMaxClients - 1},
	}
	for _, cfg := range tests {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

func BenchmarkAllowParallel(b *testing.B) {
	l, err := New(Config{Limit: 1_000_000, Window: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := uint64(0)
		for pb.Next() {
			l.Allow(keyFromUint64(i % 4096))
			i++
		}
	})
}

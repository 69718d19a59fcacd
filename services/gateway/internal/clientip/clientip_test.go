package clientip

import (
	"bytes"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted, err := ParsePrefixes("10.0.0.0/8, 2001:db8:ffff::/48, 192.0.2.9, fe80::/10")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		trusted bool // whether the resolver trusts the proxies above, or none
		remote  string
		xff     []string
		want    string
	}{
		{name: "no proxy trusted: the peer", remote: "203.0.113.5:4000", xff: []string{"198.51.100.1"}, want: "203.0.113.5"},
		{name: "untrusted peer: forged header ignored", trusted: true, remote: "203.0.113.5:4000", xff: []string{"10.1.1.1"}, want: "203.0.113.5"},
		{name: "trusted peer without header", trusted: true, remote: "10.0.0.2:4000", want: "10.0.0.2"},
		{name: "trusted peer: last hop", trusted: true, remote: "10.0.0.2:4000", xff: []string{"198.51.100.7"}, want: "198.51.100.7"},
		{name: "rightmost untrusted hop wins over forged left part", trusted: true, remote: "10.0.0.2:4000", xff: []string{"1.2.3.4, 198.51.100.7, 10.9.9.9"}, want: "198.51.100.7"},
		{name: "several header lines read as one list", trusted: true, remote: "10.0.0.2:4000", xff: []string{"1.2.3.4", "198.51.100.7, 10.9.9.9"}, want: "198.51.100.7"},
		{name: "bare trusted host", trusted: true, remote: "192.0.2.9:1", xff: []string{"198.51.100.8"}, want: "198.51.100.8"},
		{name: "all hops trusted: farthest", trusted: true, remote: "10.0.0.2:4000", xff: []string{"10.3.3.3, 10.9.9.9"}, want: "10.3.3.3"},
		{name: "garbage stops the walk", trusted: true, remote: "10.0.0.2:4000", xff: []string{"198.51.100.7, bogus, 10.9.9.9"}, want: "10.9.9.9"},
		{name: "IPv6 peer and hop", trusted: true, remote: "[2001:db8:ffff::1]:443", xff: []string{"2001:db8:1::5"}, want: "2001:db8:1::5"},
		{name: "hop with port", trusted: true, remote: "10.0.0.2:4000", xff: []string{"[2001:db8:1::5]:8080"}, want: "2001:db8:1::5"},
		{name: "IPv4-mapped peer matches IPv4 CIDR", trusted: true, remote: "[::ffff:10.0.0.2]:4000", xff: []string{"198.51.100.7"}, want: "198.51.100.7"},
		{name: "link-local peer with its zone", trusted: true, remote: "[fe80::1%eth0]:4000", xff: []string{"198.51.100.7"}, want: "198.51.100.7"},
		{name: "link-local hop with its zone", trusted: true, remote: "10.0.0.2:4000", xff: []string{"198.51.100.7, fe80::2%eth0"}, want: "198.51.100.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewResolver(nil)
			if tt.trusted {
				r = NewResolver(trusted)
			}
			var xff [][]byte
			for _, v := range tt.xff {
				xff = append(xff, []byte(v))
			}
			peer := netip.MustParseAddrPort(tt.remote).Addr()
			if got := r.ClientIP(peer, xff); got != netip.MustParseAddr(tt.want) {
				t.Fatalf("ClientIP = %v; want %s", got, tt.want)
			}
		})
	}
}

func TestClientIPWithoutAddress(t *testing.T) {
	r := NewResolver([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")})
	if got := r.ClientIP(netip.Addr{}, [][]byte{[]byte("198.51.100.1")}); got.IsValid() {
		t.Fatalf("ClientIP without a peer = %v, want no address", got)
	}
}

func TestParsePrefixes(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr bool
	}{
		{in: "", want: 0},
		{in: "10.0.0.0/8", want: 1},
		{in: " 10.0.0.0/8 , ::1 ,", want: 2},
		{in: "10.0.0.0/33", wantErr: true},
		{in: "ten", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParsePrefixes(tt.in)
		if (err != nil) != tt.wantErr || (!tt.wantErr && len(got) != tt.want) {
			t.Errorf("ParsePrefixes(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestMappedTrustedPrefix(t *testing.T) {
	r := NewResolver([]netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")})
	if !r.Trusted(netip.MustParseAddr("10.1.2.3")) {
		t.Fatal("::ffff:10.0.0.0/104 does not cover 10.1.2.3")
	}
}

// TestClientIPAllocations: behind a trusted proxy, each X-Forwarded-For entry costs one
// allocation at most (the entry's text), whether it has a port or not: the resolver runs for
// every request through a proxy.
func TestClientIPAllocations(t *testing.T) {
	trusted, err := ParsePrefixes("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	r := NewResolver(trusted)
	peer := netip.MustParseAddr("10.0.0.2")
	for _, xff := range []string{"198.51.100.7", "198.51.100.7:4000", "2001:db8::5", "[2001:db8::5]:443", "198.51.100.7, 10.9.9.9"} {
		lines := [][]byte{[]byte(xff)}
		entries := float64(len(bytes.Split(lines[0], []byte(","))))
		if n := testing.AllocsPerRun(100, func() { r.ClientIP(peer, lines) }); n > entries {
			t.Errorf("X-Forwarded-For %q: %.0f allocations, want at most %.0f", xff, n, entries)
		}
	}
}

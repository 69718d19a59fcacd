package clientip

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

// FuzzClientIP: ParsePrefixes never panics, and ClientIP returns the peer or an address its
// X-Forwarded-For names, never an invalid one for a valid peer, and the peer itself when it
// is no trusted proxy.
func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.0/8, ::1", "10.0.0.1", "203.0.113.7, 10.0.0.2\n198.51.100.1:80")
	f.Add("127.0.0.1", "::ffff:127.0.0.1", "[2001:db8::1]:443, ::ffff:10.1.2.3")
	f.Add("::ffff:10.0.0.0/104", "10.0.0.9", "fe80::1%eth0, garbage")
	f.Add("0.0.0.0/0,::/0", "192.0.2.1", ",,, ,")
	f.Fuzz(func(t *testing.T, prefixes, peerText, xff string) {
		trusted, err := ParsePrefixes(prefixes)
		if err != nil {
			return
		}
		peer, err := netip.ParseAddr(peerText)
		if err != nil {
			return
		}
		r := NewResolver(trusted)
		var lines [][]byte
		for l := range strings.SplitSeq(xff, "\n") {
			lines = append(lines, []byte(l))
		}
		got := r.ClientIP(peer, lines)
		if !got.IsValid() {
			t.Fatalf("ClientIP(%v, %q) is invalid", peer, xff)
		}
		if !r.Trusted(peer) {
			if got != peer {
				t.Fatalf("untrusted peer %v: client %v", peer, got)
			}
			return
		}
		if got == peer.Unmap() {
			return
		}
		if got.Zone() != "" || got.Is4In6() {
			t.Fatalf("client %v keeps a zone or a mapping", got)
		}
		// It is one of the hops, by text.
		found := false
		for _, l := range lines {
			for h := range bytes.SplitSeq(l, []byte(",")) {
				if a, ok := parseHost(string(bytes.TrimSpace(h))); ok && a == got {
					found = true
				}
			}
		}
		if !found {
			t.Fatalf("client %v is no hop of %q", got, xff)
		}
	})
}

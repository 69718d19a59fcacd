// Package clientip finds the address of the client behind a request.
//
// The client is the peer of the connection, unless that peer is a trusted proxy: then the
// X-Forwarded-For chain is read from the right (the hop the trusted proxy appended last), past
// every trusted proxy, and the first untrusted address is the client. Everything to the left of
// it was written by the client itself and may be forged, so it is never read.
package clientip

import (
	"bytes"
	"net/netip"
	"strings"
)

// Resolver finds client addresses; its zero value trusts no proxy.
type Resolver struct {
	trusted []netip.Prefix
}

// NewResolver returns a resolver that honours X-Forwarded-For from peers inside trusted.
func NewResolver(trusted []netip.Prefix) *Resolver {
	ps := make([]netip.Prefix, len(trusted))
	for i, p := range trusted {
		// Compare unmapped addresses throughout, so 10.0.0.0/8 also covers ::ffff:10.0.0.1.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		ps[i] = p.Masked()
	}
	return &Resolver{trusted: ps}
}

// ParsePrefixes parses a comma-separated list of CIDRs; a bare address means that one host.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Trusted reports whether a is a trusted proxy. A link-local address's zone (fe80::1%eth0,
// as a peer on such an address is seen) is left out: a prefix contains no zoned address.
func (r *Resolver) Trusted(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP returns the client address of a request that came over a connection from peer
// with the X-Forwarded-For header lines forwardedFor (in order). An invalid peer (a request
// that did not come from a network listener) is returned as it is.
func (r *Resolver) ClientIP(peer netip.Addr, forwardedFor [][]byte) netip.Addr {
	if !peer.IsValid() || len(r.trusted) == 0 || !r.Trusted(peer) {
		return peer
	}
	client := peer.Unmap()
	for i := len(forwardedFor) - 1; i >= 0; i-- {
		v := forwardedFor[i]
		for len(v) > 0 {
			var hop []byte
			if j := bytes.LastIndexByte(v, ','); j >= 0 {
				hop, v = v[j+1:], v[:j]
			} else {
				hop, v = v, nil
			}
			a, ok := parseHost(string(bytes.TrimSpace(hop)))
			if !ok {
				// A trusted proxy would not have written this: stop at the last hop it did write.
				return client
			}
			client = a
			if !r.Trusted(a) {
				return client
			}
		}
	}
	return client // every hop is trusted: the farthest one is the client
}

// parseHost parses an address with or without a port ("192.0.2.1", "192.0.2.1:80", "[::1]:80").
// Only a text that may have a port (one colon, or a bracket closed before one) is tried with
// one: the error of a failed try is an allocation, on every request behind a proxy.
func parseHost(s string) (netip.Addr, bool) {
	mayHavePort := strings.Count(s, ":") == 1
	if strings.HasPrefix(s, "[") {
		mayHavePort = strings.Contains(s, "]:")
	}
	if mayHavePort {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return ap.Addr().WithZone("").Unmap(), true
		}
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone("").Unmap(), true
}

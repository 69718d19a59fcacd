package gateway

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/gateway/internal/ratelimit"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// clientConns counts the connections each client holds to the gateway, and refuses one past
// max: a client holding many idle or half-sent connections costs the gateway memory for each
// (tens of KiB) for as long as its timeouts let it. A client is what the rate limit calls one
// (ratelimit.KeyFor: an IPv4 address, an IPv6 /64). A trusted proxy's connections are not
// counted: they carry many clients' requests, which the rate limit tells apart. Nor is a
// connection the kubelet's probes make, or anyone's, refused for what other clients hold.
type clientConns struct {
	max     int
	trusted func(netip.Addr) bool

	mu    sync.Mutex
	count map[ratelimit.Key]int
	// lingering counts each client's refused connections being closed gently (refuseConn),
	// at most lingeringRefusals.
	lingering map[ratelimit.Key]int
}

func newClientConns(max int, trusted func(netip.Addr) bool) *clientConns {
	return &clientConns{max: max, trusted: trusted, count: map[ratelimit.Key]int{}, lingering: map[ratelimit.Key]int{}}
}

// lingeringRefusals bounds the refused connections of one client closed gently at once: each
// is held up to lingerTime after its answer, with a goroutine reading it, so a client dialling
// past its cap would otherwise hold as many more connections as it opens in that time.
const lingeringRefusals = 16

// takeLinger counts a refused connection of the client key as closing gently and returns
// the func that uncounts it once closed, or nil when the client has lingeringRefusals
// closing so already.
func (cc *clientConns) takeLinger(key ratelimit.Key) (release func()) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.lingering[key] >= lingeringRefusals {
		return nil
	}
	cc.lingering[key]++
	return func() {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		if cc.lingering[key]--; cc.lingering[key] == 0 {
			delete(cc.lingering, key)
		}
	}
}

// take counts c against its client: ok is false when the client holds max connections
// already; counted tells that release must be called with key once c closes.
func (cc *clientConns) take(c net.Conn) (key ratelimit.Key, counted, ok bool) {
	a, isTCP := c.RemoteAddr().(*net.TCPAddr)
	if !isTCP {
		return key, false, true
	}
	peer := a.AddrPort().Addr().Unmap()
	if cc.trusted(peer) {
		return key, false, true
	}
	key = ratelimit.KeyFor(peer)
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.count[key] >= cc.max {
		return key, false, false
	}
	cc.count[key]++
	return key, true, true
}

// release uncounts a connection take counted.
func (cc *clientConns) release(key ratelimit.Key) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.count[key] <= 1 {
		delete(cc.count, key) // the map holds only clients with connections
		return
	}
	cc.count[key]--
}

// tooManyConnectionsBody is the body of the answer on a connection refused for its client's
// others.
var tooManyConnectionsBody = mustJSON(web.ErrorBody{Error: "Too many connections from this client"})

// tooManyConnections is the answer on a connection refused for its client's others, with the
// request id requestID, written before any request of it is read: HTTP clients read it after
// sending theirs.
func tooManyConnections(requestID string) []byte {
	return append([]byte("HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nConnection: close\r\n"+
		web.RequestIDHeader+": "+requestID+"\r\nContent-Length: "+strconv.Itoa(len(tooManyConnectionsBody))+"\r\n\r\n"),
		tooManyConnectionsBody...)
}

// refuseConn answers c tooManyConnections, off the accept loop, within refuseTime to write,
// and closes it: gently (gentleConn), within lingerTime to read what the client sends
// meanwhile, when release is set (takeLinger), which is called once c is closed; else at
// once, which may reset the connection under the answer (a client with lingeringRefusals
// refusals closing already). record, when set, records the refusal (counts and logs it as a
// request) and returns its request id.
func refuseConn(c net.Conn, record func() string, release func()) {
	var id string
	if record != nil {
		id = record()
	} else {
		id = web.NewRequestID()
	}
	_ = c.SetWriteDeadline(time.Now().Add(refuseTime))
	_, _ = c.Write(tooManyConnections(id))
	gc := &gentleConn{Conn: c}
	gc.gentle.Store(release != nil)
	_ = gc.Close()
	if release != nil {
		release()
	}
}

// refuseTime bounds the write of the answer to a refused connection.
const refuseTime = time.Second

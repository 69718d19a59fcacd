package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// TestBodyNotReadIsNamedByItsHead: a request whose head was read but whose body the server
// could not read (it stalled or stopped within what the server reads before the handler
// runs, which empties the request) is answered with the client's request id, and counted
// and logged under the route, method and path the server routes it by: after a 100
// Continue too, whatever form its target came in, and on a connection that carried requests
// before it. A later request on a connection whose head cannot be read is not named by the
// one before it.
func TestBodyNotReadIsNamedByItsHead(t *testing.T) {
	var g *Gateway
	s := newSuiteOf(t, func(c *Config) { c.ReadHeaderTimeout = 300 * time.Millisecond; c.ReadTimeout = 600 * time.Millisecond },
		func(gw *Gateway) { g = gw })
	head := func(target, id, fields string) string {
		return "POST " + target + " HTTP/1.1\r\nHost: gateway\r\nX-Request-ID: " + id + "\r\n" + fields + "Content-Length: 100\r\n\r\n"
	}
	const part = `{"a":1}` // of the 100 bytes announced
	whole := "POST /products HTTP/1.1\r\nHost: gateway\r\nX-Request-ID: whole-1\r\nContent-Length: 7\r\n\r\n" + part
	tests := []struct {
		name string
		// before is a whole request sent first on the same connection, answered by a service.
		before string
		head   string
		// expect: the client sends the head alone, and the part of its body once invited.
		expect bool
		// halfClose: the client says it has sent all it will, and reads.
		halfClose bool
		status    int
		// id is the request id the answer must carry; "" for a new one.
		id, method, route, path string
	}{
		{name: "body stalled after 100 Continue", head: head("/users", "expect-1", "Expect: 100-continue\r\n"), expect: true,
			status: http.StatusRequestTimeout, id: "expect-1", method: "POST", route: "/users", path: "/users"},
		{name: "body cut short after 100 Continue", head: head("/users", "expect-2", "Expect: 100-continue\r\n"), expect: true, halfClose: true,
			status: http.StatusBadRequest, id: "expect-2", method: "POST", route: "/users", path: "/users"},
		{name: "dot-segments", head: head("/products/../users/1", "dots-1", ""),
			status: http.StatusRequestTimeout, id: "dots-1", method: "POST", route: "/users/", path: "/users/1"},
		{name: "absolute form", head: head("http://gateway/users?page=2", "absolute-1", ""),
			status: http.StatusRequestTimeout, id: "absolute-1", method: "POST", route: "/users", path: "/users"},
		{name: "%-escapes", head: head("/%75sers", "escaped-1", ""), halfClose: true,
			status: http.StatusBadRequest, id: "escaped-1", method: "POST", route: "/users", path: "/users"},
		{name: "after a request on the connection", before: whole, head: head("/orders", "second-1", ""),
			status: http.StatusRequestTimeout, id: "second-1", method: "POST", route: "/orders", path: "/orders"},
		{name: "head that cannot be read after a request with a body", before: whole,
			head:   "POST /users HTTP/1.1\r\nHost: gateway\r\nX-Request-ID: bad-1\r\nContent-Length: x\r\n\r\n",
			status: http.StatusBadRequest, route: web.UnmatchedRoute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			series := map[string]string{"route": tt.route, "status": strconv.Itoa(tt.status)}
			before := counterValue(t, s.reg, "http_requests_total", series)
			resp := converse(t, s.url, tt.before, tt.head, part, tt.expect, tt.halfClose)
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d %q, want %d JSON", resp.StatusCode, resp.Header.Get("Content-Type"), tt.status)
			}
			id := checkRequestID(t, resp, tt.id, tt.before+tt.head)
			if after := counterValue(t, s.reg, "http_requests_total", series); after != before+1 {
				t.Errorf("http_requests_total%v went from %v to %v, want one more", series, before, after)
			}
			line := accessLine(t, s.log, id)
			if line == nil {
				t.Fatalf("no access-log line with request_id %q", id)
			}
			if d, _ := line["duration"].(float64); tt.status == http.StatusRequestTimeout && time.Duration(d) < s.cfg.ReadTimeout {
				t.Errorf("access-log duration %v, want the time from the head to the body's timeout, at least %v", time.Duration(d), s.cfg.ReadTimeout)
			}
			for field, want := range map[string]any{"method": tt.method, "route": tt.route, "path": tt.path, "status": float64(tt.status)} {
				got := line[field]
				if got == nil {
					got = "" // a field left out
				}
				if got != want {
					t.Errorf("access-log %s = %v, want %v", field, got, want)
				}
			}
		})
	}
	checkNoHeadKept(t, g)
}

// checkNoHeadKept checks that g keeps the head of no request, every request sent to it having
// been answered.
func checkNoHeadKept(t *testing.T, g *Gateway) {
	t.Helper()
	g.heads.mu.Lock()
	defer g.heads.mu.Unlock()
	for _, n := range g.heads.m { // the head itself is the server's, and may be reused by now
		t.Errorf("the head of %s %s is still kept", n.method, n.target)
	}
}

// converse sends the request before (if any) on a connection of its own and reads its answer,
// which must be a service's 200; then sends head and part, part once a 100 Continue came when
// expect is set; closes the connection's sending side when halfClose is set; and returns the
// answer to that second request, its body read.
func converse(t *testing.T, gatewayURL, before, head, part string, expect, halfClose bool) answer {
	t.Helper()
	conn := dialGateway(t, gatewayURL)
	defer conn.Close()
	r := bufio.NewReader(conn)
	read := func() answer {
		t.Helper()
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("reading an answer: %v", err)
		}
		a, _ := readAnswer(t, resp)
		return a
	}
	write := func(s string) {
		t.Helper()
		if _, err := io.WriteString(conn, s); err != nil {
			t.Fatal(err)
		}
	}
	if before != "" {
		write(before)
		if a := read(); a.StatusCode != http.StatusOK {
			t.Fatalf("the request before: status %d, want 200", a.StatusCode)
		}
	}
	if expect {
		write(head)
		if a := read(); a.StatusCode != http.StatusContinue {
			t.Fatalf("status %d, want 100 Continue", a.StatusCode)
		}
		write(part)
	} else {
		write(head + part)
	}
	if halfClose {
		if err := conn.CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	return read()
}

// dialGateway connects to the gateway, with 10 seconds to talk.
func dialGateway(t *testing.T, gatewayURL string) *net.TCPConn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(gatewayURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn.(*net.TCPConn)
}

// accessLine returns the access-log line of request id in log, or nil.
func accessLine(t *testing.T, log *logLines, id string) map[string]any {
	t.Helper()
	for _, line := range log.requests(t) {
		if line["request_id"] == id {
			return line
		}
	}
	return nil
}

// TestHeadReadIsToldOfItsContextsHead: the server tells HeadRead of the head of the context
// that then answers the request's Expect: 100-continue and serves it, request after request
// of a kept-alive connection. The gateway keeps what it needs of a head under that head
// (heads) until one of them forgets it.
func TestHeadReadIsToldOfItsContextsHead(t *testing.T) {
	var (
		mu      sync.Mutex
		heads   = map[string]*fasthttp.RequestHeader{} // target → the head HeadRead was told of
		checked = map[string]int{}                     // hook → the requests it was checked on
		wrong   []string
	)
	check := func(hook string, ctx *fasthttp.RequestCtx) {
		mu.Lock()
		defer mu.Unlock()
		target := string(ctx.RequestURI())
		checked[hook]++
		if heads[target] != &ctx.Request.Header {
			wrong = append(wrong, target+": "+hook+" is not of the context whose head HeadRead was told of")
		}
	}
	h := Handler{
		HeadRead: func(h *fasthttp.RequestHeader) {
			mu.Lock()
			defer mu.Unlock()
			heads[string(h.RequestURI())] = h
		},
		Expect: func(ctx *fasthttp.RequestCtx) int {
			check("Expect", ctx)
			return fasthttp.StatusContinue
		},
		Serve: func(ctx *fasthttp.RequestCtx) { check("Serve", ctx) },
	}
	url := serve(t, h, config.Base{ReadTimeout: time.Second}, logging.Discard())
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, ExpectContinueTimeout: 5 * time.Second}}
	defer client.CloseIdleConnections()
	for i := range 3 {
		target := "/requests/" + strconv.Itoa(i)
		req, err := http.NewRequest(http.MethodPost, url+target, strings.NewReader(`{"a":1}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Expect", "100-continue")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	mu.Lock()
	defer mu.Unlock()
	if len(heads) != 3 || checked["Expect"] != 3 || checked["Serve"] != 3 {
		t.Errorf("HeadRead told of %d heads, Expect and Serve called %v, want 3 of each", len(heads), checked)
	}
	for _, w := range wrong {
		t.Error(w)
	}
}

// TestNotingAHeadDoesNotAllocate: noting the head of a request with a body, paid on every
// one though it serves only the rare body that does not come, reuses the notes of the heads
// forgotten, and the room they took in heads.
func TestNotingAHeadDoesNotAllocate(t *testing.T) {
	var g Gateway
	ctx := ctxWithHead(t, "POST /users HTTP/1.1\r\nHost: gateway\r\nX-Request-ID: alloc-1\r\nContent-Length: 7\r\n\r\n")
	note := func() {
		g.heads.note(&ctx.Request.Header)
		g.heads.release(g.forgetHead(ctx, false))
	}
	note()
	// The race detector makes sync.Pool drop some of what it is given.
	if !testproc.Race {
		if n := testing.AllocsPerRun(1000, note); n != 0 {
			t.Fatalf("noting a head allocates %v times per request", n)
		}
	}
	g.heads.note(&ctx.Request.Header)
	n := g.forgetHead(ctx, false)
	if n == nil || string(n.requestID) != "alloc-1" || string(n.method) != "POST" || string(n.target) != "/users" {
		t.Errorf("noted %+v, want the head of POST /users, request id alloc-1", n)
	}
	if n := len(g.heads.m); n != 0 {
		t.Errorf("%d heads still kept", n)
	}
}

// BenchmarkNotingAHead is what noting the head of a request with a body, and forgetting it
// when the request is served, costs every such request.
func BenchmarkNotingAHead(b *testing.B) {
	var g Gateway
	ctx := ctxWithHead(b, "POST /users HTTP/1.1\r\nHost: gateway\r\nX-Request-ID: bench-1\r\nContent-Length: 7\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		g.heads.note(&ctx.Request.Header)
		g.heads.release(g.forgetHead(ctx, false))
	}
}

// ctxWithHead is a context on a gentleConn whose request head is head, as the server reads it.
func ctxWithHead(tb testing.TB, head string) *fasthttp.RequestCtx {
	tb.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Init2(&gentleConn{}, nil, false)
	if err := ctx.Request.Header.Read(bufio.NewReader(strings.NewReader(head))); err != nil {
		tb.Fatal(err)
	}
	return &ctx
}

// TestRequestsWithoutABodyTakeNoLock: noting heads takes a lock, but only for requests with
// a body; a request without one, with header lines or none (HTTP/1.0 probes), is served while
// another holds it.
func TestRequestsWithoutABodyTakeNoLock(t *testing.T) {
	var g *Gateway
	s := newSuiteOf(t, nil, func(gw *Gateway) { g = gw })
	addr := strings.TrimPrefix(s.url, "http://")
	for _, raw := range []string{
		"GET /healthz HTTP/1.1\r\nHost: g\r\n\r\n",
		"GET /healthz HTTP/1.0\r\n\r\n",
		"GET /users/1 HTTP/1.0\r\n\r\n",
	} {
		t.Run(raw, func(t *testing.T) {
			g.heads.mu.Lock() // another request's head being noted
			defer g.heads.mu.Unlock()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(c, raw); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer while the lock is held: %v", err)
			}
			resp.Body.Close()
		})
	}
}

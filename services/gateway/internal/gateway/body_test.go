package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sync/semaphore"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// TestStalledBodiesHoldNoServiceConnection: clients that stop sending their bodies hold
// their own connections to the gateway, not the service's: with as many of them as the
// service has connections, an ordinary request is still served.
func TestStalledBodiesHoldNoServiceConnection(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.MaxConnsPerService = 4; c.ReadTimeout = 10 * time.Second })
	for range 4 {
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		_, _ = io.WriteString(conn, "POST /users HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n")
	}
	time.Sleep(500 * time.Millisecond) // the four are being read
	if resp, body := s.do(t, http.MethodGet, "/users/1", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("an ordinary request got %d %s while 4 clients stall their bodies", resp.StatusCode, body)
	}
}

// TestClientBodyErrorsAreTheClients: a body the client sends wrong or not at all is the
// client's error (400, 408, 413), not the service's (503, 504), whatever its size or framing.
func TestClientBodyErrorsAreTheClients(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.ReadTimeout = time.Second })
	tests := []struct {
		name   string
		parts  []string
		status int
	}{
		{"malformed chunk", []string{"POST /users HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"}, http.StatusBadRequest},
		{"stalled chunked body", []string{"POST /users HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"}, http.StatusRequestTimeout},
		{"stalled large body", []string{"POST /users HTTP/1.1\r\nHost: g\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 70000)}, http.StatusRequestTimeout},
		{"chunked body over the limit", []string{"POST /users HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strings.Repeat("10000\r\n"+strings.Repeat("x", 0x10000)+"\r\n", 17) + "0\r\n\r\n"}, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := rawRequest(t, s.url, 0, tt.parts...)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d %s, want %d", resp.StatusCode, body, tt.status)
			}
		})
	}
}

// TestConnectionCannotStripGatewayHeaders: the headers the gateway adds reach the service
// even when the client's Connection header names them (hop-by-hop headers go first).
func TestConnectionCannotStripGatewayHeaders(t *testing.T) {
	s := newSuite(t, nil)
	resp, body := rawRequest(t, s.url, 0, "GET /users/1 HTTP/1.1\r\nHost: shop\r\nX-Request-ID: abc\r\n"+
		"Connection: X-Request-ID, X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto\r\n\r\n")
	e := decode[echo](t, body)
	if e.RequestID == "" || e.RequestID != resp.Header.Get("X-Request-ID") || e.ForwardedFor == "" || e.ForwardedHost == "" || e.ForwardedProto == "" {
		t.Fatalf("client %q, service saw id %q, X-Forwarded-For %q, -Host %q, -Proto %q",
			resp.Header.Get("X-Request-ID"), e.RequestID, e.ForwardedFor, e.ForwardedHost, e.ForwardedProto)
	}
}

// TestServiceSpokenToInHTTP11: whatever version the client's request line names, the
// service is spoken to in HTTP/1.1 over a kept-alive connection, and the client's answer
// keeps its own version's rules.
func TestServiceSpokenToInHTTP11(t *testing.T) {
	s := newSuite(t, nil)
	user := s.upstreams["user"]
	s.do(t, http.MethodGet, "/users/1", nil) // a pooled connection
	before := user.conns.Load()
	for _, proto := range []string{"HTTP/1.0", "HTTP/1.1", "HTTP/2.0"} {
		resp, body := rawRequest(t, s.url, 0, "GET /users/1 "+proto+"\r\nHost: shop\r\n\r\n")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d %s, want 200", proto, resp.StatusCode, body)
		}
	}
	if n := user.conns.Load() - before; n != 0 {
		t.Errorf("%d new connections to the service: a request's version reached it", n)
	}
}

// TestDuplicateRequestIDs: of several X-Request-ID headers, the service gets one, the id
// the client gets back.
func TestDuplicateRequestIDs(t *testing.T) {
	s := newSuite(t, nil)
	resp, body := rawRequest(t, s.url, 0, "GET /users/1 HTTP/1.1\r\nHost: shop\r\nX-Request-ID: good-1\r\nX-Request-ID: evil\"injected\r\n\r\n")
	e := decode[echo](t, body)
	if e.RequestID != "good-1" || resp.Header.Get("X-Request-ID") != "good-1" || len(e.RequestIDs) != 1 {
		t.Fatalf("client got %q, service saw %q", resp.Header.Get("X-Request-ID"), e.RequestIDs)
	}
}

// TestConnectionCannotNameTheFraming: a Connection header naming Content-Length (or
// Transfer-Encoding, or Host) does not take the body's framing away: the service gets the
// whole body.
func TestConnectionCannotNameTheFraming(t *testing.T) {
	s := newSuite(t, nil)
	const body = `{"name":"Ada Lovelace","email":"ada@example.com"}`
	resp, answer := rawRequest(t, s.url, 0, "POST /users HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n"+
		"Content-Length: "+strconv.Itoa(len(body))+"\r\nConnection: Content-Length, Host\r\n\r\n"+body)
	if e := decode[echo](t, answer); resp.StatusCode != http.StatusOK || e.Body != body {
		t.Fatalf("%d: the service got body %q, want %q", resp.StatusCode, e.Body, body)
	}
}

// TestForwardKeepsTheServiceScheme: a service at an https URL is spoken to over TLS.
func TestForwardKeepsTheServiceScheme(t *testing.T) {
	cfg := &Config{UserServiceURL: "https://user.shop.svc:8443", ProductServiceURL: "http://product",
		OrderServiceURL: "http://order", PaymentServiceURL: "http://payment", UpstreamTimeout: time.Second}
	svcs, err := services(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var req fasthttp.Request
	req.SetRequestURI("http://gateway/users/1")
	forwardRequest(&req, &route{svc: &svcs[0], pattern: "/users/", under: true}, netip.MustParseAddr("192.0.2.1"), false, nil)
	if got := string(req.URI().Scheme()); got != "https" {
		t.Errorf("scheme %q, want https", got)
	}
}

// TestLargeBodyBudgetCountsWhatArrived: clients that announce large bodies and stop sending
// hold the budget for the bytes they sent, not for what they announced, so a large body sent
// whole beside them is still taken.
func TestLargeBodyBudgetCountsWhatArrived(t *testing.T) {
	s := newSuiteOf(t, func(c *Config) { c.ReadTimeout = 10 * time.Second }, func(g *Gateway) {
		g.bodyBudget = semaphore.NewWeighted(1 << 20)
	})
	for range 4 {
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		_, _ = io.WriteString(conn, "POST /users HTTP/1.1\r\nHost: g\r\nContent-Length: 1000000\r\n\r\n"+strings.Repeat("x", 100_000))
	}
	time.Sleep(500 * time.Millisecond) // the four are being read
	body := `{"pad":"` + strings.Repeat("y", 200_000) + `"}`
	resp, answer := rawRequest(t, s.url, 0, "POST /users HTTP/1.1\r\nHost: g\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a whole 200 kB body beside four stalled ones: %d %.200s", resp.StatusCode, answer)
	}
}

// TestRequestTrailersStayOnTheClientsSide: the fields of a chunked body's trailer section
// never reach the service, neither as a trailer nor as headers (Upgrade, a second
// X-Request-ID, anything else), and the body, read whole, goes with its length. An upfront
// header of the same name as a trailer is kept.
func TestRequestTrailersStayOnTheClientsSide(t *testing.T) {
	s := newSuite(t, nil)
	const head = "POST /users HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\nX-Note: upfront\r\n\r\n"
	const body = "3\r\nabc\r\n0\r\nUpgrade: websocket\r\nX-Request-Id: evil-id\r\nX-Note: trailing\r\nX-Foo: bar\r\n\r\n"
	for name, parts := range map[string][]string{"in one piece": {head + body}, "head first": {head, body}} {
		t.Run(name, func(t *testing.T) {
			resp, answer := rawRequest(t, s.url, 50*time.Millisecond, parts...)
			e := decode[echo](t, answer)
			if resp.StatusCode != http.StatusOK || e.Body != "abc" || e.ContentLength != 3 {
				t.Fatalf("%d: the service got body %q of length %d, want \"abc\" of 3", resp.StatusCode, e.Body, e.ContentLength)
			}
			if len(e.Trailer) != 0 || e.Header.Get("Trailer") != "" {
				t.Errorf("the service got a trailer section %v (Trailer: %q)", e.Trailer, e.Header.Get("Trailer"))
			}
			for _, k := range []string{"Upgrade", "X-Foo"} {
				if v := e.Header.Values(k); len(v) != 0 {
					t.Errorf("the service got the trailer %s as a header: %q", k, v)
				}
			}
			if v := e.Header.Values("X-Note"); len(v) != 1 || v[0] != "upfront" {
				t.Errorf("X-Note %q, want the upfront one alone", v)
			}
			if e.RequestID == "evil-id" || len(e.RequestIDs) != 1 {
				t.Errorf("the service got request ids %q", e.RequestIDs)
			}
		})
	}
}

// A GET or HEAD whose body is chunked and empty (Python's requests.get(url, data=iter([]))
// sends one) reaches the service framed by its length: sent on as chunked with no chunk at
// all, it left the service waiting for a body until the upstream timeout, holding one of its
// connections, and the client got a 504.
func TestEmptyChunkedBodyIsSentWithItsLength(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.UpstreamTimeout = 2 * time.Second })
	t.Run("HEAD empty", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		_, _ = io.WriteString(conn, "HEAD /users/1 HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: "HEAD"})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%d after %v", resp.StatusCode, time.Since(start).Round(time.Millisecond))
		}
	})
	for _, method := range []string{"GET", "DELETE", "POST"} {
		for name, body := range map[string]string{"empty": "0\r\n\r\n", "abc": "3\r\nabc\r\n0\r\n\r\n"} {
			t.Run(method+" "+name, func(t *testing.T) {
				start := time.Now()
				resp, answer := rawRequest(t, s.url, 0, method+" /users/1 HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n"+body)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%d after %v: %s", resp.StatusCode, time.Since(start).Round(time.Millisecond), answer)
				}
				e := decode[echo](t, answer)
				want := strings.TrimSuffix(strings.TrimPrefix(body, "3\r\n"), "\r\n0\r\n\r\n")
				if body == "0\r\n\r\n" {
					want = ""
				}
				if e.ContentLength != int64(len(want)) || e.Body != want || len(e.Header.Values("Transfer-Encoding")) != 0 {
					t.Errorf("the service got body %q of length %d, Transfer-Encoding %q; want %q by its length",
						e.Body, e.ContentLength, e.Header.Values("Transfer-Encoding"), want)
				}
			})
		}
	}
}

// A request with a field name that is no token (a space in it) is answered 400 in JSON by
// the gateway: the services' net/http server would refuse it in plain text, and close the
// pooled connection.
func TestHeaderNameThatIsNoTokenIsRefused(t *testing.T) {
	s := newSuite(t, nil)
	for _, name := range []string{"X Foo", "X\tFoo", "X(Foo)", "X\"Foo"} {
		resp, answer := rawRequest(t, s.url, 0, "GET /users/1 HTTP/1.1\r\nHost: shop\r\n"+name+": a\r\n\r\n")
		if resp.StatusCode == http.StatusOK {
			t.Errorf("%q: 200, sent on to the service", name)
			continue
		}
		if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%q: %d %s %s, want a JSON 400", name, resp.StatusCode, resp.Header.Get("Content-Type"), answer)
		}
	}
	if hits := s.upstreams["user"].hits.Load(); hits != 0 {
		t.Errorf("the user service got %d requests", hits)
	}
}

// A service's trailer section stays on its side, as a client's does (RFC 9110, section
// 6.5.1: its fields are not to be merged into the header section): the gateway answers
// with the body's length, the upfront fields alone, and no Trailer announcement.
func TestResponseTrailersStayOnTheServicesSide(t *testing.T) {
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Trailer", "X-Checksum, X-Note")
		w.Header().Set("X-Note", "upfront")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"ok":true}`)
		w.(http.Flusher).Flush() // chunked, so the trailers go as a trailer section
		w.Header().Set("X-Checksum", "abc")
		w.Header().Set("X-Note", "trailing")
	}))
	t.Cleanup(svc.Close)
	s := newSuite(t, func(c *Config) { c.UserServiceURL = svc.URL })
	resp, answer := rawRequest(t, s.url, 0, "GET /users/1 HTTP/1.1\r\nHost: shop\r\n\r\n")
	if resp.StatusCode != http.StatusOK || string(answer) != `{"ok":true}` {
		t.Fatalf("%d %s", resp.StatusCode, answer)
	}
	if v := resp.Header.Values("X-Checksum"); len(v) != 0 {
		t.Errorf("the client got the trailer X-Checksum as a header: %q", v)
	}
	if v := resp.Header.Values("X-Note"); len(v) != 1 || v[0] != "upfront" {
		t.Errorf("X-Note %q, want the upfront one alone", v)
	}
	if v := resp.Header.Get("Trailer"); v != "" {
		t.Errorf("the client got Trailer %q", v)
	}
}

// A client holds at most MaxConnsPerClient connections at once, idle kept-alive ones
// included (each costs the gateway tens of KiB): one past it is answered 429 in JSON and
// closed, a connection closed makes room for another, and a trusted proxy's connections,
// which carry many clients' requests, are not counted.
func TestClientConnectionsAreCapped(t *testing.T) {
	for _, trusted := range []bool{false, true} {
		t.Run(map[bool]string{false: "a client", true: "a trusted proxy"}[trusted], func(t *testing.T) {
			s := newSuite(t, func(c *Config) {
				c.MaxConnsPerClient = 2
				if trusted {
					c.TrustedProxies = "127.0.0.1"
				}
			})
			addr := strings.TrimPrefix(s.url, "http://")
			dial := func() net.Conn {
				t.Helper()
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { conn.Close() })
				return conn
			}
			// get sends one request on conn and returns the answer's status, body and request id.
			get := func(conn net.Conn) (int, string, string) {
				t.Helper()
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.WriteString(conn, "GET /users/1 HTTP/1.1\r\nHost: shop\r\n\r\n"); err != nil {
					return 0, err.Error(), ""
				}
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					return 0, err.Error(), ""
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(body), resp.Header.Get(web.RequestIDHeader)
			}
			first, second := dial(), dial()
			if a, _, _ := get(first); a != http.StatusOK {
				t.Fatalf("the first connection: %d", a)
			}
			if b, _, _ := get(second); b != http.StatusOK {
				t.Fatalf("the second connection: %d", b)
			}
			status, body, id := get(dial())
			if trusted {
				if status != http.StatusOK {
					t.Fatalf("a trusted proxy's third connection: %d %s", status, body)
				}
				return
			}
			if status != http.StatusTooManyRequests || !strings.Contains(body, `"error":"Too many connections from this client"`) {
				t.Fatalf("a third connection while two are kept alive: %d %s, want the JSON 429", status, body)
			}
			// Recorded as any refused request is: a request id, an access line, a count.
			if !web.ValidRequestID(id) {
				t.Fatalf("the refusal's X-Request-ID %q, want one", id)
			}
			if !slices.ContainsFunc(s.log.requests(t), func(l map[string]any) bool {
				return l["request_id"] == id && l["status"] == float64(http.StatusTooManyRequests) && l["route"] == web.UnmatchedRoute
			}) {
				t.Errorf("no access line for the refused connection %s in\n%s", id, s.log.String())
			}
			if n := counterValue(t, s.reg, "http_requests_total", map[string]string{"route": web.UnmatchedRoute, "status": "429"}); n != 1 {
				t.Errorf("refused connections counted %v, want 1", n)
			}
			first.Close()
			deadline := time.Now().Add(5 * time.Second)
			for {
				if status, _, _ := get(dial()); status == http.StatusOK {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no connection served after one of the two closed")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestLargeAnswersHeldWithinABudget: answers over bufferedAnswerBytes that clients do not read
// hold the answer budget until they are written out or the client goes; a GET whose large
// answer would pass it is answered 503, and one asked once the stalled clients are gone is
// served whole, as is an answer under bufferedAnswerBytes all along.
func TestLargeAnswersHeldWithinABudget(t *testing.T) {
	budget := semaphore.NewWeighted(10 << 20)
	s := newSuiteOf(t, nil, func(g *Gateway) { g.answerBudget = budget })
	// 4 MiB: more than loopback's socket buffers take (about 1.3 MB), so most of it waits in
	// the gateway for a client that does not read.
	const size = 4 << 20
	get := "GET /users HTTP/1.1\r\nHost: g\r\n" + answerBytesHeader + ": " + strconv.Itoa(size) + "\r\n\r\n"
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	var stalled []net.Conn
	for range 2 {
		conn, err := dialer.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		if _, err := io.WriteString(conn, get); err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, conn)
	}
	// Both answers are held once no more than the 2 MiB they leave is free.
	for deadline := time.Now().Add(10 * time.Second); budget.TryAcquire(2<<20 + 1); {
		budget.Release(2<<20 + 1)
		if time.Now().After(deadline) {
			t.Fatal("the two large answers are not held within the budget")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if resp, _ := rawRequest(t, s.url, 0, "GET /users/1 HTTP/1.1\r\nHost: g\r\n\r\n"); resp.StatusCode != http.StatusOK {
		t.Fatalf("a small answer beside two held large ones: %d", resp.StatusCode)
	}
	resp, answer := rawRequest(t, s.url, 0, get)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(answer), "too many large answers") {
		t.Fatalf("a third large answer past the budget: %d %.200s", resp.StatusCode, answer)
	}
	for _, c := range stalled {
		_ = c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, answer = rawRequest(t, s.url, 0, get)
		if resp.StatusCode == http.StatusOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if length := resp.Header.Get("Content-Length"); resp.StatusCode != http.StatusOK || len(answer) != size ||
		length != strconv.Itoa(size) || strings.Trim(string(answer), "z") != "" {
		t.Fatalf("a large answer once the stalled clients went: %d, %d bytes (Content-Length %s)", resp.StatusCode, len(answer), length)
	}
	lines := s.log.requests(t)
	if last := lines[len(lines)-1]; last["bytes"] != float64(size) {
		t.Errorf("access line bytes = %v, want %d", last["bytes"], size)
	}
}

// TestChunkExtensionsCountAgainstTheBodyLimit: what a chunked body takes on the wire, its
// chunk extensions included (fasthttp reads and skips them without bound), is bounded: a
// 1-byte body after megabytes of a chunk extension is refused 413 once chunkedWireBytes are
// read, never sent on, and a body the gateway drops (its own paths) stops being read, the
// connection closed after the answer. A body at the services' limit in chunks of 16 bytes,
// and chunk extensions of an ordinary size, are read and sent on.
func TestChunkExtensionsCountAgainstTheBodyLimit(t *testing.T) {
	s := newSuite(t, nil)
	const head = "POST %s HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n"
	extension := "1;" + strings.Repeat("e", 2*chunkedWireBytes) + "\r\nx\r\n0\r\n\r\n"
	for _, tt := range []struct {
		target string
		status int
	}{{"/users", http.StatusRequestEntityTooLarge}, {"/nothing", http.StatusNotFound}} {
		t.Run(tt.target, func(t *testing.T) {
			conn := dialGateway(t, s.url)
			wrote := make(chan struct{})
			go func() { // the gateway answers before it is all written, and reads no more
				defer close(wrote)
				_, _ = io.WriteString(conn, fmt.Sprintf(head, tt.target)+extension)
			}()
			defer func() { conn.Close(); <-wrote }()
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			got, body := readAnswer(t, resp)
			if got.StatusCode != tt.status || !got.Close {
				t.Fatalf("status %d, closing %v; want %d, closing; body %s", got.StatusCode, got.Close, tt.status, body)
			}
		})
	}
	if n := s.upstreams["user"].hits.Load(); n != 0 {
		t.Fatalf("user reached %d times", n)
	}

	var small strings.Builder
	for range web.MaxBodyBytes / 16 {
		small.WriteString("10\r\n" + strings.Repeat("s", 16) + "\r\n")
	}
	for _, tt := range []struct {
		name, body string
		length     int64
	}{
		{"a body at the limit in chunks of 16 bytes", small.String() + "0\r\n\r\n", web.MaxBodyBytes},
		{"a body at the limit in chunks of 1 byte", strings.Repeat("1\r\ns\r\n", web.MaxBodyBytes) + "0\r\n\r\n", web.MaxBodyBytes},
		{"ordinary chunk extensions", "3;name=value;other=\"quoted\"\r\nabc\r\n2;x\r\nde\r\n0\r\n\r\n", 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, answer := rawRequest(t, s.url, 0, fmt.Sprintf(head, "/users")+tt.body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200; body %.200s", resp.StatusCode, answer)
			}
			if e := decode[echo](t, answer); e.ContentLength != tt.length {
				t.Fatalf("the service got a body of length %d, want %d", e.ContentLength, tt.length)
			}
		})
	}
}

// TestRefusedConnectionsLingerWithinABound: a client dialling past its cap has its refused
// connections closed gently (each held up to lingerTime, reading what it sends) only
// lingeringRefusals at a time; the rest are closed at once, so a client that keeps its refused
// connections open holds no more of the gateway's for it.
func TestRefusedConnectionsLingerWithinABound(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.MaxConnsPerClient = 1 })
	held := dialGateway(t, s.url)
	defer held.Close()
	if _, err := io.WriteString(held, "GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(held), nil)
	if err != nil {
		t.Fatalf("the held connection: %v", err)
	}
	if a, body := readAnswer(t, resp); a.StatusCode != http.StatusOK {
		t.Fatalf("the held connection: status %d %s", a.StatusCode, body)
	}
	const refused = 3 * lingeringRefusals
	conns := make([]*net.TCPConn, refused)
	for i := range conns {
		conns[i] = dialGateway(t, s.url)
		defer conns[i].Close()
		_, _ = io.WriteString(conns[i], "GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n")
	}
	// The first refusal lingers: its answer arrives whole, then the gateway's end.
	r := bufio.NewReader(conns[0])
	resp, err = http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("the first refused connection: %v, want its 429", err)
	}
	if a, body := readAnswer(t, resp); a.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the first refused connection: status %d %s, want 429", a.StatusCode, body)
	}
	if _, err := r.ReadByte(); err != io.EOF {
		t.Fatalf("after the first refusal: %v, want the gateway's end", err)
	}
	time.Sleep(100 * time.Millisecond) // every refusal written and closed, gently or not
	// A connection the gateway still reads takes more bytes; one it closed resets.
	closed := 0
	for _, c := range conns {
		_, err1 := io.WriteString(c, "more")
		time.Sleep(10 * time.Millisecond)
		_, err2 := io.WriteString(c, "more")
		if err1 != nil || err2 != nil {
			closed++
		}
	}
	if closed < refused-lingeringRefusals {
		t.Errorf("%d of %d refused connections closed at once; want all but %d", closed, refused, lingeringRefusals)
	}
}

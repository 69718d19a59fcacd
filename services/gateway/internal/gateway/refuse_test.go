package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// TestOverLimitBodyAnswerArrives: a client announcing a body just over web.MaxBodyBytes that
// writes all of it before reading, as simple clients do, reads the JSON 413 every time, and
// is never invited to send it (no 100 Continue). The gateway refuses on the announced length
// with the body unread; closing the connection on it would send a reset that can destroy the
// answer before the client reads it.
func TestOverLimitBodyAnswerArrives(t *testing.T) {
	var g *Gateway
	s := newSuiteOf(t, nil, func(gw *Gateway) { g = gw })
	body := `{"name":"` + strings.Repeat("x", web.MaxBodyBytes+1-len(`{"name":""}`)) + `"}`
	for _, tt := range []struct {
		name   string
		expect string
		// wait: the client sends the head alone and waits for the answer, as a client
		// expecting 100 Continue does for a while.
		wait bool
	}{
		{name: "no expectation"},
		{name: "Expect: 100-continue", expect: "Expect: 100-continue\r\n"},
		{name: "Expect: 100-continue, waiting", expect: "Expect: 100-continue\r\n", wait: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			head := "POST /users HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n" + tt.expect +
				"X-Request-ID: big-1\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
			request := head + body
			if tt.wait {
				request = head
			}
			for i := range 50 {
				resp, answer := exchange(t, s.url, request, 16<<10, false)
				if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("Content-Type") != "application/json" {
					t.Fatalf("attempt %d: status %d %q, want 413 JSON first; body %s", i, resp.StatusCode, resp.Header.Get("Content-Type"), answer)
				}
				if e := decode[map[string]any](t, answer); e["error"] == nil {
					t.Fatalf("attempt %d: body %s has no error", i, answer)
				}
				if id := resp.Header.Get(web.RequestIDHeader); id != "big-1" {
					t.Fatalf("attempt %d: X-Request-ID %q, want the client's", i, id)
				}
			}
		})
	}
	if got := counterValue(t, s.reg, "http_requests_total", map[string]string{"route": "/users", "status": "413"}); got != 150 {
		t.Errorf("http_requests_total{route=\"/users\",status=\"413\"} = %v, want 150", got)
	}
	if n := s.upstreams["user"].hits.Load(); n != 0 {
		t.Fatalf("user reached %d times", n)
	}
	checkNoHeadKept(t, g)
}

// TestUnreadableRequests: a request the gateway will not read, or cannot read whole, is
// answered in JSON with its status and a request id (the client's when its head was read and
// the id is sane, else a new one), counted and logged under its route (when its head was
// read), and reaches no service. The requests are written by hand, as HTTP clients would not.
func TestUnreadableRequests(t *testing.T) {
	var g *Gateway
	s := newSuiteOf(t, func(c *Config) { c.ReadHeaderTimeout = 300 * time.Millisecond; c.ReadTimeout = 600 * time.Millisecond },
		func(gw *Gateway) { g = gw })
	head := func(id, field string) string {
		return "POST /users HTTP/1.1\r\nHost: gateway\r\nX-Request-ID: " + id + "\r\n" + field + "\r\n\r\n"
	}
	unsafeID := strings.Repeat("x", 200)
	tests := []struct {
		name    string
		request string
		// halfClose: the client says it has sent all it will, and reads.
		halfClose bool
		status    int
		// id is the request id the answer must carry; "" for a new one.
		id    string
		route string
	}{
		{name: "head slower than the header timeout", request: "POST /users HTTP/1.1\r\nHost: gateway\r\nX-Request-ID: slow-0\r\n",
			status: http.StatusRequestTimeout, route: web.UnmatchedRoute},
		{name: "body stalled before the handler", request: head("slow-1", "Content-Length: 100") + `{"a":1}`,
			status: http.StatusRequestTimeout, id: "slow-1", route: "/users"},
		{name: "body stalled, unsafe request id", request: head(unsafeID, "Content-Length: 100") + `{"a":1}`,
			status: http.StatusRequestTimeout, route: "/users"},
		{name: "body cut short", request: head("cut-1", "Content-Length: 100") + `{"a":1}`, halfClose: true,
			status: http.StatusBadRequest, id: "cut-1", route: "/users"},
		{name: "head over the buffer", request: head("big-0", "X-Big: "+strings.Repeat("x", readBufferSize)),
			status: http.StatusRequestHeaderFieldsTooLarge, route: web.UnmatchedRoute},
		{name: "malformed head", request: head("bad-0", "Content-Length: x"),
			status: http.StatusBadRequest, route: web.UnmatchedRoute},
		{name: "target that cannot be read", request: "GET /users/1 HTTP/1.1\r\nHost: [::1\r\nX-Request-ID: host-1\r\n\r\n",
			status: http.StatusBadRequest, id: "host-1", route: "/users/"},
		// Refused once its first bytes are in (the server reads up to 8 KiB of a body before
		// the handler runs), not after the whole megabyte.
		{name: "body over the limit", request: head("big-1", "Content-Length: "+strconv.Itoa(web.MaxBodyBytes+1)) + strings.Repeat("x", 8<<10),
			status: http.StatusRequestEntityTooLarge, id: "big-1", route: "/users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			series := map[string]string{"route": tt.route, "status": strconv.Itoa(tt.status)}
			before := counterValue(t, s.reg, "http_requests_total", series)
			resp, body := exchange(t, s.url, tt.request, 0, tt.halfClose)
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d %q, want %d JSON; body %s", resp.StatusCode, resp.Header.Get("Content-Type"), tt.status, body)
			}
			if e := decode[map[string]any](t, body); e["error"] == nil {
				t.Errorf("body %s has no error", body)
			}
			id := checkRequestID(t, resp, tt.id, tt.request)
			if after := counterValue(t, s.reg, "http_requests_total", series); after != before+1 {
				t.Errorf("http_requests_total%v went from %v to %v, want one more", series, before, after)
			}
			if !logged(t, s.log, id, tt.route, tt.status) {
				t.Errorf("no access-log line with request_id %q, route %q, status %d", id, tt.route, tt.status)
			}
		})
	}
	t.Run("a connection that sends nothing", func(t *testing.T) {
		timeouts := map[string]string{"status": strconv.Itoa(http.StatusRequestTimeout)}
		before := counterValue(t, s.reg, "http_requests_total", timeouts)
		lines := len(s.log.requests(t))
		if resp, body := exchange(t, s.url, "", 0, false); resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("status %d %s, want 408", resp.StatusCode, body)
		}
		if after := counterValue(t, s.reg, "http_requests_total", timeouts); after != before {
			t.Errorf("counted as a request: http_requests_total{status=\"408\"} went from %v to %v", before, after)
		}
		if n := len(s.log.requests(t)); n != lines {
			t.Errorf("logged as a request: %d access-log lines, were %d", n, lines)
		}
	})
	for name, u := range s.upstreams {
		if n := u.hits.Load(); n != 0 {
			t.Errorf("%s reached %d times", name, n)
		}
	}
	checkNoHeadKept(t, g)
}

// exchange writes request to the gateway on a connection of its own, in pieces of piece
// bytes when piece is not 0 (as a client sends from its buffer) however early the gateway
// answers; closes the connection's sending side when halfClose is set; and returns the first
// answer read (a 100 Continue included) and its body. A connection reset while writing fails
// the test: clients such as curl give up on the request then, answer or not.
func exchange(t *testing.T, gatewayURL, request string, piece int, halfClose bool) (answer, []byte) {
	t.Helper()
	conn := dialGateway(t, gatewayURL)
	defer conn.Close()
	if piece == 0 {
		piece = len(request) + 1
	}
	for rest := request; rest != ""; {
		n := min(len(rest), piece)
		if _, err := io.WriteString(conn, rest[:n]); err != nil {
			t.Fatalf("writing the request, %d bytes to go: %v", len(rest), err)
		}
		rest = rest[n:]
		if rest != "" {
			time.Sleep(100 * time.Microsecond)
		}
	}
	if halfClose {
		if err := conn.CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return readAnswer(t, resp)
}

// checkRequestID checks the request id of the answer resp and returns it: the client's, want,
// when want is not "", else a new one, found nowhere in what the client sent.
func checkRequestID(t *testing.T, resp answer, want, sent string) string {
	t.Helper()
	id := resp.Header.Get(web.RequestIDHeader)
	switch {
	case !web.ValidRequestID(id):
		t.Fatalf("X-Request-ID %q, want one", id)
	case want != "" && id != want:
		t.Errorf("X-Request-ID %q, want the client's %q", id, want)
	case want == "" && strings.Contains(sent, id):
		t.Errorf("X-Request-ID %q taken from a request whose head was not read, or unsafe", id)
	}
	return id
}

// logged reports whether log has an access-log line of request id with route and status.
func logged(t *testing.T, log *logLines, id, route string, status int) bool {
	t.Helper()
	for _, line := range log.requests(t) {
		if line["request_id"] == id && line["route"] == route && line["status"] == float64(status) {
			return true
		}
	}
	return false
}

// TestRefusedRequestsCountAgainstTheLimit: a request on a routed path that the gateway
// refuses before it would forward it (a body announced over web.MaxBodyBytes, with or
// without Expect: 100-continue) counts against its client's limit as a forwarded one does,
// and its answer carries the limit's headers; past the limit it is answered 429.
func TestRefusedRequestsCountAgainstTheLimit(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.RateLimitRequests = 3; c.RateLimitWindow = time.Minute })
	big := func(expect string) string {
		head := "POST /users HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n" + expect +
			"Content-Length: " + strconv.Itoa(web.MaxBodyBytes+1) + "\r\n\r\n"
		if expect != "" {
			return head // waits for the invitation, as such a client does for a while
		}
		return head + strings.Repeat("x", web.MaxBodyBytes+1)
	}

	if resp, body := s.do(t, "GET", "/users", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("first request: status %d %s", resp.StatusCode, body)
	}
	for i, expect := range []string{"", "Expect: 100-continue\r\n"} {
		resp, answer := exchange(t, s.url, big(expect), 16<<10, false)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("large body %d: status %d %s, want 413", i+1, resp.StatusCode, answer)
		}
		checkRateLimitHeaders(t, resp, 1-i)
	}
	for _, expect := range []string{"", "Expect: 100-continue\r\n"} {
		resp, answer := exchange(t, s.url, big(expect), 16<<10, false)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("large body past the limit: status %d, Retry-After %q; body %s, want 429", resp.StatusCode, resp.Header.Get("Retry-After"), answer)
		}
		if e := decode[map[string]string](t, answer); e["error"] != "Too many requests" {
			t.Fatalf("429 body %s", answer)
		}
		checkRateLimitHeaders(t, resp, 0)
	}
	if resp, _ := s.do(t, "GET", "/users", nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after the refused requests: status %d, want 429", resp.StatusCode)
	}
	if n := s.upstreams["user"].hits.Load(); n != 1 {
		t.Fatalf("user reached %d times, want 1", n)
	}
}

// TestRefusedRequestKeepsItsConnection: a client over its limit is answered 429 on the
// connection it came on, which stays open for its next request, as after any other answer,
// when its request had no body (fasthttp: no Content-Length, or 0) or a body the gateway could
// read and drop (dropBody). One whose body is too large to drop is answered and its connection
// closed, gently: the rest of the body may be on its way.
func TestRefusedRequestKeepsItsConnection(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.RateLimitRequests = 1; c.RateLimitWindow = time.Minute })
	conn := dialGateway(t, s.url)
	defer conn.Close()
	r := bufio.NewReader(conn)
	for i, tt := range []struct {
		request   string
		status    int
		wantClose bool
	}{
		{"GET /users HTTP/1.1\r\nHost: shop\r\n\r\n", http.StatusOK, false},
		{"GET /users HTTP/1.1\r\nHost: shop\r\n\r\n", http.StatusTooManyRequests, false},
		{"DELETE /users/1 HTTP/1.1\r\nHost: shop\r\nContent-Length: 0\r\n\r\n", http.StatusTooManyRequests, false},
		{"POST /users HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", http.StatusTooManyRequests, false},
		{"POST /users HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(dropBodyBytes+1) +
			"\r\n\r\n" + strings.Repeat("x", 16<<10), http.StatusTooManyRequests, true},
	} {
		if _, err := io.WriteString(conn, tt.request); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Close != tt.wantClose {
			t.Errorf("request %d (%q): status %d, connection closed %v; want %d, %v",
				i+1, strings.SplitN(tt.request, "\r\n", 2)[0], resp.StatusCode, resp.Close, tt.status, tt.wantClose)
		}
	}
}

// TestUnusedBodyLeavesTheNextRequestAnswered: a request the gateway answers without its body
// (its own paths, a 429, a CONNECT, a path with a broken %-escape) with a body it can read and
// drop is answered on a connection that stays open, and the request the client pipelined after
// it is answered too. One whose body is too large to drop, cut short, sent with Connection:
// close, or announced with Expect: 100-continue (answered before it comes), is answered with
// Connection: close, and the connection then ends cleanly (no reset under the answer): the
// client is never left waiting for an answer that does not come.
func TestUnusedBodyLeavesTheNextRequestAnswered(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.ReadTimeout = 5 * time.Second })
	limited := newSuite(t, func(c *Config) { c.RateLimitRequests = 1; c.RateLimitWindow = time.Minute })
	if resp, body := limited.do(t, "GET", "/users", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("first request: status %d %s", resp.StatusCode, body)
	}
	const next = "GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"
	withLength := func(line, body string) string {
		return line + " HTTP/1.1\r\nHost: gateway\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	chunked := func(line string, body string) string {
		var b strings.Builder
		b.WriteString(line + " HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: chunked\r\n\r\n")
		for rest := body; rest != ""; {
			n := min(len(rest), 10000)
			fmt.Fprintf(&b, "%x\r\n%s\r\n", n, rest[:n])
			rest = rest[n:]
		}
		b.WriteString("0\r\nX-Trailer: t\r\n\r\n")
		return b.String()
	}
	small := `{"a":1}`
	// Past the 8 KiB the server reads before the handler runs, within dropBodyBytes.
	medium := strings.Repeat("m", 100<<10)
	large := strings.Repeat("l", dropBodyBytes+1)
	for _, tt := range []struct {
		name    string
		url     string
		request string
		status  int
		close   bool
		// halfClose: the client sends no more after the request.
		halfClose bool
	}{
		{name: "GET /health", url: s.url, request: withLength("GET /health", small), status: http.StatusOK},
		{name: "GET /healthz", url: s.url, request: withLength("GET /healthz", small), status: http.StatusOK},
		{name: "404", url: s.url, request: withLength("POST /nothing", small), status: http.StatusNotFound},
		{name: "405", url: s.url, request: withLength("POST /healthz", small), status: http.StatusMethodNotAllowed},
		{name: "404, body past what the server reads first", url: s.url, request: withLength("POST /nothing", medium), status: http.StatusNotFound},
		{name: "404, chunked", url: s.url, request: chunked("POST /nothing", medium), status: http.StatusNotFound},
		{name: "404, empty chunked", url: s.url, request: chunked("POST /nothing", ""), status: http.StatusNotFound},
		{name: "CONNECT", url: s.url, request: withLength("CONNECT gateway:443", small), status: http.StatusNotFound},
		{name: "broken %-escape, chunked", url: s.url, request: chunked("POST /users/%zz", medium), status: http.StatusBadRequest},
		{name: "429", url: limited.url, request: withLength("POST /users", small), status: http.StatusTooManyRequests},
		{name: "429, chunked", url: limited.url, request: chunked("POST /users", medium), status: http.StatusTooManyRequests},

		{name: "404, body too large to drop", url: s.url, request: withLength("POST /nothing", large), status: http.StatusNotFound, close: true},
		{name: "404, chunked body too large to drop", url: s.url, request: chunked("POST /nothing", large), status: http.StatusNotFound, close: true},
		{name: "CONNECT, body too large to drop", url: s.url, request: withLength("CONNECT gateway:443", large), status: http.StatusNotFound, close: true},
		{name: "broken %-escape, chunked body too large to drop", url: s.url, request: chunked("POST /users/%zz", large),
			status: http.StatusBadRequest, close: true},
		{name: "429, body too large to drop", url: limited.url, request: withLength("POST /users", large), status: http.StatusTooManyRequests, close: true},
		// Answered before the body is invited, so the body may or may not follow
		// (TestExpectContinueInvitesOnlyWhatIsProxied).
		{name: "404, Expect: 100-continue", url: s.url, request: "POST /nothing HTTP/1.1\r\nHost: gateway\r\nExpect: 100-continue\r\nContent-Length: 7\r\n\r\n" + small,
			status: http.StatusNotFound, close: true},
		{name: "404, Connection: close", url: s.url, request: "POST /nothing HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\nContent-Length: 7\r\n\r\n" + small,
			status: http.StatusNotFound, close: true},
		// Past the 8 KiB the server reads first, which it would answer 400 itself when cut short.
		{name: "404, body cut short", url: s.url, request: "POST /nothing HTTP/1.1\r\nHost: gateway\r\nContent-Length: " + strconv.Itoa(len(medium)) +
			"\r\n\r\n" + medium[:16<<10], status: http.StatusNotFound, close: true, halfClose: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn := dialGateway(t, tt.url)
			defer conn.Close()
			request := tt.request
			if !tt.halfClose {
				request += next
			}
			wrote := make(chan struct{})
			go func() { // a large request is written while its answer is read, as it may come first
				defer close(wrote)
				_, _ = io.WriteString(conn, request)
				if tt.halfClose {
					_ = conn.CloseWrite()
				}
			}()
			defer func() { conn.Close(); <-wrote }()
			r := bufio.NewReader(conn)
			read := func(what string) (answer, []byte) {
				t.Helper()
				resp, err := http.ReadResponse(r, nil)
				if err != nil {
					t.Fatalf("reading %s: %v", what, err)
				}
				return readAnswer(t, resp)
			}
			first, body := read("the answer")
			if first.StatusCode == http.StatusContinue {
				first, body = read("the answer after 100 Continue")
			}
			if first.StatusCode != tt.status || first.Close != tt.close {
				t.Fatalf("status %d, closing %v; want %d, closing %v; body %s", first.StatusCode, first.Close, tt.status, tt.close, body)
			}
			if tt.close {
				if _, err := r.ReadByte(); err != io.EOF {
					t.Fatalf("after the answer: %v, want the connection's end", err)
				}
				return
			}
			second, body := read("the answer to the request pipelined after it")
			if second.StatusCode != http.StatusOK || string(body) != "{\"status\":\"ok\"}\n" {
				t.Fatalf("the request pipelined after it: status %d %s, want GET /healthz's answer", second.StatusCode, body)
			}
		})
	}
	if strings.Contains(s.log.String(), `"level":"WARN"`) {
		t.Errorf("the server warned:\n%s", s.log.String())
	}
}

// TestHeadWithoutBodyKeepsItsDeadline: once a request's head is read, the server gives its
// body the read timeout; a request without a body (no Content-Length, or 0) keeps the head's
// deadline, which nothing more is read under.
func TestHeadWithoutBodyKeepsItsDeadline(t *testing.T) {
	srv := NewServer(Handler{}, config.Base{ReadTimeout: 30 * time.Second, ReadHeaderTimeout: 5 * time.Second}, logging.Discard())
	for _, tt := range []struct {
		head string
		want time.Duration
	}{
		{"GET /products/1 HTTP/1.1\r\nHost: a\r\n\r\n", 0},
		{"GET /products/1 HTTP/1.0\r\n\r\n", 0},
		{"DELETE /users/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 0},
		{"POST /orders HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", 30 * time.Second},
		{"POST /orders HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 30 * time.Second},
	} {
		var h fasthttp.RequestHeader
		if err := h.Read(bufio.NewReader(strings.NewReader(tt.head))); err != nil {
			t.Fatal(err)
		}
		if got := srv.HeaderReceived(&h).ReadTimeout; got != tt.want {
			t.Errorf("%q: body read timeout %s, want %s", tt.head, got, tt.want)
		}
	}
}

// TestOwnPathsReadNoBody: a body over dropBodyBytes sent to a path the gateway answers itself
// (an unknown path, /health) is not read: the answer comes while most of it is still unsent,
// and the connection closes after it. An empty body announced keeps the connection (as does a
// small one, TestUnusedBodyLeavesTheNextRequestAnswered). No such request makes the server
// warn in the log.
func TestOwnPathsReadNoBody(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.ReadTimeout = time.Minute })
	for _, tt := range []struct {
		target string
		status int
	}{{"/nothing", http.StatusNotFound}, {"/health", http.StatusMethodNotAllowed}} {
		conn := dialGateway(t, s.url)
		head := "POST " + tt.target + " HTTP/1.1\r\nHost: gateway\r\nContent-Length: " + strconv.Itoa(web.MaxBodyBytes-10) + "\r\n\r\n"
		// The server reads up to 8 KiB of a body before the handler runs: twice that is sent.
		if _, err := io.WriteString(conn, head+strings.Repeat("x", 16<<10)); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second)) // a twelfth of the read timeout
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("POST %s with most of its body unsent: %v, want the answer at once", tt.target, err)
		}
		got, _ := readAnswer(t, resp)
		conn.Close()
		if got.StatusCode != tt.status || !got.Close {
			t.Errorf("POST %s: %d, closing %v; want %d, closing", tt.target, got.StatusCode, got.Close, tt.status)
		}
	}
	got, _ := exchange(t, s.url, "POST /nothing HTTP/1.1\r\nHost: gateway\r\nContent-Length: 0\r\n\r\n", 0, false)
	if got.StatusCode != http.StatusNotFound || got.Close {
		t.Errorf("POST /nothing with an empty body: %d, closing %v; want 404, kept alive", got.StatusCode, got.Close)
	}
	if strings.Contains(s.log.String(), `"level":"WARN"`) {
		t.Errorf("the server warned:\n%s", s.log.String())
	}
}

// TestConnectionErrorsKeepWhatClientsSentOutOfTheLog: a request the server cannot read for a
// header's value is answered 400 and logged as a request, and the value, which may be a
// credential, is not written to the log.
func TestConnectionErrorsKeepWhatClientsSentOutOfTheLog(t *testing.T) {
	s := newSuite(t, nil)
	got, _ := exchange(t, s.url, "GET /users/1 HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer s3cr3t\rX\r\n\r\n", 0, false)
	if got.StatusCode != http.StatusBadRequest {
		t.Fatalf("a header value with a bare CR: %d, want 400", got.StatusCode)
	}
	id := got.Header.Get(web.RequestIDHeader)
	waitFor(t, 5*time.Second, func() bool {
		return slices.ContainsFunc(s.log.requests(t), func(l map[string]any) bool { return l["request_id"] == id })
	})
	time.Sleep(100 * time.Millisecond) // the server logs the connection's error once it closes
	if strings.Contains(s.log.String(), "s3cr3t") {
		t.Errorf("the log holds the header's value:\n%s", s.log.String())
	}
}

// TestExpectContinueInvitesOnlyWhatIsProxied: a request with Expect: 100-continue is invited
// to send its body only when the gateway is to send it on; it is counted against its client's
// limit once, invited or not. Any other is answered at once, without the body and with the
// answer it would get once the body was in, and its connection closes (the client may have
// started sending the body).
func TestExpectContinueInvitesOnlyWhatIsProxied(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.RateLimitRequests = 3; c.RateLimitWindow = time.Minute })
	const body = `{"userId":"u1"}`
	head := func(line, fields string) string {
		return line + " HTTP/1.1\r\nHost: gateway\r\nExpect: 100-continue\r\n" + fields +
			"Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	}
	for i := range 3 {
		conn := dialGateway(t, s.url)
		r := bufio.NewReader(conn)
		if _, err := io.WriteString(conn, head("POST /users", "")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		resp.Body.Close() // a 100 Continue has none
		if resp.StatusCode != http.StatusContinue {
			t.Fatalf("request %d within the limit: status %d, want 100 Continue", i+1, resp.StatusCode)
		}
		if _, err := io.WriteString(conn, body); err != nil {
			t.Fatal(err)
		}
		if resp, err = http.ReadResponse(r, nil); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		got, answer := readAnswer(t, resp)
		conn.Close()
		if got.StatusCode != http.StatusOK {
			t.Fatalf("request %d within the limit, invited: status %d %s, want 200 (counted once)", i+1, got.StatusCode, answer)
		}
		if e := decode[echo](t, answer); e.Body != body {
			t.Fatalf("request %d: the service saw body %q", i+1, e.Body)
		}
		checkRateLimitHeaders(t, got, 2-i)
	}
	resp, answer := exchange(t, s.url, head("POST /users", ""), 0, false)
	if resp.StatusCode != http.StatusTooManyRequests || !resp.Close {
		t.Fatalf("request past the limit: status %d, closing %v; %s; want 429 at once, closing", resp.StatusCode, resp.Close, answer)
	}
	checkRateLimitHeaders(t, resp, 0)
	if n := s.upstreams["user"].hits.Load(); n != 3 {
		t.Fatalf("user reached %d times, want 3", n)
	}

	open := newSuite(t, nil)
	for _, tt := range []struct{ name, request string }{
		{"the gateway's own path", head("POST /health", "")},
		{"an unknown path", head("POST /nowhere", "")},
		{"CONNECT", head("CONNECT gateway:443", "")},
		{"a broken escape in the path", head("POST /users/%zz", "")},
		{"a field name that is no token", head("POST /users", "X Foo: a\r\n")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want, _ := exchange(t, open.url, strings.Replace(tt.request, "Expect: 100-continue\r\n", "", 1)+body, 0, false)
			resp, answer := exchange(t, open.url, tt.request, 0, false)
			if resp.StatusCode == http.StatusContinue || resp.StatusCode != want.StatusCode || !resp.Close {
				t.Fatalf("status %d, closing %v; %s; want %d (as without the expectation) at once, closing",
					resp.StatusCode, resp.Close, answer, want.StatusCode)
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || !web.ValidRequestID(resp.Header.Get(web.RequestIDHeader)) {
				t.Errorf("answer %s %q without JSON or a request id", answer, resp.Header.Get("Content-Type"))
			}
		})
	}
	for name, u := range open.upstreams {
		if n := u.hits.Load(); n != 0 {
			t.Errorf("%s reached %d times", name, n)
		}
	}
}

// TestExpectContinueNeverProxiesWithoutTheBody: a request answered at its Expect:
// 100-continue (its body never invited) does not reach the service, and gets the answer it
// gets with its body, even when the field that makes it refused is one its Connection names
// (which the gateway drops before sending the request on).
func TestExpectContinueNeverProxiesWithoutTheBody(t *testing.T) {
	s := newSuite(t, nil)
	const body = `{"userId":"u1"}`
	head := "POST /users HTTP/1.1\r\nHost: gateway\r\nX Foo: a\r\nConnection: X Foo\r\nExpect: 100-continue\r\n" +
		"Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	resp, answer := exchange(t, s.url, head, 0, false) // the body is never sent
	if n := s.upstreams["user"].hits.Load(); n != 0 {
		t.Fatalf("answered %d %s without an invitation, and the service was reached %d times without the body",
			resp.StatusCode, answer, n)
	}
	want, _ := exchange(t, s.url, strings.Replace(head, "Expect: 100-continue\r\n", "", 1)+body, 0, false)
	if resp.StatusCode == http.StatusContinue || resp.StatusCode != want.StatusCode {
		t.Fatalf("status %d %s, want %d, as with the body", resp.StatusCode, answer, want.StatusCode)
	}
}

// TestConnectionCannotNameTheClientAway: a request from a trusted proxy whose Connection
// names X-Forwarded-For is limited as its client, the one X-Forwarded-For names, whether it
// expects 100-continue or not, as any other of that client's.
func TestConnectionCannotNameTheClientAway(t *testing.T) {
	for _, expect := range []bool{false, true} {
		s := newSuite(t, func(c *Config) {
			c.RateLimitRequests = 3
			c.RateLimitWindow = time.Minute
			c.TrustedProxies = "127.0.0.0/8"
		})
		const body = `{"userId":"u1"}`
		head := "POST /users HTTP/1.1\r\nHost: gateway\r\nX-Forwarded-For: 198.51.100.7\r\nConnection: X-Forwarded-For\r\n" +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\n"
		var resp answer
		if expect {
			resp = converse(t, s.url, "", head+"Expect: 100-continue\r\n\r\n", body, true, false)
		} else {
			resp, _ = exchange(t, s.url, head+"\r\n"+body, 0, false)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("expect %v: status %d", expect, resp.StatusCode)
		}
		client, _ := s.do(t, "GET", "/users", http.Header{"X-Forwarded-For": {"198.51.100.7"}})
		proxy, _ := s.do(t, "GET", "/users", nil)
		checkRateLimitHeaders(t, client, 1) // the request counted against its client
		checkRateLimitHeaders(t, proxy, 2)  // and not against the proxy
	}
}

// TestConnectionCloseBodyIsNotWaitedFor: a request saying Connection: close that the gateway
// answers without its body (its own paths and unknown ones, a client over its limit, a path
// refused 400) is answered at once, with Connection: close, while its body is still coming:
// the body is not read on. The 429 and the 400 on a route waited for the whole body, or for
// HTTP_READ_TIMEOUT, before they were sent.
func TestConnectionCloseBodyIsNotWaitedFor(t *testing.T) {
	s := newSuite(t, func(c *Config) {
		c.RateLimitRequests = 1
		c.RateLimitWindow = time.Minute
		c.ReadTimeout = 20 * time.Second
	})
	if resp, body := s.do(t, "GET", "/users", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("first request: status %d %s", resp.StatusCode, body)
	}
	for _, tt := range []struct {
		target string
		status int
	}{
		{"/nothing", http.StatusNotFound},
		{"/users", http.StatusTooManyRequests},
		{"/users/%zz", http.StatusTooManyRequests}, // the client is over its limit: 429 before 400
	} {
		t.Run(tt.target, func(t *testing.T) { expectAnswerWhileBodyComes(t, s.url, tt.target, tt.status) })
	}
	// The refusal 400 itself, from a client within its limit.
	fresh := newSuite(t, func(c *Config) { c.ReadTimeout = 20 * time.Second })
	expectAnswerWhileBodyComes(t, fresh.url, "/users/%zz", http.StatusBadRequest)
}

// expectAnswerWhileBodyComes sends a POST of target saying Connection: close with part of its
// body, past the 8 KiB the server reads first and within what the gateway would drop, and
// expects the answer status, closing, while the rest has not been sent.
func expectAnswerWhileBodyComes(t *testing.T, url, target string, status int) {
	t.Helper()
	conn := dialGateway(t, url)
	defer conn.Close()
	head := "POST " + target + " HTTP/1.1\r\nHost: shop\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(100<<10) + "\r\n\r\n"
	if _, err := io.WriteString(conn, head+strings.Repeat("x", 16<<10)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: no answer while the body is still coming: %v", target, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != status || !resp.Close {
		t.Fatalf("%s: status %d, closing %v; want %d, closing", target, resp.StatusCode, resp.Close, status)
	}
}

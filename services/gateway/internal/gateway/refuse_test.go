package gateway

import (
	"bufio"
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

// TestRefusedRequestWithoutBodyKeepsItsConnection: a client over its limit is answered 429 on
// the connection it came on, which stays open for its next request, as after any other answer,
// when its request had no body (fasthttp: no Content-Length, or 0). One whose body was not
// read is answered and its connection closed, gently: the rest of the body may be on its way.
func TestRefusedRequestWithoutBodyKeepsItsConnection(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.RateLimitRequests = 1; c.RateLimitWindow = time.Minute })
	conn := dialGateway(t, s.url)
	defer conn.Close()
	r := bufio.NewReader(conn)
	for i, request := range []string{
		"GET /users HTTP/1.1\r\nHost: shop\r\n\r\n",
		"GET /users HTTP/1.1\r\nHost: shop\r\n\r\n",
		"DELETE /users/1 HTTP/1.1\r\nHost: shop\r\nContent-Length: 0\r\n\r\n",
		"POST /users HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
	} {
		if _, err := io.WriteString(conn, request); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		wantStatus, wantClose := http.StatusTooManyRequests, i == 3
		if i == 0 {
			wantStatus = http.StatusOK
		}
		if resp.StatusCode != wantStatus || resp.Close != wantClose {
			t.Errorf("request %d (%q): status %d, connection closed %v; want %d, %v",
				i+1, strings.SplitN(request, "\r\n", 2)[0], resp.StatusCode, resp.Close, wantStatus, wantClose)
		}
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

// TestOwnPathsReadNoBody: a body sent to a path the gateway answers itself (an unknown path,
// /health) is not read: the answer comes while most of it is still unsent, and the connection
// closes after it. An empty body announced keeps the connection. No such request makes the
// server warn in the log.
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

package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shopkeeper-dev/shopkeeper/internal/testproc"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing/tracingtest"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// upstream is a real HTTP server standing in for one service: it echoes what it received.
type upstream struct {
	name   string
	srv    *httptest.Server
	hits   atomic.Int64 // requests other than /readyz
	readyz atomic.Int64 // /readyz requests
	down   atomic.Bool  // /readyz answers 503 while set
	delay  atomic.Int64 // nanoseconds to wait before answering anything
	abort  atomic.Bool  // requests other than /readyz are dropped unanswered while set
	conns  atomic.Int64 // connections accepted
}

// answerBytesHeader asks an upstream for an answer of that many bytes instead of the echo.
const answerBytesHeader = "X-Test-Answer-Bytes"

// echo is what an upstream answers: what it saw of the request.
type echo struct {
	Service        string   `json:"service"`
	Method         string   `json:"method"`
	RequestURI     string   `json:"requestUri"`
	Path           string   `json:"path"`
	Query          string   `json:"query"`
	RequestID      string   `json:"requestId"`
	RequestIDs     []string `json:"requestIds"`
	Traceparent    string   `json:"traceparent"`
	ForwardedFor   string   `json:"forwardedFor"`
	ForwardedHost  string   `json:"forwardedHost"`
	ForwardedProto string   `json:"forwardedProto"`
	Forwarded      string   `json:"forwarded"`
	RealIP         string   `json:"realIp"`
	Body           string   `json:"body"`
	Connection     string   `json:"connection"`
	Expect         string   `json:"expect"`
	// How the body came: its length (-1: chunked), and the fields of a trailer section.
	ContentLength int64       `json:"contentLength"`
	Trailer       http.Header `json:"trailer"`
	Header        http.Header `json:"header"`
}

func newUpstream(t *testing.T, name string) *upstream {
	t.Helper()
	u := &upstream{name: name}
	u.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := time.Duration(u.delay.Load()); d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return
			}
		}
		if r.URL.Path == "/readyz" {
			u.readyz.Add(1)
			if u.down.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		u.hits.Add(1)
		if u.abort.Load() {
			panic(http.ErrAbortHandler) // the connection is dropped with no answer
		}
		if n, _ := strconv.Atoi(r.Header.Get(answerBytesHeader)); n > 0 {
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(bytes.Repeat([]byte("z"), n))
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-ID", r.Header.Get("X-Request-ID")) // as the services do
		_ = json.NewEncoder(w).Encode(echo{
			Service:        name,
			Method:         r.Method,
			RequestURI:     r.RequestURI,
			Path:           r.URL.Path,
			Query:          r.URL.RawQuery,
			RequestID:      r.Header.Get("X-Request-ID"),
			RequestIDs:     r.Header.Values("X-Request-ID"),
			Traceparent:    r.Header.Get("Traceparent"),
			ForwardedFor:   r.Header.Get("X-Forwarded-For"),
			ForwardedHost:  r.Header.Get("X-Forwarded-Host"),
			ForwardedProto: r.Header.Get("X-Forwarded-Proto"),
			Forwarded:      r.Header.Get("Forwarded"),
			RealIP:         r.Header.Get("X-Real-IP"),
			Body:           string(body),
			Connection:     r.Header.Get("Connection"),
			Expect:         r.Header.Get("Expect"),
			ContentLength:  r.ContentLength,
			Trailer:        r.Trailer, // complete once the body is read
			Header:         r.Header,
		})
	}))
	u.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			u.conns.Add(1)
		}
	}
	u.srv.Start()
	t.Cleanup(u.srv.Close)
	return u
}

// suite is a gateway in front of four upstreams, all over real HTTP on loopback.
type suite struct {
	cfg       *Config
	url       string // the gateway's
	reg       *prometheus.Registry
	log       *logLines // the gateway's log
	upstreams map[string]*upstream
}

// newSuite starts the upstreams and a gateway; edit may change the configuration first.
func newSuite(t *testing.T, edit func(*Config)) *suite {
	t.Helper()
	return newSuiteOf(t, edit, nil)
}

// newSuiteOf is newSuite, with tune changing the gateway before it serves.
func newSuiteOf(t *testing.T, edit func(*Config), tune func(*Gateway)) *suite {
	t.Helper()
	s := &suite{upstreams: map[string]*upstream{}, log: &logLines{}}
	for _, n := range []string{"user", "product", "order", "payment"} {
		s.upstreams[n] = newUpstream(t, n)
	}
	cfg := &Config{
		UserServiceURL:      s.upstreams["user"].srv.URL,
		ProductServiceURL:   s.upstreams["product"].srv.URL,
		OrderServiceURL:     s.upstreams["order"].srv.URL,
		PaymentServiceURL:   s.upstreams["payment"].srv.URL,
		RateLimitRequests:   1000,
		RateLimitWindow:     time.Minute,
		RateLimitMaxClients: 1000,
		UpstreamTimeout:     5 * time.Second,
		MaxConnsPerService:  16,
		MaxConnsPerClient:   256,
		HealthTimeout:       time.Second,
		HealthCacheTTL:      0,
	}
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s.cfg = cfg
	g, err := New(cfg, logging.NewTo(s.log, "gateway", slog.LevelInfo))
	if err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(g)
	}
	s.reg = metrics.NewRegistry()
	base := cfg.Base
	base.ShutdownTimeout = testShutdownTimeout
	s.url = serve(t, g.Handler(s.reg), base, logging.NewTo(s.log, "gateway", slog.LevelInfo))
	t.Cleanup(g.Close)
	return s
}

// testShutdownTimeout is the test servers' ShutdownTimeout. A connection that has carried no
// request yet counts as idle only 5 s after it was accepted (fasthttp, as net/http), so a
// client's spare connection in its pool holds a shutdown about 5 s: more than that.
const testShutdownTimeout = 15 * time.Second

// serve serves h on a loopback port, as Serve does, with the server's own messages logged to
// logger, until the test ends, and returns its URL.
func serve(t *testing.T, h Handler, cfg config.Base, logger *slog.Logger) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = testShutdownTimeout
	}
	go func() {
		done <- ServeListener(ctx, ln, h, cfg, logger)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway server: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// rawRequest writes parts to the gateway over a connection of its own, pausing pause between
// them, exactly as given (what an HTTP client would not send), and returns the answer and its
// body.
func rawRequest(t *testing.T, gatewayURL string, pause time.Duration, parts ...string) (answer, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(gatewayURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i, p := range parts {
		if i > 0 {
			time.Sleep(pause)
		}
		if _, err := io.WriteString(conn, p); err != nil {
			break // the gateway gave up on the request and answered
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return readAnswer(t, resp)
}

// readAnswer reads resp whole and closes it.
func readAnswer(t *testing.T, resp *http.Response) (answer, []byte) {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{StatusCode: resp.StatusCode, Header: resp.Header, Close: resp.Close}, body
}

// answer is what the gateway answered, its body already read.
type answer struct {
	StatusCode int
	Header     http.Header
	Close      bool // the gateway said it closes the connection
}

// do sends a request to the gateway and returns the answer and its body.
func (s *suite) do(t *testing.T, method, target string, header http.Header) (answer, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return readAnswer(t, resp)
}

// logLines is a log written to memory, as JSON lines.
type logLines struct{ testproc.Buffer }

// requests returns the access-log lines ("request") written so far.
func (l *logLines) requests(t *testing.T) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for line := range strings.Lines(l.String()) {
		if e := decode[map[string]any](t, []byte(line)); e["msg"] == "request" {
			lines = append(lines, e)
		}
	}
	return lines
}

// every returns a condition that holds when cond holds for every upstream.
func (s *suite) every(cond func(*upstream) bool) func() bool {
	return func() bool {
		for _, u := range s.upstreams {
			if !cond(u) {
				return false
			}
		}
		return true
	}
}

// waitFor waits until cond holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func decode[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return v
}

func TestRoutes(t *testing.T) {
	s := newSuite(t, nil)
	tests := []struct {
		method, target string
		service        string // "" means the gateway answers 404
		requestURI     string // what the service receives
	}{
		// canonical form: path kept
		{method: "GET", target: "/users", service: "user", requestURI: "/users"},
		{method: "POST", target: "/users/", service: "user", requestURI: "/users/"},
		{method: "GET", target: "/users/42?fields=a&b=c", service: "user", requestURI: "/users/42?fields=a&b=c"},
		{method: "PATCH", target: "/products/p1", service: "product", requestURI: "/products/p1"},
		{method: "GET", target: "/orders?userId=u1&status=PAID", service: "order", requestURI: "/orders?userId=u1&status=PAID"},
		{method: "GET", target: "/payments/x", service: "payment", requestURI: "/payments/x"},
		{method: "GET", target: "/users/a%2Fb", service: "user", requestURI: "/users/a%2Fb"},
		// the seed's prefix form: prefix stripped
		{method: "GET", target: "/user/users/42", service: "user", requestURI: "/users/42"},
		{method: "POST", target: "/user/users", service: "user", requestURI: "/users"},
		{method: "GET", target: "/product/products?limit=5&after=p9", service: "product", requestURI: "/products?limit=5&after=p9"},
		{method: "DELETE", target: "/order/orders/o1", service: "order", requestURI: "/orders/o1"},
		{method: "GET", target: "/payment/payments?orderId=o1", service: "payment", requestURI: "/payments?orderId=o1"},
		{method: "GET", target: "/user/users/a%2Fb", service: "user", requestURI: "/users/a%2Fb"},
		// internal paths, in either form, and the services' own endpoints
		{method: "POST", target: "/internal/reservations"},
		{method: "DELETE", target: "/internal/reservations/o1"},
		{method: "POST", target: "/product/internal/reservations"},
		{method: "DELETE", target: "/product/internal/reservations/o1"},
		{method: "GET", target: "/products/../internal/reservations"},
		{method: "GET", target: "/user/readyz"},
		{method: "GET", target: "/order/metrics"},
		// unknown
		{method: "GET", target: "/"},
		{method: "GET", target: "/user"},
		{method: "GET", target: "/usersx"},
		{method: "GET", target: "/user/products/1"},
		{method: "GET", target: "/carts/1"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			resp, body := s.do(t, tt.method, tt.target, nil)
			if tt.service == "" {
				if resp.StatusCode != http.StatusNotFound {
					t.Fatalf("status %d, want 404; body %s", resp.StatusCode, body)
				}
				if e := decode[map[string]any](t, body); e["error"] == "" || e["error"] == nil {
					t.Fatalf("404 body %s has no error", body)
				}
				return
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d; body %s", resp.StatusCode, body)
			}
			e := decode[echo](t, body)
			if e.Service != tt.service || e.RequestURI != tt.requestURI || e.Method != tt.method {
				t.Fatalf("reached %s %s %s, want %s %s %s", e.Service, e.Method, e.RequestURI, tt.service, tt.method, tt.requestURI)
			}
		})
	}
	for name, u := range s.upstreams {
		if name != "user" && u.hits.Load() == 0 {
			t.Errorf("%s never reached", name)
		}
	}
}

func TestRateLimitIsExact(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.RateLimitRequests = 3; c.RateLimitWindow = time.Minute })
	for i := range 3 {
		resp, body := s.do(t, "GET", "/users", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d %s", i+1, resp.StatusCode, body)
		}
		checkRateLimitHeaders(t, resp, 2-i)
	}
	resp, body := s.do(t, "GET", "/user/users/1", nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("request 4: status %d, want 429", resp.StatusCode)
	}
	if got := decode[map[string]string](t, body); got["error"] != "Too many requests" || len(got) != 1 {
		t.Fatalf("429 body %s", body)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "20" { // one request every 60 s / 3
		t.Fatalf("Retry-After %q, want 20", ra)
	}
	checkRateLimitHeaders(t, resp, 0)
	if n := s.upstreams["user"].hits.Load(); n != 3 {
		t.Fatalf("user reached %d times, want 3", n)
	}
}

func checkRateLimitHeaders(t *testing.T, resp answer, remaining int) {
	t.Helper()
	if p := resp.Header.Get("RateLimit-Policy"); p != `"default";q=3;w=60` {
		t.Errorf("RateLimit-Policy %q", p)
	}
	want := `"default";r=` + string(rune('0'+remaining)) + ";t="
	if rl := resp.Header.Get("RateLimit"); !strings.HasPrefix(rl, want) {
		t.Errorf("RateLimit %q, want prefix %q", rl, want)
	}
}

// TestRateLimitHeadersReplaceTheService's: a service's own RateLimit fields, however many,
// never reach the client beside the gateway's; the client is told the gateway's limit alone.
func TestRateLimitHeadersReplaceTheService(t *testing.T) {
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h["Ratelimit-Policy"] = []string{`"svc";q=1;w=1`, `"svc2";q=2;w=2`}
		h["Ratelimit"] = []string{`"svc";r=0;t=1`, `"svc2";r=0;t=2`}
	}))
	t.Cleanup(svc.Close)
	s := newSuite(t, func(c *Config) { c.RateLimitRequests = 3; c.OrderServiceURL = svc.URL })
	resp, body := s.do(t, "GET", "/orders", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	if p := resp.Header.Values("RateLimit-Policy"); len(p) != 1 {
		t.Errorf("RateLimit-Policy fields %q, want the gateway's alone", p)
	}
	if rl := resp.Header.Values("RateLimit"); len(rl) != 1 {
		t.Errorf("RateLimit fields %q, want the gateway's alone", rl)
	}
	checkRateLimitHeaders(t, resp, 2)
}

// TestPanicAnswerCarriesRateLimitHeaders: the 500 of a panic recovered while a request is
// proxied carries the limit's headers and the request id, as every other answer does.
func TestPanicAnswerCarriesRateLimitHeaders(t *testing.T) {
	s := newSuiteOf(t, func(c *Config) { c.RateLimitRequests = 3 }, func(g *Gateway) {
		for i := range g.routes {
			if g.routes[i].svc.name == "order" {
				g.routes[i].svc.client.Dial = func(string) (net.Conn, error) { panic("dial") }
			}
		}
	})
	resp, body := s.do(t, "GET", "/orders", http.Header{"X-Request-Id": {"panic-1"}})
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d %s, want 500", resp.StatusCode, body)
	}
	if got := decode[map[string]string](t, body); got["error"] != "Internal server error" {
		t.Fatalf("500 body %s", body)
	}
	if id := resp.Header.Get("X-Request-ID"); id != "panic-1" {
		t.Errorf("X-Request-ID %q, want panic-1", id)
	}
	checkRateLimitHeaders(t, resp, 2)
}

func TestRateLimitClientAddress(t *testing.T) {
	tests := []struct {
		name       string
		trusted    string
		otherAllow bool // whether a second X-Forwarded-For address gets its own quota
	}{
		{name: "untrusted peer cannot reset its limit with X-Forwarded-For", trusted: "10.0.0.0/8", otherAllow: false},
		{name: "trusted proxy's X-Forwarded-For separates clients", trusted: "127.0.0.0/8,::1", otherAllow: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSuite(t, func(c *Config) { c.RateLimitRequests = 2; c.TrustedProxies = tt.trusted })
			alice := http.Header{"X-Forwarded-For": {"198.51.100.1"}}
			for range 2 {
				if resp, _ := s.do(t, "GET", "/orders", alice); resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d", resp.StatusCode)
				}
			}
			if resp, _ := s.do(t, "GET", "/orders", alice); resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("third request: status %d, want 429", resp.StatusCode)
			}
			bob := http.Header{"X-Forwarded-For": {"198.51.100.2"}}
			resp, body := s.do(t, "GET", "/orders", bob)
			if got := resp.StatusCode == http.StatusOK; got != tt.otherAllow {
				t.Fatalf("other X-Forwarded-For: status %d", resp.StatusCode)
			}
			if tt.otherAllow {
				if e := decode[echo](t, body); !strings.HasPrefix(e.ForwardedFor, "198.51.100.2, ") {
					t.Fatalf("service saw X-Forwarded-For %q, want the chain kept", e.ForwardedFor)
				}
			}
		})
	}
}

func TestUntrustedForwardedForIsNotPassedOn(t *testing.T) {
	s := newSuite(t, nil)
	_, body := s.do(t, "GET", "/users", http.Header{"X-Forwarded-For": {"6.6.6.6"}})
	if e := decode[echo](t, body); e.ForwardedFor != "127.0.0.1" {
		t.Fatalf("service saw X-Forwarded-For %q, want only the peer", e.ForwardedFor)
	}
}

// TestForwardingHeaders: what a trusted proxy says of the client's request (scheme, host)
// reaches the services; from anyone else, forwarding headers are replaced or dropped.
func TestForwardingHeaders(t *testing.T) {
	forged := http.Header{
		"X-Forwarded-Proto": {"https"}, "X-Forwarded-Host": {"shop.example"},
		"Forwarded": {"for=6.6.6.6"}, "X-Real-Ip": {"6.6.6.6"},
	}
	tests := []struct {
		name    string
		trusted string
		want    echo
	}{
		{"from a client", "", echo{ForwardedProto: "http", Forwarded: "", RealIP: ""}},
		{"from a trusted proxy", "127.0.0.0/8,::1", echo{ForwardedProto: "https", ForwardedHost: "shop.example", Forwarded: "for=6.6.6.6", RealIP: "6.6.6.6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSuite(t, func(c *Config) { c.TrustedProxies = tt.trusted })
			_, body := s.do(t, "GET", "/users", forged)
			e := decode[echo](t, body)
			if tt.want.ForwardedHost == "" {
				tt.want.ForwardedHost = strings.TrimPrefix(s.url, "http://") // the Host the client used
			}
			if e.ForwardedProto != tt.want.ForwardedProto || e.ForwardedHost != tt.want.ForwardedHost ||
				e.Forwarded != tt.want.Forwarded || e.RealIP != tt.want.RealIP {
				t.Errorf("service saw proto %q host %q Forwarded %q X-Real-IP %q; want %q %q %q %q",
					e.ForwardedProto, e.ForwardedHost, e.Forwarded, e.RealIP,
					tt.want.ForwardedProto, tt.want.ForwardedHost, tt.want.Forwarded, tt.want.RealIP)
			}
		})
	}
}

// TestRepeatedForwardingHeadersAreReplaced: a client that sends a forwarding header twice
// gets neither of its values through, in whatever case it spells the name.
func TestRepeatedForwardingHeadersAreReplaced(t *testing.T) {
	s := newSuite(t, nil)
	_, body := rawRequest(t, s.url, 0, "GET /users/1 HTTP/1.1\r\nHost: shop\r\n"+
		"X-Forwarded-Host: evil1\r\nX-Forwarded-Host: evil2\r\nX-Forwarded-Proto: https\r\nx-forwarded-proto: https\r\n\r\n")
	e := decode[echo](t, body)
	if h, p := e.Header.Values("X-Forwarded-Host"), e.Header.Values("X-Forwarded-Proto"); len(h) != 1 || h[0] != "shop" || len(p) != 1 || p[0] != "http" {
		t.Fatalf("service saw X-Forwarded-Host %q, X-Forwarded-Proto %q; want [shop], [http]", h, p)
	}
}

// TestUserinfoMakesNoAuthorization: userinfo in the Host or an absolute-form target is not
// turned into an Authorization header the client never sent.
func TestUserinfoMakesNoAuthorization(t *testing.T) {
	s := newSuite(t, nil)
	for _, head := range []string{
		"GET /users/1 HTTP/1.1\r\nHost: admin:secret@shop\r\n\r\n",
		"GET http://admin:secret@shop/users/1 HTTP/1.1\r\nHost: shop\r\n\r\n",
		"GET /users/1 HTTP/1.1\r\nHost: admin@shop\r\nConnection: Authorization\r\n\r\n",
	} {
		_, body := rawRequest(t, s.url, 0, head)
		if e := decode[echo](t, body); len(e.Header.Values("Authorization")) != 0 {
			t.Errorf("%q: service saw Authorization %q", head, e.Header.Values("Authorization"))
		}
	}
}

func TestHealthIsNotRateLimited(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.RateLimitRequests = 1 })
	for i := range 3 {
		if resp, body := s.do(t, "GET", "/health", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("/health %d: status %d %s", i, resp.StatusCode, body)
		}
	}
}

func TestServiceDown(t *testing.T) {
	// A port that was just free: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := newSuite(t, func(c *Config) { c.ProductServiceURL = "http://" + addr })

	resp, body := s.do(t, "GET", "/product/products/1", nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	got := decode[map[string]string](t, body)
	if got["error"] != "Service unavailable" || got["service"] != "product" || got["message"] == "" {
		t.Fatalf("body %s", body)
	}
	if strings.Contains(got["message"], "refused") || strings.Contains(got["message"], addr) {
		t.Fatalf("message leaks the network error: %q", got["message"])
	}
}

func TestServiceTooSlow(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.UpstreamTimeout = 200 * time.Millisecond })
	s.upstreams["order"].delay.Store(int64(2 * time.Second))
	start := time.Now()
	resp, body := s.do(t, "POST", "/orders", nil)
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504; body %s", resp.StatusCode, body)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("answered after %s, want about the 200ms timeout", took)
	}
	if got := decode[map[string]string](t, body); got["service"] != "order" || got["error"] == "" {
		t.Fatalf("body %s", body)
	}
}

// TestServiceClosedPooledConnections: a service that closed the gateway's kept-alive
// connections (as on shutdown, at every rolling update) costs no request, whatever its
// method, while a request the service received and then failed on is never sent twice.
func TestServiceClosedPooledConnections(t *testing.T) {
	s := newSuite(t, nil)
	order := s.upstreams["order"]
	methods := []string{"POST", "PATCH", "DELETE", "GET"}
	for round := range 3 {
		// Several requests at once leave several connections in the pool.
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() { s.do(t, "GET", "/orders/o1", nil) })
		}
		wg.Wait()
		order.srv.Config.SetKeepAlivesEnabled(false) // closes every idle connection
		order.srv.Config.SetKeepAlivesEnabled(true)
		time.Sleep(50 * time.Millisecond) // the closes reach the gateway's side
		for _, m := range methods {
			if resp, body := s.do(t, m, "/orders/o1", nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("round %d: %s after the service closed its idle connections: %d %s, want 200", round, m, resp.StatusCode, body)
			}
		}
	}

	// A connection idle past its last request's deadline is as good as any.
	s2 := newSuite(t, func(c *Config) { c.UpstreamTimeout = 200 * time.Millisecond })
	user := s2.upstreams["user"]
	s2.do(t, "GET", "/users/u1", nil)
	time.Sleep(300 * time.Millisecond)
	before := user.conns.Load()
	for _, m := range methods {
		if resp, body := s2.do(t, m, "/users/u1", nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s on a connection idle past its deadline: %d %s", m, resp.StatusCode, body)
		}
	}
	if n := user.conns.Load() - before; n != 0 {
		t.Errorf("%d new connections to the service: a connection idle past its deadline was taken for closed", n)
	}

	// A request the service received is not sent again, nor said not to have reached it: 502,
	// not 503 "cannot be reached", which invites sending it again.
	order.abort.Store(true)
	for _, m := range []string{"GET", "POST"} {
		before := order.hits.Load()
		if resp, body := s.do(t, m, "/orders/o1", nil); resp.StatusCode != http.StatusBadGateway {
			t.Fatalf("%s to a service that drops it: %d %s, want 502", m, resp.StatusCode, body)
		}
		if n := order.hits.Load() - before; n != 1 {
			t.Errorf("%s reached the service %d times, want once", m, n)
		}
	}
}

// TestServiceOverloaded: a request that finds every connection to its service busy waits
// a moment for one, then gets a 503 (the service is overloaded), not a 504.
func TestServiceOverloaded(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.MaxConnsPerService = 1; c.UpstreamTimeout = 5 * time.Second })
	s.upstreams["order"].delay.Store(int64(2500 * time.Millisecond))
	statuses := make(chan int, 2)
	for range 2 {
		go func() {
			resp, _ := s.do(t, "GET", "/orders/o1", nil)
			statuses <- resp.StatusCode
		}()
	}
	got := map[int]int{<-statuses: 1}
	got[<-statuses]++
	if got[http.StatusOK] != 1 || got[http.StatusServiceUnavailable] != 1 {
		t.Fatalf("statuses %v, want one 200 and one 503", got)
	}
}

// TestWriteTimeoutLeavesTheUpstreamTimeout checks HTTP_WRITE_TIMEOUT bounds writing the answer
// only: a service slower than it, within UPSTREAM_TIMEOUT, is still answered.
func TestWriteTimeoutLeavesTheUpstreamTimeout(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.WriteTimeout = 200 * time.Millisecond; c.UpstreamTimeout = 5 * time.Second })
	s.upstreams["order"].delay.Store(int64(time.Second))
	if resp, body := s.do(t, "GET", "/orders/o1", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200 from a service slower than the write timeout; body %s", resp.StatusCode, body)
	}
}

func TestHealth(t *testing.T) {
	s := newSuite(t, nil)
	resp, body := s.do(t, "GET", "/health", nil)
	rep := decode[healthReport](t, body)
	if resp.StatusCode != http.StatusOK || rep.Status != "healthy" || len(rep.Services) != 4 {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
	if time.Since(rep.Timestamp) > time.Minute {
		t.Fatalf("timestamp %s", rep.Timestamp)
	}
	if !strings.Contains(string(body), `"user":{"status":"up"}`) {
		t.Fatalf("body %s", body)
	}

	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store: a cache in front would serve an old report", cc)
	}

	s.upstreams["payment"].down.Store(true)
	resp, body = s.do(t, "GET", "/health", nil)
	rep = decode[healthReport](t, body)
	if resp.StatusCode != http.StatusServiceUnavailable || rep.Status != "degraded" ||
		rep.Services["payment"].Status != "down" || rep.Services["order"].Status != "up" {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q on 503, want no-store", cc)
	}

	// A service whose /readyz answers anything but 2xx (a 404 from a URL that names another
	// server, say) is down.
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	s = newSuite(t, func(c *Config) { c.UserServiceURL = notFound.URL })
	resp, body = s.do(t, "GET", "/health", nil)
	if rep := decode[healthReport](t, body); resp.StatusCode != http.StatusServiceUnavailable || rep.Services["user"].Status != "down" {
		t.Fatalf("/readyz answering 404: status %d body %s, want 503 with user down", resp.StatusCode, body)
	}
}

func TestHealthAnswersWithinTimeout(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.HealthTimeout = 200 * time.Millisecond })
	s.upstreams["user"].delay.Store(int64(5 * time.Second)) // accepts, never answers in time
	start := time.Now()
	resp, body := s.do(t, "GET", "/health", nil)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("/health took %s with a 200ms check timeout", took)
	}
	rep := decode[healthReport](t, body)
	if resp.StatusCode != http.StatusServiceUnavailable || rep.Services["user"].Status != "down" || rep.Services["product"].Status != "up" {
		t.Fatalf("status %d body %s", resp.StatusCode, body)
	}
}

func TestHealthIsCached(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.HealthCacheTTL = time.Hour })
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if resp, _ := s.do(t, "GET", "/health", nil); resp.StatusCode != http.StatusOK {
				t.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	s.upstreams["user"].down.Store(true)
	if resp, _ := s.do(t, "GET", "/health", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("cached report not served: status %d", resp.StatusCode)
	}
	for name, u := range s.upstreams {
		if n := u.readyz.Load(); n != 1 {
			t.Errorf("%s /readyz asked %d times for 21 /health calls, want 1", name, n)
		}
	}
}

// TestHealthDuringShutdown stops the gateway while a round of /readyz checks is under way. The
// /health request waiting for it is answered "degraded" at once, and the round, which goes on,
// must not use that request's context: the server resets it for another request once the
// handler has returned (the race detector reported the round's read of it).
func TestHealthDuringShutdown(t *testing.T) {
	var g *Gateway
	s := newSuiteOf(t, func(c *Config) { c.HealthTimeout = 5 * time.Second }, func(gw *Gateway) { g = gw })
	for _, u := range s.upstreams {
		u.delay.Store(int64(time.Second))
	}
	// A server of its own, on the suite's gateway, to stop while the round runs.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	base := s.cfg.Base
	base.ShutdownTimeout = testShutdownTimeout
	go func() { served <- ServeListener(ctx, ln, g.Handler(metrics.NewRegistry()), base, logging.Discard()) }()

	type result struct {
		status int
		body   []byte
		err    error
	}
	answered := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/health")
		if err != nil {
			answered <- result{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		answered <- result{resp.StatusCode, body, err}
	}()
	// Every service has been dialled: the round is under way, its checks waiting for answers.
	waitFor(t, 5*time.Second, s.every(func(u *upstream) bool { return u.conns.Load() > 0 }))
	cancel()

	res := <-answered
	if res.err != nil {
		t.Fatal(res.err)
	}
	if rep := decode[healthReport](t, res.body); res.status != http.StatusServiceUnavailable || rep.Status != "degraded" {
		t.Errorf("/health during shutdown: status %d body %s, want 503 degraded", res.status, res.body)
	}
	if err := <-served; err != nil {
		t.Errorf("gateway server: %v", err)
	}
	// The round ends by itself: every service is asked once.
	waitFor(t, 5*time.Second, s.every(func(u *upstream) bool { return u.readyz.Load() > 0 }))
}

func TestRequestID(t *testing.T) {
	s := newSuite(t, nil)
	tests := []struct {
		name, sent string
	}{
		{name: "kept", sent: "req-1234"},
		{name: "made when missing"},
		{name: "made when unsafe", sent: strings.Repeat("x", 200)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.sent != "" {
				h.Set("X-Request-ID", tt.sent)
			}
			resp, body := s.do(t, "GET", "/products", h)
			e := decode[echo](t, body)
			got := resp.Header.Values("X-Request-ID")
			if len(got) != 1 || got[0] == "" || got[0] != e.RequestID {
				t.Fatalf("answered X-Request-ID %q, service saw %q", got, e.RequestID)
			}
			if tt.sent != "" && len(tt.sent) <= 128 && got[0] != tt.sent {
				t.Fatalf("X-Request-ID %q, want %q kept", got[0], tt.sent)
			}
			if len(tt.sent) > 128 && got[0] == tt.sent {
				t.Fatal("unsafe X-Request-ID kept")
			}
		})
	}
}

// TestTraceparentContinued checks the service sees the client's trace continued: while no span
// is recorded the client's traceparent as it came; while spans are recorded one naming the
// gateway's server span as the parent.
func TestTraceparentContinued(t *testing.T) {
	const (
		traceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
		traceparent = "00-" + traceID + "-00f067aa0ba902b7-01"
	)
	for _, tt := range []struct {
		name      string
		recording bool
	}{
		{"export off", false},
		{"export on", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			exp := tracingtest.Use(t, tt.recording)
			if tracing.Recording() != tt.recording {
				t.Fatalf("tracing.Recording() = %v, want %v", tracing.Recording(), tt.recording)
			}
			s := newSuite(t, nil)
			_, body := s.do(t, "GET", "/payments", http.Header{"Traceparent": {traceparent}})
			got := decode[echo](t, body).Traceparent
			if !tt.recording {
				if got != traceparent {
					t.Fatalf("service saw traceparent %q, want %q as the client sent it", got, traceparent)
				}
				return
			}
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("recorded %d spans, want the gateway's server span", len(spans))
			}
			sc := spans[0].SpanContext
			if want := "00-" + traceID + "-" + sc.SpanID().String() + "-01"; got != want {
				t.Fatalf("service saw traceparent %q, want %q (the gateway's span as parent)", got, want)
			}
		})
	}
}

func TestMetricsPerRouteAndStatus(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.RateLimitRequests = 2 })
	for range 3 {
		s.do(t, "GET", "/users/1", nil)
	}
	s.do(t, "GET", "/nowhere", nil)
	for _, tt := range []struct {
		route, status string
		want          float64
	}{
		{route: "/users/", status: "200", want: 2},
		{route: "/users/", status: "429", want: 1},
		{route: "unmatched", status: "404", want: 1},
	} {
		got := counterValue(t, s.reg, "http_requests_total", map[string]string{"route": tt.route, "status": tt.status})
		if got != tt.want {
			t.Errorf("http_requests_total{route=%q,status=%q} = %v, want %v", tt.route, tt.status, got, tt.want)
		}
	}
	resp, body := s.do(t, "GET", "/metrics", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "http_requests_total") {
		t.Fatalf("/metrics: status %d", resp.StatusCode)
	}
}

// counterValue sums the counter samples of name whose labels include want.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue metric
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func TestOwnEndpoints(t *testing.T) {
	s := newSuite(t, nil)
	tests := []struct {
		method, target string
		status         int
	}{
		{method: "GET", target: "/healthz", status: http.StatusOK},
		{method: "GET", target: "/readyz", status: http.StatusOK},
		{method: "GET", target: "/metrics", status: http.StatusOK},
		{method: "POST", target: "/health", status: http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		resp, body := s.do(t, tt.method, tt.target, nil)
		if resp.StatusCode != tt.status {
			t.Errorf("%s %s: status %d, want %d; %s", tt.method, tt.target, resp.StatusCode, tt.status, body)
		}
	}
}

// TestForwarding checks what crosses the gateway besides the path: request bodies however the
// client sent them, HEAD answers without a body, and a client's Connection: close, which ends
// the client's connection but not the gateway's to the service.
func TestForwarding(t *testing.T) {
	s := newSuite(t, nil)
	t.Run("a chunked body arrives whole", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+"/orders", io.MultiReader(strings.NewReader(`{"userId":`), strings.NewReader(`"u1"}`)))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1 // unknown: sent chunked
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if e := decode[echo](t, body); e.Body != `{"userId":"u1"}` || e.Method != http.MethodPost {
			t.Fatalf("service saw %s %q", e.Method, e.Body)
		}
	})
	t.Run("a body larger than the gateway buffers streams through whole", func(t *testing.T) {
		big := strings.Repeat("p", 3*bufferedBodyBytes)
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+"/products", strings.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, body := readAnswer(t, resp)
		if e := decode[echo](t, body); e.Body != big {
			t.Fatalf("service got %d bytes of %d", len(e.Body), len(big))
		}
	})
	t.Run("Expect: 100-continue is met by the gateway", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+"/orders", strings.NewReader(`{"userId":"u2"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Expect", "100-continue")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if e := decode[echo](t, body); e.Body != `{"userId":"u2"}` || e.Expect != "" {
			t.Fatalf("service saw body %q and Expect %q", e.Body, e.Expect)
		}
	})
	t.Run("a large chunked answer arrives whole", func(t *testing.T) {
		big := strings.Repeat(`{"id":"p1","name":"Espresso cup"},`, 4000) // 140 KB, sent in pieces
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			for i := 0; i < len(big); i += 16 << 10 {
				_, _ = io.WriteString(w, big[i:min(i+16<<10, len(big))])
				_ = http.NewResponseController(w).Flush()
			}
		}))
		t.Cleanup(srv.Close)
		s := newSuite(t, func(c *Config) { c.ProductServiceURL = srv.URL })
		resp, body := s.do(t, http.MethodGet, "/products", nil)
		if resp.StatusCode != http.StatusOK || string(body) != big {
			t.Fatalf("status %d, %d bytes of %d", resp.StatusCode, len(body), len(big))
		}
	})
	t.Run("an answer over the limit is a 502", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write(make([]byte, maxResponseBodyBytes+1))
		}))
		t.Cleanup(srv.Close)
		s := newSuite(t, func(c *Config) { c.ProductServiceURL = srv.URL })
		resp, body := s.do(t, http.MethodGet, "/products", nil)
		if resp.StatusCode != http.StatusBadGateway || decode[map[string]string](t, body)["service"] != "product" {
			t.Fatalf("status %d, body %.200s; want 502 naming the product service", resp.StatusCode, body)
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		resp, body := s.do(t, http.MethodHead, "/products/p1", nil)
		if resp.StatusCode != http.StatusOK || len(body) != 0 {
			t.Fatalf("status %d, body %q", resp.StatusCode, body)
		}
	})
	t.Run("headers named in Connection stay on their hop, both ways", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "X-Up-Secret")
			w.Header().Set("X-Up-Secret", "s")
			w.Header().Set("Keep-Alive", "timeout=5")
			_, _ = io.WriteString(w, `{"secret":"`+r.Header.Get("X-Secret")+`","connection":"`+r.Header.Get("Connection")+`"}`)
		}))
		t.Cleanup(srv.Close)
		s := newSuite(t, func(c *Config) { c.UserServiceURL = srv.URL })
		resp, body := rawRequest(t, s.url, 0, "GET /users/1 HTTP/1.1\r\nHost: shop\r\nConnection: keep-alive, X-Secret\r\nX-Secret: hop\r\n\r\n")
		if got := decode[map[string]string](t, body); got["secret"] != "" || got["connection"] != "" {
			t.Errorf("the service saw X-Secret %q and Connection %q, meant for the gateway", got["secret"], got["connection"])
		}
		for _, h := range []string{"X-Up-Secret", "Keep-Alive"} {
			if v := resp.Header.Get(h); v != "" {
				t.Errorf("the client got %s: %q, meant for the gateway", h, v)
			}
		}
		if c := resp.Header.Get("Connection"); strings.Contains(c, "X-Up-Secret") {
			t.Errorf("the client got Connection: %q", c)
		}
	})
	t.Run("hop-by-hop headers stay on their hop, both ways", func(t *testing.T) {
		hop := []string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Upgrade"}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen := map[string]string{}
			for _, h := range hop {
				seen[h] = r.Header.Get(h)
				// A Trailer field would announce a trailer section (its own test has it).
				if h != "Trailer" && h != "Te" {
					w.Header().Set(h, "from the service")
				}
			}
			_ = json.NewEncoder(w).Encode(seen)
		}))
		t.Cleanup(srv.Close)
		s := newSuite(t, func(c *Config) { c.UserServiceURL = srv.URL })
		sent := http.Header{}
		for _, h := range hop {
			sent.Set(h, "from the client")
		}
		resp, body := s.do(t, http.MethodGet, "/users/1", sent)
		for h, v := range decode[map[string]string](t, body) {
			if v != "" {
				t.Errorf("the service got %s: %q", h, v)
			}
		}
		for _, h := range hop {
			if v := resp.Header.Get(h); v != "" {
				t.Errorf("the client got %s: %q", h, v)
			}
		}
	})
	t.Run("Connection: close stays on the client's side", func(t *testing.T) {
		resp, body := s.do(t, http.MethodGet, "/users/1", http.Header{"Connection": {"close"}})
		if e := decode[echo](t, body); e.Connection == "close" {
			t.Fatal("the service was asked to close the gateway's connection")
		}
		if !resp.Close {
			t.Fatal("the answer does not close the client's connection, which asked for it")
		}
	})
}

// TestServiceOnIPv6 checks a service reachable only over IPv6 (as in an IPv6-only cluster,
// where service names resolve to AAAA records alone) is proxied to.
func TestServiceOnIPv6(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"path":"`+r.URL.Path+`"}`)
	}))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	s := newSuite(t, func(c *Config) { c.PaymentServiceURL = srv.URL })
	resp, body := s.do(t, "GET", "/payments/p1", nil)
	if resp.StatusCode != http.StatusOK || string(body) != `{"path":"/payments/p1"}` {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
}

// TestSlowRequests: a request head must arrive within HTTP_READ_HEADER_TIMEOUT (408 JSON
// after it), while its body has the longer HTTP_READ_TIMEOUT.
func TestSlowRequests(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.ReadHeaderTimeout = 300 * time.Millisecond; c.ReadTimeout = 3 * time.Second })
	const pause = 500 * time.Millisecond
	t.Run("a head slower than the header timeout", func(t *testing.T) {
		resp, _ := rawRequest(t, s.url, pause, "POST /users HTTP/1.1\r\nHost: gateway\r\n", "Content-Length: 2\r\n\r\n{}")
		if resp.StatusCode != http.StatusRequestTimeout || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("status %d %q, want 408 JSON", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	})
	t.Run("a body slower than the header timeout, within the read timeout", func(t *testing.T) {
		resp, _ := rawRequest(t, s.url, pause, "POST /users HTTP/1.1\r\nHost: gateway\r\nContent-Length: 2\r\n\r\n{", "}")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
	})
}

// TestLargeBodiesHalfSentCostLittle: clients holding connections with a large body announced
// and barely begun cost the gateway kilobytes each, not the megabyte announced (the server
// streams bodies, reading a few kilobytes before the handler runs).
func TestLargeBodiesHalfSentCostLittle(t *testing.T) {
	s := newSuite(t, func(c *Config) { c.ReadTimeout = time.Minute })
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	const clients = 100
	for range clients {
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		head := "POST /products HTTP/1.1\r\nHost: gateway\r\nContent-Length: " + strconv.Itoa(web.MaxBodyBytes) + "\r\n\r\n"
		if _, err := io.WriteString(conn, head+strings.Repeat("x", 1024)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond) // the gateway has read what was sent
	grown := int64(heap()) - int64(before)
	if perClient := grown / clients; perClient > 64<<10 {
		t.Fatalf("heap grew %d KiB per half-sent request, want a few (the body is not buffered whole)", perClient>>10)
	}
}

// TestTargetsNetHTTPCannotRead: a path with a broken %-escape, which net/http (the
// gateway's own mux, the services) refuses before any handler runs, and a target that is no
// path at all, are answered in JSON with a request id, counted, and never reach a service.
func TestTargetsNetHTTPCannotRead(t *testing.T) {
	s := newSuite(t, nil)
	tests := []struct {
		line   string
		status int
		route  string
	}{
		{"GET /nothing/%ZZ HTTP/1.1", http.StatusBadRequest, "unmatched"},
		{"GET /health%zz HTTP/1.1", http.StatusBadRequest, "unmatched"},
		{"GET /x% HTTP/1.1", http.StatusBadRequest, "unmatched"},
		{"GET /users/%zz HTTP/1.1", http.StatusBadRequest, "/users/"},
		{"DELETE /user/users/1%2 HTTP/1.1", http.StatusBadRequest, "/user/users/"},
		{"CONNECT evil.example:443 HTTP/1.1", http.StatusNotFound, "unmatched"},
		{"CONNECT 10.0.0.1:443 HTTP/1.1", http.StatusNotFound, "unmatched"},
		{"CONNECT [2001:db8::1]:443 HTTP/1.1", http.StatusNotFound, "unmatched"},
		{"CONNECT evil.example HTTP/1.1", http.StatusNotFound, "unmatched"},
		{"CONNECT /users/1 HTTP/1.1", http.StatusNotFound, "/users/"},
		{"OPTIONS * HTTP/1.1", http.StatusNotFound, "unmatched"},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			before := counterValue(t, s.reg, "http_requests_total", map[string]string{"route": tt.route, "status": strconv.Itoa(tt.status)})
			resp, body := rawRequest(t, s.url, 0, tt.line+"\r\nHost: gateway\r\n\r\n")
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d %q, want %d JSON; body %s", resp.StatusCode, resp.Header.Get("Content-Type"), tt.status, body)
			}
			if e := decode[map[string]any](t, body); e["error"] == nil {
				t.Errorf("body %s has no error", body)
			}
			if resp.Header.Get(web.RequestIDHeader) == "" {
				t.Error("no X-Request-ID")
			}
			after := counterValue(t, s.reg, "http_requests_total", map[string]string{"route": tt.route, "status": strconv.Itoa(tt.status)})
			if after != before+1 {
				t.Errorf("http_requests_total{route=%q,status=\"%d\"} went from %v to %v, want one more", tt.route, tt.status, before, after)
			}
		})
	}
	for name, u := range s.upstreams {
		if n := u.hits.Load(); n != 0 {
			t.Errorf("%s reached %d times", name, n)
		}
	}
}

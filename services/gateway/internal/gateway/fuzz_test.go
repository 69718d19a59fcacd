package gateway

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
)

// recorded is what a recording upstream received of one request: the raw head as it came
// over the wire, and what net/http made of it.
type recorded struct {
	service    string
	resource   string
	head       []byte
	requestURI string
	urlPath    string
	body       []byte
}

// recorder collects what the recording upstreams received.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

func (r *recorder) take() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reqs
	r.reqs = nil
	return out
}

// tapConn keeps every byte read from it since the last take.
type tapConn struct {
	net.Conn
	mu  sync.Mutex
	buf []byte
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.buf = append(c.buf, p[:n]...)
	c.mu.Unlock()
	return n, err
}

func (c *tapConn) take() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.buf
	c.buf = nil
	return b
}

type tapListener struct{ net.Listener }

func (l tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tapConn{Conn: c}, nil
}

type tapKey struct{}

// newRecordingUpstream starts a net/http server (as the services are) that records each
// request other than /readyz and answers it 200 JSON.
func newRecordingUpstream(tb testing.TB, name string, rec *recorder) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, tapKey{}, c)
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tap := r.Context().Value(tapKey{}).(*tapConn)
			raw := tap.take()
			if r.URL.Path == "/readyz" {
				return
			}
			body, _ := io.ReadAll(r.Body)
			head := raw
			if i := bytes.Index(raw, []byte("\r\n\r\n")); i >= 0 {
				head = raw[:i]
			}
			rec.mu.Lock()
			rec.reqs = append(rec.reqs, recorded{
				service: name, resource: "/" + name + "s", head: bytes.Clone(head),
				requestURI: r.RequestURI, urlPath: r.URL.Path, body: body,
			})
			rec.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, "{}\n")
		}),
	}
	go func() { _ = srv.Serve(tapListener{ln}) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// fuzzGateway is one gateway in front of four recording upstreams, for every input.
type fuzzGateway struct {
	addr string
	rec  *recorder
}

func newFuzzGateway(tb testing.TB) *fuzzGateway {
	fg := &fuzzGateway{rec: &recorder{}}
	cfg := &Config{
		UserServiceURL:      newRecordingUpstream(tb, "user", fg.rec),
		ProductServiceURL:   newRecordingUpstream(tb, "product", fg.rec),
		OrderServiceURL:     newRecordingUpstream(tb, "order", fg.rec),
		PaymentServiceURL:   newRecordingUpstream(tb, "payment", fg.rec),
		RateLimitRequests:   1 << 30,
		RateLimitWindow:     time.Minute,
		RateLimitMaxClients: 1000,
		UpstreamTimeout:     5 * time.Second,
		MaxConnsPerService:  16,
		MaxConnsPerClient:   1 << 20,
		HealthTimeout:       time.Second,
	}
	cfg.ReadHeaderTimeout, cfg.ReadTimeout, cfg.WriteTimeout, cfg.IdleTimeout = 3*time.Second, 3*time.Second, 5*time.Second, 10*time.Second
	cfg.ShutdownTimeout = time.Second
	if err := cfg.Validate(); err != nil {
		tb.Fatal(err)
	}
	log := logging.NewTo(io.Discard, "gateway", slog.LevelError)
	g, err := New(cfg, log)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, g.Handler(metrics.NewRegistry()), cfg.Base, log) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
		g.Close()
	})
	fg.addr = ln.Addr().String()
	return fg
}

// fuzzAnswer is what the client read of one answer.
type fuzzAnswer struct {
	status      int
	contentType string
	body        []byte
}

// exchange sends raw on a connection of its own, half-closes it, and reads every answer.
func (fg *fuzzGateway) exchange(t *testing.T, raw []byte) (answers []fuzzAnswer, readErr error) {
	conn, err := net.Dial("tcp", fg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = conn.Write(raw)
	_ = conn.(*net.TCPConn).CloseWrite()
	br := bufio.NewReader(conn)
	for {
		if _, err := br.Peek(1); err != nil {
			if err != io.EOF {
				readErr = err
			}
			return answers, readErr
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return answers, err
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		answers = append(answers, fuzzAnswer{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: b})
		if err != nil {
			return answers, err
		}
	}
}

// headerLines splits a raw head (no request line) into name, value pairs.
func headerLines(head []byte) (line string, fields [][2]string) {
	lines := strings.Split(string(head), "\r\n")
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		fields = append(fields, [2]string{k, strings.Trim(v, " \t")})
	}
	return lines[0], fields
}

// hopOrRewritten are the fields the gateway drops or sets itself.
var hopOrRewritten = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true, "proxy-authenticate": true,
	"proxy-authorization": true, "te": true, "trailer": true, "upgrade": true, "transfer-encoding": true,
	"content-length": true, "host": true, "expect": true, "x-forwarded-for": true, "x-forwarded-host": true,
	"x-forwarded-proto": true, "forwarded": true, "x-real-ip": true, "x-request-id": true,
}

// FuzzGatewayRequest sends a request built of method, target, header lines and body to the
// gateway over loopback and checks what the client gets and what the services receive.
func FuzzGatewayRequest(f *testing.F) {
	seeds := []struct{ method, target, headers, body string }{
		{"GET", "/users/1", "", ""},
		{"POST", "/orders", "Content-Type: application/json", `{"userId":"u1"}`},
		{"GET", "/user/users/42?x=1", "X-Request-ID: abc", ""},
		{"GET", "/products/../internal/reservations", "", ""},
		{"GET", "/products/%2e%2e/internal/reservations", "", ""},
		{"GET", "/products/..%2finternal/reservations", "", ""},
		{"GET", "/product/products%2f..%2f..%2finternal", "", ""},
		{"GET", "//internal/reservations", "", ""},
		{"GET", "/users/a%2Fb", "Connection: X-Secret\nX-Secret: s", ""},
		{"GET", "/users/1", "X-Forwarded-For: 1.2.3.4\nForwarded: for=1.2.3.4\nX-Real-IP: 1.2.3.4", ""},
		{"GET", "http://evil/users/1", "Upgrade: websocket\nTe: trailers\nKeep-Alive: 5", ""},
		{"POST", "/users", "Transfer-Encoding: chunked", "3\r\nabc\r\n0\r\nX-Request-ID: t\r\n\r\n"},
		{"GET", "/users/%zz", "", ""},
		{"GET", "/health", "", ""},
		{"OPTIONS", "*", "", ""},
		{"GET", "/users/1#frag", "", ""},
		{"GET", "/users\\..\\internal", "", ""},
		{"GET", "/users/;/../internal", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.target, s.headers, s.body)
	}
	fg := newFuzzGateway(f)
	f.Fuzz(func(t *testing.T, method, target, headers, body string) {
		var b strings.Builder
		b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: gateway\r\n")
		framed := false
		var sent [][2]string
		if headers != "" {
			for l := range strings.SplitSeq(headers, "\n") {
				b.WriteString(l + "\r\n")
				k, v, _ := strings.Cut(l, ":")
				sent = append(sent, [2]string{k, strings.Trim(v, " \t")})
				lk := strings.ToLower(strings.TrimSpace(k))
				if lk == "content-length" || lk == "transfer-encoding" {
					framed = true
				}
			}
		}
		if !framed {
			b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
		}
		b.WriteString("\r\n" + body)
		fg.rec.take()
		answers, readErr := fg.exchange(t, []byte(b.String()))
		reqs := fg.rec.take()
		if os.Getenv("FUZZ_DEBUG") != "" {
			for i, a := range answers {
				t.Logf("answer %d: %d %s", i, a.status, a.body)
			}
			for _, r := range reqs {
				t.Logf("%s received %q head %q body %q", r.service, r.requestURI, r.head, r.body)
			}
		}
		if readErr != nil {
			t.Fatalf("reading the answers: %v (answers so far %d)", readErr, len(answers))
		}
		for i, a := range answers {
			if a.status >= 500 {
				t.Errorf("answer %d: status %d for the client's input; body %q", i, a.status, a.body)
			}
			if a.status >= 400 && !strings.HasPrefix(a.contentType, "application/json") {
				t.Errorf("answer %d: status %d with Content-Type %q, want JSON; body %q", i, a.status, a.contentType, a.body)
			}
		}
		for _, r := range reqs {
			clean := path.Clean(r.urlPath)
			if clean != r.resource && !strings.HasPrefix(clean, r.resource+"/") {
				t.Errorf("%s service received %q (path %q, clean %q), outside %s", r.service, r.requestURI, r.urlPath, clean, r.resource)
			}
			if dec, err := url.PathUnescape(r.requestURI); err == nil && strings.Contains(strings.ToLower(dec), "internal") && !strings.Contains(strings.ToLower(target), "internal") {
				t.Errorf("%s service received %q", r.service, r.requestURI)
			}
			_, fields := headerLines(r.head)
			var xff []string
			for _, kv := range fields {
				lk := strings.ToLower(kv[0])
				switch lk {
				case "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "upgrade", "forwarded", "x-real-ip", "expect":
					t.Errorf("%s service received %s: %q", r.service, kv[0], kv[1])
				case "x-forwarded-for":
					xff = append(xff, kv[1])
				}
			}
			if len(xff) != 1 || xff[0] != "127.0.0.1" {
				t.Errorf("%s service received X-Forwarded-For %q, want only the peer", r.service, xff)
			}
		}
		// The differential part: a single request the client framed itself that reached a
		// service arrives as sent, modulo the documented rewrites.
		if framed || len(reqs) != 1 || len(answers) != 1 || answers[0].status != 200 {
			return
		}
		r := reqs[0]
		if string(r.body) != body {
			t.Errorf("%s service received body %q, client sent %q", r.service, r.body, body)
		}
		line, fields := headerLines(r.head)
		if m, _, _ := strings.Cut(line, " "); m != method {
			t.Errorf("%s service received method %q, client sent %q", r.service, m, method)
		}
		got := map[string][]string{}
		for _, kv := range fields {
			got[strings.ToLower(kv[0])] = append(got[strings.ToLower(kv[0])], kv[1])
		}
		named := map[string]bool{}
		for _, kv := range sent {
			if strings.EqualFold(strings.TrimSpace(kv[0]), "connection") {
				for tok := range strings.SplitSeq(kv[1], ",") {
					named[strings.ToLower(strings.TrimSpace(tok))] = true
				}
			}
		}
		for _, kv := range sent {
			lk := strings.ToLower(kv[0])
			if hopOrRewritten[lk] || named[lk] || lk == "traceparent" || lk == "tracestate" {
				continue
			}
			found := false
			for _, v := range got[lk] {
				if v == kv[1] {
					found = true
				}
			}
			if !found {
				t.Errorf("%s service did not receive %q: %q (got %q)", r.service, kv[0], kv[1], got[lk])
			}
		}
		// The target: a plain one (no escapes, no dot segments, no fragment) arrives as sent,
		// the seed's prefix stripped.
		p, q, hasQ := strings.Cut(target, "?")
		if strings.HasPrefix(p, "/") && !strings.ContainsAny(target, "%#\\") && (path.Clean(p) == p || path.Clean(p)+"/" == p) {
			want := p
			if prefix := "/" + r.service; strings.HasPrefix(p, prefix+r.resource) {
				want = p[len(prefix):]
			}
			if hasQ {
				want += "?" + q
			}
			if r.requestURI != want {
				t.Errorf("%s service received %q, client sent %q (want %q)", r.service, r.requestURI, target, want)
			}
		}
	})
}

package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/shopkeeper-dev/shopkeeper/services/gateway/internal/clientip"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// service is one upstream of the gateway.
type service struct {
	// name is the service's name in errors, health and metrics: "user".
	name string
	// resource is the canonical path the service owns: "/users".
	resource string
	// prefix is the seed's prefix, stripped before forwarding: "/user".
	prefix string
	// base is the service's URL.
	base *url.URL
}

// services lists the upstreams in the order /health reports them.
func services(cfg *Config) ([]service, error) {
	list := []struct{ name, rawURL string }{
		{"user", cfg.UserServiceURL},
		{"product", cfg.ProductServiceURL},
		{"order", cfg.OrderServiceURL},
		{"payment", cfg.PaymentServiceURL},
	}
	out := make([]service, 0, len(list))
	for _, s := range list {
		u, err := parseServiceURL(s.rawURL)
		if err != nil {
			return nil, fmt.Errorf("%s service URL %q: %w", s.name, s.rawURL, err)
		}
		out = append(out, service{name: s.name, resource: "/" + s.name + "s", prefix: "/" + s.name, base: u})
	}
	return out, nil
}

// route is one entry of the route table: requests matching pattern go to svc, with strip
// removed from the front of the path.
type route struct {
	pattern string
	svc     *service
	strip   string
}

// routes is the route table. Each service owns its resource path, in the canonical form
// (/users, /users/…, path kept) and the seed's prefix form (/user/users, /user/users/…, the
// prefix stripped). Only resource paths are routed, so the services' /internal/… API and their
// own /healthz, /readyz and /metrics are never reachable through the gateway, in either form;
// every other path is unknown (404).
func routes(svcs []service) []route {
	var out []route
	for i := range svcs {
		s := &svcs[i]
		out = append(out,
			route{pattern: s.resource, svc: s},
			route{pattern: s.resource + "/", svc: s},
			route{pattern: s.prefix + s.resource, svc: s, strip: s.prefix},
			route{pattern: s.prefix + s.resource + "/", svc: s, strip: s.prefix},
		)
	}
	return out
}

// newTransport returns the transport shared by every proxy: keep-alive pools large enough for
// the load (net/http's default keeps 2 idle connections per host, which under load turns most
// requests into new connections), bounded connect and response-header waits, HTTP/1.1 only
// (the services speak plain HTTP/1.1), and no transparent gzip (the proxy passes bodies as
// they are, and the client's own Accept-Encoding through).
func newTransport(cfg *Config) *http.Transport {
	dialer := &net.Dialer{Timeout: min(cfg.UpstreamTimeout, 5*time.Second), KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 nil, // the services are reached directly, never through HTTP_PROXY
		DialContext:           dialer.DialContext,
		MaxIdleConns:          4 * cfg.MaxIdleConnsPerService,
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerService,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: cfg.UpstreamTimeout,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     false,
		DisableCompression:    true,
	}
}

// bufferPool recycles the 32 KiB buffers ReverseProxy copies bodies through, which it would
// otherwise allocate for every request.
type bufferPool struct{ pool sync.Pool }

const proxyBufferSize = 32 << 10

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any { return new([proxyBufferSize]byte) }}}
}

func (p *bufferPool) Get() []byte { return p.pool.Get().(*[proxyBufferSize]byte)[:] }

func (p *bufferPool) Put(b []byte) {
	if cap(b) == proxyBufferSize {
		p.pool.Put((*[proxyBufferSize]byte)(b[:proxyBufferSize]))
	}
}

// newProxy returns the reverse proxy of one route.
func newProxy(r route, transport http.RoundTripper, buffers httputil.BufferPool, ips *clientip.Resolver, log *slog.Logger) *httputil.ReverseProxy {
	svc := r.svc
	propagator := otel.GetTextMapPropagator()
	return &httputil.ReverseProxy{
		Transport:  transport,
		BufferPool: buffers,
		Rewrite: func(pr *httputil.ProxyRequest) {
			if r.strip != "" {
				stripPrefix(pr.Out.URL, r.strip)
			}
			pr.SetURL(svc.base)
			setForwarded(pr, ips)
			// The incoming traceparent, tracestate and baggage are already among the copied
			// headers, and that is the whole of continuing the trace while no span is recorded.
			// When spans are recorded, the gateway's server span replaces them, so the service's
			// span is its child.
			if tracing.Recording() {
				propagator.Inject(pr.Out.Context(), propagation.HeaderCarrier(pr.Out.Header))
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			// The request-id middleware already set the gateway's answer's X-Request-ID; the
			// service echoes the same id, and ReverseProxy would add it a second time.
			delete(resp.Header, requestIDKey)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			upstreamError(w, req, svc.name, err, log)
		},
	}
}

// requestIDKey is web.RequestIDHeader as the header map holds it.
var requestIDKey = http.CanonicalHeaderKey(web.RequestIDHeader)

// stripPrefix removes prefix (plain ASCII, so the same in the escaped form) from u's path.
func stripPrefix(u *url.URL, prefix string) {
	u.Path = strings.TrimPrefix(u.Path, prefix)
	if u.RawPath != "" {
		u.RawPath = strings.TrimPrefix(u.RawPath, prefix)
	}
}

// setForwarded sets X-Forwarded-For, -Host and -Proto. A chain that came from a trusted proxy
// is kept and extended; one from anyone else is dropped, so the services never see a forged
// hop as if the gateway had vouched for it.
func setForwarded(pr *httputil.ProxyRequest, ips *clientip.Resolver) {
	proto := "http"
	if pr.In.TLS != nil {
		proto = "https"
	}
	// One backing array for the three values; each header gets a capacity-1 slice of it, so
	// an Add to one of them copies instead of writing into the next.
	vals := [...]string{pr.In.Host, proto, ""}
	h := pr.Out.Header
	h["X-Forwarded-Host"] = vals[0:1:1]
	h["X-Forwarded-Proto"] = vals[1:2:2]
	if peer, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
		vals[2] = peer
		if chain := pr.In.Header["X-Forwarded-For"]; len(chain) > 0 && ips.PeerTrusted(pr.In) {
			vals[2] = strings.Join(chain, ", ") + ", " + peer
		}
		h["X-Forwarded-For"] = vals[2:3:3]
	}
}

// errorBody is the JSON the gateway answers when a service fails; the message never carries
// the underlying network error, which is logged instead.
type errorBody struct {
	Error   string `json:"error"`
	Service string `json:"service"`
	Message string `json:"message"`
}

// statusClientClosedRequest is recorded when the client went away before the service answered
// (nginx's 499): nobody reads the answer, and it is neither the service's fault nor ours.
const statusClientClosedRequest = 499

// upstreamError answers for a service that could not be reached (503) or did not answer in
// time (504).
func upstreamError(w http.ResponseWriter, r *http.Request, svc string, err error, log *slog.Logger) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		w.WriteHeader(statusClientClosedRequest)
		return
	}
	if isTimeout(err) {
		log.WarnContext(r.Context(), "service timed out", "upstream", svc, "err", err)
		web.Respond(w, http.StatusGatewayTimeout, errorBody{
			Error:   "Gateway timeout",
			Service: svc,
			Message: "the " + svc + " service did not answer in time",
		})
		return
	}
	log.WarnContext(r.Context(), "service unavailable", "upstream", svc, "err", err)
	web.Respond(w, http.StatusServiceUnavailable, errorBody{
		Error:   "Service unavailable",
		Service: svc,
		Message: "the " + svc + " service cannot be reached",
	})
}

// isTimeout tells a service that accepted the request but did not answer in time from one that
// could not be reached at all: a connect timeout is the latter.
func isTimeout(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

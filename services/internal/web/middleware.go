package web

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/metrics"
)

// RequestIDHeader carries the request id in and out of every service.
const RequestIDHeader = "X-Request-ID"

// requestIDKey is http.CanonicalHeaderKey(RequestIDHeader): indexing the header map
// with it spares Get and Set their per-call canonicalisation.
var requestIDKey = http.CanonicalHeaderKey(RequestIDHeader)

type forwardedIDKey struct{}

// RequestID returns the request id of ctx: the one given to WithRequestID, else that of
// the request being served, else "".
func RequestID(ctx context.Context) string {
	if id, ok := ctx.Value(forwardedIDKey{}).(string); ok {
		return id
	}
	if st := stateOf(ctx); st != nil {
		return st.id
	}
	return ""
}

// WithRequestID returns ctx carrying id, so a client can forward it.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, forwardedIDKey{}, id)
}

// Logger returns the request's logger (it carries request_id and, when traced,
// trace_id), or slog.Default() outside a request. It is made on each call, for the
// uncommon lines a handler logs: the access log line adds the same attributes itself.
func Logger(ctx context.Context) *slog.Logger {
	st := stateOf(ctx)
	if st == nil {
		return slog.Default()
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return st.logger.With(slog.String("request_id", st.id), slog.String("trace_id", sc.TraceID().String()))
	}
	return st.logger.With(slog.String("request_id", st.id))
}

// LoggerFor returns log with what ties a line to the work ctx belongs to: the request id
// of the request being served or forwarded (RequestID) and the trace id of ctx's span
// context, each when there is one. It is for the lines a service logs about a request or a
// delivery beside its access line and its consumer's lines, so that they name the same
// request and trace; outside any, it returns log.
func LoggerFor(ctx context.Context, log *slog.Logger) *slog.Logger {
	var attrs []any
	if id := RequestID(ctx); id != "" {
		attrs = append(attrs, slog.String("request_id", id))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
	}
	if attrs == nil {
		return log
	}
	return log.With(attrs...)
}

// requestID keeps a sane incoming X-Request-ID or makes one (and sets it on r, for a
// proxy to forward), returns it in the response and returns it.
func requestID(w http.ResponseWriter, r *http.Request) string {
	v := r.Header[requestIDKey]
	if len(v) == 0 || !ValidRequestID(v[0]) {
		v = []string{NewRequestID()}
		r.Header[requestIDKey] = v
	}
	// The response shares the request's value; a capacity of 1 makes an Add on either
	// side copy instead of writing into the other's.
	w.Header()[requestIDKey] = v[:1:1]
	return v[0]
}

// ValidRequestID accepts what is safe to log and echo: 1-128 visible ASCII characters.
// An incoming X-Request-ID that fails it is replaced by NewRequestID.
func ValidRequestID[S string | []byte](id S) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := range len(id) {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// NewRequestID returns a new request id: 32 random hex digits. An id must be unique, not
// secret, so it comes from math/rand/v2's generator (ChaCha8, seeded by the runtime from the
// system's entropy, per thread): no system call per request, as crypto/rand makes.
func NewRequestID() string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	var h [32]byte
	hex.Encode(h[:], b[:])
	return string(h[:])
}

// HTTPMetrics are the RED metrics of an HTTP server: http_requests_total by method, route
// and status, and http_request_duration_seconds by method and route. Every server of the
// suite records them through this type, so the series are the same everywhere.
type HTTPMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// series caches the children of requests and duration by seriesKey: the few label
	// sets a server sees are looked up once, not hashed and validated on every request.
	series sync.Map
}

type seriesKey struct {
	method, route string
	status        int
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// NewHTTPMetrics registers the metrics on reg (sharing them with another server's on the
// same registry) and returns them; a nil reg returns nil, which records nothing.
func NewHTTPMetrics(reg prometheus.Registerer) *HTTPMetrics {
	if reg == nil {
		return nil
	}
	return &HTTPMetrics{
		requests: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total",
			Help: "HTTP requests served, by method, route pattern and status code.",
		}, []string{"method", "route", "status"})),
		duration: metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_request_duration_seconds",
			Help:    "Time to serve HTTP requests, by method and route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"})),
	}
}

// StandardMethods are the HTTP methods of RFC 9110 and PATCH.
var StandardMethods = [...]string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace,
}

// otherMethod is the method label of every method not in StandardMethods.
const otherMethod = "other"

// metricMethod is the method label: the client chooses the method, so anything but the
// standard ones is counted as otherMethod, and the number of series stays bounded.
func metricMethod(method string) string {
	for _, m := range StandardMethods {
		if method == m {
			return m
		}
	}
	return otherMethod
}

// Record counts one request and observes its duration; route is the pattern that matched
// (a bounded set), never the path.
func (m *HTTPMetrics) Record(method, route string, status int, elapsed time.Duration) {
	if m == nil {
		return
	}
	method = metricMethod(method)
	key := seriesKey{method: method, route: route, status: status}
	v, ok := m.series.Load(key)
	if !ok {
		v, _ = m.series.LoadOrStore(key, &series{
			requests: m.requests.WithLabelValues(method, route, strconv.Itoa(status)),
			duration: m.duration.WithLabelValues(method, route),
		})
	}
	s := v.(*series)
	s.requests.Inc()
	s.duration.Observe(elapsed.Seconds())
}

// quietRoutes are probes and scrapes: logged at debug level so they do not drown the log.
var quietRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// accessLevel is the level of the access-log lines of route: debug for probes and scrapes,
// info for the rest.
func accessLevel(route string) slog.Level {
	if quietRoutes[route] {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// Access is what the metrics and the access log say of one served request.
type Access struct {
	RequestID string
	TraceID   string // "" when the request is not traced
	Method    string
	Route     string
	Path      string
	Status    int
	Bytes     int64 // of the answer's body; Served counts none for a HEAD, whose body is not sent
	Duration  time.Duration
}

// Served records a served request: it counts it in m and writes its access-log line, in the
// one format of every server's access log, at the level of its route. Every server of the
// suite, net/http's (observe) and the gateway's own, records its requests here.
func Served(ctx context.Context, logger *slog.Logger, m *HTTPMetrics, a *Access) {
	if a.Method == http.MethodHead {
		a.Bytes = 0 // what a handler wrote is dropped: the answer to a HEAD has no body
	}
	m.Record(a.Method, a.Route, a.Status, a.Duration)
	level := accessLevel(a.Route)
	if !logger.Enabled(ctx, level) {
		return
	}
	// The record is made here, with no caller's program counter: a logger looks one up for
	// every line (runtime.Callers), for a source this line does not show, and would name
	// this function anyway.
	r := slog.NewRecord(time.Now(), level, "request", 0)
	// request_id and trace_id first, where a logger made by Logger has them.
	r.AddAttrs(slog.String("request_id", a.RequestID))
	if a.TraceID != "" {
		r.AddAttrs(slog.String("trace_id", a.TraceID))
	}
	r.AddAttrs(
		slog.String("method", a.Method),
		slog.String("route", a.Route),
		slog.String("path", a.Path),
		slog.Int("status", a.Status),
		slog.Int64("bytes", a.Bytes),
		slog.Duration("duration", a.Duration),
	)
	_ = logger.Handler().Handle(ctx, r) // a line that cannot be written is lost, as with LogAttrs
}

// observe writes one access-log line per request and records its metrics.
func observe(next http.Handler, m *HTTPMetrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx := r.Context()
		st := stateOf(ctx)
		sw := &st.w
		sw.ResponseWriter = w
		next.ServeHTTP(sw, r)

		a := Access{
			RequestID: st.id, Method: r.Method, Route: st.route, Path: r.URL.Path,
			Status: sw.Status(), Bytes: sw.bytes, Duration: time.Since(start),
		}
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			a.TraceID = sc.TraceID().String()
		}
		Served(ctx, st.logger, m, &a)
	})
}

// recoverPanics turns a handler's panic into a logged 500 JSON answer, so one bad
// request never takes the process down. http.ErrAbortHandler is let through: it is
// net/http's way to abort a response on purpose.
func recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler { //nolint:errorlint // net/http panics with this exact value
				panic(v)
			}
			Logger(r.Context()).Error("panic serving request",
				slog.String("panic", fmt.Sprint(v)),
				slog.String("stack", strings.TrimSpace(string(debug.Stack()))))
			if sw, ok := w.(*statusWriter); !ok || sw.status == 0 {
				Respond(w, http.StatusInternalServerError, ErrorBody{Error: internalErrorMessage})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// statusWriter records the status and size of a response. It unwraps for
// http.ResponseController and passes Flush on, so streaming and proxying keep working.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush sends buffered data to the client.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Status is the status sent, 200 when the handler wrote nothing.
func (w *statusWriter) Status() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

package web_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/logging"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing/tracingtest"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// newTestMux serves GET and DELETE /things/{id}, a panicking route and a route that
// reports its request id, logging into the returned buffer.
func newTestMux(t *testing.T, reg prometheus.Registerer) (*web.Mux, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	mux := web.NewMux(logging.NewTo(&logs, "test", slog.LevelDebug), reg)
	mux.HandleFunc("GET /things/{id}", func(w http.ResponseWriter, r *http.Request) {
		web.Respond(w, http.StatusOK, map[string]string{"id": r.PathValue("id")})
	})
	mux.HandleFunc("DELETE /things/{id}", func(w http.ResponseWriter, _ *http.Request) {
		web.Respond(w, http.StatusNoContent, nil)
	})
	mux.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	mux.HandleFunc("GET /id", func(w http.ResponseWriter, r *http.Request) {
		web.Respond(w, http.StatusOK, map[string]string{"id": web.RequestID(r.Context())})
	})
	return mux, &logs
}

func serve(h http.Handler, method, target string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func errorOf(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var body web.ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q is not a JSON error: %v", rec.Body, err)
	}
	return body.Error
}

func TestMuxRouting(t *testing.T) {
	mux, _ := newTestMux(t, nil)
	tests := []struct {
		method, target string
		status         int
		allow          string
		errMsg         string
	}{
		{"GET", "/things/42", 200, "", ""},
		{"DELETE", "/things/42", 204, "", ""},
		{"GET", "/nothing", 404, "", "Not found"},
		{"GET", "/things", 404, "", "Not found"},
		{"PUT", "/things/42", 405, "DELETE, GET, HEAD", "Method not allowed"},
		{"POST", "/panic", 405, "GET, HEAD", "Method not allowed"},
		// Unclean paths are unknown, not redirected (ServeMux would answer 301 to the clean one).
		{"GET", "/things/.", 404, "", "Not found"},
		{"DELETE", "/things/42/..", 404, "", "Not found"},
		{"GET", "/things//42", 404, "", "Not found"},
		{"GET", "/nothing/../things/42", 404, "", "Not found"},
		// Targets that are no path: an authority (CONNECT), the server itself (OPTIONS *).
		{"CONNECT", "example.com:443", 404, "", "Not found"},
		{"OPTIONS", "*", 404, "", "Not found"},
		// A target in absolute form is its path, and one without a path is "/" (ServeMux
		// would redirect there, in HTML).
		{"GET", "http://example.com/things/42", 200, "", ""},
		{"GET", "http://example.com", 404, "", "Not found"},
		{"DELETE", "http://example.com?x=1", 404, "", "Not found"},
		// A parameter the route does not take is ignored, given once or more (web.Query
		// refuses one it takes given twice).
		{"GET", "/things/42?v=1", 200, "", ""},
		{"GET", "/things/42?v=1&v=2", 200, "", ""},
		{"GET", "/nothing?limit=1&limit=2", 404, "", "Not found"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			rec := serve(mux, tt.method, tt.target)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", rec.Code, tt.status, rec.Body)
			}
			if got := rec.Header().Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
			if tt.errMsg != "" {
				if got := errorOf(t, rec); got != tt.errMsg {
					t.Errorf("error = %q, want %q", got, tt.errMsg)
				}
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	mux, logs := newTestMux(t, nil)
	tests := []struct {
		name, incoming string
		kept           bool
	}{
		{"kept", "abc-123", true},
		{"made when missing", "", false},
		{"made when unprintable", "bad id\x01", false},
		{"made when too long", strings.Repeat("a", 129), false},
		{"kept at 128 characters", strings.Repeat("a", 128), true},
		// Visible ASCII only: a space, DEL or a letter beyond ASCII is no part of an id.
		{"made when it holds a space", "bad id", false},
		{"made when it holds DEL", "bad-id\x7f", false},
		{"made when it holds non-ASCII", "bad-id-\u00e9", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs.Reset()
			rec := serve(mux, "GET", "/id", "X-Request-ID", tt.incoming)
			got := rec.Header().Get("X-Request-ID")
			var body map[string]string
			_ = json.Unmarshal(rec.Body.Bytes(), &body)
			switch {
			case tt.kept && got != tt.incoming:
				t.Errorf("X-Request-ID = %q, want %q", got, tt.incoming)
			case !tt.kept && (len(got) != 32 || got == tt.incoming):
				t.Errorf("X-Request-ID = %q, want a new 32-hex id", got)
			}
			if body["id"] != got {
				t.Errorf("handler saw id %q, response carries %q", body["id"], got)
			}
			line := accessLine(t, logs)
			if line["request_id"] != got || line["route"] != "/id" || line["method"] != "GET" ||
				line["status"] != float64(200) || line["duration"] == nil {
				t.Errorf("access log line = %v", line)
			}
		})
	}
}

// TestAccessLineBytes: the access line counts the bytes of the answer's body sent, none for a
// HEAD, whose handler writes a body that is dropped.
func TestAccessLineBytes(t *testing.T) {
	mux, logs := newTestMux(t, nil)
	for _, method := range []string{"GET", "HEAD"} {
		logs.Reset()
		rec := serve(mux, method, "/things/1")
		want := float64(rec.Body.Len())
		if method == "HEAD" {
			want = 0
		}
		if line := accessLine(t, logs); line["bytes"] != want {
			t.Errorf("%s: access-log bytes %v, want %v", method, line["bytes"], want)
		}
	}
}

// accessLine returns the access-log line in logs.
func accessLine(t *testing.T, logs *bytes.Buffer) map[string]any {
	t.Helper()
	return logLine(t, logs, "request")
}

// logLine returns the first line in logs with message msg.
func logLine(t *testing.T, logs *bytes.Buffer, msg string) map[string]any {
	t.Helper()
	for l := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", l, err)
		}
		if m["msg"] == msg {
			return m
		}
	}
	t.Fatalf("no %q line in %q", msg, logs)
	return nil
}

func TestPanicRecovery(t *testing.T) {
	mux, logs := newTestMux(t, nil)
	rec := serve(mux, "GET", "/panic")
	if rec.Code != 500 || errorOf(t, rec) != "Internal server error" {
		t.Fatalf("GET /panic = %d %s", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), `"panic":"boom"`) || !strings.Contains(logs.String(), "goroutine") {
		t.Errorf("panic and stack not logged: %s", logs)
	}
	if line := accessLine(t, logs); line["status"] != float64(500) {
		t.Errorf("access log status = %v, want 500", line["status"])
	}
	// The server still serves.
	if rec := serve(mux, "GET", "/things/1"); rec.Code != 200 {
		t.Errorf("after a panic GET /things/1 = %d", rec.Code)
	}
}

// TestPanicAfterTheAnswerStarted: a handler that panics once it has begun its answer keeps
// that answer as it is: no second status, no error JSON appended to what it wrote.
func TestPanicAfterTheAnswerStarted(t *testing.T) {
	mux, logs := newTestMux(t, nil)
	mux.HandleFunc("GET /half", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("partial"))
		panic("boom")
	})
	rec := serve(mux, "GET", "/half")
	if rec.Code != 200 || rec.Body.String() != "partial" {
		t.Errorf("GET /half = %d %q, want the 200 and the body the handler wrote, nothing added", rec.Code, rec.Body)
	}
	if !strings.Contains(logs.String(), `"panic":"boom"`) {
		t.Errorf("panic not logged: %s", logs)
	}
}

// TestAbortHandlerIsLetThrough: http.ErrAbortHandler, net/http's way for a handler to abort
// its answer on purpose, is not recovered: net/http gets it and breaks the connection off, so
// the client does not take a cut answer for a whole one. It is no failure to log.
func TestAbortHandlerIsLetThrough(t *testing.T) {
	mux, logs := newTestMux(t, nil)
	mux.HandleFunc("GET /abort", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	var got any
	func() {
		defer func() { got = recover() }()
		serve(mux, "GET", "/abort")
	}()
	if got != http.ErrAbortHandler { //nolint:errorlint // net/http panics with this exact value
		t.Errorf("panic out of the mux = %v, want http.ErrAbortHandler", got)
	}
	if strings.Contains(logs.String(), "panic serving request") {
		t.Error("an aborted answer was logged as a panic")
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	mux, _ := newTestMux(t, reg)
	serve(mux, "GET", "/things/1")
	serve(mux, "GET", "/things/2")
	serve(mux, "GET", "/nowhere")
	// Methods a client makes up share one label value, so they cannot grow the series.
	serve(mux, "BREW", "/nowhere")
	serve(mux, "FROB", "/nowhere")
	// A second mux on the same registry (as tests do) shares the collectors.
	mux2, _ := newTestMux(t, reg)
	serve(mux2, "GET", "/things/3")

	want := `
# HELP http_requests_total HTTP requests served, by method, route pattern and status code.
# TYPE http_requests_total counter
http_requests_total{method="GET",route="/things/{id}",status="200"} 3
http_requests_total{method="GET",route="unmatched",status="404"} 1
http_requests_total{method="other",route="unmatched",status="404"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "http_requests_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "http_request_duration_seconds"); n != 3 {
		t.Errorf("latency histograms = %d, want 3 (one per method and route)", n)
	}
}

// TestTraceContextMadeWhenNoneCame: with no span recorded, a request that brings no
// traceparent gets a trace of its own, not sampled, which its log lines and its calls (and
// the events it writes) carry; two requests get two traces.
func TestTraceContextMadeWhenNoneCame(t *testing.T) {
	tracingtest.Use(t, false)
	var logs bytes.Buffer
	mux := web.NewMux(logging.NewTo(&logs, "test", slog.LevelInfo), nil)
	var forwarded []string
	mux.HandleFunc("GET /things/{id}", func(w http.ResponseWriter, r *http.Request) {
		h := http.Header{}
		otel.GetTextMapPropagator().Inject(r.Context(), propagation.HeaderCarrier(h))
		forwarded = append(forwarded, h.Get("traceparent"))
		web.Respond(w, http.StatusOK, nil)
	})
	serve(mux, "GET", "/things/1")
	serve(mux, "GET", "/things/2")
	if len(forwarded) != 2 || forwarded[0] == forwarded[1] {
		t.Fatalf("forwarded traceparents %q, want two different ones", forwarded)
	}
	for _, tp := range forwarded {
		parts := strings.Split(tp, "-")
		if len(parts) != 4 || len(parts[1]) != 32 || parts[3] != "00" {
			t.Errorf("forwarded traceparent %q, want a trace id, not sampled", tp)
			continue
		}
		if !strings.Contains(logs.String(), `"trace_id":"`+parts[1]+`"`) {
			t.Errorf("no log line names trace %s: %s", parts[1], logs.String())
		}
	}
}

func TestTraceContextContinued(t *testing.T) {
	const (
		traceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
		parentID = "00f067aa0ba902b7"
	)
	tests := []struct {
		name      string
		recording bool // a tracer provider is installed, as when export is on
	}{
		{"export off", false},
		{"export on", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp := tracingtest.Use(t, tt.recording)
			if tracing.Recording() != tt.recording {
				t.Fatalf("tracing.Recording() = %v, want %v", tracing.Recording(), tt.recording)
			}

			var logs bytes.Buffer
			mux := web.NewMux(logging.NewTo(&logs, "test", slog.LevelInfo), nil)
			var forwarded http.Header
			mux.HandleFunc("GET /things/{id}", func(w http.ResponseWriter, r *http.Request) {
				// What a client or proxy does with the request's context.
				forwarded = http.Header{}
				otel.GetTextMapPropagator().Inject(r.Context(), propagation.HeaderCarrier(forwarded))
				web.Logger(r.Context()).Info("handler line")
				web.Respond(w, http.StatusOK, nil)
			})
			rec := serve(mux, "GET", "/things/7", "traceparent", "00-"+traceID+"-"+parentID+"-01")

			// The outgoing traceparent continues the incoming trace: from the incoming span
			// itself when no span is recorded, from the server span when one is.
			parts := strings.Split(forwarded.Get("traceparent"), "-")
			if len(parts) != 4 || parts[1] != traceID || parts[3] != "01" {
				t.Fatalf("forwarded traceparent = %q, want trace %s continued, sampled", forwarded.Get("traceparent"), traceID)
			}
			spans := exp.GetSpans()
			if !tt.recording {
				if parts[2] != parentID {
					t.Errorf("forwarded parent span = %s, want the incoming %s", parts[2], parentID)
				}
				if len(spans) != 0 {
					t.Errorf("spans = %d, want none", len(spans))
				}
			} else {
				if len(spans) != 1 {
					t.Fatalf("spans = %d, want 1", len(spans))
				}
				if got := spans[0].Parent.SpanID().String(); got != parentID {
					t.Errorf("server span parent = %s, want the incoming %s", got, parentID)
				}
				if got := spans[0].SpanContext.SpanID().String(); parts[2] != got {
					t.Errorf("forwarded parent span = %s, want the server span %s", parts[2], got)
				}
				if spans[0].Name != "GET /things/{id}" {
					t.Errorf("span name = %q, want the method and route", spans[0].Name)
				}
			}

			// Both the handler's line and the access log line name the request and trace.
			requestID := rec.Header().Get("X-Request-ID")
			for _, msg := range []string{"handler line", "request"} {
				line := logLine(t, &logs, msg)
				if line["request_id"] != requestID || line["trace_id"] != traceID {
					t.Errorf("%q line has request_id %v, trace_id %v; want %s, %s",
						msg, line["request_id"], line["trace_id"], requestID, traceID)
				}
			}
		})
	}
}

// A span's name is the method and the route, and the client chooses the method: one that
// is not standard is named "HTTP", so that clients cannot make a span name per request.
func TestSpanNamesAreBounded(t *testing.T) {
	exp := tracingtest.Use(t, true)
	mux := web.NewMux(logging.Discard(), nil)
	mux.HandleFunc("/things/{id}", func(w http.ResponseWriter, _ *http.Request) { web.Respond(w, http.StatusOK, nil) })
	tests := []struct{ method, path, want string }{
		{"GET", "/things/7", "GET /things/{id}"},
		{"PATCH", "/things/7", "PATCH /things/{id}"},
		{"ZZ110699", "/things/7", "HTTP /things/{id}"},
		{"GET", "/nothing/here", "GET"},
		{"YY3", "/nothing/here", "HTTP"},
	}
	for _, tt := range tests {
		exp.Reset()
		serve(mux, tt.method, tt.path)
		spans := exp.GetSpans()
		if len(spans) != 1 || spans[0].Name != tt.want {
			names := make([]string, len(spans))
			for i, s := range spans {
				names[i] = s.Name
			}
			t.Errorf("%s %s: spans %q, want one named %q", tt.method, tt.path, names, tt.want)
		}
	}
}

func TestRootPattern(t *testing.T) {
	// A "/" pattern gets what no other pattern matches, as with http.ServeMux.
	mux := web.NewMux(logging.Discard(), nil)
	mux.HandleFunc("GET /things/{id}", func(w http.ResponseWriter, _ *http.Request) {
		web.Respond(w, http.StatusOK, nil)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		web.Respond(w, http.StatusTeapot, map[string]string{"route": web.Route(r.Context())})
	})
	tests := []struct {
		method, target string
		status         int
	}{
		{"GET", "/things/1", http.StatusOK},
		{"GET", "/elsewhere", http.StatusTeapot},
		{"PUT", "/things/1", http.StatusTeapot},
		{"GET", "/", http.StatusTeapot},
		{"GET", "http://example.com", http.StatusTeapot},
	}
	for _, tt := range tests {
		rec := serve(mux, tt.method, tt.target)
		if rec.Code != tt.status {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.target, rec.Code, tt.status)
		}
		if tt.status == http.StatusTeapot && !strings.Contains(rec.Body.String(), `"route":"/"`) {
			t.Errorf("%s %s: root handler saw %s, want route /", tt.method, tt.target, rec.Body)
		}
	}
}

func TestServiceMux(t *testing.T) {
	reg := prometheus.NewRegistry()
	mux := web.NewServiceMux(logging.Discard(), reg)
	serve(mux, "GET", "/healthz")
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if rec := serve(mux, "GET", path); rec.Code != 200 {
			t.Errorf("GET %s = %d", path, rec.Code)
		}
	}
	if rec := serve(mux, "GET", "/metrics"); !strings.Contains(rec.Body.String(), `http_requests_total{method="GET",route="/healthz",status="200"} 2`) {
		t.Errorf("/metrics does not count the probes:\n%s", rec.Body)
	}
}

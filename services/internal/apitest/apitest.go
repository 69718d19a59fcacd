// Package apitest checks a service against its OpenAPI document. A Client sends
// requests straight to the handler (no network) and validates, with kin-openapi's
// openapi3filter, every response against the operation it answers, failing the test on
// any difference; it also records which documented responses were seen, so a contract
// test can require that every one was exercised.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// Client sends requests to a handler and validates them against an OpenAPI document.
// It is safe for concurrent use.
type Client struct {
	handler http.Handler
	doc     *openapi3.T
	router  routers.Router

	mu   sync.Mutex
	seen map[string]bool // "METHOD /path/{template} status"
}

// New loads and validates the OpenAPI document at specPath and returns a Client for h.
func New(t testing.TB, specPath string, h http.Handler) *Client {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(specPath)
	if err != nil {
		t.Fatalf("load %s: %v", specPath, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", specPath, err)
	}
	// Match paths only: the document's servers name deployments, not this handler.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatalf("route %s: %v", specPath, err)
	}
	return &Client{handler: h, doc: doc, router: router, seen: map[string]bool{}}
}

// Response is a recorded answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test if it is not JSON of that shape.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("response body %q: %v", r.Body, err)
	}
}

// Error returns the "error" of a JSON error body, or "".
func (r *Response) Error() string {
	var body struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &body)
	return body.Error
}

// Request builds a request and sends it with Do. body is sent as is when it is a
// string or []byte, else encoded as JSON; nil sends none. header holds key, value pairs.
func (c *Client) Request(t testing.TB, method, path string, body any, header ...string) *Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encode request body: %v", err)
		}
		rd = bytes.NewReader(data)
	}
	req := httptest.NewRequestWithContext(t.Context(), method, path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return c.Do(t, req)
}

// Do serves req and checks the exchange against the document:
//   - the response must be one the operation documents (status, headers, body schema);
//   - a request the document refuses must not be accepted (no 2xx answer);
//   - a method and path the document does not have must be answered with a JSON
//     error, 404 or 405;
//   - a HEAD the document does not have, on a path whose GET it has, is that GET: HTTP
//     defines HEAD as the GET of the same target without its content (RFC 9110, 9.3.2), and
//     http.ServeMux answers it on every GET pattern. The answer must be one the GET
//     documents; its body, which the server drops from a HEAD answer but the recorder
//     keeps, is checked as the GET's when there is one. It counts for no coverage.
//
// A mismatch fails the test (t.Errorf), and the response is returned either way.
func (c *Client) Do(t testing.TB, req *http.Request) *Response {
	t.Helper()
	var reqBody []byte
	if req.Body != nil {
		var err error
		if reqBody, err = io.ReadAll(req.Body); err != nil {
			t.Fatalf("read request body: %v", err)
		}
	}
	req.Body = io.NopCloser(bytes.NewReader(reqBody))
	rec := httptest.NewRecorder()
	c.handler.ServeHTTP(rec, req)
	res := &Response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}

	// Route a copy: the handler may have changed req.
	vreq := req.Clone(context.Background())
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := c.router.FindRoute(vreq)
	mirrored := false
	if err != nil && req.Method == http.MethodHead {
		get := vreq.Clone(context.Background())
		get.Method = http.MethodGet
		if r, p, gerr := c.router.FindRoute(get); gerr == nil {
			vreq, route, params, err, mirrored = get, r, p, nil, true
		}
	}
	if err != nil || hasEmptyParam(params) {
		c.checkUndocumented(t, req, res)
		return res
	}
	in := &openapi3filter.RequestValidationInput{
		Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{MultiError: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil && res.Status < 300 {
		t.Errorf("%s %s: the server answered %d to a request its OpenAPI document refuses: %v",
			req.Method, req.URL, res.Status, err)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 res.Status,
		Header:                 res.Header,
		Body:                   io.NopCloser(bytes.NewReader(res.Body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true,
			ExcludeResponseBody: mirrored && len(res.Body) == 0},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s %s: response %d %s does not match the OpenAPI document: %v",
			req.Method, req.URL, res.Status, res.Body, err)
	}
	if !mirrored {
		c.record(route, res.Status)
	}
	return res
}

// hasEmptyParam spots the legacy router's match of "/users" on "/users/{id}" with an
// empty id: a path parameter always holds a segment, so that is no match.
func hasEmptyParam(params map[string]string) bool {
	for _, v := range params {
		if v == "" {
			return true
		}
	}
	return false
}

// checkUndocumented requires the contract's JSON 404 or 405 for what the document
// does not describe.
func (c *Client) checkUndocumented(t testing.TB, req *http.Request, res *Response) {
	t.Helper()
	switch res.Status {
	case http.StatusNotFound, http.StatusMethodNotAllowed:
	default:
		t.Errorf("%s %s is not in the OpenAPI document, yet the server answered %d", req.Method, req.URL, res.Status)
		return
	}
	if res.Status == http.StatusMethodNotAllowed && res.Header.Get("Allow") == "" {
		t.Errorf("%s %s: 405 without an Allow header", req.Method, req.URL)
	}
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") || res.Error() == "" {
		t.Errorf("%s %s: %d answer is not a JSON error: %q", req.Method, req.URL, res.Status, res.Body)
	}
}

// record marks the documented response that status selects as seen.
func (c *Client) record(route *routers.Route, status int) {
	key := strconv.Itoa(status)
	if route.Operation.Responses.Value(key) == nil {
		key = "default"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[route.Method+" "+route.Path+" "+key] = true
}

// Uncovered lists the documented responses ("GET /users/{id} 404") no request of this
// Client has produced yet, sorted.
func (c *Client) Uncovered() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var missing []string
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				if key := method + " " + path + " " + status; !c.seen[key] {
					missing = append(missing, key)
				}
			}
		}
	}
	slices.Sort(missing)
	return missing
}

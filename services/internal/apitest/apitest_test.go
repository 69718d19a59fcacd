package apitest_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apitest"
)

// recorder is a testing.TB that keeps the failures a Client reports.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func (r *recorder) Helper() {}

// reply answers every request with status and body.
func reply(status int, body string, header ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		if body != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	})
}

func TestClientReportsContractBreaches(t *testing.T) {
	tests := []struct {
		name         string
		handler      http.Handler
		method, path string
		body         any
		failure      string // substring of the one reported failure; "" for none
	}{
		{"documented answer", reply(200, `{"id":"1","name":"x"}`), "GET", "/things/1", nil, ""},
		{"documented error", reply(404, `{"error":"Thing not found"}`), "GET", "/things/1", nil, ""},
		{"refused request refused", reply(400, `{"error":"bad"}`), "POST", "/things", `{"name":"x"}`, ""},
		{"extra field", reply(200, `{"id":"1","name":"x","secret":true}`), "GET", "/things/1", nil, "does not match"},
		{"missing field", reply(200, `{"id":"1"}`), "GET", "/things/1", nil, "does not match"},
		{"undocumented status", reply(500, `{"error":"Internal server error"}`), "GET", "/things/1", nil, "does not match"},
		{"not JSON", reply(200, `<html>`), "GET", "/things/1", nil, "does not match"},
		{"invalid request accepted", reply(201, `{"id":"1","name":"x"}`), "POST", "/things", `{"name":"x"}`, "refuses"},
		{"unknown field accepted", reply(201, `{"id":"1","name":"xy"}`), "POST", "/things", `{"name":"xy","color":"red"}`, "refuses"},
		{"undocumented path answered", reply(200, `{}`), "GET", "/other", nil, "not in the OpenAPI document"},
		{"undocumented method answered", reply(200, `{}`), "DELETE", "/things/1", nil, "not in the OpenAPI document"},
		{"undocumented path as JSON 404", reply(404, `{"error":"Not found"}`), "GET", "/other", nil, ""},
		{"405 without Allow", reply(405, `{"error":"Method not allowed"}`), "PUT", "/things", nil, "without an Allow"},
		{"405 with Allow", reply(405, `{"error":"Method not allowed"}`, "Allow", "POST"), "PUT", "/things", nil, ""},
		{"plain-text 404", reply(404, ""), "GET", "/other", nil, "not a JSON error"},
		{"id-less path is no route", reply(200, `{"id":"1","name":"x"}`), "GET", "/things/", nil, "not in the OpenAPI document"},
		// HEAD is the GET of the same path, without its content: held to the GET's answers.
		{"HEAD of a documented GET", reply(200, `{"id":"1","name":"x"}`), "HEAD", "/things/1", nil, ""},
		{"HEAD of a documented GET, no body", reply(200, ""), "HEAD", "/things/1", nil, ""},
		{"HEAD of a documented GET's error", reply(404, `{"error":"Thing not found"}`), "HEAD", "/things/1", nil, ""},
		{"HEAD answered with what GET does not document", reply(500, `{"error":"Internal server error"}`), "HEAD", "/things/1", nil, "does not match"},
		{"HEAD answered with a body GET does not document", reply(200, `{"id":"1"}`), "HEAD", "/things/1", nil, "does not match"},
		{"HEAD of a path without GET answered", reply(200, `{}`), "HEAD", "/things", nil, "not in the OpenAPI document"},
		{"HEAD of a path without GET as JSON 405", reply(405, `{"error":"Method not allowed"}`, "Allow", "POST"), "HEAD", "/things", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			c := apitest.New(rec, "testdata/things.yaml", tt.handler)
			// The verdict is in rec's failures; the response itself is the handler's canned one.
			_ = c.Request(rec, tt.method, tt.path, tt.body)
			switch {
			case tt.failure == "" && len(rec.failures) > 0:
				t.Errorf("unexpected failures: %q", rec.failures)
			case tt.failure != "" && (len(rec.failures) != 1 || !strings.Contains(rec.failures[0], tt.failure)):
				t.Errorf("failures = %q, want one saying %q", rec.failures, tt.failure)
			}
		})
	}
}

func TestUncovered(t *testing.T) {
	c := apitest.New(t, "testdata/things.yaml", reply(200, `{"id":"1","name":"x"}`))
	all := []string{"GET /things/{id} 200", "GET /things/{id} 404", "POST /things 201", "POST /things 400"}
	if got := c.Uncovered(); !slices.Equal(got, all) {
		t.Fatalf("Uncovered() = %q, want %q", got, all)
	}
	if res := c.Request(t, "GET", "/things/7", nil); res.Status != 200 {
		t.Fatalf("GET /things/7 = %d, want 200", res.Status)
	}
	if got := c.Uncovered(); slices.Contains(got, "GET /things/{id} 200") || len(got) != 3 {
		t.Errorf("after GET 200, Uncovered() = %q", got)
	}
	// A HEAD is checked as its GET but covers nothing: its body is not the GET's to see.
	c = apitest.New(t, "testdata/things.yaml", reply(404, `{"error":"Thing not found"}`))
	if res := c.Request(t, "HEAD", "/things/7", nil); res.Status != 404 {
		t.Fatalf("HEAD /things/7 = %d, want 404", res.Status)
	}
	if got := c.Uncovered(); !slices.Equal(got, all) {
		t.Errorf("after HEAD 404, Uncovered() = %q, want %q", got, all)
	}
}

package web_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// Query refuses a parameter the operation takes given more than once, naming each such
// one in the order the operation lists them, and ignores the others. A query that does not
// parse is refused, naming each parameter at fault, whether the operation takes it or not:
// url.URL.Query would drop it and the operation would go on without its filter or page.
func TestQuery(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := web.Query(r, "limit", "after")
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		web.Respond(w, http.StatusOK, map[string]string{"limit": q.Get("limit"), "after": q.Get("after")})
	})
	const (
		escape    = "is not URL-encoded (a % must start an escape such as %25)"
		semicolon = `must not contain ";" (parameters are separated by "&")`
	)
	tests := []struct {
		target string
		status int
		fields []string // the refusal's details
		limit  string
		msg    string // the message of every detail; "" for "must be given once"
	}{
		{"/list", 200, nil, "", ""},
		{"/list?limit=1&after=x", 200, nil, "1", ""},
		{"/list?limit=1&v=a&v=b", 200, nil, "1", ""},
		{"/list?limit=1&limit=1000", 400, []string{"limit"}, "", ""},
		{"/list?limit=1&limit=1", 400, []string{"limit"}, "", ""},
		{"/list?after=a&limit=1&after=b&limit=2&v=1&v=2", 400, []string{"limit", "after"}, "", ""},
		{"/list?limit=100&after=6650f1c2a4b3c2d1e0f9a8b7%", 400, []string{"after"}, "", escape},
		{"/list?userId=x%&limit=100", 400, []string{"userId"}, "", escape},
		{"/list?limit=2&after%zz=x", 400, []string{"after%zz"}, "", escape},
		{"/list?limit=1%2", 400, []string{"limit"}, "", escape},
		{"/list?limit=2;after=x", 400, []string{"limit"}, "", semicolon},
		{"/list?v=1;w=2&limit=1", 400, []string{"v"}, "", semicolon},
		{"/list?limit=%31&after=a%2Fb", 200, nil, "1", ""},
	}
	for _, tt := range tests {
		if tt.msg == "" {
			tt.msg = "must be given once"
		}
		t.Run(tt.target, func(t *testing.T) {
			rec := serve(h, "GET", tt.target)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", rec.Code, tt.status, rec.Body)
			}
			if tt.status == 200 {
				var got map[string]string
				if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got["limit"] != tt.limit {
					t.Errorf("answer %s, want limit %q", rec.Body, tt.limit)
				}
				return
			}
			var body struct {
				Error   string              `json:"error"`
				Details []apperr.FieldError `json:"details"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			var fields []string
			for _, d := range body.Details {
				fields = append(fields, d.Field)
				if d.Message != tt.msg {
					t.Errorf("detail %+v, want the message %q", d, tt.msg)
				}
			}
			if body.Error != "validation failed" || !slices.Equal(fields, tt.fields) {
				t.Errorf("answer %s, want validation failed on %v", rec.Body, tt.fields)
			}
		})
	}
}

// TestQueryTooManyParameters: a well-encoded query over the number of parameters
// url.ParseQuery reads is refused as what it is, not as a query that is not URL-encoded.
// A filter given empty is refused, naming each; one not given, or given a value, is not.
func TestFilters(t *testing.T) {
	tests := []struct {
		query  string
		fields []string
	}{
		{"", nil},
		{"userId=u&status=PAID&other=", nil},
		{"userId=&status=PAID", []string{"userId"}},
		{"userId&status", []string{"userId", "status"}},
		{"limit=2&status=", []string{"status"}},
	}
	for _, tt := range tests {
		q, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatal(err)
		}
		err = web.Filters(q, "userId", "status")
		var fields []string
		var ae *apperr.Error
		if errors.As(err, &ae) {
			for _, d := range ae.Details {
				fe, _ := d.(apperr.FieldError)
				if fe.Message != "must not be empty when given" {
					t.Errorf("%q: detail %+v", tt.query, d)
				}
				fields = append(fields, fe.Field)
			}
		} else if err != nil {
			t.Fatalf("%q: %v", tt.query, err)
		}
		if !slices.Equal(fields, tt.fields) {
			t.Errorf("%q: refused %v, want %v", tt.query, fields, tt.fields)
		}
	}
}

func TestQueryTooManyParameters(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := web.Query(r, "limit"); err != nil {
			web.RespondError(w, r, err)
			return
		}
		web.Respond(w, http.StatusOK, map[string]string{})
	})
	rec := serve(h, "GET", "/list?limit=2"+strings.Repeat("&x=1", 10_000))
	if rec.Code != http.StatusBadRequest || strings.Contains(rec.Body.String(), "not URL-encoded") ||
		!strings.Contains(rec.Body.String(), "the query string cannot be read") {
		t.Fatalf("status %d, body %s: want 400 saying why the query cannot be read", rec.Code, rec.Body)
	}
}

package web_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// Query refuses a parameter the operation takes given more than once, naming each such
// one in the order the operation lists them, and ignores the others.
func TestQuery(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := web.Query(r, "limit", "after")
		if err != nil {
			web.RespondError(w, r, err)
			return
		}
		web.Respond(w, http.StatusOK, map[string]string{"limit": q.Get("limit"), "after": q.Get("after")})
	})
	tests := []struct {
		target string
		status int
		fields []string // the refusal's details
		limit  string
	}{
		{"/list", 200, nil, ""},
		{"/list?limit=1&after=x", 200, nil, "1"},
		{"/list?limit=1&v=a&v=b", 200, nil, "1"},
		{"/list?limit=1&limit=1000", 400, []string{"limit"}, ""},
		{"/list?limit=1&limit=1", 400, []string{"limit"}, ""},
		{"/list?after=a&limit=1&after=b&limit=2&v=1&v=2", 400, []string{"limit", "after"}, ""},
	}
	for _, tt := range tests {
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
				if d.Message != "must be given once" {
					t.Errorf("detail %+v, want the message \"must be given once\"", d)
				}
			}
			if body.Error != "validation failed" || !slices.Equal(fields, tt.fields) {
				t.Errorf("answer %s, want validation failed on %v", rec.Body, tt.fields)
			}
		})
	}
}

package httpapi_test

import (
	"strings"
	"testing"
)

// TestBadInput: what clients get wrong is answered with the contract's 4xx JSON, never
// a 5xx, and nothing is stored.
func TestBadInput(t *testing.T) {
	api := newAPI(t)
	ada := createUser(t, api, "Ada", "ada@example.com")
	adaPath := "/users/" + ada.ID

	tests := []struct {
		name, method, path string
		body               string
		contentType        string
		status             int
	}{
		{"empty body", "POST", "/users", "", "", 400},
		{"not JSON", "POST", "/users", "name=Ada&email=a@b.c", "", 400},
		{"a form", "POST", "/users", "name=Ada&email=a@b.c", "application/x-www-form-urlencoded", 415},
		// Not read, though it would parse: the client did not say it was JSON.
		{"JSON sent as a form", "POST", "/users", `{"name":"Ada","email":"x@y.z"}`, "application/x-www-form-urlencoded", 415},
		{"JSON sent as text", "POST", "/users", `{"name":"Ada","email":"x@y.z"}`, "text/plain", 415},
		{"JSON sent as XML", "PATCH", adaPath, `{"name":"Ada"}`, "application/xml", 415},
		{"malformed JSON", "POST", "/users", `{"name": "Ada", "email": }`, "", 400},
		{"truncated JSON", "POST", "/users", `{"name": "Ada"`, "", 400},
		{"array instead of object", "POST", "/users", `[{"name":"Ada","email":"x@y.z"}]`, "", 400},
		{"string instead of object", "POST", "/users", `"Ada"`, "", 400},
		{"null body", "POST", "/users", `null`, "", 400},
		{"unknown field", "POST", "/users", `{"name":"Ada","email":"x@y.z","role":"admin"}`, "", 400},
		{"name is a number", "POST", "/users", `{"name":42,"email":"x@y.z"}`, "", 400},
		{"email is an object", "POST", "/users", `{"name":"Ada","email":{"x":1}}`, "", 400},
		{"missing email", "POST", "/users", `{"name":"Ada"}`, "", 400},
		{"missing name", "POST", "/users", `{"email":"x@y.z"}`, "", 400},
		// encoding/json would store "Ada\uFFFD", a name the client never sent.
		{"name not UTF-8", "POST", "/users", "{\"name\":\"Ada\xff\",\"email\":\"x@y.z\"}", "", 400},
		{"patch with a name not UTF-8", "PATCH", adaPath, "{\"name\":\"Ad\xe9\"}", "", 400},
		{"name of spaces", "POST", "/users", `{"name":"     ","email":"x@y.z"}`, "", 400},
		{"name of 101 characters", "POST", "/users", `{"name":"` + strings.Repeat("n", 101) + `","email":"x@y.z"}`, "", 400},
		{"email without @", "POST", "/users", `{"name":"Ada","email":"ada.example.com"}`, "", 400},
		{"email with a display name", "POST", "/users", `{"name":"Ada","email":"Ada <x@y.z>"}`, "", 400},
		{"two JSON values", "POST", "/users", `{"name":"Ada","email":"x@y.z"}{}`, "", 400},
		{"duplicate email", "POST", "/users", `{"name":"Ada Two","email":"ADA@example.com"}`, "", 409},
		{"body over 1 MiB", "POST", "/users", `{"name":"` + strings.Repeat("n", 1<<20) + `","email":"x@y.z"}`, "", 413},
		{"patch with null email", "PATCH", adaPath, `{"email":null}`, "", 400},
		{"patch with a null body", "PATCH", adaPath, `null`, "", 400},
		{"patch with unknown field", "PATCH", adaPath, `{"id":"x"}`, "", 400},
		{"patch with a bad email", "PATCH", adaPath, `{"email":"nope"}`, "", 400},
		{"patch with an empty body", "PATCH", adaPath, ``, "", 400},
		{"limit not a number", "GET", "/users?limit=many", "", "", 400},
		{"limit negative", "GET", "/users?limit=-1", "", "", 400},
		{"after not an id", "GET", "/users?after=../../etc", "", "", 400},
		{"limit given twice", "GET", "/users?limit=1&limit=100", "", "", 400},
		// Dropped by url.URL.Query, these would answer the first page again.
		{"after with a broken escape", "GET", "/users?limit=2&after=" + ada.ID + "%", "", "", 400},
		{"parameters separated by ;", "GET", "/users?limit=2;after=" + ada.ID, "", "", 400},
		{"id with a query-looking suffix", "GET", "/users/" + ada.ID + "x", "", "", 404},
		{"id of another length", "DELETE", "/users/abc", "", "", 404},
		{"PUT is not a method of users", "PUT", adaPath, `{"name":"Ada"}`, "", 405},
		{"POST to a user", "POST", adaPath, `{"name":"Ada"}`, "", 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = tt.body
			}
			header := []string{}
			if tt.contentType != "" {
				header = []string{"Content-Type", tt.contentType}
			}
			res := api.Request(t, tt.method, tt.path, body, header...)
			if res.Status != tt.status {
				t.Errorf("%s %s = %d %s, want %d", tt.method, tt.path, res.Status, res.Body, tt.status)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" || res.Error() == "" {
				t.Errorf("answer is not a JSON error: %s %q", ct, res.Body)
			}
		})
	}
	// Nothing bad was stored, and Ada is untouched.
	if all := listAll(t, api); len(all) != 1 || all[0] != ada {
		t.Errorf("users after bad input = %+v, want only %+v", all, ada)
	}
}

package httpapi_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apitest"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
)

// TestContract walks one client through every response openapi.yaml documents, each
// validated against the document by apitest, and fails on any left unexercised: the
// document and the server cannot drift apart unnoticed.
func TestContract(t *testing.T) {
	api := newAPI(t)
	ada := createUser(t, api, "Ada", "ada@example.com")
	bob := createUser(t, api, "Bob", "bob@example.com")
	unknown := "/users/" + mongodb.NewID().Hex()
	huge := `{"name":"` + strings.Repeat("n", 1<<20) + `"}`

	steps := []struct {
		method, path string
		body         any
		status       int
	}{
		{"POST", "/users", map[string]string{"name": "Cy", "email": "cy@example.com"}, 201},
		{"POST", "/users", map[string]string{"name": "C", "email": "cy"}, 400},
		{"POST", "/users", map[string]string{"name": "Cy Two", "email": "CY@example.com"}, 409},
		{"POST", "/users", huge, 413},
		{"GET", "/users?limit=2", nil, 200},
		{"GET", "/users?limit=1000", nil, 400},
		{"GET", "/users/" + ada.ID, nil, 200},
		{"GET", "/users/" + ada.ID + "?v=1&v=2", nil, 200}, // a parameter it does not take is ignored
		{"GET", unknown, nil, 404},
		// HEAD is answered wherever GET is, as HTTP defines it: the GET's status and headers.
		{"HEAD", "/users/" + ada.ID, nil, 200},
		{"HEAD", "/users?limit=2", nil, 200},
		{"HEAD", unknown, nil, 404},
		{"PATCH", "/users/" + ada.ID, map[string]string{"name": "Ada L."}, 200},
		{"PATCH", "/users/" + ada.ID, map[string]string{"name": "A"}, 400},
		{"PATCH", unknown, map[string]string{"name": "Nobody"}, 404},
		{"PATCH", "/users/" + ada.ID, map[string]string{"email": "bob@example.com"}, 409},
		{"PATCH", "/users/" + ada.ID, huge, 413},

		{"DELETE", "/users/" + bob.ID, nil, 204},
		{"DELETE", "/users/" + bob.ID, nil, 404},
		{"GET", "/healthz", nil, 200},
		{"GET", "/readyz", nil, 200},
		{"GET", "/metrics", nil, 200},
		{"DELETE", "/users", nil, 405},
		{"GET", "/internal/anything", nil, 404},
	}
	for _, s := range steps {
		if res := api.Request(t, s.method, s.path, s.body); res.Status != s.status {
			t.Errorf("%s %s = %d %.200s, want %d", s.method, s.path, res.Status, res.Body, s.status)
		}
	}
	// A body said to be other than JSON is not read (curl -d sends a form).
	for _, s := range []struct{ method, path, body string }{
		{"POST", "/users", `{"name":"Di","email":"di@example.com"}`},
		{"PATCH", "/users/" + ada.ID, `{"name":"Di"}`},
	} {
		if res := api.Request(t, s.method, s.path, s.body, "Content-Type", "application/x-www-form-urlencoded"); res.Status != 415 {
			t.Errorf("%s %s as a form = %d %.200s, want 415", s.method, s.path, res.Status, res.Body)
		}
	}

	// The service's own database client broken: 500 on every operation. The database
	// not answering: 503 on every operation and on /readyz.
	id := mongodb.NewID().Hex()
	operations := []struct{ method, path, body string }{
		{"POST", "/users", `{"name":"Ada","email":"ada@example.com"}`},
		{"GET", "/users", ""},
		{"GET", "/users/" + id, ""},
		{"PATCH", "/users/" + id, `{"name":"Ada"}`},
		{"DELETE", "/users/" + id, ""},
	}
	failing := []failingAPI{
		{"client closed", newBrokenAPI(t), 500, "Internal server error"},
		{"database unreachable", newUnreachableAPI(t), 503, "database unavailable"},
	}
	for _, f := range failing {
		for _, s := range operations {
			var body any
			if s.body != "" {
				body = s.body
			}
			if res := f.api.Request(t, s.method, s.path, body); res.Status != f.status || res.Error() != f.answer {
				t.Errorf("%s: %s %s = %d %.200s, want %d %q", f.name, s.method, s.path, res.Status, res.Body, f.status, f.answer)
			}
		}
		if res := f.api.Request(t, "GET", "/readyz", nil); res.Status != 503 {
			t.Errorf("%s: GET /readyz = %d %.200s, want 503", f.name, res.Status, res.Body)
		}
	}

	// A response counts when any client exercised it.
	for _, m := range api.Uncovered() {
		if !slices.ContainsFunc(failing, func(f failingAPI) bool { return !slices.Contains(f.api.Uncovered(), m) }) {
			t.Errorf("documented response never exercised: %s", m)
		}
	}
}

// failingAPI is a client of the service over a database that fails, and what every
// operation answers then.
type failingAPI struct {
	name   string
	api    *apitest.Client
	status int
	answer string
}

package httpapi_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apitest"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/user/users"
)

// fixture is the state each handler case starts from: two users and an id no user has.
type fixture struct {
	ada, bob users.User
	unknown  string
}

func newFixture(t *testing.T, api *apitest.Client) fixture {
	return fixture{
		ada:     createUser(t, api, "Ada Lovelace", "ada@example.com"),
		bob:     createUser(t, api, "Bob", "bob@example.com"),
		unknown: mongodb.NewID().Hex(),
	}
}

type handlerCase struct {
	name   string
	method string
	path   func(f fixture) string
	body   any
	status int
	errMsg string // the JSON "error", for error answers
	check  func(t *testing.T, api *apitest.Client, f fixture, res *apitest.Response)
}

func path(p string) func(fixture) string { return func(fixture) string { return p } }

func runHandlerCases(t *testing.T, cases []handlerCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := newAPI(t)
			f := newFixture(t, api)
			res := api.Request(t, tc.method, tc.path(f), tc.body)
			if res.Status != tc.status {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path(f), res.Status, res.Body, tc.status)
			}
			if tc.errMsg != "" && res.Error() != tc.errMsg {
				t.Errorf("error = %q, want %q", res.Error(), tc.errMsg)
			}
			if tc.check != nil {
				tc.check(t, api, f, res)
			}
		})
	}
}

// userOf decodes a user answer.
func userOf(t *testing.T, res *apitest.Response) users.User {
	t.Helper()
	var u users.User
	res.JSON(t, &u)
	return u
}

// stored reads a user back through the API.
func stored(t *testing.T, api *apitest.Client, id string) (users.User, int) {
	t.Helper()
	res := api.Request(t, "GET", "/users/"+id, nil)
	if res.Status != 200 {
		return users.User{}, res.Status
	}
	return userOf(t, res), res.Status
}

func TestCreateUser(t *testing.T) {
	runHandlerCases(t, []handlerCase{
		{
			name: "created, trimmed and lower-cased", method: "POST", path: path("/users"),
			body: map[string]string{"name": "  Grace Hopper ", "email": " Grace@Navy.MIL"}, status: 201,
			check: func(t *testing.T, api *apitest.Client, _ fixture, res *apitest.Response) {
				u := userOf(t, res)
				if u.Name != "Grace Hopper" || u.Email != "grace@navy.mil" || u.ID == "" {
					t.Errorf("created %+v", u)
				}
				if d := time.Since(u.CreatedAt); d < 0 || d > time.Minute {
					t.Errorf("createdAt = %s", u.CreatedAt)
				}
				if loc := res.Header.Get("Location"); loc != "/users/"+u.ID {
					t.Errorf("Location = %q", loc)
				}
				if got, _ := stored(t, api, u.ID); got != u {
					t.Errorf("stored %+v, answered %+v", got, u)
				}
			},
		},
		{
			name: "email taken", method: "POST", path: path("/users"),
			body: map[string]string{"name": "Other Ada", "email": "ada@example.com"}, status: 409, errMsg: "email already in use",
		},
		{
			name: "email taken in another case", method: "POST", path: path("/users"),
			body: map[string]string{"name": "Other Ada", "email": "ADA@Example.com"}, status: 409, errMsg: "email already in use",
		},
		{
			name: "invalid fields", method: "POST", path: path("/users"),
			body: map[string]string{"name": "A", "email": "nobody"}, status: 400, errMsg: "validation failed",
			check: func(t *testing.T, _ *apitest.Client, _ fixture, res *apitest.Response) {
				if !strings.Contains(string(res.Body), `"field":"name"`) || !strings.Contains(string(res.Body), `"field":"email"`) {
					t.Errorf("details do not name both fields: %s", res.Body)
				}
			},
		},
		{
			name: "over 1 MiB", method: "POST", path: path("/users"),
			body:   fmt.Sprintf(`{"name":"%s","email":"a@b.c"}`, strings.Repeat("x", 1<<20)),
			status: 413,
		},
	})
}

func TestGetUser(t *testing.T) {
	runHandlerCases(t, []handlerCase{
		{
			name: "found", method: "GET", path: func(f fixture) string { return "/users/" + f.ada.ID }, status: 200,
			check: func(t *testing.T, _ *apitest.Client, f fixture, res *apitest.Response) {
				if u := userOf(t, res); u != f.ada {
					t.Errorf("got %+v, want %+v", u, f.ada)
				}
			},
		},
		{name: "unknown id", method: "GET", path: func(f fixture) string { return "/users/" + f.unknown }, status: 404, errMsg: "User not found"},
		{name: "malformed id", method: "GET", path: path("/users/42"), status: 404, errMsg: "User not found"},
		{name: "wrong method", method: "PUT", path: func(f fixture) string { return "/users/" + f.ada.ID }, status: 405, errMsg: "Method not allowed"},
		{name: "unknown path", method: "GET", path: path("/people"), status: 404, errMsg: "Not found"},
	})
}

func TestListUsers(t *testing.T) {
	runHandlerCases(t, []handlerCase{
		{
			name: "first page holds everyone", method: "GET", path: path("/users"), status: 200,
			check: func(t *testing.T, _ *apitest.Client, f fixture, res *apitest.Response) {
				var page mongodb.Page[users.User]
				res.JSON(t, &page)
				if len(page.Items) != 2 || page.Items[0] != f.ada || page.Items[1] != f.bob || page.Next != "" {
					t.Errorf("page = %+v", page)
				}
			},
		},
		{
			name: "pages of one", method: "GET", path: path("/users?limit=1"), status: 200,
			check: func(t *testing.T, api *apitest.Client, f fixture, res *apitest.Response) {
				var first, second mongodb.Page[users.User]
				res.JSON(t, &first)
				if len(first.Items) != 1 || first.Items[0] != f.ada || first.Next != f.ada.ID {
					t.Fatalf("first page = %+v", first)
				}
				api.Request(t, "GET", "/users?limit=1&after="+first.Next, nil).JSON(t, &second)
				if len(second.Items) != 1 || second.Items[0] != f.bob || second.Next != "" {
					t.Errorf("second page = %+v", second)
				}
			},
		},
		{name: "limit over 100", method: "GET", path: path("/users?limit=101"), status: 400, errMsg: "validation failed"},
		{name: "limit zero", method: "GET", path: path("/users?limit=0"), status: 400, errMsg: "validation failed"},
		{name: "malformed after", method: "GET", path: path("/users?after=nope"), status: 400, errMsg: "validation failed"},
		{name: "wrong method", method: "PUT", path: path("/users"), status: 405, errMsg: "Method not allowed"},
	})
}

func TestUpdateUser(t *testing.T) {
	adaPath := func(f fixture) string { return "/users/" + f.ada.ID }
	runHandlerCases(t, []handlerCase{
		{
			name: "name only", method: "PATCH", path: adaPath, body: map[string]string{"name": " Countess Ada "}, status: 200,
			check: func(t *testing.T, api *apitest.Client, f fixture, res *apitest.Response) {
				u := userOf(t, res)
				want := f.ada
				want.Name = "Countess Ada"
				if u != want {
					t.Errorf("got %+v, want %+v", u, want)
				}
				if got, _ := stored(t, api, f.ada.ID); got != want {
					t.Errorf("stored %+v, want %+v", got, want)
				}
			},
		},
		{
			name: "email lower-cased", method: "PATCH", path: adaPath, body: map[string]string{"email": "ADA@lovelace.org"}, status: 200,
			check: func(t *testing.T, _ *apitest.Client, _ fixture, res *apitest.Response) {
				if u := userOf(t, res); u.Email != "ada@lovelace.org" || u.Name != "Ada Lovelace" {
					t.Errorf("got %+v", u)
				}
			},
		},
		{
			name: "own email again", method: "PATCH", path: adaPath, body: map[string]string{"email": "ada@example.com"}, status: 200,
		},
		// Refused, as the product service refuses it: almost certainly a client mistake.
		{name: "empty patch", method: "PATCH", path: adaPath, body: map[string]string{}, status: 400, errMsg: "validation failed"},
		{name: "email of another user", method: "PATCH", path: adaPath, body: map[string]string{"email": "Bob@example.com"}, status: 409, errMsg: "email already in use"},
		{name: "invalid name", method: "PATCH", path: adaPath, body: map[string]string{"name": " "}, status: 400, errMsg: "validation failed"},
		{name: "null name", method: "PATCH", path: adaPath, body: `{"name":null}`, status: 400, errMsg: `field "name" must be a JSON string`},
		{name: "unknown id", method: "PATCH", path: func(f fixture) string { return "/users/" + f.unknown }, body: map[string]string{"name": "Nobody"}, status: 404, errMsg: "User not found"},
		{name: "malformed id", method: "PATCH", path: path("/users/x"), body: `{"name": 5}`, status: 404, errMsg: "User not found"},
		// An unknown user is not found whatever the body, as the product service answers.
		{name: "unknown id, bad body", method: "PATCH", path: func(f fixture) string { return "/users/" + f.unknown }, body: `{"name": 5}`, status: 404, errMsg: "User not found"},
		{name: "unknown id, invalid name", method: "PATCH", path: func(f fixture) string { return "/users/" + f.unknown }, body: map[string]string{"name": " "}, status: 404, errMsg: "User not found"},
		{name: "over 1 MiB", method: "PATCH", path: adaPath, body: `{"name":"` + strings.Repeat("x", 1<<20) + `"}`, status: 413},
	})
}

func TestDeleteUser(t *testing.T) {
	runHandlerCases(t, []handlerCase{
		{
			name: "deleted", method: "DELETE", path: func(f fixture) string { return "/users/" + f.ada.ID }, status: 204,
			check: func(t *testing.T, api *apitest.Client, f fixture, res *apitest.Response) {
				if len(res.Body) != 0 {
					t.Errorf("204 with a body: %q", res.Body)
				}
				if _, status := stored(t, api, f.ada.ID); status != 404 {
					t.Errorf("GET after DELETE = %d, want 404", status)
				}
				if again := api.Request(t, "DELETE", "/users/"+f.ada.ID, nil); again.Status != 404 {
					t.Errorf("second DELETE = %d, want 404", again.Status)
				}
				// The email is free again.
				createUser(t, api, "Ada Again", "ada@example.com")
			},
		},
		{name: "unknown id", method: "DELETE", path: func(f fixture) string { return "/users/" + f.unknown }, status: 404, errMsg: "User not found"},
		{name: "malformed id", method: "DELETE", path: path("/users/%20"), status: 404, errMsg: "User not found"},
	})
}

// TestDatabaseDown checks that driver errors never leak: every route answers 500
// {"error": "Internal server error"} and /readyz says the database is down.
func TestDatabaseDown(t *testing.T) {
	api := newBrokenAPI(t)
	id := mongodb.NewID().Hex()
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/users", `{"name":"Ada","email":"ada@example.com"}`},
		{"GET", "/users", ""},
		{"GET", "/users/" + id, ""},
		{"PATCH", "/users/" + id, `{"name":"Ada"}`},
		{"DELETE", "/users/" + id, ""},
	} {
		var body any
		if tc.body != "" {
			body = tc.body
		}
		res := api.Request(t, tc.method, tc.path, body)
		if res.Status != 500 || string(res.Body) != `{"error":"Internal server error"}`+"\n" {
			t.Errorf("%s %s = %d %s", tc.method, tc.path, res.Status, res.Body)
		}
	}
	if res := api.Request(t, "GET", "/readyz", nil); res.Status != 503 {
		t.Errorf("/readyz = %d %s, want 503", res.Status, res.Body)
	}
	if res := api.Request(t, "GET", "/healthz", nil); res.Status != 200 {
		t.Errorf("/healthz = %d, want 200: the process lives", res.Status)
	}
}

package app

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestRun starts the service as its binaries do, with only PORT and MONGODB_URI set
// (the seed's MONGODB_URL in one case), serves a request, and stops cleanly when its
// context ends, as on SIGTERM.
func TestRun(t *testing.T) {
	for _, uriVar := range []string{"MONGODB_URI", "MONGODB_URL"} {
		t.Run(uriVar, func(t *testing.T) {
			db := testenv.MongoDB(t) // a fresh database, dropped afterwards
			t.Setenv("MONGODB_URI", "")
			t.Setenv("MONGODB_URL", "")
			t.Setenv(uriVar, testenv.MongoURIFor(t, db.Name()))
			base, stop := serve(t)

			res, err := http.Post(base+"/users", "application/json", strings.NewReader(`{"name":"Ada","email":"ada@example.com"}`))
			if err != nil {
				t.Fatal(err)
			}
			_ = res.Body.Close()
			if res.StatusCode != 201 {
				t.Fatalf("POST /users = %d", res.StatusCode)
			}
			if n, _ := db.Collection("users").CountDocuments(t.Context(), map[string]any{}); n != 1 {
				t.Errorf("users stored in %s = %d, want 1: the URI's database is not used", db.Name(), n)
			}

			if err := stop(); err != nil {
				t.Errorf("run = %v after shutdown, want nil", err)
			}
		})
	}
}

// TestRunRewritesOldEmails: a start rewrites an email stored before emails had a
// canonical form (é decomposed, e and U+0301), so the address is taken in every spelling.
func TestRunRewritesOldEmails(t *testing.T) {
	db := testenv.MongoDB(t)
	t.Setenv("MONGODB_URL", "")
	t.Setenv("MONGODB_URI", testenv.MongoURIFor(t, db.Name()))
	id := bson.NewObjectID()
	if _, err := db.Collection("users").InsertOne(t.Context(), bson.D{
		{Key: "_id", Value: id}, {Key: "name", Value: "José"}, {Key: "email", Value: "jose\u0301@example.com"},
		{Key: "createdAt", Value: time.Now()}, {Key: "updatedAt", Value: time.Now()},
	}); err != nil {
		t.Fatal(err)
	}
	base, _ := serve(t)

	res, err := http.Get(base + "/users/" + id.Hex())
	if err != nil {
		t.Fatal(err)
	}
	var u struct{ Email string }
	err = json.NewDecoder(res.Body).Decode(&u)
	_ = res.Body.Close()
	if err != nil || u.Email != "jos\u00e9@example.com" {
		t.Errorf("GET the user = %d, email %+q (%v); want the email rewritten to \"jos\\u00e9@example.com\"", res.StatusCode, u.Email, err)
	}
	for _, spelling := range []string{"José@example.com", "jose\u0301@example.com"} {
		res, err := http.Post(base+"/users", "application/json", strings.NewReader(`{"name":"Another","email":"`+spelling+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusConflict {
			t.Errorf("POST /users with %+q = %d, want 409: the address is taken", spelling, res.StatusCode)
		}
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name, port, uri, want string
	}{
		{"bad port", "http", "mongodb://127.0.0.1:1/", `PORT="http"`},
		{"no database", "8080", "", "MONGODB_URI must be set"},
		{"bad URI", "8080", "postgres://x", "MONGODB_URI is not a valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PORT", tt.port)
			t.Setenv("MONGODB_URI", tt.uri)
			t.Setenv("MONGODB_URL", "")
			err := Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

// serve runs the service with the environment the test set, PORT aside, until stop,
// which returns what Run returned (the test fails if it does not return in time).
func serve(t *testing.T) (base string, stop func() error) {
	t.Helper()
	port := testenv.FreePort(t)
	t.Setenv("PORT", strconv.Itoa(port))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("run did not return after its context ended")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	base = "http://127.0.0.1:" + strconv.Itoa(port)
	testenv.WaitReady(t, base+"/readyz", done)
	return base, stop
}

package app

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/testenv"
)

// TestWritesAnswer503WhileTheDatabaseIsFrozen: with the database frozen (SIGSTOP: its
// connections stay open and nothing answers, so each operation runs out its whole
// timeout), writes of one user sent one after the other each get the contract's 503
// within about one operation timeout of being sent: none waits for the timeouts of those
// before it, past HTTP_WRITE_TIMEOUT, to end without an answer. The writes that queued
// behind the first are not sent at all: once the database is back, none of them has
// taken effect.
func TestWritesAnswer503WhileTheDatabaseIsFrozen(t *testing.T) {
	const opTimeout = time.Second
	server, err := testenv.StartFerretDB(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = server.Stop() })
	t.Setenv("MONGODB_URI", server.URI)
	t.Setenv("MONGODB_URL", "")
	t.Setenv("MONGODB_OPERATION_TIMEOUT", opTimeout.String())
	// Three timeouts: the writes queued behind a first one each waited one more
	// timeout, so the fourth of them ran out of it.
	t.Setenv("HTTP_WRITE_TIMEOUT", (3 * opTimeout).String())
	base, _ := serve(t)
	client := &http.Client{Timeout: 10 * opTimeout}
	send := func(method, path, body string) (status int, answer string, err error) {
		req, err := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(body))
		if err != nil {
			return 0, "", err
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer func() { _ = res.Body.Close() }()
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, string(b), err
	}

	status, answer, err := send("POST", "/users", `{"name":"Ada","email":"ada@example.com"}`)
	if err != nil || status != 201 {
		t.Fatalf("POST /users = %d %s %v", status, answer, err)
	}
	var ada struct{ ID, Name string }
	if err := json.Unmarshal([]byte(answer), &ada); err != nil {
		t.Fatal(err)
	}

	if err := server.Freeze(); err != nil {
		t.Fatal(err)
	}
	writes := []struct{ method, path, body string }{
		{"PATCH", "/users/" + ada.ID, `{"name":"Name 0"}`},
		{"PATCH", "/users/" + ada.ID, `{"name":"Name 1"}`},
		{"PATCH", "/users/" + ada.ID, `{"email":"ada@example.org"}`},
		{"POST", "/users", `{"name":"Bob","email":"bob@example.com"}`},
		{"PATCH", "/users/" + ada.ID, `{"name":"Name 4"}`},
		{"DELETE", "/users/" + ada.ID, ``},
	}
	var wg sync.WaitGroup
	for i, w := range writes {
		wg.Go(func() {
			sent := time.Now()
			status, answer, err := send(w.method, w.path, w.body)
			took := time.Since(sent)
			t.Logf("write %d %s %s %s: %d %s after %s", i, w.method, w.path, w.body, status, strings.TrimSpace(answer), took.Round(time.Millisecond))
			switch {
			case err != nil:
				t.Errorf("write %d: no answer (%v) after %s", i, err, took)
			case status != 503 || strings.TrimSpace(answer) != `{"error":"database unavailable"}`:
				t.Errorf("write %d = %d %s, want 503 {\"error\":\"database unavailable\"}", i, status, answer)
			case took > opTimeout*3/2:
				t.Errorf("write %d answered after %s, want within %s: it waited for the writes before it", i, took, opTimeout*3/2)
			}
		})
		time.Sleep(opTimeout / 10) // one after the other, as a client retrying would
	}
	wg.Wait()

	if err := server.Thaw(); err != nil {
		t.Fatal(err)
	}
	// Only the first write reached the database, and may take effect now it is back;
	// the others were never sent. Watch long enough for a late one to show.
	for range 10 {
		status, answer, err := send("GET", "/users/"+ada.ID, "")
		var got struct{ Name, Email string }
		if err == nil && status == 200 {
			err = json.Unmarshal([]byte(answer), &got)
		}
		switch {
		case err != nil || status != 200:
			t.Fatalf("GET after the thaw = %d %s %v, want 200: a write queued behind the first was applied", status, answer, err)
		case got.Name != "Ada" && got.Name != "Name 0" || got.Email != "ada@example.com":
			t.Fatalf("after the thaw the user is %q <%s>: a write queued behind the first was applied", got.Name, got.Email)
		}
		time.Sleep(opTimeout / 5)
	}
	if status, answer, err := send("GET", "/users?limit=10", ""); err != nil || status != 200 || strings.Contains(answer, "bob@") {
		t.Errorf("GET /users after the thaw = %d %s %v; want 200 without Bob, whose POST was not sent", status, answer, err)
	}
}

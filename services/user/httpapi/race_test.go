package httpapi_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apitest"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/user/users"
)

// TestConcurrentCreateSameEmail: 20 requests racing for one email (in different cases)
// → exactly one 201, the others 409, and one stored user.
func TestConcurrentCreateSameEmail(t *testing.T) {
	api := newAPI(t)
	const n = 20
	count := createAtOnce(t, api, n, []string{"Race@Example.com", "race@example.COM"})
	if count[201] != 1 || count[409] != n-1 {
		t.Errorf("statuses = %v, want one 201 and %d 409", count, n-1)
	}
	if got := listAll(t, api); len(got) != 1 || got[0].Email != "race@example.com" {
		t.Errorf("stored users = %+v, want exactly one with race@example.com", got)
	}
}

// TestConcurrentUpdateToSameEmail: 10 users racing to take one email through PATCH
// → exactly one wins.
func TestConcurrentUpdateToSameEmail(t *testing.T) {
	api := newAPI(t)
	const n = 10
	ids := make([]string, n)
	for i := range n {
		ids[i] = createUser(t, api, fmt.Sprintf("User %d", i), fmt.Sprintf("user%d@example.com", i)).ID
	}
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			statuses[i] = api.Request(t, "PATCH", "/users/"+ids[i], map[string]string{"email": "wanted@example.com"}).Status
		})
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[200] != 1 || count[409] != n-1 {
		t.Errorf("statuses = %v, want one 200 and %d 409", count, n-1)
	}
}

// TestConcurrentUpdatesOfDifferentFields: a name PATCH and an email PATCH of one user at
// once both take effect (a store that rewrites whole documents must not lose either).
func TestConcurrentUpdatesOfDifferentFields(t *testing.T) {
	api := newAPI(t)
	for i := range 20 {
		id := createUser(t, api, fmt.Sprintf("Before %d", i), fmt.Sprintf("before%d@example.com", i)).ID
		name, email := fmt.Sprintf("After %d", i), fmt.Sprintf("after%d@example.com", i)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for _, patch := range []map[string]string{{"name": name}, {"email": email}} {
			wg.Go(func() {
				<-start
				if res := api.Request(t, "PATCH", "/users/"+id, patch); res.Status != 200 {
					t.Errorf("PATCH %v: %d %s", patch, res.Status, res.Body)
				}
			})
		}
		close(start)
		wg.Wait()
		if got, _ := stored(t, api, id); got.Name != name || got.Email != email {
			t.Fatalf("round %d: stored %q <%s>, want %q <%s>: an update was lost", i, got.Name, got.Email, name, email)
		}
	}
}

// listAll walks every page of GET /users.
func listAll(t *testing.T, api *apitest.Client) []users.User {
	t.Helper()
	var all []users.User
	after := ""
	for range 100 {
		var page mongodb.Page[users.User]
		res := api.Request(t, "GET", "/users?limit=100&after="+after, nil)
		if res.Status != 200 {
			t.Fatalf("GET /users = %d %s", res.Status, res.Body)
		}
		res.JSON(t, &page)
		all = append(all, page.Items...)
		if page.Next == "" {
			return all
		}
		after = page.Next
	}
	t.Fatal("pagination does not end")
	return nil
}

// createAtOnce sends n POST /users at once, the emails taken in turn from emails, and
// counts their answers by status.
func createAtOnce(t *testing.T, api *apitest.Client, n int, emails []string) map[int]int {
	t.Helper()
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			res := api.Request(t, "POST", "/users", map[string]string{"name": fmt.Sprintf("Racer %d", i), "email": emails[i%len(emails)]})
			statuses[i] = res.Status
		})
	}
	close(start)
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	return count
}

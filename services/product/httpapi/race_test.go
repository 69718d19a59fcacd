package httpapi_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apitest"
)

// countStatuses sends n requests at once, made by req(i), and counts the answers by
// status.
func countStatuses(t *testing.T, c *apitest.Client, n int, req func(i int) (method, path string, body any)) map[int]int {
	t.Helper()
	var counts [600]atomic.Int64
	concurrently(n, func(i int) {
		method, path, body := req(i)
		res := c.Request(t, method, path, body)
		counts[res.Status].Add(1)
	})
	got := map[int]int{}
	for status := range counts {
		if n := counts[status].Load(); n > 0 {
			got[status] = int(n)
		}
	}
	return got
}

func TestConcurrentReservationsNeverOversell(t *testing.T) {
	c := newClient(t)
	id := createProduct(t, c, "Limited edition", 5000, 10, "")

	got := countStatuses(t, c, 50, func(i int) (string, string, any) {
		return http.MethodPost, "/internal/reservations", reservation(fmt.Sprintf("race-%d", i), line{"productId": id, "quantity": 1})
	})
	if got[http.StatusCreated] != 10 || got[http.StatusConflict] != 40 || len(got) != 2 {
		t.Errorf("50 reservations of 1 on stock 10 answered %v, want 10×201 and 40×409", got)
	}
	if stock := stockOf(t, c, id); stock != 0 {
		t.Errorf("stock = %d, want 0", stock)
	}
}

func TestSameReservationConcurrentlyTakesOnce(t *testing.T) {
	c := newClient(t)
	a := createProduct(t, c, "A", 100, 20, "")
	b := createProduct(t, c, "B", 300, 20, "")
	body := reservation("same-order", line{"productId": a, "quantity": 3}, line{"productId": b, "quantity": 2})

	got := countStatuses(t, c, 10, func(int) (string, string, any) {
		return http.MethodPost, "/internal/reservations", body
	})
	if got[http.StatusCreated] != 1 || got[http.StatusOK] != 9 || len(got) != 2 {
		t.Errorf("10 identical reservations answered %v, want 1×201 and 9×200", got)
	}
	if sa, sb := stockOf(t, c, a), stockOf(t, c, b); sa != 17 || sb != 18 {
		t.Errorf("stock %d and %d, want 17 and 18 (taken once)", sa, sb)
	}
}

func TestReleaseGivesBackOnce(t *testing.T) {
	for _, concurrent := range []int{1, 10} {
		t.Run(fmt.Sprintf("%d at once", concurrent), func(t *testing.T) {
			c := newClient(t)
			id := createProduct(t, c, "Chair", 2500, 8, "")
			if res := c.Request(t, http.MethodPost, "/internal/reservations", reservation("chairs", line{"productId": id, "quantity": 5})); res.Status != http.StatusCreated {
				t.Fatalf("reserve: %d %s", res.Status, res.Body)
			}
			for range 2 { // twice in a row, each time concurrent copies
				got := countStatuses(t, c, concurrent, func(int) (string, string, any) {
					return http.MethodDelete, "/internal/reservations/chairs", nil
				})
				if got[http.StatusNoContent] != concurrent {
					t.Errorf("releases answered %v, want %d×204", got, concurrent)
				}
				if stock := stockOf(t, c, id); stock != 8 {
					t.Errorf("stock = %d, want 8 (given back once)", stock)
				}
			}
		})
	}
}

// A release racing the reservation it cancels: whichever lands first, once both are
// answered the order holds nothing.
func TestReleaseRacingReservation(t *testing.T) {
	c := newClient(t)
	a := createProduct(t, c, "A", 100, 100, "")
	b := createProduct(t, c, "B", 100, 100, "")
	const orders = 20
	concurrently(2*orders, func(i int) {
		order := fmt.Sprintf("cancel-%d", i/2)
		if i%2 == 0 {
			// Either answer is right: the release may come first and refuse the reservation.
			_ = c.Request(t, http.MethodPost, "/internal/reservations", reservation(order,
				line{"productId": a, "quantity": 2}, line{"productId": b, "quantity": 3}))
			return
		}
		if res := c.Request(t, http.MethodDelete, "/internal/reservations/"+order, nil); res.Status != http.StatusNoContent {
			t.Errorf("release %s: %d %s", order, res.Status, res.Body)
		}
	})
	if sa, sb := stockOf(t, c, a), stockOf(t, c, b); sa != 100 || sb != 100 {
		t.Errorf("stock %d and %d after every order was released, want 100 and 100", sa, sb)
	}
}

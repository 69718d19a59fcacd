package order

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

func TestReservationRefused(t *testing.T) {
	details := []any{map[string]any{"productId": "6650f1c2a4b7e3d9c1a2b3c4"}}
	tests := []struct {
		name        string
		status      int
		error       string
		kind        error
		message     string // prefix
		keepDetails bool
		settled     bool // nothing was taken: no release needed
	}{
		{"short stock", http.StatusConflict, "insufficient stock", apperr.ErrConflict, "insufficient stock", true, true},
		// An earlier attempt with the order's Idempotency-Key, given up: send again (409
		// would say the stock is short).
		{"released before it was made", http.StatusConflict, "reservation released", apperr.ErrUnavailable, "an earlier attempt with this Idempotency-Key was abandoned", false, true},
		{"unknown product", http.StatusUnprocessableEntity, "unknown product", apperr.ErrUnprocessable, "unknown product", true, true},
		{"mixed currencies", http.StatusUnprocessableEntity, "mixed currencies", apperr.ErrUnprocessable, "mixed currencies", true, true},
		// Not a refusal the order service knows: its stock may be taken, as for a lost answer.
		{"another 409", http.StatusConflict, "something new", apperr.ErrUnavailable, "product service answered 409", false, false},
		{"another 422", http.StatusUnprocessableEntity, "orderId already reserved with different items", apperr.ErrUnavailable, "product service answered 422", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := reservationRefused(tt.status, web.ErrorBody{Error: tt.error, Details: details})
			var ae *apperr.Error
			if !errors.As(err, &ae) || !errors.Is(ae.Kind, tt.kind) || !strings.HasPrefix(ae.Error(), tt.message) {
				t.Fatalf("= %v, want a %v starting %q", err, tt.kind, tt.message)
			}
			if got := len(ae.Details) > 0; got != tt.keepDetails {
				t.Errorf("details %v, want kept: %v", ae.Details, tt.keepDetails)
			}
			if got := reservationSettled(err); got != tt.settled {
				t.Errorf("settled = %v, want %v", got, tt.settled)
			}
		})
	}
}

// TestNewPeersRefusesBadURLs: a peer URL the order service cannot call is refused when the
// service is built, not answered 503 at every order.
func TestNewPeersRefusesBadURLs(t *testing.T) {
	tests := []struct {
		user, product, payment, wantErr string
	}{
		{"http://user:8080", "https://product:8443", "http://payment:8080", ""},
		{"ftp://user:21", "http://product:8080", "http://payment:8080", `USER_SERVICE_URL="ftp://user:21"`},
		{"http://user:8080", "product:8080", "http://payment:8080", `PRODUCT_SERVICE_URL="product:8080"`},
		{"http://user:8080#x", "http://product:8080", "http://payment:8080", `USER_SERVICE_URL="http://user:8080#x"`},
		{"http://user:8080", "http://product:8080", "http://payment:8080?x=1", `PAYMENT_SERVICE_URL="http://payment:8080?x=1"`},
	}
	for _, tt := range tests {
		_, err := newPeers(tt.user, tt.product, tt.payment, time.Second)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("newPeers(%q, %q, %q) = %v, want error %q", tt.user, tt.product, tt.payment, err, tt.wantErr)
		}
	}
}

// TestCheckUserPassesOnlyAUserFound: an order goes on only when the user service answers
// 200 for its user; 404 is an unknown user (422), and any other answer, a 5xx or a 4xx its
// contract does not make, is a 503: the user is not known to exist, and no order is placed
// for one the user service could not vouch for.
func TestCheckUserPassesOnlyAUserFound(t *testing.T) {
	var status atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(status.Load()))
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	p, err := newPeers(srv.URL, srv.URL, srv.URL, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		status int
		kind   error // nil: the user exists
	}{
		{http.StatusOK, nil},
		{http.StatusNotFound, apperr.ErrUnprocessable},
		{http.StatusInternalServerError, apperr.ErrUnavailable},
		{http.StatusServiceUnavailable, apperr.ErrUnavailable},
		{http.StatusForbidden, apperr.ErrUnavailable},
	} {
		status.Store(int32(tt.status))
		err := p.checkUser(context.Background(), bson.NewObjectID().Hex())
		if tt.kind == nil && err != nil || tt.kind != nil && !errors.Is(err, tt.kind) {
			t.Errorf("user service answering %d: checkUser = %v, want %v", tt.status, err, tt.kind)
		}
	}
}

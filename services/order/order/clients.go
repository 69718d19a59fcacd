package order

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/internal/storeuri"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/apperr"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/tracing"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/web"
)

// peers calls the user, product and payment services.
type peers struct {
	http *http.Client
	// sweep is http with pendingLookupTimeout: the sweep's calls, which no client waits for.
	sweep   *http.Client
	user    *url.URL
	product *url.URL
	payment *url.URL
}

// pendingLookupTimeout bounds the sweep's call for the payments of a page of orders left
// PENDING (paymentsOf), in place of PEER_TIMEOUT: on FerretDB the payment service reads
// its whole payments collection for it (some 2 s per 40,000 payments on 2 cores), and no
// request waits for the answer. It stays above the payment service's own bound on that
// query (25 s) and below its HTTP_WRITE_TIMEOUT default (30 s) plus the trip.
const pendingLookupTimeout = 28 * time.Second

func newPeers(userURL, productURL, paymentURL string, timeout time.Duration) (*peers, error) {
	u, err := peerURL("USER_SERVICE_URL", userURL)
	if err != nil {
		return nil, err
	}
	p, err := peerURL("PRODUCT_SERVICE_URL", productURL)
	if err != nil {
		return nil, err
	}
	pay, err := peerURL("PAYMENT_SERVICE_URL", paymentURL)
	if err != nil {
		return nil, err
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	// Every order makes two calls to the same two hosts: keep enough connections idle
	// for the concurrency we serve, or each burst opens (and leaves in TIME_WAIT) new ones.
	base.MaxIdleConnsPerHost = 256
	client := &http.Client{
		Transport: tracing.Transport(base),
		Timeout:   timeout,
		// A peer's API never redirects; a redirect would be answered as it is, not followed
		// to some other resource.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	sweep := *client
	sweep.Timeout = pendingLookupTimeout
	return &peers{http: client, sweep: &sweep, user: u, product: p, payment: pay}, nil
}

// peerURL parses the value of the variable name as a peer's base URL (config.ParseServiceURL).
func peerURL(name, value string) (*url.URL, error) {
	u, err := config.ParseServiceURL(value)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", name, storeuri.RedactURL(value), err)
	}
	return u, nil
}

// call sends a JSON request to path (and query, if any) under the peer's base URL u, and
// decodes a 2xx JSON answer into out. It returns the status and the answer's body; a
// transport error is an Unavailable error naming the peer, never the peer's own message.
func (p *peers) call(ctx context.Context, peer string, method string, u *url.URL, path string, query url.Values, body, out any) (int, []byte, error) {
	return p.callWith(ctx, p.http, peer, method, u, path, query, body, out)
}

// callWith is call through client.
func (p *peers) callWith(ctx context.Context, client *http.Client, peer string, method string, u *url.URL, path string, query url.Values, body, out any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	target := u.JoinPath(path)
	target.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, target.String(), rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if id := web.RequestID(ctx); id != "" {
		req.Header.Set(web.RequestIDHeader, id)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, apperr.Unavailable(peer + " service unavailable").Because(err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, apperr.Unavailable(peer + " service unavailable").Because(err)
	}
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			// An answer the order service cannot read is one it does not expect: 503, as
			// any other (what it asked for may have been done: a reservation's stock is
			// given back as when its answer is lost).
			return 0, nil, apperr.Unavailable(peer + " service answered malformed JSON").Because(err)
		}
	}
	return resp.StatusCode, data, nil
}

// checkUser returns nil when the user exists, an Unprocessable error when not. An id that
// is not one the user service makes names no user and is not sent: a path such as
// "/users/." would be read as another resource.
func (p *peers) checkUser(ctx context.Context, userID string) error {
	if _, ok := mongodb.ParseID(userID); !ok {
		return unknownUser()
	}
	status, _, err := p.call(ctx, "user", http.MethodGet, p.user, "/users/"+url.PathEscape(userID), nil, nil, nil)
	switch {
	case err != nil:
		return err
	case status == http.StatusOK:
		return nil
	case status == http.StatusNotFound:
		return unknownUser()
	default:
		return apperr.Unavailable(fmt.Sprintf("user service answered %d", status))
	}
}

// unknownUser is the answer for an order whose user does not exist.
func unknownUser() error {
	return apperr.Unprocessable("unknown user", apperr.FieldError{Field: "userId", Message: "no such user"})
}

// reservation is the product service's answer to a reservation.
type reservation struct {
	OrderID string `json:"orderId"`
	Items   []struct {
		ProductID      string `json:"productId"`
		Quantity       int    `json:"quantity"`
		UnitPriceCents int64  `json:"unitPriceCents"`
		Currency       string `json:"currency"`
	} `json:"items"`
	TotalCents int64 `json:"totalCents"`
}

// reserve takes the stock of every line for orderID, or none. Reserving the same
// order again returns the first reservation, so a retry takes nothing twice.
func (p *peers) reserve(ctx context.Context, orderID string, items []RequestItem) (reservation, error) {
	var res reservation
	body := map[string]any{"orderId": orderID, "items": items}
	status, data, err := p.call(ctx, "product", http.MethodPost, p.product, "/internal/reservations", nil, body, &res)
	if err != nil {
		return reservation{}, err
	}
	switch status {
	case http.StatusOK, http.StatusCreated:
		if err := res.check(orderID, items); err != nil {
			// JSON, but not the reservation asked for: an answer the order service does not
			// expect, a 503 as any other, its stock given back as when the answer is lost.
			return reservation{}, apperr.Unavailable("product service answered an unexpected reservation").Because(err)
		}
		return res, nil
	case http.StatusConflict, http.StatusUnprocessableEntity:
		var e web.ErrorBody
		_ = json.Unmarshal(data, &e)
		return reservation{}, reservationRefused(status, e)
	default:
		return reservation{}, apperr.Unavailable(fmt.Sprintf("product service answered %d", status))
	}
}

// check tells whether res is the reservation of orderID for items, as the product service's
// contract makes it: the same order, exactly the lines asked for (in any order), one
// currency, and a total that is its lines'. An order is stored from it as it is: answered
// otherwise (a product service of another version, say), the order would be stored with no
// lines, or other lines, or a total of 0 and be charged that, for the stock that was taken.
func (res reservation) check(orderID string, items []RequestItem) error {
	if res.OrderID != orderID {
		return fmt.Errorf("reservation of order %q, want %s", res.OrderID, orderID)
	}
	if len(res.Items) != len(items) {
		return fmt.Errorf("reservation of %d lines, want %d", len(res.Items), len(items))
	}
	want := make(map[string]int, len(items))
	for _, it := range items {
		want[it.ProductID] = it.Quantity
	}
	var total int64
	for _, it := range res.Items {
		q, ok := want[it.ProductID]
		switch {
		case !ok || q != it.Quantity:
			return fmt.Errorf("reservation of %d of product %q, not a line asked for", it.Quantity, it.ProductID)
		case it.UnitPriceCents < 0:
			return fmt.Errorf("reservation of product %q at %d cents", it.ProductID, it.UnitPriceCents)
		case it.Currency != res.Items[0].Currency:
			return fmt.Errorf("reservation in currencies %q and %q", res.Items[0].Currency, it.Currency)
		}
		delete(want, it.ProductID)
		total += int64(it.Quantity) * it.UnitPriceCents
	}
	if total != res.TotalCents {
		return fmt.Errorf("reservation total %d, its lines make %d", res.TotalCents, total)
	}
	return nil
}

// reservationRefused is the order's answer when the product service refused its
// reservation (409 or 422, nothing taken). The refusals a client can act on pass on with
// their details, which are part of the product service's contract (product ids, quantities,
// currencies), not internals: short stock, an unknown product, products priced in different
// currencies. A reservation released before it was made is an earlier attempt at this
// order with its Idempotency-Key, given up: errAttemptAbandoned, a 503 (409 says the stock
// is short), and settled, so the key is freed for the retry. Any other refusal is an
// answer the order service does not expect: 503, as for any other unexpected answer, and
// its stock is given back as when the answer is lost.
func reservationRefused(status int, e web.ErrorBody) error {
	switch {
	case status == http.StatusConflict && e.Error == "insufficient stock":
		return apperr.Conflict("insufficient stock", e.Details...)
	case status == http.StatusConflict && e.Error == "reservation released":
		return errAttemptAbandoned
	case status == http.StatusUnprocessableEntity && e.Error == "unknown product":
		return apperr.Unprocessable("unknown product", e.Details...)
	case status == http.StatusUnprocessableEntity && e.Error == "mixed currencies":
		return apperr.Unprocessable("mixed currencies: the products of an order must share one currency", e.Details...)
	default:
		return apperr.Unavailable(fmt.Sprintf("product service answered %d %q", status, e.Error))
	}
}

// reservationSettled tells a reserve error that settles the reservation (the product service
// answered that it took nothing) from one that leaves it unknown: the request may have
// taken the stock before the answer was lost.
// A reservation that could not be sent at all (no connection to the product service: it
// is down) took nothing either.
func reservationSettled(err error) bool {
	return errors.Is(err, errAttemptAbandoned) || errors.Is(err, apperr.ErrConflict) || errors.Is(err, apperr.ErrUnprocessable) ||
		notSent(err)
}

// notSent tells whether err is a request that never left: its connection could not be
// made. An HTTP client sends a request only on a connection it made, or on one it reused,
// whose failure is no dial error; and it tries a POST again on a new connection only when
// nothing of it was written.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// errAttemptAbandoned answers a request whose Idempotency-Key names an earlier attempt that
// was given up (its stock released, or its order fenced off) before this one could finish
// it: nothing was placed, the key is freed, and the same request sent again places the order.
var errAttemptAbandoned = apperr.Unavailable("an earlier attempt with this Idempotency-Key was abandoned; send the request again")

// release gives an order's stock back; releasing twice is harmless. A 404 (no such
// reservation) leaves nothing to give back. Any other answer but a 2xx is an error, one
// wrapping errReleaseRefused for a 4xx: an answer about this order, where a 5xx or no
// answer says that the product service is out.
func (p *peers) release(ctx context.Context, orderID string) error {
	status, _, err := p.call(ctx, "product", http.MethodDelete, p.product, "/internal/reservations/"+url.PathEscape(orderID), nil, nil, nil)
	switch {
	case err != nil:
		return err
	case status == http.StatusNoContent || status == http.StatusOK || status == http.StatusNotFound:
		return nil
	case status/100 == 4:
		return fmt.Errorf("release stock of order %s: %w: %d", orderID, errReleaseRefused, status)
	default:
		return fmt.Errorf("release stock of order %s: product service answered %d", orderID, status)
	}
}

// errReleaseRefused is the product service refusing a release with a 4xx other than 404,
// which its contract does not answer.
var errReleaseRefused = errors.New("product service refused the release")

// paymentsOf returns the payments the payment service holds for the orders orderIDs (at
// most pendingPage), by order id, as the result event of each carried it; an order
// it holds none for is not in the map. It asks `GET /internal/payments?orderIds=`, one
// query for them all, within pendingLookupTimeout. An answer but 200 is an Unavailable
// error, as a transport error is.
func (p *peers) paymentsOf(ctx context.Context, orderIDs []string) (map[string]PaymentResult, error) {
	// A payment as the payment service shows it: a result's fields, its id under "id".
	var page struct {
		Items []struct {
			ID string `json:"id"`
			PaymentResult
		} `json:"items"`
	}
	query := url.Values{"orderIds": {strings.Join(orderIDs, ",")}}
	status, _, err := p.callWith(ctx, p.sweep, "payment", http.MethodGet, p.payment, "/internal/payments", query, nil, &page)
	switch {
	case err != nil:
		return nil, err
	case status != http.StatusOK:
		return nil, apperr.Unavailable(fmt.Sprintf("payment service answered %d", status))
	}
	out := make(map[string]PaymentResult, len(page.Items))
	for _, it := range page.Items {
		r := it.PaymentResult
		r.PaymentID = it.ID
		out[r.OrderID] = r
	}
	return out, nil
}

//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The shop's resources as its clients see them (see the services' openapi.yaml).
type (
	user struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	product struct {
		ID          string `json:"id,omitempty"` // empty in a POST: the service names it
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
		PriceCents  int64  `json:"priceCents"`
		Currency    string `json:"currency,omitempty"`
		Stock       int64  `json:"stock"`
	}
	orderLine struct {
		ProductID string `json:"productId"`
		Quantity  int64  `json:"quantity"`
	}
	newOrder struct {
		UserID string      `json:"userId"`
		Items  []orderLine `json:"items"`
	}
	order struct {
		ID         string `json:"id"`
		UserID     string `json:"userId"`
		TotalCents int64  `json:"totalCents"`
		Currency   string `json:"currency"`
		Status     string `json:"status"`
		Reason     string `json:"reason"`
	}
	payment struct {
		ID          string `json:"id"`
		OrderID     string `json:"orderId"`
		AmountCents int64  `json:"amountCents"`
		Status      string `json:"status"`
	}
	page[T any] struct {
		Items []T    `json:"items"`
		Next  string `json:"next"`
	}
	apiError struct {
		Error   string            `json:"error"`
		Details []json.RawMessage `json:"details"`
	}
	suiteHealth struct {
		Status   string `json:"status"`
		Services map[string]struct {
			Status string `json:"status"`
		} `json:"services"`
	}
)

// Order states and payment outcomes of the contract.
const (
	statusPending   = "PENDING"
	statusPaid      = "PAID"
	statusCancelled = "CANCELLED"
	paymentOK       = "SUCCEEDED"
	paymentFailed   = "FAILED"
)

// shopAPI speaks the shop's HTTP API through its gateway.
type shopAPI struct {
	gateway *podForward
	http    *http.Client
}

func newShopAPI(gateway *podForward) *shopAPI {
	return &shopAPI{gateway: gateway, http: &http.Client{Timeout: 30 * time.Second}}
}

// reply is one answer of the gateway.
type reply struct {
	method, path string
	status       int
	header       http.Header
	body         []byte
}

// String shows the request and its answer in failure messages.
func (r reply) String() string {
	return fmt.Sprintf("%s %s -> HTTP %d %s", r.method, r.path, r.status, bytes.TrimSpace(r.body))
}

// decode reads the JSON body into v.
func (r reply) decode(v any) error {
	if err := json.Unmarshal(r.body, v); err != nil {
		return fmt.Errorf("%s: body is not the JSON expected: %w", r, err)
	}
	return nil
}

// send makes a request (body, when not nil, as JSON) as a polite client does: when
// the gateway answers 429 it waits the Retry-After and asks again. Every spec shares
// the one client's quota, and only the rate-limit checks want to see the 429: they
// use sendTo.
func (a *shopAPI) send(ctx context.Context, method, path string, body any, header http.Header) (reply, error) {
	for {
		base, err := a.gateway.URL(ctx)
		if err != nil {
			return reply{}, err
		}
		r, err := a.sendTo(ctx, base, method, path, body, header)
		if err != nil || r.status != http.StatusTooManyRequests {
			return r, err
		}
		wait := time.Second
		if s, err := strconv.Atoi(r.header.Get("Retry-After")); err == nil {
			wait = time.Duration(s) * time.Second
		}
		fmt.Fprintf(GinkgoWriter, "%s: waiting %s\n", r, wait)
		select {
		case <-ctx.Done():
			return reply{}, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// sendTo makes one request to the gateway at base and returns its answer, whatever
// it is.
func (a *shopAPI) sendTo(ctx context.Context, base, method, path string, body any, header http.Header) (reply, error) {
	var in io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return reply{}, err
		}
		in = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, in)
	if err != nil {
		return reply{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{method: method, path: path, status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// expect makes one request, requires the status want, and decodes the body into
// into (when not nil).
func (a *shopAPI) expect(ctx context.Context, method, path string, body any, want int, into any) reply {
	GinkgoHelper()
	r, err := a.send(ctx, method, path, body, nil)
	Expect(err).NotTo(HaveOccurred())
	Expect(r.status).To(Equal(want), r.String())
	if into != nil {
		Expect(r.decode(into)).To(Succeed())
	}
	return r
}

// get GETs path and decodes a 200's body into into: for Eventually, where any other
// answer is one more reason to ask again.
func (a *shopAPI) get(ctx context.Context, path string, into any) error {
	r, err := a.send(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return err
	}
	if r.status != http.StatusOK {
		return fmt.Errorf("%s", r)
	}
	return r.decode(into)
}

// listAll GETs every page of a collection (?limit=100&after=...) at path, which may
// carry a query already.
func listAll[T any](ctx context.Context, a *shopAPI, path string) ([]T, error) {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var all []T
	query := "limit=100"
	for {
		var p page[T]
		if err := a.get(ctx, path+sep+query, &p); err != nil {
			return nil, err
		}
		all = append(all, p.Items...)
		if p.Next == "" {
			return all, nil
		}
		query = "limit=100&after=" + url.QueryEscape(p.Next)
	}
}

// placeOrder places an order under an Idempotency-Key and retries, once a second,
// while the shop cannot take it (a broken forward, 502, 503, 504): the key makes a
// retry of a request that did arrive return the same order, never a second one.
func (a *shopAPI) placeOrder(ctx context.Context, key string, o newOrder) (order, error) {
	header := http.Header{"Idempotency-Key": {key}}
	for {
		r, err := a.send(ctx, http.MethodPost, "/orders", o, header)
		switch {
		case err != nil && ctx.Err() != nil:
			return order{}, fmt.Errorf("order %s: %w", key, err)
		case err != nil:
			fmt.Fprintf(GinkgoWriter, "order %s: %v; retrying\n", key, err)
		case r.status == http.StatusCreated || r.status == http.StatusOK:
			var placed order
			return placed, r.decode(&placed)
		case r.status == http.StatusBadGateway || r.status == http.StatusServiceUnavailable || r.status == http.StatusGatewayTimeout:
			fmt.Fprintf(GinkgoWriter, "order %s: %s; retrying\n", key, r)
		default:
			return order{}, fmt.Errorf("order %s: %s", key, r)
		}
		select {
		case <-ctx.Done():
			return order{}, fmt.Errorf("order %s: %w", key, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// rateLimit parses the header name (RateLimit or RateLimit-Policy) of r.
func (r reply) rateLimit(name string) (rateLimitField, error) {
	v := r.header.Get(name)
	if v == "" {
		return rateLimitField{}, fmt.Errorf("%s: no %s header", r, name)
	}
	return parseRateLimitField(v)
}

// waitForFullQuota waits until this client's whole rate-limit quota is back: one
// request (answered 200 or 429) reads the RateLimit header's t, the seconds until the
// quota is full again.
func (a *shopAPI) waitForFullQuota(ctx context.Context, path string) error {
	base, err := a.gateway.URL(ctx)
	if err != nil {
		return err
	}
	r, err := a.sendTo(ctx, base, http.MethodGet, path, nil, nil)
	if err != nil {
		return err
	}
	f, err := r.rateLimit("RateLimit")
	if err != nil {
		return err
	}
	t := time.Duration(f.params["t"]) * time.Second
	fmt.Fprintf(GinkgoWriter, "waiting %s for the rate-limit quota to refill\n", t)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(t):
		return nil
	}
}

// burst GETs path, one request after the other as fast as the gateway answers, until
// it answers 429 or max requests were sent. It returns every answer and the time the
// burst took.
func (a *shopAPI) burst(ctx context.Context, path string, max int) ([]reply, time.Duration, error) {
	base, err := a.gateway.URL(ctx)
	if err != nil {
		return nil, 0, err
	}
	var replies []reply
	start := time.Now()
	for range max {
		r, err := a.sendTo(ctx, base, http.MethodGet, path, nil, nil)
		if err != nil {
			return replies, time.Since(start), err
		}
		replies = append(replies, r)
		if r.status == http.StatusTooManyRequests {
			break
		}
	}
	return replies, time.Since(start), nil
}

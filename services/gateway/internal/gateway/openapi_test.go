package gateway

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"testing"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/apitest"
)

// TestOpenAPI checks the gateway's own endpoints against services/gateway/openapi.yaml, and
// that every response the document lists is produced.
func TestOpenAPI(t *testing.T) {
	s := newSuite(t, nil)
	gw, err := url.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	// The gateway is reached over HTTP, through a plain reverse proxy standing in for a client.
	api := apitest.New(t, "../../openapi.yaml", httputil.NewSingleHostReverseProxy(gw))

	for _, path := range []string{"/health", "/healthz", "/readyz", "/metrics"} {
		if res := api.Request(t, http.MethodGet, path, nil); res.Status != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, res.Status, res.Body)
		}
	}
	s.upstreams["order"].down.Store(true)
	if res := api.Request(t, http.MethodGet, "/health", nil); res.Status != http.StatusServiceUnavailable {
		t.Errorf("GET /health with order down: %d %s", res.Status, res.Body)
	}
	if res := api.Request(t, http.MethodGet, "/nowhere", nil); res.Status != http.StatusNotFound {
		t.Errorf("GET /nowhere: %d", res.Status)
	}
	if res := api.Request(t, http.MethodDelete, "/health", nil); res.Status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /health: %d", res.Status)
	}
	if missing := api.Uncovered(); len(missing) > 0 {
		t.Errorf("documented responses never produced: %v", missing)
	}
}

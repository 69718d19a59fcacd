package gateway

import (
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
)

// orderMargin is what the gateway's UPSTREAM_TIMEOUT must leave past the order service's
// PLACEMENT_TIMEOUT: the request's and the answer's trips and the gateway's own steps, on a
// loaded node.
const orderMargin = 2 * time.Second

// TestPlacementAnswersBeforeTheGateway: with every default of both, the order service answers
// POST /orders before the gateway gives up on it, by orderMargin, so a client gets the order
// service's own answer (a 503 that says what became of the order) and never the gateway's 504
// (the order may exist). It lives here, where both configurations can be loaded: the gateway's
// package is internal to the gateway.
func TestPlacementAnswersBeforeTheGateway(t *testing.T) {
	var gw Config
	if err := config.LoadFrom(&gw, serviceURLs); err != nil {
		t.Fatal(err)
	}
	var ord order.Config
	if err := config.LoadFrom(&ord, []string{"MONGODB_URI=mongodb://db:27017/"}); err != nil {
		t.Fatal(err)
	}
	if ord.PlacementTimeout+orderMargin > gw.UpstreamTimeout {
		t.Errorf("the order service's PLACEMENT_TIMEOUT %s + %s > the gateway's UPSTREAM_TIMEOUT %s",
			ord.PlacementTimeout, orderMargin, gw.UpstreamTimeout)
	}
}

package gateway

import (
	"testing"
	"time"

	"github.com/shopkeeper-dev/shopkeeper/services/internal/config"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/mongodb"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
)

// answerMargin is what the gateway's UPSTREAM_TIMEOUT must leave past the longest a service
// takes to answer on its own (its 503 included): the request's and the answer's trips and the
// gateway's own steps, on a loaded node.
const answerMargin = 2 * time.Second

// upstreamTimeout is the gateway's UPSTREAM_TIMEOUT default.
func upstreamTimeout(t *testing.T) time.Duration {
	t.Helper()
	var gw Config
	if err := config.LoadFrom(&gw, serviceURLs); err != nil {
		t.Fatal(err)
	}
	return gw.UpstreamTimeout
}

// TestPlacementAnswersBeforeTheGateway: with every default of both, the order service answers
// POST /orders before the gateway gives up on it, by answerMargin, so a client gets the order
// service's own answer (a 503 that says what became of the order) and never the gateway's 504
// (the order may exist). It lives here, where both configurations can be loaded: the gateway's
// package is internal to the gateway.
func TestPlacementAnswersBeforeTheGateway(t *testing.T) {
	var ord order.Config
	if err := config.LoadFrom(&ord, []string{"MONGODB_URI=mongodb://db:27017/"}); err != nil {
		t.Fatal(err)
	}
	if upstream := upstreamTimeout(t); ord.PlacementTimeout+answerMargin > upstream {
		t.Errorf("the order service's PLACEMENT_TIMEOUT %s + %s > the gateway's UPSTREAM_TIMEOUT %s",
			ord.PlacementTimeout, answerMargin, upstream)
	}
}

// TestDatabaseAnswersBeforeTheGateway: with every default, a service's request that waits on
// a database it cannot reach, or one that does not answer, ends in the service's 503
// ("database unavailable": the client may send it again) before the gateway gives up on it
// with a 504, by answerMargin.
func TestDatabaseAnswersBeforeTheGateway(t *testing.T) {
	var db struct{ Mongo mongodb.Config }
	if err := config.LoadFrom(&db, []string{"MONGODB_URI=mongodb://db:27017/"}); err != nil {
		t.Fatal(err)
	}
	if upstream := upstreamTimeout(t); db.Mongo.OperationTimeout+answerMargin > upstream {
		t.Errorf("the services' MONGODB_OPERATION_TIMEOUT %s + %s > the gateway's UPSTREAM_TIMEOUT %s",
			db.Mongo.OperationTimeout, answerMargin, upstream)
	}
}

package mongodb

import (
	"errors"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"
)

// Unreachable tells whether err is the database not answering: no server could be
// selected, the connection failed or was cut, or an operation ran out of time. Such an
// error says nothing of the request, which may succeed once the database is back: it is
// a 503, not a 500 (web.RespondError).
func Unreachable(err error) bool {
	return mongo.IsNetworkError(err) || mongo.IsTimeout(err) || errors.As(err, new(topology.ServerSelectionError))
}

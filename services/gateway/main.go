// Command gateway is the shop's API gateway: it routes /users, /products, /orders and /payments
// (and the seed's /user/…, /product/…, /order/…, /payment/… form) to the services, limits each
// client's request rate and serves GET /health for the suite. Its program is app.Run.
package main

import (
	"github.com/shopkeeper-dev/shopkeeper/services/gateway/app"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/service"
)

func main() { service.Main("gateway", app.Run) }

// Command order is the shop's order service: POST/GET /orders. It publishes
// order.created through an outbox and settles orders from payment results.
package main

import (
	"github.com/shopkeeper-dev/shopkeeper/services/internal/service"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
)

func main() { service.Main("order", order.Run) }

// Command payment is the shop's payment service: it charges each order once when
// order.created arrives and serves GET /payments.
package main

import (
	"github.com/shopkeeper-dev/shopkeeper/services/internal/service"
	"github.com/shopkeeper-dev/shopkeeper/services/payment/payment"
)

func main() { service.Main("payment", payment.Run) }

// Command product is the shop's product service: the catalogue (CRUD /products) and
// the stock reservations the order service makes (/internal/reservations). Its API is
// openapi.yaml; it stores in MongoDB or FerretDB.
package main

import (
	"github.com/shopkeeper-dev/shopkeeper/services/internal/service"
	"github.com/shopkeeper-dev/shopkeeper/services/product/app"
)

func main() { service.Main("product", app.Run) }

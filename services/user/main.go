// Command user is the shop's user service: its customers (CRUD /users) with unique
// emails. Its API is openapi.yaml; it stores in MongoDB or FerretDB (MONGODB_URI).
package main

import (
	"github.com/shopkeeper-dev/shopkeeper/services/internal/service"
	"github.com/shopkeeper-dev/shopkeeper/services/user/app"
)

func main() { service.Main(app.Name, app.Run) }

// Command shopkeeper-services is every service of the shop in one binary, so the services
// image carries one copy of the Go runtime and of the libraries they share instead of
// five. It runs the service it is called as, like a multi-call binary: the image links
// /gateway, /user, /product, /order and /payment to it, and each Deployment runs its own
// link. `shopkeeper-services NAME` does the same where no link exists.
//
// Each service's own command (services/<name>) runs the same Run function.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	// The images carry no CA certificates (make images builds them from the binary
	// alone): a store reached over TLS (mongodb+srv://, amqps://) is verified against
	// these roots when the system has none.
	_ "golang.org/x/crypto/x509roots/fallback"

	gateway "github.com/shopkeeper-dev/shopkeeper/services/gateway/app"
	"github.com/shopkeeper-dev/shopkeeper/services/internal/service"
	"github.com/shopkeeper-dev/shopkeeper/services/order/order"
	"github.com/shopkeeper-dev/shopkeeper/services/payment/payment"
	product "github.com/shopkeeper-dev/shopkeeper/services/product/app"
	user "github.com/shopkeeper-dev/shopkeeper/services/user/app"
)

// services maps a name the binary may be called as to the service it runs.
var services = map[string]func(context.Context) error{
	"gateway": gateway.Run,
	"user":    user.Run,
	"product": product.Run,
	"order":   order.Run,
	"payment": payment.Run,
}

func main() {
	name, args, err := pick(os.Args)
	if err != nil {
		fmt.Fprintln(os.Stderr, "shopkeeper-services:", err)
		os.Exit(2)
	}
	os.Args = args
	service.Main(name, services[name])
}

// pick says which service args (os.Args) asks for: the name the binary was called as,
// else its first argument, which is then removed so the service sees its own arguments.
func pick(args []string) (string, []string, error) {
	if len(args) > 0 {
		if name := filepath.Base(args[0]); services[name] != nil {
			return name, args, nil
		}
	}
	if len(args) > 1 && services[args[1]] != nil {
		return args[1], append([]string{args[1]}, args[2:]...), nil
	}
	names := make([]string, 0, len(services))
	for n := range services {
		names = append(names, n)
	}
	slices.Sort(names)
	return "", nil, fmt.Errorf("call it as, or give it as first argument, one of: %s", strings.Join(names, ", "))
}

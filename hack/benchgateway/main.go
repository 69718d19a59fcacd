// Command benchgateway is the fixed-response upstream of the gateway benchmark
// (hack/bench-gateway.sh): every path answers 200 with the same small JSON document, the size of
// one product, so the benchmark measures the proxy and not the service behind it.
package main

import (
	"flag"
	"log"
	"net/http"
	"strconv"
	"time"
)

// body is a product as the product service returns it.
const body = `{"id":"6650f1c2a4b7e3d9c1a2b3c4","name":"Espresso cup","description":"Porcelain, 80 ml",` +
	`"priceCents":1299,"currency":"USD","stock":42,"createdAt":"2025-01-01T00:00:00Z"}` + "\n"

func main() {
	addr := flag.String("addr", "127.0.0.1:18081", "listen address")
	flag.Parse()

	payload := []byte(body)
	length := strconv.Itoa(len(payload))
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{length}
		_, _ = w.Write(payload)
	})
	srv := &http.Server{Addr: *addr, Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// Command benchgateway serves the gateway benchmark (hack/bench-gateway.sh) in one of two
// roles. By default it is the fixed-response upstream: every path answers 200 with the same
// small JSON document, the size of one product, so the benchmark measures the proxy and not
// the service behind it. With -proxy it is the floor the gateway is compared with: the
// smallest reverse proxy on the gateway's HTTP stack (fasthttp's Server and HostClient, kept-
// alive connections), which forwards each request as it came and its answer as it came back,
// and does nothing else (no rate limit, request id, access log, metrics, timeouts or header
// rewriting).
package main

import (
	"flag"
	"log"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// body is a product as the product service returns it.
const body = `{"id":"6650f1c2a4b7e3d9c1a2b3c4","name":"Espresso cup","description":"Porcelain, 80 ml",` +
	`"priceCents":1299,"currency":"USD","stock":42,"createdAt":"2025-01-01T00:00:00Z"}` + "\n"

func main() {
	addr := flag.String("addr", "127.0.0.1:18081", "listen address")
	proxyTo := flag.String("proxy", "", "host:port of the upstream to forward to: serve as the bare fasthttp proxy")
	flag.Parse()

	if *proxyTo != "" {
		log.Fatal(bareProxy(*addr, *proxyTo))
	}
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

// bareProxy serves on addr, forwarding every request to upstream over kept-alive connections.
func bareProxy(addr, upstream string) error {
	client := &fasthttp.HostClient{Addr: upstream, MaxConns: 512}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if err := client.Do(&ctx.Request, &ctx.Response); err != nil {
				ctx.Error(err.Error(), fasthttp.StatusBadGateway)
			}
		},
		NoDefaultServerHeader: true,
	}
	return srv.ListenAndServe(addr)
}

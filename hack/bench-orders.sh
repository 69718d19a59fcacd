#!/usr/bin/env bash
# Measures the order flow (orders/s, placed -> PAID p50/p99) with every service in one
# process on a private RabbitMQ node and FerretDB; see services/order/internal/benchorders. Arguments go
# to the program, e.g. hack/bench-orders.sh -orders 2000 -concurrency 32 (defaults: 500 orders, 16 clients).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
hack/install-rabbitmq.sh
# Built, then exec'd: a signal (Ctrl-C, SIGTERM) then reaches the program itself, which
# stops its orders and its RabbitMQ and FerretDB children (`go run` would not pass it on).
go build -o bin/benchorders ./services/order/internal/benchorders
exec bin/benchorders "$@"

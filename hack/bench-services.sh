#!/usr/bin/env bash
# Measures the user and product services against FerretDB on this machine: requests/s and
# latency percentiles of GET /users/{id} and POST /internal/reservations (each request a new
# order of one unit, so every one takes stock), next to a reference measured in the same run:
# GET /healthz of the same user binary (the same middleware stack, no database).
#
# FerretDB (bin/ferretdb, built from hack/tools when missing), the two services and wrk all run
# on loopback here and share the machine's cores.
#
# Environment:
#   CONNECTIONS  wrk connections (32)   DURATION  length of each measured run (10s)
#   THREADS      wrk threads (2)        STRICT    "1": exit 1 on any non-2xx answer
#   ONLY         "product": only the reservations (no user runs)
#   BASELINE     a git revision: also measure the product service built from it, in the same
#                run, against the same FerretDB (its own database), before the current one
#   FERRETDB     the FerretDB server binary (bin/ferretdb, built from hack/tools when missing)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONNECTIONS="${CONNECTIONS:-32}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
STRICT="${STRICT:-0}"
ONLY="${ONLY:-}"
BASELINE="${BASELINE:-}"
FERRETDB="${FERRETDB:-$ROOT/bin/ferretdb}"
STOCK=1000000000

"$ROOT/hack/apt-install.sh" wrk curl python3

WORK="$(mktemp -d)"
PIDS=()
stop_all() {
	# start runs in a command substitution (a subshell): its children are in the file.
	if [ -f "$WORK/pids" ]; then mapfile -t -O "${#PIDS[@]}" PIDS <"$WORK/pids"; fi
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	done
	rm -rf "$WORK"
}
trap stop_all EXIT

echo "building ferretdb, user and product" >&2
if [ ! -x "$FERRETDB" ]; then (cd "$ROOT/hack/tools" && go build -o "$FERRETDB" ./ferretdb); fi
(cd "$ROOT" && go build -o "$WORK/user" ./services/user && go build -o "$WORK/product" ./services/product)
if [ -n "$BASELINE" ]; then
	echo "building product at $BASELINE" >&2
	mkdir "$WORK/baseline"
	git -C "$ROOT" archive "$BASELINE" go.mod go.sum services internal | tar -x -C "$WORK/baseline"
	(cd "$WORK/baseline" && go build -o "$WORK/product-baseline" ./services/product)
fi

# FerretDB prints its URI on its first line of output once it listens.
"$FERRETDB" -listen-addr 127.0.0.1:0 -data-dir "$WORK/data" >"$WORK/ferretdb.out" 2>"$WORK/ferretdb.log" &
PIDS+=($!)
for _ in $(seq 300); do [ -s "$WORK/ferretdb.out" ] && break; sleep 0.1; done
MONGO="$(head -n1 "$WORK/ferretdb.out")"
[[ "$MONGO" == mongodb://* ]] || { echo "ferretdb did not start:" >&2; cat "$WORK/ferretdb.log" >&2; exit 1; }

port_of() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME DATABASE: runs a service with only PORT and MONGODB_URI set (and its log to a file).
start() {
	local port
	port="$(port_of)"
	env -i PATH="$PATH" PORT="$port" MONGODB_URI="${MONGO}$2" "$WORK/$1" >"$WORK/$1.log" 2>&1 &
	echo "$!" >>"$WORK/pids"
	for _ in $(seq 100); do
		if curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; then echo "http://127.0.0.1:$port"; return; fi
		sleep 0.1
	done
	echo "$1 did not become ready:" >&2
	cat "$WORK/$1.log" >&2
	exit 1
}
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
post() { curl -fsS -H 'Content-Type: application/json' -d "$2" "$1"; }
# new_product URL: creates the product every reservation takes from; prints its id.
new_product() {
	post "$1/products" \
		"{\"name\":\"Bench product\",\"description\":\"for the benchmark\",\"priceCents\":1999,\"currency\":\"USD\",\"stock\":$STOCK}" |
		json_field id
}

# Each wrk thread has its own prefix and counter, so every request is a new order id.
cat >"$WORK/reserve.lua" <<'LUA'
local threads = 0
function setup(thread)
	threads = threads + 1
	thread:set("prefix", string.format("bench-%d-%d", os.time(), threads))
end
local counter = 0
local product = os.getenv("PRODUCT_ID")
function request()
	counter = counter + 1
	local body = string.format('{"orderId":"%s-%d","items":[{"productId":"%s","quantity":1}]}', prefix, counter, product)
	return wrk.format("POST", "/internal/reservations", {["Content-Type"] = "application/json"}, body)
end
LUA

# to_ms turns a wrk latency (812.00us, 1.23ms, 1.01s) into milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[^m]s$/) n *= 1000; printf "%.2f", n }'
}

# cpu_ticks PID...: the CPU time (user + system, in clock ticks) the processes used so far.
cpu_ticks() {
	local pid total=0
	for pid in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
	echo "$total"
}

# bench LABEL URL [wrk args...]: a 2 s warm-up, then one measured run; prints a table row
# with the load average (1 min) at its end and, when CPU_PIDS names processes (the service
# and FerretDB), the CPU time they spent per request: unlike requests/s, it hardly depends
# on what else the machine runs.
# Requests get 30 s before wrk counts them as timeouts (its 2 s default would drop the slow
# ones from the percentiles).
FAILED=0
bench() {
	local label="$1" url="$2" out rps p50 p99 bad ticks requests cpu="-"
	shift 2
	wrk -t"$THREADS" -c"$CONNECTIONS" -d2s --timeout 30s "$@" "$url" >/dev/null
	# shellcheck disable=SC2086 # CPU_PIDS is a list
	[ -z "${CPU_PIDS:-}" ] || ticks="$(cpu_ticks $CPU_PIDS)"
	out="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 30s --latency "$@" "$url")"
	if [ -n "${CPU_PIDS:-}" ]; then
		# shellcheck disable=SC2086
		ticks=$(($(cpu_ticks $CPU_PIDS) - ticks))
		requests="$(awk '/requests in/ {print $1}' <<<"$out")"
		cpu="$(awk -v t="$ticks" -v n="$requests" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t * 1000 / hz / n }')"
	fi
	rps="$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")"
	p50="$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")"
	p99="$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
	bad="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
	if [ -n "$bad" ]; then FAILED=1; echo "$label: $bad non-2xx answers" >&2; fi
	if grep -q 'Socket errors' <<<"$out"; then FAILED=1; echo "$label: $(grep 'Socket errors' <<<"$out")" >&2; fi
	printf '%-38s %12s %10s %10s %6s %10s\n' "$label" "$rps" "$p50" "$p99" "$(cut -d' ' -f1 /proc/loadavg)" "$cpu"
}

# bench_reservations LABEL BINARY DATABASE: starts the product BINARY on its own database,
# measures reservations, and prints how many were stored (the product's stock says it).
bench_reservations() {
	local url id left
	url="$(start "$2" "$3")"
	id="$(new_product "$url")"
	PRODUCT_ID="$id" CPU_PIDS="$(tail -n1 "$WORK/pids") ${PIDS[0]}" bench "$1" "$url" -s "$WORK/reserve.lua"
	left="$(curl -fsS "$url/products/$id" | json_field stock)"
	echo "  reservations stored during the runs (warm-up included): $((STOCK - left))"
}

echo
echo "services benchmark: $CONNECTIONS connections, $THREADS wrk threads, $DURATION per run, $(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg) at start, FerretDB (SQLite) on loopback"
printf '%-38s %12s %10s %10s %6s %10s\n' "" "requests/s" "p50 ms" "p99 ms" "load" "cpu ms/req"
if [ "$ONLY" != product ]; then
	USER_URL="$(start user bench_users)"
	USER_ID="$(post "$USER_URL/users" '{"name":"Bench User","email":"bench@example.com"}' | json_field id)"
	USER_PID="$(tail -n1 "$WORK/pids")"
	CPU_PIDS="$USER_PID" bench "reference: user GET /healthz" "$USER_URL/healthz"
	CPU_PIDS="$USER_PID ${PIDS[0]}" bench "user GET /users/{id}" "$USER_URL/users/$USER_ID"
fi
if [ -n "$BASELINE" ]; then
	bench_reservations "product $BASELINE POST /internal/reserv." product-baseline bench_products_baseline
fi
bench_reservations "product POST /internal/reservations" product bench_products
if [ "$FAILED" = 1 ] && [ "$STRICT" = 1 ]; then exit 1; fi

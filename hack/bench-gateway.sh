#!/usr/bin/env bash
# Measures the gateway's overhead: wrk drives a fixed-response upstream (hack/benchgateway)
# directly, then through the gateway (rate limiter on, with a limit it never reaches, access logs
# on as deployed), and prints requests/s, p50 and p99 of both and their ratio.
#
# Everything runs on loopback on this machine, so wrk, the gateway and the upstream share its
# cores; that is the setting the goal (ratio >= 0.55, gateway p99 < 5 ms at 64 connections) is
# stated for.
#
# Environment:
#   CONNECTIONS  wrk connections (64)        DURATION  length of each measured run (10s)
#   THREADS      wrk threads (2)             RUNS      measured runs of each side (3); best is kept
#   PIN          "1": wrk on CPU 1, servers on CPU 0 (default: no pinning, the scheduler decides)
#   PROFILE      a file: write a 10 s CPU profile of the gateway under load there
#   STRICT       "1": exit 1 when the goal is not met
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
RUNS="${RUNS:-3}"
PIN="${PIN:-0}"
PROFILE="${PROFILE:-}"
STRICT="${STRICT:-0}"

if ! command -v wrk >/dev/null; then
	echo "installing wrk (Debian package)" >&2
	apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "building the gateway and the upstream" >&2
(cd "$ROOT" && go build -o "$WORK/gateway" ./services/gateway && go build -o "$WORK/upstream" ./hack/benchgateway)

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() {
	for _ in $(seq 100); do
		if curl -fsS -o /dev/null "$1"; then return 0; fi
		sleep 0.1
	done
	echo "$1 did not answer" >&2
	return 1
}

SERVER_CPU=() WRK_CPU=()
if [ "$PIN" = 1 ]; then SERVER_CPU=(taskset -c 0) WRK_CPU=(taskset -c 1); fi

UP_PORT="$(free_port)"
"${SERVER_CPU[@]}" "$WORK/upstream" -addr "127.0.0.1:$UP_PORT" &
UP_PID=$!
PIDS+=("$UP_PID")

GW_PORT="$(free_port)"
PPROF_PORT="$(free_port)"
UP="http://127.0.0.1:$UP_PORT"
PORT="$GW_PORT" USER_SERVICE_URL="$UP" PRODUCT_SERVICE_URL="$UP" ORDER_SERVICE_URL="$UP" PAYMENT_SERVICE_URL="$UP" \
	RATE_LIMIT_REQUESTS=5000000 RATE_LIMIT_WINDOW=24h LOG_LEVEL=info PPROF_ADDR="127.0.0.1:$PPROF_PORT" \
	"${SERVER_CPU[@]}" "$WORK/gateway" >"$WORK/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")

wait_http "$UP/readyz"
wait_http "http://127.0.0.1:$GW_PORT/health" # the route to the upstream works

# wrk prints latencies as 812.00us, 1.23ms or 1.01s; ms() turns one into milliseconds.
ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000
		printf "%.2f", n }'
}

# cpu_ticks PID prints the user+system CPU time of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICKS="$(getconf CLK_TCK)"

# us_per_req TICKS_BEFORE TICKS_AFTER REQUESTS prints CPU microseconds per request.
us_per_req() { awk -v a="$1" -v b="$2" -v n="$3" -v hz="$TICKS" 'BEGIN {printf "%.0f", (b - a) * 1e6 / hz / n}'; }

# measure URL prints "requests/s p50_ms p99_ms wrk_us upstream_us gateway_us" of the best of
# RUNS runs (highest requests/s); the last three are CPU microseconds per request of each process.
measure() {
	local url="$1" best="" out rps p50 p99 n u0 u1 g0 g1 wrk_cpu
	"${WRK_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$url" >/dev/null # warm-up: pools, caches
	for _ in $(seq "$RUNS"); do
		u0="$(cpu_ticks "$UP_PID")" g0="$(cpu_ticks "$GW_PID")"
		out="$( { TIMEFORMAT='wrk-cpu %U %S'; time "${WRK_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url"; } 2>&1)"
		u1="$(cpu_ticks "$UP_PID")" g1="$(cpu_ticks "$GW_PID")"
		if grep -q 'Non-2xx' <<<"$out"; then
			echo "non-2xx answers from $url:" >&2
			echo "$out" >&2
			exit 1
		fi
		rps="$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")"
		n="$(awk '/requests in/ {print $1}' <<<"$out")"
		p50="$(ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")"
		p99="$(ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
		wrk_cpu="$(awk -v n="$n" '$1 == "wrk-cpu" {printf "%.0f", ($2 + $3) * 1e6 / n}' <<<"$out")"
		local cpu="$wrk_cpu $(us_per_req "$u0" "$u1" "$n") $(us_per_req "$g0" "$g1" "$n")"
		echo "  $url: $rps req/s, p50 $p50 ms, p99 $p99 ms; CPU us/request: wrk, upstream, gateway: $cpu" >&2
		if [ -z "$best" ] || [ "$rps" -gt "${best%% *}" ]; then best="$rps $p50 $p99 $cpu"; fi
	done
	echo "$best"
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "direct: wrk -c$CONNECTIONS -t$THREADS -d$DURATION against the upstream" >&2
DIRECT="$(measure "$UP/products/1")"
read -r D_RPS D_P50 D_P99 D_WRK D_UP _ <<<"$DIRECT"
echo "gateway: the same through the gateway" >&2
if [ -n "$PROFILE" ]; then
	curl -fsS -o "$PROFILE" "http://127.0.0.1:$PPROF_PORT/debug/pprof/profile?seconds=10" &
	PROFILER=$!
fi
GATEWAY="$(measure "http://127.0.0.1:$GW_PORT/products/1")"
read -r G_RPS G_P50 G_P99 G_WRK G_UP G_GW <<<"$GATEWAY"
if [ -n "$PROFILE" ]; then wait "$PROFILER"; echo "CPU profile: $PROFILE" >&2; fi

RATIO="$(awk -v g="$G_RPS" -v d="$D_RPS" 'BEGIN {printf "%.2f", g / d}')"
LOG_LINES="$(wc -l <"$WORK/gateway.log")"

echo
echo "gateway benchmark: $CONNECTIONS connections, $THREADS wrk threads, best of $RUNS x $DURATION, $(nproc) CPUs, pinning: $([ "$PIN" = 1 ] && echo 'wrk CPU 1, servers CPU 0' || echo none), load average before: $LOAD_BEFORE"
printf '%-10s %12s %10s %10s   %s\n' "" "requests/s" "p50 ms" "p99 ms" "CPU us/request: wrk, upstream, gateway"
printf '%-10s %12s %10s %10s   %s\n' direct "$D_RPS" "$D_P50" "$D_P99" "$D_WRK, $D_UP, -"
printf '%-10s %12s %10s %10s   %s\n' gateway "$G_RPS" "$G_P50" "$G_P99" "$G_WRK, $G_UP, $G_GW"
echo "ratio gateway/direct: $RATIO (goal >= 0.55, gateway p99 < 5 ms); gateway wrote $LOG_LINES log lines"

if awk -v r="$RATIO" -v p="$G_P99" 'BEGIN {exit !(r >= 0.55 && p < 5)}'; then
	echo "goal met"
else
	echo "goal NOT met"
	if [ "$STRICT" = 1 ]; then exit 1; fi
fi

#!/usr/bin/env bash
# Measures the gateway's overhead: wrk drives a fixed-response upstream (hack/benchgateway)
# directly, then through the gateway (rate limiter on, with a limit it never reaches, access logs
# on as deployed) and, beside it in the same run, through references: two reverse proxies doing
# the gateway's work on this path (nginx with one worker and HAProxy with one thread, each with
# upstream keep-alive, a per-client rate limit, a request id and a JSON access log), and the
# floor of the gateway's own HTTP stack (a bare fasthttp proxy that only forwards: benchgateway
# -proxy); it prints requests/s, p50 and p99 of each and their ratio to the direct figure.
#
# Everything runs on loopback on this machine, so wrk, the proxy and the upstream share its
# cores; that is the setting the goal (ratio >= 0.55, gateway p99 < 5 ms at 64 connections) is
# stated for. The targets are measured in turns (direct, gateway, fasthttp, nginx, haproxy,
# direct, ...) so that a burst of load from elsewhere falls on all of them alike; the best run of
# each is kept.
#
# Beside each figure: the CPU time each process spent per request (from /proc/PID/stat), which
# other load on the machine changes much less than requests/s, and the 1-minute load average when
# the run started.
#
# Environment:
#   CONNECTIONS  wrk connections (64)        DURATION  length of each measured run (10s)
#   THREADS      wrk threads (2)             RUNS      measured runs of each target (3)
#   GATEWAY_GOMAXPROCS  the gateway's GOMAXPROCS (default: Go's, every core; 1 measured no better:
#                the gateway spends less, the upstream behind it much more)
#   REFERENCE    the references: "fasthttp nginx haproxy" (default), any of them, or "none"; the
#                Debian packages nginx-light and haproxy are installed when missing
#   PIN          "1": wrk on CPU 1, servers on CPU 0 (default: no pinning, the scheduler decides)
#   PROFILE      a file: after the measured runs, one more gateway run writes a CPU profile there
#                (kept out of the measured runs, which the profiler would slow)
#   STRICT       "1": exit 1 when the goal is not met
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONNECTIONS="${CONNECTIONS:-64}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-2}"
RUNS="${RUNS:-3}"
GATEWAY_GOMAXPROCS="${GATEWAY_GOMAXPROCS:-}"
PIN="${PIN:-0}"
PROFILE="${PROFILE:-}"
STRICT="${STRICT:-0}"
REFERENCE="${REFERENCE:-fasthttp nginx haproxy}"
REFERENCE="$(tr -s '[:space:]' ' ' <<<"$REFERENCE")" # one space between names, whatever separated them
PACKAGES=(wrk curl python3)
# reference NAME: is NAME one of the reference proxies asked for?
reference() { [[ " $REFERENCE " == *" $1 "* ]]; }
for r in $REFERENCE; do
	case "$r" in
	fasthttp | nginx | haproxy | none) ;;
	*)
		echo "REFERENCE: unknown reference $r (fasthttp, nginx, haproxy or none)" >&2
		exit 2
		;;
	esac
done
# The benchmark starts its own reference proxies on free ports (no package-started daemon is
# needed, and apt-install.sh starts none).
if reference nginx && ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then PACKAGES+=(nginx-light); fi
if reference haproxy && ! command -v haproxy >/dev/null && [ ! -x /usr/sbin/haproxy ]; then PACKAGES+=(haproxy); fi
"$ROOT/hack/apt-install.sh" "${PACKAGES[@]}"

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
		if curl -fs -o /dev/null "$1"; then return 0; fi
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
UP="http://127.0.0.1:$UP_PORT"

GW_PORT="$(free_port)"
PPROF_PORT="$(free_port)"
GW_ENV=(PORT="$GW_PORT" USER_SERVICE_URL="$UP" PRODUCT_SERVICE_URL="$UP" ORDER_SERVICE_URL="$UP" PAYMENT_SERVICE_URL="$UP"
	RATE_LIMIT_REQUESTS=1000000000 RATE_LIMIT_WINDOW=24h LOG_LEVEL=info PPROF_ADDR="127.0.0.1:$PPROF_PORT")
if [ -n "$GATEWAY_GOMAXPROCS" ]; then GW_ENV+=(GOMAXPROCS="$GATEWAY_GOMAXPROCS"); fi
env "${GW_ENV[@]}" "${SERVER_CPU[@]}" "$WORK/gateway" >"$WORK/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")

wait_http "$UP/readyz"
wait_http "http://127.0.0.1:$GW_PORT/health" # the route to the upstream works

TARGETS=(direct gateway)
declare -A URL PROXY_PID
URL[direct]="$UP/products/1" PROXY_PID[direct]=""
URL[gateway]="http://127.0.0.1:$GW_PORT/products/1" PROXY_PID[gateway]="$GW_PID"

# start_reference NAME PORT COMMAND...: starts the reference proxy COMMAND, listening on PORT
# (its output in $WORK/NAME.log), waits until it answers, and measures it as NAME.
start_reference() {
	local name="$1" port="$2" pid
	shift 2
	"${SERVER_CPU[@]}" "$@" >"$WORK/$name.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	wait_http "http://127.0.0.1:$port/products/1"
	TARGETS+=("$name")
	URL[$name]="http://127.0.0.1:$port/products/1" PROXY_PID[$name]="$pid"
}

if reference fasthttp; then
	# The floor: fasthttp's Server and HostClient forwarding each request and answer as they
	# are, with nothing of the gateway's own work. What the gateway spends over it is its work.
	FH_PORT="$(free_port)"
	start_reference fasthttp "$FH_PORT" "$WORK/upstream" -proxy "127.0.0.1:$UP_PORT" -addr "127.0.0.1:$FH_PORT"
fi

if reference nginx; then
	# nginx does what the gateway does on this path: a per-client rate limit it never
	# reaches, a request id and X-Forwarded-For to the upstream over kept-alive connections, and
	# a JSON access line per request, buffered as the gateway's. One worker, no master process, so
	# its CPU time is that of the one process started here.
	NG_PORT="$(free_port)"
	mkdir -p "$WORK/nginx"
	cat >"$WORK/nginx/nginx.conf" <<-EOF
		daemon off;
		master_process off;
		worker_processes 1;
		pid $WORK/nginx/nginx.pid;
		error_log $WORK/nginx/error.log warn;
		events { worker_connections 4096; }
		http {
			client_body_temp_path $WORK/nginx/body;
			proxy_temp_path $WORK/nginx/proxy;
			fastcgi_temp_path $WORK/nginx/fastcgi;
			uwsgi_temp_path $WORK/nginx/uwsgi;
			scgi_temp_path $WORK/nginx/scgi;
			log_format json escape=json '{"time":"\$time_iso8601","request_id":"\$request_id","method":"\$request_method",'
				'"path":"\$uri","status":\$status,"bytes":\$body_bytes_sent,"duration":\$request_time}';
			access_log $WORK/nginx/access.log json buffer=64k flush=200ms;
			limit_req_zone \$binary_remote_addr zone=perclient:10m rate=1000000r/s;
			upstream service { server 127.0.0.1:$UP_PORT; keepalive 128; }
			server {
				listen 127.0.0.1:$NG_PORT;
				location / {
					limit_req zone=perclient burst=1000000 nodelay;
					proxy_pass http://service;
					proxy_http_version 1.1;
					proxy_set_header Connection "";
					proxy_set_header X-Request-ID \$request_id;
					proxy_set_header X-Forwarded-For \$remote_addr;
				}
			}
		}
	EOF
	NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
	start_reference nginx "$NG_PORT" "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
fi

if reference haproxy; then
	# HAProxy does the same: one thread; a per-client request rate tracked in a stick table, with
	# a limit it never reaches; a request id and X-Forwarded-For; kept-alive connections to the
	# upstream, any idle one serving any request (as nginx's keepalive pool); and a JSON access line
	# per request. HAProxy writes no buffered log file: its lines go to an in-memory ring, so it
	# formats every line as the others do and saves the writes they make (one per many lines).
	HA_PORT="$(free_port)"
	mkdir -p "$WORK/haproxy"
	cat >"$WORK/haproxy/haproxy.cfg" <<-EOF
		global
			nbthread 1
			maxconn 4096
		ring accesslog
			format raw
			size 1048576
		defaults
			mode http
			timeout connect 5s
			timeout client 30s
			timeout server 30s
			option http-keep-alive
			http-reuse always
		frontend gateway
			bind 127.0.0.1:$HA_PORT
			log ring@accesslog len 1024 local0
			log-format '{"time":"%tr","request_id":"%ID","method":"%HM","path":"%{+E}HPO","status":%ST,"bytes":%B,"duration":%Ta}'
			stick-table type ip size 1m expire 1h store http_req_rate(1s)
			http-request track-sc0 src
			http-request deny deny_status 429 if { sc_http_req_rate(0) gt 1000000000 }
			unique-id-format %{+X}o%ci:%cp_%fi:%fp_%Ts_%rt:%pid
			http-request set-header X-Request-ID %[unique-id]
			option forwardfor
			default_backend service
		backend service
			server upstream 127.0.0.1:$UP_PORT
	EOF
	HAPROXY="$(command -v haproxy || echo /usr/sbin/haproxy)"
	"$HAPROXY" -c -q -f "$WORK/haproxy/haproxy.cfg"
	# -db: in the foreground, one process (no master), so its CPU time is that of the PID here.
	start_reference haproxy "$HA_PORT" "$HAPROXY" -db -f "$WORK/haproxy/haproxy.cfg"
fi

# wrk prints latencies as 812.00us, 1.23ms or 1.01s; ms() turns one into milliseconds.
ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000
		printf "%.2f", n }'
}

# cpu_ticks PID prints the user+system CPU time of a process, in clock ticks (0 for no PID).
cpu_ticks() { if [ -n "$1" ]; then awk '{print $14 + $15}' "/proc/$1/stat"; else echo 0; fi; }
TICKS="$(getconf CLK_TCK)"

# us_per_req TICKS_BEFORE TICKS_AFTER REQUESTS prints CPU microseconds per request.
us_per_req() { awk -v a="$1" -v b="$2" -v n="$3" -v hz="$TICKS" 'BEGIN {printf "%.0f", (b - a) * 1e6 / hz / n}'; }

load1() { cut -d' ' -f1 /proc/loadavg; }

# run_once TARGET prints "requests/s p50_ms p99_ms wrk_us upstream_us proxy_us load" of one run;
# the CPU figures are microseconds per request of each process ("-" for no proxy).
run_once() {
	local target="$1" url="${URL[$1]}" proxy="${PROXY_PID[$1]}" out rps p50 p99 n u0 u1 p0 p1 wrk_cpu load proxy_us
	load="$(load1)"
	u0="$(cpu_ticks "$UP_PID")" p0="$(cpu_ticks "$proxy")"
	# run_once runs in a command substitution, where set -e does not hold: wrk's failure (a DURATION
	# it does not read, a target that stopped answering) is checked here, or its figures would be
	# empty and the summary "nan" with exit status 0.
	if ! out="$( { TIMEFORMAT='wrk-cpu %U %S'; time "${WRK_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url"; } 2>&1)"; then
		echo "wrk failed against $target ($url):" >&2
		echo "$out" >&2
		exit 1
	fi
	u1="$(cpu_ticks "$UP_PID")" p1="$(cpu_ticks "$proxy")"
	if grep -q 'Non-2xx' <<<"$out"; then
		echo "non-2xx answers from $target ($url):" >&2
		echo "$out" >&2
		exit 1
	fi
	# Connection errors and wrk's 2 s timeouts are counted, not fatal: under other load a
	# server may be descheduled that long; the line says so.
	grep 'Socket errors' <<<"$out" | sed "s/^ */  $target: /" >&2 || true
	rps="$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")"
	n="$(awk '/requests in/ {print $1}' <<<"$out")"
	p50="$(ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")"
	p99="$(ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
	wrk_cpu="$(awk -v n="$n" '$1 == "wrk-cpu" {printf "%.0f", ($2 + $3) * 1e6 / n}' <<<"$out")"
	proxy_us=-
	if [ -n "$proxy" ]; then proxy_us="$(us_per_req "$p0" "$p1" "$n")"; fi
	echo "$rps $p50 $p99 $wrk_cpu $(us_per_req "$u0" "$u1" "$n") $proxy_us $load"
}

echo "warming up (pools, caches)" >&2
for t in "${TARGETS[@]}"; do "${WRK_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "${URL[$t]}" >/dev/null; done

# BEST holds each target's best run; ROUND_RATIOS each proxy's ratio to the direct run of the same
# round, made a few seconds apart, which a change of load between rounds moves less.
declare -A BEST ROUND_RATIOS
for round in $(seq "$RUNS"); do
	for t in "${TARGETS[@]}"; do
		r="$(run_once "$t")"
		read -r rps p50 p99 wc uc pc load <<<"$r"
		printf '  run %d %-9s %6s req/s, p50 %6s ms, p99 %7s ms; CPU us/request wrk %s, upstream %s, proxy %s; load %s\n' \
			"$round" "$t" "$rps" "$p50" "$p99" "$wc" "$uc" "$pc" "$load" >&2
		if [ -z "${BEST[$t]:-}" ] || [ "$rps" -gt "${BEST[$t]%% *}" ]; then BEST[$t]="$r"; fi
		if [ "$t" = direct ]; then
			round_direct="$rps"
		else
			ROUND_RATIOS[$t]+="$(awk -v g="$rps" -v d="$round_direct" 'BEGIN {printf "%.2f", g / d}') "
		fi
	done
done

if [ -n "$PROFILE" ]; then
	echo "profiling the gateway under load (one more run, not counted)" >&2
	curl -fsS -o "$PROFILE" "http://127.0.0.1:$PPROF_PORT/debug/pprof/profile?seconds=10" &
	PROFILER=$!
	"${WRK_CPU[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d12s "${URL[gateway]}" >/dev/null
	wait "$PROFILER"
	echo "CPU profile: $PROFILE (go tool pprof -top $PROFILE)" >&2
fi

read -r D_RPS _ <<<"${BEST[direct]}"
read -r G_RPS _ G_P99 _ <<<"${BEST[gateway]}"
ratio() { awk -v g="$1" -v d="$D_RPS" 'BEGIN {printf "%.2f", g / d}'; }
RATIO="$(ratio "$G_RPS")"
LOG_LINES="$(wc -l <"$WORK/gateway.log")"

echo
echo "gateway benchmark: $CONNECTIONS connections, $THREADS wrk threads, best of $RUNS x $DURATION, $(nproc) CPUs," \
	"gateway GOMAXPROCS ${GATEWAY_GOMAXPROCS:-default}, pinning: $([ "$PIN" = 1 ] && echo 'wrk CPU 1, servers CPU 0' || echo none)"
printf '%-10s %10s %8s %8s %6s   %-30s  %s\n' "" "requests/s" "p50 ms" "p99 ms" "ratio" "CPU us/req wrk/upstream/proxy" "load avg at start"
for t in "${TARGETS[@]}"; do
	read -r rps p50 p99 wc uc pc load <<<"${BEST[$t]}"
	printf '%-10s %10s %8s %8s %6s   %-30s  %s\n' "$t" "$rps" "$p50" "$p99" "$(ratio "$rps")" "$wc / $uc / $pc" "$load"
done
for t in "${TARGETS[@]}"; do
	if [ "$t" = direct ]; then continue; fi
	echo "$t/direct in each round: ${ROUND_RATIOS[$t]}"
done
echo "ratio gateway/direct: $RATIO (goal >= 0.55, gateway p99 < 5 ms); gateway wrote $LOG_LINES log lines"

if awk -v r="$RATIO" -v p="$G_P99" 'BEGIN {exit !(r >= 0.55 && p < 5)}'; then
	echo "goal met"
else
	echo "goal NOT met"
	if [ "$STRICT" = 1 ]; then exit 1; fi
fi

#!/usr/bin/env bash
# Gateway throughput and tail latency, against two baselines in the same run:
#   direct  wrk -> hello replica
#   nginx   wrk -> nginx (keep-alive reverse proxy) -> the same replica
#   paas    wrk -> paas gateway -> the same replica
# Prints requests/s and p99 for each, and the ratios gateway/direct and gateway/nginx.
# Each path is measured ROUNDS times, the paths taking turns so that a noisy moment on
# this shared machine hits all of them; the median of each is reported.
# Settings: DURATION (s per round, default 5), ROUNDS (default 3), CONNECTIONS (default
# 50), THREADS (default 2).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-2}

bash scripts/docker.sh
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
    echo "bench: installing wrk and nginx (Debian)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
fi
bash samples/build.sh >/dev/null
cargo build --release --quiet -p paas

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
http_port=$(free_port); api_port=$(free_port); nginx_port=$(free_port)
export PAAS_DATA_DIR=$work/data
cleanup() {
    [[ -n ${nginx_pid:-} ]] && kill "$nginx_pid" 2>/dev/null || true
    [[ -n ${paas_pid:-} ]] && kill "$paas_pid" 2>/dev/null && wait "$paas_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

target/release/paas up --data-dir "$PAAS_DATA_DIR" --http "$http_port" --api "$api_port" --log warn \
    >"$work/paas.log" 2>&1 &
paas_pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$api_port/healthz" >/dev/null && break; sleep 0.1; done
target/release/paas deploy hello --image paas-samples/hello:latest >/dev/null 2>&1

instance=$(cat "$PAAS_DATA_DIR/instance")
container=$(docker ps -q --filter "label=paas.dev/instance=$instance")
replica_port=$(docker port "$container" 8080/tcp | head -1 | sed 's/.*://')

cat >"$work/nginx.conf" <<NGINX
worker_processes 2;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    upstream hello { server 127.0.0.1:$replica_port; keepalive 128; }
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            proxy_pass http://hello;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work" &
nginx_pid=$!
sleep 0.5

# run NAME URL [HOST]: prints "NAME RPS P99_MS"
run() {
    local name=$1 url=$2 host=${3:-}
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency)
    [[ -n $host ]] && args+=(-H "Host: $host")
    # A short warm-up fills connection pools on every path alike.
    wrk -t1 -c"$CONNECTIONS" -d2s ${host:+-H "Host: $host"} "$url" >/dev/null
    local out
    out=$(wrk "${args[@]}" "$url")
    local rps p99 errors
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
    if [[ -n $errors ]]; then echo "$name: $errors" >&2; fi
    echo "$name $rps $p99"
}

echo "gateway benchmark: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s x $ROUNDS rounds, hello replica at 127.0.0.1:$replica_port" >&2
results=()
for round in $(seq 1 "$ROUNDS"); do
    results+=("$(run direct "http://127.0.0.1:$replica_port/")")
    results+=("$(run nginx "http://127.0.0.1:$nginx_port/" "hello.default.localhost")")
    results+=("$(run paas "http://127.0.0.1:$http_port/" "hello.default.localhost:$http_port")")
    echo "round $round: ${results[*]: -3}" >&2
done

python3 - "${results[@]}" <<'PY'
import statistics, sys
runs = {}
for r in sys.argv[1:]:
    name, rps, p99 = r.split()
    runs.setdefault(name, []).append((float(rps), float(p99)))
data = {n: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v)) for n, v in runs.items()}
print(f"{'path':<8}{'requests/s':>14}{'p99 ms':>10}   (median of {len(runs['paas'])} rounds)")
for name, (rps, p99) in data.items():
    print(f"{name:<8}{rps:>14.0f}{p99:>10.2f}")
g, d, n = data["paas"], data["direct"], data["nginx"]
print(f"gateway/direct: throughput {g[0]/d[0]:.2f}x, p99 {g[1]/d[1]:.2f}x")
print(f"gateway/nginx:  throughput {g[0]/n[0]:.2f}x, p99 {g[1]/n[1]:.2f}x")
PY

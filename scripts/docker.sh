#!/usr/bin/env bash
# Make sure a Docker Engine runs here: install Debian's docker.io if dockerd is missing,
# start dockerd if nobody answers on the socket. Idempotent and quick when all is there.
set -euo pipefail

if ! command -v dockerd >/dev/null 2>&1; then
    echo "docker.sh: installing Debian's docker.io" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq docker.io >/dev/null
fi

if docker info >/dev/null 2>&1; then
    exit 0
fi

echo "docker.sh: starting dockerd" >&2
log=/var/log/paas-dockerd.log
# Published ports through iptables rather than docker-proxy, a userland copy loop that
# would cost more CPU per request than the gateway itself.
# setsid: its own session, so that the end of the shell or job that started it does not
# take the engine (and every replica) down with it.
setsid nohup dockerd --userland-proxy=false >"$log" 2>&1 </dev/null &
for _ in $(seq 1 150); do
    if docker info >/dev/null 2>&1; then
        exit 0
    fi
    sleep 0.2
done
echo "docker.sh: dockerd did not answer within 30 s; see $log" >&2
tail -20 "$log" >&2 || true
exit 1

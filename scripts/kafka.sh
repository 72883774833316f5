#!/usr/bin/env bash
# Make sure tansu 0.6.0, an Apache-Kafka-compatible broker in Rust, is installed: the
# Kafka tests and `paas up --kafka` are checked against it. Idempotent and quick when
# present; a cold `cargo install` takes 15-20 minutes on two cores.
#
#   bash scripts/kafka.sh            install only
#   bash scripts/kafka.sh run DIR    install, then run a broker on 127.0.0.1 in the
#                                    foreground with its data in DIR (port: $PORT or 9092)
set -euo pipefail

version=0.6.0
bin="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"

if ! "$bin" --version 2>/dev/null | grep -qx "tansu $version"; then
    echo "kafka.sh: installing tansu $version (cargo install, takes a while when cold)" >&2
    # libsql is its sqlite storage engine: the memory engine mis-reports offsets, so
    # consumer groups could not resume.
    cargo install tansu --version "$version" --locked --features libsql --quiet
fi

if [ "${1:-}" = run ]; then
    dir="${2:?usage: kafka.sh run DIR}"
    port="${PORT:-9092}"
    mkdir -p "$dir"
    # tansu reads the file in sqlite://FILE relative to the working directory.
    cd "$dir"
    exec "$bin" broker \
        --storage-engine "sqlite://tansu.db" \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port"
fi

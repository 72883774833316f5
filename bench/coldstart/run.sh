#!/usr/bin/env bash
# Cold-start benchmark: time from a request to its first byte for a revision scaled to
# zero, against the same replica started (or resumed) without the platform, in one run.
# Settings: RUNS (per case, default 10), MODES (default "process docker").
set -euo pipefail
cd "$(dirname "$0")/../.."

bash scripts/docker.sh
bash samples/build.sh >/dev/null
cargo build --release --quiet -p paas -p hello
exec python3 bench/coldstart/coldstart.py "$@"

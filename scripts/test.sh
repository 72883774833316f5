#!/usr/bin/env bash
# Set up everything the tests need (Docker Engine, a Kafka-protocol broker, sample
# images) and run every test:
# formatting, lints, unit, integration and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/docker.sh
# tansu, the Kafka-protocol broker the Kafka tests start (one per test binary).
bash scripts/kafka.sh
bash samples/build.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The end-to-end tests drive the real binaries (paas, and hello for the process runtime).
cargo build --workspace --bins --quiet

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
# One closing line for the whole run: cargo prints a result per test binary.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
exit "$status"

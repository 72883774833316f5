#!/usr/bin/env bash
# Flow throughput and latency: a three-step Sequence in paas against the same three
# steps called one after the other by the sender (printing the ratio). See
# bench/flows/src/main.rs for the paths and settings.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet -p paas -p paas-bench-flows
exec target/release/paas-bench-flows "$@"

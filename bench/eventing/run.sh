#!/usr/bin/env bash
# Eventing throughput and latency, ingress to subscriber: paas with Kafka against a
# bare rdkafka consumer loop on the same tansu broker (printing the ratio), and paas
# with its embedded log. See bench/eventing/src/main.rs for the paths and settings.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/kafka.sh
cargo build --release --quiet -p paas -p paas-bench-eventing
exec target/release/paas-bench-eventing "$@"

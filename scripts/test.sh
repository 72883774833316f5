#!/usr/bin/env bash
# Set up everything the tests need (Docker Engine, sample images) and run every test:
# formatting, lints, unit, integration and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/docker.sh
bash samples/build.sh

cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# The end-to-end tests drive the real binaries (paas, and hello for the process runtime).
cargo build --workspace --bins --quiet
cargo test --workspace

#!/usr/bin/env bash
# Quick start: set up what paas needs (Docker Engine, the sample images, the paas
# binary) and run `paas up` with the embedded defaults. Extra arguments go to `paas up`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/docker.sh
bash samples/build.sh
cargo build --release --quiet -p paas
echo "Starting paas. In another terminal:" >&2
echo "  target/release/paas deploy hello --image paas-samples/hello:latest" >&2
echo "  curl http://hello.default.localhost:8080/" >&2
exec target/release/paas up "$@"

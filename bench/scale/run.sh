#!/usr/bin/env bash
# Control-plane scale benchmark: N Services (default 1000) in one apply, time until all
# are Ready, then paas up's idle CPU and RSS with every revision at zero.
# Settings: N, DEADLINE, IDLE_SECONDS, STABLE_WINDOW, GRACE (see scale.py);
# PROFILE=release builds and runs the release binaries (default: debug).
set -euo pipefail
cd "$(dirname "$0")/../.."

PROFILE="${PROFILE:-debug}"
if [ "$PROFILE" = release ]; then
    cargo build --release --quiet -p paas -p hello
else
    cargo build --quiet -p paas -p hello
fi
export PAAS="${PAAS:-$PWD/target/$PROFILE/paas}" HELLO="${HELLO:-$PWD/target/$PROFILE/hello}"
exec python3 bench/scale/scale.py "$@"

#!/usr/bin/env bash
# Builds the sample images (paas-samples/NAME:latest) into the local Docker
# daemon. Re-running is cheap: cargo skips unchanged crates and an image whose
# paas.dev/source-hash label matches its build context is left alone.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

if ! docker info >/dev/null 2>&1; then
  echo "samples/build.sh: cannot reach the Docker daemon; start it with: bash scripts/docker.sh" >&2
  exit 1
fi

target=x86_64-unknown-linux-gnu
# The static RUSTFLAGS would invalidate every fingerprint in the main target
# dir, so the samples get their own.
export CARGO_TARGET_DIR="$repo/target/samples"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# build_sample NAME: the crate samples/NAME, packaged by samples/NAME/Dockerfile
# as a static binary called NAME.
build_sample() {
  local name=$1
  local image="paas-samples/$name:latest"
  local context="$work/$name"

  # Statically linked so the image can be FROM scratch, and stripped of the
  # release profile's line tables, which would make up most of the image.
  RUSTFLAGS='-C target-feature=+crt-static' CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --quiet --release -p "$name" --target "$target"

  mkdir -p "$context"
  cp "$CARGO_TARGET_DIR/$target/release/$name" "samples/$name/Dockerfile" "$context/"
  # The Dockerfile counts too: editing it alone must still rebuild the image.
  local hash
  hash=$(cd "$context" && sha256sum "$name" Dockerfile | sha256sum | cut -d' ' -f1)

  local current old_id
  current=$(docker image inspect --format '{{ index .Config.Labels "paas.dev/source-hash" }}' "$image" 2>/dev/null || true)
  old_id=$(docker image inspect --format '{{ .Id }}' "$image" 2>/dev/null || true)
  if [[ $current == "$hash" ]]; then
    echo "$image: up to date"
    return
  fi
  # Only show docker's output on failure: the legacy builder warns on every build.
  local out
  if ! out=$(docker build -q --label "paas.dev/source-hash=$hash" -t "$image" "$context" 2>&1); then
    printf '%s\n' "$out" >&2
    echo "samples/build.sh: building $image failed" >&2
    exit 1
  fi
  # Don't leave a dangling image per rebuild; one a container still uses stays.
  if [[ -n $old_id && $old_id != "$(docker image inspect --format '{{ .Id }}' "$image")" ]]; then
    docker image rm "$old_id" >/dev/null 2>&1 || true
  fi
  echo "$image: built ($(docker image inspect --format '{{ .Size }}' "$image") bytes)"
}

build_sample hello
build_sample event-display

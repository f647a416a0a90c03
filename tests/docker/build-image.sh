#!/usr/bin/env bash
# Build the statically linked nsexporter binary and the FROM-scratch image.
#
#   tests/docker/build-image.sh [TAG]        (TAG defaults to nsexporter:test)
#   NSEXPORTER_IMAGE_ENGINE=podman tests/docker/build-image.sh [TAG]
#
# Used by tests/docker_runtime.rs (Docker) and tests/chart_pod.rs (podman, whose
# storage and configuration come from CONTAINERS_STORAGE_CONF and CONTAINERS_CONF), and
# documented in the README. Needs cargo and a running dockerd (tests/docker/start-dockerd.sh
# starts one), or podman.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tag=${1:-nsexporter:test}
engine=${NSEXPORTER_IMAGE_ENGINE:-docker}
case $engine in docker|podman) ;; *) echo "build-image: NSEXPORTER_IMAGE_ENGINE must be docker or podman, not $engine" >&2; exit 2 ;; esac
triple=x86_64-unknown-linux-gnu
target_dir=${CARGO_TARGET_DIR:-$root/target}
case $target_dir in /*) ;; *) target_dir=$root/$target_dir ;; esac
bin=$target_dir/$triple/release/nsexporter

say() { echo "build-image: $*" >&2; }

# An explicit --target keeps RUSTFLAGS away from build scripts and proc macros, which
# must stay dynamic host programs; only the nsexporter binary is linked statically.
say "cargo build --release --target $triple (crt-static)"
(cd "$root" && RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --target "$triple" --bin nsexporter)

# Static means: no ELF interpreter and no shared-library dependencies. A scratch image
# has no libc, so a dynamic binary would fail there with a bare "no such file".
if readelf -lW "$bin" | grep -q 'program interpreter'; then
    say "$bin requests an ELF interpreter: not static"; file "$bin" >&2; exit 1
fi
if readelf -dW "$bin" | grep -q '(NEEDED)'; then
    say "$bin needs shared libraries: not static"; readelf -dW "$bin" | grep NEEDED >&2; exit 1
fi
say "$(file -b "$bin")"

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$bin" "$ctx/nsexporter"
strip "$ctx/nsexporter"
if [ "$engine" = podman ]; then
    # buildah runs nothing for a FROM scratch + COPY image: no runtime, no network.
    podman build --quiet --pull=never -f "$root/Dockerfile" --build-arg BINARY=nsexporter \
        -t "$tag" "$ctx" >/dev/null
else
    # The legacy builder is all that Debian's docker.io (20.10) offers without buildx, and
    # it is enough for a one-COPY scratch image.
    DOCKER_BUILDKIT=0 docker build --quiet -f "$root/Dockerfile" --build-arg BINARY=nsexporter \
        -t "$tag" "$ctx" >/dev/null
fi
say "built $tag with $engine ($("$engine" image inspect --format '{{.Size}}' "$tag") bytes)"

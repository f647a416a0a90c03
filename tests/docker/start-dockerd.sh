#!/usr/bin/env bash
# Install Debian's docker.io (dockerd, containerd, runc) and busybox-static if missing,
# start dockerd in the background unless one already answers, and wait until it does.
# Idempotent: .ci/run calls it before `cargo test`; tests/docker_runtime.rs needs it.
#
# The daemon runs with no bridge and no iptables rules (--bridge=none --iptables=false):
# this machine has no network but loopback, containers get a private network namespace
# with only `lo` (what the tests need: they must not share the host's), and the tests
# reach the exporter through that loopback (nsenter), never through a 172.17.x bridge.
#
# Environment:
#   NSEXPORTER_DOCKERD_LOG      daemon log (default /tmp/nsexporter-dockerd.log)
#   NSEXPORTER_DOCKERD_STORAGE  storage driver; default: let dockerd choose (overlay2 works
#                               here), and retry with vfs if dockerd fails to start with it
set -euo pipefail

log=${NSEXPORTER_DOCKERD_LOG:-/tmp/nsexporter-dockerd.log}
pidfile=/tmp/nsexporter-dockerd.pid
sock=unix:///var/run/docker.sock

say() { echo "start-dockerd: $*" >&2; }

answers() { docker --host "$sock" info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

if ! command -v dockerd >/dev/null 2>&1 || ! [ -x /bin/busybox ] \
    || ! command -v nsenter >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
    say "installing docker.io busybox-static util-linux curl from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
        docker.io busybox-static util-linux curl >/dev/null
fi
# docker.io ships its own client; another (newer) client on PATH works too.
command -v docker >/dev/null 2>&1 || { say "no docker client after install"; exit 1; }

if answers; then
    say "dockerd already answers on $sock"
    exit 0
fi

# A dockerd that was ended with its session leaves /var/run/docker.pid behind; dockerd
# refuses to start while that PID is alive, even when it is now another program.
if [ -f /var/run/docker.pid ]; then
    stale=$(cat /var/run/docker.pid 2>/dev/null || true)
    if [ -z "$stale" ] || [ "$(cat "/proc/$stale/comm" 2>/dev/null)" != dockerd ]; then
        rm -f /var/run/docker.pid
    fi
fi

start() {
    local storage_args=()
    [ -n "${1:-}" ] && storage_args=(--storage-driver "$1")
    say "starting dockerd ${storage_args[*]:-} (log: $log)"
    # setsid: the daemon must outlive this script and the shell that ran it.
    setsid dockerd --host "$sock" --bridge=none --iptables=false --ip6tables=false \
        --ip-forward=false --ip-masq=false "${storage_args[@]}" >>"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    for _ in $(seq 1 60); do
        if answers; then return 0; fi
        if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then return 1; fi
        sleep 1
    done
    return 1
}

stop_ours() {
    local pid
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" || true
        for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    fi
}

if start "${NSEXPORTER_DOCKERD_STORAGE:-}"; then
    :
elif [ -z "${NSEXPORTER_DOCKERD_STORAGE:-}" ]; then
    say "dockerd did not come up with its default storage driver; retrying with vfs"
    tail -n 20 "$log" >&2 || true
    stop_ours
    start vfs || { say "dockerd failed to start; last log lines:"; tail -n 40 "$log" >&2; exit 1; }
else
    say "dockerd failed to start; last log lines:"; tail -n 40 "$log" >&2; exit 1
fi
say "dockerd $(docker --host "$sock" info --format '{{.ServerVersion}} storage={{.Driver}} cgroup={{.CgroupDriver}} v{{.CgroupVersion}}')"

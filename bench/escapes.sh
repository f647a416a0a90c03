#!/usr/bin/env bash
# The benchmark behind the README's figure for escapes with --scan.events. As root:
#
#   bench/escapes.sh                # TRIALS=30
#
# A container-shaped cgroup (/nsxbench-<rand>/docker/<id>) whose first process has a
# network namespace of its own, and the exporter with --scan.events and a 60 s scan
# interval. TRIALS times: an `nsenter --net=<host netns> sleep 0.3` started in that
# cgroup (as `docker exec … nsenter` does), and /metrics polled until the container's
# nsexporter_container_escaped_processes{type="net"} appears; the time from the start
# of nsenter to that scrape (p50/p90/max). Before each trial the series must be gone
# again (the exit folded in). Every process it starts is killed and every cgroup it
# makes removed on exit. Results: target/bench/escapes.md.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${TRIALS:-30}
PORT=${PORT:-19911}
OUT=target/bench; mkdir -p "$OUT"; RESULTS="$OUT/escapes.md"
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
cargo build --release --quiet --bin nsexporter
NSX=target/release/nsexporter

# The host's network namespace: PID 1's, or kthreadd's where PID 1 refuses even root.
hostnet=/proc/1/ns/net
readlink "$hostnet" >/dev/null 2>&1 || hostnet=/proc/2/ns/net

id=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 64)
top=/nsxbench-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
roots="/sys/fs/cgroup/unified /sys/fs/cgroup/pids /sys/fs/cgroup/memory"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for r in $roots; do
    for cg in "$r$top/docker/$id" "$r$top/docker" "$r$top"; do
      [ -d "$cg" ] && { cat "$cg/cgroup.procs" 2>/dev/null | xargs -r kill -9 2>/dev/null || true; }
      for _ in $(seq 50); do [ -d "$cg" ] || break; rmdir "$cg" 2>/dev/null && break; sleep 0.1; done
    done
  done
}
trap cleanup EXIT INT TERM
for r in $roots; do mkdir -p "$r$top/docker/$id"; done
in_container() { # run "$@" with its own PID moved into the container cgroup first
  sh -c 'for r in '"$roots"'; do echo $$ > "$r'"$top/docker/$id"'/cgroup.procs"; done; exec "$@"' sh "$@"
}

# The container's first process, in a network namespace of its own.
in_container unshare -n sleep 3600 & pids+=($!)
sleep 0.5
$NSX --web.listen-address 127.0.0.1:$PORT --scan.interval 60s --scan.events 2>/dev/null & pids+=($!)
for _ in $(seq 100); do curl -sf 127.0.0.1:$PORT/readyz >/dev/null && break; sleep 0.1; done
curl -sf 127.0.0.1:$PORT/metrics | grep -q '^nsexporter_scan_events_enabled 1' \
  || { echo "process events are unavailable here" >&2; exit 1; }

series="nsexporter_container_escaped_processes{type=\"net\",uid=\"\",container_id=\"docker://$id\""
escaped() { curl -sf 127.0.0.1:$PORT/metrics | grep -qF "$series"; }
now_ms() { date +%s%3N; }
lat=()
for _ in $(seq "$TRIALS"); do
  for _ in $(seq 200); do escaped || break; sleep 0.05; done
  t0=$(now_ms)
  in_container nsenter --net="$hostnet" sleep 0.3 &
  child=$!
  until escaped; do
    [ $(( $(now_ms) - t0 )) -lt 10000 ] || { echo "no escape within 10 s" >&2; exit 1; }
  done
  lat+=($(( $(now_ms) - t0 )))
  wait "$child" || true
done
sorted=($(printf '%s\n' "${lat[@]}" | sort -n))
n=${#sorted[@]}
p() { echo "${sorted[$(( ($1 * n + 99) / 100 - 1 ))]}"; }
{
  echo "# escapes with --scan.events ($(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
  echo "- nsenter into the host net namespace -> escape in /metrics, $n trials (scan interval 60 s): p50 $(p 50) ms, p90 $(p 90) ms, max ${sorted[n-1]} ms"
} | tee "$RESULTS"

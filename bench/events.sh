#!/usr/bin/env bash
# The benchmark behind the README's figures for --scan.events. As root:
#
#   bench/events.sh                 # defaults below
#   TRIALS=100 SECONDS_CPU=60 bench/events.sh
#
# In a container-shaped cgroup (/nsxbench-<rand>/docker/<id>, host network namespace):
#  1. exec -> visible in /metrics: TRIALS times start a 200 ms process and poll
#     /metrics every 5 ms until its exec counter grows (p50/p90/p99/max), with
#     --scan.events and --scan.interval 60s;
#  2. CPU at 500 execs/s for SECONDS_CPU: the exporter with events, the same without
#     events, and the bare receive loop (examples/eventloop) on the same events, all at
#     once; event handling = (events - no events), as a share of one core and a ratio
#     to the bare loop;
#  3. RSS of the exporter with events over EXECS_RSS execs (as fast as they go).
# Every process it starts is killed on exit. Results: target/bench/events.md.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${TRIALS:-100}
SECONDS_CPU=${SECONDS_CPU:-60}
RATE=${RATE:-500}
EXECS_RSS=${EXECS_RSS:-1000000}
OUT=target/bench; mkdir -p "$OUT"; RESULTS="$OUT/events.md"
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
cargo build --release --quiet --example eventbench --example eventloop --bin nsexporter
NSX=target/release/nsexporter; EB=target/release/examples/eventbench; EL=target/release/examples/eventloop

id=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 64)
top=/nsxbench-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
roots="/sys/fs/cgroup/unified /sys/fs/cgroup/pids /sys/fs/cgroup/memory"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  for r in $roots; do
    for cg in "$r$top/docker/$id" "$r$top/docker" "$r$top"; do
      [ -d "$cg" ] && { cat "$cg/cgroup.procs" 2>/dev/null | xargs -r kill -9 2>/dev/null || true; rmdir "$cg" 2>/dev/null || true; }
    done
  done
}
trap cleanup EXIT INT TERM
for r in $roots; do mkdir -p "$r$top/docker/$id"; done
in_container() { # run "$@" with its own PID moved into the container cgroup first
  sh -c 'for r in '"$roots"'; do echo $$ > "$r'"$top/docker/$id"'/cgroup.procs"; done; exec "$@"' sh "$@"
}
start_nsx() { # port, extra args...
  local port=$1; shift
  $NSX --web.listen-address 127.0.0.1:$port --scan.interval 60s "$@" 2>/dev/null & pids+=($!)
  for _ in $(seq 100); do curl -sf 127.0.0.1:$port/readyz >/dev/null && return; sleep 0.1; done
  echo "exporter on $port never ready" >&2; exit 1
}
cpu_ticks() { awk '{print $14+$15}' /proc/$1/stat; }
hz=$(getconf CLK_TCK)

echo "# --scan.events benchmark ($(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))" > "$RESULTS"

start_nsx 19901 --scan.events; ev=${pids[-1]}
lat=$(in_container $EB latency "$TRIALS" 127.0.0.1:19901 "docker://$id")
echo "- exec -> visible in /metrics ($TRIALS trials of a 200 ms process, scan interval 60 s): $lat" | tee -a "$RESULTS"

start_nsx 19902; noev=${pids[-1]}
$EL $((SECONDS_CPU + 5)) > "$OUT/eventloop.txt" & bare=$!; pids+=($bare)
sleep 2
e0=$(cpu_ticks $ev); n0=$(cpu_ticks $noev); b0=$(cpu_ticks $bare)
storm=$(in_container $EB storm "$RATE" "$SECONDS_CPU")
e1=$(cpu_ticks $ev); n1=$(cpu_ticks $noev); b1=$(cpu_ticks $bare)
awk -v e=$((e1-e0)) -v n=$((n1-n0)) -v b=$((b1-b0)) -v s="$SECONDS_CPU" -v hz="$hz" -v st="$storm" 'BEGIN{
  he=(e-n)/hz/s*100; bl=b/hz/s*100;
  printf "- CPU at %s: exporter with events %.2f%% of a core, without %.2f%%: event handling %.2f%% of one core; bare receive loop %.2f%%; ratio %.1fx the bare loop\n", st, e/hz/s*100, n/hz/s*100, he, bl, (bl>0?he/bl:0)}' | tee -a "$RESULTS"

rss() { awk '/VmRSS/{print $2}' /proc/$1/status; }
r0=$(rss $ev)
in_container $EB count "$EXECS_RSS" | while read -r line; do echo "  $line rss_kib=$(rss $ev)"; done | tee -a "$RESULTS"
echo "- RSS of the exporter with events: $r0 KiB before, $(rss $ev) KiB after $EXECS_RSS execs" | tee -a "$RESULTS"

#!/usr/bin/env bash
# The load benchmark behind the README's Performance section. As root:
#
#   bench/load.sh                      # 1k, 5k and 20k processes
#   SIZES="1000" ROUNDS=3 bench/load.sh
#
# For each size it forks that many pausing processes (examples/scanbench: a tenth in 20
# shared net+uts+ipc namespaces, 8 in user namespaces with maps written), then:
#  - times the reference loops, nsexporter's cold and warm scans (1 and 2 threads; warm
#    scans at least 5 s apart, as the daemon's are, and back to back reading `stat`)
#    and `lsns`, in alternation, ROUNDS times (median, min, max, µs/process, ratios);
#  - counts syscalls per process with `perf stat -e raw_syscalls:sys_enter`, by
#    difference between one and two passes (so start-up cancels out);
#  - runs the real exporter: scrape latency at 50 concurrent clients with `hey` at a
#    steady 500 requests/s (what many Prometheus servers would do) and with `wrk` flat
#    out (the machine's throughput; its tail is CPU queueing on 2 cores), its peak RSS,
#    and at the largest size its CPU use at the default 15 s interval;
#  - runs SOAK sampler steps (scan + encode) and reports whether RSS stays flat.
# Every process it starts is killed by its process group, also on failure or Ctrl-C.
# Needs: perf (linux-perf), wrk, hey, util-linux's lsns. Results: target/bench/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"1000 5000 20000"}
ROUNDS=${ROUNDS:-5}
ROUNDS_LARGE=${ROUNDS_LARGE:-3}   # at 20k one lsns listing takes about a minute
SOAK=${SOAK:-1000}                # sampler steps at the smallest size
SOAK_LARGE=${SOAK_LARGE:-100}     # and at the largest
CPU_WINDOW=${CPU_WINDOW:-60}      # seconds of daemon CPU measured at the largest size
PORT=${PORT:-19816}
OUT=target/bench
mkdir -p "$OUT"
RESULTS="$OUT/results.md"

[ "$(id -u)" = 0 ] || { echo "run as root: reading other processes' ns links needs it" >&2; exit 1; }
for t in perf wrk hey lsns; do
  command -v "$t" >/dev/null || echo "note: $t not found; its figures are skipped (apt-get install linux-perf wrk hey util-linux)" >&2
done

cargo build --release --quiet --example scanbench --bin nsexporter
B=target/release/examples/scanbench
NSX=target/release/nsexporter

spawner=""
exporter=""
stop_spawner() {
  if [ -n "$spawner" ]; then
    # The spawner leads its own process group; every child is in it.
    kill -KILL -- "-$spawner" 2>/dev/null || true
    wait "$spawner" 2>/dev/null || true
    local deadline=$((SECONDS + 60))
    while kill -0 -- "-$spawner" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    spawner=""
  fi
}
stop_exporter() {
  if [ -n "$exporter" ]; then
    kill -TERM "$exporter" 2>/dev/null || true
    wait "$exporter" 2>/dev/null || true
    exporter=""
  fi
}
cleanup() { stop_exporter; stop_spawner; }
trap cleanup EXIT
trap 'exit 130' INT TERM

entries() { ls /proc | grep -c '^[0-9]'; }
status_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
scans() { curl -sf "http://127.0.0.1:$PORT/metrics" | awk '$1 == "nsexporter_scans_total" { print $2 }'; }

syscalls() { # mode -> syscalls of one pass
  local one two
  one=$(perf stat -x, -e raw_syscalls:sys_enter -- "$B" passes "$1" 1 2>&1 >/dev/null | tail -1 | cut -d, -f1)
  two=$(perf stat -x, -e raw_syscalls:sys_enter -- "$B" passes "$1" 2 2>&1 >/dev/null | tail -1 | cut -d, -f1)
  echo $((two - one))
}

largest=$(echo $SIZES | tr ' ' '\n' | sort -n | tail -1)
smallest=$(echo $SIZES | tr ' ' '\n' | sort -n | head -1)
{
  echo "## nsexporter load benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "$(nproc) CPUs, kernel $(uname -r), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
} | tee "$RESULTS"

for n in $SIZES; do
  rounds=$ROUNDS
  [ "$n" -ge 20000 ] && rounds=$ROUNDS_LARGE
  "$B" spawn "$n" > "$OUT/spawn.out" &
  spawner=$!
  until grep -q '^ready' "$OUT/spawn.out" 2>/dev/null; do
    kill -0 "$spawner" 2>/dev/null || { echo "spawner died" >&2; exit 1; }
    sleep 0.2
  done
  total=$(entries)
  {
    echo "## $n spawned processes ($total /proc entries)"
    echo
    "$B" measure "$rounds"
    echo
  } | tee -a "$RESULTS"

  if command -v perf >/dev/null; then
    r=$(syscalls ref); f=$(syscalls fastest); c=$(syscalls cold); w=$(syscalls warm); s=$(syscalls stat)
    l=$(perf stat -x, -e raw_syscalls:sys_enter -- lsns 2>&1 >/dev/null | tail -1 | cut -d, -f1)
    awk -v r="$r" -v f="$f" -v c="$c" -v w="$w" -v s="$s" -v l="$l" -v n="$total" 'BEGIN {
      printf "Syscalls per /proc entry: reference %.1f, fastest loop %.1f, cold scan %.1f, warm scan %.1f, warm scan reading stat %.1f, lsns %.1f\n\n", r/n, f/n, c/n, w/n, s/n, l/n }' | tee -a "$RESULTS"
  fi

  "$NSX" --web.listen-address="127.0.0.1:$PORT" --log.level=warn > "$OUT/exporter.log" 2>&1 &
  exporter=$!
  until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do
    kill -0 "$exporter" 2>/dev/null || { echo "exporter died" >&2; cat "$OUT/exporter.log" >&2; exit 1; }
    sleep 0.2
  done
  series=$(curl -sf "http://127.0.0.1:$PORT/metrics" | grep -vc '^#')
  if command -v hey >/dev/null; then
    # 50 clients at 10 requests/s each: latency, not throughput. /healthz is the floor
    # of this client and machine; gzip is what Prometheus asks for (hey decompresses
    # it in the client, which shows in its figures).
    for what in "/healthz -disable-compression" "/metrics -disable-compression" "/metrics"; do
      set -- $what
      hey -c 50 -q 10 -z 10s ${2:-} "http://127.0.0.1:$PORT$1" > "$OUT/hey.txt"
      h50=$(awk '$1 == "50%" { printf "%.2f ms", $3 * 1000 }' "$OUT/hey.txt")
      h99=$(awk '$1 == "99%" { printf "%.2f ms", $3 * 1000 }' "$OUT/hey.txt")
      codes=$(sed -n '/Status code distribution/,$p' "$OUT/hey.txt" | grep -o '\[[0-9]*\][[:space:]]*[0-9]*' | tr -s ' \t' ' ' | paste -sd' ')
      enc=identity; [ -z "${2:-}" ] && enc=gzip
      echo "Scrape $1 ($enc; hey, 50 clients at 10/s each, 10 s): p50 $h50, p99 $h99; status codes $codes" | tee -a "$RESULTS"
    done
  fi
  if command -v wrk >/dev/null; then
    wrk -t2 -c50 -d10s --latency "http://127.0.0.1:$PORT/metrics" > "$OUT/wrk.txt"
    p50=$(awk '$1 == "50%" { print $2 }' "$OUT/wrk.txt")
    p99=$(awk '$1 == "99%" { print $2 }' "$OUT/wrk.txt")
    rps=$(awk '/^Requests\/sec/ { print $2 }' "$OUT/wrk.txt")
    non2xx=$(awk '/Non-2xx/ { print $NF }' "$OUT/wrk.txt")
    echo "Scrape (wrk, 50 connections flat out, 10 s): p50 $p50, p99 $p99, $rps requests/s, non-2xx: ${non2xx:-0}" | tee -a "$RESULTS"
  fi
  echo "Series in the exposition: $series" | tee -a "$RESULTS"
  if [ "$n" = "$largest" ]; then
    # CPU over a window, and per scan (the window holds 4 or 5 scans depending on
    # phase, so the per-scan figure over 15 s is the steadier one).
    s0=$(scans); t0=$(cpu_ticks "$exporter")
    sleep "$CPU_WINDOW"
    s1=$(scans); t1=$(cpu_ticks "$exporter")
    hz=$(getconf CLK_TCK)
    awk -v d=$((t1 - t0)) -v s=$((s1 - s0)) -v hz="$hz" -v w="$CPU_WINDOW" 'BEGIN {
      printf "\nExporter CPU over %d s at the default 15 s interval: %.2f%% of one core; %d scans, %.2f s CPU each = %.2f%% of one core at one scan per 15 s\n", w, 100 * d / hz / w, s, d / hz / (s ? s : 1), 100 * d / hz / (s ? s : 1) / 15 }' | tee -a "$RESULTS"
  fi
  echo | tee -a "$RESULTS"
  echo "Exporter peak RSS (VmHWM): $(status_kib "$exporter" VmHWM) KiB, now $(status_kib "$exporter" VmRSS) KiB" | tee -a "$RESULTS"
  stop_exporter

  soak=0
  [ "$n" = "$smallest" ] && soak=$SOAK
  [ "$n" = "$largest" ] && soak=$SOAK_LARGE
  if [ "$soak" -gt 0 ]; then
    { echo; echo '```'; "$B" soak "$soak"; echo '```'; } | tee -a "$RESULTS"
  fi
  echo | tee -a "$RESULTS"
  stop_spawner
done
echo "results in $RESULTS"

#!/usr/bin/env bash
# The benchmark behind the README's figures for --scan.events. As root:
#
#   bench/events.sh                        # about 25 minutes on the project's VM
#   TRIALS=20 ROUNDS=2 EXECS_RSS=100000 SCAN_ROUNDS=1 bench/events.sh   # a quick run
#   SCAN_ROUNDS=0 bench/events.sh          # without 4 (and without building BASE)
#
# Every figure is a ratio to a peer measured in the same run:
#  1. exec -> visible in /metrics: TRIALS times, a 200 ms process in a container-shaped
#     cgroup (/nsxbench-<rand>/docker/<id>, host network namespace) while
#     examples/eventbench polls /metrics every 5 ms until its exec counter grows;
#     --scan.events --scan.interval 60s. p50/p90/p99/max, p99 against the 1 s target.
#  2. CPU at RATE execs/s: ROUNDS rounds of ROUND_SECONDS, in each of which
#     tests/tools/execstorm.c execs, paced, a static program that lives 20 ms (so that
#     each is read), in the container. Three processes run through every round at once
#     and receive the same events: the exporter with --scan.events, the same without
#     it, and the bare receive loop (examples/eventloop.rs: subscribe, receive, count,
#     nothing else). CPU time is utime+stime of each from /proc/<pid>/stat (every
#     thread, ended ones too), not wall time; event handling = with - without. perf
#     counts each one's syscalls over the round (raw_syscalls:sys_enter).
#  3. RSS of the exporter with --scan.events over EXECS_RSS execs (as fast as they go,
#     of a static program that exits at once), sampled every 10 s.
#  4. Scan CPU with events off: this commit's exporter and BASE's (the commit before the
#     events work), both without --scan.events at --scan.interval 6s, run at once
#     SCAN_ROUNDS rounds of SCAN_ROUND_SECONDS over SCAN_PROCS pausing processes
#     (examples/scanbench spawn); CPU per scan of each and the ratio.
# The machine may be shared: rounds run everything they compare at once, and the load
# average is printed with each. Every process it starts is killed on exit, failure or
# Ctrl-C. Results: target/bench/events.md.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIALS=${TRIALS:-100}
ROUNDS=${ROUNDS:-5}
ROUND_SECONDS=${ROUND_SECONDS:-30}
RATE=${RATE:-500}
EXECS_RSS=${EXECS_RSS:-1000000}
SCAN_PROCS=${SCAN_PROCS:-5000}
SCAN_ROUNDS=${SCAN_ROUNDS:-3}
SCAN_ROUND_SECONDS=${SCAN_ROUND_SECONDS:-60}
BASE=${BASE:-bcb688d}
OUT=target/bench; mkdir -p "$OUT"; RESULTS="$OUT/events.md"
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

cargo build --release --quiet --example eventbench --example eventloop --example scanbench --bin nsexporter
NSX=target/release/nsexporter; EB=target/release/examples/eventbench
EL=target/release/examples/eventloop; SB=target/release/examples/scanbench
cc -O2 -static -pthread -o "$OUT/execstorm" tests/tools/execstorm.c
cc -O2 -static -nostdlib -DEXECSTORM_NOP -o "$OUT/nop" tests/tools/execstorm.c
STORM=$OUT/execstorm
# The exporter before the events work, built once from `git archive` in target/.
BASE_NSX=$OUT/base-target/release/nsexporter
if [ "$SCAN_ROUNDS" -gt 0 ] && { [ ! -x "$BASE_NSX" ] || [ "$(cat "$OUT/base-commit" 2>/dev/null)" != "$(git rev-parse "$BASE")" ]; }; then
  rm -rf "$OUT/base-src"; mkdir -p "$OUT/base-src"
  git archive "$BASE" | tar -x -C "$OUT/base-src"
  (cd "$OUT/base-src" && cargo build --release --quiet --bin nsexporter --target-dir ../base-target)
  git rev-parse "$BASE" > "$OUT/base-commit"
fi

id=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | head -c 64)
top=/nsxbench-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
roots="/sys/fs/cgroup/unified /sys/fs/cgroup/pids /sys/fs/cgroup/memory"
pids=()
spawner=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [ -n "$spawner" ] && { kill -KILL -- "-$spawner" 2>/dev/null || true; wait "$spawner" 2>/dev/null || true; }
  for r in $roots; do
    for cg in "$r$top/docker/$id" "$r$top/docker" "$r$top"; do
      [ -d "$cg" ] && { xargs -r kill -9 < "$cg/cgroup.procs" 2>/dev/null || true; sleep 0.2; rmdir "$cg" 2>/dev/null || true; }
    done
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for r in $roots; do mkdir -p "$r$top/docker/$id"; done
in_container() { # run "$@" with its own PID moved into the container cgroup first
  sh -c 'for r in '"$roots"'; do echo $$ > "$r'"$top/docker/$id"'/cgroup.procs"; done; exec "$@"' sh "$@"
}
start_nsx() { # binary port args... ; sets $started
  local bin=$1 port=$2; shift 2
  "$bin" --web.listen-address "127.0.0.1:$port" "$@" 2>/dev/null & started=$!; pids+=("$started")
  for _ in $(seq 300); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && return; sleep 0.1; done
  echo "exporter on $port never ready" >&2; exit 1
}
metric() { curl -sf "127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
load() { cut -d' ' -f1 /proc/loadavg; }
hz=$(getconf CLK_TCK)
field() { tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }

echo "# --scan.events benchmark ($(date -u +%FT%TZ), $(nproc) cores, kernel $(uname -r), load $(load))" | tee "$RESULTS"

# 1. Latency.
start_nsx "$NSX" 19901 --scan.events --scan.interval 60s; ev=$started
lat=$(in_container "$EB" latency "$TRIALS" 127.0.0.1:19901 "docker://$id")
p99=$(echo "$lat" | field p99_ms)
echo "- exec -> visible in /metrics, $TRIALS trials of a 200 ms process (scan interval 60 s; load $(load)): $lat; p99 is $(awk -v p="$p99" 'BEGIN { printf "%.2f", p / 1000 }')x the 1 s target" | tee -a "$RESULTS"

# 2. CPU at RATE execs/s.
start_nsx "$NSX" 19902 --scan.interval 60s; noev=$started
"$EL" 100000 > "$OUT/eventloop.txt" & bare=$!; pids+=("$bare")
sleep 2
echo "- CPU at $RATE execs/s of a 20 ms program in the container, all three at once ($ROUNDS rounds of $ROUND_SECONDS s; utime+stime):" | tee -a "$RESULTS"
te=0; tn=0; tb=0; tx=0; tt=0
for r in $(seq "$ROUNDS"); do
  e0=$(cpu_ticks "$ev"); n0=$(cpu_ticks "$noev"); b0=$(cpu_ticks "$bare"); x0=$(metric 19901 nsexporter_exec_events_total)
  s=$(date +%s.%N)
  # Syscalls of each over the round, counted (not timed) by perf.
  for who in ev noev bare; do
    perf stat -x, -e raw_syscalls:sys_enter -p "${!who}" -o "$OUT/syscalls-$who.txt" -- sleep "$ROUND_SECONDS" 2>/dev/null &
    pids+=("$!")
  done
  out=$(in_container "$STORM" 0 "$ROUND_SECONDS" 32 "$RATE" "$STORM" --sleep-us 20000)
  s=$(awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  e1=$(cpu_ticks "$ev"); n1=$(cpu_ticks "$noev"); b1=$(cpu_ticks "$bare"); x1=$(metric 19901 nsexporter_exec_events_total)
  wait "${pids[@]: -3}" 2>/dev/null || true
  sys() { awk -F, '/raw_syscalls/ { print $1 }' "$OUT/syscalls-$1.txt"; }
  se=$(sys ev); sn=$(sys noev); sb=$(sys bare)
  te=$((te + e1 - e0)); tn=$((tn + n1 - n0)); tb=$((tb + b1 - b0)); tx=$((tx + ${x1%.*} - ${x0%.*}))
  tt=$(awk -v a="$tt" -v b="$s" 'BEGIN { print a + b }')
  awk -v e=$((e1 - e0)) -v n=$((n1 - n0)) -v b=$((b1 - b0)) -v x=$((${x1%.*} - ${x0%.*})) -v se="${se:-0}" -v sn="${sn:-0}" -v sb="${sb:-0}" -v s="$s" -v hz="$hz" -v st="$(echo "$out" | field rate)" -v l="$(load)" 'BEGIN {
    h = (e - n) / hz / s * 100; bl = b / hz / s * 100
    printf "  - round: container %s execs/s, node %.0f exec events/s; with events %.2f%% of a core, without %.2f%%: event handling %.2f%%; bare loop %.2f%%; %.1fx the bare loop; syscalls per exec event: with events %.1f, without %.1f, bare loop %.1f (load %s)\n", st, x / s, e / hz / s * 100, n / hz / s * 100, h, bl, (bl > 0 ? h / bl : 0), se / x, sn / x, sb / x, l }' | tee -a "$RESULTS"
done
awk -v e="$te" -v n="$tn" -v b="$tb" -v x="$tx" -v s="$tt" -v hz="$hz" 'BEGIN {
  h = (e - n) / hz / s * 100; bl = b / hz / s * 100
  printf "  - all rounds: node %.0f exec events/s; event handling %.2f%% of one core (target 2%%: %.2fx), bare receive loop %.2f%%; event handling is %.1fx the bare loop\n", x / s, h, h / 2, bl, (bl > 0 ? h / bl : 0) }' | tee -a "$RESULTS"
kill "$bare" "$noev" 2>/dev/null || true

# 3. RSS over many execs.
r0=$(rss "$ev"); c0=$(metric 19901 nsexporter_exec_events_total)
in_container "$STORM" "$EXECS_RSS" 0 8 0 "$OUT/nop" > "$OUT/rss-storm.txt" & storm=$!; pids+=("$storm")
samples=()
while kill -0 "$storm" 2>/dev/null; do
  samples+=("$(rss "$ev")"); sleep 10
done
wait "$storm" || true
sleep 2
r1=$(rss "$ev"); c1=$(metric 19901 nsexporter_exec_events_total)
vanished=$(curl -sf 127.0.0.1:19901/metrics | awk '$1 == "nsexporter_scan_errors_total{reason=\"vanished\"}" { print $2 }')
counted=$(curl -sf 127.0.0.1:19901/metrics | awk -v c="container_id=\"docker://$id\"" 'index($0, "nsexporter_container_host_namespace_execs_total{type=\"net\"") == 1 && index($0, c) { print $2 }')
printf '%s\n' "${samples[@]}" > "$OUT/rss-samples.txt"
n=${#samples[@]}
tenth=${samples[$((n / 10))]}; half=${samples[$((n / 2))]}
echo "- RSS of the exporter with --scan.events over $(field execs < "$OUT/rss-storm.txt") execs in the container ($(field rate < "$OUT/rss-storm.txt")/s; $(( ${c1%.*} - ${c0%.*} )) exec events on the node; the container's exec counter at $counted, vanished before they could be read $vanished): $r0 KiB before, $tenth KiB a tenth of the way, $half KiB half way, $r1 KiB after (every 10 s: ${samples[*]}): after / before $(awk -v a="$r0" -v b="$r1" 'BEGIN { printf "%.2f", b / a }')x, after / a tenth of the way $(awk -v a="$tenth" -v b="$r1" 'BEGIN { printf "%.2f", b / a }')x" | tee -a "$RESULTS"
kill "$ev" 2>/dev/null || true

# 4. Scan CPU with events off, against the commit before the events work.
[ "$SCAN_ROUNDS" -gt 0 ] || exit 0
# The spawner leads a process group of its own, which cleanup kills whole.
"$SB" spawn "$SCAN_PROCS" > "$OUT/spawn.txt" & spawner=$!
until grep -q '^ready' "$OUT/spawn.txt"; do
  kill -0 "$spawner" 2>/dev/null || { echo "scanbench spawn failed" >&2; exit 1; }
  sleep 0.5
done
n=$(awk '{ print $2 }' "$OUT/spawn.txt")
start_nsx "$NSX" 19903 --scan.interval 6s; head_pid=$started
start_nsx "$BASE_NSX" 19904 --scan.interval 6s; base_pid=$started
sleep 15
echo "- scan CPU with events off over $n extra processes ($(ls /proc | grep -c '^[0-9]') in /proc), this commit against $(git rev-parse --short "$BASE") (before the events work), at once, $SCAN_ROUNDS rounds of $SCAN_ROUND_SECONDS s at --scan.interval 6s:" | tee -a "$RESULTS"
for r in $(seq "$SCAN_ROUNDS"); do
  h0=$(cpu_ticks "$head_pid"); b0=$(cpu_ticks "$base_pid")
  hs0=$(metric 19903 nsexporter_scans_total); bs0=$(metric 19904 nsexporter_scans_total)
  sleep "$SCAN_ROUND_SECONDS"
  h1=$(cpu_ticks "$head_pid"); b1=$(cpu_ticks "$base_pid")
  hs1=$(metric 19903 nsexporter_scans_total); bs1=$(metric 19904 nsexporter_scans_total)
  awk -v h=$((h1 - h0)) -v b=$((b1 - b0)) -v hs=$(( ${hs1%.*} - ${hs0%.*} )) -v bs=$(( ${bs1%.*} - ${bs0%.*} )) -v hz="$hz" -v l="$(load)" 'BEGIN {
    hp = h / hz / hs * 1000; bp = b / hz / bs * 1000
    printf "  - round: this commit %.1f ms of CPU per scan (%d scans), before %.1f ms (%d scans): %.2fx (load %s)\n", hp, hs, bp, bs, (bp > 0 ? hp / bp : 0), l }' | tee -a "$RESULTS"
done

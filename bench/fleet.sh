#!/usr/bin/env bash
# The fleet benchmark behind the README's "At fleet scale" section:
#
#   bench/fleet.sh                          # 2,000 nodes x 30 days (the issue's size)
#   NODES=40 bench/fleet.sh                 # what the README's figures come from (2-core VM)
#   NODES=50 DAYS=2 bench/fleet.sh          # a quick run (what tests/fleet.rs checks)
#
# examples/fleetgen synthesises NODES nodes of nsexporter exposition over DAYS days at
# 5-minute samples (container churn, host-network agents on every node, a few nodes
# leaking pinned network namespaces, a few growing toward their namespace limits, one
# down for three hours), with kube-state-metrics' series for their pods, as OpenMetrics
# chunks of CHUNK_HOURS; each is backfilled with `promtool tsdb create-blocks-from
# openmetrics` (PARALLEL at a time, at nice NICE). Then the shipped recording rules are
# backfilled with `promtool tsdb create-blocks-from rules`, level by level (a rule that
# reads another can only be backfilled once that one is in the TSDB): the fleet rules
# over the whole window, the per-container ones over the last CONTAINER_RULES_HOURS.
# Finally Prometheus runs on the TSDB with the rules loaded, and every query of both
# dashboards and every recording rule is timed (the first run and the median of RUNS),
# and the fleet dashboard's answers are checked against the model.
#
# Results: $OUT/results.md (the README's tables) and $OUT/results.json; the TSDB stays in
# $OUT/data unless KEEP=0. Needs promtool and prometheus (Debian: prometheus). Everything
# it starts runs in one process group, killed on exit, failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${NODES:-2000}
DAYS=${DAYS:-30}
PARALLEL=${PARALLEL:-2}
NICE=${NICE:-10}
RUNS=${RUNS:-3}
CHUNK_HOURS=${CHUNK_HOURS:-18}
CONTAINER_RULES_HOURS=${CONTAINER_RULES_HOURS:-24}
KEEP=${KEEP:-1}
OUT=${OUT:-target/bench/fleet}

for t in promtool prometheus; do
  command -v "$t" >/dev/null || { echo "fleet.sh: $t is missing (apt-get install prometheus)" >&2; exit 1; }
done

cargo build --release --quiet --example fleetgen
B=target/release/examples/fleetgen

rm -rf "$OUT/data" "$OUT/work"
mkdir -p "$OUT"
# About 230 bytes of OpenMetrics text per sample, PARALLEL chunks on disk at once.
need=$(( NODES * 160 * CHUNK_HOURS * 12 * 230 * PARALLEL / 1000000000 + 1 ))
avail=$(df --output=avail -BG "$OUT" | tail -1 | tr -dc 0-9)
echo "fleet.sh: $NODES nodes x $DAYS days; about ${need} GB of chunk files at once, ${avail} GB free" >&2
[ "$avail" -gt "$need" ] || { echo "fleet.sh: not enough disk in $OUT" >&2; exit 1; }

pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$OUT/work"
  [ "$KEEP" = 1 ] || rm -rf "$OUT/data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# setsid: fleetgen, its promtool and prometheus children share one process group.
setsid "$B" run --nodes "$NODES" --days "$DAYS" --dir "$OUT" --parallel "$PARALLEL" \
  --nice "$NICE" --runs "$RUNS" --chunk-hours "$CHUNK_HOURS" \
  --container-rules-hours "$CONTAINER_RULES_HOURS" 2> >(tee "$OUT/log.txt" >&2) &
pid=$!
wait "$pid"
pid=""
echo "fleet.sh: results in $OUT/results.md" >&2

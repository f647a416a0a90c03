#!/usr/bin/env bash
# Exec -> alert in Alertmanager's API: the alerting sidecar against its peer, the
# Prometheus rules pipeline with the shipped rules and defaults, in the same run, on the
# same containers. As root:
#
#   bench/alert_latency.sh                     # 100 trials, one started every ~2 s
#   TRIALS=30 SPACING=3 bench/alert_latency.sh
#
# What runs, all on loopback:
# - exporter A: --scan.events --alertmanager.url=AM1 (the sidecar as the issue targets it);
# - exporter B: defaults (15 s scans, no events), --alertmanager.url=AM2 (the sidecar on
#   scans alone), scraped by
# - Prometheus: charts/nsexporter/files/nsexporter.rules.yml as shipped (for: 2m on
#   NsexporterHostNetworkContainer), the chart's 30 s scrape interval, SCRAPE_EVAL (30 s)
#   evaluation interval (kube-prometheus-stack's), alerting to AM2.
# Per trial, a container-shaped process (private pid/mnt/ipc/uts namespaces, the host's
# network namespace, a kubelet-shaped cgroup in v2 and the v1 pids hierarchy) starts at a
# random point of the scan cycle; bench/alert_latency.py polls both Alertmanagers'
# /api/v2/alerts without pause and notes when each NsexporterHostNetworkContainer alert
# naming that container first shows: the events sidecar's (AM1), the scan sidecar's
# (AM2, source="nsexporter-sidecar") and the rules' (AM2, no source). A trial ends, and
# its process is killed, when all three were seen (or after DEADLINE s: a failure).
#
# The floor, in the same run under the same load: before each container, an alert POSTed
# to AM1 and found by the same poll. It is what the measurement itself costs.
#
# Needs: prometheus, prometheus-alertmanager, curl, python3, util-linux's unshare.
# Results: target/bench/alert_latency.md. Every process it starts is killed and every
# cgroup it made removed, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

export TRIALS=${TRIALS:-100} SPACING=${SPACING:-2} DEADLINE=${DEADLINE:-600}
SCRAPE_EVAL=${SCRAPE_EVAL:-30s}
AM1=${AM1:-19093} AM2=${AM2:-19094} PORT_A=${PORT_A:-19817} PORT_B=${PORT_B:-19818}
PROM=${PROM:-19090}
BIN=target/release/nsexporter
export OUT=target/bench/alert_latency.md

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for t in prometheus prometheus-alertmanager curl python3 unshare; do
    command -v "$t" >/dev/null || { echo "missing: $t" >&2; exit 1; }
done
cargo build --release --quiet
mkdir -p target/bench
WORK=$(mktemp -d)
V2=/sys/fs/cgroup/unified
[ -e $V2/cgroup.procs ] || V2=/sys/fs/cgroup
V1=/sys/fs/cgroup/pids
TOP="nsxbench-$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
PIDS=()

cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for root in $V2 $V1; do
        [ -d "$root/$TOP" ] || continue
        find "$root/$TOP" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

cat > "$WORK/am.yml" <<AM
route: {receiver: blackhole, group_wait: 1s, group_interval: 1s, repeat_interval: 1h}
receivers: [{name: blackhole}]
AM
for port in $AM1 $AM2; do
    prometheus-alertmanager --config.file="$WORK/am.yml" --storage.path="$WORK/am$port" \
        --web.listen-address=127.0.0.1:$port --cluster.listen-address= >"$WORK/am$port.log" 2>&1 &
    PIDS+=($!)
done
$BIN --web.listen-address=127.0.0.1:$PORT_A --scan.events \
    --alertmanager.url=http://127.0.0.1:$AM1 >"$WORK/exporter-a.log" 2>&1 &
PIDS+=($!)
$BIN --web.listen-address=127.0.0.1:$PORT_B \
    --alertmanager.url=http://127.0.0.1:$AM2 >"$WORK/exporter-b.log" 2>&1 &
PIDS+=($!)
cat > "$WORK/prometheus.yml" <<PROM
global: {scrape_interval: 30s, evaluation_interval: $SCRAPE_EVAL}
rule_files: [$PWD/charts/nsexporter/files/nsexporter.rules.yml]
alerting: {alertmanagers: [{static_configs: [{targets: ['127.0.0.1:$AM2']}]}]}
scrape_configs: [{job_name: nsexporter, static_configs: [{targets: ['127.0.0.1:$PORT_B']}]}]
PROM
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
    --web.listen-address=127.0.0.1:$PROM >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
ready=0
for _ in $(seq 300); do
    if curl -sf "http://127.0.0.1:$AM1/-/ready" >/dev/null && curl -sf "http://127.0.0.1:$AM2/-/ready" >/dev/null &&
        curl -sf "http://127.0.0.1:$PORT_A/readyz" >/dev/null && curl -sf "http://127.0.0.1:$PORT_B/readyz" >/dev/null &&
        curl -sf "http://127.0.0.1:$PROM/-/ready" >/dev/null; then ready=1; break; fi
    sleep 0.1
done
[ $ready = 1 ] || { echo "not ready within 30 s" >&2; tail -5 "$WORK"/*.log >&2; exit 1; }

export AM1 AM2 V2 V1 TOP WORK
export CMD="TRIALS=$TRIALS SPACING=$SPACING bench/alert_latency.sh"
python3 bench/alert_latency.py || { tail -5 "$WORK"/*.log >&2; exit 1; }

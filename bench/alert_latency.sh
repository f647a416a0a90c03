#!/usr/bin/env bash
# Exec -> alert in Alertmanager's API, the figure behind the README's alerting-sidecar
# latency. As root:
#
#   bench/alert_latency.sh                    # 100 trials, --scan.interval 1s, scans only
#   EVENTS=1 bench/alert_latency.sh           # with --scan.events (the proc connector)
#   TRIALS=20 INTERVAL=5s bench/alert_latency.sh
#
# It starts a real Alertmanager and the release binary with --alertmanager.url, then, per
# trial, starts a container-shaped process (private pid/mnt/ipc/uts namespaces, the
# host's network namespace, a kubelet-shaped cgroup in v2 and the v1 pids hierarchy)
# and polls Alertmanager's /api/v2/alerts every 10 ms until the
# NsexporterHostNetworkContainer alert naming that container is there. The time is
# taken from just before the process is started to the first poll that sees the alert,
# so it includes the poll's own granularity (<= 10 ms plus one curl). Then the process is
# killed, the resolve awaited, and its cgroups removed. p50, p90, p99 and max are
# printed, with the bound the sidecar should meet (one scan interval plus one second
# without events; 2 s with them). Every process it starts is killed, also on failure.
#
# The floor, measured in the same run, trial by trial: an alert POSTed to the same
# Alertmanager by curl at t0 and found by the same poll loop. It is what the
# measurement itself costs (Alertmanager's ingestion and the polling), which no sender
# can beat.
# Needs: prometheus-alertmanager, curl, python3, util-linux's unshare. Results:
# target/bench/alert_latency.md.
set -euo pipefail
cd "$(dirname "$0")/.."

TRIALS=${TRIALS:-100}
INTERVAL=${INTERVAL:-1s}
EVENTS=${EVENTS:-0}
AM_PORT=${AM_PORT:-19093}
PORT=${PORT:-19817}
BIN=target/release/nsexporter
OUT=target/bench/alert_latency.md

[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
for t in prometheus-alertmanager curl python3 unshare; do
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

cat > "$WORK/am.yml" <<EOF
route: {receiver: blackhole, group_wait: 1s, group_interval: 1s, repeat_interval: 1h}
receivers: [{name: blackhole}]
EOF
prometheus-alertmanager --config.file="$WORK/am.yml" --storage.path="$WORK/am" \
    --web.listen-address=127.0.0.1:$AM_PORT --cluster.listen-address= >"$WORK/am.log" 2>&1 &
PIDS+=($!)
ARGS=(--web.listen-address=127.0.0.1:$PORT --scan.interval="$INTERVAL"
      --alertmanager.url=http://127.0.0.1:$AM_PORT --log.level=debug)
[ "$EVENTS" = 1 ] && ARGS+=(--scan.events)
$BIN "${ARGS[@]}" >"$WORK/exporter.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$AM_PORT/-/ready" >/dev/null &&
        curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
    sleep 0.1
done

# Success when Alertmanager holds the sidecar's host-network alert for container $1.
has_alert() {
    curl -sf "http://127.0.0.1:$AM_PORT/api/v2/alerts?filter=container_id%3D%22containerd%3A%2F%2F$1%22" |
        grep -q '"alertname":"NsexporterHostNetworkContainer"'
}

# Success when Alertmanager holds the floor alert $1.
has_floor() {
    curl -sf "http://127.0.0.1:$AM_PORT/api/v2/alerts?filter=floor%3D%22$1%22" | grep -q '"Floor"'
}

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# Arithmetic on decimals (outside the timed loop).
calc() { python3 -c "print($1)"; }
secs=$(calc "$(echo "$INTERVAL" | sed -E 's/ms$/\/1000/; s/s$//; s/m$/*60/')")
LAT=()
FLOOR=()
for i in $(seq "$TRIALS"); do
    f="f$i-$RANDOM"
    t0=$(now_ms)
    curl -sf -XPOST -H 'Content-Type: application/json' "http://127.0.0.1:$AM_PORT/api/v2/alerts" \
        --data-binary "[{\"labels\":{\"alertname\":\"Floor\",\"floor\":\"$f\"},\"endsAt\":\"$(date -u -d '+1 min' +%FT%TZ)\"}]" >/dev/null
    until has_floor "$f"; do sleep 0.01; done
    t1=$(now_ms)
    FLOOR+=("$(calc "($t1 - $t0) / 1000")")

    id=$(head -c32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    uid=$(cat /proc/sys/kernel/random/uuid)
    rel="$TOP/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${uid//-/_}.slice/cri-containerd-$id.scope"
    mkdir -p "$V2/$rel" "$V1/$rel"
    # Start at a random point of the scan cycle: the previous trial ended on a scan.
    sleep "$(calc "__import__('random').random() * $secs")"
    t0=$(now_ms)
    unshare --pid --fork --kill-child --mount --ipc --uts \
        sh -c "echo 0 > $V2/$rel/cgroup.procs && echo 0 > $V1/$rel/cgroup.procs && exec sleep 600" &
    pid=$!
    PIDS+=($pid)
    deadline=$(( t0 + 30000 ))
    until has_alert "$id"; do
        if (( $(now_ms) > deadline )); then
            echo "trial $i: no alert within 30 s for $id" >&2
            tail -20 "$WORK/exporter.log" >&2
            curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^nsexporter_(alert|scans|last_scan|container_host_namespace)' >&2
            curl -s "http://127.0.0.1:$AM_PORT/api/v2/alerts" | python3 -c 'import json,sys; [print(a["labels"]) for a in json.load(sys.stdin)]' >&2
            cat "/proc/$pid/cgroup" >&2 || true
            exit 1
        fi
        sleep 0.01
    done
    t1=$(now_ms)
    LAT+=("$(calc "($t1 - $t0) / 1000")")
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    while has_alert "$id"; do sleep 0.05; done
    for root in $V2 $V1; do
        d="$root/$rel"
        while [ "$d" != "$root/$TOP" ]; do rmdir "$d" 2>/dev/null || true; d=$(dirname "$d"); done
    done
    printf '\rtrial %d/%d: %.3f s' "$i" "$TRIALS" "${LAT[-1]}" >&2
done
echo >&2

pct() { printf '%s\n' "${@:2}" | sort -n | awk -v p="$1" '{a[NR]=$1} END {i=int((NR*p+99)/100); if (i<1) i=1; print a[i]}'; }
p50=$(pct 50 "${LAT[@]}"); p90=$(pct 90 "${LAT[@]}"); p99=$(pct 99 "${LAT[@]}"); max=$(pct 100 "${LAT[@]}")
f50=$(pct 50 "${FLOOR[@]}"); f99=$(pct 99 "${FLOOR[@]}")
if [ "$EVENTS" = 1 ]; then bound=2; else bound=$(calc "$secs + 1"); fi
{
    echo "## exec -> alert in Alertmanager ($(date -u +%F), $(nproc) cores)"
    echo
    echo "--scan.interval $INTERVAL, events $EVENTS, $TRIALS trials"
    echo
    echo "| | p50 | p90 | p99 | max |"
    echo "|---|---|---|---|---|"
    printf '| exec -> alert | %.3f s | %.3f s | %.3f s | %.3f s |\n' "$p50" "$p90" "$p99" "$max"
    printf '| floor (curl POST -> alert) | %.3f s | | %.3f s | |\n' "$f50" "$f99"
    echo
    printf 'p99 / bound (%s s): %.2f; p50 / floor p50: %.1f\n' "$bound" \
        "$(calc "$p99 / $bound")" "$(calc "$p50 / max($f50, 0.001)")"
} | tee "$OUT"

"""The trials of bench/alert_latency.sh (which starts the servers and sets the environment).

Starts TRIALS container-shaped processes, one every SPACING s plus a random part of
SPACING, polls both Alertmanagers without pause and notes when each kind of alert naming
each container first shows:
  events  AM1, the sidecar with --scan.events
  scans   AM2, source="nsexporter-sidecar": the sidecar on 15 s scans
  rules   AM2, no source: Prometheus with the shipped rules
  floor   AM1, alertname Floor: an alert POSTed just before each container starts
Writes the percentiles and the ratios to OUT; exits 1 if any alert did not come.
"""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid

ENV = os.environ
TRIALS, SPACING, DEADLINE = int(ENV["TRIALS"]), float(ENV["SPACING"]), float(ENV["DEADLINE"])
AM1, AM2 = ENV["AM1"], ENV["AM2"]
V2, V1, TOP = ENV["V2"], ENV["V1"], ENV["TOP"]
ALERT = "NsexporterHostNetworkContainer"
KINDS = ("events", "scans", "rules")

seen = {}  # (kind, container_id) -> monotonic time of the first poll that showed it
seen_lock = threading.Lock()
stop = threading.Event()


def alerts(port, matcher):
    q = urllib.parse.quote(matcher)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/alerts?filter={q}", timeout=5) as r:
        return json.load(r)


def poll():
    while not stop.is_set():
        for port in (AM1, AM2):
            try:
                got = alerts(port, f'alertname=~"{ALERT}|Floor"')
            except OSError as e:
                print(f"poll {port}: {e}", file=sys.stderr)
                time.sleep(0.1)
                continue
            now = time.monotonic()
            with seen_lock:
                for a in got:
                    l = a["labels"]
                    sidecar = l.get("source") == "nsexporter-sidecar"
                    if l["alertname"] == "Floor":
                        kind = "floor"
                    elif port == AM1:
                        kind = "events" if sidecar else None
                    else:
                        kind = "scans" if sidecar else "rules"
                    key = (kind, l.get("container_id", ""))
                    if kind and key not in seen:
                        seen[key] = now


def post_floor(i):
    body = json.dumps([{"labels": {"alertname": "Floor", "container_id": f"floor-{i}"}}]).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{AM1}/api/v2/alerts", data=body,
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req, timeout=5).close()


class Trial:
    def __init__(self, i):
        self.i = i
        self.id = os.urandom(32).hex()
        self.cid = f"containerd://{self.id}"
        pod = str(uuid.uuid4()).replace("-", "_")
        self.rel = (f"{TOP}/kubepods.slice/kubepods-besteffort.slice/"
                    f"kubepods-besteffort-pod{pod}.slice/cri-containerd-{self.id}.scope")
        for root in (V2, V1):
            os.makedirs(f"{root}/{self.rel}")
        self.floor_t0 = time.monotonic()
        post_floor(i)
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child", "--mount", "--ipc", "--uts", "sh", "-c",
             f"echo 0 > {V2}/{self.rel}/cgroup.procs && echo 0 > {V1}/{self.rel}/cgroup.procs"
             " && exec sleep 3600"])

    def done(self):
        with seen_lock:
            return all((k, self.cid) in seen for k in KINDS)

    def end(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        for root in (V2, V1):
            # The scope and the pod slice are this trial's: retry while the killed process
            # leaves; the slices above are shared, the shell's cleanup takes them.
            d = f"{root}/{self.rel}"
            for _ in range(2):
                while True:
                    try:
                        os.rmdir(d)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            print(f"cannot remove {d} yet", file=sys.stderr)
                            break
                        time.sleep(0.05)
                d = os.path.dirname(d)


def pct(xs, p):
    xs = sorted(xs)
    return xs[max(0, min(len(xs), (len(xs) * p + 99) // 100) - 1)] if xs else float("nan")


def main():
    threading.Thread(target=poll, daemon=True).start()
    start = time.monotonic()
    due = [start + i * SPACING + random.random() * SPACING for i in range(TRIALS)]
    active, finished, failed = [], [], []
    started = 0
    try:
        while due or active:
            now = time.monotonic()
            if due and now >= due[0]:
                due.pop(0)
                active.append(Trial(started))
                started += 1
            for t in list(active):
                late = time.monotonic() - t.t0 > DEADLINE
                if t.done() or late:
                    active.remove(t)
                    t.end()
                    (failed if late else finished).append(t)
                    print(f"\rtrials done {len(finished)}, failed {len(failed)}, running {len(active)}",
                          end="", file=sys.stderr)
            time.sleep(0.05)
    finally:
        for t in active:
            t.end()
        stop.set()
    print(file=sys.stderr)

    trials = finished + failed
    lat = {k: [seen[(k, t.cid)] - t.t0 for t in trials if (k, t.cid) in seen] for k in KINDS}
    lat["floor"] = [seen[("floor", f"floor-{t.i}")] - t.floor_t0 for t in trials
                    if ("floor", f"floor-{t.i}") in seen]
    row = {k: [pct(v, p) for p in (50, 90, 99, 100)] for k, v in lat.items()}
    names = {
        "floor": "floor: alert POSTed by the bench",
        "events": "sidecar, `--scan.events`",
        "scans": "sidecar, 15 s scans (default)",
        "rules": "peer: Prometheus rules (30 s scrape and evaluation, `for: 2m`)",
    }
    lines = [
        f"## exec -> {ALERT} in Alertmanager's API ({time.strftime('%F', time.gmtime())},"
        f" {os.cpu_count()} cores)",
        "",
        f"`{ENV['CMD']}`: {len(trials)} trials, {len(failed)} without every alert within"
        f" {DEADLINE:.0f} s; load average at the end: {open('/proc/loadavg').read().split()[0]}",
        "",
        "| | n | p50 | p90 | p99 | max |",
        "|---|---|---|---|---|---|",
    ]
    for k in ("floor", "events", "scans", "rules"):
        lines.append(f"| {names[k]} | {len(lat[k])} | " + " | ".join(f"{x:.3f} s" for x in row[k]) + " |")
    r, e, s = row["rules"], row["events"], row["scans"]
    lines += [
        "",
        f"peer / sidecar with events: p50 {r[0] / e[0]:.0f}x, p99 {r[2] / e[2]:.0f}x;"
        f" peer / sidecar on scans: p50 {r[0] / s[0]:.0f}x, p99 {r[2] / s[2]:.0f}x",
        f"targets: events p99 {e[2]:.3f} s <= 2 s: {'met' if e[2] <= 2 else 'MISSED'};"
        f" scans max {s[3]:.3f} s <= 16 s (one interval plus 1 s): {'met' if s[3] <= 16 else 'MISSED'}",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(ENV["OUT"], "w") as f:
        f.write(text)
    sys.exit(1 if failed else 0)


main()

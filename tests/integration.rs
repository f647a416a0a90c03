//! Integration tests on the real kernel: a small node built from real namespaces in
//! real cgroups shaped the way kubelet, CRI-O, Docker and systemd shape them, checked
//! through `--once` and through HTTP against a running server, and against `lsns`.
//!
//! Other tests (and other work) run on the machine at the same time, so node-wide
//! figures are checked against the lab's own namespaces and containers, never as exact
//! deltas.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use common::*;

/// What one container must look like in the exposition.
struct Expect<'a> {
    what: &'a str,
    container_id: String,
    uid: String,
    runtime: &'a str,
    /// Exactly the types for which `nsexporter_container_host_namespace` is emitted.
    shared: &'a [&'a str],
    /// `nsexporter_container_host_root_processes`, absent when 0.
    host_root: Option<f64>,
}

fn check(samples: &[Sample], e: &Expect) {
    let id = [("container_id", e.container_id.as_str())];
    let series = find(samples, "nsexporter_container_host_namespace", &id);
    let got: BTreeSet<&str> = series.iter().map(|s| s.labels["type"].as_str()).collect();
    let want: BTreeSet<&str> = e.shared.iter().copied().collect();
    assert_eq!(got, want, "{}: shared host namespace types", e.what);
    for s in &series {
        assert_eq!(s.labels["uid"], e.uid, "{}: uid label", e.what);
        assert_eq!(s.labels["runtime"], e.runtime, "{}: runtime label", e.what);
        assert_eq!(
            s.value, 1.0,
            "{}: one process in the host {} namespace",
            e.what, s.labels["type"]
        );
    }
    assert_eq!(
        value(samples, "nsexporter_container_host_root_processes", &id),
        e.host_root,
        "{}: host root processes",
        e.what
    );
    let info = find(samples, "nsexporter_container_info", &id);
    assert_eq!(info.len(), 1, "{}: container_info", e.what);
    assert_eq!(info[0].labels["comm"], "sleep");
    assert_eq!(info[0].labels["uid"], e.uid);
    assert_eq!(info[0].labels["runtime"], e.runtime);
}

fn by_label(samples: &[Sample], name: &str, label: &str) -> BTreeMap<String, f64> {
    find(samples, name, &[])
        .into_iter()
        .map(|s| (s.labels[label].clone(), s.value))
        .collect()
}

/// Distinct namespaces per type according to `lsns` (which lists what processes hold).
fn lsns_counts() -> BTreeMap<String, f64> {
    let out = Command::new(require_tool("lsns"))
        .args(["--json", "--output", "NS,TYPE"])
        .output()
        .expect("lsns (util-linux) is needed");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut seen: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for ns in v["namespaces"].as_array().unwrap() {
        seen.entry(ns["type"].as_str().unwrap().to_string())
            .or_default()
            .insert(ns["ns"].as_u64().unwrap());
    }
    seen.into_iter().map(|(k, v)| (k, v.len() as f64)).collect()
}

/// `report --json --all` on the real /proc.
fn report_json() -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["report", "--json", "--all"])
        .output()
        .expect("run nsexporter report");
    assert!(
        out.status.success(),
        "report --json: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("report --json is JSON")
}

const PRIVATE: &[&str] = &[
    "--pid", "--fork", "--mount", "--uts", "--ipc", "--net", "--cgroup",
];

#[test]
fn real_kernel_lab() {
    let before = parse_exposition(&once(&[]));
    let mut lab = Lab::new();

    // A hostNetwork-like pod container (kubelet systemd driver, containerd).
    let hostnet = lab.kube_systemd(
        "besteffort",
        "cri-containerd",
        &["--pid", "--fork", "--mount", "--uts", "--ipc"],
    );
    // A fully private one (kubelet cgroupfs driver: the runtime is the default).
    let p = lab.unshare(PRIVATE);
    let private = lab.kube_cgroupfs("besteffort", p);
    // Root in a user namespace mapped 0 -> 100000 (CRI-O, systemd driver).
    let u = lab.unshare_remapped_root(100000, PRIVATE);
    let remapped = lab.crio(u);
    // A user namespace with a 0 -> 0 map: root inside is host root.
    let mut zero_flags = vec!["--user", "--map-root-user"];
    zero_flags.extend_from_slice(PRIVATE);
    let z = lab.unshare(&zero_flags);
    let zero = lab.kube_cgroupfs("burstable", z);
    // Docker-shaped (/docker/<id>) with hostPID and hostIPC.
    let d = lab.unshare(&["--mount", "--uts", "--net"]);
    let docker = lab.docker(d);
    // A service with only a private mount namespace (PrivateTmp-like): not a container.
    let s = lab.unshare(&["--mount"]);
    let service = lab.service(&format!("nsxlab-{}", rand_hex(6)), s);
    // A network namespace that only a bind mount holds.
    let pin = lab.netns_pin();

    let expectations = [
        Expect {
            what: "hostNetwork-like",
            container_id: hostnet.container_id("containerd"),
            uid: hostnet.pod_uid.clone(),
            runtime: "containerd",
            shared: &["cgroup", "net", "time", "user"],
            host_root: Some(1.0),
        },
        Expect {
            what: "fully private",
            container_id: private.container_id("containerd"),
            uid: private.pod_uid.clone(),
            runtime: "containerd",
            shared: &["time", "user"],
            host_root: Some(1.0),
        },
        Expect {
            what: "userns 0 -> 100000",
            container_id: remapped.container_id("cri-o"),
            uid: remapped.pod_uid.clone(),
            runtime: "cri-o",
            shared: &["time"],
            host_root: None,
        },
        Expect {
            what: "userns 0 -> 0",
            container_id: zero.container_id("containerd"),
            uid: zero.pod_uid.clone(),
            runtime: "containerd",
            shared: &["time"],
            host_root: Some(1.0),
        },
        Expect {
            what: "Docker hostPID+hostIPC",
            container_id: docker.container_id("docker"),
            uid: String::new(),
            runtime: "docker",
            shared: &["cgroup", "ipc", "pid", "time", "user"],
            host_root: Some(1.0),
        },
    ];

    // Through --once.
    let after = parse_exposition(&once(&[]));
    for e in &expectations {
        check(&after, e);
    }
    // Node-wide figures move with whatever else runs on this machine (other tests make
    // and remove namespaces and containers at the same time), so they are checked
    // against the lab's own: each of its namespaces, by inode, is one the scan saw,
    // and every figure is at least what the lab alone accounts for.
    let report = report_json();
    let ns_of = |pid: u32, t: &str| -> u64 {
        let link = std::fs::read_link(format!("/proc/{pid}/ns/{t}")).unwrap();
        let link = link.to_string_lossy();
        link.trim_start_matches(&format!("{t}:["))
            .trim_end_matches(']')
            .parse()
            .unwrap_or_else(|_| panic!("ns link {link}"))
    };
    let members = [&hostnet, &private, &remapped, &zero, &docker];
    let containers = report["containers"].as_array().unwrap();
    for (m, e) in members.iter().zip(&expectations) {
        let c = containers
            .iter()
            .find(|c| c["container_id"] == e.container_id.as_str())
            .unwrap_or_else(|| panic!("{}: not in report --json --all", e.what));
        for t in ["net", "mnt", "pid", "ipc", "uts", "user"] {
            assert_eq!(
                c["namespaces"][t].as_u64(),
                Some(ns_of(m.pid, t)),
                "{}: its {t} namespace as the scan read it",
                e.what
            );
        }
    }
    let pin_inode = std::fs::metadata(format!("/run/netns/{pin}"))
        .unwrap()
        .ino();
    let pinned = report["pinned"].as_array().unwrap();
    assert!(
        pinned.iter().any(|p| p["type"] == "net"
            && p["inode"].as_u64() == Some(pin_inode)
            && p["mount_points"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m == format!("/run/netns/{pin}").as_str())),
        "the lab's pinned netns {pin} ({pin_inode}) is not listed: {pinned:?}"
    );
    // Each figure is at least the lab's own part of it.
    let lab_pids = [
        hostnet.pid,
        private.pid,
        remapped.pid,
        zero.pid,
        docker.pid,
        service.pid,
    ];
    let host_ns = |t: &str| ns_of(std::process::id(), t);
    for t in ["net", "mnt", "user"] {
        let mut own: BTreeSet<u64> = lab_pids
            .iter()
            .map(|&p| ns_of(p, t))
            .filter(|&i| i != host_ns(t))
            .collect();
        if t == "net" {
            own.insert(pin_inode);
        }
        let total = value(&after, "nsexporter_namespaces", &[("type", t)]).unwrap();
        assert!(
            total > own.len() as f64,
            "{t}: {total} namespaces, but the lab alone holds {} besides the host's",
            own.len()
        );
    }
    assert!(value(&after, "nsexporter_namespaces_pinned", &[("type", "net")]).unwrap() >= 1.0);
    let at_least = |name: &str, labels: &[(&str, &str)], n: f64| {
        let v = value(&after, name, labels).unwrap_or(0.0);
        assert!(v >= n, "{name}{labels:?} = {v}, the lab alone has {n}");
    };
    at_least("nsexporter_containers", &[("runtime", "containerd")], 3.0);
    at_least("nsexporter_containers", &[("runtime", "cri-o")], 1.0);
    at_least("nsexporter_containers", &[("runtime", "docker")], 1.0);
    // Only the hostNetwork-like container shares net; only the Docker one pid and ipc
    // (each lab container's own sharing series are checked exactly above).
    for t in ["net", "pid", "ipc"] {
        at_least("nsexporter_host_namespace_containers", &[("type", t)], 1.0);
    }
    // Every lab container but the remapped one is host root.
    at_least("nsexporter_host_root_containers", &[], 4.0);
    let deltas: Vec<String> = ["net", "mnt", "user", "pid", "ipc", "uts", "cgroup"]
        .iter()
        .map(|t| {
            let d = |name: &str| {
                value(&after, name, &[("type", t)]).unwrap_or(0.0)
                    - value(&before, name, &[("type", t)]).unwrap_or(0.0)
            };
            format!(
                "{t}: namespaces {:+} pinned {:+}",
                d("nsexporter_namespaces"),
                d("nsexporter_namespaces_pinned")
            )
        })
        .collect();
    eprintln!("node-wide deltas while the lab was built (informative): {deltas:?}");
    assert_eq!(
        value(&after, "nsexporter_host_reference_info", &[]),
        Some(1.0)
    );

    // nsexporter_namespaces minus _pinned is what processes hold: what lsns lists.
    // Processes outside the lab may come and go between the two reads: read both again
    // until they agree, for a while.
    let mut last: String;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let agreed = loop {
        let s = parse_exposition(&once(&[]));
        let ours: BTreeMap<String, f64> = by_label(&s, "nsexporter_namespaces", "type")
            .into_iter()
            .map(|(t, v)| {
                let pinned = value(&s, "nsexporter_namespaces_pinned", &[("type", &t)]).unwrap();
                (t, v - pinned)
            })
            .collect();
        let theirs = lsns_counts();
        last = format!("nsexporter {ours:?}\nlsns       {theirs:?}");
        if ours == theirs {
            break true;
        }
        if std::time::Instant::now() > deadline {
            break false;
        }
    };
    assert!(
        agreed,
        "process-held namespace counts differ from lsns:\n{last}"
    );

    // Through HTTP against a running server.
    let exporter = Exporter::start(&["--scan.interval", "300ms"]);
    exporter.wait_ready();
    let first = parse_exposition(&exporter.get("/metrics").body);
    for e in &expectations {
        check(&first, e);
    }
    // The first scan is the baseline: the lab's containers are not "starts".
    for t in ["net", "pid", "ipc"] {
        assert_eq!(
            value(
                &first,
                "nsexporter_host_namespace_container_starts_total",
                &[("type", t)]
            ),
            Some(0.0),
            "{t}"
        );
    }
    // A new hostNetwork container appears after the first scan. The counter is
    // node-wide (other containers may start on this machine meanwhile), so it must have
    // risen by at least this one; which types this container shares is asserted on its
    // own series below.
    let late = lab.kube_systemd(
        "burstable",
        "cri-containerd",
        &["--pid", "--fork", "--mount", "--uts", "--ipc"],
    );
    let late_id = late.container_id("containerd");
    let net_before = value(
        &first,
        "nsexporter_host_namespace_container_starts_total",
        &[("type", "net")],
    )
    .unwrap_or(0.0);
    let s = exporter.scrape_until(
        Duration::from_secs(20),
        "the new container to be counted",
        |s| {
            value(
                s,
                "nsexporter_host_namespace_container_starts_total",
                &[("type", "net")],
            )
            .is_some_and(|v| v >= net_before + 1.0)
                && !find(
                    s,
                    "nsexporter_container_host_namespace",
                    &[("container_id", &late_id), ("type", "net")],
                )
                .is_empty()
        },
    );
    check(
        &s,
        &Expect {
            what: "late hostNetwork-like",
            container_id: late_id.clone(),
            uid: late.pod_uid.clone(),
            runtime: "containerd",
            shared: &["cgroup", "net", "time", "user"],
            host_root: Some(1.0),
        },
    );
    // It exits: its gauges go away at once, while its exec counter (a scan found its
    // process first: counted once per type) and its info stay for the retention, so a
    // slow scrape still sees that it was there.
    lab.kill(late.pid);
    let s = exporter.scrape_until(
        Duration::from_secs(20),
        "the exited container's gauges to go",
        |s| {
            find(
                s,
                "nsexporter_container_host_namespace",
                &[("container_id", &late_id)],
            )
            .is_empty()
        },
    );
    assert!(find(
        &s,
        "nsexporter_container_host_root_processes",
        &[("container_id", &late_id)]
    )
    .is_empty());
    assert_eq!(
        find(
            &s,
            "nsexporter_container_info",
            &[("container_id", &late_id)]
        )
        .len(),
        1,
        "the exited container's info is kept for --scan.events-retention"
    );
    assert_eq!(
        value(
            &s,
            "nsexporter_container_host_namespace_execs_total",
            &[("container_id", &late_id), ("type", "net")]
        ),
        Some(1.0)
    );
    // Node-wide, like the wait above: risen by at least the late container.
    let net_after = value(
        &s,
        "nsexporter_host_namespace_container_starts_total",
        &[("type", "net")],
    )
    .unwrap_or(0.0);
    assert!(
        net_after >= net_before + 1.0,
        "starts{{type=\"net\"}} {net_before} -> {net_after}"
    );
    assert_eq!(exporter.get("/readyz").status, 200);
    assert_eq!(exporter.get("/healthz").status, 200);
}

#[test]
fn sigterm_stops_the_server_within_a_second() {
    let mut exporter = Exporter::start(&["--scan.interval", "1s"]);
    exporter.wait_ready();
    let started = std::time::Instant::now();
    let st = Command::new("kill")
        .args(["-TERM", &exporter.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = started + Duration::from_secs(1);
    loop {
        if let Some(status) = exporter.child.try_wait().unwrap() {
            assert!(status.success(), "exit status after SIGTERM: {status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 1 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

//! Integration tests on the real kernel: a small node built from real namespaces in
//! real cgroups shaped the way kubelet, CRI-O, Docker and systemd shape them, checked
//! through `--once` and through HTTP against a running server, and against `lsns`.
//!
//! One test function drives the whole lab so that exact counts are not disturbed by
//! another test of this binary running at the same time.

mod common;

use std::collections::{BTreeMap, BTreeSet};
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
    let out = Command::new("lsns")
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
    let _service = lab.service(&format!("nsxlab-{}", rand_hex(6)), s);
    // A network namespace that only a bind mount holds.
    let _pin = lab.netns_pin();

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
    let delta = |name: &str, label: &str, key: &str| {
        by_label(&after, name, label)
            .get(key)
            .copied()
            .unwrap_or(0.0)
            - by_label(&before, name, label)
                .get(key)
                .copied()
                .unwrap_or(0.0)
    };
    let deltas: Vec<String> = ["net", "mnt", "user", "pid", "ipc", "uts", "cgroup"]
        .iter()
        .map(|t| {
            format!(
                "{t}: namespaces {:+} pinned {:+}",
                delta("nsexporter_namespaces", "type", t),
                delta("nsexporter_namespaces_pinned", "type", t)
            )
        })
        .collect();
    eprintln!("namespace deltas after building the lab: {deltas:?}");
    assert_eq!(delta("nsexporter_containers", "runtime", "containerd"), 3.0);
    assert_eq!(delta("nsexporter_containers", "runtime", "cri-o"), 1.0);
    assert_eq!(delta("nsexporter_containers", "runtime", "docker"), 1.0);
    // New network namespaces: private, remapped, zero, docker, and the pin.
    assert_eq!(delta("nsexporter_namespaces", "type", "net"), 5.0);
    assert_eq!(delta("nsexporter_namespaces_pinned", "type", "net"), 1.0);
    // New mount namespaces: every member, the service's included.
    assert_eq!(delta("nsexporter_namespaces", "type", "mnt"), 6.0);
    assert_eq!(delta("nsexporter_namespaces", "type", "user"), 2.0);
    // Only the hostNetwork-like container shares net; only the Docker one pid and ipc.
    assert_eq!(
        delta("nsexporter_host_namespace_containers", "type", "net"),
        1.0
    );
    assert_eq!(
        delta("nsexporter_host_namespace_containers", "type", "pid"),
        1.0
    );
    assert_eq!(
        delta("nsexporter_host_namespace_containers", "type", "ipc"),
        1.0
    );
    let root_delta = value(&after, "nsexporter_host_root_containers", &[]).unwrap()
        - value(&before, "nsexporter_host_root_containers", &[]).unwrap();
    assert_eq!(
        root_delta, 4.0,
        "every lab container but the remapped one is host root"
    );
    assert_eq!(
        value(&after, "nsexporter_host_reference_info", &[]),
        Some(1.0)
    );

    // nsexporter_namespaces minus _pinned is what processes hold: what lsns lists.
    // Processes outside the lab may come and go between the two reads; retry a little.
    let mut last = String::new();
    let agreed = (0..5).any(|_| {
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
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
        false
    });
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
    // A new hostNetwork container appears after the first scan.
    let late = lab.kube_systemd(
        "burstable",
        "cri-containerd",
        &["--pid", "--fork", "--mount", "--uts", "--ipc"],
    );
    let late_id = late.container_id("containerd");
    let s = exporter.scrape_until(
        Duration::from_secs(20),
        "the new container to be counted",
        |s| {
            value(
                s,
                "nsexporter_host_namespace_container_starts_total",
                &[("type", "net")],
            ) == Some(1.0)
                && !find(
                    s,
                    "nsexporter_container_host_namespace",
                    &[("container_id", &late_id), ("type", "net")],
                )
                .is_empty()
        },
    );
    assert_eq!(
        value(
            &s,
            "nsexporter_host_namespace_container_starts_total",
            &[("type", "pid")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &s,
            "nsexporter_host_namespace_container_starts_total",
            &[("type", "ipc")]
        ),
        Some(0.0)
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
    assert_eq!(
        value(
            &s,
            "nsexporter_host_namespace_container_starts_total",
            &[("type", "net")]
        ),
        Some(1.0)
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

//! What the exporter logs while real containers come and go: one `info` line per
//! container that starts sharing a namespace that exposes the node (net, pid, ipc, uts,
//! mnt), and the sharing that ordinary containers do (cgroup, time, user) at `debug`.
//!
//! Needs root and a Docker engine (`tests/run.sh` starts one).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::docker::{busybox_image, Container};
use common::Exporter;

const START_LINE: &str = "container started sharing host namespaces";

/// The value of `key=` in a logfmt line (unquoted values only).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
}

#[test]
fn one_info_line_per_container_that_starts_sharing_an_exposing_namespace() {
    busybox_image();
    let e = Exporter::start(&["--scan.interval", "1s", "--log.level", "debug"]);
    // Ready means the first scan, the baseline, is done: what starts now is a start.
    e.wait_ready();
    let host_net = Container::busybox(&["--network", "host"]);
    let host_pid_ipc = Container::busybox(&["--network", "none", "--pid", "host", "--ipc", "host"]);
    let private = Container::busybox(&["--network", "none"]);
    let ours = [
        ("host network", &host_net),
        ("host PID and IPC", &host_pid_ipc),
        ("private", &private),
    ];

    // Every start line about these three, until each has its debug line (Docker
    // containers share the host's time and user namespaces), then three more scans
    // to catch any repeat.
    let mut lines: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut settle: Option<Instant> = None;
    while settle.is_none_or(|t| Instant::now() < t) {
        let line = e
            .stderr
            .recv_timeout(Duration::from_millis(200))
            .unwrap_or_default();
        if line.contains("started sharing host namespaces") {
            for (name, c) in ours {
                if field(&line, "container_id") == Some(&c.label()) {
                    lines.entry(name).or_default().push(line.clone());
                }
            }
        }
        let all_debug = ours.iter().all(|(name, _)| {
            lines
                .get(name)
                .is_some_and(|ls| ls.iter().any(|l| l.contains("level=debug")))
        });
        if all_debug && settle.is_none() {
            settle = Some(Instant::now() + Duration::from_secs(3));
        }
        assert!(
            Instant::now() < deadline,
            "not every container got its debug line within 30 s: {lines:#?}"
        );
    }

    let info = |name: &str| -> Vec<&String> {
        lines[name]
            .iter()
            .filter(|l| l.contains("level=info"))
            .collect()
    };
    let types = |l: &str| field(l, "types").unwrap_or_default().to_owned();
    let net = info("host network");
    assert_eq!(net.len(), 1, "{net:#?}");
    assert!(net[0].contains(START_LINE), "{}", net[0]);
    assert_eq!(types(net[0]), "net");
    let pid_ipc = info("host PID and IPC");
    assert_eq!(pid_ipc.len(), 1, "{pid_ipc:#?}");
    assert_eq!(types(pid_ipc[0]), "ipc,pid");
    assert!(info("private").is_empty(), "{:#?}", lines["private"]);
    for (name, _) in ours {
        let debug: Vec<&String> = lines[name]
            .iter()
            .filter(|l| l.contains("level=debug"))
            .collect();
        assert_eq!(debug.len(), 1, "{name}: {debug:#?}");
        let t = types(debug[0]);
        assert!(
            t.contains("time") && t.contains("user") && !t.contains("net"),
            "{name}: {t}"
        );
    }
}

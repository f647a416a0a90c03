//! The alerting sidecar end to end: the real binary, real Alertmanagers on loopback and
//! a container-shaped process (real namespaces, a kubelet-shaped cgroup) that shares
//! the host network namespace. The alert naming the container reaches both members of
//! an HA pair and resolves after the process exits; Alertmanager failing (500, no
//! answer) is counted and retried while `/metrics` keeps being served; a bad URL or an
//! unreadable TLS file stops the program at startup with exit code 2.
//!
//! Needs root, cgroups (v2 and v1 `pids`), `unshare`, `curl` and
//! `prometheus-alertmanager`.

mod am;
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use am::{wait_for, Alertmanager, FakeAm};
use common::*;

fn require_root() {
    assert!(
        nix_is_root(),
        "this test needs root (namespaces, cgroups): run it as root"
    );
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        .unwrap_or(false)
}

fn has_alert(am: &Alertmanager, alertname: &str, container_id: &str) -> Result<bool, String> {
    Ok(am.alerts()?.iter().any(|a| {
        a["labels"]["alertname"] == alertname
            && a["labels"]["container_id"] == container_id
            && a["labels"]["source"] == "nsexporter-sidecar"
    }))
}

fn sample(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    value(samples, name, labels).unwrap_or(0.0)
}

#[test]
fn host_network_container_alerts_both_alertmanagers_and_resolves_after_exit() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let a = Alertmanager::start(tmp.path(), "am-a");
    let b = Alertmanager::start(tmp.path(), "am-b");
    let exporter = Exporter::start(&[
        "--scan.interval",
        "500ms",
        "--alertmanager.url",
        &a.url(),
        "--alertmanager.url",
        &b.url(),
        "--alertmanager.resend-interval",
        "5s",
    ]);
    exporter.wait_ready();

    let mut lab = Lab::new();
    // Private pid, mount, ipc and uts; the host's network namespace.
    let c = lab.kube_systemd(
        "besteffort",
        "cri-containerd",
        &["--pid", "--fork", "--mount", "--ipc", "--uts"],
    );
    let id = c.container_id("containerd");
    let started = Instant::now();
    for am in [&a, &b] {
        wait_for(
            "the alert naming the container",
            Duration::from_secs(10),
            || {
                has_alert(am, "NsexporterHostNetworkContainer", &id)?
                    .then_some(())
                    .ok_or_else(|| format!("{:?}", am.sidecar_keys()))
            },
        );
    }
    eprintln!(
        "alert in both Alertmanagers {:?} after the start",
        started.elapsed()
    );
    let alert = a
        .alerts()
        .unwrap()
        .into_iter()
        .find(|x| {
            x["labels"]["container_id"] == id.as_str()
                && x["labels"]["alertname"] == "NsexporterHostNetworkContainer"
        })
        .unwrap();
    assert_eq!(alert["labels"]["uid"], c.pod_uid.as_str());
    assert_eq!(alert["labels"]["comm"], "sleep");
    assert_eq!(alert["labels"]["type"], "net");
    assert!(!alert["labels"]["node"].as_str().unwrap_or("").is_empty());
    // Its sleep runs as root with no user namespace: root of the host, said too.
    assert!(has_alert(&a, "NsexporterContainerHostRoot", &id).unwrap());

    // The exporter's own series say so.
    exporter.scrape_until(Duration::from_secs(10), "sidecar metrics", |s| {
        sample(
            s,
            "nsexporter_alerts",
            &[
                ("alertname", "NsexporterHostNetworkContainer"),
                ("state", "firing"),
            ],
        ) >= 1.0
            && sample(
                s,
                "nsexporter_alertmanager_notifications_total",
                &[("url", &a.url()), ("result", "success")],
            ) >= 1.0
    });

    lab.kill(c.pid);
    for am in [&a, &b] {
        wait_for("the alerts resolved", Duration::from_secs(10), || {
            (!has_alert(am, "NsexporterHostNetworkContainer", &id)?
                && !has_alert(am, "NsexporterContainerHostRoot", &id)?)
            .then_some(())
            .ok_or("still active".to_string())
        });
    }
}

#[test]
fn failing_alertmanagers_are_counted_and_retried_while_metrics_are_served() {
    require_root();
    let failing = FakeAm::start(500);
    // A port nothing listens on: no answer at all.
    let dead = format!("http://127.0.0.1:{}", am::free_port());
    let exporter = Exporter::start(&[
        "--scan.interval",
        "500ms",
        "--alertmanager.url",
        &failing.url(),
        "--alertmanager.url",
        &dead,
    ]);
    let mut lab = Lab::new();
    let _c = lab.kube_systemd(
        "besteffort",
        "cri-containerd",
        &["--pid", "--fork", "--mount", "--ipc", "--uts"],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut scrapes = 0;
    loop {
        let r = exporter.get("/metrics");
        assert_eq!(
            r.status, 200,
            "/metrics must be served whatever Alertmanager does"
        );
        scrapes += 1;
        let s = parse_exposition(&r.body);
        let http5xx = sample(
            &s,
            "nsexporter_alertmanager_notifications_total",
            &[("url", &failing.url()), ("result", "http_5xx")],
        );
        let errors = sample(
            &s,
            "nsexporter_alertmanager_notifications_total",
            &[("url", &dead), ("result", "error")],
        );
        let queued = sample(
            &s,
            "nsexporter_alertmanager_queue_length",
            &[("url", &failing.url())],
        );
        if http5xx >= 3.0 && errors >= 3.0 && queued >= 1.0 && failing.received().len() >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "failures not counted: 5xx {http5xx}, errors {errors}, queued {queued}\n{}",
            r.body
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(scrapes > 1);
    // It recovers: the queued alerts go through, and the queue drains.
    failing.set_status(200);
    exporter.scrape_until(Duration::from_secs(40), "delivery after recovery", |s| {
        sample(
            s,
            "nsexporter_alertmanager_notifications_total",
            &[("url", &failing.url()), ("result", "success")],
        ) >= 1.0
            && sample(
                s,
                "nsexporter_alertmanager_queue_length",
                &[("url", &failing.url())],
            ) == 0.0
    });
}

fn startup_error(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nsexporter"))
        .args(["--web.listen-address", "127.0.0.1:0"])
        .args(args)
        .output()
        .expect("run nsexporter");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_url_or_unreadable_tls_file_exit_2_with_a_clear_error() {
    let (code, err) = startup_error(&["--alertmanager.url", "alertmanager:9093"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("alertmanager.url") && err.contains("http://"),
        "{err}"
    );
    let (code, err) = startup_error(&["--alertmanager.url", "http://user:hunter2@am:9093"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        !err.contains("hunter2"),
        "the password must not be printed: {err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let http = dir.path().join("http.yml");
    std::fs::write(&http, "tls_config:\n  ca_file: missing-ca.pem\n").unwrap();
    let (code, err) = startup_error(&[
        "--alertmanager.url",
        "https://am:9093",
        "--alertmanager.http-config-file",
        http.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("alertmanager.http-config-file")
            && err.contains("tls_config.ca_file")
            && err.contains("missing-ca.pem"),
        "{err}"
    );
    // Unreadable, not missing: a directory where the key should be.
    std::fs::create_dir(dir.path().join("key.pem")).unwrap();
    std::fs::write(dir.path().join("cert.pem"), "x").unwrap();
    std::fs::write(
        &http,
        "tls_config:\n  cert_file: cert.pem\n  key_file: key.pem\n",
    )
    .unwrap();
    let (code, err) = startup_error(&[
        "--alertmanager.url",
        "https://am:9093",
        "--alertmanager.http-config-file",
        http.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("key_file"), "{err}");
}

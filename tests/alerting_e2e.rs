//! End to end against real servers: Debian's `prometheus` and
//! `prometheus-alertmanager` on loopback with the project's rules (every `for:`
//! shortened from minutes to seconds, nothing else changed), scraping a real
//! nsexporter. A hostNetwork-like container (real namespaces, in a kubelet-shaped
//! cgroup) must reach Alertmanager as NsexporterHostNetworkContainer within a bounded
//! time; a fully private one must raise no host-namespace alert. With `--scan.events`
//! and a 60 s scan interval, a container that is in the host network namespace for
//! 200 ms, between two scans, must raise NsexporterNewHostNamespaceWorkload (from the
//! exec counter alone: its gauge never exists).
//!
//! Needs root, the lab's cgroups (tests/common/lab.rs finds the layout: pure v2, or
//! hybrid), `unshare`, and the packages `prometheus` and `prometheus-alertmanager`
//! (`tests/run.sh` installs them).
//! Missing pieces fail the test.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, rand_hex, require_root, root, HttpClient, Lab};
use serde_json::Value;

const RULES: &str = "charts/nsexporter/files/nsexporter.rules.yml";
const ALERT_DEADLINE: Duration = Duration::from_secs(60);
const HOST_SHARING_ALERTS: &[&str] = &[
    "NsexporterHostNetworkContainer",
    "NsexporterHostPIDContainer",
    "NsexporterHostIPCContainer",
    "NsexporterNewHostNamespaceWorkload",
];

/// A process this test started; killed by its PID and reaped on drop.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &'static str, cmd: &mut Command, dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = fs::File::create(&log).expect("create log");
        let err = out.try_clone().expect("clone log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({:?}): {e}", cmd.get_program()));
        Proc { name, child, log }
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(30);
        format!("--- {} log (tail)\n{}", self.name, lines[from..].join("\n"))
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early ({status})\n{}", self.name, self.log_tail());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A kubelet-shaped container of the lab (`kubepods-besteffort-pod<uid_>.slice/
/// cri-containerd-<id>.scope`, in every hierarchy the lab uses), holding `unshare ...
/// sleep` with private PID, mount, UTS and IPC namespaces, and a private network
/// namespace or the host's.
struct Container {
    id: String,
    uid: String,
}

fn start_container(lab: &mut Lab, private_net: bool) -> Container {
    let mut flags = vec!["--pid", "--fork", "--mount", "--uts", "--ipc"];
    if private_net {
        flags.push("--net");
    }
    let m = lab.kube_systemd("besteffort", "cri-containerd", &flags);
    Container {
        id: m.container_id("containerd"),
        uid: m.pod_uid,
    }
}

fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    HttpClient::plain(addr)
        .request("GET", path, &[("Accept", "application/json")])
        .map(|r| (r.status, r.body))
}

fn get_json(port: u16, path: &str) -> Value {
    match http_get(port, path) {
        Ok((200, body)) => serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}")),
        other => panic!("GET {path} on port {port}: {other:?}"),
    }
}

fn wait_ready(p: &mut Proc, port: u16, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, _)) = http_get(port, path) {
            return;
        }
        p.assert_running();
        assert!(
            Instant::now() < deadline,
            "{} not ready at {path}\n{}",
            p.name,
            p.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn prom_query(port: u16, q: &str) -> Vec<Value> {
    let v = get_json(port, &format!("/api/v1/query?query={}", urlencode(q)));
    assert_eq!(v["status"], "success", "query {q}: {v}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The rules file with every `for: <n>m` turned into `for: <n>s`; nothing else.
fn rules_with_short_for() -> String {
    let text = fs::read_to_string(root().join(RULES)).expect("read rules");
    let mut changed = 0;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if let Some(n) = t
                .strip_prefix("for: ")
                .and_then(|d| d.strip_suffix('m'))
                .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
            {
                changed += 1;
                format!("{}for: {n}s", &l[..l.len() - t.len()])
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(
        changed >= 10,
        "expected a `for:` on every alert, changed {changed}"
    );
    out.join("\n") + "\n"
}

fn alert_label<'a>(a: &'a Value, k: &str) -> &'a str {
    a["labels"][k].as_str().unwrap_or("")
}

/// Alertmanager and Prometheus on loopback, Prometheus scraping the exporter on
/// `exporter_port` (target label `node: e2e-node`) every second and evaluating the
/// project's rules (`for:` in seconds, see [`rules_with_short_for`]) every second.
/// Anything already in `dir/prom-data` (backfilled blocks) is Prometheus's history.
struct Stack {
    am: Proc,
    am_port: u16,
    prom: Proc,
    prom_port: u16,
}

impl Stack {
    fn start(dir: &Path, exporter_port: u16) -> Stack {
        let am_port = free_port();
        fs::write(
            dir.join("alertmanager.yml"),
            "route:\n  receiver: blackhole\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: blackhole\n",
        )
        .expect("write alertmanager.yml");
        let mut am = Proc::spawn(
            "alertmanager",
            Command::new(common::require_tool("prometheus-alertmanager")).args([
                &format!("--config.file={}", dir.join("alertmanager.yml").display()),
                &format!("--storage.path={}", dir.join("am-data").display()),
                &format!("--web.listen-address=127.0.0.1:{am_port}"),
                "--cluster.listen-address=",
            ]),
            dir,
        );
        wait_ready(&mut am, am_port, "/-/ready");

        fs::write(dir.join("rules.yml"), rules_with_short_for()).expect("write rules");
        let prom_port = free_port();
        fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - rules.yml\n\
                 alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n\
                 scrape_configs:\n  - job_name: nsexporter\n    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n        labels:\n          node: e2e-node\n"
            ),
        )
        .expect("write prometheus.yml");
        let mut prom = Proc::spawn(
            "prometheus",
            Command::new(common::require_tool("prometheus"))
                .args([
                    "--config.file=prometheus.yml",
                    &format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
                    &format!("--web.listen-address=127.0.0.1:{prom_port}"),
                    "--rules.alert.resend-delay=1s",
                ])
                .current_dir(dir),
            dir,
        );
        wait_ready(&mut prom, prom_port, "/-/ready");
        Stack {
            am,
            am_port,
            prom,
            prom_port,
        }
    }
}

#[test]
fn host_network_container_reaches_alertmanager_and_private_one_does_not() {
    require_root("the containers are real namespaces in cgroups this test makes");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();

    // The containers first, so that the exporter's first scan (its baseline) has them.
    let mut lab = Lab::new();
    let hostnet = start_container(&mut lab, false);
    let private = start_container(&mut lab, true);

    let exporter_port = free_port();
    let mut exporter = Proc::spawn(
        "nsexporter",
        Command::new(env!("CARGO_BIN_EXE_nsexporter")).args([
            "--web.listen-address",
            &format!("127.0.0.1:{exporter_port}"),
            "--scan.interval",
            "1s",
        ]),
        dir,
    );
    wait_ready(&mut exporter, exporter_port, "/readyz");

    let Stack {
        mut am,
        am_port,
        mut prom,
        prom_port,
    } = Stack::start(dir, exporter_port);

    // The expected alert, at Alertmanager, in bounded time.
    let start = Instant::now();
    let found = loop {
        prom.assert_running();
        am.assert_running();
        exporter.assert_running();
        let alerts = get_json(am_port, "/api/v2/alerts");
        let hit = alerts.as_array().into_iter().flatten().find(|a| {
            alert_label(a, "alertname") == "NsexporterHostNetworkContainer"
                && alert_label(a, "container_id") == hostnet.id
        });
        if let Some(a) = hit {
            break a.clone();
        }
        if start.elapsed() > ALERT_DEADLINE {
            let seen = prom_query(
                prom_port,
                &format!(
                    "nsexporter_container_host_namespace{{container_id=\"{}\"}}",
                    hostnet.id
                ),
            );
            panic!(
                "NsexporterHostNetworkContainer for {} did not reach Alertmanager in {:?}.\n\
                 exporter series for it: {seen:?}\nalerts at Alertmanager: {alerts}\n{}\n{}\n{}",
                hostnet.id,
                ALERT_DEADLINE,
                exporter.log_tail(),
                prom.log_tail(),
                am.log_tail()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    eprintln!(
        "alert reached Alertmanager after {:?}: {found}",
        start.elapsed()
    );
    assert_eq!(alert_label(&found, "severity"), "warning");
    assert_eq!(alert_label(&found, "type"), "net");
    assert_eq!(alert_label(&found, "node"), "e2e-node");
    assert_eq!(alert_label(&found, "uid"), hostnet.uid);
    assert_eq!(alert_label(&found, "runtime"), "containerd");
    let description = found["annotations"]["description"].as_str().unwrap_or("");
    assert!(
        description.starts_with(&format!("Container {} (comm ", hostnet.id))
            && description.contains("on node e2e-node"),
        "description does not name the container: {description}"
    );
    assert!(
        found["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or("")
            .ends_with("README.md#alert-nsexporterhostnetworkcontainer"),
        "runbook_url: {found}"
    );

    // The private container was seen, shares nothing that matters, and raised nothing
    // (not even pending: ALERTS holds pending and firing alerts).
    let info = prom_query(
        prom_port,
        &format!(
            "nsexporter_container_info{{container_id=\"{}\"}}",
            private.id
        ),
    );
    assert_eq!(
        info.len(),
        1,
        "exporter did not report the private container: {info:?}"
    );
    let shared = prom_query(
        prom_port,
        &format!(
            "nsexporter_container_host_namespace{{container_id=\"{}\",type=~\"net|pid|ipc|uts|mnt\"}}",
            private.id
        ),
    );
    assert!(
        shared.is_empty(),
        "private container shares host namespaces: {shared:?}"
    );
    let pending = prom_query(
        prom_port,
        &format!(
            "ALERTS{{container_id=\"{}\",alertname=~\"{}\"}}",
            private.id,
            HOST_SHARING_ALERTS.join("|")
        ),
    );
    assert!(
        pending.is_empty(),
        "host-sharing alerts for the private container: {pending:?}"
    );
    // It runs as root in the host user namespace, so the host-root alert (pending or
    // firing) shows the rules did see it: the silence above is not for lack of data.
    let root_alert = prom_query(
        prom_port,
        &format!(
            "ALERTS{{container_id=\"{}\",alertname=\"NsexporterContainerHostRoot\"}}",
            private.id
        ),
    );
    assert_eq!(
        root_alert.len(),
        1,
        "no NsexporterContainerHostRoot for the private (root) container: {root_alert:?}"
    );
    let alerts = get_json(am_port, "/api/v2/alerts");
    let wrong: Vec<&Value> = alerts
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| {
            HOST_SHARING_ALERTS.contains(&alert_label(a, "alertname"))
                && alert_label(a, "container_id") == private.id
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "host-sharing alert for the private container: {wrong:?}"
    );

    // Every rule evaluated without error against real data (no many-to-many joins).
    let rules = get_json(prom_port, "/api/v1/rules");
    let mut n = 0;
    for g in rules["data"]["groups"].as_array().into_iter().flatten() {
        for r in g["rules"].as_array().into_iter().flatten() {
            n += 1;
            assert_eq!(
                r["health"], "ok",
                "rule {} in group {} is unhealthy: {}",
                r["name"], g["name"], r["lastError"]
            );
        }
    }
    assert!(n >= 30, "Prometheus loaded only {n} rules");
}

/// The first sample of `cluster:nsexporter_nodes:count` the rules write is an hour
/// and more in the past (what a cluster monitored for a while has): the new-workload
/// alert stays silent on the first hour's history alone, so a fresh Prometheus needs
/// this, backfilled with promtool, to judge anything new.
fn backfill_monitored_history(prom_data: &Path) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let mut om = String::from("# TYPE cluster:nsexporter_nodes:count gauge\n");
    for i in 0..12 {
        om.push_str(&format!(
            "cluster:nsexporter_nodes:count 1 {}\n",
            now - 7200 + i * 300
        ));
    }
    om.push_str("# EOF\n");
    let input = prom_data.with_extension("om");
    fs::write(&input, om).expect("write the history");
    let out = Command::new(common::require_tool("promtool"))
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(prom_data)
        .output()
        .expect("promtool (package prometheus) is needed");
    assert!(
        out.status.success(),
        "promtool tsdb create-blocks-from openmetrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_200ms_host_network_container_fires_the_new_workload_alert() {
    require_root(
        "the container is a real process in a cgroup this test makes, seen by process events",
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    backfill_monitored_history(&dir.join("prom-data"));

    let exporter_port = free_port();
    let mut exporter = Proc::spawn(
        "nsexporter",
        Command::new(env!("CARGO_BIN_EXE_nsexporter")).args([
            "--web.listen-address",
            &format!("127.0.0.1:{exporter_port}"),
            "--scan.interval",
            "60s",
            "--scan.events",
        ]),
        dir,
    );
    wait_ready(&mut exporter, exporter_port, "/readyz");
    let Stack {
        mut am,
        am_port,
        mut prom,
        prom_port,
    } = Stack::start(dir, exporter_port);
    // Prometheus has the exporter's series before the container starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while prom_query(prom_port, "nsexporter_scan_events_enabled == 1").is_empty() {
        prom.assert_running();
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped an exporter with events on\n{}",
            exporter.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // The container: a kubelet-shaped cgroup; its one process is in the host network
    // namespace (and the host's other namespaces) for 200 ms. A copy of `sleep` under
    // a name of its own makes its comm, which names the workload in the alert (there
    // is no kube-state-metrics here), unique to this run.
    let comm = format!("nsx200ms-{}", rand_hex(6));
    let program = dir.join(&comm);
    fs::copy("/bin/sleep", &program).expect("copy /bin/sleep");
    let mut lab = Lab::new();
    let (member, cgroup) = lab.kube_systemd_cgroup("besteffort", "cri-containerd");
    let container_id = member.container_id("containerd");
    let uid = member.pod_uid.clone();
    let files = lab.cgroup_procs(&cgroup);
    let fds: Vec<i32> = files.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
    let mut cmd = Command::new(&program);
    cmd.arg("0.2");
    // SAFETY: between fork and exec only write(2) on descriptors the parent opened,
    // which is async-signal-safe. It joins the container's cgroups before its exec, so
    // that exec is the container's.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            for fd in &fds {
                if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let status = cmd.status().expect("run the 200 ms container");
    assert!(status.success());
    let lived = started.elapsed();
    drop(files);

    // The alert, at Alertmanager, in bounded time.
    let found = loop {
        prom.assert_running();
        am.assert_running();
        exporter.assert_running();
        let alerts = get_json(am_port, "/api/v2/alerts");
        let hit = alerts.as_array().into_iter().flatten().find(|a| {
            alert_label(a, "alertname") == "NsexporterNewHostNamespaceWorkload"
                && alert_label(a, "comm") == comm
                && alert_label(a, "type") == "net"
        });
        if let Some(a) = hit {
            break a.clone();
        }
        if started.elapsed() > ALERT_DEADLINE {
            let seen = prom_query(prom_port, &format!("{{container_id=\"{container_id}\"}}"));
            panic!(
                "NsexporterNewHostNamespaceWorkload for {comm} did not reach Alertmanager in \
                 {ALERT_DEADLINE:?}.\nseries for {container_id}: {seen:?}\nalerts: {alerts}\n\
                 {}\n{}",
                exporter.log_tail(),
                prom.log_tail()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    eprintln!(
        "a container that lived {lived:?} reached Alertmanager after {:?}: {found}",
        started.elapsed()
    );
    assert_eq!(alert_label(&found, "severity"), "warning");
    let description = found["annotations"]["description"].as_str().unwrap_or("");
    assert!(
        description.contains(&format!("Containers running \"{comm}\""))
            && description.contains("host net namespace"),
        "description: {description}"
    );
    // From the exec counter alone: no scan ran while it lived (the interval is 60 s and
    // the exporter's first scan was before it), so the gauge never had it.
    let gauge = prom_query(
        prom_port,
        &format!(
            "count_over_time(nsexporter_container_host_namespace{{container_id=\"{container_id}\"}}[10m])"
        ),
    );
    assert!(gauge.is_empty(), "the gauge showed it: {gauge:?}");
    let counter = prom_query(
        prom_port,
        &format!(
            "nsexporter_container_host_namespace_execs_total{{container_id=\"{container_id}\",type=\"net\",uid=\"{uid}\"}}"
        ),
    );
    assert_eq!(counter.len(), 1, "{counter:?}");
    assert_eq!(counter[0]["value"][1], "1", "{counter:?}");
}

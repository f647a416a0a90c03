//! Every panel of both Grafana dashboards on real data: a real Prometheus (Debian's,
//! on a free loopback port, with the shipped rules file as it is) scrapes a real
//! nsexporter on a lab holding every kind of container, plus a static target that
//! serves kube-state-metrics' series (`kube_pod_info`, `kube_pod_owner`,
//! `kube_pod_container_info`, `kube_node_info`) for the lab's pods, plus a down target.
//!
//! The lab (tests/common): kubelet-shaped containers in real cgroups and namespaces on
//! the host network (a DaemonSet pod), in the host PID namespace (another), in the host
//! IPC namespace (a StatefulSet pod), fully private as root (a Deployment's pod), in a
//! user namespace mapping root to 100000 (CRI-O), a Docker-shaped container on the host
//! network that kube-state-metrics does not know, a systemd service with private
//! namespaces, and a pinned network namespace; one more hostNetwork pod starts after the
//! exporter's first scan, and the node leaks network namespaces while Prometheus watches.
//! The exporter is scraped with the relabelling the README ("At fleet scale") says loses
//! no rule, alert or panel.
//!
//! Every dashboard variable's query resolves to the lab's values; every query of every
//! panel, with the variables substituted as Grafana does, returns data carrying the
//! labels its legend shows; and the panels that name or count the lab's containers
//! name and count them right. [`EMPTY_ON_A_HEALTHY_NODE`] names, by title, the panels
//! that show nothing on a healthy node, and why: each must show what the lab does to
//! fill it (the escapes table is also checked empty before the lab's escape).
//! The README's relabelling drops what it says, and its remote_write filter drops no
//! series a dashboard reads.
//!
//! Needs root (namespaces, cgroups), a cgroup v2 hierarchy (the lab finds the layout:
//! pure v2, or hybrid with v1 pids and memory), and prometheus (Debian). Everything is removed at the end, pass or fail.
//!
//! Why one file of about 700 lines: one lab, one Prometheus and one kube-state-metrics
//! target serve every panel of both dashboards; the checks read the answers of a single
//! run.

mod common;
#[path = "../examples/fleetgen/prom.rs"]
mod prom;
#[path = "../examples/fleetgen/queries.rs"]
mod queries;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use common::{require_tool, root, Exporter, Lab, Member};
use prom::{sample_label as label, sample_value as value};

const NODE: &str = "lab-node";
const CLUSTER: &str = "lab";
/// Seconds between scrapes and rule evaluations, and the range and step of range panels.
const SCRAPE: u64 = 1;
const RANGE: i64 = 60;
const STEP: u64 = 2;

/// Network namespaces the lab leaks (pins) while Prometheus watches.
const LEAKED_PINS: usize = 20;

/// Panels that are meant to show nothing on a healthy node, by dashboard and title, and
/// why. A panel in this list is checked to show the lab once the lab does what fills
/// it: "Time until a namespace limit" lists only nodes whose namespace count grows, so
/// this lab leaks pinned network namespaces; the escapes table lists only escapes, so
/// it is checked empty first, then one of the lab's containers makes one.
/// Every other panel of both dashboards has data on a healthy node.
const EMPTY_ON_A_HEALTHY_NODE: &[(&str, &str, &str)] = &[
    (
        "nsexporter / Fleet",
        "Time until a namespace limit",
        "it lists only nodes whose namespace count grows; the lab leaks network namespaces to fill it",
    ),
    (
        "nsexporter / Node",
        "Container processes that escaped into a host namespace",
        "it lists only escapes; a process of the lab's toolbox pod enters the host's namespaces to fill it",
    ),
];

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A lab pod as kube-state-metrics would describe it.
struct Pod {
    member: Member,
    /// `containerd`, `cri-o` or `docker`: the container ID scheme.
    scheme: &'static str,
    namespace: &'static str,
    name: String,
    owner_kind: &'static str,
    owner_name: String,
    container: &'static str,
    host_network: bool,
}

impl Pod {
    fn container_id(&self) -> String {
        self.member.container_id(self.scheme)
    }
}

/// kube-state-metrics' series for `pods` (v2 names and labels), as text.
fn ksm_exposition(pods: &[Pod]) -> String {
    let mut out = String::new();
    out.push_str("# TYPE kube_node_info gauge\n");
    out.push_str(&format!(
        "kube_node_info{{node=\"{NODE}\",kernel_version=\"6\",os_image=\"lab\"}} 1\n"
    ));
    out.push_str("# TYPE kube_pod_info gauge\n");
    for p in pods {
        out.push_str(&format!(
            "kube_pod_info{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",node=\"{NODE}\",host_network=\"{}\",created_by_kind=\"{}\",created_by_name=\"{}\"}} 1\n",
            p.namespace, p.name, p.member.pod_uid, p.host_network, p.owner_kind, p.owner_name
        ));
    }
    out.push_str("# TYPE kube_pod_owner gauge\n");
    for p in pods {
        out.push_str(&format!(
            "kube_pod_owner{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",owner_kind=\"{}\",owner_name=\"{}\",owner_is_controller=\"true\"}} 1\n",
            p.namespace, p.name, p.member.pod_uid, p.owner_kind, p.owner_name
        ));
    }
    out.push_str("# TYPE kube_pod_container_info gauge\n");
    for p in pods {
        out.push_str(&format!(
            "kube_pod_container_info{{namespace=\"{}\",pod=\"{}\",uid=\"{}\",container=\"{}\",container_id=\"{}\",image=\"registry.example/{}:1\"}} 1\n",
            p.namespace, p.name, p.member.pod_uid, p.container, p.container_id(), p.container
        ));
    }
    out
}

/// A static HTTP target serving the current text of `body` on every GET; stopped when
/// dropped.
struct StaticTarget {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StaticTarget {
    fn serve(body: Arc<Mutex<String>>) -> StaticTarget {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 4096];
                        let _ = s.read(&mut buf);
                        let body = body.lock().unwrap().clone();
                        let _ = write!(
                            s,
                            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        StaticTarget {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for StaticTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The YAML code block of README.md between `<!-- <tag>:begin -->` and `<!-- <tag>:end -->`.
fn readme_yaml(tag: &str) -> Value {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let (begin, end) = (
        format!("<!-- {tag}:begin -->"),
        format!("<!-- {tag}:end -->"),
    );
    let from = readme
        .find(&begin)
        .unwrap_or_else(|| panic!("README.md has no {begin}"));
    let to = readme
        .find(&end)
        .unwrap_or_else(|| panic!("README.md has no {end}"));
    let block: String = readme[from + begin.len()..to]
        .lines()
        .filter(|l| !l.trim_start().starts_with("```"))
        .map(|l| format!("{l}\n"))
        .collect();
    serde_yaml_ng::from_str(&block)
        .unwrap_or_else(|e| panic!("README.md {tag} block is not YAML ({e}):\n{block}"))
}

/// The node dashboard's escapes table, for the lab's node.
fn escapes_panel_expr() -> String {
    let d = queries::load(&root().join("dashboards/nsexporter-node.json"));
    let p = queries::panels(&d)
        .into_iter()
        .find(|p| p.title == "Container processes that escaped into a host namespace")
        .expect("the node dashboard has the escapes table");
    let values = BTreeMap::from([
        ("cluster".to_string(), CLUSTER.to_string()),
        ("node".to_string(), NODE.to_string()),
    ]);
    queries::substitute(&p.expr, &values, STEP, SCRAPE)
}

/// A kubelet-shaped container started with `unshare <flags>` in a pod of `namespace`.
fn kube_pod(
    lab: &mut Lab,
    flags: &[&str],
    namespace: &'static str,
    (owner_kind, owner_name): (&'static str, &str),
    container: &'static str,
    host_network: bool,
) -> Pod {
    let member = lab.kube_systemd("burstable", "cri-containerd", flags);
    let name = match owner_kind {
        "StatefulSet" => format!("{owner_name}-0"),
        _ => format!("{owner_name}-{}", &common::rand_hex(5)),
    };
    Pod {
        member,
        scheme: "containerd",
        namespace,
        name,
        owner_kind,
        owner_name: owner_name.to_string(),
        container,
        host_network,
    }
}

#[test]
fn every_panel_of_both_dashboards_has_correct_data_from_a_real_lab() {
    let began = Instant::now();
    require_tool("prometheus");
    let mut lab = Lab::new();
    let private = ["--pid", "--fork", "--net", "--mount", "--uts", "--ipc"];
    let mut pods = vec![
        // hostNetwork: no --net (the pod's uts is the host's too).
        kube_pod(
            &mut lab,
            &["--pid", "--fork", "--mount", "--ipc"],
            "kube-system",
            ("DaemonSet", "kube-proxy"),
            "kube-proxy",
            true,
        ),
        // hostPID: no --pid.
        kube_pod(
            &mut lab,
            &["--net", "--mount", "--uts", "--ipc"],
            "monitoring",
            ("DaemonSet", "node-exporter"),
            "node-exporter",
            false,
        ),
        // hostIPC: no --ipc.
        kube_pod(
            &mut lab,
            &["--pid", "--fork", "--net", "--mount", "--uts"],
            "data",
            ("StatefulSet", "shm-cache"),
            "cache",
            false,
        ),
        // Fully private, root: host root.
        kube_pod(
            &mut lab,
            &private,
            "shop",
            ("ReplicaSet", "web-5d9c7b8f4b"),
            "web",
            false,
        ),
    ];
    // A user namespace mapping root to 100000 (hostUsers: false), under CRI-O.
    let userns_pid = lab.unshare_remapped_root(100_000, &private);
    pods.push(Pod {
        member: lab.crio(userns_pid),
        scheme: "cri-o",
        namespace: "payments",
        name: format!("ledger-7f6d5c4b3a-{}", common::rand_hex(5)),
        owner_kind: "ReplicaSet",
        owner_name: "ledger-7f6d5c4b3a".to_string(),
        container: "ledger",
        host_network: false,
    });
    // Docker on the host network, unknown to kube-state-metrics; a systemd service
    // with private namespaces (a host process); a pinned network namespace.
    let docker_pid = lab.unshare(&["--pid", "--fork", "--mount", "--uts", "--ipc"]);
    let docker = lab.docker(docker_pid);
    let service_pid = lab.unshare(&["--net", "--mount"]);
    lab.service("nsx-lab-demo", service_pid);
    let pinned = lab.netns_pin();

    let exporter = Exporter::start(&["--scan.interval", "1s"]);
    exporter.wait_ready();
    let ksm_body = Arc::new(Mutex::new(ksm_exposition(&pods)));
    let ksm = StaticTarget::serve(ksm_body.clone());
    let down = prom::free_port();

    let tmp = tempfile::tempdir().expect("tempdir");
    let rules = root().join("charts/nsexporter/files/nsexporter.rules.yml");
    // The scrape drops what the README's "At fleet scale" says can go without losing
    // a rule, alert or panel: this test is the proof.
    let relabel = readme_yaml("relabel");
    let relabel = serde_json::to_string(&relabel["metric_relabel_configs"]).unwrap();
    let config = format!(
        "global:\n  scrape_interval: {SCRAPE}s\n  evaluation_interval: {SCRAPE}s\n\
         rule_files:\n  - {}\n\
         scrape_configs:\n\
         \x20 - job_name: nsexporter\n    metric_relabel_configs: {relabel}\n    static_configs:\n\
         \x20     - targets: ['{}']\n        labels: {{node: {NODE}, cluster: {CLUSTER}}}\n\
         \x20     - targets: ['127.0.0.1:{down}']\n        labels: {{node: down-node, cluster: {CLUSTER}}}\n\
         \x20 - job_name: kube-state-metrics\n    honor_labels: true\n    static_configs:\n\
         \x20     - targets: ['127.0.0.1:{}']\n        labels: {{cluster: {CLUSTER}}}\n",
        rules.display(),
        exporter.addr,
        ksm.port
    );
    let prom = prom::Prometheus::start(
        tmp.path(),
        &config,
        &tmp.path().join("data"),
        &["--log.level=warn"],
        Duration::from_secs(60),
    );

    // Once Prometheus scrapes the exporter: a new hostNetwork pod, after the exporter's
    // baseline (a start) and while Prometheus watches the counter.
    let deadline = Instant::now() + Duration::from_secs(60);
    while prom
        .query("count_over_time(nsexporter_scans_total[1m])", now())
        .ok()
        .and_then(|t| t.result.first().map(value))
        .unwrap_or(0.0)
        < 3.0
    {
        assert!(
            Instant::now() < deadline,
            "Prometheus does not scrape the exporter:\n{}",
            prom.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    pods.push(kube_pod(
        &mut lab,
        &["--pid", "--fork", "--mount", "--ipc"],
        "calico-system",
        ("DaemonSet", "calico-node"),
        "calico-node",
        true,
    ));
    // The escapes table is empty on this healthy lab; then a process of a private
    // toolbox pod enters the host's namespaces (what `nsenter -t 1 -a` from inside it
    // leaves behind), and it must show that.
    let escapes_expr = escapes_panel_expr();
    let before = prom.query(&escapes_expr, now()).expect("escapes query");
    assert!(
        before.result.is_empty(),
        "escapes on a lab that made none: {:?}",
        before.result
    );
    pods.push(kube_pod(
        &mut lab,
        &private,
        "shop",
        ("ReplicaSet", "toolbox-5d9c7b8f4b"),
        "toolbox",
        false,
    ));
    let escaped_pid = lab.escape_from(&pods[6].member);
    *ksm_body.lock().unwrap() = ksm_exposition(&pods);

    // Until the newest rule in the chain has data for the lab, and range panels have
    // a minute of it. Meanwhile the node leaks network namespaces (a pin a second), so
    // that "Time until a namespace limit", which lists growing nodes only, has one.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut leaked = 0;
    loop {
        if leaked < LEAKED_PINS {
            lab.netns_pin();
            leaked += 1;
        }
        let named = prom
            .query(
                "nsexporter:container_host_namespace:not_allowed{pod!=\"\"}",
                now(),
            )
            .map(|t| t.result.len())
            .unwrap_or(0);
        let escapes = prom
            .query(&escapes_expr, now())
            .map(|t| t.result.len())
            .unwrap_or(0);
        if named >= 4
            && escapes > 0
            && leaked == LEAKED_PINS
            && began.elapsed() > Duration::from_secs(RANGE as u64 / 2 + 20)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rules never named the lab's containers:\n{}",
            prom.log_tail()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let at = now();

    // Every variable resolves, to the lab's values.
    let mut resolved: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in ["nsexporter-node.json", "nsexporter-fleet.json"] {
        let d = queries::load(&root().join("dashboards").join(file));
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        for v in queries::variables(&d) {
            let (selector, label) = v
                .label_values()
                .unwrap_or_else(|| panic!("{file}: variable {} is not label_values()", v.name));
            let selector = queries::substitute(&selector, &values, STEP, SCRAPE);
            let got = prom
                .label_values(&selector, &label, at - RANGE, at)
                .unwrap_or_else(|e| panic!("{file}: variable {}: {e}", v.name));
            let want = if v.name == "cluster" { CLUSTER } else { NODE };
            assert_eq!(got, [want], "{file}: variable {} ({})", v.name, v.query);
            values.insert(v.name.clone(), want.to_string());
        }
        resolved.insert(d["title"].as_str().unwrap().to_string(), values);
    }

    // Every query of every panel: data, labelled as its legend needs.
    let mut answers: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut checked = 0;
    for file in ["nsexporter-node.json", "nsexporter-fleet.json"] {
        let d = queries::load(&root().join("dashboards").join(file));
        let title = d["title"].as_str().unwrap().to_string();
        for p in queries::panels(&d) {
            let expr = queries::substitute(&p.expr, &resolved[&title], STEP, SCRAPE);
            let got = if p.instant {
                prom.query(&expr, at)
            } else {
                prom.query_range(&expr, at - RANGE, at, STEP)
            }
            .unwrap_or_else(|e| panic!("{title}: {}: {expr}: {e}", p.title));
            let meant_empty = EMPTY_ON_A_HEALTHY_NODE
                .iter()
                .find(|(dash, t, _)| *dash == title && *t == p.title);
            match meant_empty {
                // This lab is not healthy in that respect: it leaks.
                Some((_, _, why)) => assert!(
                    got.result.iter().any(|r| label(r, "node") == NODE),
                    "{title}: {:?} ({why}) does not show the leaking lab node: {:?}",
                    p.title,
                    got.result
                ),
                None => assert!(
                    !got.result.is_empty(),
                    "{title}: panel {:?} ({}) has no data on the lab: {expr}",
                    p.title,
                    p.ref_id
                ),
            }
            for r in &got.result {
                for l in p.legend_labels() {
                    assert!(
                        !label(r, &l).is_empty(),
                        "{title}: {:?}: legend {{{{{l}}}}} but a series lacks it: {r}",
                        p.title
                    );
                }
            }
            answers.insert(format!("{title}/{}/{}", p.title, p.ref_id), got.result);
            checked += 1;
        }
    }
    eprintln!("dashboards_live: {checked} panel queries have data");
    let get =
        |key: &str| -> &Vec<Value> { answers.get(key).unwrap_or_else(|| panic!("no panel {key}")) };

    // The panels that name and count the lab's containers do it right.
    for (dash, table) in [
        (
            "nsexporter / Node",
            "Containers sharing the host net, pid or ipc namespace",
        ),
        (
            "nsexporter / Fleet",
            "hostNetwork / hostPID / hostIPC containers",
        ),
    ] {
        let rows = get(&format!("{dash}/{table}/A"));
        let row = |id: &str, ty: &str| {
            rows.iter()
                .find(|r| label(r, "container_id") == id && label(r, "type") == ty)
                .unwrap_or_else(|| panic!("{dash}: {table}: no {ty} row for {id}: {rows:?}"))
        };
        for (i, ty) in [(0, "net"), (1, "pid"), (2, "ipc"), (5, "net")] {
            let p = &pods[i];
            let r = row(&p.container_id(), ty);
            assert_eq!(label(r, "namespace"), p.namespace, "{r}");
            assert_eq!(label(r, "pod"), p.name, "{r}");
            assert_eq!(label(r, "container"), p.container, "{r}");
            assert_eq!(label(r, "workload_kind"), p.owner_kind, "{r}");
            let workload = p.owner_name.trim_end_matches("-5d9c7b8f4b");
            assert_eq!(label(r, "workload"), workload, "{r}");
            assert_eq!(label(r, "node"), NODE, "{r}");
            assert_eq!(label(r, "comm"), "sleep", "{r}");
        }
        // Unknown to kube-state-metrics: named by container ID and comm only.
        let r = row(&docker.container_id("docker"), "net");
        assert_eq!(label(r, "pod"), "", "{r}");
        assert_eq!(label(r, "comm"), "sleep", "{r}");
        for p in &pods[3..5] {
            assert!(
                !rows
                    .iter()
                    .any(|r| label(r, "container_id") == p.container_id()),
                "{dash}: {} shares nothing of net, pid, ipc: {rows:?}",
                p.name
            );
        }
    }
    // The toolbox's escape, named: every type its sleep entered and its container
    // does not share, one process each; no other container escaped.
    let escapes = get("nsexporter / Node/Container processes that escaped into a host namespace/A");
    let toolbox = &pods[6];
    let mut types: Vec<&str> = escapes
        .iter()
        .map(|r| {
            assert_eq!(label(r, "container_id"), toolbox.container_id(), "{r}");
            assert_eq!(label(r, "pod"), toolbox.name, "{r}");
            assert_eq!(label(r, "namespace"), "shop", "{r}");
            assert_eq!(label(r, "container"), "toolbox", "{r}");
            assert_eq!(label(r, "workload"), "toolbox", "{r}");
            assert_eq!(
                value(r),
                1.0,
                "one escaped process (PID {escaped_pid}): {r}"
            );
            label(r, "type")
        })
        .collect();
    types.sort_unstable();
    assert_eq!(types, ["ipc", "mnt", "net", "pid", "uts"], "{escapes:?}");
    let host_root = get("nsexporter / Node/Host-root containers/A");
    let web = &pods[3];
    let r = host_root
        .iter()
        .find(|r| label(r, "container_id") == web.container_id())
        .unwrap_or_else(|| panic!("the private root container is host root: {host_root:?}"));
    assert_eq!(label(r, "pod"), web.name);
    assert_eq!(label(r, "workload"), "web");
    assert!(
        !host_root
            .iter()
            .any(|r| label(r, "container_id") == pods[4].container_id()),
        "root mapped to 100000 is not host root"
    );
    let pinned_net: f64 = get("nsexporter / Node/Pinned namespaces/A")
        .iter()
        .filter(|r| label(r, "type") == "net")
        .map(value)
        .sum();
    assert!(
        pinned_net >= 1.0,
        "pinned {pinned} is not in the pinned panel"
    );
    for r in get("nsexporter / Node/Namespaces as a share of the limit/A") {
        let v = value(r);
        assert!(v > 0.0 && v < 1.0, "share of the limit {v}: {r}");
    }
    let starts: f64 = get("nsexporter / Node/Containers that started sharing a host namespace/A")
        .iter()
        .filter(|r| label(r, "type") == "net")
        .flat_map(|r| r["values"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p[1].as_str().and_then(|s| s.parse::<f64>().ok()))
        .sum();
    assert!(
        starts >= 1.0,
        "the hostNetwork pod started after the baseline is not counted"
    );
    let source = label(&get("nsexporter / Node/Host reference/A")[0], "source").to_string();
    assert!(
        source == "pid1" || source == "kthread",
        "host reference {source}"
    );
    let scrape = get("nsexporter / Node/Scrape/A");
    assert!(scrape
        .iter()
        .all(|r| label(r, "node") == NODE && value(r) == 1.0));
    let nodes: f64 = get("nsexporter / Fleet/Nodes/A").iter().map(value).sum();
    assert_eq!(nodes, 1.0, "one node with data (the down target has none)");
    let down_count = value(&get("nsexporter / Fleet/Nodes with stale data or down/A")[0]);
    assert_eq!(down_count, 1.0, "the down target is counted");
    let stale = value(&get("nsexporter / Fleet/Nodes with stale data or down/B")[0]);
    assert_eq!(stale, 0.0, "no exporter serves stale data");
    let by_type = get("nsexporter / Fleet/Containers in host net / pid / ipc/A");
    for ty in ["net", "pid", "ipc"] {
        let n = by_type
            .iter()
            .find(|r| label(r, "type") == ty)
            .map(value)
            .unwrap_or(0.0);
        let lab_count = match ty {
            "net" => 3.0,
            _ => 1.0,
        };
        assert!(
            n >= lab_count,
            "{ty}: {n} containers, the lab alone has {lab_count}"
        );
    }
    let own_userns =
        value(&get("nsexporter / Fleet/Containers with their own user namespace/A")[0]);
    assert!(
        own_userns > 0.0 && own_userns < 1.0,
        "the CRI-O container has its own user namespace, the others not: {own_userns}"
    );
    // The relabelling dropped what it says (the exporter does emit those series)...
    let exposed = exporter.get("/metrics").body;
    for (selector, name) in [
        (
            "nsexporter_container_host_namespace{type=\"time\"}",
            "nsexporter_container_host_namespace{type=\"time\"",
        ),
        (
            "nsexporter_container_host_namespace_execs_total{type=\"time\"}",
            "nsexporter_container_host_namespace_execs_total{type=\"time\"",
        ),
        (
            "nsexporter_host_namespace_processes",
            "nsexporter_host_namespace_processes{",
        ),
    ] {
        assert!(exposed.contains(name), "the exporter emits {name}");
        let kept = prom.query(selector, at).expect("query").result;
        assert!(
            kept.is_empty(),
            "the README's relabelling keeps {selector}: {kept:?}"
        );
    }
    // ...and the remote_write filter drops only series no dashboard reads.
    let remote = readme_yaml("remote-write");
    let regex = remote["remote_write"][0]["write_relabel_configs"][0]["regex"]
        .as_str()
        .expect("the remote_write drop regex")
        .to_string();
    let dropped: Vec<String> = prom
        .query(
            &format!("count by (__name__) ({{__name__=~\"{regex}\"}})"),
            at,
        )
        .expect("query")
        .result
        .iter()
        .map(|r| label(r, "__name__").to_string())
        .collect();
    assert!(
        dropped.iter().any(|n| n.starts_with("nsexporter:"))
            && dropped.iter().any(|n| n.starts_with("nsexporter_")),
        "the remote_write filter drops recorded and raw per-container series: {dropped:?}"
    );
    for file in ["nsexporter-node.json", "nsexporter-fleet.json"] {
        let d = queries::load(&root().join("dashboards").join(file));
        for p in queries::panels(&d) {
            for name in &dropped {
                assert!(
                    !queries::mentions(&p.expr, name),
                    "{file}: {:?} reads {name}, which the README's remote_write filter drops",
                    p.title
                );
            }
        }
    }
    drop(prom);
    drop(ksm);
    drop(exporter);
    drop(lab);
}

//! In-process alert evaluation: from each published snapshot, the alerts that hold now,
//! with the rules file's names, labels and meaning where they overlap
//! (`charts/nsexporter/files/nsexporter.rules.yml`). Unlike the rules, these have no
//! `for`: they fire on the first snapshot that shows the condition, which is the point
//! of the sidecar.
//!
//! | alert | condition (per snapshot) | labels |
//! |---|---|---|
//! | `NsexporterHostNetworkContainer`, `…HostPIDContainer`, `…HostIPCContainer` | a container not allowed has a process in the host net/pid/ipc namespace | `type`, `container_id`, `uid`, `runtime`, `comm` (+ names) |
//! | `NsexporterContainerHostRoot` | a container not allowed (nor in a host-root namespace) has a process with host-view effective UID 0 | `container_id`, `uid`, `runtime`, `comm` (+ names) |
//! | `NsexporterNamespaceEscape` | a container not opted out has a process or thread in a host namespace of a type that the container itself does not share (escaped); the allow-list does not apply | `type`, `container_id`, `uid`, `runtime`, `comm` (+ names) |
//! | `NsexporterNamespacesNearLimit` | namespaces of a type above 85% of `user.max_<type>_namespaces` | `type` |
//! | `NsexporterPinnedNamespacesGrowing` | at least 10 pinned namespaces of a type, and 5 more than the lowest count seen in the last 6 hours | `type` |
//!
//! "+ names": `namespace`, `pod`, `container`, `workload_kind` and `workload` where the runtime's files
//! name the container (the rules get them from kube-state-metrics or the same files).
//! The kinds are one table, [`KINDS`]: a new kind is a row there.
//!
//! Every alert also has `alertname`, `severity` (as in the rules), `node` and
//! `source="nsexporter-sidecar"`, the label that tells these from the rules' copies.
//!
//! The rules' `NsexporterNewHostNamespaceWorkload` ("new in the cluster against the
//! previous day") needs the cluster's history, which one node does not have; the
//! per-type alerts above fire the moment any workload that is not allowed appears in a
//! host namespace, which is what a sidecar can say first.
//!
//! Why one file of about 910 lines: about 500 of code, the rest its unit tests, which check
//! each alert kind against the rules file's meaning.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use super::allow::{workload_of_pod, AllowList, Subject};
use super::{Alert, SOURCE_LABEL, SOURCE_VALUE};
use crate::model::{ContainerSummary, NsType, Snapshot};

/// Where the runbooks live (the rules' `runbook_url` base).
const RUNBOOK: &str = "https://github.com/nsexporter/nsexporter/blob/main/README.md#alert-";

/// Share of a namespace limit above which NsexporterNamespacesNearLimit fires.
const NEAR_LIMIT: f64 = 0.85;
/// NsexporterPinnedNamespacesGrowing: at least this many pinned namespaces…
const PINNED_MIN: u64 = 10;
/// …and this many more than the lowest count within `PINNED_WINDOW`.
const PINNED_GROWTH: u64 = 5;
const PINNED_WINDOW: Duration = Duration::from_secs(6 * 3600);
/// The pinned-count history keeps one minimum per bucket of this length.
const PINNED_BUCKET: Duration = Duration::from_secs(60);

/// EVERY ALERT KIND THE SIDECAR SENDS, one row each, in evaluation order. To add a kind:
/// a row here with the function that finds it in a snapshot, and a test below. Then:
/// its row in the README's "The alerting sidecar" table and its name in the
/// `inhibit_rules` example (checked by `tests/alerting_client.rs`); an alert of that
/// name and severity in the rules file (checked below, unless listed there as
/// sidecar-only); its `nsexporter_alerts` series in
/// `tests/fixtures/golden/metrics-sidecar.prom` (`UPDATE_GOLDEN=1 cargo test --test
/// golden`). `evaluate` and the series ([`alert_names`]) follow from this table.
///
/// The escape alert (severity critical, fires at once) is a `Find::PerType` row: one
/// alert per container and type with escaped processes. No allow-list applies to it;
/// its opt-out is by pod namespace or container only ([`AllowList::opts_out_of_escape`]).
pub const KINDS: &[Kind] = &[
    Kind {
        name: "NsexporterHostNetworkContainer",
        severity: "warning",
        find: Find::Container(host_network),
    },
    Kind {
        name: "NsexporterHostPIDContainer",
        severity: "critical",
        find: Find::Container(host_pid),
    },
    Kind {
        name: "NsexporterHostIPCContainer",
        severity: "warning",
        find: Find::Container(host_ipc),
    },
    Kind {
        name: "NsexporterContainerHostRoot",
        severity: "info",
        find: Find::Container(host_root),
    },
    Kind {
        name: "NsexporterNamespaceEscape",
        severity: "critical",
        find: Find::PerType(escape),
    },
    Kind {
        name: "NsexporterNamespacesNearLimit",
        severity: "warning",
        find: Find::Node(near_limit),
    },
    Kind {
        name: "NsexporterPinnedNamespacesGrowing",
        severity: "warning",
        find: Find::Node(pinned_growing),
    },
];

/// Every alert name the sidecar can send, for the `nsexporter_alerts` series.
pub fn alert_names() -> impl Iterator<Item = &'static str> {
    KINDS.iter().map(|k| k.name)
}

/// One kind of alert: its name and severity (the rules file's) and how it is found.
pub struct Kind {
    pub name: &'static str,
    pub severity: &'static str,
    find: Find,
}

/// How a kind is found in a snapshot.
enum Find {
    /// Once per container; the alert gets the container's labels (`container_id`,
    /// `uid`, `runtime`, `comm` and the names) besides the finding's own.
    Container(fn(&Evaluator, &Seen<'_>) -> Verdict),
    /// Once per container and namespace type, with the container's labels as above.
    PerType(fn(&Evaluator, &Seen<'_>, NsType) -> Verdict),
    /// Once per snapshot, for the node; any number of findings (e.g. one per type).
    Node(fn(&mut Evaluator, &Snapshot) -> Vec<Finding>),
}

/// One container as a `Find::Container` function sees it.
struct Seen<'a> {
    c: &'a ContainerSummary,
    /// What the allow-list judges.
    subject: Subject<'a>,
    /// "Pod ns/pod container c (id)" or "Container id (comm "x")", for descriptions.
    who: String,
}

/// What a `Find::Container` function says of one container.
enum Verdict {
    /// The condition does not hold.
    Quiet,
    /// It holds, but the allow-list allows this container: counted, not sent.
    Allowed,
    Fires(Finding),
}

/// An alert that holds: the labels it adds to the base ones, and its annotations.
struct Finding {
    labels: Vec<(&'static str, String)>,
    summary: &'static str,
    description: String,
}

fn host_network(e: &Evaluator, s: &Seen<'_>) -> Verdict {
    host_namespace(
        e,
        s,
        NsType::Net,
        "network namespace: it sees every interface of the node and can bind its ports and its loopback",
    )
}

fn host_pid(e: &Evaluator, s: &Seen<'_>) -> Verdict {
    host_namespace(
        e,
        s,
        NsType::Pid,
        "PID namespace: it sees every process of the node and, with the right capabilities, can signal or trace them",
    )
}

fn host_ipc(e: &Evaluator, s: &Seen<'_>) -> Verdict {
    host_namespace(
        e,
        s,
        NsType::Ipc,
        "IPC namespace: it can reach the node's System V shared memory, semaphores and POSIX message queues",
    )
}

fn host_namespace(e: &Evaluator, s: &Seen<'_>, t: NsType, what: &str) -> Verdict {
    let n = s.c.host_ns_processes[t.index()];
    // Processes that escaped into a namespace the container does not share are not the
    // workload's sharing: that is NsexporterNamespaceEscape's, as in the rules.
    if n == 0 || s.c.escaped_processes[t.index()] > 0 {
        return Verdict::Quiet;
    }
    if e.allow.allows(&s.subject) {
        return Verdict::Allowed;
    }
    Verdict::Fires(Finding {
        labels: vec![("type", t.name().into())],
        summary: match t {
            NsType::Net => "A container shares the host network namespace.",
            NsType::Pid => "A container shares the host PID namespace.",
            _ => "A container shares the host IPC namespace.",
        },
        description: format!(
            "{} on node {} has {n} process(es) in the host {what}.",
            s.who, e.node
        ),
    })
}

fn host_root(e: &Evaluator, s: &Seen<'_>) -> Verdict {
    if s.c.host_root_processes == 0 {
        return Verdict::Quiet;
    }
    if e.allow.allows_host_root(&s.subject) {
        return Verdict::Allowed;
    }
    Verdict::Fires(Finding {
        labels: Vec::new(),
        summary: "A container runs processes as root of the host.",
        description: format!(
            "{} on node {} has {} process(es) whose effective UID is 0 in the host user \
             namespace: root in the container is root on the node.",
            s.who, e.node, s.c.host_root_processes
        ),
    })
}

/// Most escaped PIDs and TIDs one description lists (`nsexporter report` lists all).
const ESCAPES_LISTED: usize = 10;

/// NsexporterNamespaceEscape for type `t`: processes of the container that are in the
/// host's namespace of `t`, which the container itself does not share. The allow-list
/// never quiets it (the exporter's own pod included): a workload allowed to share a host
/// namespace is not allowed to enter one it does not share; only the explicit opt-out
/// does. Labels and annotations are the rule's; the description also names the escaped
/// PIDs and TIDs, which the sidecar has at hand.
fn escape(e: &Evaluator, s: &Seen<'_>, t: NsType) -> Verdict {
    let n = s.c.escaped_processes[t.index()];
    if n == 0 {
        return Verdict::Quiet;
    }
    if e.allow.opts_out_of_escape(&s.subject) {
        return Verdict::Allowed;
    }
    let who = match (s.subject.namespace, s.subject.pod) {
        // The container's main process: the escaped ones are listed below.
        (Some(_), Some(_)) => format!("{}, main process {:?},", s.who, s.c.comm),
        _ => format!(
            "Container {}, main process {:?},",
            s.c.container.container_id(),
            s.c.comm
        ),
    };
    let listed: Vec<String> =
        s.c.escapes
            .iter()
            .filter(|x| x.types.contains(&t))
            .map(|x| match x.tid == x.pid {
                true => format!("PID {} ({})", x.pid, x.comm),
                false => format!("PID {} TID {} ({})", x.pid, x.tid, x.comm),
            })
            .collect();
    let more = listed.len().saturating_sub(ESCAPES_LISTED);
    let mut which = listed
        .into_iter()
        .take(ESCAPES_LISTED)
        .collect::<Vec<_>>()
        .join(", ");
    if more > 0 {
        which.push_str(&format!(" and {more} more"));
    }
    Verdict::Fires(Finding {
        labels: vec![("type", t.name().into())],
        summary: "A container process entered a host namespace that its container does not share.",
        description: format!(
            "{who} on node {} has {n} process(es) in the host {t} namespace, which the \
             container itself does not share: they entered it after it started (setns, \
             nsenter). `nsexporter report` on the node lists each PID, TID and comm: {which}.",
            e.node
        ),
    })
}

fn near_limit(e: &mut Evaluator, snap: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    for t in &snap.supported {
        let Some(limit) = snap.limits[t.index()].filter(|l| *l > 0) else {
            continue;
        };
        let used = snap.counts[t.index()].total as f64 / limit as f64;
        if used <= NEAR_LIMIT {
            continue;
        }
        out.push(Finding {
            labels: vec![("type", t.name().into())],
            summary: "The number of namespaces on a node is close to its limit.",
            description: format!(
                "Node {} uses {:.1}% of user.max_{t}_namespaces ({} of {limit}); at the \
                 limit, creating a pod fails with ENOSPC.",
                e.node,
                used * 100.0,
                snap.counts[t.index()].total
            ),
        });
    }
    out
}

/// Pinned namespaces growing: the rules' `min_over_time(...[6h])`, kept here as one
/// minimum per minute, so memory is bounded whatever the snapshot rate. The history
/// starts with the exporter: after a restart the alert needs the growth again.
fn pinned_growing(e: &mut Evaluator, snap: &Snapshot) -> Vec<Finding> {
    let mut out = Vec::new();
    let now = snap.taken_at;
    for t in &snap.supported {
        let pinned = snap.counts[t.index()].pinned;
        let hist = &mut e.pinned[t.index()];
        match hist.back_mut() {
            Some((start, low))
                if now.duration_since(*start).unwrap_or_default() < PINNED_BUCKET =>
            {
                *low = (*low).min(pinned);
            }
            _ => hist.push_back((now, pinned)),
        }
        while hist
            .front()
            .is_some_and(|(s, _)| now.duration_since(*s).unwrap_or_default() > PINNED_WINDOW)
        {
            hist.pop_front();
        }
        let low = hist.iter().map(|(_, v)| *v).min().unwrap_or(pinned);
        if pinned < PINNED_MIN || pinned - low.min(pinned) < PINNED_GROWTH {
            continue;
        }
        out.push(Finding {
            labels: vec![("type", t.name().into())],
            summary: "Namespaces without processes are piling up on a node (leak).",
            description: format!(
                "Node {} has {pinned} {t} namespaces that no process is in, pinned by bind \
                 mounts, {} more than the lowest count of the last 6 hours.",
                e.node,
                pinned - low
            ),
        });
    }
    out
}

/// The result of evaluating one snapshot.
#[derive(Debug, Default)]
pub struct Evaluation {
    /// Alerts that hold now, not allowed.
    pub firing: Vec<Alert>,
    /// Per alert name, how many would have fired but were allow-listed.
    pub allowed: BTreeMap<&'static str, u64>,
}

/// Evaluates snapshots; keeps what spans them (the pinned-namespace history).
#[derive(Debug)]
pub struct Evaluator {
    node: String,
    allow: AllowList,
    /// Per type, (bucket start, lowest pinned count in that bucket), oldest first.
    pinned: [VecDeque<(SystemTime, u64)>; 8],
}

impl Evaluator {
    pub fn new(node: String, allow: AllowList) -> Evaluator {
        Evaluator {
            node,
            allow,
            pinned: Default::default(),
        }
    }

    fn base_labels(&self, k: &Kind) -> BTreeMap<String, String> {
        let mut l = BTreeMap::new();
        l.insert("alertname".into(), k.name.into());
        l.insert("severity".into(), k.severity.into());
        l.insert("node".into(), self.node.clone());
        l.insert(SOURCE_LABEL.into(), SOURCE_VALUE.into());
        l
    }

    fn alert(&self, k: &Kind, f: Finding, more: &[(&'static str, String)]) -> Alert {
        let mut labels = self.base_labels(k);
        for (key, v) in more.iter().chain(&f.labels) {
            put(&mut labels, key, v);
        }
        Alert {
            labels,
            annotations: annotations(k.name, f.summary, f.description),
        }
    }

    /// Every row of [`KINDS`] on one snapshot.
    pub fn evaluate(&mut self, snap: &Snapshot) -> Evaluation {
        let mut ev = Evaluation::default();
        let host_ipc = snap.host.ns.get(NsType::Ipc);
        for c in snap.containers.values() {
            let seen = seen(c, host_ipc);
            let labels = container_labels(&seen);
            for k in KINDS {
                let verdicts = match k.find {
                    Find::Container(find) => vec![find(self, &seen)],
                    Find::PerType(find) => NsType::ALL.map(|t| find(self, &seen, t)).into(),
                    Find::Node(_) => continue,
                };
                for v in verdicts {
                    match v {
                        Verdict::Quiet => {}
                        Verdict::Allowed => *ev.allowed.entry(k.name).or_default() += 1,
                        Verdict::Fires(f) => ev.firing.push(self.alert(k, f, &labels)),
                    }
                }
            }
        }
        for k in KINDS {
            let Find::Node(find) = k.find else {
                continue;
            };
            for f in find(self, snap) {
                ev.firing.push(self.alert(k, f, &[]));
            }
        }
        ev
    }
}

/// A container with the names from the runtime's own files, where it keeps them (empty:
/// unknown); the workload follows from the pod name.
fn seen(c: &ContainerSummary, host_ipc: Option<u64>) -> Seen<'_> {
    let names = &c.runtime_info.names;
    let known = |s: &str| !s.is_empty();
    let namespace = Some(names.namespace.as_str()).filter(|s| known(s));
    let pod = Some(names.pod.as_str()).filter(|s| known(s));
    let workload = pod.map(workload_of_pod);
    let subject = Subject {
        container: &c.container,
        comm: &c.comm,
        namespace,
        pod,
        workload_kind: workload.map(|w| w.0),
        workload: workload.map(|w| w.1),
        container_name: Some(names.container.as_str()).filter(|s| known(s)),
        pod_ipc: c.main_ns.get(NsType::Ipc).filter(|i| Some(*i) != host_ipc),
    };
    let who = describe(&subject);
    Seen { c, subject, who }
}

/// The labels every container alert carries; unknown ones are left out.
fn container_labels(s: &Seen<'_>) -> Vec<(&'static str, String)> {
    let c = s.c;
    let sub = &s.subject;
    vec![
        ("container_id", c.container.container_id()),
        ("runtime", c.container.runtime.name().into()),
        ("uid", c.container.pod_uid.clone()),
        ("comm", c.comm.clone()),
        ("namespace", sub.namespace.unwrap_or("").into()),
        ("pod", sub.pod.unwrap_or("").into()),
        ("workload_kind", sub.workload_kind.unwrap_or("").into()),
        ("workload", sub.workload.unwrap_or("").into()),
        ("container", sub.container_name.unwrap_or("").into()),
    ]
}

fn put(l: &mut BTreeMap<String, String>, k: &str, v: &str) {
    if !v.is_empty() {
        l.insert(k.into(), v.into());
    }
}

/// "Pod ns/pod container c (workload w)" when the pod is known, else the container
/// by ID and comm, as the rules' descriptions read.
fn describe(s: &Subject<'_>) -> String {
    match (s.namespace, s.pod) {
        (Some(ns), Some(pod)) if !ns.is_empty() && !pod.is_empty() => {
            let mut d = format!("Pod {ns}/{pod}");
            if let Some(c) = s.container_name.filter(|c| !c.is_empty()) {
                d.push_str(&format!(" container {c}"));
            }
            d.push_str(&format!(" ({})", s.container.container_id()));
            d
        }
        _ => {
            let mut d = format!(
                "Container {} (comm \"{}\"",
                s.container.container_id(),
                s.comm
            );
            if !s.container.pod_uid.is_empty() {
                d.push_str(&format!(", pod UID {}", s.container.pod_uid));
            }
            d.push(')');
            d
        }
    }
}

fn annotations(alertname: &str, summary: &str, description: String) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert("summary".into(), summary.into());
    a.insert("description".into(), description);
    a.insert(
        "runbook_url".into(),
        format!("{RUNBOOK}{}", alertname.to_ascii_lowercase()),
    );
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::allow::{AllowConfig, WorkloadEntry};
    use crate::model::{
        ContainerRef, HostRef, HostSource, NsCount, NsSet, RootMapping, Runtime, ScanErrors,
    };

    fn snapshot(containers: Vec<ContainerSummary>) -> Snapshot {
        Snapshot {
            taken_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            duration: Duration::ZERO,
            host: HostRef {
                source: HostSource::Kthread,
                ns: NsSet::default(),
            },
            supported: NsType::ALL.to_vec(),
            processes: 10,
            counts: [NsCount::default(); 8],
            limits: [None; 8],
            host_ns_processes: [0; 8],
            containers: containers
                .into_iter()
                .map(|c| (c.container.clone(), c))
                .collect(),
            pinned: Vec::new(),
            errors: ScanErrors::default(),
            reader_in_child_userns: false,
            runtime_read_errors: Vec::new(),
            visibility: Default::default(),
        }
    }

    fn container(id: &str, comm: &str, host: &[NsType], root: u32) -> ContainerSummary {
        let mut host_ns_processes = [0; 8];
        for t in host {
            host_ns_processes[t.index()] = 2;
        }
        ContainerSummary {
            container: ContainerRef {
                runtime: Runtime::Containerd,
                id: id.into(),
                pod_uid: format!("{id}-pod"),
                owner_uid: None,
            },
            processes: 2,
            main_pid: 100,
            main_start_time: 1,
            comm: comm.into(),
            main_ns: NsSet::default(),
            host_ns_processes,
            host_root_processes: root,
            root: RootMapping::NonRoot,
            uid_map: None,
            runtime_info: Default::default(),
            escaped_processes: [0; 8],
            escapes: Vec::new(),
        }
    }

    fn evaluator(allow: AllowConfig) -> Evaluator {
        Evaluator::new("node-a".into(), AllowList::new(&allow, None).unwrap())
    }

    fn names(ev: &Evaluation) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = ev
            .firing
            .iter()
            .map(|a| {
                (
                    a.labels["alertname"].clone(),
                    a.labels.get("container_id").cloned().unwrap_or_default(),
                )
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn host_namespace_and_host_root_containers_fire_with_the_rules_labels() {
        let mut e = evaluator(AllowConfig::default());
        let snap = snapshot(vec![
            container("aa", "agent", &[NsType::Net, NsType::Pid], 0),
            container("bb", "app", &[], 1),
            container("cc", "quiet", &[NsType::Uts], 0),
        ]);
        let ev = e.evaluate(&snap);
        assert_eq!(
            names(&ev),
            [
                (
                    "NsexporterContainerHostRoot".into(),
                    "containerd://bb".into()
                ),
                (
                    "NsexporterHostNetworkContainer".into(),
                    "containerd://aa".into()
                ),
                (
                    "NsexporterHostPIDContainer".into(),
                    "containerd://aa".into()
                ),
            ]
        );
        let net = ev
            .firing
            .iter()
            .find(|a| a.labels["alertname"] == "NsexporterHostNetworkContainer")
            .unwrap();
        let want: BTreeMap<String, String> = [
            ("alertname", "NsexporterHostNetworkContainer"),
            ("severity", "warning"),
            ("node", "node-a"),
            ("source", "nsexporter-sidecar"),
            ("type", "net"),
            ("container_id", "containerd://aa"),
            ("runtime", "containerd"),
            ("uid", "aa-pod"),
            ("comm", "agent"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(net.labels, want);
        let d = &net.annotations["description"];
        assert!(
            d.contains("containerd://aa") && d.contains("2 process(es)"),
            "{d}"
        );
        assert_eq!(
            net.annotations["runbook_url"],
            "https://github.com/nsexporter/nsexporter/blob/main/README.md#alert-nsexporterhostnetworkcontainer"
        );
        let pid = ev
            .firing
            .iter()
            .find(|a| a.labels["alertname"] == "NsexporterHostPIDContainer")
            .unwrap();
        assert_eq!(pid.labels["severity"], "critical");
    }

    #[test]
    fn allowed_containers_are_counted_not_fired() {
        let mut e = evaluator(AllowConfig {
            comms: vec!["cilium-agent".into()],
            ..AllowConfig::default()
        });
        // Outside Kubernetes (no pod UID): allowed by its comm.
        let mut aa = container("aa", "cilium-agent", &[NsType::Net], 1);
        aa.container.pod_uid.clear();
        // In a pod: never by the comm it picked.
        let cc = container("cc", "cilium-agent", &[NsType::Net], 0);
        let ev = e.evaluate(&snapshot(vec![
            aa,
            container("bb", "nginx", &[NsType::Net], 0),
            cc,
        ]));
        assert_eq!(
            names(&ev),
            [
                (
                    "NsexporterHostNetworkContainer".into(),
                    "containerd://bb".into()
                ),
                (
                    "NsexporterHostNetworkContainer".into(),
                    "containerd://cc".into()
                )
            ]
        );
        assert_eq!(ev.allowed["NsexporterHostNetworkContainer"], 1);
        assert_eq!(ev.allowed["NsexporterContainerHostRoot"], 1);
    }

    #[test]
    fn names_from_the_runtime_files_label_the_alert_and_drive_the_allow_list() {
        use crate::model::{Names, RuntimeInfo};
        let named = |id: &str, ns: &str, pod: &str, name: &str| {
            let mut c = container(id, "agent", &[NsType::Net], 0);
            c.runtime_info = std::sync::Arc::new(RuntimeInfo {
                names: Names {
                    namespace: ns.into(),
                    pod: pod.into(),
                    container: name.into(),
                },
                ..RuntimeInfo::default()
            });
            c
        };
        let mut e = evaluator(AllowConfig {
            workloads: vec![WorkloadEntry::new("kube-system", "DaemonSet", "cilium")],
            // A named pod is judged by its names, never by the comm it picked.
            comms: vec!["agent".into()],
            ..AllowConfig::default()
        });
        let ev = e.evaluate(&snapshot(vec![
            named("aa", "kube-system", "cilium-x7k2p", "cilium-agent"),
            named("bb", "team-a", "web-6d4cf56db6-h9k2x", "nginx"),
            // Named like the allowed DaemonSet, in another namespace: fires.
            named("cc", "team-b", "cilium-x7k2p", "cilium-agent"),
        ]));
        assert_eq!(ev.allowed["NsexporterHostNetworkContainer"], 1);
        assert_eq!(ev.firing.len(), 2);
        assert!(ev
            .firing
            .iter()
            .any(|a| a.labels["container_id"] == "containerd://cc"));
        let a = ev
            .firing
            .iter()
            .find(|a| a.labels["container_id"] == "containerd://bb")
            .unwrap();
        for (k, v) in [
            ("container_id", "containerd://bb"),
            ("namespace", "team-a"),
            ("pod", "web-6d4cf56db6-h9k2x"),
            ("container", "nginx"),
            ("workload_kind", "Deployment"),
            ("workload", "web"),
        ] {
            assert_eq!(a.labels[k], v, "{k}");
        }
        let d = &a.annotations["description"];
        assert!(
            d.starts_with("Pod team-a/web-6d4cf56db6-h9k2x container nginx (containerd://bb)"),
            "{d}"
        );
        // Unknown names are left out, not empty labels.
        let ev = e.evaluate(&snapshot(vec![container("cc", "x", &[NsType::Net], 0)]));
        assert!(!ev.firing[0].labels.contains_key("pod"));
    }

    /// An escape fires whatever the allow-list says, with the rule's labels and words
    /// and the escaped PIDs/TIDs; the host-network alert leaves that type to it; only the
    /// explicit opt-out holds it back.
    #[test]
    fn an_escape_fires_past_the_allow_list_and_only_the_opt_out_holds_it() {
        use crate::model::Escape;
        let escaped = |id: &str| {
            let mut c = container(id, "app", &[NsType::Net], 0);
            c.escaped_processes[NsType::Net.index()] = 2;
            c.escaped_processes[NsType::Mnt.index()] = 1;
            c.escapes = vec![
                Escape {
                    pid: 500,
                    tid: 500,
                    comm: "sh".into(),
                    types: vec![NsType::Mnt, NsType::Net],
                },
                Escape {
                    pid: 510,
                    tid: 512,
                    comm: "worker".into(),
                    types: vec![NsType::Net],
                },
            ];
            c
        };
        // The allow-list allows "app" (and would allow it in the host network): a
        // container outside Kubernetes, where a comm counts.
        let mut e = evaluator(AllowConfig {
            comms: vec!["app".into()],
            ..AllowConfig::default()
        });
        let mut aa = escaped("aa");
        aa.container.pod_uid.clear();
        let ev = e.evaluate(&snapshot(vec![aa]));
        let mut got: Vec<(String, String)> = ev
            .firing
            .iter()
            .map(|a| (a.labels["alertname"].clone(), a.labels["type"].clone()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("NsexporterNamespaceEscape".into(), "mnt".into()),
                ("NsexporterNamespaceEscape".into(), "net".into()),
            ],
            "the escape and nothing else: no host-network alert for an escaped type"
        );
        assert!(!ev.allowed.contains_key("NsexporterHostNetworkContainer"));
        let net = ev
            .firing
            .iter()
            .find(|a| a.labels["type"] == "net")
            .unwrap();
        let want: BTreeMap<String, String> = [
            ("alertname", "NsexporterNamespaceEscape"),
            ("severity", "critical"),
            ("node", "node-a"),
            ("source", "nsexporter-sidecar"),
            ("type", "net"),
            ("container_id", "containerd://aa"),
            ("runtime", "containerd"),
            ("comm", "app"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(net.labels, want);
        assert_eq!(
            net.annotations["summary"],
            "A container process entered a host namespace that its container does not share."
        );
        assert_eq!(
            net.annotations["description"],
            "Container containerd://aa, main process \"app\", on node node-a has 2 process(es) in \
             the host net namespace, which the container itself does not share: they \
             entered it after it started (setns, nsenter). `nsexporter report` on the node \
             lists each PID, TID and comm: PID 500 (sh), PID 510 TID 512 (worker)."
        );
        assert_eq!(
            net.annotations["runbook_url"],
            "https://github.com/nsexporter/nsexporter/blob/main/README.md#alert-nsexporternamespaceescape"
        );

        // The explicit opt-out, by container_id: held back and counted, per type.
        let opt_out = |cfg: crate::alerting::allow::EscapeOptOutConfig| {
            Evaluator::new(
                "node-a".into(),
                AllowList::new(&AllowConfig::default(), None)
                    .unwrap()
                    .with_escape_opt_out(&cfg)
                    .unwrap(),
            )
        };
        let mut e = opt_out(crate::alerting::allow::EscapeOptOutConfig {
            containers: vec!["containerd://a.".into()],
            ..Default::default()
        });
        let ev = e.evaluate(&snapshot(vec![escaped("aa"), escaped("bb")]));
        assert_eq!(ev.allowed["NsexporterNamespaceEscape"], 2);
        assert!(ev
            .firing
            .iter()
            .all(|a| a.labels["container_id"] == "containerd://bb"));
        assert_eq!(ev.firing.len(), 2);
        // A namespace opt-out needs the namespace known: an unnamed container stays.
        let mut e = opt_out(crate::alerting::allow::EscapeOptOutConfig {
            namespaces: vec![".*".into()],
            ..Default::default()
        });
        assert_eq!(e.evaluate(&snapshot(vec![escaped("aa")])).firing.len(), 2);
    }

    #[test]
    fn every_kind_is_a_rules_file_alert_with_its_severity() {
        let rules = include_str!("../../charts/nsexporter/files/nsexporter.rules.yml");
        let mut names: Vec<&str> = alert_names().collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), KINDS.len(), "alert names repeat in KINDS");
        // Kinds the rules file has no alert for (none yet): named here, on purpose.
        const SIDECAR_ONLY: &[&str] = &[];
        for k in KINDS.iter().filter(|k| !SIDECAR_ONLY.contains(&k.name)) {
            let at = rules
                .find(&format!("- alert: {}\n", k.name))
                .unwrap_or_else(|| panic!("{} is not an alert of the rules file", k.name));
            let severity = rules[at..]
                .lines()
                .find_map(|l| l.trim().strip_prefix("severity: "))
                .unwrap_or_default();
            assert_eq!(severity, k.severity, "{}", k.name);
        }
    }

    #[test]
    fn namespaces_near_limit() {
        let mut e = evaluator(AllowConfig::default());
        let mut snap = snapshot(vec![]);
        snap.limits[NsType::Net.index()] = Some(100);
        snap.counts[NsType::Net.index()].total = 85;
        snap.limits[NsType::Ipc.index()] = Some(0); // disabled: never
        snap.counts[NsType::Ipc.index()].total = 5;
        assert!(e.evaluate(&snap).firing.is_empty());
        snap.counts[NsType::Net.index()].total = 86;
        let ev = e.evaluate(&snap);
        assert_eq!(ev.firing.len(), 1);
        assert_eq!(ev.firing[0].labels["type"], "net");
        assert!(ev.firing[0].annotations["description"].contains("86.0%"));
    }

    #[test]
    fn pinned_growth_against_the_six_hour_low() {
        let mut e = evaluator(AllowConfig::default());
        let mut snap = snapshot(vec![]);
        let t0 = snap.taken_at;
        let mut at = |e: &mut Evaluator, mins: u64, pinned: u64| {
            snap.taken_at = t0 + Duration::from_secs(mins * 60);
            snap.counts[NsType::Net.index()].pinned = pinned;
            e.evaluate(&snap)
                .firing
                .iter()
                .filter(|a| a.labels["alertname"] == "NsexporterPinnedNamespacesGrowing")
                .count()
        };
        assert_eq!(at(&mut e, 0, 6), 0);
        assert_eq!(at(&mut e, 10, 10), 0); // +4
        assert_eq!(at(&mut e, 20, 11), 1); // +5, >= 10
                                           // Within six hours of the low of 6, still firing; past them, the low is 10.
        assert_eq!(at(&mut e, 6 * 60 - 5, 11), 1);
        assert_eq!(at(&mut e, 6 * 60 + 5, 11), 0);
        // Many snapshots a minute: one bucket each minute, bounded.
        for s in 0..600 {
            snap.taken_at = t0 + Duration::from_secs(7 * 3600 + s);
            e.evaluate(&snap);
        }
        assert!(e.pinned[NsType::Net.index()].len() <= 6 * 60 + 2);
    }
}

//! The sidecar's allow-list: containers whose host-namespace sharing or host root is
//! expected, with the same keys and meaning as the rules file's allow-list tokens
//! (`charts/nsexporter/files/README-rules.md`). Nothing is allowed by a name alone:
//!
//! - `namespaces` matches the pod's namespace (whole namespaces).
//! - `workloads` entries are `{namespace, kind, name}`, the three matched together
//!   against the pod's `<namespace>/<kind>/<name>`, as the rules match their
//!   `workload_key`: a workload named like an allowed one in another namespace, or of
//!   another kind, is not allowed. A plain string is refused.
//! - `comms` matches the container's comm, only for containers outside Kubernetes (no
//!   pod UID, no pod namespace) and not in a user's delegated cgroup subtree: any
//!   process can choose its comm.
//! - `host-root-namespaces` exempts more pod namespaces from the host-root alert only;
//!   `kube-system` always is, as in the rules.
//!
//! There are no pod-name or container-name lists (the rules have none) and no built-in
//! comm. Patterns are RE2-style regexes anchored at both ends, as PromQL anchors them,
//! so an entry is a whole-name pattern; an unknown (empty) name never matches.
//!
//! # Escapes
//! None of the above quiets `NsexporterNamespaceEscape`, not even the exporter's own pod:
//! a workload allowed to share a host namespace is not allowed to enter one it does not
//! share. Its only opt-out is explicit, the config file's `alerts.escape-opt-out`
//! ([`EscapeOptOutConfig`]), as the rules' `prometheusRule.escapeOptOut`: pod namespaces,
//! and containers by name or `container_id`.
//!
//! # The exporter's own pod
//! It is always allowed, found by kernel facts, never by a name anyone could take:
//! - its pod UID (or, outside Kubernetes, its container) from the exporter's own
//!   cgroup, when the exporter shares the host's cgroup namespace;
//! - in a private cgroup namespace (the default on cgroup v2), the exporter's own
//!   cgroup reads `/` and names nothing, and the other containers of its pod show as
//!   `/../<container scope>`, with no pod UID. There, a container whose processes are in
//!   the exporter's own IPC namespace, when that is not the host's, is of its pod: the
//!   containers of a pod share its sandbox's IPC namespace. Joining another pod's IPC
//!   namespace takes `setns` with CAP_SYS_ADMIN over the host's user namespace, which
//!   is host root already.

use std::collections::BTreeMap;

use regex::Regex;
use serde::Deserialize;

use crate::model::ContainerRef;

/// The namespace always exempt from the host-root alert, as in the rules.
const HOST_ROOT_NAMESPACE: &str = "kube-system";

/// One `workloads` entry as written: `{namespace, kind, name}`. A plain string is read
/// too, only to be refused with its own message (a name alone allows nothing).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum WorkloadEntry {
    Parts(BTreeMap<String, String>),
    Name(String),
}

impl WorkloadEntry {
    /// `{namespace: ns, kind: kind, name: name}`.
    pub fn new(namespace: &str, kind: &str, name: &str) -> WorkloadEntry {
        WorkloadEntry::Parts(BTreeMap::from([
            ("namespace".to_string(), namespace.to_string()),
            ("kind".to_string(), kind.to_string()),
            ("name".to_string(), name.to_string()),
        ]))
    }
}

/// The allow-list as written in the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowConfig {
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub workloads: Vec<WorkloadEntry>,
    #[serde(default)]
    pub comms: Vec<String>,
    #[serde(default, rename = "host-root-namespaces")]
    pub host_root_namespaces: Vec<String>,
}

/// The config file's `alerts.escape-opt-out`: who NsexporterNamespaceEscape leaves
/// alone. Empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscapeOptOutConfig {
    /// Pod namespaces (known names only).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Container names (known names only) or `container_id`s (`<runtime>://<id>`).
    #[serde(default)]
    pub containers: Vec<String>,
}

/// What is known about one container, for matching.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub container: &'a ContainerRef,
    pub comm: &'a str,
    /// Pod namespace, pod name, owner kind and name, and container name, where known.
    pub namespace: Option<&'a str>,
    pub pod: Option<&'a str>,
    pub workload_kind: Option<&'a str>,
    pub workload: Option<&'a str>,
    pub container_name: Option<&'a str>,
    /// The IPC namespace of its oldest process, unless that is the host's.
    pub pod_ipc: Option<u64>,
}

/// A compiled allow-list.
#[derive(Debug, Clone)]
pub struct AllowList {
    namespaces: Option<Regex>,
    /// Matched against `<namespace>/<kind>/<name>`.
    workloads: Option<Regex>,
    comms: Option<Regex>,
    host_root_namespaces: Option<Regex>,
    /// The exporter's own container, from its own cgroup.
    own: Option<ContainerRef>,
    /// The exporter's own IPC namespace, that of its pod.
    own_ipc: Option<u64>,
    /// `alerts.escape-opt-out`.
    escape_namespaces: Option<Regex>,
    escape_containers: Option<Regex>,
}

fn check(key: &str, p: &str) -> Result<(), String> {
    Regex::new(p)
        .map(|_| ())
        .map_err(|e| format!("{key}: {p:?} is not a valid regex: {e}"))
}

/// One anchored alternation of `patterns` (each already checked); `None` for an empty
/// list (matches nothing).
fn join(key: &str, patterns: &[String]) -> Result<Option<Regex>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let joined = patterns
        .iter()
        .map(|p| format!("(?:{p})"))
        .collect::<Vec<_>>()
        .join("|");
    Regex::new(&format!("^(?:{joined})$"))
        .map(Some)
        .map_err(|e| format!("{key}: {e}"))
}

fn compile(key: &str, patterns: &[String]) -> Result<Option<Regex>, String> {
    for p in patterns {
        check(key, p)?;
    }
    join(key, patterns)
}

/// The `workloads` entries as `(?:ns)/(?:kind)/(?:name)` patterns, as the chart writes
/// them into the rules; every problem names the entry.
fn workload_patterns(entries: &[WorkloadEntry]) -> Result<Vec<String>, String> {
    const PARTS: [&str; 3] = ["namespace", "kind", "name"];
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let n = i + 1;
        let parts = match e {
            WorkloadEntry::Name(s) => {
                return Err(format!(
                    "workloads: entry {n} {s:?} is a name alone, which allows nothing: write \
                     {{namespace, kind, name}}, e.g. {{namespace: kube-system, kind: \
                     DaemonSet, name: {s}}}"
                ))
            }
            WorkloadEntry::Parts(p) => p,
        };
        if let Some(k) = parts.keys().find(|k| !PARTS.contains(&k.as_str())) {
            return Err(format!(
                "workloads: entry {n} {parts:?} has {k:?}; the keys are namespace, kind, name"
            ));
        }
        let mut re = Vec::new();
        for part in PARTS {
            let p = parts.get(part).map(String::as_str).unwrap_or("");
            if p.is_empty() {
                return Err(format!(
                    "workloads: entry {n} {parts:?} has no {part}: namespace, kind and name \
                     are all required (never a name alone)"
                ));
            }
            check(&format!("workloads: entry {n} {part}"), p)?;
            re.push(format!("(?:{p})"));
        }
        out.push(re.join("/"));
    }
    Ok(out)
}

fn matches(re: &Option<Regex>, value: Option<&str>) -> bool {
    match (re, value) {
        (Some(re), Some(v)) if !v.is_empty() => re.is_match(v),
        _ => false,
    }
}

impl AllowList {
    /// Compile `cfg`; `own` is the exporter's own container, always allowed (with its
    /// whole pod).
    pub fn new(cfg: &AllowConfig, own: Option<ContainerRef>) -> Result<AllowList, String> {
        let mut host_root = vec![HOST_ROOT_NAMESPACE.to_string()];
        for p in &cfg.host_root_namespaces {
            check("host-root-namespaces", p)?;
            host_root.push(p.clone());
        }
        Ok(AllowList {
            namespaces: compile("namespaces", &cfg.namespaces)?,
            workloads: join("workloads", &workload_patterns(&cfg.workloads)?)?,
            comms: compile("comms", &cfg.comms)?,
            host_root_namespaces: join("host-root-namespaces", &host_root)?,
            own,
            own_ipc: None,
            escape_namespaces: None,
            escape_containers: None,
        })
    }

    /// The escape alert's opt-out (`alerts.escape-opt-out`); errors name the list.
    pub fn with_escape_opt_out(mut self, cfg: &EscapeOptOutConfig) -> Result<AllowList, String> {
        self.escape_namespaces = compile("namespaces", &cfg.namespaces)?;
        self.escape_containers = compile("containers", &cfg.containers)?;
        Ok(self)
    }

    /// Whether NsexporterNamespaceEscape leaves `s` alone: only an explicit opt-out of
    /// its pod namespace, or of the container by name or `container_id`. Nothing else,
    /// not the allow-list, not the exporter's own pod.
    pub fn opts_out_of_escape(&self, s: &Subject<'_>) -> bool {
        matches(&self.escape_namespaces, s.namespace)
            || matches(&self.escape_containers, s.container_name)
            || matches(
                &self.escape_containers,
                Some(s.container.container_id().as_str()),
            )
    }

    /// The exporter's own IPC namespace (`<procfs>/self/ns/ipc`): a container in it,
    /// when it is not the host's, is of the exporter's pod.
    pub fn with_own_ipc(mut self, ipc: Option<u64>) -> AllowList {
        self.own_ipc = ipc;
        self
    }

    /// Whether `s` is the exporter's own pod (or, outside Kubernetes, its container).
    pub fn is_own(&self, s: &Subject<'_>) -> bool {
        if self.own_ipc.is_some() && s.pod_ipc == self.own_ipc {
            return true;
        }
        match &self.own {
            None => false,
            Some(own) if !own.pod_uid.is_empty() => {
                s.container.pod_uid == own.pod_uid && s.container.owner_uid.is_none()
            }
            Some(own) => s.container == own,
        }
    }

    /// Whether host-namespace sharing (and, with [`AllowList::allows_host_root`], host
    /// root) by `s` is expected.
    pub fn allows(&self, s: &Subject<'_>) -> bool {
        if self.is_own(s) {
            return true;
        }
        fn known(v: Option<&str>) -> Option<&str> {
            v.filter(|v| !v.is_empty())
        }
        let key = match (
            known(s.namespace),
            known(s.workload_kind),
            known(s.workload),
        ) {
            (Some(ns), Some(kind), Some(name)) => Some(format!("{ns}/{kind}/{name}")),
            _ => None,
        };
        // Outside Kubernetes: no pod UID, no pod namespace, not a user's delegated
        // subtree (the rules: uid="", container_id not `<runtime>://user-…`).
        let outside = s.container.pod_uid.is_empty()
            && s.container.owner_uid.is_none()
            && known(s.namespace).is_none();
        matches(&self.namespaces, s.namespace)
            || matches(&self.workloads, key.as_deref())
            || (outside && matches(&self.comms, Some(s.comm)))
    }

    /// Whether host root in `s` is expected: the general list, or a namespace exempt
    /// from the host-root alert (`kube-system` always).
    pub fn allows_host_root(&self, s: &Subject<'_>) -> bool {
        self.allows(s) || matches(&self.host_root_namespaces, s.namespace)
    }
}

/// The workload a pod belongs to, `(kind, name)`, from its name alone: the node has no
/// owner references, so the suffixes controllers generate are cut off, as the rules'
/// recording rule cuts a ReplicaSet's hash and a CronJob's timestamp:
/// `<deployment>-<hash>-<5>` (Deployment), `<cronjob>-<minutes>-<5>` (Job, named by its
/// CronJob), `<daemonset>-<5>` (DaemonSet), `<statefulset>-<ordinal>` (StatefulSet);
/// any other name is its own workload of kind Pod.
///
/// A Job's own pods (`<job>-<5>`) read as a DaemonSet's, and a bare pod named like a
/// controller's pod gets that controller: always in the pod's own namespace, which is
/// the boundary the allow-list keeps. The README says so under "The allow-list".
pub fn workload_of_pod(pod: &str) -> (&'static str, &str) {
    // The alphabet of Kubernetes' generated names (utilrand.String, SafeEncodeString).
    const GEN: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    fn cut<'a>(name: &'a str, min: usize, max: usize, ok: &dyn Fn(u8) -> bool) -> Option<&'a str> {
        let (base, suffix) = name.rsplit_once('-')?;
        let fits =
            !base.is_empty() && (min..=max).contains(&suffix.len()) && suffix.bytes().all(ok);
        fits.then_some(base)
    }
    let generated = |b: u8| GEN.contains(&b);
    if let Some(owner) = cut(pod, 5, 5, &generated) {
        if let Some(d) = cut(owner, 6, 10, &generated) {
            return ("Deployment", d);
        }
        if let Some(c) = cut(owner, 8, 12, &|b: u8| b.is_ascii_digit()) {
            return ("Job", c);
        }
        return ("DaemonSet", owner);
    }
    match cut(pod, 1, 5, &|b: u8| b.is_ascii_digit()) {
        Some(s) => ("StatefulSet", s),
        None => ("Pod", pod),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Runtime;

    fn cref(id: &str, pod_uid: &str) -> ContainerRef {
        ContainerRef {
            runtime: Runtime::Containerd,
            id: id.into(),
            pod_uid: pod_uid.into(),
            owner_uid: None,
        }
    }

    fn subject<'a>(c: &'a ContainerRef, comm: &'a str) -> Subject<'a> {
        Subject {
            container: c,
            comm,
            namespace: None,
            pod: None,
            workload_kind: None,
            workload: None,
            container_name: None,
            pod_ipc: None,
        }
    }

    /// `s` named as the pod `ns/pod`, its workload from the pod name.
    fn in_pod<'a>(mut s: Subject<'a>, ns: &'a str, pod: &'a str) -> Subject<'a> {
        let (kind, name) = workload_of_pod(pod);
        s.namespace = Some(ns);
        s.pod = Some(pod);
        s.workload_kind = Some(kind);
        s.workload = Some(name);
        s
    }

    fn cfg(f: impl FnOnce(&mut AllowConfig)) -> AllowList {
        let mut c = AllowConfig::default();
        f(&mut c);
        AllowList::new(&c, None).unwrap()
    }

    #[test]
    fn default_allows_only_the_own_pod() {
        let own = cref("aaa", "11111111-2222-3333-4444-555555555555");
        let allow = AllowList::new(&AllowConfig::default(), Some(own.clone())).unwrap();
        // The exporter's own container and a sibling in its pod.
        assert!(allow.allows(&subject(&own, "nsexporter")));
        let sibling = cref("bbb", &own.pod_uid);
        assert!(allow.allows(&subject(&sibling, "sh")));
        // Anything else, whatever it calls itself.
        let other = cref("ccc", "99999999-2222-3333-4444-555555555555");
        assert!(!allow.allows(&subject(&other, "nsexporter")));
        // In a private cgroup namespace: the pod is known by its IPC namespace.
        let allow = AllowList::new(&AllowConfig::default(), None)
            .unwrap()
            .with_own_ipc(Some(4026532500));
        let pause = cref("ddd", "");
        let mut s = subject(&pause, "pause");
        assert!(!allow.allows(&s));
        s.pod_ipc = Some(4026532500);
        assert!(allow.allows(&s));
        s.pod_ipc = Some(4026532501);
        assert!(!allow.allows(&s));
        // A rootless container claiming the pod UID is not the pod.
        let mut forged = sibling.clone();
        forged.owner_uid = Some(1000);
        assert!(!allow.allows(&subject(&forged, "nsexporter")));
        // Outside Kubernetes: the container itself only.
        let plain = cref("ddd", "");
        let allow = AllowList::new(&AllowConfig::default(), Some(plain.clone())).unwrap();
        assert!(allow.allows(&subject(&plain, "x")));
        assert!(!allow.allows(&subject(&cref("eee", ""), "x")));
        // No own container known: nothing, not even a container calling itself nsexporter.
        let allow = AllowList::new(&AllowConfig::default(), None).unwrap();
        assert!(!allow.allows(&subject(&plain, "x")));
        assert!(!allow.allows(&subject(&plain, "nsexporter")));
    }

    /// The chart's own entry for its release: the same-named DaemonSet in another
    /// namespace, or another kind of that name, is NOT allowed; the exporter's own pod,
    /// by its pod UID, still is.
    #[test]
    fn a_workload_is_allowed_by_namespace_and_owner_together() {
        let own = cref("aaa", "11111111-2222-3333-4444-555555555555");
        let c = AllowConfig {
            workloads: vec![
                WorkloadEntry::new("monitoring", "DaemonSet", "nsexporter"),
                WorkloadEntry::new("kube-system", "DaemonSet", "cilium"),
            ],
            ..AllowConfig::default()
        };
        let allow = AllowList::new(&c, Some(own.clone())).unwrap();
        let other = cref("ccc", "99999999-2222-3333-4444-555555555555");
        let s = subject(&other, "nsexporter");
        assert!(allow.allows(&in_pod(s, "monitoring", "nsexporter-x7k2p")));
        assert!(allow.allows(&in_pod(s, "kube-system", "cilium-4xkzt")));
        // Named like an allowed one, in another namespace.
        assert!(!allow.allows(&in_pod(s, "tenant-a", "nsexporter-x7k2p")));
        assert!(!allow.allows(&in_pod(s, "tenant-a", "cilium-4xkzt")));
        // Another kind of the same name, in the same namespace: a Deployment, a bare pod.
        assert!(!allow.allows(&in_pod(s, "monitoring", "nsexporter-6d4cf56db6-h9k2x")));
        assert!(!allow.allows(&in_pod(s, "kube-system", "cilium")));
        // Names that only contain an allowed one.
        assert!(!allow.allows(&in_pod(s, "monitoring", "evil-nsexporter-x7k2p")));
        assert!(!allow.allows(&in_pod(s, "xmonitoring", "nsexporter-x7k2p")));
        // The exporter's own pod, found by its pod UID, whatever it is named.
        let me = subject(&own, "nsexporter");
        assert!(allow.allows(&me));
        assert!(allow.allows(&in_pod(me, "tenant-a", "renamed-x7k2p")));
        // Unknown parts never match, even with patterns that match anything.
        let allow = cfg(|c| c.workloads = vec![WorkloadEntry::new(".*", ".*", ".*")]);
        let mut s = in_pod(s, "ns", "web-0");
        assert!(allow.allows(&s));
        s.namespace = Some("");
        assert!(!allow.allows(&s));
        s.namespace = None;
        assert!(!allow.allows(&s));
    }

    #[test]
    fn comms_count_only_outside_kubernetes() {
        let allow = cfg(|c| {
            c.namespaces = vec!["kube-.*".into()];
            c.comms = vec!["cilium-agent".into()];
        });
        let plain = cref("a", "");
        // Outside Kubernetes: judged by comm, whole name only.
        assert!(allow.allows(&subject(&plain, "cilium-agent")));
        assert!(!allow.allows(&subject(&plain, "xcilium-agent")));
        assert!(!allow.allows(&subject(&plain, "cilium-agentx")));
        // A pod UID, a pod namespace, or a user's delegated subtree: comm no longer counts.
        let pod = cref("b", "99999999-2222-3333-4444-555555555555");
        assert!(!allow.allows(&subject(&pod, "cilium-agent")));
        let s = in_pod(subject(&plain, "cilium-agent"), "default", "web-1");
        assert!(!allow.allows(&s));
        let mut user = plain.clone();
        user.owner_uid = Some(1000);
        assert!(!allow.allows(&subject(&user, "cilium-agent")));
        // Whole namespaces.
        assert!(allow.allows(&in_pod(subject(&pod, "x"), "kube-flannel", "a")));
        assert!(!allow.allows(&in_pod(subject(&pod, "x"), "default", "a")));
        // An empty name never matches, even a pattern that matches the empty string.
        let allow = cfg(|c| c.namespaces = vec![".*".into()]);
        let mut s = subject(&plain, "x");
        s.namespace = Some("");
        assert!(!allow.allows(&s));
    }

    #[test]
    fn host_root_namespaces_exempt_host_root_only() {
        let c = cref("a", "");
        let allow = cfg(|_| {});
        let mut s = subject(&c, "x");
        s.namespace = Some("kube-system");
        assert!(!allow.allows(&s));
        // kube-system always, as in the rules; the list adds more.
        assert!(allow.allows_host_root(&s));
        s.namespace = Some("storage");
        assert!(!allow.allows_host_root(&s));
        let allow = cfg(|c| c.host_root_namespaces = vec!["stor.*".into()]);
        assert!(allow.allows_host_root(&s));
        assert!(!allow.allows(&s));
    }

    #[test]
    fn bad_entries_are_named() {
        let mut c = AllowConfig {
            namespaces: vec!["ok".into(), "(unclosed".into()],
            ..AllowConfig::default()
        };
        let e = AllowList::new(&c, None).unwrap_err();
        assert!(e.starts_with("namespaces: \"(unclosed\""), "{e}");
        // A name alone.
        c.namespaces.clear();
        c.workloads = vec![WorkloadEntry::Name("cilium".into())];
        let e = AllowList::new(&c, None).unwrap_err();
        assert!(
            e.starts_with("workloads: entry 1 \"cilium\" is a name alone"),
            "{e}"
        );
        // A missing part, an unknown key, a bad regex: each names its entry.
        let mut missing = WorkloadEntry::new("kube-system", "DaemonSet", "cilium");
        if let WorkloadEntry::Parts(p) = &mut missing {
            p.remove("kind");
        }
        c.workloads = vec![WorkloadEntry::new("a", "Pod", "b"), missing];
        let e = AllowList::new(&c, None).unwrap_err();
        assert!(e.starts_with("workloads: entry 2 "), "{e}");
        assert!(e.contains("has no kind"), "{e}");
        assert!(e.contains("cilium"), "{e}");
        let mut extra = WorkloadEntry::new("a", "Pod", "b");
        if let WorkloadEntry::Parts(p) = &mut extra {
            p.insert("pod".into(), "b".into());
        }
        c.workloads = vec![extra];
        let e = AllowList::new(&c, None).unwrap_err();
        assert!(e.contains("entry 1") && e.contains("\"pod\""), "{e}");
        c.workloads = vec![WorkloadEntry::new("a", "Pod", "b[")];
        let e = AllowList::new(&c, None).unwrap_err();
        assert!(e.starts_with("workloads: entry 1 name: \"b[\""), "{e}");
        // An alternation in one part stays inside that part.
        c.workloads = vec![WorkloadEntry::new("a|b", "Pod", "p")];
        let allow = AllowList::new(&c, None).unwrap();
        let r = cref("x", "");
        assert!(allow.allows(&in_pod(subject(&r, "x"), "b", "p")));
        let mut s = in_pod(subject(&r, "x"), "a", "p");
        assert!(allow.allows(&s));
        s.namespace = Some("ab");
        assert!(!allow.allows(&s));
    }

    #[test]
    fn the_config_file_form() {
        let c: AllowConfig = serde_yaml_ng::from_str(
            "workloads:\n  - {namespace: kube-system, kind: DaemonSet, name: cilium}\n  - cilium\n",
        )
        .unwrap();
        assert_eq!(
            c.workloads,
            vec![
                WorkloadEntry::new("kube-system", "DaemonSet", "cilium"),
                WorkloadEntry::Name("cilium".into())
            ]
        );
        // The old keys are refused.
        for old in ["pods: [a]", "containers: [a]"] {
            assert!(
                serde_yaml_ng::from_str::<AllowConfig>(old).is_err(),
                "{old}"
            );
        }
    }

    #[test]
    fn workloads_from_pod_names() {
        for (pod, want) in [
            ("coredns-5d78c9869d-x7k2p", ("Deployment", "coredns")),
            ("cilium-4xkzt", ("DaemonSet", "cilium")),
            ("backup-28374650-hq2zv", ("Job", "backup")),
            ("web-0", ("StatefulSet", "web")),
            ("web-12", ("StatefulSet", "web")),
            ("nsexporter-9fjlm", ("DaemonSet", "nsexporter")),
            // Not generated shapes: the pod is its own workload.
            ("debugger", ("Pod", "debugger")),
            ("my-pod-abcde", ("Pod", "my-pod-abcde")), // 'a', 'e' are not in the alphabet
            ("-bcdfg", ("Pod", "-bcdfg")),
        ] {
            assert_eq!(workload_of_pod(pod), want, "{pod}");
        }
    }
}

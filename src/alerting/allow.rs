//! The sidecar's allow-list: containers whose host-namespace sharing or host root is
//! expected, with the same meaning as the rules file's allow-list tokens.
//!
//! - `namespaces`, `pods`, `workloads`, `containers` match the pod's namespace, pod name,
//!   owning workload and container name. Each matches only when that name is known
//!   (an empty name never matches), as the rules require `namespace!=""`.
//! - `comms` matches the container's comm, only for containers whose pod is not known
//!   (a named pod is judged by its names: any workload can choose its comm).
//! - `host-root-namespaces` exempts pod namespaces from the host-root alert only
//!   (default `kube-system`, as the rules' default).
//!
//! Patterns are RE2-style regexes anchored at both ends, as PromQL anchors them, so an
//! entry is a whole-name pattern.
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

use regex::Regex;
use serde::Deserialize;

use crate::model::ContainerRef;

/// The allow-list as written in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowConfig {
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub pods: Vec<String>,
    #[serde(default)]
    pub workloads: Vec<String>,
    #[serde(default)]
    pub containers: Vec<String>,
    #[serde(default)]
    pub comms: Vec<String>,
    #[serde(
        default = "default_host_root_namespaces",
        rename = "host-root-namespaces"
    )]
    pub host_root_namespaces: Vec<String>,
}

fn default_host_root_namespaces() -> Vec<String> {
    vec!["kube-system".to_string()]
}

impl Default for AllowConfig {
    fn default() -> Self {
        AllowConfig {
            namespaces: Vec::new(),
            pods: Vec::new(),
            workloads: Vec::new(),
            containers: Vec::new(),
            comms: Vec::new(),
            host_root_namespaces: default_host_root_namespaces(),
        }
    }
}

/// What is known about one container, for matching.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub container: &'a ContainerRef,
    pub comm: &'a str,
    /// Pod namespace, pod name, workload and container name, where known.
    pub namespace: Option<&'a str>,
    pub pod: Option<&'a str>,
    pub workload: Option<&'a str>,
    pub container_name: Option<&'a str>,
    /// The IPC namespace of its oldest process, unless that is the host's.
    pub pod_ipc: Option<u64>,
}

/// A compiled allow-list.
#[derive(Debug, Clone)]
pub struct AllowList {
    namespaces: Option<Regex>,
    pods: Option<Regex>,
    workloads: Option<Regex>,
    containers: Option<Regex>,
    comms: Option<Regex>,
    host_root_namespaces: Option<Regex>,
    /// The exporter's own container, from its own cgroup.
    own: Option<ContainerRef>,
    /// The exporter's own IPC namespace, that of its pod.
    own_ipc: Option<u64>,
}

/// One anchored alternation of `patterns`; `None` for an empty list (matches nothing).
fn compile(key: &str, patterns: &[String]) -> Result<Option<Regex>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    for p in patterns {
        Regex::new(p).map_err(|e| format!("{key}: {p:?} is not a valid regex: {e}"))?;
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
        Ok(AllowList {
            namespaces: compile("namespaces", &cfg.namespaces)?,
            pods: compile("pods", &cfg.pods)?,
            workloads: compile("workloads", &cfg.workloads)?,
            containers: compile("containers", &cfg.containers)?,
            comms: compile("comms", &cfg.comms)?,
            host_root_namespaces: compile("host-root-namespaces", &cfg.host_root_namespaces)?,
            own,
            own_ipc: None,
        })
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
        let named = s.namespace.is_some_and(|n| !n.is_empty());
        matches(&self.namespaces, s.namespace)
            || matches(&self.pods, s.pod)
            || matches(&self.workloads, s.workload)
            || matches(&self.containers, s.container_name)
            || (!named && matches(&self.comms, Some(s.comm)))
    }

    /// Whether host root in `s` is expected: the general list, or a namespace exempt
    /// from the host-root alert.
    pub fn allows_host_root(&self, s: &Subject<'_>) -> bool {
        self.allows(s) || matches(&self.host_root_namespaces, s.namespace)
    }
}

/// The workload a pod belongs to, from its name alone: the node has no owner
/// references, so the suffixes controllers generate are cut off, as the rules' recording
/// rule cuts a ReplicaSet's hash and a CronJob's timestamp:
/// `<deployment>-<hash>-<5>`, `<daemonset>-<5>`, `<cronjob>-<minutes>-<5>`,
/// `<statefulset>-<ordinal>`; any other name is its own workload.
///
/// A pod created bare with a controller-like name gets that controller's name; the
/// README says so next to `workloads`.
pub fn workload_of_pod(pod: &str) -> &str {
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
        return cut(owner, 6, 10, &generated)
            .or_else(|| cut(owner, 8, 12, &|b: u8| b.is_ascii_digit()))
            .unwrap_or(owner);
    }
    cut(pod, 1, 5, &|b: u8| b.is_ascii_digit()).unwrap_or(pod)
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
            workload: None,
            container_name: None,
            pod_ipc: None,
        }
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
        // No own container known: nothing.
        let allow = AllowList::new(&AllowConfig::default(), None).unwrap();
        assert!(!allow.allows(&subject(&plain, "x")));
    }

    #[test]
    fn patterns_are_anchored_and_need_a_known_name() {
        let c = cref("a", "");
        let allow = cfg(|c| {
            c.namespaces = vec!["kube-.*".into()];
            c.workloads = vec!["cilium".into()];
            c.comms = vec!["cilium-agent".into()];
            c.containers = vec!["istio-proxy".into()];
        });
        let mut s = subject(&c, "cilium-agent");
        // Unnamed: judged by comm, whole name only.
        assert!(allow.allows(&s));
        assert!(!allow.allows(&subject(&c, "xcilium-agent")));
        assert!(!allow.allows(&subject(&c, "cilium-agentx")));
        // Named: comm no longer counts.
        s.namespace = Some("default");
        s.pod = Some("web-1");
        assert!(!allow.allows(&s));
        s.namespace = Some("kube-flannel");
        assert!(allow.allows(&s));
        s.namespace = Some("default");
        s.workload = Some("cilium");
        assert!(allow.allows(&s));
        s.workload = Some("ciliumx");
        s.container_name = Some("istio-proxy");
        assert!(allow.allows(&s));
        // An empty name never matches, even a pattern that matches the empty string.
        let allow = cfg(|c| c.namespaces = vec![".*".into()]);
        let mut s = subject(&c, "x");
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
        assert!(allow.allows_host_root(&s));
        let allow = cfg(|c| c.host_root_namespaces.clear());
        assert!(!allow.allows_host_root(&s));
    }

    #[test]
    fn bad_patterns_name_the_key() {
        let mut c = AllowConfig {
            pods: vec!["ok".into(), "(unclosed".into()],
            ..AllowConfig::default()
        };
        let e = AllowList::new(&c, None).unwrap_err();
        assert!(e.starts_with("pods: \"(unclosed\""), "{e}");
        // An alternation in one entry stays inside that entry.
        c.pods = vec!["a|b".into()];
        let allow = AllowList::new(&c, None).unwrap();
        let r = cref("x", "");
        let mut s = subject(&r, "x");
        s.pod = Some("b");
        assert!(allow.allows(&s));
        s.pod = Some("ab");
        assert!(!allow.allows(&s));
    }

    #[test]
    fn workloads_from_pod_names() {
        for (pod, want) in [
            ("coredns-5d78c9869d-x7k2p", "coredns"),
            ("cilium-4xkzt", "cilium"),
            ("backup-28374650-hq2zv", "backup"),
            ("web-0", "web"),
            ("web-12", "web"),
            ("nsexporter-9fjlm", "nsexporter"),
            // Not generated shapes: the pod is its own workload.
            ("debugger", "debugger"),
            ("my-pod-abcde", "my-pod-abcde"), // 'a', 'e' are not in the alphabet
            ("-bcdfg", "-bcdfg"),
        ] {
            assert_eq!(workload_of_pod(pod), want, "{pod}");
        }
    }
}

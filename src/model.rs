//! The snapshot model: namespace types, per-process records and the node-wide summary
//! that one scan produces and every consumer (metrics, CLI) reads.
//!
//! Why one file of about 790 lines: these are the plain data types every part reads (scan,
//! metrics, CLI, alerting, runtime), each with its small methods; one place to look them
//! up beats a tree of tiny files, and none of them has logic worth its own module.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// The namespace types that are memberships (not `*_for_children`), in the order
/// `lsns` and the metric labels use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NsType {
    Cgroup,
    Ipc,
    Mnt,
    Net,
    Pid,
    Time,
    User,
    Uts,
}

impl NsType {
    /// Every type, in label order.
    pub const ALL: [NsType; 8] = [
        NsType::Cgroup,
        NsType::Ipc,
        NsType::Mnt,
        NsType::Net,
        NsType::Pid,
        NsType::Time,
        NsType::User,
        NsType::Uts,
    ];

    /// The types whose sharing exposes the node: what `report` lists by default and
    /// what the log tells at info level. `cgroup`, `time` and `user` are left out
    /// because ordinary containers share them (Docker and Kubernetes never make a time
    /// namespace, a user namespace only with `hostUsers: false`, a cgroup namespace not
    /// on cgroup v1 hosts); host root is judged separately.
    pub const EXPOSING: [NsType; 5] = [
        NsType::Net,
        NsType::Pid,
        NsType::Ipc,
        NsType::Uts,
        NsType::Mnt,
    ];

    /// The name the kernel uses in `/proc/<pid>/ns/<name>` and in the link text.
    pub const fn name(self) -> &'static str {
        match self {
            NsType::Cgroup => "cgroup",
            NsType::Ipc => "ipc",
            NsType::Mnt => "mnt",
            NsType::Net => "net",
            NsType::Pid => "pid",
            NsType::Time => "time",
            NsType::User => "user",
            NsType::Uts => "uts",
        }
    }

    /// The path of the link relative to a `/proc/<pid>` directory, NUL-terminated so it
    /// can be handed to `readlinkat` without an allocation.
    pub(crate) const fn link_cstr(self) -> &'static std::ffi::CStr {
        match self {
            NsType::Cgroup => c"ns/cgroup",
            NsType::Ipc => c"ns/ipc",
            NsType::Mnt => c"ns/mnt",
            NsType::Net => c"ns/net",
            NsType::Pid => c"ns/pid",
            NsType::Time => c"ns/time",
            NsType::User => c"ns/user",
            NsType::Uts => c"ns/uts",
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }

    pub fn from_name(name: &str) -> Option<NsType> {
        NsType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The `nsenter` flag that enters only this namespace.
    pub const fn nsenter_flag(self) -> &'static str {
        match self {
            NsType::Cgroup => "-C",
            NsType::Ipc => "-i",
            NsType::Mnt => "-m",
            NsType::Net => "-n",
            NsType::Pid => "-p",
            NsType::Time => "-T",
            NsType::User => "-U",
            NsType::Uts => "-u",
        }
    }
}

impl fmt::Display for NsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The namespace inodes of one process, one slot per [`NsType`]; `None` where the kernel
/// has no such type (a missing link) or it was not read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NsSet(pub [Option<u64>; 8]);

impl NsSet {
    pub fn get(&self, t: NsType) -> Option<u64> {
        self.0[t.index()]
    }

    pub fn set(&mut self, t: NsType, inode: Option<u64>) {
        self.0[t.index()] = inode;
    }

    /// Whether this process is a member of the host namespace of `t`. Unknown on either
    /// side means "not shown to be shared".
    pub fn shares(&self, host: &NsSet, t: NsType) -> bool {
        matches!((self.get(t), host.get(t)), (Some(a), Some(b)) if a == b)
    }
}

/// Container runtimes, named as the `runtime` label and, with `cri-o` spelled as
/// kube-state-metrics does, as the `container_id` scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Runtime {
    #[serde(rename = "containerd")]
    Containerd,
    #[serde(rename = "cri-o")]
    CriO,
    #[serde(rename = "docker")]
    Docker,
    #[serde(rename = "podman")]
    Podman,
}

impl Runtime {
    pub const ALL: [Runtime; 4] = [
        Runtime::Containerd,
        Runtime::CriO,
        Runtime::Docker,
        Runtime::Podman,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
        }
    }

    pub fn from_name(name: &str) -> Option<Runtime> {
        Runtime::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which container a process belongs to, as derived from its cgroup path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ContainerRef {
    pub runtime: Runtime,
    /// The runtime's container ID, without scheme.
    pub id: String,
    /// The pod UID in API form (with dashes); empty outside Kubernetes.
    pub pod_uid: String,
    /// The host UID to whom the cgroup subtree holding the container's cgroup is
    /// delegated: a systemd user manager (`user@<uid>.service`) on the path, or a
    /// directory above the container's cgroup owned by that UID (`scan::delegation`).
    /// That user may name cgroups as they like there: a rootless container, or a
    /// forgery. `None` for containers under the system's own cgroups.
    pub owner_uid: Option<u32>,
}

impl ContainerRef {
    /// `<scheme>://<id>`, the form kube-state-metrics uses in `container_id`; for a
    /// container in a user's delegated subtree `<scheme>://user-<uid>/<id>`, which no
    /// runtime or kube-state-metrics ever writes, so that a user cannot forge or merge
    /// into another container's series by reusing its ID (see `cgroup::attribute_path` and
    /// `scan::delegation`).
    pub fn container_id(&self) -> String {
        match self.owner_uid {
            None => format!("{}://{}", self.runtime.name(), self.id),
            Some(uid) => format!("{}://user-{uid}/{}", self.runtime.name(), self.id),
        }
    }
}

/// One line of a uid_map: `inside outside length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UidMapLine {
    pub inside: u32,
    pub outside: u32,
    pub length: u32,
}

/// A user namespace's uid_map, as read from the host user namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UidMap(pub Vec<UidMapLine>);

impl UidMap {
    /// The host UID that `inside` maps to, if any.
    pub fn to_host(&self, inside: u32) -> Option<u32> {
        self.0.iter().find_map(|l| {
            let off = inside.checked_sub(l.inside)?;
            (off < l.length).then(|| l.outside.wrapping_add(off))
        })
    }

    /// The UID inside the namespace that host UID `outside` appears as, if mapped.
    pub fn to_inside(&self, outside: u32) -> Option<u32> {
        self.0.iter().find_map(|l| {
            let off = outside.checked_sub(l.outside)?;
            (off < l.length).then(|| l.inside.wrapping_add(off))
        })
    }

    /// The identity map of the initial user namespace: `0 0 4294967295`.
    pub fn is_identity_full(&self) -> bool {
        self.0.len() == 1
            && self.0[0].inside == 0
            && self.0[0].outside == 0
            && self.0[0].length == u32::MAX
    }
}

/// How a process's root relates to host root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RootMapping {
    /// Host-view effective UID is 0.
    HostRoot,
    /// Root inside its user namespace, which maps inside 0 to host UID `host_uid`.
    Remapped { host_uid: u32 },
    /// Neither: an ordinary UID.
    NonRoot,
}

impl RootMapping {
    pub fn classify(host_euid: u32, map: Option<&UidMap>) -> RootMapping {
        if host_euid == 0 {
            return RootMapping::HostRoot;
        }
        match map {
            Some(m) if m.to_inside(host_euid) == Some(0) => RootMapping::Remapped {
                host_uid: host_euid,
            },
            _ => RootMapping::NonRoot,
        }
    }
}

impl fmt::Display for RootMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootMapping::HostRoot => f.write_str("host root"),
            RootMapping::Remapped { host_uid } => write!(f, "0 -> {host_uid}"),
            RootMapping::NonRoot => f.write_str("non-root"),
        }
    }
}

/// Everything one scan learnt about one process.
#[derive(Debug, Clone)]
pub struct ProcRecord {
    pub pid: u32,
    /// Field 22 of stat, in clock ticks since boot: with `pid`, the process identity.
    pub start_time: u64,
    pub comm: String,
    pub ns: NsSet,
    /// Effective UID as seen from the host user namespace.
    pub host_euid: u32,
    pub container: Option<ContainerRef>,
    /// The thread whose links, UID and cgroup these are, when the leader has exited
    /// (`pthread_exit`) while other threads run on; `None`: the leader's own.
    pub via: Option<u32>,
}

/// Where the host reference came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostSource {
    Pid1,
    Kthread,
    Fixed,
}

impl HostSource {
    pub const ALL: [HostSource; 3] = [HostSource::Pid1, HostSource::Kthread, HostSource::Fixed];

    pub const fn name(self) -> &'static str {
        match self {
            HostSource::Pid1 => "pid1",
            HostSource::Kthread => "kthread",
            HostSource::Fixed => "fixed",
        }
    }
}

/// The host's (initial) namespaces and how they were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRef {
    pub source: HostSource,
    pub ns: NsSet,
}

/// A namespace that a bind mount holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PinnedNs {
    #[serde(rename = "type")]
    pub ns_type: NsType,
    pub inode: u64,
    /// Mount points where it is bound, as seen in the mount namespaces read.
    pub mount_points: Vec<String>,
}

/// What one container looks like in one scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    pub container: ContainerRef,
    pub processes: u32,
    /// The oldest process (smallest start time): its PID, comm and namespaces stand
    /// for the container in reports.
    pub main_pid: u32,
    pub main_start_time: u64,
    pub comm: String,
    pub main_ns: NsSet,
    /// How many of its processes are in the host namespace of each type.
    pub host_ns_processes: [u32; 8],
    /// How many of its processes have host-view effective UID 0.
    pub host_root_processes: u32,
    /// Root mapping of the main process.
    pub root: RootMapping,
    /// The uid_map of the main process's user namespace, when it could be read.
    pub uid_map: Option<UidMap>,
    /// How many of its processes have escaped into the host namespace of each type: a
    /// thread of theirs (the leader's links, or another thread's) is in the host's
    /// namespace of that type, and the container's own namespace of it is not. A process
    /// counts once, however many of its threads are there.
    pub escaped_processes: [u32; 8],
    /// Each escaped process or thread, by PID and TID.
    pub escapes: Vec<Escape>,
    /// What its runtime's files say: names and declared namespaces (empty when unknown).
    /// Read once when the container is first seen, shared between scans.
    pub runtime_info: std::sync::Arc<RuntimeInfo>,
}

/// A process, or one thread of it, of a container, in host namespaces that the container
/// itself does not share: it entered them (`setns`, `nsenter`) after the container
/// started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escape {
    pub pid: u32,
    /// The thread whose links these are: `pid` itself for the leader's; another thread's
    /// when only that thread is there, or when it stands for a leader that has exited.
    pub tid: u32,
    /// That thread's comm.
    pub comm: String,
    /// The host namespace types it is in and the container is not, in label order.
    pub types: Vec<NsType>,
}

impl ContainerSummary {
    pub fn shares(&self, t: NsType) -> bool {
        self.host_ns_processes[t.index()] > 0
    }

    /// Whether a process or thread of it has escaped into the host namespace of `t`.
    pub fn escaped(&self, t: NsType) -> bool {
        self.escaped_processes[t.index()] > 0
    }

    /// Whether any process or thread of it has escaped into a host namespace.
    pub fn any_escaped(&self) -> bool {
        self.escaped_processes.iter().any(|n| *n > 0)
    }

    /// Whether the container's own namespace of type `t` is the host's: the one its
    /// runtime declared, where the runtime's files say; otherwise that of its oldest
    /// process, the one it was started in. A process or thread of it in the host's
    /// namespace of `t` has escaped when this is false.
    pub fn namespace_is_host(&self, t: NsType, host: &NsSet) -> bool {
        self.declared_host(t, host)
            .unwrap_or_else(|| self.main_ns.shares(host, t))
    }

    /// Whether the container shares any host namespace among `types`.
    pub fn shares_any(&self, types: &[NsType]) -> bool {
        types.iter().any(|t| self.shares(*t))
    }

    /// Whether the namespace of type `t` that its runtime declared is the host's:
    /// `Some(false)` for a private one or a join of another, `Some(true)` for the host's,
    /// `None` when the runtime's files do not say (or a join did not resolve). For
    /// escape detection: a process in the host's namespace of `t` has escaped when this
    /// is `Some(false)`.
    pub fn declared_host(&self, t: NsType, host: &NsSet) -> Option<bool> {
        self.runtime_info.declared(t)?.is_host(host.get(t))
    }

    /// Its processes that are not in the namespace its runtime declared, by type (only
    /// non-zero), given the host's namespaces.
    pub fn drift(&self, host: &NsSet) -> Vec<Drift> {
        drift(
            &self.runtime_info.declared,
            host,
            self.processes,
            &self.host_ns_processes,
        )
    }
}

// ---------------------------------------------------------------------------------
// What a container's runtime files say (read by `crate::runtime`).

/// A container's names, each empty when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Names {
    /// The Kubernetes namespace of its pod.
    pub namespace: String,
    /// Its pod (Kubernetes or Podman).
    pub pod: String,
    /// The container's own name (empty for a pod's sandbox in Kubernetes).
    pub container: String,
}

impl Names {
    pub fn is_empty(&self) -> bool {
        self.namespace.is_empty() && self.pod.is_empty() && self.container.is_empty()
    }

    /// `namespace/pod/container` as far as known; `None` if nothing is.
    pub fn joined(&self) -> Option<String> {
        let parts: Vec<&str> = [&self.namespace, &self.pod, &self.container]
            .into_iter()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join("/"))
    }
}

/// What a container's runtime was asked to do with one namespace type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeclaredNs {
    /// A new namespace of its own.
    Private,
    /// The runtime's own, which is the host's.
    Host,
    /// An existing namespace, given by path (or another container, for Docker). `inode`
    /// is that namespace, when the path still resolved when the container was first seen.
    Joins { inode: Option<u64> },
}

impl DeclaredNs {
    /// Whether the declared namespace is the host's, given the host's inode of the type.
    /// `None` when that cannot be told (a join that did not resolve, an unknown host).
    pub fn is_host(self, host_inode: Option<u64>) -> Option<bool> {
        match self {
            DeclaredNs::Private => Some(false),
            DeclaredNs::Host => Some(true),
            DeclaredNs::Joins { inode } => Some(inode? == host_inode?),
        }
    }

    /// The `declared` label value: `private`, `host` or `joined`.
    pub const fn name(self) -> &'static str {
        match self {
            DeclaredNs::Private => "private",
            DeclaredNs::Host => "host",
            DeclaredNs::Joins { .. } => "joined",
        }
    }
}

impl fmt::Display for DeclaredNs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeclaredNs::Joins { inode: Some(i) } => write!(f, "joined {i}"),
            DeclaredNs::Joins { inode: None } => f.write_str("joined (unresolved)"),
            other => f.write_str(other.name()),
        }
    }
}

/// Declared namespaces, one slot per [`NsType`]; `None` where the runtime's files do not
/// say (Docker's `UsernsMode` left to the daemon, a file that could not be read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Declared(pub [Option<DeclaredNs>; 8]);

impl Declared {
    pub fn get(&self, t: NsType) -> Option<DeclaredNs> {
        self.0[t.index()]
    }

    pub fn set(&mut self, t: NsType, d: Option<DeclaredNs>) {
        self.0[t.index()] = d;
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

/// What a container's runtime files say about it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct RuntimeInfo {
    pub names: Names,
    pub declared: Declared,
    /// `linux.uidMappings` was present: a user namespace was asked for (`hostUsers:
    /// false`). Its declared user namespace is then private (or joined).
    pub uid_mappings: bool,
}

impl RuntimeInfo {
    /// The declared namespace of type `t`, when the runtime's files say. For namespace
    /// escapes: a process in the host's namespace of `t` has escaped when this is not
    /// the host's ([`DeclaredNs::is_host`] is `Some(false)`).
    pub fn declared(&self, t: NsType) -> Option<DeclaredNs> {
        self.declared.get(t)
    }
}

/// Which way a container's processes differ from what its runtime declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DriftKind {
    /// Declared a namespace other than the host's (new, or a join of one that is not the
    /// host's), but the process is in the host's: for `user`, `hostUsers: false` did not
    /// take effect.
    Private,
    /// Declared the host's (not listed, `host` mode, or a join of the host's), but the
    /// process is elsewhere.
    Host,
}

impl DriftKind {
    /// The `declared` label value.
    pub const fn name(self) -> &'static str {
        match self {
            DriftKind::Private => "private",
            DriftKind::Host => "host",
        }
    }
}

/// How many of a container's processes are not where its runtime declared them, for
/// one namespace type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drift {
    pub ns_type: NsType,
    pub declared: DriftKind,
    pub processes: u32,
}

/// The drift of one container, from what a scan observed: `processes` in all, of which
/// `in_host[t]` were in the host's namespace of type `t`. Only types whose declared
/// namespace is known to be the host's or not, and that the host has (`host`), count;
/// only non-zero drift is returned.
pub fn drift(declared: &Declared, host: &NsSet, processes: u32, in_host: &[u32; 8]) -> Vec<Drift> {
    let mut out = Vec::new();
    for t in NsType::ALL {
        let Some(host_inode) = host.get(t) else {
            continue;
        };
        let Some(is_host) = declared.get(t).and_then(|d| d.is_host(Some(host_inode))) else {
            continue;
        };
        let shared = in_host[t.index()].min(processes);
        let (kind, n) = if is_host {
            (DriftKind::Host, processes - shared)
        } else {
            (DriftKind::Private, shared)
        };
        if n > 0 {
            out.push(Drift {
                ns_type: t,
                declared: kind,
                processes: n,
            });
        }
    }
    out
}

/// Per-type node-wide namespace counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NsCount {
    /// Distinct namespaces held by a process or pinned by a bind mount.
    pub total: u64,
    /// Of those, held by no process.
    pub pinned: u64,
}

/// Errors met during one scan, by reason. Never fatal to the scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanErrors {
    /// The process exited while it was read (ENOENT, ESRCH).
    pub vanished: u64,
    /// Reading was refused (EACCES, EPERM).
    pub permission: u64,
    /// A file's content did not parse.
    pub parse: u64,
    /// Any other I/O error on one process or mount table.
    pub io: u64,
}

impl ScanErrors {
    pub fn add(&mut self, other: &ScanErrors) {
        self.vanished += other.vanished;
        self.permission += other.permission;
        self.parse += other.parse;
        self.io += other.io;
    }

    pub fn pairs(&self) -> [(&'static str, u64); 4] {
        [
            ("vanished", self.vanished),
            ("permission", self.permission),
            ("parse", self.parse),
            ("io", self.io),
        ]
    }
}

/// Why a scan cannot see the whole node, so that what it reports is not the node:
/// `nsexporter_procfs_blind{reason}`, a failing `/readyz` and a failing CLI say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlindReason {
    /// `--path.procfs` is not a procfs (statfs magic), or holds no process.
    NotProcfs,
    /// The procfs is mounted with `subset=pid`: no `loadavg`, no `sys/`.
    SubsetPid,
    /// The procfs is mounted with `hidepid` and hides most tasks from the exporter.
    Hidepid,
    /// Far fewer tasks are visible than the kernel counts, without `hidepid`: a procfs
    /// of a child PID namespace, not the host's.
    HiddenTasks,
    /// Most processes are visible but unreadable: no CAP_SYS_PTRACE.
    Permission,
}

impl BlindReason {
    pub const ALL: [BlindReason; 5] = [
        BlindReason::NotProcfs,
        BlindReason::SubsetPid,
        BlindReason::Hidepid,
        BlindReason::HiddenTasks,
        BlindReason::Permission,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            BlindReason::NotProcfs => "not_procfs",
            BlindReason::SubsetPid => "subset_pid",
            BlindReason::Hidepid => "hidepid",
            BlindReason::HiddenTasks => "hidden_tasks",
            BlindReason::Permission => "permission",
        }
    }
}

/// A scan that cannot see the whole node: why, and what to do, in one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blindness {
    pub reason: BlindReason,
    pub message: String,
}

/// What the scan could see of the procfs, against what the kernel says there is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Visibility {
    /// The procfs mount's `hidepid` option, when not `off`.
    pub hidepid: Option<String>,
    /// The procfs mount's `subset` option (`pid`).
    pub subset: Option<String>,
    /// Tasks (threads, kernel threads included) whose process's `stat` could be read.
    pub tasks_seen: u64,
    /// Tasks the kernel has (`loadavg`, after the slash), read before the scan; `None`
    /// where unreadable (a fixture tree, `subset=pid`).
    pub tasks_total: Option<u64>,
}

impl Visibility {
    /// Whether the procfs shows so few tasks that it must hide most: fewer than half of
    /// what the kernel counts. Tasks come and go during a scan, but not half of them.
    pub fn hides_tasks(&self) -> bool {
        self.tasks_total
            .is_some_and(|total| self.tasks_seen.saturating_mul(2) < total)
    }

    /// The reason a procfs that shows what it shows cannot be the node's, if any.
    /// `processes` and `permission` are the scan's readable processes and refusals.
    pub fn blindness(&self, procfs: &str, processes: u64, permission: u64) -> Option<Blindness> {
        if let Some(subset) = &self.subset {
            return Some(Blindness {
                reason: BlindReason::SubsetPid,
                message: format!(
                    "the procfs at {procfs} is mounted with subset={subset}, which hides the \
                     kernel's task count and the namespace limits: mount a procfs without \
                     subset= there (the host's /proc)"
                ),
            });
        }
        if self.hides_tasks() {
            let (seen, total) = (self.tasks_seen, self.tasks_total.unwrap_or(0));
            return Some(match &self.hidepid {
                Some(h) => Blindness {
                    reason: BlindReason::Hidepid,
                    message: format!(
                        "the procfs at {procfs} is mounted with hidepid={h} and shows {seen} of \
                         the kernel's {total} tasks: run nsexporter as root or with \
                         CAP_SYS_PTRACE, or mount a procfs without hidepid there"
                    ),
                },
                None => Blindness {
                    reason: BlindReason::HiddenTasks,
                    message: format!(
                        "the procfs at {procfs} shows {seen} of the kernel's {total} tasks: it \
                         is not the host's /proc (a procfs of another PID namespace?); mount \
                         the host's /proc there"
                    ),
                },
            });
        }
        if permission > 0 && permission >= processes {
            return Some(Blindness {
                reason: BlindReason::Permission,
                message: format!(
                    "{permission} processes are unreadable and {processes} readable: reading \
                     other processes' namespaces needs root or CAP_SYS_PTRACE (ptrace read \
                     access); run nsexporter as root or with CAP_SYS_PTRACE"
                ),
            });
        }
        None
    }
}

/// The result of one completed scan: what the node holds right now.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub taken_at: SystemTime,
    pub duration: Duration,
    pub host: HostRef,
    /// Namespace types the kernel has (a missing link type is left out).
    pub supported: Vec<NsType>,
    /// Processes scanned, without kernel threads.
    pub processes: u64,
    pub counts: [NsCount; 8],
    /// `/proc/sys/user/max_<type>_namespaces`, where readable.
    pub limits: [Option<u64>; 8],
    /// Processes in the host namespace of each type.
    pub host_ns_processes: [u64; 8],
    pub containers: BTreeMap<ContainerRef, ContainerSummary>,
    pub pinned: Vec<PinnedNs>,
    /// This scan's errors.
    pub errors: ScanErrors,
    /// Whether the reader itself sits outside the host user namespace, so that
    /// unmapped IDs read as the overflow UID (65534).
    pub reader_in_child_userns: bool,
    /// What the scan could see of the procfs (see [`Snapshot::blindness`]).
    pub visibility: Visibility,
    /// Runtime files that could not be read, by runtime and kind (`missing`,
    /// `symlink`, ...), since the scanner started: a counter. Only pairs seen.
    pub runtime_read_errors: Vec<(Runtime, &'static str, u64)>,
}

impl Snapshot {
    /// Why this scan does not show the node, if it does not: a procfs that hides tasks,
    /// or processes it could not read. `procfs` names the procfs in the message.
    pub fn blindness(&self, procfs: &str) -> Option<Blindness> {
        self.visibility
            .blindness(procfs, self.processes, self.errors.permission)
    }
}

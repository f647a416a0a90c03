//! Container runtimes' own files, read from the node: each container's pod, namespace and
//! container names, and the namespaces its runtime was asked to give it (declared), so
//! that what the kernel shows (observed) can be held against them. No API access, no RBAC.
//!
//! # Where, per runtime (each under `--path.rootfs`, each overridable)
//! - containerd: `/run/containerd/io.containerd.runtime.v2.task/<ns>/<id>/config.json`,
//!   every containerd namespace (`k8s.io`, `moby`, `default`...) tried in turn; names from
//!   the CRI annotations `io.kubernetes.cri.sandbox-namespace`, `…sandbox-name`,
//!   `…container-name`.
//! - CRI-O: `/run/containers/storage/overlay-containers/<id>/userdata/config.json`; names
//!   from the annotations `io.kubernetes.pod.namespace`, `…pod.name`, `…container.name`.
//! - Docker: `/var/lib/docker/containers/<id>/config.v2.json` (`Config.Labels`, the same
//!   `io.kubernetes.*` keys cri-dockerd sets; else Docker's own container name) and
//!   `hostconfig.json` (`NetworkMode`, `PidMode`, `IpcMode`, `UTSMode`, `UsernsMode`,
//!   `CgroupnsMode`).
//! - Podman (rootful): `/var/lib/containers/storage/overlay-containers/<id>/userdata/config.json`
//!   for the spec; its pod and container names are only in Podman's own database,
//!   `libpod/bolt_state.db` beside it (buckets `all-ctrs`, `ctr/<id>/pod-id`, `allPods`).
//!
//! # Declared namespaces (OCI `linux.namespaces`)
//! A type listed without `path` is new and private; listed with `path`, it joins that
//! namespace, which is resolved to its inode (`/proc/<pid>/ns/<type>` through the host's
//! procfs, other paths as nsfs files under the root); a type not listed is the runtime's
//! own, the host's. `linux.uidMappings` present means a user namespace was asked for
//! (Kubernetes `hostUsers: false`).
//!
//! # Secrets
//! A bundle holds the container's environment. Files are read through [`safefs`] (no
//! symlink, no `..`, regular files only, bounded size), parsed into types that hold only
//! the fields above, and nothing else of them is kept, logged or printed; parse errors are
//! reported by category and position, never with the text that failed.

pub mod bolt;
mod docker;
mod oci;
mod podman;
pub mod safefs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use crate::model::{drift, Declared, DeclaredNs, Drift, DriftKind, Names, RuntimeInfo};
use crate::model::{ContainerRef, NsType, Runtime};
use safefs::{ErrorKind, ReadError, SafeDir};

/// Bundles and runtime state files larger than this are refused. Real ones are tens of
/// KiB (a seccomp profile is the bulk); a few MiB leaves room for big ones.
pub const MAX_FILE: u64 = 4 << 20;

/// Longest name kept: Kubernetes names are at most 253 bytes (DNS subdomain).
const MAX_NAME: usize = 253;

/// Where each runtime keeps its state, relative to the host's root. Each is resolved
/// under `--path.rootfs` the way the host would resolve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locations {
    /// containerd's v2 task state: `<dir>/<namespace>/<id>/config.json`.
    pub containerd: PathBuf,
    /// CRI-O's run root: `<dir>/overlay-containers/<id>/userdata/config.json`.
    pub crio: PathBuf,
    /// Docker's data root: `<dir>/containers/<id>/{config.v2.json,hostconfig.json}`.
    pub docker: PathBuf,
    /// Podman's (rootful) graph root: `<dir>/overlay-containers/<id>/userdata/config.json`
    /// and `<dir>/libpod/bolt_state.db`.
    pub podman: PathBuf,
}

impl Default for Locations {
    fn default() -> Self {
        Locations {
            containerd: "/run/containerd/io.containerd.runtime.v2.task".into(),
            crio: "/run/containers/storage".into(),
            docker: "/var/lib/docker".into(),
            podman: "/var/lib/containers/storage".into(),
        }
    }
}

impl Locations {
    pub fn of(&self, r: Runtime) -> &Path {
        match r {
            Runtime::Containerd => &self.containerd,
            Runtime::CriO => &self.crio,
            Runtime::Docker => &self.docker,
            Runtime::Podman => &self.podman,
        }
    }
}

/// Reads runtime files under a root.
#[derive(Debug, Clone)]
pub struct Reader {
    /// The host's root (`--path.rootfs`): `/`, or `/host/root` in a pod.
    pub rootfs: PathBuf,
    /// The host's procfs (`--path.procfs`), for joins given as `/proc/<pid>/ns/<type>`.
    pub procfs: PathBuf,
    pub locations: Locations,
}

/// The outcome of reading one container's files: what could be learnt, and what failed.
#[derive(Debug, Default)]
pub struct Lookup {
    pub info: RuntimeInfo,
    pub errors: Vec<ReadError>,
}

impl Lookup {
    fn fail(e: ReadError) -> Lookup {
        Lookup {
            info: RuntimeInfo::default(),
            errors: vec![e],
        }
    }

    /// Whether a later read may succeed where this one failed (a locked database).
    pub fn retry(&self) -> bool {
        self.errors.iter().any(|e| e.kind == ErrorKind::Busy)
    }
}

impl Reader {
    pub fn new(
        rootfs: impl Into<PathBuf>,
        procfs: impl Into<PathBuf>,
        locations: Locations,
    ) -> Self {
        Reader {
            rootfs: rootfs.into(),
            procfs: procfs.into(),
            locations,
        }
    }

    /// Read what `c`'s runtime files say. A container in a user's delegated cgroup
    /// subtree (rootless) is not looked up: its ID is the user's own naming and may
    /// copy a real container's, whose names it must not borrow.
    pub fn read(&self, c: &ContainerRef) -> Lookup {
        if c.owner_uid.is_some() || !is_container_id(&c.id) {
            return Lookup::default();
        }
        let root = match SafeDir::open(&self.rootfs) {
            Ok(r) => r,
            Err(e) => return Lookup::fail(ReadError::io("rootfs", &e)),
        };
        let dir = match root.open_dir_in_root(self.locations.of(c.runtime)) {
            Ok(d) => d,
            Err(e) => return Lookup::fail(ReadError::io(state_dir_role(c.runtime), &e)),
        };
        let joins = Joins {
            root: &root,
            procfs: &self.procfs,
        };
        let mut out = match c.runtime {
            Runtime::Containerd => oci::read_containerd(&dir, &c.id, &joins),
            Runtime::CriO => oci::read_crio(&dir, &c.id, &joins),
            Runtime::Docker => docker::read(&dir, &c.id, &joins),
            Runtime::Podman => podman::read(&dir, &c.id, &joins),
        };
        clean_names(&mut out);
        out
    }
}

fn state_dir_role(r: Runtime) -> &'static str {
    match r {
        Runtime::Containerd => "containerd state directory",
        Runtime::CriO => "CRI-O run root",
        Runtime::Docker => "Docker data root",
        Runtime::Podman => "Podman graph root",
    }
}

/// A container ID as runtimes write it: 64 lowercase hex digits, so that it can never
/// name anything but one directory.
pub(crate) fn is_container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Names longer than any Kubernetes name, or holding control characters (which would
/// rewrite a terminal in `report`), are dropped and counted as parse errors.
fn clean_names(out: &mut Lookup) {
    let names = &mut out.info.names;
    for (field, what) in [
        (&mut names.namespace, "namespace name"),
        (&mut names.pod, "pod name"),
        (&mut names.container, "container name"),
    ] {
        if field.len() > MAX_NAME || field.chars().any(char::is_control) {
            field.clear();
            out.errors.push(ReadError::new(
                ErrorKind::Parse,
                "names",
                format!("{what} too long or not printable"),
            ));
        }
    }
}

/// Resolves the `path` of a joined namespace to its inode.
pub(crate) struct Joins<'a> {
    root: &'a SafeDir,
    procfs: &'a Path,
}

impl Joins<'_> {
    /// The inode of the namespace of type `t` at `path`, as the runtime gave it:
    /// `/proc/<pid>/ns/<type>` is read as a link through the host's procfs (opening it
    /// would follow a magic link); any other path must be an nsfs file under the root.
    pub(crate) fn resolve(&self, t: NsType, path: &str) -> Option<u64> {
        if let Some(rest) = path.strip_prefix("/proc/") {
            let mut parts = rest.split('/');
            let (pid, ns, name) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() || ns != "ns" || name != t.name() {
                return None;
            }
            return self.pid_ns(pid.parse().ok()?, t);
        }
        self.root.nsfs_inode_in_root(Path::new(path)).ok()
    }

    /// The inode of `pid`'s namespace of type `t`, read from the host's procfs.
    pub(crate) fn pid_ns(&self, pid: u32, t: NsType) -> Option<u64> {
        if pid == 0 {
            return None;
        }
        let link =
            std::fs::read_link(self.procfs.join(pid.to_string()).join("ns").join(t.name())).ok()?;
        crate::procfs::parse::parse_ns_link(link.as_os_str().as_encoded_bytes(), t).ok()
    }
}

/// Read-error counts by runtime and kind, cumulative.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorCounts(std::collections::BTreeMap<(Runtime, ErrorKind), u64>);

impl ErrorCounts {
    /// Errors of kind `k`, all runtimes together.
    pub fn get(&self, k: ErrorKind) -> u64 {
        self.0
            .iter()
            .filter(|((_, kind), _)| *kind == k)
            .map(|(_, n)| n)
            .sum()
    }

    fn add(&mut self, r: Runtime, k: ErrorKind) {
        *self.0.entry((r, k)).or_default() += 1;
    }

    /// Every (runtime, kind) pair seen, with its count.
    pub fn pairs(&self) -> impl Iterator<Item = (Runtime, ErrorKind, u64)> + '_ {
        self.0.iter().map(|((r, k), n)| (*r, *k, *n))
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// Runtime information per container, read once when the container is first seen and
/// dropped when it is gone. A failed read is remembered too (as nothing known), so a
/// container whose files are unreadable costs one attempt, not one per scan; only a
/// database locked by its writer is tried again.
#[derive(Debug)]
pub struct RuntimeCache {
    reader: Reader,
    entries: HashMap<ContainerRef, Arc<RuntimeInfo>>,
    errors: ErrorCounts,
    reads: u64,
}

impl RuntimeCache {
    pub fn new(reader: Reader) -> Self {
        RuntimeCache {
            reader,
            entries: HashMap::new(),
            errors: ErrorCounts::default(),
            reads: 0,
        }
    }

    /// What `c`'s runtime files say, read now if `c` was not seen before.
    pub fn lookup(&mut self, c: &ContainerRef) -> Arc<RuntimeInfo> {
        if let Some(info) = self.entries.get(c) {
            return info.clone();
        }
        self.reads += 1;
        let out = self.reader.read(c);
        for e in &out.errors {
            self.errors.add(c.runtime, e.kind);
            tracing::debug!(container_id = %c.container_id(), error = %e, "runtime files");
        }
        let retry = out.retry();
        let info = Arc::new(out.info);
        if !retry {
            self.entries.insert(c.clone(), info.clone());
        }
        info
    }

    /// The cached entry for `c`, without reading.
    pub fn get(&self, c: &ContainerRef) -> Option<&Arc<RuntimeInfo>> {
        self.entries.get(c)
    }

    /// Drop the entries of containers for which `live` is false (gone from the node).
    pub fn retain(&mut self, mut live: impl FnMut(&ContainerRef) -> bool) {
        self.entries.retain(|c, _| live(c));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Read errors by runtime and kind since the cache was made.
    pub fn errors(&self) -> &ErrorCounts {
        &self.errors
    }

    /// The same, as (runtime, kind name, count) for a snapshot.
    pub fn error_pairs(&self) -> Vec<(Runtime, &'static str, u64)> {
        self.errors
            .pairs()
            .map(|(r, k, n)| (r, k.name(), n))
            .collect()
    }

    /// Forget every entry (the error counts stay), so that containers are read anew.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// How many times runtime files were read (first sightings, and retries).
    pub fn reads(&self) -> u64 {
        self.reads
    }

    pub fn reader(&self) -> &Reader {
        &self.reader
    }
}

#[cfg(test)]
mod tests;

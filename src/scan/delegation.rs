//! Which containers sit in a cgroup subtree delegated to a user, who may name cgroups
//! as they like there (`docker-<a real container's id>.scope`, `kubepods-…pod<any
//! uid>…`): the owners of the directories above a container's cgroup in the host's
//! cgroup hierarchies (`--path.sysfs`).
//!
//! # How the cgroup tree shows delegation
//! The kernel's model (cgroup-v2.rst, "Model of Delegation"): a cgroup is delegated to a
//! user by giving the user write access to its directory and its `cgroup.procs` (and
//! `cgroup.subtree_control`); the user can then make cgroups below it and move their
//! processes there. systemd does this by `chown` for `Delegate=yes` units that run with
//! `User=` (`user@<uid>.service` is one), in the unified hierarchy and, on hybrid hosts,
//! in `name=systemd`. Only root can make or chown a cgroup elsewhere. So a container's
//! cgroup made by anyone but root has a parent directory, or an ancestor, that belongs
//! to a user other than root; one that root made has none. The container's own
//! directory is not looked at: runtimes chown it to a user-namespaced container's root
//! (so that it can manage its own cgroup), and a cgroup that root made and named stays
//! root's naming whoever owns it later; what the container makes below it is caught,
//! since its own directory is then the parent.
//!
//! systemd also sets the `trusted.delegate` and `user.delegate` extended attributes on a
//! delegated unit's cgroup, but by its own account only as a hint to the payload: it
//! never reads them, they mark only the unit's own cgroup (not what the user makes
//! below), and the delegatee may change `user.delegate`. Ownership is what grants the
//! power, so ownership is what is checked.
//!
//! Each distinct cgroup file is attributed once (the cache in `process.rs`), so these
//! directories are looked at once per container, not per process or scan: one
//! `statfs` of the hierarchy and one `lstat` per level above the container. In a pod
//! with a cgroup namespace of its own, paths are relative to that namespace; its root
//! is found once per hierarchy (see [`Delegation::absolute`]).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};

use crate::cgroup::Origin;
use crate::procfs::parse::parse_cgroup;
use crate::procfs::paths::HostPaths;

/// Who may have named a container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    /// Every directory above it belongs to root: the runtime's own naming.
    System,
    /// A directory above it belongs to this UID (the highest such directory's owner):
    /// a subtree delegated to that user.
    Delegated(u32),
    /// A directory on the path is gone: the cgroup (and its processes) went away while
    /// it was looked at. Not to be remembered for the next process with this path.
    Gone,
    /// The hierarchy cannot be looked at (not mounted under `--path.sysfs`, or the
    /// exporter's own cgroup namespace root not found in it): attributed by its shape
    /// alone, as before, and said so once in the log.
    Unknown,
}

/// The host's cgroup hierarchies, where nsexporter's own cgroup namespace is rooted in
/// each, and whether trouble was already logged.
#[derive(Debug)]
pub(super) struct Delegation {
    paths: HostPaths,
    /// By hierarchy (number and controllers): the path of the reader's cgroup
    /// namespace root in it, empty in the host's namespace; `None` if not found.
    ns_roots: Mutex<HashMap<Hierarchy, Option<Vec<String>>>>,
    warned_missing: AtomicBool,
    warned_relative: AtomicBool,
}

/// A hierarchy as `/proc/<pid>/cgroup` names it: number and controllers.
type Hierarchy = (u32, String);

/// At most this many directories are looked through to find nsexporter's own cgroup.
const MAX_WALK: usize = 100_000;

impl Delegation {
    pub(super) fn new(paths: HostPaths) -> Self {
        Delegation {
            paths,
            ns_roots: Mutex::new(HashMap::new()),
            warned_missing: AtomicBool::new(false),
            warned_relative: AtomicBool::new(false),
        }
    }

    /// Who may have named the container found at `origin`.
    pub(super) fn owner(&self, origin: &Origin<'_>) -> Owner {
        let Some(root) = self.hierarchy(origin) else {
            if !self.warned_missing.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    sysfs = %self.paths.sysfs.display(),
                    hierarchy = origin.line.hierarchy,
                    controllers = origin.line.controllers,
                    "the host's cgroup hierarchy is not mounted under --path.sysfs, so delegated \
                     cgroup subtrees cannot be told apart (containers outside \
                     user@<uid>.service are taken at their path's word); mount the host's \
                     /sys/fs/cgroup there"
                );
            }
            return Owner::Unknown;
        };
        let Some(comps) = self.absolute(&root, origin) else {
            if !self.warned_relative.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    path = origin.parent,
                    "cgroup paths are relative to nsexporter's own cgroup namespace, and its \
                     own cgroup was not found in the host's hierarchy, so delegated subtrees \
                     cannot be told apart (containers outside user@<uid>.service are taken at \
                     their path's word); run nsexporter in the host's cgroup namespace"
                );
            }
            return Owner::Unknown;
        };
        let mut dir = root;
        for c in comps {
            dir.push(c);
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() && m.uid() != 0 => return Owner::Delegated(m.uid()),
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Owner::Gone,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Owner::Gone,
                Err(e) => {
                    tracing::debug!(dir = %dir.display(), error = %e, "cannot look at a cgroup");
                    return Owner::Gone;
                }
            }
        }
        Owner::System
    }

    /// The components of `origin.parent` from the hierarchy's root. `/proc/<pid>/cgroup`
    /// shows paths relative to the *reader's* cgroup namespace (a pod on a cgroup v2
    /// node has one of its own): a cgroup outside it reads `/../../<rest>`, one inside
    /// it `/<rest>`, both from the namespace's root. That root is found once per
    /// hierarchy ([`Self::ns_root`]).
    fn absolute(&self, root: &Path, origin: &Origin<'_>) -> Option<Vec<String>> {
        let comps: Vec<&str> = origin.parent.split('/').filter(|c| !c.is_empty()).collect();
        let up = comps.iter().take_while(|c| **c == "..").count();
        if comps[up..].iter().any(|c| *c == ".." || *c == ".") {
            return None;
        }
        let rest = comps[up..].iter().map(|c| (*c).to_owned());
        let key = (origin.line.hierarchy, origin.line.controllers.to_owned());
        let mut roots = self.ns_roots.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(ns_root) = roots
            .entry(key)
            .or_insert_with(|| self.ns_root(root, origin))
        else {
            // Where the namespace root is unknown, a path that does not go up is taken
            // as the host's (the usual case: nsexporter in the host's namespace).
            return (up == 0).then(|| rest.collect());
        };
        let keep = ns_root.len().checked_sub(up)?;
        Some(ns_root[..keep].iter().cloned().chain(rest).collect())
    }

    /// The path, from the hierarchy's root, of the reader's cgroup namespace root in
    /// the hierarchy of `origin`'s line. Kernel threads sit in every hierarchy's root,
    /// so kthreadd's (PID 2) line reads `/..` once per level of the namespace root:
    /// none in the host's namespace. At that depth, the namespace root is the cgroup
    /// whose `cgroup.procs` (which shows PIDs as the reader sees them) lists the reader.
    fn ns_root(&self, root: &Path, origin: &Origin<'_>) -> Option<Vec<String>> {
        let text = std::fs::read_to_string(self.paths.proc("2/cgroup")).ok()?;
        let lines = parse_cgroup(&text).ok()?;
        let l = lines.iter().find(|l| {
            l.hierarchy == origin.line.hierarchy && l.controllers == origin.line.controllers
        })?;
        let comps: Vec<&str> = l.path.split('/').filter(|c| !c.is_empty()).collect();
        if !comps.iter().all(|c| *c == "..") {
            return None;
        }
        let depth = comps.len();
        if depth == 0 {
            return Some(Vec::new());
        }
        let me = std::process::id().to_string();
        let mut level: Vec<PathBuf> = vec![root.to_path_buf()];
        let mut seen = 0;
        for _ in 0..depth {
            let mut next = Vec::new();
            for d in &level {
                let Ok(entries) = std::fs::read_dir(d) else {
                    continue;
                };
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        seen += 1;
                        if seen > MAX_WALK {
                            return None;
                        }
                        next.push(e.path());
                    }
                }
            }
            level = next;
        }
        let found = level.into_iter().find(|d| {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .is_ok_and(|procs| procs.lines().any(|p| p == me))
        })?;
        let rel = found.strip_prefix(root).ok()?;
        tracing::debug!(hierarchy = l.hierarchy, root = %rel.display(), "nsexporter's cgroup namespace root");
        Some(
            rel.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect(),
        )
    }

    /// Where the hierarchy of `origin`'s line is mounted: for the v2 line the cgroup2
    /// file system at `<sysfs>/fs/cgroup` (unified hosts) or `…/unified` (hybrid); for a
    /// v1 line the cgroup file system named by its controllers (`cpu,cpuacct`,
    /// `systemd` for `name=systemd`). Checked by file system type, so that a directory
    /// of the wrong kind is never taken for a hierarchy.
    fn hierarchy(&self, origin: &Origin<'_>) -> Option<PathBuf> {
        let is = |p: &PathBuf, magic| statfs(p).is_ok_and(|s| s.filesystem_type() == magic);
        if origin.line.is_v2() {
            return [self.paths.cgroup(""), self.paths.cgroup("unified")]
                .into_iter()
                .find(|p| is(p, CGROUP2_SUPER_MAGIC));
        }
        let name = origin.line.controllers;
        let name = name.strip_prefix("name=").unwrap_or(name);
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return None;
        }
        Some(self.paths.cgroup(name)).filter(|p| is(p, CGROUP_SUPER_MAGIC))
    }
}

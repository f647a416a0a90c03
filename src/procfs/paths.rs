//! Where the host's file systems are: every path nsexporter reads is built from here,
//! so tests point it at a fixture tree and a pod points it at the host's /proc, /sys and /.

use std::path::{Path, PathBuf};

/// The exporter's own procfs, where `/proc/self` is this process: the source of the
/// `process_*` metrics, which describe nsexporter itself and so never come from
/// `--path.procfs` (the host's, or a fixture tree).
pub const OWN_PROCFS: &str = "/proc";

/// The roots of the host file systems that nsexporter reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// The host's procfs (`--path.procfs`): `/proc` on the node, `/host/proc` in a pod.
    pub procfs: PathBuf,
    /// The host's sysfs (`--path.sysfs`): `/sys` on the node, `/host/sys` in a pod. Only
    /// its cgroup hierarchies (`fs/cgroup`) are read, for delegated subtrees.
    pub sysfs: PathBuf,
    /// The host's root (`--path.rootfs`): `/` on the node, `/host/root` in a pod, where
    /// the container runtimes' state directories are found.
    pub rootfs: PathBuf,
}

impl HostPaths {
    /// The procfs at `procfs`, the sysfs at `/sys` and the root at `/`.
    pub fn new(procfs: impl Into<PathBuf>) -> Self {
        HostPaths {
            procfs: procfs.into(),
            sysfs: PathBuf::from("/sys"),
            rootfs: PathBuf::from("/"),
        }
    }

    /// The same, with the sysfs at `sysfs`.
    pub fn with_sysfs(mut self, sysfs: impl Into<PathBuf>) -> Self {
        self.sysfs = sysfs.into();
        self
    }

    /// The same, with the host's root at `rootfs`.
    pub fn with_rootfs(mut self, rootfs: impl Into<PathBuf>) -> Self {
        self.rootfs = rootfs.into();
        self
    }

    /// `<sysfs>/fs/cgroup/<rel>`: where the cgroup hierarchies are mounted.
    pub fn cgroup(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.sysfs.join("fs/cgroup").join(rel)
    }

    /// `<procfs>/<rel>`.
    pub fn proc(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.procfs.join(rel)
    }

    /// `<procfs>/sys/user/max_<type>_namespaces`.
    pub fn ns_limit(&self, ns_type: crate::model::NsType) -> PathBuf {
        self.procfs
            .join("sys/user")
            .join(format!("max_{}_namespaces", ns_type.name()))
    }
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths::new("/proc")
    }
}

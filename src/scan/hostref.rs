//! The host reference: which namespaces are the host's (initial) ones, resolved from
//! PID 1, else a kernel thread, else the kernel's fixed initial inodes.

use std::io;

use crate::model::{HostRef, HostSource, NsSet, NsType};
use crate::procfs::fd::{Dir, FileBuf};
use crate::procfs::parse::{parse_ns_link, parse_stat_view};

/// The inodes the kernel gives its initial namespaces (`PROC_*_INIT_INO`). `net` and
/// `mnt` are allocated at boot and have none.
pub const FIXED_INITIAL: [(NsType, u64); 6] = [
    (NsType::Ipc, 4026531839),
    (NsType::Uts, 4026531838),
    (NsType::User, 4026531837),
    (NsType::Pid, 4026531836),
    (NsType::Cgroup, 4026531835),
    (NsType::Time, 4026531834),
];

/// Read every namespace link of `pid`. A missing link (ENOENT on a live process) is a
/// type the kernel lacks and stays `None`; any other error is returned.
pub(crate) fn read_ns_links(proc_dir: &Dir, pid: u32) -> io::Result<NsSet> {
    let dir = proc_dir.open_pid(pid)?;
    read_ns_links_in(&dir)
}

pub(crate) fn read_ns_links_in(dir: &Dir) -> io::Result<NsSet> {
    let mut set = NsSet::default();
    let mut buf = [0u8; 128];
    let mut any = false;
    for t in NsType::ALL {
        match dir.readlink_at(t.link_cstr(), &mut buf) {
            Ok(text) => {
                let inode = parse_ns_link(text, t)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                set.set(t, Some(inode));
                any = true;
            }
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENOENT as i32) => {}
            Err(e) => return Err(e),
        }
    }
    if !any {
        // No link at all: the process is gone (or this is not a process directory).
        return Err(nix::errno::Errno::ENOENT.into());
    }
    Ok(set)
}

fn is_kernel_thread(proc_dir: &Dir, pid: u32, want_comm: Option<&[u8]>) -> bool {
    let Ok(dir) = proc_dir.open_pid(pid) else {
        return false;
    };
    let mut buf = FileBuf::default();
    if dir.read_single_at(c"stat", &mut buf).is_err() {
        return false;
    }
    match parse_stat_view(&buf) {
        Ok(s) => s.kernel_thread && want_comm.is_none_or(|c| s.comm == c),
        Err(_) => false,
    }
}

/// Resolve the host reference. `pids` is the current listing of the procfs, used to
/// find some kernel thread when PID 2 is not `kthreadd`.
pub(crate) fn resolve(proc_dir: &Dir, pids: &[u32]) -> HostRef {
    match read_ns_links(proc_dir, 1) {
        Ok(ns) => {
            return HostRef {
                source: HostSource::Pid1,
                ns,
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "PID 1's namespaces are unreadable; trying a kernel thread")
        }
    }
    let mut candidates = Vec::new();
    if is_kernel_thread(proc_dir, 2, Some(b"kthreadd")) {
        candidates.push(2);
    } else {
        // Kernel threads are children of kthreadd and have low PIDs; a short look is enough.
        candidates.extend(
            pids.iter()
                .copied()
                .filter(|&p| p != 1)
                .take(64)
                .filter(|&p| is_kernel_thread(proc_dir, p, None))
                .take(1),
        );
    }
    for pid in candidates {
        match read_ns_links(proc_dir, pid) {
            Ok(ns) => {
                return HostRef {
                    source: HostSource::Kthread,
                    ns,
                }
            }
            Err(e) => tracing::debug!(pid, error = %e, "kernel thread's namespaces are unreadable"),
        }
    }
    let mut ns = NsSet::default();
    for (t, ino) in FIXED_INITIAL {
        ns.set(t, Some(ino));
    }
    HostRef {
        source: HostSource::Fixed,
        ns,
    }
}

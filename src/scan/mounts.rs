//! The nsfs bind mounts of each mount namespace: how the scan finds namespaces that no
//! process holds (pinned by `ip netns add` and the like).

use std::collections::BTreeMap;

use crate::model::{NsType, ScanErrors};
use crate::procfs::fd::{is_vanished, Dir, FileBuf};
use crate::procfs::parse::parse_mountinfo_nsfs;

use super::process::{count, Proc, ProcError};

/// The nsfs bind mounts of every distinct mount namespace, one mountinfo read each
/// (falling back to another member if the first has exited).
pub(super) fn read_pinned(
    proc_dir: &Dir,
    procs: &[Proc],
    errors: &mut ScanErrors,
) -> BTreeMap<(NsType, u64), Vec<String>> {
    let mut by_mntns: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for p in procs.iter().filter(|p| !p.kernel_thread) {
        if let Some(m) = p.ns.get(NsType::Mnt) {
            let v = by_mntns.entry(m).or_default();
            if v.len() < 3 {
                v.push(p.pid);
            }
        }
    }
    let mut out: BTreeMap<(NsType, u64), Vec<String>> = BTreeMap::new();
    let mut buf = FileBuf::default();
    for pids in by_mntns.values() {
        for (i, &pid) in pids.iter().enumerate() {
            let res = proc_dir
                .open_pid(pid)
                .and_then(|d| d.read_at(c"mountinfo", &mut buf));
            match res {
                Ok(()) => {
                    let text = String::from_utf8_lossy(&buf);
                    let (mounts, bad) = parse_mountinfo_nsfs(&text);
                    errors.parse += bad;
                    for m in mounts {
                        let v = out.entry((m.ns_type, m.inode)).or_default();
                        if !v.contains(&m.mount_point) {
                            v.push(m.mount_point);
                        }
                    }
                    break;
                }
                Err(e) if is_vanished(&e) && i + 1 < pids.len() => continue,
                Err(e) => {
                    count(errors, ProcError::from(e), "mountinfo", pid);
                    break;
                }
            }
        }
    }
    out
}

//! Folding one scan's processes, pinned namespaces and uid_maps into the node's
//! [`Snapshot`], with the namespace limits.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Instant, SystemTime};

use crate::model::{
    ContainerRef, ContainerSummary, NsCount, NsType, PinnedNs, RootMapping, ScanErrors, Snapshot,
    UidMap, Visibility,
};
use crate::procfs::parse;
use crate::procfs::paths::HostPaths;

use super::process::{sanitize_comm, Proc};

/// Read `/proc/sys/user/max_<type>_namespaces` for every type.
pub(super) fn read_limits(paths: &HostPaths) -> [Option<u64>; 8] {
    let mut out = [None; 8];
    for t in NsType::ALL {
        out[t.index()] = std::fs::read_to_string(paths.ns_limit(t))
            .ok()
            .and_then(|s| parse::parse_sysctl_u64(&s));
    }
    out
}

#[allow(clippy::too_many_arguments)]
pub(super) fn summarise(
    paths: &HostPaths,
    procs: &[Proc],
    pinned_mounts: BTreeMap<(NsType, u64), Vec<String>>,
    host: crate::model::HostRef,
    uid_maps: &HashMap<u64, UidMap>,
    errors: ScanErrors,
    visibility: Visibility,
    taken_at: SystemTime,
    started: Instant,
) -> Snapshot {
    let mut held: [HashSet<u64>; 8] = Default::default();
    let mut host_ns_processes = [0u64; 8];
    let mut supported = [false; 8];
    for t in NsType::ALL {
        supported[t.index()] = host.ns.get(t).is_some();
    }
    let mut containers: BTreeMap<ContainerRef, ContainerSummary> = BTreeMap::new();
    let mut processes = 0u64;
    for p in procs {
        for t in NsType::ALL {
            if let Some(ino) = p.ns.get(t) {
                held[t.index()].insert(ino);
                supported[t.index()] = true;
            }
        }
        // A kernel thread is not a workload and not counted as a process, but the
        // namespaces it holds are alive (kdevtmpfs has a mount namespace of its own).
        if p.kernel_thread {
            continue;
        }
        processes += 1;
        let ns = p.ns.to_set();
        for t in NsType::ALL {
            if ns.shares(&host.ns, t) {
                host_ns_processes[t.index()] += 1;
            }
        }
        let Some(c) = p.container() else { continue };
        let map = ns.get(NsType::User).and_then(|u| uid_maps.get(&u));
        // Look up before inserting, so only a new container costs a key clone.
        let s = match containers.get_mut(c) {
            Some(s) => s,
            None => containers.entry(c.clone()).or_insert(ContainerSummary {
                container: c.clone(),
                processes: 0,
                main_pid: p.pid,
                main_start_time: p.start_time,
                comm: sanitize_comm(p.comm.as_bytes()),
                main_ns: ns,
                host_ns_processes: [0; 8],
                host_root_processes: 0,
                root: RootMapping::classify(p.host_euid, map),
                uid_map: map.cloned(),
                runtime_info: Default::default(),
            }),
        };
        s.processes += 1;
        if (p.start_time, p.pid) < (s.main_start_time, s.main_pid) {
            s.main_pid = p.pid;
            s.main_start_time = p.start_time;
            s.comm = sanitize_comm(p.comm.as_bytes());
            s.main_ns = ns;
            s.root = RootMapping::classify(p.host_euid, map);
            s.uid_map = map.cloned();
        }
        for t in NsType::ALL {
            if ns.shares(&host.ns, t) {
                s.host_ns_processes[t.index()] += 1;
            }
        }
        if p.host_euid == 0 {
            s.host_root_processes += 1;
        }
    }
    let mut counts = [NsCount::default(); 8];
    let mut pinned = Vec::new();
    for t in NsType::ALL {
        counts[t.index()].total = held[t.index()].len() as u64;
    }
    for ((t, ino), mount_points) in pinned_mounts {
        supported[t.index()] = true;
        if !held[t.index()].contains(&ino) {
            counts[t.index()].total += 1;
            counts[t.index()].pinned += 1;
            pinned.push(PinnedNs {
                ns_type: t,
                inode: ino,
                mount_points,
            });
        }
    }
    let reader_in_child_userns = std::fs::read_to_string(paths.proc("self/uid_map"))
        .ok()
        .and_then(|s| parse::parse_uid_map(&s).ok())
        .is_some_and(|m| !m.is_identity_full());
    Snapshot {
        taken_at,
        duration: started.elapsed(),
        supported: NsType::ALL
            .into_iter()
            .filter(|t| supported[t.index()])
            .collect(),
        processes,
        counts,
        limits: read_limits(paths),
        host_ns_processes,
        containers,
        pinned,
        errors,
        host,
        reader_in_child_userns,
        visibility,
        runtime_read_errors: Vec::new(),
    }
}

//! Processes read one at a time, right after their exec (`--scan.events`), through the
//! scan's own per-process read, and folded into the latest scan's state.
//!
//! The events thread owns an [`ExecReader`] and reads each exec'd process at once (a
//! process that lives 200 ms must be read while it lives). The sampler then folds a
//! batch of them, and the exits, into the [`Scanner`] with [`Scanner::fold`]: each
//! replaces what the latest scan had at its PID, each exit removes its process, and the
//! node is summarised again. The next scan starts from that state as from any other:
//! a folded process was read exactly as a scan reads one (its `schedstat` baseline
//! before its UID and links), so the same reuse proof holds for it.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use super::delegation::Delegation;
use super::hostref::{self, FIXED_INITIAL};
use super::process::{read_container_proc, CgroupCache, Ctx, Found, Proc, Worker};
use super::summary::summarise;
use super::{read_uid_map, Scanner};
use crate::events::ledger::runtime_setup;
use crate::model::{NsType, ProcRecord, Runtime, ScanErrors, Snapshot, UidMap};
use crate::procfs::fd::Dir;

/// More distinct cgroup contents than this, and the reader's own attribution cache
/// starts over: memory stays bounded on a node that makes cgroups without end.
const CGROUP_CACHE_MAX: usize = 4096;

/// Reads one process at a time with the scan's code: identity, UID, namespace links,
/// cgroup attribution, and the uid_map of a user namespace other than the host's.
#[derive(Debug)]
pub struct ExecReader {
    proc_dir: Dir,
    default_runtime: Runtime,
    cgroups: Mutex<CgroupCache>,
    /// Who owns the cgroups above a container's: the scan's own check, for a new one.
    delegation: Delegation,
    procfs: bool,
    w: Worker,
    /// The namespace types this kernel has (the reader's own links).
    kernel_types: Vec<NsType>,
}

/// One process as read right after its exec, ready to be folded.
#[derive(Debug)]
pub struct Fresh {
    pid: u32,
    /// `None` for a process in no container: only its cgroup was read (the periodic
    /// scan, not events, keeps host processes).
    proc: Option<Proc>,
    uid_map: Option<UidMap>,
}

impl Fresh {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The record a scan would make of it; `None` for a process in no container.
    pub fn record(&self) -> Option<ProcRecord> {
        self.proc.as_ref().map(Proc::record)
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

impl ExecReader {
    /// Open the host procfs of `opts` once, for every later read.
    pub fn new(opts: &super::ScanOptions) -> io::Result<Self> {
        let proc_dir = Dir::open(&opts.paths.procfs)?;
        let procfs = proc_dir.is_procfs();
        let own = hostref::read_ns_links_in(&Dir::open(std::path::Path::new("/proc/self"))?)?;
        let kernel_types = NsType::ALL
            .into_iter()
            .filter(|t| own.get(*t).is_some())
            .collect();
        Ok(ExecReader {
            proc_dir,
            default_runtime: opts.default_runtime,
            cgroups: Mutex::new(HashMap::new()),
            delegation: Delegation::new(opts.paths.clone()),
            procfs,
            w: Worker::default(),
            kernel_types,
        })
    }

    /// Read `pid` now. `None` when it is gone already, a kernel thread, or unreadable
    /// (the next scan counts such errors; an event does not).
    pub fn read(&mut self, pid: u32) -> Option<Fresh> {
        {
            let mut c = self.cgroups.lock().unwrap_or_else(PoisonError::into_inner);
            if c.len() > CGROUP_CACHE_MAX {
                c.clear();
            }
        }
        let ctx = Ctx {
            proc_dir: &self.proc_dir,
            default_runtime: self.default_runtime,
            cgroups: &self.cgroups,
            delegation: &self.delegation,
            procfs: self.procfs,
            quick: false,
            baseline: false,
            kernel_types: Some(NsType::ALL.map(|t| self.kernel_types.contains(&t))),
            tasks: true,
        };
        let proc = match read_container_proc(&ctx, pid, &mut self.w) {
            Ok(Found::Read(p)) if !p.kernel_thread => p,
            Ok(Found::Host) => {
                return Some(Fresh {
                    pid,
                    proc: None,
                    uid_map: None,
                })
            }
            _ => return None,
        };
        // A process that exits while its links are read loses the rest of them (ENOENT,
        // which a scan takes for a type the kernel lacks). Right after an exec that is
        // the common case for a short-lived process: such a read is a process gone, not
        // one in fewer namespaces.
        if self.kernel_types.iter().any(|t| proc.ns.get(*t).is_none()) {
            return None;
        }
        // The uid_map tells a remapped root from host root; only a container process
        // in a user namespace of its own needs it.
        let initial_user = FIXED_INITIAL
            .iter()
            .find(|(t, _)| *t == NsType::User)
            .map(|f| f.1);
        let own_userns = proc
            .ns
            .get(NsType::User)
            .is_some_and(|u| Some(u) != initial_user);
        let uid_map = if own_userns && proc.container().is_some() {
            read_uid_map(&self.proc_dir, pid, &mut self.w.file)
                .ok()
                .filter(|m| !m.0.is_empty())
        } else {
            None
        };
        Some(Fresh {
            pid,
            proc: Some(proc),
            uid_map,
        })
    }
}

/// What a batch of changes makes of one PID.
enum Slot {
    /// This process, as read after its exec.
    New(Proc),
    /// No process of interest: exited, or not yet one to count.
    Gone,
    /// A host process exec'd: whatever the latest scan found there stays, if it was not
    /// a container's.
    Host,
}

/// One change to fold, at the kernel's time of the event.
// An exec carries the process it read; exits are small. Boxing it would allocate once
// per exec on the hot path, for batches that live a few hundred milliseconds.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Change {
    /// A process read after its exec.
    Exec(Fresh),
    /// A process (thread-group leader) exited.
    Exit(u32),
}

impl Scanner {
    /// Fold `changes` (in the kernel's order: `(timestamp_ns, change)`) into the latest
    /// scan's state and summarise the node again. Returns the snapshot, with the latest
    /// scan's time and duration, and the records of the exec'd container processes
    /// folded in. `None` before the first scan: it will read everything anyway. An
    /// exec'd process that is the OCI runtime setting a container up is not folded in
    /// as that container's.
    pub fn fold(&mut self, mut changes: Vec<(u64, Change)>) -> Option<(Snapshot, Vec<ProcRecord>)> {
        let last = self.last.clone()?;
        let started = Instant::now();
        changes.sort_by_key(|(ts, _)| *ts);
        // The last change of each PID wins: an exit after an exec removes it, a new
        // exec after an exit (a reused PID) puts the new process in.
        let mut by_pid: BTreeMap<u32, Slot> = BTreeMap::new();
        let mut records = Vec::new();
        for (_, c) in changes {
            match c {
                Change::Exec(Fresh {
                    pid, proc: None, ..
                }) => {
                    // A host process: what a scan found at this PID stays, unless that
                    // is gone (an exit before, the PID reused) or was a container's.
                    let slot = by_pid.entry(pid).or_insert(Slot::Host);
                    if let Slot::New(_) = slot {
                        *slot = Slot::Gone;
                    }
                }
                Change::Exec(Fresh {
                    pid,
                    proc: Some(proc),
                    uid_map,
                }) => {
                    if proc.container().is_some() {
                        let r = proc.record();
                        if runtime_setup(&r.comm, r.ns.shares(&last.host.ns, NsType::Mnt)) {
                            // The runtime, not yet the container (see `runtime_setup`):
                            // left out until the exec that makes it the container's,
                            // or the next scan, shows what it became.
                            by_pid.insert(pid, Slot::Gone);
                            continue;
                        }
                        records.push(r);
                    }
                    if let (Some(userns), Some(map)) = (proc.ns.get(NsType::User), uid_map) {
                        self.uid_maps.entry(userns).or_insert(map);
                    }
                    by_pid.insert(pid, Slot::New(proc));
                }
                Change::Exit(pid) => {
                    by_pid.insert(pid, Slot::Gone);
                }
            }
        }
        // One merge of two PID-sorted lists.
        let old = std::mem::take(&mut self.procs);
        let mut merged = Vec::with_capacity(old.len() + by_pid.len());
        let mut changes = by_pid.into_iter().peekable();
        for p in old {
            while let Some((pid, _)) = changes.peek() {
                if *pid >= p.pid {
                    break;
                }
                if let Some((_, Slot::New(n))) = changes.next() {
                    merged.push(n);
                }
            }
            match changes.peek() {
                Some((pid, _)) if *pid == p.pid => match changes.next() {
                    Some((_, Slot::New(n))) => merged.push(n),
                    // An exit of a kernel thread is not news to anyone: keep it.
                    _ if p.kernel_thread => merged.push(p),
                    Some((_, Slot::Host)) if p.container().is_none() => merged.push(p),
                    _ => {}
                },
                _ => merged.push(p),
            }
        }
        merged.extend(changes.filter_map(|(_, n)| match n {
            Slot::New(n) => Some(n),
            _ => None,
        }));
        self.procs = merged;
        let mut snap = summarise(
            last.node,
            &self.procs,
            last.pinned,
            last.host,
            &self.uid_maps,
            ScanErrors::default(),
            last.visibility,
            last.taken_at,
            started,
        );
        snap.duration = last.duration;
        self.attach_runtime(&mut snap);
        super::summary::find_escapes(&self.procs, &mut snap);
        Some((snap, records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host process's exec is read by its cgroup alone and leaves the scan's record
    /// of it in place; an exit before it (a reused PID) still removes the old one; a
    /// container process's exec is read whole and counted.
    #[test]
    fn host_execs_keep_the_scans_record_and_exits_still_remove() {
        let (_dir, opts) = crate::scan::fixture_with_time_links();
        let mut reader = ExecReader::new(&opts).unwrap();
        let mut scanner = Scanner::new(opts);
        let first = scanner.scan().unwrap();
        let fresh: Vec<Fresh> = (1..1000).filter_map(|p| reader.read(p)).collect();
        let host = fresh
            .iter()
            .find(|f| f.record().is_none())
            .map(Fresh::pid)
            .expect("a host process in the fixture tree");
        let container = fresh
            .iter()
            .find(|f| f.record().is_some_and(|r| r.comm != "runc"))
            .map(Fresh::pid)
            .expect("a container process in the fixture tree");

        let (snap, records) = scanner
            .fold(vec![(1, Change::Exec(reader.read(host).unwrap()))])
            .unwrap();
        assert_eq!(
            snap.processes, first.processes,
            "a host exec dropped a process"
        );
        assert!(records.is_empty());

        let (snap, _) = scanner
            .fold(vec![
                (1, Change::Exit(host)),
                (2, Change::Exec(reader.read(host).unwrap())),
            ])
            .unwrap();
        assert_eq!(
            snap.processes,
            first.processes - 1,
            "an exit followed by a host exec at the same PID kept the old process"
        );

        let (_, records) = scanner
            .fold(vec![(3, Change::Exec(reader.read(container).unwrap()))])
            .unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].pid, container);
    }
}

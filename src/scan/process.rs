//! The per-process read: one process's namespaces, host-view UID and cgroup, and the
//! reuse of what a previous scan read when the process provably has not changed it.
//!
//! # What a scan re-reads, and why that is never stale
//! A cold read of one process is `openat /proc/<pid>`, one `read` each of `stat`
//! (identity: PID and start time; `comm`; state; thread count) and `schedstat`, an
//! `fstat` of the PID directory, eight `readlinkat` on `ns/*`, one `read` of `cgroup`
//! and `close`: 20 syscalls. The UID costs no file: procfs makes the PID directory
//! itself always belong to the task's effective UID (`task_dump_owner`), so `fstat`
//! gives it, with the directory's inode number and change time, which identify the
//! directory instance (procfs makes a new one for every process that takes the PID). A
//! tree that is not a procfs (the test fixtures) has its UIDs read from `status`.
//!
//! The scanner keeps every process it read and, on the next scan, skips the links (and
//! the UID) of a process that *cannot have changed them since*:
//!
//! - Only the task itself changes its namespaces (`setns`, `unshare`, `execve` entering
//!   a time namespace) and its credentials (`setuid` and friends); nothing moves another
//!   task. `/proc/<pid>/ns` and the UID are the thread-group leader's, so only the
//!   leader's own execution matters, and `schedstat` is the leader's own.
//! - `schedstat` gives the task's CPU time in nanoseconds and how many times it was
//!   switched in. A task that executed anything after `schedstat` was read was either
//!   off the CPU then, and has been switched in since; or on it, and its CPU time has
//!   grown since, accounted at the latest when it was switched out or at the next tick
//!   (ticks, or on a `nohz_full` CPU the remote tick, run at least once a second).
//!   Status counters would not do: a task shows `S` while still on the CPU on its way
//!   to sleep, before its voluntary switch is counted.
//! - So `schedstat` is read *before* the UID and the links. On the next scan `stat` and
//!   `schedstat` are read again: the same identity, CPU time and switch count, and a
//!   task that is not running now prove the UID and links read last time are still the
//!   ones now. The group's minor fault count (`stat` field 10, read before the
//!   baseline) is compared too, so an `execve` from another thread (which makes that
//!   thread the leader, keeping PID and start time) is caught even in a tie: an exec
//!   always faults. A kernel without schedstat (or one that reports zeros) gets no reuse.
//! - When that check passes and `stat` showed one thread, the process is *proven
//!   alone*: `stat` was read between the baseline and the check that found the leader
//!   idle throughout, so the leader was then the group's only thread, and a new thread
//!   can only be made by a thread of the group. While the leader stays idle, nothing in
//!   the group runs: no `execve`, no rename (only the group may write its `comm`). The
//!   next scan then skips `stat` too for such a process: `fstat` of the directory (the
//!   same inode number and change time: the same process, not a new one with the PID;
//!   and the UID, fresh) and `schedstat` (the same figures: still idle) suffice, if that
//!   scan starts at least [`IDLE_GAP`](super::IDLE_GAP) after the last one ended, so that a task on a
//!   CPU all along must show more CPU time (the check that reads `stat` also looks at the
//!   state letter, and needs no gap). A warm read of a lone idle process is thus 9
//!   syscalls (`fstat`, `schedstat`, `cgroup`); of any other unchanged process 11
//!   (`stat`, `schedstat`, `cgroup`); neither allocates.
//!
//! The cgroup can change without the task running (runc writes the PID into
//! `cgroup.procs`), so `cgroup` is read on every scan, but parsed and attributed once
//! per distinct content: the raw bytes are compared with the ones cached for the
//! process, and attributions are shared by content across processes. The uid_map is
//! read once per user namespace, and only once it is written (an empty map can still be
//! written). `tests/cache.rs` and `tests/threads.rs` prove it on the real kernel.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use crate::cgroup::{attribute_with_origin, Attribution};
use crate::model::{ContainerRef, NsSet, NsType, ProcRecord, Runtime, ScanErrors};
use crate::procfs::fd::{is_permission, is_vanished, Dir, DirId, FileBuf};
use crate::procfs::parse::{
    self, parse_cgroup, parse_schedstat, parse_stat_view, parse_status_euid,
};

use super::delegation::{Delegation, Owner};
use super::hostref;

/// Why one process was not recorded.
pub(super) enum ProcError {
    Vanished,
    Permission,
    Parse(parse::ParseError),
    Io(io::Error),
}

impl From<io::Error> for ProcError {
    fn from(e: io::Error) -> Self {
        if is_vanished(&e) {
            ProcError::Vanished
        } else if is_permission(&e) {
            ProcError::Permission
        } else if e.kind() == io::ErrorKind::InvalidData {
            // A parse error carried through io (ns links), or a file over the size cap.
            ProcError::Parse(
                match e
                    .get_ref()
                    .and_then(|i| i.downcast_ref::<parse::ParseError>())
                {
                    Some(p) => p.clone(),
                    None => parse::ParseError::Unusable(e.to_string()),
                },
            )
        } else {
            ProcError::Io(e)
        }
    }
}

impl From<parse::ParseError> for ProcError {
    fn from(e: parse::ParseError) -> Self {
        ProcError::Parse(e)
    }
}

/// The namespace inodes of a process, 0 where the kernel has no such type (nsfs never
/// hands out inode 0): half the size of an [`NsSet`], for the per-process cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Inodes([u64; 8]);

impl Inodes {
    fn from_set(s: &NsSet) -> Self {
        Inodes(s.0.map(|i| i.unwrap_or(0)))
    }

    pub(super) fn to_set(self) -> NsSet {
        NsSet(self.0.map(|i| (i != 0).then_some(i)))
    }

    pub(super) fn get(&self, t: NsType) -> Option<u64> {
        let i = self.0[t.index()];
        (i != 0).then_some(i)
    }
}

/// `comm` as the kernel gave it, inline: the kernel caps a task's comm at 15 bytes
/// (kernel threads' longer names are never reported), so no process costs an
/// allocation for it. Sanitized only for the few processes that name a container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Comm {
    len: u8,
    bytes: [u8; 23],
}

impl Comm {
    fn new(raw: &[u8]) -> Self {
        let mut c = Comm::default();
        let n = raw.len().min(c.bytes.len());
        c.bytes[..n].copy_from_slice(&raw[..n]);
        c.len = n as u8;
        c
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// What `/proc/<pid>/schedstat` and the fault count said when the UID and links were
/// read: the task's CPU time to the nanosecond and how often it was switched in. If both
/// are the same now, it has executed nothing since (see the module docs). The counts are
/// kept modulo 2^32: a change is what matters, and 2^32 switches or faults between two
/// scans cannot happen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Activity {
    runtime: u64,
    pcount: u32,
    minflt: u32,
}

/// One attribution per distinct `/proc/<pid>/cgroup` content, shared by every process
/// with that content (all processes of a container, all of a service).
#[derive(Debug)]
pub(super) struct CgroupEntry {
    raw: Box<[u8]>,
    container: Option<ContainerRef>,
    /// The content did not parse: counted as a parse error on every scan that meets it.
    unparseable: bool,
}

pub(super) type CgroupCache = HashMap<Box<[u8]>, Arc<CgroupEntry>>;

/// One process (or kernel thread) as a scan saw it; kept until the next scan, which
/// reuses its namespaces when it provably has not changed them.
#[derive(Debug, Clone)]
pub(super) struct Proc {
    pub(super) pid: u32,
    /// Host-view effective UID (fresh on every scan).
    pub(super) host_euid: u32,
    /// stat field 22: with `pid`, the identity.
    pub(super) start_time: u64,
    /// `None` when the counters could not be read: the links are then always re-read.
    activity: Option<Activity>,
    /// The `/proc/<pid>` directory instance the UID and links were read through (`None`
    /// on a fixture tree, which is not a procfs).
    dir_id: Option<DirId>,
    /// Proven alone in its thread group and idle since `activity` was read: the next
    /// scan may confirm it from `schedstat` and the directory identity alone.
    pub(super) alone: bool,
    pub(super) kernel_thread: bool,
    /// This scan took `ns` from the previous one.
    pub(super) reused: bool,
    /// ... and confirmed it without reading `stat`.
    pub(super) quick: bool,
    pub(super) comm: Comm,
    pub(super) ns: Inodes,
    /// `None` for kernel threads and when the cgroup file could not be read.
    cgroup: Option<Arc<CgroupEntry>>,
}

impl Proc {
    pub(super) fn container(&self) -> Option<&ContainerRef> {
        self.cgroup.as_ref().and_then(|c| c.container.as_ref())
    }

    pub(super) fn record(&self) -> ProcRecord {
        ProcRecord {
            pid: self.pid,
            start_time: self.start_time,
            comm: sanitize_comm(self.comm.as_bytes()),
            ns: self.ns.to_set(),
            host_euid: self.host_euid,
            container: self.container().cloned(),
        }
    }
}

/// What one worker needs besides its PIDs.
pub(super) struct Ctx<'a> {
    pub(super) proc_dir: &'a Dir,
    pub(super) default_runtime: Runtime,
    pub(super) cgroups: &'a Mutex<CgroupCache>,
    /// Who owns the cgroups above a container's: a delegated subtree is marked.
    pub(super) delegation: &'a Delegation,
    /// `proc_dir` is a procfs: UIDs and identities come from `fstat` of the PID
    /// directory (a fixture tree has `status` files instead).
    pub(super) procfs: bool,
    /// This scan started long enough after the last one for the quick check.
    pub(super) quick: bool,
}

/// Per-worker state: reusable buffers (so a scan does not allocate per file), errors
/// and counts.
#[derive(Default)]
pub(super) struct Worker {
    pub(super) file: FileBuf,
    pub(super) errors: ScanErrors,
    pub(super) read: u64,
    pub(super) reused: u64,
    pub(super) quick: u64,
    /// Tasks seen: the thread counts of the processes whose `stat` could be read (a lone
    /// process confirmed without it is one), for [`crate::model::Visibility`].
    pub(super) tasks: u64,
}

pub(super) fn count(errors: &mut ScanErrors, e: ProcError, what: &str, pid: u32) {
    match e {
        ProcError::Vanished => {
            errors.vanished += 1;
            tracing::debug!(pid, what, "process exited while it was read");
        }
        ProcError::Permission => {
            errors.permission += 1;
            tracing::debug!(pid, what, "permission denied");
        }
        ProcError::Parse(err) => {
            errors.parse += 1;
            tracing::debug!(pid, what, error = %err, "unparseable /proc content");
        }
        ProcError::Io(err) => {
            errors.io += 1;
            tracing::debug!(pid, what, error = %err, "read error");
        }
    }
}

/// Read `pids` (sorted) into `out`, reusing what `prev` (sorted by PID) still proves.
pub(super) fn read_many(
    ctx: &Ctx<'_>,
    pids: &[u32],
    prev: &[Proc],
    out: &mut Vec<Proc>,
    w: &mut Worker,
) {
    let mut cursor = pids
        .first()
        .map_or(0, |&first| prev.partition_point(|p| p.pid < first));
    for &pid in pids {
        while cursor < prev.len() && prev[cursor].pid < pid {
            cursor += 1;
        }
        let before = prev.get(cursor).filter(|p| p.pid == pid);
        match read_proc(ctx, pid, before, w) {
            Ok(p) => out.push(p),
            // Kernel threads' namespaces only add to the counts: an error there only
            // means this thread's namespaces go uncounted.
            Err((true, _)) => {}
            Err((false, e)) => count(&mut w.errors, e, "process", pid),
        }
    }
}

/// Read one process or kernel thread; `before` is what the previous scan saw at this
/// PID. The error says whether it was a kernel thread.
pub(super) fn read_proc(
    ctx: &Ctx<'_>,
    pid: u32,
    before: Option<&Proc>,
    w: &mut Worker,
) -> Result<Proc, (bool, ProcError)> {
    let dir = ctx.proc_dir.open_pid(pid).map_err(|e| (false, e.into()))?;
    if ctx.quick {
        if let Some(b) = before.filter(|b| b.alone) {
            match quick_check(ctx, &dir, pid, b, w) {
                Ok(Some(p)) => return Ok(p),
                Ok(None) => {}
                Err(e) => return Err((b.kernel_thread, e)),
            }
        }
    }
    dir.read_single_at(c"stat", &mut w.file)
        .map_err(|e| (false, e.into()))?;
    let stat = parse_stat_view(&w.file).map_err(|e| (false, e.into()))?;
    w.tasks += stat.threads.max(1);
    let kernel_thread = stat.kernel_thread;
    let err = |e: ProcError| (kernel_thread, e);
    let (start_time, state, minflt, threads) =
        (stat.start_time, stat.state, stat.minflt, stat.threads);
    let comm = Comm::new(stat.comm);
    // The baseline must be read before anything it vouches for (UID, links): see the
    // module docs. A kernel without schedstat, or one that reports zeros, gives none.
    let activity = match dir.read_single_at(c"schedstat", &mut w.file) {
        Ok(()) => parse_schedstat(&w.file)
            .filter(|&(runtime, pcount)| runtime > 0 && pcount > 0)
            .map(|(runtime, pcount)| Activity {
                runtime,
                pcount: pcount as u32,
                minflt: minflt as u32,
            }),
        Err(_) => None,
    };
    let unchanged = before.filter(|b| {
        matches!(state, b'S' | b'D' | b'I' | b'T' | b't')
            && activity.is_some()
            && b.activity == activity
            && b.start_time == start_time
            && b.kernel_thread == kernel_thread
    });
    let (host_euid, ns, dir_id) = match unchanged {
        Some(b) => (b.host_euid, b.ns, b.dir_id),
        None => {
            let (host_euid, dir_id) = if ctx.procfs {
                // The UID of a task that died before this call reads as 0; the links
                // read next fail for such a task, so a UID that survives is a live one.
                let st = dir.stat().map_err(|e| err(e.into()))?;
                (if kernel_thread { 0 } else { st.uid }, Some(st.id))
            } else if kernel_thread {
                (0, None)
            } else {
                dir.read_single_at(c"status", &mut w.file)
                    .map_err(|e| err(e.into()))?;
                (parse_status_euid(&w.file).map_err(|e| err(e.into()))?, None)
            };
            let ns = hostref::read_ns_links_in(&dir).map_err(|e| err(e.into()))?;
            (host_euid, Inodes::from_set(&ns), dir_id)
        }
    };
    let reused = unchanged.is_some();
    if reused {
        w.reused += 1;
    } else {
        w.read += 1;
    }
    let cgroup = if kernel_thread {
        None
    } else {
        read_cgroup(ctx, &dir, pid, before, w).map_err(err)?
    };
    Ok(Proc {
        pid,
        host_euid,
        start_time,
        activity,
        dir_id,
        // `stat` was read after the baseline and before the check that found the task
        // idle throughout: it was then the group's only thread, and no other can have
        // been made since without it running (see the module docs).
        alone: reused && threads == 1 && dir_id.is_some(),
        kernel_thread,
        reused,
        quick: false,
        comm,
        ns,
        cgroup,
    })
}

/// The tasks of `pids` that this reader can see: the thread counts in their `stat`
/// files (what a scan counts in [`Worker::tasks`]), for a command that reads one process
/// and must still know whether the procfs hides the others.
pub(super) fn count_tasks(proc_dir: &Dir, pids: &[u32], buf: &mut FileBuf) -> u64 {
    let mut tasks = 0;
    for &pid in pids {
        let Ok(dir) = proc_dir.open_pid(pid) else {
            continue;
        };
        if dir.read_single_at(c"stat", buf).is_ok() {
            if let Ok(s) = parse_stat_view(buf) {
                tasks += s.threads.max(1);
            }
        }
    }
    tasks
}

/// The quick check of a process the previous scan proved alone in its thread group and
/// idle: the same `/proc/<pid>` directory instance, and `schedstat` unchanged, mean it
/// has not run since, so its links and `comm` stand; its UID comes fresh with the
/// identity, its cgroup is read as always. `None` when it has changed (read it whole).
fn quick_check(
    ctx: &Ctx<'_>,
    dir: &Dir,
    pid: u32,
    b: &Proc,
    w: &mut Worker,
) -> Result<Option<Proc>, ProcError> {
    // Any failure here sends the process to the whole read, which reports it.
    let Ok(st) = dir.stat() else {
        return Ok(None);
    };
    if Some(st.id) != b.dir_id {
        return Ok(None);
    }
    // Read after the `fstat`, through the same directory: if it succeeds, the UID above
    // was a live task's.
    if dir.read_single_at(c"schedstat", &mut w.file).is_err() {
        return Ok(None);
    }
    let same = match (parse_schedstat(&w.file), b.activity) {
        (Some((runtime, pcount)), Some(a)) => a.runtime == runtime && a.pcount == pcount as u32,
        _ => false,
    };
    if !same {
        return Ok(None);
    }
    let cgroup = if b.kernel_thread {
        None
    } else {
        read_cgroup(ctx, dir, pid, Some(b), w)?
    };
    w.reused += 1;
    w.quick += 1;
    w.tasks += 1;
    Ok(Some(Proc {
        host_euid: if b.kernel_thread { 0 } else { st.uid },
        reused: true,
        quick: true,
        cgroup,
        ..b.clone()
    }))
}

/// The process's cgroup attribution, read fresh (another process can move it without it
/// running). `None` when the file cannot be used.
fn read_cgroup(
    ctx: &Ctx<'_>,
    dir: &Dir,
    pid: u32,
    before: Option<&Proc>,
    w: &mut Worker,
) -> Result<Option<Arc<CgroupEntry>>, ProcError> {
    match dir.read_single_at(c"cgroup", &mut w.file) {
        Ok(()) => {
            let entry = attribution(ctx, before, &w.file);
            if entry.unparseable {
                w.errors.parse += 1;
                tracing::debug!(pid, "unparseable cgroup file");
            }
            Ok(Some(entry))
        }
        Err(e) if is_vanished(&e) => Err(ProcError::Vanished),
        // A cgroup file that cannot be used does not drop the process: its namespaces
        // and UID still count, only unattributed (a process must not be able to hide
        // from the scan by naming its cgroup oddly).
        Err(e) => {
            count(&mut w.errors, ProcError::from(e), "cgroup", pid);
            Ok(None)
        }
    }
}

/// The attribution of cgroup content `raw`: the process's own from the last scan when
/// the bytes are the same, else the shared one for this content, else a new one.
fn attribution(ctx: &Ctx<'_>, before: Option<&Proc>, raw: &[u8]) -> Arc<CgroupEntry> {
    if let Some(c) = before.and_then(|b| b.cgroup.as_ref()) {
        if *c.raw == *raw {
            return c.clone();
        }
    }
    let mut cache = ctx.cgroups.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(c) = cache.get(raw) {
        return c.clone();
    }
    // Cgroup names may hold any bytes; no container ID is non-UTF-8, so a lossy view
    // (borrowed when the text is valid) attributes exactly as the bytes would.
    let text = String::from_utf8_lossy(raw);
    let mut keep = true;
    let (container, unparseable) = match parse_cgroup(&text) {
        Ok(lines) => match attribute_with_origin(&lines, ctx.default_runtime) {
            (Attribution::Container(mut c), origin) => {
                // Made in a subtree delegated to a user: that user's naming, marked as
                // `user@<uid>.service` subtrees are (see `delegation.rs`).
                if let (None, Some(o)) = (c.owner_uid, origin) {
                    match ctx.delegation.owner(&o) {
                        Owner::Delegated(uid) => {
                            c.owner_uid = Some(uid);
                            c.pod_uid.clear();
                        }
                        Owner::Gone => keep = false,
                        Owner::System | Owner::Unknown => {}
                    }
                }
                (Some(c), false)
            }
            (Attribution::Monitor | Attribution::Host, _) => (None, false),
        },
        Err(_) => (None, true),
    };
    let entry = Arc::new(CgroupEntry {
        raw: raw.into(),
        container,
        unparseable,
    });
    // A cgroup that went away while it was looked at is not remembered: a new one made
    // at the same path must be looked at anew.
    if keep {
        cache.insert(raw.into(), entry.clone());
    }
    entry
}

/// `comm` is up to 15 bytes the process chose itself: keep it printable UTF-8.
pub(super) fn sanitize_comm(raw: &[u8]) -> String {
    String::from_utf8_lossy(&raw[..raw.len().min(64)])
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inodes_round_trip() {
        let mut set = NsSet::default();
        set.set(NsType::Net, Some(4026531840));
        set.set(NsType::User, Some(4026531837));
        assert_eq!(Inodes::from_set(&set).to_set(), set);
        assert_eq!(Inodes::from_set(&set).get(NsType::Time), None);
    }

    #[test]
    fn comm_inline() {
        assert_eq!(Comm::new(b"sleep").as_bytes(), b"sleep");
        assert_eq!(Comm::new(&[b'x'; 40]).as_bytes().len(), 23);
    }
}

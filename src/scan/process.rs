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
//! # Threads: escapes that the leader's links do not show
//! `/proc/<pid>/ns/*` are the leader's links. Any thread may `setns` on its own, and only
//! `task/<tid>/ns/*` show it. For a *container* process with more than one thread (the
//! only processes whose threads can escape the container), every scan lists `task/`
//! and reads each other thread through paths relative to the process's directory:
//! `task/<tid>/stat`, `task/<tid>/schedstat`, then the eight `task/<tid>/ns/*`. The
//! process proof holds per thread, unchanged: only a thread itself changes its own
//! namespaces (`setns` and `unshare` act on the caller alone; an `execve` by another
//! thread ends this one), and its own `schedstat` shows whether it has executed anything
//! since the baseline, which is read before its links. So the same identity (TID and the
//! thread's start time), the same `schedstat` and a state that is not running prove its
//! links unchanged, and a warm read of such a thread is 6 syscalls (`stat`,
//! `schedstat`); a cold one 14. The list is read on every scan (4 syscalls: the
//! directory, two `getdents64`), so a new thread is always found. A TID taken over by a
//! new thread between two of these reads cannot make a stale link pass: the next scan's
//! `stat` shows the new thread's start time.
//!
//! When the leader has ended with `pthread_exit` while other threads run on, it is a
//! zombie that keeps the PID: `stat` shows state `Z`, its `ns/*` links fail with `ENOENT`
//! (all but `user` and `pid`, which it keeps), and its cgroup v1 lines read `/`. A
//! process must not hide its namespaces or its container that way, so a live thread,
//! the first in `task/` whose links are all there, stands for it: its directory gives
//! the UID, the links and the cgroup. A read that lacks a type the kernel has (the host
//! reference says which) is never taken for a kernel without that type: a lone process
//! lost it to its exit and is counted as vanished; a process with threads gets a stand-in;
//! when no thread can be read either, the error is counted. A zombie leader never passes
//! the reuse check (its state is `Z`), so such a process is read again on every scan.
//!
//! The cgroup can change without the task running (runc writes the PID into
//! `cgroup.procs`), so `cgroup` is read on every scan, but parsed and attributed once
//! per distinct content: the raw bytes are compared with the ones cached for the
//! process, and attributions are shared by content across processes. The uid_map is
//! read once per user namespace, and only once it is written (an empty map can still be
//! written). `tests/cache.rs` and `tests/threads.rs` prove it on the real kernel, and
//! `tests/escapes.rs` the thread reads and the stand-in.
//!
//! Why one file of about 890 lines: the per-process read and its proof of reuse (the
//! module docs above), the stand-in thread for an exited leader and the thread reads all
//! share one Ctx and Worker and one order of syscalls; that order is what the proof
//! rests on, so it stays readable top to bottom in one place.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use crate::cgroup::{attribute_with_origin, Attribution};
use crate::model::{ContainerRef, NsSet, NsType, ProcRecord, Runtime, ScanErrors};
use crate::procfs::fd::{is_permission, is_vanished, task_path, Dir, DirId, FileBuf};
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
    /// What its threads say, for a container process with more than one, or a process
    /// whose leader has exited (`None` for all others: no allocation).
    threads: Option<Box<Threads>>,
}

/// The threads of one process, where they matter.
#[derive(Debug, Clone, Default)]
struct Threads {
    /// The thread whose links, UID and cgroup stand for the process, because its leader
    /// has exited while other threads run on (`None`: the leader's own).
    via: Option<u32>,
    /// The threads other than the leader of a container process, sorted by TID.
    tasks: Box<[Task]>,
}

/// One thread of a container process, other than its leader, as a scan read it; kept
/// until the next scan, which reuses its links when it provably has not run since.
#[derive(Debug, Clone)]
pub(super) struct Task {
    pub(super) tid: u32,
    /// Field 22 of the thread's own `stat`: with `tid`, the thread's identity.
    start_time: u64,
    activity: Option<Activity>,
    pub(super) comm: Comm,
    pub(super) ns: Inodes,
    /// This scan took `ns` from the previous one.
    pub(super) reused: bool,
}

impl Proc {
    pub(super) fn container(&self) -> Option<&ContainerRef> {
        self.cgroup.as_ref().and_then(|c| c.container.as_ref())
    }

    /// The thread that stands for the process because its leader has exited.
    pub(super) fn via(&self) -> Option<u32> {
        self.threads.as_ref().and_then(|t| t.via)
    }

    /// Its threads other than the leader, if it is a container process with more than
    /// one (sorted by TID).
    pub(super) fn tasks(&self) -> &[Task] {
        self.threads.as_ref().map_or(&[], |t| &t.tasks)
    }

    pub(super) fn record(&self) -> ProcRecord {
        ProcRecord {
            pid: self.pid,
            start_time: self.start_time,
            comm: sanitize_comm(self.comm.as_bytes()),
            ns: self.ns.to_set(),
            host_euid: self.host_euid,
            container: self.container().cloned(),
            via: self.via(),
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
    /// The namespace types this kernel has, when known (from the host reference): a read
    /// that lacks one lost it to an exit, or to a leader that exited before its threads.
    pub(super) kernel_types: Option<[bool; 8]>,
    /// Read the threads of container processes (a setting only for the benchmarks).
    pub(super) tasks: bool,
    /// Read the `schedstat` baseline that lets the next scan reuse this read. A read
    /// right after an exec does without (three syscalls of about twenty, for each of
    /// hundreds of execs a second): the next scan reads such a process whole, as it
    /// would any process that ran since, and most are gone by then anyway.
    pub(super) baseline: bool,
}

impl Ctx<'_> {
    /// Whether `ns` lacks a type this kernel has.
    fn lacks_types(&self, ns: &Inodes) -> bool {
        self.kernel_types.is_some_and(|k| {
            NsType::ALL
                .iter()
                .any(|t| k[t.index()] && ns.get(*t).is_none())
        })
    }
}

/// The types of `host` that are known: the kernel's, unless the host reference is the
/// fixed fallback (which lacks net and mnt, and cannot tell which types the kernel has).
pub(super) fn kernel_types(host: &crate::model::HostRef) -> Option<[bool; 8]> {
    (host.source != crate::model::HostSource::Fixed)
        .then(|| NsType::ALL.map(|t| host.ns.get(t).is_some()))
}

/// Per-worker state: reusable buffers (so a scan does not allocate per file), errors
/// and counts.
#[derive(Default)]
pub(super) struct Worker {
    pub(super) file: FileBuf,
    /// Directory entries and the TIDs listed from them.
    dents: Vec<u8>,
    tids: Vec<u32>,
    pub(super) errors: ScanErrors,
    pub(super) read: u64,
    pub(super) reused: u64,
    pub(super) quick: u64,
    /// Tasks seen: the thread counts of the processes whose `stat` could be read (a lone
    /// process confirmed without it is one), for [`crate::model::Visibility`].
    pub(super) tasks: u64,
    /// Threads (other than leaders) whose links were read, and those reused.
    pub(super) tasks_read: u64,
    pub(super) tasks_reused: u64,
    /// `task/` directories listed, and processes read through a stand-in thread.
    pub(super) task_lists: u64,
    pub(super) stand_ins: u64,
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
    read_proc_in(ctx, &dir, pid, before, w, None)
}

/// What [`read_container_proc`] found.
pub(super) enum Found {
    /// A process whose cgroup attributes it to no container (read no further).
    Host,
    /// A process attributed to a container, or whose cgroup could not be attributed,
    /// read whole.
    Read(Proc),
}

/// Read `pid` whole only when it is a container's: its cgroup first (one file), the
/// rest (identity, UID, namespace links: about a dozen syscalls) only when the cgroup
/// names a container, or cannot be used (a process must not hide by naming its cgroup
/// oddly). For reads right after an exec, where host processes are most execs of a
/// node and matter only to the periodic scan.
pub(super) fn read_container_proc(
    ctx: &Ctx<'_>,
    pid: u32,
    w: &mut Worker,
) -> Result<Found, (bool, ProcError)> {
    let dir = ctx.proc_dir.open_pid(pid).map_err(|e| (false, e.into()))?;
    let cgroup = read_cgroup(ctx, &dir, pid, None, w).map_err(|e| (false, e))?;
    if cgroup
        .as_ref()
        .is_some_and(|c| c.container.is_none() && !c.unparseable)
    {
        return Ok(Found::Host);
    }
    read_proc_in(ctx, &dir, pid, None, w, Some(cgroup)).map(Found::Read)
}

/// [`read_proc`] through the open PID directory `dir`, with the cgroup attribution
/// already read when `cgroup` is given.
fn read_proc_in(
    ctx: &Ctx<'_>,
    dir: &Dir,
    pid: u32,
    before: Option<&Proc>,
    w: &mut Worker,
    cgroup: Option<Option<Arc<CgroupEntry>>>,
) -> Result<Proc, (bool, ProcError)> {
    if ctx.quick {
        if let Some(b) = before.filter(|b| b.alone) {
            match quick_check(ctx, dir, pid, b, w) {
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
    let activity = match ctx
        .baseline
        .then(|| dir.read_single_at(c"schedstat", &mut w.file))
    {
        Some(Ok(())) => parse_schedstat(&w.file)
            .filter(|&(runtime, pcount)| runtime > 0 && pcount > 0)
            .map(|(runtime, pcount)| Activity {
                runtime,
                pcount: pcount as u32,
                minflt: minflt as u32,
            }),
        Some(Err(_)) | None => None,
    };
    let unchanged = before.filter(|b| {
        matches!(state, b'S' | b'D' | b'I' | b'T' | b't')
            && activity.is_some()
            && b.activity == activity
            && b.start_time == start_time
            && b.kernel_thread == kernel_thread
    });
    // A leader that ended with `pthread_exit` while other threads run on is a zombie
    // that keeps the PID: its links (all but `user` and `pid`) and its cgroup are gone,
    // so a live thread stands for the process (see the module docs).
    let mut stand_in: Option<(u32, Dir)> = None;
    let (host_euid, ns, dir_id) = match unchanged {
        Some(b) => (b.host_euid, b.ns, b.dir_id),
        None => {
            let (host_euid, dir_id) = read_uid(ctx, dir, kernel_thread, w).map_err(err)?;
            let ns = Inodes::from_set(&hostref::read_ns_links_in(dir).map_err(|e| err(e.into()))?);
            let exited = state == b'Z' || ctx.lacks_types(&ns);
            if exited && !kernel_thread {
                if threads < 2 {
                    // Alone and exiting: the rest of its links went with it.
                    return Err(err(ProcError::Vanished));
                }
                let (tid, sub, host_euid, ns) = live_thread(ctx, dir, pid, w).map_err(err)?;
                w.stand_ins += 1;
                stand_in = Some((tid, sub));
                (host_euid, ns, dir_id)
            } else {
                (host_euid, ns, dir_id)
            }
        }
    };
    let reused = unchanged.is_some();
    if reused {
        w.reused += 1;
    } else {
        w.read += 1;
    }
    let cgroup = match cgroup {
        _ if kernel_thread => None,
        // Read first on the exec path, from the leader that exec'd (alive, so its own).
        Some(c) if stand_in.is_none() => c,
        _ => {
            let from = stand_in.as_ref().map_or(dir, |(_, sub)| sub);
            read_cgroup(ctx, from, pid, before, w).map_err(err)?
        }
    };
    let in_container = cgroup.as_ref().is_some_and(|c| c.container.is_some());
    let tasks = if ctx.tasks && in_container && threads > 1 {
        let prev = before.map_or(&[][..], |b| b.tasks());
        match read_tasks(ctx, dir, pid, prev, w) {
            Ok(t) => t,
            Err(ProcError::Vanished) => return Err(err(ProcError::Vanished)),
            // The process itself was read: keep it, and count what its threads hid.
            Err(e) => {
                count(&mut w.errors, e, "threads", pid);
                Box::default()
            }
        }
    } else {
        Box::default()
    };
    let via = stand_in.map(|(tid, _)| tid);
    let others = (via.is_some() || !tasks.is_empty()).then(|| Box::new(Threads { via, tasks }));
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
        threads: others,
    })
}

/// The host-view effective UID of the task whose directory is `dir`, and the directory's
/// identity (on a procfs).
fn read_uid(
    ctx: &Ctx<'_>,
    dir: &Dir,
    kernel_thread: bool,
    w: &mut Worker,
) -> Result<(u32, Option<DirId>), ProcError> {
    if ctx.procfs {
        // The UID of a task that died before this call reads as 0; the links read next
        // fail for such a task, so a UID that survives is a live one.
        let st = dir.stat()?;
        Ok((if kernel_thread { 0 } else { st.uid }, Some(st.id)))
    } else if kernel_thread {
        Ok((0, None))
    } else {
        dir.read_single_at(c"status", &mut w.file)?;
        Ok((parse_status_euid(&w.file)?, None))
    }
}

/// A live thread of process `pid`, other than its exited leader, with its directory,
/// UID and links: the first whose links are all there. When none can be read, the
/// error of the last one tried (a process whose threads all exited meanwhile has
/// vanished).
fn live_thread(
    ctx: &Ctx<'_>,
    dir: &Dir,
    pid: u32,
    w: &mut Worker,
) -> Result<(u32, Dir, u32, Inodes), ProcError> {
    list_tasks(dir, w)?;
    let tids = std::mem::take(&mut w.tids);
    let mut last = ProcError::Vanished;
    let mut path = [0u8; 64];
    for &tid in tids.iter().filter(|&&t| t != pid) {
        let attempt = (|| -> Result<_, ProcError> {
            let sub = dir.open_dir_at(task_path(tid, c"", &mut path))?;
            let (host_euid, _) = read_uid(ctx, &sub, false, w)?;
            let ns = Inodes::from_set(&hostref::read_ns_links_in(&sub)?);
            if ctx.lacks_types(&ns) {
                return Err(ProcError::Vanished);
            }
            Ok((tid, sub, host_euid, ns))
        })();
        match attempt {
            Ok(found) => {
                w.tids = tids;
                return Ok(found);
            }
            Err(e) => last = e,
        }
    }
    w.tids = tids;
    Err(last)
}

/// List `task/` of the process whose directory is `dir` into `w.tids`.
fn list_tasks(dir: &Dir, w: &mut Worker) -> Result<(), ProcError> {
    w.task_lists += 1;
    let task = dir.open_dir_at(c"task")?;
    task.list_numeric(&mut w.dents, &mut w.tids)?;
    w.tids.sort_unstable();
    Ok(())
}

/// The threads of container process `pid` other than its leader, each reusing what
/// `prev` (sorted by TID) still proves. A thread that exits while it is read is left
/// out (it is in no namespace any more); any other error is counted and leaves it out.
fn read_tasks(
    ctx: &Ctx<'_>,
    dir: &Dir,
    pid: u32,
    prev: &[Task],
    w: &mut Worker,
) -> Result<Box<[Task]>, ProcError> {
    list_tasks(dir, w)?;
    let tids = std::mem::take(&mut w.tids);
    let mut out = Vec::with_capacity(tids.len().saturating_sub(1));
    for &tid in tids.iter().filter(|&&t| t != pid) {
        let before = prev
            .binary_search_by_key(&tid, |t| t.tid)
            .ok()
            .map(|i| &prev[i]);
        match read_task(ctx, dir, tid, before, w) {
            Ok(t) => out.push(t),
            Err(ProcError::Vanished) => {}
            Err(e) => count(&mut w.errors, e, "thread", tid),
        }
    }
    w.tids = tids;
    Ok(out.into_boxed_slice())
}

/// Read one thread through paths relative to its process's directory
/// (`task/<tid>/stat`, `.../schedstat`, `.../ns/*`), by the same proof as a process:
/// the same identity (TID and start time), the same `schedstat` and a thread that is not
/// running now mean its links are still those read last time. A TID taken over by a new
/// thread between two of these reads can only make the next scan read it again: its
/// `stat` then shows another start time.
fn read_task(
    ctx: &Ctx<'_>,
    dir: &Dir,
    tid: u32,
    before: Option<&Task>,
    w: &mut Worker,
) -> Result<Task, ProcError> {
    let mut path = [0u8; 64];
    dir.read_single_at(task_path(tid, c"stat", &mut path), &mut w.file)?;
    let stat = parse_stat_view(&w.file)?;
    let (state, start_time, minflt) = (stat.state, stat.start_time, stat.minflt);
    let comm = Comm::new(stat.comm);
    let activity = match dir.read_single_at(task_path(tid, c"schedstat", &mut path), &mut w.file) {
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
    });
    let reused = unchanged.is_some();
    let ns = match unchanged {
        Some(b) => {
            w.tasks_reused += 1;
            b.ns
        }
        None => {
            let ns = Inodes::from_set(&hostref::read_task_ns_links(dir, tid)?);
            // A thread that lacks a type has exited while it was read.
            if ctx.lacks_types(&ns) {
                return Err(ProcError::Vanished);
            }
            w.tasks_read += 1;
            ns
        }
    };
    Ok(Task {
        tid,
        start_time,
        activity,
        comm,
        ns,
        reused,
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

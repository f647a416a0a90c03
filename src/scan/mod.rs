//! The scanner: one pass over the host's /proc that reads every process's namespaces,
//! host-view UID and cgroup, the uid_map of each user namespace and the nsfs mounts of
//! each mount namespace, and folds them into a [`Snapshot`].
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
//!   scan starts at least [`IDLE_GAP`] after the last one ended, so that a task on a
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

pub mod hostref;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::cgroup::{attribute, Attribution};
use crate::model::{
    ContainerRef, ContainerSummary, NsCount, NsSet, NsType, PinnedNs, ProcRecord, RootMapping,
    Runtime, ScanErrors, Snapshot, UidMap,
};
use crate::procfs::fd::{self as procfd, is_permission, is_vanished, Dir, DirId};
use crate::procfs::parse::{self, parse_cgroup, parse_mountinfo_nsfs, parse_status_euid};
use crate::procfs::paths::HostPaths;

/// A scan that could not run at all: the procfs itself is unreadable.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the host procfs at {path}: {source}")]
pub struct ScanError {
    pub path: String,
    #[source]
    pub source: io::Error,
}

/// Scanner settings that do not change between scans.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub paths: HostPaths,
    /// Runtime assumed for bare container IDs under a pod cgroup (the kubelet cgroupfs
    /// driver's paths do not name the runtime).
    pub default_runtime: Runtime,
    /// Worker threads for the per-process reads.
    pub threads: usize,
    /// How long after the end of one scan the next must start for it to confirm a
    /// lone, idle process from `schedstat` alone (see the module docs). Not a setting:
    /// the benchmarks and tests set it to measure or pin each path.
    #[doc(hidden)]
    pub idle_gap: Duration,
}

/// A task on a CPU has its CPU time brought up to date at least once a second, by its
/// own tick or, on a `nohz_full` CPU, by the remote tick; five seconds leave a margin.
pub const IDLE_GAP: Duration = Duration::from_secs(5);

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            paths: HostPaths::default(),
            default_runtime: Runtime::Containerd,
            threads: 1,
            idle_gap: IDLE_GAP,
        }
    }
}

/// What the latest scan cost, for benchmarks and the syscall regression test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Processes and kernel threads whose UID and namespace links were read.
    pub read: u64,
    /// Processes and kernel threads whose UID and namespace links were reused (see the module
    /// docs for why that is safe).
    pub reused: u64,
    /// Of `reused`, those confirmed without reading `stat`: alone in their thread group
    /// and idle (the UID then comes fresh with the identity check).
    pub quick: u64,
    /// Syscalls made by the per-process pass (`read` plus `reused` entries, and those
    /// that failed or vanished).
    pub per_process_syscalls: u64,
    /// Syscalls made through the procfs reader by the whole scan, per-process pass
    /// included (listing, host reference, uid_maps, mountinfo).
    pub syscalls: u64,
}

/// Why one process was not recorded.
enum ProcError {
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
struct Inodes([u64; 8]);

impl Inodes {
    fn from_set(s: &NsSet) -> Self {
        Inodes(s.0.map(|i| i.unwrap_or(0)))
    }

    fn to_set(self) -> NsSet {
        NsSet(self.0.map(|i| (i != 0).then_some(i)))
    }

    fn get(&self, t: NsType) -> Option<u64> {
        let i = self.0[t.index()];
        (i != 0).then_some(i)
    }
}

/// `comm` as the kernel gave it, inline: the kernel caps a task's comm at 15 bytes
/// (kernel threads' longer names are never reported), so no process costs an
/// allocation for it. Sanitized only for the few processes that name a container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Comm {
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

    fn as_bytes(&self) -> &[u8] {
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
struct CgroupEntry {
    raw: Box<[u8]>,
    container: Option<ContainerRef>,
    /// The content did not parse: counted as a parse error on every scan that meets it.
    unparseable: bool,
}

type CgroupCache = HashMap<Box<[u8]>, Arc<CgroupEntry>>;

/// One process (or kernel thread) as a scan saw it; kept until the next scan, which
/// reuses its namespaces when it provably has not changed them.
#[derive(Debug, Clone)]
struct Proc {
    pid: u32,
    /// Host-view effective UID (fresh on every scan).
    host_euid: u32,
    /// stat field 22: with `pid`, the identity.
    start_time: u64,
    /// `None` when the counters could not be read: the links are then always re-read.
    activity: Option<Activity>,
    /// The `/proc/<pid>` directory instance the UID and links were read through (`None`
    /// on a fixture tree, which is not a procfs).
    dir_id: Option<DirId>,
    /// Proven alone in its thread group and idle since `activity` was read: the next
    /// scan may confirm it from `schedstat` and the directory identity alone.
    alone: bool,
    kernel_thread: bool,
    /// This scan took `ns` from the previous one.
    reused: bool,
    /// ... and confirmed it without reading `stat`.
    quick: bool,
    comm: Comm,
    ns: Inodes,
    /// `None` for kernel threads and when the cgroup file could not be read.
    cgroup: Option<Arc<CgroupEntry>>,
}

impl Proc {
    fn container(&self) -> Option<&ContainerRef> {
        self.cgroup.as_ref().and_then(|c| c.container.as_ref())
    }

    fn record(&self) -> ProcRecord {
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
struct Ctx<'a> {
    proc_dir: &'a Dir,
    default_runtime: Runtime,
    cgroups: &'a Mutex<CgroupCache>,
    /// `proc_dir` is a procfs: UIDs and identities come from `fstat` of the PID
    /// directory (a fixture tree has `status` files instead).
    procfs: bool,
    /// This scan started long enough after the last one for the quick check.
    quick: bool,
}

/// Per-worker state: reusable buffers (so a scan does not allocate per file), errors
/// and counts.
#[derive(Default)]
struct Worker {
    file: Vec<u8>,
    errors: ScanErrors,
    read: u64,
    reused: u64,
    quick: u64,
}

/// Holds what survives between scans: every process seen by the latest scan, the
/// cgroup attributions by content, and the uid_map of each user namespace, which the
/// kernel lets be written only once.
#[derive(Debug)]
pub struct Scanner {
    opts: ScanOptions,
    uid_maps: HashMap<u64, UidMap>,
    /// The latest scan's processes, sorted by PID.
    procs: Vec<Proc>,
    /// The buffer the next scan fills (kept for its capacity).
    spare: Vec<Proc>,
    cgroups: Mutex<CgroupCache>,
    stats: ScanStats,
    /// When the latest scan ended.
    last_end: Option<Instant>,
}

impl Scanner {
    pub fn new(opts: ScanOptions) -> Self {
        Scanner {
            opts,
            uid_maps: HashMap::new(),
            procs: Vec::new(),
            spare: Vec::new(),
            cgroups: Mutex::new(HashMap::new()),
            stats: ScanStats::default(),
            last_end: None,
        }
    }

    pub fn options(&self) -> &ScanOptions {
        &self.opts
    }

    /// What the latest scan cost.
    pub fn last_stats(&self) -> ScanStats {
        self.stats
    }

    /// Whether the latest scan took `pid`'s namespaces and UID from the scan before it
    /// instead of reading them; `None` if it did not record `pid`. For tests.
    #[doc(hidden)]
    pub fn reused_links(&self, pid: u32) -> Option<bool> {
        let i = self.procs.binary_search_by_key(&pid, |p| p.pid).ok()?;
        Some(self.procs[i].reused)
    }

    /// Whether the latest scan confirmed `pid` unchanged without reading its `stat`;
    /// `None` if it did not record `pid`. For tests.
    #[doc(hidden)]
    pub fn reused_quickly(&self, pid: u32) -> Option<bool> {
        let i = self.procs.binary_search_by_key(&pid, |p| p.pid).ok()?;
        Some(self.procs[i].quick)
    }

    /// Whether the latest scan found `pid` alone in its thread group and idle, so that
    /// the next one may confirm it without reading `stat`; `None` if it did not record
    /// `pid`. For tests.
    #[doc(hidden)]
    pub fn proven_alone(&self, pid: u32) -> Option<bool> {
        let i = self.procs.binary_search_by_key(&pid, |p| p.pid).ok()?;
        Some(self.procs[i].alone)
    }

    /// Forget every cached process, so the next scan reads all of them cold (for
    /// benchmarks).
    pub fn forget(&mut self) {
        self.procs.clear();
        self.uid_maps.clear();
        self.cgroups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Run one full scan.
    pub fn scan(&mut self) -> Result<Snapshot, ScanError> {
        let started = Instant::now();
        let taken_at = SystemTime::now();
        let syscalls_before = procfd::syscalls();
        let procfs = &self.opts.paths.procfs;
        let proc_dir = Dir::open(procfs).map_err(|source| ScanError {
            path: procfs.display().to_string(),
            source,
        })?;
        let pids = list_pids(&self.opts.paths).map_err(|source| ScanError {
            path: procfs.display().to_string(),
            source,
        })?;
        let host = hostref::resolve(&proc_dir, &pids);

        let threads = self.opts.threads.clamp(1, 256).min(pids.len().max(1));
        let procfs = proc_dir.is_procfs();
        let ctx = Ctx {
            proc_dir: &proc_dir,
            default_runtime: self.opts.default_runtime,
            cgroups: &self.cgroups,
            procfs,
            quick: procfs
                && self.last_end.is_some_and(|end| {
                    started.saturating_duration_since(end) >= self.opts.idle_gap
                }),
        };
        let prev = &self.procs;
        let mut procs = std::mem::take(&mut self.spare);
        procs.clear();
        procs.reserve(pids.len());
        let mut errors = ScanErrors::default();
        let mut stats = ScanStats::default();
        if threads == 1 {
            let before = procfd::syscalls();
            let mut w = Worker::default();
            read_many(&ctx, &pids, prev, &mut procs, &mut w);
            stats.per_process_syscalls = procfd::syscalls() - before;
            errors.add(&w.errors);
            stats.read = w.read;
            stats.reused = w.reused;
            stats.quick = w.quick;
        } else {
            let chunk = pids.len().div_ceil(threads);
            let results: Vec<(Vec<Proc>, Worker, u64)> = std::thread::scope(|s| {
                let handles: Vec<_> = pids
                    .chunks(chunk)
                    .map(|part| {
                        let ctx = &ctx;
                        s.spawn(move || {
                            let before = procfd::syscalls();
                            let mut out = Vec::with_capacity(part.len());
                            let mut w = Worker::default();
                            read_many(ctx, part, prev, &mut out, &mut w);
                            (out, w, procfd::syscalls() - before)
                        })
                    })
                    .collect();
                handles.into_iter().filter_map(|h| h.join().ok()).collect()
            });
            // Chunks are in PID order, so the concatenation stays sorted.
            for (out, w, calls) in results {
                procs.extend(out);
                errors.add(&w.errors);
                stats.read += w.read;
                stats.reused += w.reused;
                stats.quick += w.quick;
                stats.per_process_syscalls += calls;
            }
        }
        // The previous scan's processes are no longer needed: keep the allocation for
        // the next scan, and drop attributions that no process holds any more.
        self.spare = std::mem::replace(&mut self.procs, procs);
        self.spare.clear();
        self.cgroups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, e| Arc::strong_count(e) > 1);
        let procs = &self.procs;

        // uid_map once per user namespace; an unwritten (empty) map is not cached.
        let mut seen_userns: HashSet<u64> = HashSet::new();
        let mut buf = Vec::new();
        for p in procs.iter().filter(|p| !p.kernel_thread) {
            let Some(userns) = p.ns.get(NsType::User) else {
                continue;
            };
            if !seen_userns.insert(userns) || self.uid_maps.contains_key(&userns) {
                continue;
            }
            match read_uid_map(&proc_dir, p.pid, &mut buf) {
                Ok(m) if !m.0.is_empty() => {
                    self.uid_maps.insert(userns, m);
                }
                Ok(_) => {}
                Err(e) => count(&mut errors, e, "uid_map", p.pid),
            }
        }
        // A namespace inode can be reused once the namespace is gone: forget the maps of
        // user namespaces that no process holds any more.
        self.uid_maps.retain(|k, _| seen_userns.contains(k));

        let pinned = read_pinned(&proc_dir, procs, &mut errors);
        let snapshot = summarise(
            &self.opts.paths,
            procs,
            pinned,
            host,
            &self.uid_maps,
            errors,
            taken_at,
            started,
        );
        // Workers count on their own threads; a single-threaded pass counted on this one.
        stats.syscalls = procfd::syscalls() - syscalls_before
            + if threads > 1 {
                stats.per_process_syscalls
            } else {
                0
            };
        self.stats = stats;
        self.last_end = Some(Instant::now());
        Ok(snapshot)
    }
}

/// The nice value of a thread that scans in the background: a scan then yields the CPU
/// to scrapes (and to the node's workloads), so that a scrape's latency does not depend
/// on whether a scan of 20,000 processes happens to be running. Worker threads inherit it.
const BACKGROUND_NICE: libc::c_int = 10;

/// Lower the calling thread's CPU priority for background scanning (Linux keeps nice
/// values per thread). Best effort: raising one's own nice value needs no privilege.
pub fn lower_priority() {
    // SAFETY: plain syscalls about the calling thread.
    let res = unsafe {
        libc::setpriority(
            libc::PRIO_PROCESS,
            libc::gettid() as libc::id_t,
            BACKGROUND_NICE,
        )
    };
    if res != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "cannot lower the scan thread's priority");
    }
}

/// The nsfs bind mounts of every distinct mount namespace, one mountinfo read each
/// (falling back to another member if the first has exited).
fn read_pinned(
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
    let mut buf = Vec::new();
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

fn count(errors: &mut ScanErrors, e: ProcError, what: &str, pid: u32) {
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

/// The numeric entries of the procfs root.
pub(crate) fn list_pids(paths: &HostPaths) -> io::Result<Vec<u32>> {
    let mut pids: Vec<u32> = std::fs::read_dir(&paths.procfs)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// Read `pids` (sorted) into `out`, reusing what `prev` (sorted by PID) still proves.
fn read_many(ctx: &Ctx<'_>, pids: &[u32], prev: &[Proc], out: &mut Vec<Proc>, w: &mut Worker) {
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

/// The `stat` fields a scan needs, without allocating.
struct StatView<'a> {
    comm: &'a [u8],
    /// Field 3, the state letter.
    state: u8,
    kernel_thread: bool,
    minflt: u64,
    /// Field 20.
    threads: u64,
    start_time: u64,
}

/// Read one process or kernel thread; `before` is what the previous scan saw at this
/// PID. The error says whether it was a kernel thread.
fn read_proc(
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
    let (container, unparseable) = match parse_cgroup(&String::from_utf8_lossy(raw)) {
        Ok(lines) => match attribute(&lines, ctx.default_runtime) {
            Attribution::Container(c) => (Some(c), false),
            Attribution::Monitor | Attribution::Host => (None, false),
        },
        Err(_) => (None, true),
    };
    let entry = Arc::new(CgroupEntry {
        raw: raw.into(),
        container,
        unparseable,
    });
    cache.insert(raw.into(), entry.clone());
    entry
}

/// The fields of `/proc/<pid>/stat` a scan needs. `comm` may hold spaces and
/// parentheses, so it is the text between the first `(` and the *last* `)`; the fields
/// after it are counted from field 3.
fn parse_stat_view(bytes: &[u8]) -> Result<StatView<'_>, parse::ParseError> {
    let open = bytes
        .iter()
        .position(|&b| b == b'(')
        .ok_or(parse::ParseError::Stat("no '(' before comm"))?;
    let close = bytes
        .iter()
        .rposition(|&b| b == b')')
        .filter(|&c| c > open)
        .ok_or(parse::ParseError::Stat("no ')' after comm"))?;
    let mut state = None;
    let mut flags = None;
    let mut minflt = None;
    let mut threads = None;
    let mut start_time = None;
    // Field 3 (state) is index 0: flags is field 9, minflt 10, num_threads 20,
    // starttime 22.
    let fields = bytes[close + 1..]
        .split(|b| *b == b' ' || *b == b'\n')
        .filter(|f| !f.is_empty());
    for (i, f) in fields.enumerate() {
        match i {
            0 => state = f.first().copied(),
            6 => flags = decimal(f),
            7 => minflt = decimal(f),
            17 => threads = decimal(f),
            19 => {
                start_time = decimal(f);
                break;
            }
            _ => {}
        }
    }
    Ok(StatView {
        comm: &bytes[open + 1..close],
        state: state.ok_or(parse::ParseError::Stat("no state field"))?,
        kernel_thread: flags.ok_or(parse::ParseError::Stat("no flags field"))? & parse::PF_KTHREAD
            != 0,
        minflt: minflt.ok_or(parse::ParseError::Stat("no minflt field"))?,
        threads: threads.ok_or(parse::ParseError::Stat("no num_threads field"))?,
        start_time: start_time.ok_or(parse::ParseError::Stat("no starttime field"))?,
    })
}

/// `/proc/<pid>/schedstat`: `<runtime ns> <run delay ns> <times switched in>`.
fn parse_schedstat(text: &[u8]) -> Option<(u64, u64)> {
    let mut f = text
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty());
    let runtime = decimal(f.next()?)?;
    let _delay = f.next()?;
    let pcount = decimal(f.next()?)?;
    Some((runtime, pcount))
}

fn decimal(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    b.iter().try_fold(0u64, |v, &c| {
        c.is_ascii_digit()
            .then(|| v.checked_mul(10)?.checked_add(u64::from(c - b'0')))?
    })
}

/// `comm` is up to 15 bytes the process chose itself: keep it printable UTF-8.
pub(crate) fn sanitize_comm(raw: &[u8]) -> String {
    String::from_utf8_lossy(&raw[..raw.len().min(64)])
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn read_uid_map(proc_dir: &Dir, pid: u32, buf: &mut Vec<u8>) -> Result<UidMap, ProcError> {
    let dir = proc_dir.open_pid(pid)?;
    dir.read_at(c"uid_map", buf)?;
    let text =
        std::str::from_utf8(buf).map_err(|_| parse::ParseError::UidMap("not UTF-8".into()))?;
    Ok(parse::parse_uid_map(text)?)
}
/// Why a single process could not be read for `inspect`/`diff`.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("no process {0} in {1}")]
    NoSuchProcess(u32, String),
    #[error("permission denied reading process {0}: reading another process's namespaces needs root or CAP_SYS_PTRACE")]
    Permission(u32),
    #[error("process {0} is a kernel thread, which always sits in the host namespaces")]
    KernelThread(u32),
    #[error("process {0}: unparseable /proc content: {1}")]
    Parse(u32, parse::ParseError),
    #[error("process {0}: {1}")]
    Io(u32, io::Error),
    #[error(transparent)]
    Procfs(#[from] ScanError),
}

/// One process, read on its own, with what is needed to judge it.
#[derive(Debug, Clone)]
pub struct ProcessView {
    pub record: ProcRecord,
    /// The uid_map of its user namespace (empty if not written yet).
    pub uid_map: Option<UidMap>,
    pub root: RootMapping,
    pub host: crate::model::HostRef,
}

/// Read one process and the host reference: the scanner's own code path, for the
/// terminal commands.
pub fn read_one(opts: &ScanOptions, pid: u32) -> Result<ProcessView, ProcessError> {
    let procfs = &opts.paths.procfs;
    let scan_err = |source| ScanError {
        path: procfs.display().to_string(),
        source,
    };
    let proc_dir = Dir::open(procfs).map_err(scan_err)?;
    let pids = list_pids(&opts.paths).map_err(scan_err)?;
    let host = hostref::resolve(&proc_dir, &pids);
    let cgroups = Mutex::new(HashMap::new());
    let ctx = Ctx {
        proc_dir: &proc_dir,
        default_runtime: opts.default_runtime,
        cgroups: &cgroups,
        procfs: proc_dir.is_procfs(),
        quick: false,
    };
    let mut w = Worker::default();
    let record = match read_proc(&ctx, pid, None, &mut w) {
        Ok(p) if p.kernel_thread => return Err(ProcessError::KernelThread(pid)),
        Ok(p) => p.record(),
        Err((true, _)) => return Err(ProcessError::KernelThread(pid)),
        Err((false, e)) => {
            return Err(match e {
                ProcError::Vanished => {
                    ProcessError::NoSuchProcess(pid, procfs.display().to_string())
                }
                ProcError::Permission => ProcessError::Permission(pid),
                ProcError::Parse(p) => ProcessError::Parse(pid, p),
                ProcError::Io(e) => ProcessError::Io(pid, e),
            })
        }
    };
    let uid_map = read_uid_map(&proc_dir, pid, &mut w.file).ok();
    let root = RootMapping::classify(record.host_euid, uid_map.as_ref());
    Ok(ProcessView {
        record,
        uid_map,
        root,
        host,
    })
}

/// Read `/proc/sys/user/max_<type>_namespaces` for every type.
pub fn read_limits(paths: &HostPaths) -> [Option<u64>; 8] {
    let mut out = [None; 8];
    for t in NsType::ALL {
        out[t.index()] = std::fs::read_to_string(paths.ns_limit(t))
            .ok()
            .and_then(|s| parse::parse_sysctl_u64(&s));
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn summarise(
    paths: &HostPaths,
    procs: &[Proc],
    pinned_mounts: BTreeMap<(NsType, u64), Vec<String>>,
    host: crate::model::HostRef,
    uid_maps: &HashMap<u64, UidMap>,
    errors: ScanErrors,
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_view_fields() {
        let s = b"4242 (a) b) S\n(c) S 1 4242 4242 0 -1 4194560 731 0 0 0 1 2 0 0 20 0 1 0 98765 \
                  8192000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        let v = parse_stat_view(s).unwrap();
        assert_eq!(v.comm, b"a) b) S\n(c");
        assert_eq!(v.state, b'S');
        assert!(!v.kernel_thread);
        assert_eq!(v.minflt, 731);
        assert_eq!(v.start_time, 98765);
        let k = b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 3 0 0 \
                  18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 17 0 0 0 0 0 0\n";
        let v = parse_stat_view(k).unwrap();
        assert!(v.kernel_thread);
        assert_eq!(v.start_time, 3);
        assert!(parse_stat_view(b"1 (x) S 0 1 1").is_err());
        assert!(parse_stat_view(b"1 x) S").is_err());
    }

    #[test]
    fn schedstat() {
        assert_eq!(parse_schedstat(b"1234567 89 42\n"), Some((1234567, 42)));
        assert_eq!(parse_schedstat(b"0 0 0\n"), Some((0, 0)));
        assert_eq!(parse_schedstat(b"12 34\n"), None);
        assert_eq!(parse_schedstat(b"x 1 2\n"), None);
    }

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

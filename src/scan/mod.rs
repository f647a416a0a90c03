//! The scanner: one pass over the host's /proc that reads every process's namespaces,
//! host-view UID and cgroup, the uid_map of each user namespace and the nsfs mounts of
//! each mount namespace, and folds them into a [`Snapshot`].
//!
//! The per-process read, with the proof of why what a scan reuses from the previous one
//! is never stale, is in `process.rs`; the fold into a snapshot in `summary.rs`; the
//! pinned namespaces in `mounts.rs`; the one-process view of the terminal commands in
//! `one.rs`; the host reference in `hostref.rs`.

mod delegation;
mod exec;
pub(crate) mod hostref;
mod mounts;
pub mod one;
mod process;
mod summary;
pub mod visible;

pub use exec::{Change, ExecReader, Fresh};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::model::{NsType, ProcRecord, Runtime, ScanErrors, Snapshot, UidMap};
use crate::procfs::fd::{self as procfd, Dir, FileBuf};
use crate::procfs::parse;
use crate::procfs::paths::HostPaths;
use crate::runtime::{Reader, RuntimeCache};

use delegation::Delegation;
use mounts::MountTables;
use process::{count, read_many, CgroupCache, Ctx, Proc, ProcError, Worker};
use summary::summarise;

/// A scan that could not run at all: the procfs itself is unreadable, or not a procfs.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot read the host procfs at {path}: {source}")]
    Unreadable {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} is not a procfs ({why}): mount the host's /proc there, or point \
         --path.procfs at it"
    )]
    NotProcfs { path: String, why: String },
    /// The scan ran but cannot see the whole node ([`Scanner::scan_whole`] only).
    #[error("{}", .0.message)]
    Blind(crate::model::Blindness),
}

impl ScanError {
    fn unreadable(paths: &HostPaths, source: io::Error) -> ScanError {
        ScanError::Unreadable {
            path: paths.procfs.display().to_string(),
            source,
        }
    }

    /// The blindness this failure means for `nsexporter_procfs_blind`: a tree that is
    /// not a procfs is one; a procfs that cannot be opened at all is not (it is counted
    /// in `nsexporter_scan_errors_total{reason="procfs"}`).
    pub fn blind_reason(&self) -> Option<crate::model::BlindReason> {
        match self {
            ScanError::Unreadable { .. } => None,
            ScanError::NotProcfs { .. } => Some(crate::model::BlindReason::NotProcfs),
            ScanError::Blind(b) => Some(b.reason),
        }
    }
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
    /// lone, idle process from `schedstat` alone (see the proof in `process.rs`). Not a
    /// setting: the benchmarks and tests set it to measure or pin each path.
    #[doc(hidden)]
    pub idle_gap: Duration,
    /// The most mount tables kept open between scans (see `mounts.rs`); by default a
    /// quarter of the soft limit on open files, at most 4096. Not a setting: tests set it
    /// to check the bound.
    #[doc(hidden)]
    pub max_kept_mount_tables: usize,
    /// Read the threads of container processes, to find those that entered a host
    /// namespace alone (see `process.rs`). Not a setting: the benchmarks turn it off to
    /// measure what it costs.
    #[doc(hidden)]
    pub read_threads: bool,
    /// Where each container runtime keeps its state, under `paths.rootfs`.
    pub runtime: crate::runtime::Locations,
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
            max_kept_mount_tables: mounts::default_kept(),
            read_threads: true,
            runtime: crate::runtime::Locations::default(),
        }
    }
}

/// What the latest scan cost, for benchmarks and the syscall regression test.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Processes and kernel threads whose UID and namespace links were read.
    pub read: u64,
    /// Processes and kernel threads whose UID and namespace links were reused (see
    /// `process.rs` for why that is safe).
    pub reused: u64,
    /// Of `reused`, those confirmed without reading `stat`: alone in their thread group
    /// and idle (the UID then comes fresh with the identity check).
    pub quick: u64,
    /// Threads other than leaders, of container processes with more than one, whose
    /// links were read, and those whose links were reused.
    pub threads_read: u64,
    pub threads_reused: u64,
    /// `task/` listings (of container processes with more than one thread, and of
    /// processes whose leader has exited), and processes read through a live thread
    /// because their leader has exited.
    pub thread_lists: u64,
    pub stand_ins: u64,
    /// Syscalls made by the per-process pass (`read` plus `reused` entries, and those
    /// that failed or vanished; threads included).
    pub per_process_syscalls: u64,
    /// Syscalls made through the procfs reader by the whole scan, per-process pass
    /// included (listing, host reference, uid_maps, mountinfo opens).
    pub syscalls: u64,
    /// Mount tables (`mountinfo` files) read: those of mount namespaces new to this scan
    /// or changed since the last (see `mounts.rs`).
    pub mount_tables_read: u64,
    /// Mount tables kept open after the scan, to learn from `poll` whether they change.
    pub mount_tables_kept: u64,
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
    /// Who owns the cgroups above each container's (delegated subtrees).
    delegation: Delegation,
    /// The nsfs mounts of each mount namespace, and the open files that tell when they
    /// change.
    mounts: MountTables,
    stats: ScanStats,
    /// When the latest scan ended.
    last_end: Option<Instant>,
    /// Each container's runtime files, read when it is first seen.
    runtime: RuntimeCache,
    /// What the latest scan resolved and read besides the processes, which a fold of
    /// exec'd processes (`exec.rs`) summarises again with them.
    last: Option<LastScan>,
    /// Container processes in a host namespace that the latest scan found first (not
    /// in the scan before, nor folded in after an exec).
    first_found: Vec<ProcRecord>,
}

/// The parts of the latest scan that a fold reuses.
#[derive(Debug, Clone)]
struct LastScan {
    host: crate::model::HostRef,
    pinned: BTreeMap<(NsType, u64), Vec<String>>,
    /// What that scan could see of the procfs: events fold into its picture.
    visibility: crate::model::Visibility,
    taken_at: SystemTime,
    duration: Duration,
    node: summary::NodeFacts,
}

impl Scanner {
    pub fn new(opts: ScanOptions) -> Self {
        let mounts = MountTables::new(opts.max_kept_mount_tables);
        let delegation = Delegation::new(opts.paths.clone());
        let runtime = RuntimeCache::new(Reader::new(
            opts.paths.rootfs.clone(),
            opts.paths.procfs.clone(),
            opts.runtime.clone(),
        ));
        Scanner {
            runtime,
            opts,
            uid_maps: HashMap::new(),
            procs: Vec::new(),
            spare: Vec::new(),
            cgroups: Mutex::new(HashMap::new()),
            delegation,
            mounts,
            stats: ScanStats::default(),
            last_end: None,
            last: None,
            first_found: Vec::new(),
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

    /// Whether the latest scan read the mount table of mount namespace `mntns` (rather
    /// than reuse it, unchanged); `None` if it neither read nor reused it. For tests.
    #[doc(hidden)]
    pub fn mount_table_read(&self, mntns: u64) -> Option<bool> {
        self.mounts.last_read(mntns)
    }

    /// Whether the latest scan took the links of thread `tid` of container process `pid`
    /// from the scan before it instead of reading them; `None` if it did not record that
    /// thread. For tests.
    #[doc(hidden)]
    pub fn reused_thread_links(&self, pid: u32, tid: u32) -> Option<bool> {
        let i = self.procs.binary_search_by_key(&pid, |p| p.pid).ok()?;
        let tasks = self.procs[i].tasks();
        let j = tasks.binary_search_by_key(&tid, |t| t.tid).ok()?;
        Some(tasks[j].reused)
    }

    /// Container processes in a host namespace that the latest scan found first: each
    /// is taken once (the exec counter counts it).
    pub fn take_first_found(&mut self) -> Vec<ProcRecord> {
        std::mem::take(&mut self.first_found)
    }

    /// How many times the scanner has read a container's runtime files: once per
    /// container when first seen (and again for a busy database). For tests: a warm scan
    /// must not add any.
    #[doc(hidden)]
    pub fn runtime_reads(&self) -> u64 {
        self.runtime.reads()
    }

    /// Make the latest scan look `by` older, as if the next one came that much later:
    /// the tests' clock for the idle gap, so that they need not wait for it. For tests.
    #[doc(hidden)]
    pub fn age_last_scan(&mut self, by: Duration) {
        self.last_end = self.last_end.and_then(|t| t.checked_sub(by));
    }

    /// Forget every cached process, so the next scan reads all of them cold (for
    /// benchmarks).
    pub fn forget(&mut self) {
        self.procs.clear();
        self.uid_maps.clear();
        self.mounts.clear();
        self.cgroups
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.runtime.clear();
    }

    /// Run one full scan, for a person or a one-shot (`report`, `--once`): a scan that
    /// cannot see the whole node is an error that says what to do, never a report of
    /// an empty node.
    pub fn scan_whole(&mut self) -> Result<Snapshot, ScanError> {
        let snap = self.scan()?;
        match snap.blindness(&self.opts.paths.procfs.display().to_string()) {
            Some(b) => Err(ScanError::Blind(b)),
            None => Ok(snap),
        }
    }

    /// Run one full scan. The snapshot may be blind ([`Snapshot::blindness`]): the
    /// daemon publishes it and fails readiness.
    pub fn scan(&mut self) -> Result<Snapshot, ScanError> {
        let started = Instant::now();
        let taken_at = SystemTime::now();
        let syscalls_before = procfd::syscalls();
        let paths = &self.opts.paths;
        let proc_dir = Dir::open(&paths.procfs).map_err(|e| ScanError::unreadable(paths, e))?;
        let procfs = visible::check_procfs(paths, &proc_dir)?;
        let pids = list_pids(paths).map_err(|e| ScanError::unreadable(paths, e))?;
        if pids.is_empty() {
            return Err(ScanError::NotProcfs {
                path: paths.procfs.display().to_string(),
                why: "it holds no process".into(),
            });
        }
        let mut buf = Vec::new();
        // Before the pass: a task that exists throughout is in both counts.
        let mut visibility = if procfs {
            visible::observe(paths, &proc_dir, &mut buf)
        } else {
            Default::default()
        };
        let host = hostref::resolve(&proc_dir, &pids);

        let threads = self.opts.threads.clamp(1, 256).min(pids.len().max(1));
        let ctx = Ctx {
            proc_dir: &proc_dir,
            default_runtime: self.opts.default_runtime,
            cgroups: &self.cgroups,
            delegation: &self.delegation,
            procfs,
            quick: procfs
                && self.last_end.is_some_and(|end| {
                    started.saturating_duration_since(end) >= self.opts.idle_gap
                }),
            baseline: true,
            kernel_types: process::kernel_types(&host),
            tasks: self.opts.read_threads,
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
            visibility.tasks_seen = w.tasks;
            stats.read = w.read;
            stats.reused = w.reused;
            stats.quick = w.quick;
            stats.threads_read = w.tasks_read;
            stats.threads_reused = w.tasks_reused;
            stats.thread_lists = w.task_lists;
            stats.stand_ins = w.stand_ins;
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
                visibility.tasks_seen += w.tasks;
                stats.read += w.read;
                stats.reused += w.reused;
                stats.quick += w.quick;
                stats.threads_read += w.tasks_read;
                stats.threads_reused += w.tasks_reused;
                stats.thread_lists += w.task_lists;
                stats.stand_ins += w.stand_ins;
                stats.per_process_syscalls += calls;
            }
        }
        // Container processes in a host namespace that no earlier scan or fold had: the
        // exec counter counts each once.
        self.first_found.clear();
        for p in procs
            .iter()
            .filter(|p| !p.kernel_thread && p.container().is_some())
        {
            let known = prev
                .binary_search_by_key(&p.pid, |q| q.pid)
                .is_ok_and(|i| prev[i].start_time == p.start_time);
            let ns = p.ns.to_set();
            if !known && NsType::ALL.iter().any(|t| ns.shares(&host.ns, *t)) {
                self.first_found.push(p.record());
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
        let mut buf = FileBuf::default();
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

        // The nsfs mounts of every mount namespace that a process is in, read through up
        // to three of its members (tried in turn if one has exited); a member whose
        // leader has exited is read through the live thread that stands for it.
        let mut members: BTreeMap<u64, Vec<(u32, Option<u32>)>> = BTreeMap::new();
        for p in procs.iter().filter(|p| !p.kernel_thread) {
            if let Some(m) = p.ns.get(NsType::Mnt) {
                let v = members.entry(m).or_default();
                if v.len() < 3 {
                    v.push((p.pid, p.via()));
                }
            }
        }
        let (pinned, mount_stats) = self.mounts.read(&proc_dir, &members, procfs, &mut errors);
        stats.mount_tables_read = mount_stats.read;
        stats.mount_tables_kept = mount_stats.kept;
        let node = summary::NodeFacts::read(&self.opts.paths);
        self.last = Some(LastScan {
            host: host.clone(),
            pinned: pinned.clone(),
            visibility: visibility.clone(),
            taken_at,
            duration: started.elapsed(),
            node,
        });
        let mut snapshot = summarise(
            node,
            procs,
            pinned,
            host,
            &self.uid_maps,
            errors,
            visibility,
            taken_at,
            started,
        );
        self.attach_runtime(&mut snapshot);
        summary::find_escapes(&self.procs, &mut snapshot);
        // Workers count on their own threads; a single-threaded pass counted on this one.
        stats.syscalls = procfd::syscalls() - syscalls_before
            + if threads > 1 {
                stats.per_process_syscalls
            } else {
                0
            };
        self.stats = stats;
        self.last_end = Some(Instant::now());
        if let Some(l) = &mut self.last {
            l.duration = snapshot.duration;
        }
        Ok(snapshot)
    }
}

impl Scanner {
    /// Runtime files: read for a container the first time it is seen (a map lookup
    /// otherwise), and forgotten once it is gone. For scans and folds alike.
    /// The names `c`'s runtime files give it, read now if they were not read yet (a
    /// container whose processes all exited between two folds of process events).
    pub fn names_of(&mut self, c: &crate::model::ContainerRef) -> crate::model::Names {
        self.runtime.lookup(c).names.clone()
    }

    fn attach_runtime(&mut self, snapshot: &mut Snapshot) {
        for (c, s) in snapshot.containers.iter_mut() {
            s.runtime_info = self.runtime.lookup(c);
        }
        self.runtime.retain(|c| snapshot.containers.contains_key(c));
        snapshot.runtime_read_errors = self.runtime.error_pairs();
    }
}

/// The nice value of a thread that scans in the background: a scan then yields the CPU
/// to scrapes (and to the node's workloads), so that a scrape's latency does not depend
/// on whether a scan of 20,000 processes happens to be running. Worker threads inherit it.
const BACKGROUND_NICE: libc::c_int = 10;

/// Lower the calling thread's CPU priority for background scanning (Linux keeps nice
/// values per thread). Best effort: raising one's own nice value needs no privilege.
pub fn lower_priority() {
    let tid = nix::unistd::gettid().as_raw() as libc::id_t;
    // SAFETY: nix 0.32 has no wrapper for setpriority(2) (its `sys::resource` covers
    // rlimits and rusage only), so libc's is called directly: it takes plain integers,
    // about the calling thread, and touches no memory of ours.
    let res = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, BACKGROUND_NICE) };
    if res != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "cannot lower the scan thread's priority");
    }
}

/// Raise the soft limit on open files to the hard limit, as Go programs (node_exporter)
/// do at start: the scanner keeps a mountinfo file open per mount namespace (a quarter
/// of the soft limit at most, see `mounts.rs`), and the soft limit a container gets is
/// often 1024. Best effort: nothing fails without it, tables are only read more often.
pub fn raise_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::debug!(error = %e, soft, hard, "cannot raise the soft limit on open files");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "cannot read the limit on open files"),
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

fn read_uid_map(proc_dir: &Dir, pid: u32, buf: &mut FileBuf) -> Result<UidMap, ProcError> {
    let dir = proc_dir.open_pid(pid)?;
    dir.read_at(c"uid_map", buf)?;
    let text =
        std::str::from_utf8(buf).map_err(|_| parse::ParseError::UidMap("not UTF-8".into()))?;
    Ok(parse::parse_uid_map(text)?)
}

/// For unit tests: a copy of the fixture tree, with the `time` link this kernel has and
/// the fixture lacks (a read that misses a link the kernel has is of a process already
/// gone).
#[cfg(test)]
pub(crate) fn fixture_with_time_links() -> (tempfile::TempDir, ScanOptions) {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/proc");
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(&fixture)
        .arg(dir.path())
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a {}", fixture.display());
    let procfs = dir.path().join("proc");
    for e in std::fs::read_dir(&procfs).unwrap().flatten() {
        let ns = e.path().join("ns");
        if ns.is_dir() && !ns.join("time").exists() {
            std::os::unix::fs::symlink("time:[4026531834]", ns.join("time")).unwrap();
        }
    }
    let opts = ScanOptions {
        paths: HostPaths::new(&procfs),
        ..ScanOptions::default()
    };
    (dir, opts)
}

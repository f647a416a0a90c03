//! The scanner: one pass over the host's /proc that reads every process's namespaces,
//! host-view UID and cgroup, the uid_map of each user namespace and the nsfs mounts of
//! each mount namespace, and folds them into a [`Snapshot`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::time::{Instant, SystemTime};

use crate::cgroup::{attribute, Attribution};
use crate::hostref;
use crate::model::{
    ContainerRef, ContainerSummary, NsCount, NsSet, NsType, PinnedNs, ProcRecord, RootMapping,
    Runtime, ScanErrors, Snapshot, UidMap,
};
use crate::parse::{self, parse_cgroup, parse_mountinfo_nsfs, parse_stat, parse_status_euid};
use crate::paths::HostPaths;
use crate::procfd::{is_permission, is_vanished, Dir};

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
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            paths: HostPaths::default(),
            default_runtime: Runtime::Containerd,
            threads: 1,
        }
    }
}

/// Why one process was not recorded.
enum ProcError {
    KernelThread,
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
            ProcError::Parse(parse::ParseError::Stat("invalid data"))
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

/// Per-thread reusable buffers, so a scan does not allocate per file.
#[derive(Default)]
struct Bufs {
    file: Vec<u8>,
}

/// Holds what survives between scans: the uid_map of each user namespace, which the
/// kernel lets be written only once.
#[derive(Debug)]
pub struct Scanner {
    opts: ScanOptions,
    uid_maps: HashMap<u64, UidMap>,
}

/// What the per-process pass found.
enum Found {
    Process(ProcRecord),
    /// A kernel thread: not a workload and not counted as a process, but the
    /// namespaces it holds are alive (kdevtmpfs has a mount namespace of its own).
    KernelThread(NsSet),
}

impl Scanner {
    pub fn new(opts: ScanOptions) -> Self {
        Scanner {
            opts,
            uid_maps: HashMap::new(),
        }
    }

    pub fn options(&self) -> &ScanOptions {
        &self.opts
    }

    /// Run one full scan.
    pub fn scan(&mut self) -> Result<Snapshot, ScanError> {
        let started = Instant::now();
        let taken_at = SystemTime::now();
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

        let mut errors = ScanErrors::default();
        let threads = self.opts.threads.clamp(1, 256).min(pids.len().max(1));
        let default_runtime = self.opts.default_runtime;
        let mut found: Vec<Found> = Vec::with_capacity(pids.len());
        if threads == 1 {
            read_many(&proc_dir, &pids, default_runtime, &mut found, &mut errors);
        } else {
            let chunk = pids.len().div_ceil(threads);
            let results: Vec<(Vec<Found>, ScanErrors)> = std::thread::scope(|s| {
                let handles: Vec<_> = pids
                    .chunks(chunk)
                    .map(|part| {
                        let proc_dir = &proc_dir;
                        s.spawn(move || {
                            let mut f = Vec::with_capacity(part.len());
                            let mut e = ScanErrors::default();
                            read_many(proc_dir, part, default_runtime, &mut f, &mut e);
                            (f, e)
                        })
                    })
                    .collect();
                handles.into_iter().filter_map(|h| h.join().ok()).collect()
            });
            for (f, e) in results {
                found.extend(f);
                errors.add(&e);
            }
        }
        let mut records: Vec<ProcRecord> = Vec::with_capacity(found.len());
        let mut kthread_ns: Vec<NsSet> = Vec::new();
        for f in found {
            match f {
                Found::Process(r) => records.push(r),
                Found::KernelThread(ns) => {
                    if !kthread_ns.contains(&ns) {
                        kthread_ns.push(ns);
                    }
                }
            }
        }

        // uid_map once per user namespace; an unwritten (empty) map is not cached.
        let mut seen_userns: HashSet<u64> = HashSet::new();
        let mut buf = Vec::new();
        for r in &records {
            let Some(userns) = r.ns.get(NsType::User) else {
                continue;
            };
            if !seen_userns.insert(userns) || self.uid_maps.contains_key(&userns) {
                continue;
            }
            match read_uid_map(&proc_dir, r.pid, &mut buf) {
                Ok(m) if !m.0.is_empty() => {
                    self.uid_maps.insert(userns, m);
                }
                Ok(_) => {}
                Err(e) => count(&mut errors, e, "uid_map", r.pid),
            }
        }
        // A namespace inode can be reused once the namespace is gone: forget the maps of
        // user namespaces that no process holds any more.
        self.uid_maps.retain(|k, _| seen_userns.contains(k));

        let pinned = self.read_pinned(&proc_dir, &records, &mut errors);
        let snapshot = summarise(
            &self.opts.paths,
            records,
            &kthread_ns,
            pinned,
            host,
            &self.uid_maps,
            errors,
            taken_at,
            started,
        );
        Ok(snapshot)
    }

    /// The nsfs bind mounts of every distinct mount namespace, one mountinfo read each
    /// (falling back to another member if the first has exited).
    fn read_pinned(
        &self,
        proc_dir: &Dir,
        records: &[ProcRecord],
        errors: &mut ScanErrors,
    ) -> BTreeMap<(NsType, u64), Vec<String>> {
        let mut by_mntns: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
        for r in records {
            if let Some(m) = r.ns.get(NsType::Mnt) {
                let v = by_mntns.entry(m).or_default();
                if v.len() < 3 {
                    v.push(r.pid);
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
}

fn count(errors: &mut ScanErrors, e: ProcError, what: &str, pid: u32) {
    match e {
        ProcError::KernelThread => {}
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

fn read_many(
    proc_dir: &Dir,
    pids: &[u32],
    default_runtime: Runtime,
    out: &mut Vec<Found>,
    errors: &mut ScanErrors,
) {
    let mut bufs = Bufs::default();
    for &pid in pids {
        match read_process(proc_dir, pid, default_runtime, &mut bufs, errors) {
            Ok(rec) => out.push(Found::Process(rec)),
            Err(ProcError::KernelThread) => {
                // Kernel threads in the initial namespaces are the common case; any
                // error here only means this thread's namespaces go uncounted.
                if let Ok(ns) = proc_dir
                    .open_pid(pid)
                    .and_then(|d| hostref::read_ns_links_in(&d))
                {
                    out.push(Found::KernelThread(ns));
                }
            }
            Err(e) => count(errors, e, "process", pid),
        }
    }
}

/// Read one process. Kernel threads come back as `Err(KernelThread)`. A cgroup file
/// that cannot be used is counted in `errors` but does not drop the process: its
/// namespaces and UID still count, only unattributed (a process must not be able to
/// hide from the scan by naming its cgroup oddly).
fn read_process(
    proc_dir: &Dir,
    pid: u32,
    default_runtime: Runtime,
    bufs: &mut Bufs,
    errors: &mut ScanErrors,
) -> Result<ProcRecord, ProcError> {
    let dir = proc_dir.open_pid(pid)?;
    dir.read_single_at(c"stat", &mut bufs.file)?;
    let stat = parse_stat(&bufs.file)?;
    if stat.is_kernel_thread() {
        return Err(ProcError::KernelThread);
    }
    let ns = hostref::read_ns_links_in(&dir)?;
    dir.read_single_at(c"status", &mut bufs.file)?;
    let host_euid = parse_status_euid(&bufs.file)?;
    let container = match dir.read_single_at(c"cgroup", &mut bufs.file) {
        // Cgroup names may hold any bytes; no container ID is non-UTF-8, so a lossy
        // view (borrowed when the text is valid) attributes exactly as the bytes would.
        Ok(()) => match parse_cgroup(&String::from_utf8_lossy(&bufs.file)) {
            Ok(lines) => match attribute(&lines, default_runtime) {
                Attribution::Container(c) => Some(c),
                Attribution::Monitor | Attribution::Host => None,
            },
            Err(e) => {
                count(errors, ProcError::Parse(e), "cgroup", pid);
                None
            }
        },
        Err(e) if is_vanished(&e) => return Err(ProcError::Vanished),
        Err(e) => {
            count(errors, ProcError::from(e), "cgroup", pid);
            None
        }
    };
    Ok(ProcRecord {
        pid,
        start_time: stat.start_time,
        comm: sanitize_comm(&stat.comm),
        ns,
        host_euid,
        container,
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
    let mut bufs = Bufs::default();
    let mut soft = ScanErrors::default();
    let record =
        read_process(&proc_dir, pid, opts.default_runtime, &mut bufs, &mut soft).map_err(|e| {
            match e {
                ProcError::KernelThread => ProcessError::KernelThread(pid),
                ProcError::Vanished => {
                    ProcessError::NoSuchProcess(pid, procfs.display().to_string())
                }
                ProcError::Permission => ProcessError::Permission(pid),
                ProcError::Parse(p) => ProcessError::Parse(pid, p),
                ProcError::Io(e) => ProcessError::Io(pid, e),
            }
        })?;
    let uid_map = read_uid_map(&proc_dir, pid, &mut bufs.file).ok();
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
    records: Vec<ProcRecord>,
    kthread_ns: &[NsSet],
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
    for ns in kthread_ns {
        for t in NsType::ALL {
            if let Some(ino) = ns.get(t) {
                held[t.index()].insert(ino);
                supported[t.index()] = true;
            }
        }
    }
    let mut containers: BTreeMap<ContainerRef, ContainerSummary> = BTreeMap::new();
    for r in &records {
        for t in NsType::ALL {
            if let Some(ino) = r.ns.get(t) {
                held[t.index()].insert(ino);
                supported[t.index()] = true;
                if r.ns.shares(&host.ns, t) {
                    host_ns_processes[t.index()] += 1;
                }
            }
        }
        let Some(c) = &r.container else { continue };
        let map = r.ns.get(NsType::User).and_then(|u| uid_maps.get(&u));
        let s = containers
            .entry(c.clone())
            .or_insert_with(|| ContainerSummary {
                container: c.clone(),
                processes: 0,
                main_pid: r.pid,
                main_start_time: r.start_time,
                comm: r.comm.clone(),
                main_ns: r.ns,
                host_ns_processes: [0; 8],
                host_root_processes: 0,
                root: RootMapping::classify(r.host_euid, map),
                uid_map: map.cloned(),
            });
        s.processes += 1;
        if (r.start_time, r.pid) < (s.main_start_time, s.main_pid) {
            s.main_pid = r.pid;
            s.main_start_time = r.start_time;
            s.comm = r.comm.clone();
            s.main_ns = r.ns;
            s.root = RootMapping::classify(r.host_euid, map);
            s.uid_map = map.cloned();
        }
        for t in NsType::ALL {
            if r.ns.shares(&host.ns, t) {
                s.host_ns_processes[t.index()] += 1;
            }
        }
        if r.host_euid == 0 {
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
        processes: records.len() as u64,
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

//! One process read on its own, for the terminal commands (`inspect`, `diff`): the
//! scanner's own per-process read, with the host reference and the uid_map.

use std::collections::HashMap;
use std::io;
use std::sync::Mutex;

use crate::model::{HostSource, ProcRecord, RootMapping, UidMap};
use crate::procfs::fd::{Dir, FileBuf};
use crate::procfs::parse;

use super::delegation::Delegation;
use super::hostref;
use super::process::{count_tasks, read_proc, Ctx, ProcError, Worker};
use super::{list_pids, read_uid_map, visible, ScanError, ScanOptions};

/// Why a single process could not be read for `inspect`/`diff`.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("no process {0} in {1}")]
    NoSuchProcess(u32, String),
    #[error("permission denied reading process {0}: reading another process's namespaces needs root or CAP_SYS_PTRACE")]
    Permission(u32),
    /// PID 1 refuses a reader that can read a kernel thread's links, so no privilege is
    /// missing: the kernel denies PID 1's on this host. The PID to compare with the host
    /// instead, if the command named one.
    #[error("{}", pid1_refused(*.0))]
    Pid1Refused(Option<u32>),
    #[error("process {0} is a kernel thread, which always sits in the host namespaces")]
    KernelThread(u32),
    #[error("process {0}: unparseable /proc content: {1}")]
    Parse(u32, parse::ParseError),
    #[error("process {0}: {1}")]
    Io(u32, io::Error),
    #[error(transparent)]
    Procfs(#[from] ScanError),
}

fn pid1_refused(other: Option<u32>) -> String {
    let what_to_do = match other {
        Some(pid) => format!("`nsexporter inspect {pid}` compares process {pid} with them"),
        None => "`nsexporter inspect <pid>` compares any process with them, and \
                 `readlink /proc/2/ns/*` shows them"
            .to_owned(),
    };
    format!(
        "PID 1's namespace links are refused even to root on this host: the kernel denies \
         them (it lets nsexporter read a kernel thread's, so no privilege is missing). \
         Kernel threads always sit in the host's namespaces, so the host's are read from \
         one, kthreadd (PID 2): {what_to_do}"
    )
}

impl ProcessError {
    /// For `diff`: name the other process in PID 1's refusal.
    pub fn with_other(self, other: u32) -> ProcessError {
        match self {
            ProcessError::Pid1Refused(None) if other != 1 => ProcessError::Pid1Refused(Some(other)),
            e => e,
        }
    }
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
    let scan_err = |source| ScanError::unreadable(&opts.paths, source);
    let proc_dir = Dir::open(procfs).map_err(scan_err)?;
    let is_procfs = visible::check_procfs(&opts.paths, &proc_dir)?;
    let pids = list_pids(&opts.paths).map_err(scan_err)?;
    if is_procfs {
        // A procfs that hides most tasks would make a hidden process look absent and the
        // host reference unknown: say so instead.
        let mut v = visible::observe(&opts.paths, &proc_dir, &mut Vec::new());
        v.tasks_seen = count_tasks(&proc_dir, &pids, &mut FileBuf::default());
        // Processes and refusals are judged per process here, not as a whole.
        if let Some(b) = v.blindness(&procfs.display().to_string(), 1, 0) {
            return Err(ScanError::Blind(b).into());
        }
    }
    let host = hostref::resolve(&proc_dir, &pids);
    let cgroups = Mutex::new(HashMap::new());
    let delegation = Delegation::new(opts.paths.clone());
    let ctx = Ctx {
        proc_dir: &proc_dir,
        default_runtime: opts.default_runtime,
        cgroups: &cgroups,
        delegation: &delegation,
        procfs: is_procfs,
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
                ProcError::Permission if pid == 1 && host.source == HostSource::Kthread => {
                    ProcessError::Pid1Refused(None)
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

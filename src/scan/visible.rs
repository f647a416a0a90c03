//! Whether `--path.procfs` can show the whole node: it must be a procfs, and one that
//! hides no task from the exporter. A procfs mounted with `hidepid` shows a user without
//! CAP_SYS_PTRACE only their own processes; one with `subset=pid` has no `loadavg` and
//! no `sys/`; a procfs of a child PID namespace shows only that namespace's tasks. The
//! scan compares the tasks it could see with the kernel's own count
//! ([`crate::model::Visibility`] judges), so that a blind scan is never taken for an
//! empty node.

use std::io;
use std::os::unix::fs::MetadataExt;

use crate::model::Visibility;
use crate::procfs::fd::{Dir, FileBuf};
use crate::procfs::parse::{parse_loadavg_tasks, parse_mountinfo_line, procfs_options};
use crate::procfs::paths::HostPaths;

use super::mounts::for_each_line;
use super::ScanError;

/// A file that marks a directory tree as a procfs fixture (the test trees): such a tree
/// is read although it is not a procfs. No procfs can hold it.
pub const FIXTURE_MARKER: &str = "nsexporter-fixture";

/// Check that `proc_dir` (opened from `paths.procfs`) is a procfs, or a tree marked as
/// a fixture; its result tells which.
pub(super) fn check_procfs(paths: &HostPaths, proc_dir: &Dir) -> Result<bool, ScanError> {
    if proc_dir.is_procfs() {
        return Ok(true);
    }
    if paths.proc(FIXTURE_MARKER).is_file() {
        return Ok(false);
    }
    Err(ScanError::NotProcfs {
        path: paths.procfs.display().to_string(),
        why: "no proc file system is mounted there".into(),
    })
}

/// The procfs's mount options that hide tasks, and the kernel's task count, as of now
/// (before the scan counts what it sees).
pub(super) fn observe(paths: &HostPaths, proc_dir: &Dir, buf: &mut Vec<u8>) -> Visibility {
    let mut v = Visibility::default();
    match mount_options(paths, buf) {
        Ok(Some(o)) => {
            v.hidepid = o.hidepid;
            v.subset = o.subset;
        }
        Ok(None) => tracing::debug!(
            procfs = %paths.procfs.display(),
            "the procfs's mount is not in the reader's mount table; its options are unknown"
        ),
        Err(e) => tracing::debug!(error = %e, "cannot read the reader's mount table"),
    }
    let mut loadavg = FileBuf::default();
    v.tasks_total = match proc_dir.read_single_at(c"loadavg", &mut loadavg) {
        Ok(()) => parse_loadavg_tasks(&String::from_utf8_lossy(&loadavg)),
        Err(_) => None,
    };
    v
}

/// The options of the procfs mount at `paths.procfs`: the line of the reader's own
/// mount table (`<procfs>/self/mountinfo`) of type `proc` whose device is that of the
/// directory (every mount of one procfs instance shares its options).
fn mount_options(
    paths: &HostPaths,
    buf: &mut Vec<u8>,
) -> io::Result<Option<crate::procfs::parse::ProcfsOptions>> {
    let dev = std::fs::metadata(&paths.procfs)?.dev();
    let want = format!("{}:{}", libc::major(dev), libc::minor(dev));
    let file = std::fs::File::open(paths.proc("self/mountinfo"))?;
    let mut found = None;
    for_each_line(&file, buf, |line| {
        if found.is_some() {
            return;
        }
        let text = String::from_utf8_lossy(line);
        if let Some(m) = parse_mountinfo_line(&text) {
            if m.fstype == "proc" && m.dev == want {
                found = Some(procfs_options(m.super_options));
            }
        }
    })?;
    Ok(found)
}

//! The nsfs bind mounts of each mount namespace: how the scan finds namespaces that no
//! process holds (pinned by `ip netns add` and the like).
//!
//! # Reading a mount table only when it can have changed
//! A mount namespace's table is read from `/proc/<pid>/mountinfo` of one of its members,
//! a line at a time in a buffer of fixed size (only nsfs lines are kept), so a table of
//! any size costs the same memory. The file is then kept open, because of what the
//! kernel does with it (`fs/proc_namespace.c`):
//!
//! - Opening the file takes a reference to the *namespace* (and to the opener's root
//!   directory), not to the task: the open file goes on showing the namespace after the
//!   member exits, and it keeps the namespace alive. So a file is kept only while a scan
//!   finds some process in its namespace: the first scan that finds none closes it and
//!   releases the namespace (which thus lives at most one scan interval longer than its
//!   last process). While it is kept its inode number cannot be reused, so the inode
//!   names the kept file's namespace for as long as the file is kept.
//! - Every change to the namespace's mount tree (mount, umount, move, pivot_root, a mount
//!   propagated into it) bumps the namespace's event count and wakes its poll queue
//!   (`touch_mnt_namespace`). Opening records the count; `poll` on the open file
//!   reports `POLLERR | POLLPRI` when it has changed since, and records it again.
//!
//! So each scan polls every kept file at once (one `poll`, timeout 0) and reads again only
//! the tables that changed. A changed table is read through a fresh open by a current
//! member, not through the kept file: the kept file shows paths relative to its opener's
//! root as it was at open time, which a container's `pivot_root` changes. The member must
//! still be in the namespace after the open (its `ns/mnt` link is read again), or the
//! file would be another namespace's.
//!
//! Kept files are bounded (a quarter of the soft file limit, at most
//! [`MAX_KEPT`]): beyond that, tables are read on every scan, as before there was
//! polling. A tree that is not a procfs (the test fixtures) has regular files, which
//! never report a change: its tables are read on every scan. The kernel keeps a page of
//! buffer per open file. `tests/mounts.rs` proves on the real kernel that a table is read
//! again after a mount and an umount in its namespace, and not otherwise.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::model::{NsType, ScanErrors};
use crate::procfs::fd::{is_vanished, Dir};
use crate::procfs::parse::{parse_mountinfo_nsfs_line, parse_ns_link, NsfsMount};

use super::process::{count, ProcError};

/// The most mountinfo files kept open, whatever the file limit.
pub(super) const MAX_KEPT: usize = 4096;

/// Bytes read from a mountinfo file at a time.
const CHUNK: usize = 64 * 1024;

/// No nsfs line is longer: the kernel escapes a mount point of at most `PATH_MAX` (4096)
/// bytes to at most four times that, and the rest of an nsfs line is short. A longer
/// line (an overlay's long options, say) is skipped unread.
const MAX_LINE: usize = 64 * 1024;

/// How many mountinfo files to keep open: a quarter of the soft limit on open files,
/// at most [`MAX_KEPT`].
pub(super) fn default_kept() -> usize {
    match nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE) {
        Ok((soft, _)) => usize::try_from(soft / 4).unwrap_or(MAX_KEPT).min(MAX_KEPT),
        Err(_) => 0,
    }
}

/// One mount namespace's nsfs mounts as of its last read, and the open file that tells
/// when they may have changed.
#[derive(Debug)]
struct Table {
    file: Option<File>,
    mounts: Vec<NsfsMount>,
    /// Malformed nsfs lines in the last read: counted on every scan that uses it.
    bad: u64,
}

/// The mount tables kept between scans, by mount namespace inode.
#[derive(Debug)]
pub(super) struct MountTables {
    tables: HashMap<u64, Table>,
    max_kept: usize,
    buf: Vec<u8>,
    /// The namespaces of the latest scan, sorted, and whether it read their table.
    last: Vec<(u64, bool)>,
}

/// What reading the mount tables cost in one scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct MountStats {
    /// Tables read (opened and streamed) in this scan.
    pub(super) read: u64,
    /// Files kept open after this scan.
    pub(super) kept: u64,
}

impl MountTables {
    pub(super) fn new(max_kept: usize) -> Self {
        MountTables {
            tables: HashMap::new(),
            max_kept,
            buf: Vec::new(),
            last: Vec::new(),
        }
    }

    /// Whether the latest scan read the table of `ns` (`Some(false)`: reused it).
    pub(super) fn last_read(&self, ns: u64) -> Option<bool> {
        let i = self.last.binary_search_by_key(&ns, |(n, _)| *n).ok()?;
        Some(self.last[i].1)
    }

    /// Close every kept file, so that the next scan reads every table.
    pub(super) fn clear(&mut self) {
        self.tables.clear();
    }

    /// The nsfs mounts of every mount namespace in `members` (namespace inode to up to a
    /// few of its processes, tried in turn if one has exited or left). `procfs`: the tree
    /// is a procfs, whose files can be polled and kept.
    pub(super) fn read(
        &mut self,
        proc_dir: &Dir,
        members: &BTreeMap<u64, Vec<u32>>,
        procfs: bool,
        errors: &mut ScanErrors,
    ) -> (BTreeMap<(NsType, u64), Vec<String>>, MountStats) {
        // A namespace with no process left: close its file, releasing the namespace.
        self.tables.retain(|ns, _| members.contains_key(ns));
        let changed = changed_since_last_poll(&self.tables);
        let mut stats = MountStats::default();
        let mut kept = self.tables.values().filter(|t| t.file.is_some()).count();
        let mut out: BTreeMap<(NsType, u64), Vec<String>> = BTreeMap::new();
        self.last.clear();
        for (&ns, pids) in members {
            let current = self
                .tables
                .get(&ns)
                .is_some_and(|t| t.file.is_some() && !changed.contains(&ns));
            if !current {
                stats.read += 1;
                let had_file = self.tables.get(&ns).is_some_and(|t| t.file.is_some());
                match read_table(proc_dir, ns, pids, &mut self.buf, errors) {
                    Some((file, mounts, bad)) => {
                        let keep = procfs && (had_file || kept < self.max_kept);
                        if keep && !had_file {
                            kept += 1;
                        } else if !keep && had_file {
                            kept -= 1;
                        }
                        self.tables.insert(
                            ns,
                            Table {
                                file: keep.then_some(file),
                                mounts,
                                bad,
                            },
                        );
                    }
                    None => {
                        if self.tables.remove(&ns).is_some_and(|t| t.file.is_some()) {
                            kept -= 1;
                        }
                        continue;
                    }
                }
            }
            let Some(t) = self.tables.get(&ns) else {
                continue;
            };
            self.last.push((ns, !current));
            errors.parse += t.bad;
            for m in &t.mounts {
                let v = out.entry((m.ns_type, m.inode)).or_default();
                if !v.contains(&m.mount_point) {
                    v.push(m.mount_point.clone());
                }
            }
        }
        // Tables read but not kept are not reused: drop them now.
        self.tables.retain(|_, t| t.file.is_some());
        stats.kept = kept as u64;
        (out, stats)
    }
}

/// The namespaces whose kept file reports a change since the last poll (or its open).
/// One `poll` for all of them; if it fails, all count as changed.
fn changed_since_last_poll(tables: &HashMap<u64, Table>) -> std::collections::HashSet<u64> {
    let kept: Vec<(u64, &File)> = tables
        .iter()
        .filter_map(|(&ns, t)| t.file.as_ref().map(|f| (ns, f)))
        .collect();
    if kept.is_empty() {
        return Default::default();
    }
    let mut fds: Vec<PollFd<'_>> = kept
        .iter()
        .map(|(_, f)| PollFd::new(f.as_fd(), PollFlags::POLLPRI))
        .collect();
    loop {
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "poll of the kept mount tables failed; reading them all");
                return kept.iter().map(|(ns, _)| *ns).collect();
            }
        }
    }
    kept.iter()
        .zip(&fds)
        .filter(|(_, fd)| {
            // POLLIN alone is a table unchanged; anything else (a change, or an fd the
            // kernel finds odd) is read again.
            fd.revents().is_none_or(|r| {
                r.intersects(PollFlags::POLLPRI | PollFlags::POLLERR | PollFlags::POLLNVAL)
            })
        })
        .map(|((ns, _), _)| *ns)
        .collect()
}

/// Open and read the mount table of namespace `ns` through the first of `pids` that is
/// still in it. `None` (the error counted) when none could be read.
fn read_table(
    proc_dir: &Dir,
    ns: u64,
    pids: &[u32],
    buf: &mut Vec<u8>,
    errors: &mut ScanErrors,
) -> Option<(File, Vec<NsfsMount>, u64)> {
    for (i, &pid) in pids.iter().enumerate() {
        let res = proc_dir.open_pid(pid).and_then(|dir| {
            let file = dir.open_file_at(c"mountinfo")?;
            // The file shows the namespace the task was in when it was opened: make sure
            // that is still `ns` (else it left, which for `ns` is as good as gone).
            let mut link = [0u8; 128];
            let now = dir
                .readlink_at(NsType::Mnt.link_cstr(), &mut link)
                .map(|t| parse_ns_link(t, NsType::Mnt).ok())?;
            if now != Some(ns) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            let (mounts, bad) = read_nsfs(&file, buf)?;
            Ok((file, mounts, bad))
        });
        match res {
            Ok(t) => return Some(t),
            Err(e) if is_vanished(&e) && i + 1 < pids.len() => continue,
            Err(e) => {
                count(errors, ProcError::from(e), "mountinfo", pid);
                return None;
            }
        }
    }
    None
}

/// Read a mountinfo file from where it stands to its end and keep its nsfs mounts and
/// the count of malformed nsfs lines (see [`for_each_line`]).
pub(super) fn read_nsfs(file: &File, buf: &mut Vec<u8>) -> io::Result<(Vec<NsfsMount>, u64)> {
    let mut mounts = Vec::new();
    let mut bad = 0;
    for_each_line(file, buf, |bytes| {
        match parse_mountinfo_nsfs_line(&String::from_utf8_lossy(bytes)) {
            Some(Ok(m)) => mounts.push(m),
            Some(Err(_)) => bad += 1,
            None => {}
        }
    })?;
    Ok((mounts, bad))
}

/// Read a file from where it stands to its end and hand `line` each line (without its
/// newline), in `buf`, which never grows past [`CHUNK`] + [`MAX_LINE`] bytes: a line
/// longer than [`MAX_LINE`] is skipped.
pub(super) fn for_each_line(
    mut file: &File,
    buf: &mut Vec<u8>,
    mut line: impl FnMut(&[u8]),
) -> io::Result<()> {
    const SIZE: usize = CHUNK + MAX_LINE;
    if buf.len() != SIZE {
        buf.clear();
        buf.resize(SIZE, 0);
    }
    // `buf[..filled]` holds the start of a line not yet complete; `skipping` means the
    // line under way is over MAX_LINE and is dropped up to its newline.
    let mut filled = 0;
    let mut skipping = false;
    loop {
        let n = match file.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            if filled > 0 && filled <= MAX_LINE && !skipping {
                line(&buf[..filled]);
            }
            return Ok(());
        }
        let end = filled + n;
        let mut start = 0;
        while let Some(nl) = buf[start..end].iter().position(|&b| b == b'\n') {
            if skipping {
                skipping = false;
            } else if nl <= MAX_LINE {
                line(&buf[start..start + nl]);
            }
            start += nl + 1;
        }
        buf.copy_within(start..end, 0);
        filled = end - start;
        if filled > MAX_LINE {
            skipping = true;
            filled = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn nsfs_line(i: usize, mp: &str) -> String {
        format!(
            "{} 25 0:4 net:[{}] {mp} rw shared:3 - nsfs nsfs rw\n",
            600 + i,
            4026532000 + i
        )
    }

    #[test]
    fn streams_any_size_in_bounded_memory() {
        let mut f = tempfile::tempfile().unwrap();
        let long = format!("/{}", "x".repeat(300));
        let mut want = 0;
        let mut size = 0;
        // Over 5 MiB of ordinary mounts with nsfs mounts spread through them, and a line
        // longer than any nsfs line (skipped), and a last line without a newline.
        let mut i = 0;
        while size < 5 << 20 {
            let l = if i % 100 == 7 {
                want += 1;
                nsfs_line(i, &format!("/run/netns/n{i}"))
            } else {
                format!(
                    "{} 25 0:51 {long} {long}{i} rw,relatime - ext4 /dev/sda1 rw\n",
                    1000 + i
                )
            };
            size += l.len();
            f.write_all(l.as_bytes()).unwrap();
            i += 1;
        }
        let huge = format!(
            "1 25 0:52 / /o rw - overlay overlay rw,lowerdir={}\n",
            "y".repeat(200_000)
        );
        f.write_all(huge.as_bytes()).unwrap();
        f.write_all(b"2 25 0:4 net:[99] /last rw - nsfs nsfs rw")
            .unwrap();
        f.write_all(b"").unwrap();
        use std::io::Seek;
        f.rewind().unwrap();
        let mut buf = Vec::new();
        let (m, bad) = read_nsfs(&f, &mut buf).unwrap();
        assert_eq!(bad, 0);
        assert_eq!(m.len(), want + 1);
        assert_eq!(m[0].mount_point, "/run/netns/n7");
        assert_eq!(m.last().unwrap().inode, 99);
        assert_eq!(buf.len(), CHUNK + MAX_LINE);
        assert_eq!(buf.capacity(), CHUNK + MAX_LINE);
    }

    #[test]
    fn malformed_nsfs_lines_are_counted_and_long_ones_skipped() {
        let mut f = tempfile::tempfile().unwrap();
        let overlong = format!(
            "3 25 0:4 net:[5] /{} rw - nsfs nsfs rw\n",
            "z".repeat(MAX_LINE + 10)
        );
        write!(
            f,
            "1 25 0:4 bogus /x rw - nsfs nsfs rw\n{overlong}{}",
            nsfs_line(1, "/ok")
        )
        .unwrap();
        use std::io::Seek;
        f.rewind().unwrap();
        let (m, bad) = read_nsfs(&f, &mut Vec::new()).unwrap();
        assert_eq!(bad, 1);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].mount_point, "/ok");
    }
}

//! Thin, allocation-free access to `/proc/<pid>` through directory file descriptors:
//! `openat` once per process, then `readlinkat` and one `read` per small file relative
//! to it. This is the scan's hot path, so it makes exactly the calls it needs, through
//! nix's safe wrappers (all but `readlinkat`: see there).

use std::ffi::CStr;
use std::io;
use std::ops::Deref;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// Files bigger than this are refused: no /proc file nsexporter reads is legitimately
/// near it, and a hostile or broken one must not exhaust memory.
pub(crate) const MAX_FILE: usize = 4 << 20;

/// An open directory, used as the base for relative reads.
#[derive(Debug)]
pub(crate) struct Dir(OwnedFd);

impl Drop for Dir {
    fn drop(&mut self) {
        // The `OwnedFd` closes it right after.
        counted(1);
    }
}

thread_local! {
    /// Syscalls this thread made through [`Dir`]: a deterministic cost measure, which
    /// the syscall regression test and the benchmarks read (a `Cell` add is noise next to
    /// a syscall).
    static SYSCALLS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn counted(n: u64) {
    SYSCALLS.with(|c| c.set(c.get() + n));
}

/// Syscalls the current thread has made through [`Dir`] so far.
pub(crate) fn syscalls() -> u64 {
    SYSCALLS.with(|c| c.get())
}

/// A reusable buffer for whole-file reads. Its storage is zeroed once, when it grows,
/// and stays initialised, so `read` fills it without `unsafe` and without zeroing it
/// again on every read; the file's bytes are the first `len` (what it derefs to).
#[derive(Debug, Default)]
pub(crate) struct FileBuf {
    store: Vec<u8>,
    len: usize,
}

impl Deref for FileBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.store[..self.len]
    }
}

impl Dir {
    /// Open a directory by path.
    pub(crate) fn open(path: &Path) -> io::Result<Dir> {
        counted(1);
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir(fd))
    }

    /// Open the subdirectory for `pid`.
    pub(crate) fn open_pid(&self, pid: u32) -> io::Result<Dir> {
        let mut buf = [0u8; 16];
        let name = pid_cstr(pid, &mut buf);
        self.open_dir_at(name)
    }

    pub(crate) fn open_dir_at(&self, name: &CStr) -> io::Result<Dir> {
        counted(1);
        let fd = nix::fcntl::openat(
            &self.0,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir(fd))
    }

    /// Open the file `name` for reading, to be read in pieces or kept open (mountinfo,
    /// which is streamed and polled for changes).
    pub(crate) fn open_file_at(&self, name: &CStr) -> io::Result<std::fs::File> {
        counted(1);
        let fd = nix::fcntl::openat(
            &self.0,
            name,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
            Mode::empty(),
        )?;
        Ok(std::fs::File::from(fd))
    }

    /// Read the whole file `name` into `buf`, until end of file, up to [`MAX_FILE`].
    /// For files that /proc generates record by record (mountinfo, uid_map), where a
    /// short read does not mean the end.
    pub(crate) fn read_at(&self, name: &CStr, buf: &mut FileBuf) -> io::Result<()> {
        self.read_impl(name, buf, false)
    }

    /// Read a file that /proc generates in one piece (`single_open`: stat, status,
    /// cgroup): it comes back whole from one `read` when the buffer is big enough, so a
    /// short read ends it without a second call. Regular files behave the same way.
    pub(crate) fn read_single_at(&self, name: &CStr, buf: &mut FileBuf) -> io::Result<()> {
        self.read_impl(name, buf, true)
    }

    fn read_impl(&self, name: &CStr, buf: &mut FileBuf, single: bool) -> io::Result<()> {
        counted(1);
        // Closed on drop (one more syscall).
        let file = nix::fcntl::openat(
            &self.0,
            name,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
            Mode::empty(),
        )?;
        counted(1);
        buf.len = 0;
        if buf.store.len() < 4096 {
            buf.store.resize(4096, 0);
        }
        loop {
            let spare = buf.store.len() - buf.len;
            counted(1);
            let n = match nix::unistd::read(&file, &mut buf.store[buf.len..]) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            buf.len += n;
            if n == 0 || (single && n < spare) {
                return Ok(());
            }
            if buf.len >= MAX_FILE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("file is larger than {MAX_FILE} bytes"),
                ));
            }
            if buf.len == buf.store.len() {
                buf.store.resize(2 * buf.len, 0);
            }
        }
    }

    /// `fstat` of this directory (one syscall).
    // The time fields are i64 here but not on every target.
    #[allow(clippy::unnecessary_cast)]
    pub(crate) fn stat(&self) -> io::Result<DirStat> {
        counted(1);
        let st = nix::sys::stat::fstat(&self.0)?;
        Ok(DirStat {
            uid: st.st_uid,
            id: DirId {
                ino: st.st_ino,
                ctime_ns: (st.st_ctime as i64)
                    .wrapping_mul(1_000_000_000)
                    .wrapping_add(st.st_ctime_nsec as i64),
            },
        })
    }

    /// Whether this directory lies on a procfs (rather than, say, a fixture tree).
    pub(crate) fn is_procfs(&self) -> bool {
        counted(1);
        nix::sys::statfs::fstatfs(&self.0)
            .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::PROC_SUPER_MAGIC)
    }

    /// The target of the symlink `name`, into `buf`.
    pub(crate) fn readlink_at<'b>(
        &self,
        name: &CStr,
        buf: &'b mut [u8; 128],
    ) -> io::Result<&'b [u8]> {
        counted(1);
        // nix has readlinkat, but it returns an owned OsString: per call a PATH_MAX
        // buffer is allocated, shrunk and copied. Eight links per process on every cold
        // read made that 35% of a cold scan's user-space instructions (callgrind,
        // `scanbench passes cold`), far over the no-regression budget, so this one call
        // goes to libc directly into the caller's buffer.
        // SAFETY: `self.0` is an open directory fd for the duration of the call, `name`
        // is NUL-terminated, and the kernel writes at most `buf.len()` bytes into `buf`,
        // which is writable for that length.
        let n = unsafe {
            libc::readlinkat(
                self.0.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(&buf[..n as usize])
    }
}

/// What `fstat` says of a `/proc/<pid>` directory on a procfs.
///
/// - `uid`: the task's effective UID as the reader's user namespace sees it. procfs makes
///   the PID directory itself (unlike the files in it, which a non-dumpable task's root
///   owns) always belong to the effective UID, so that tools can learn it with one
///   `stat` (`task_dump_owner` in fs/proc/base.c). A task that is already dead shows UID
///   0, so a caller must read something else of the task *after* this to know it was
///   alive.
/// - `id`: which directory instance this is. procfs creates the inode for `/proc/<pid>`
///   when the PID is first looked up and ties it to that process for good; a process
///   that takes over the PID later gets a new inode, numbered from a counter that cannot
///   come round to the same number at the same change time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirStat {
    pub(crate) uid: u32,
    pub(crate) id: DirId,
}

/// The identity of one inode: number and change time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirId {
    ino: u64,
    ctime_ns: i64,
}

/// Write `pid` as a NUL-terminated decimal into `buf`.
pub(crate) fn pid_cstr(pid: u32, buf: &mut [u8; 16]) -> &CStr {
    let mut tmp = [0u8; 10];
    let mut n = pid;
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = tmp.len() - i;
    buf[..len].copy_from_slice(&tmp[i..]);
    buf[len] = 0;
    // At most ten digits, then exactly one NUL: always a valid C string.
    CStr::from_bytes_with_nul(&buf[..=len]).unwrap_or(c"0")
}

/// Whether an error means the process is gone (it exited mid-read).
pub(crate) fn is_vanished(e: &io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|n| n == Errno::ENOENT as i32 || n == Errno::ESRCH as i32)
}

/// Whether an error means we may not read it.
pub(crate) fn is_permission(e: &io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|n| n == Errno::EACCES as i32 || n == Errno::EPERM as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_names() {
        let mut b = [0u8; 16];
        assert_eq!(pid_cstr(0, &mut b).to_bytes(), b"0");
        assert_eq!(pid_cstr(4194304, &mut b).to_bytes(), b"4194304");
        assert_eq!(pid_cstr(u32::MAX, &mut b).to_bytes(), b"4294967295");
    }

    /// The kernel facts the scanner's UID and identity rest on, checked on this kernel:
    /// the PID directory belongs to the effective UID even when the task is not dumpable
    /// (its files then belong to root); it keeps its identity across lookups while the
    /// process lives; and once the task is dead its UID reads 0, which is why the scanner
    /// reads something else of the task after `fstat`.
    #[test]
    fn pid_directory_owner_and_identity() {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::{Gid, Uid};
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root: it changes a child's UIDs. Run the tests as root (CI \
             does); nothing was checked"
        );
        let (r, w) = nix::unistd::pipe().unwrap();
        // SAFETY: fork in a multi-threaded test process (nix marks it unsafe: only the
        // calling thread survives in the child). The child makes only async-signal-safe
        // calls (prctl, setresgid, setresuid, write, pause) and never returns.
        let child = match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
                let ok = nix::unistd::setresgid(Gid::from(1000), Gid::from(1000), Gid::from(1000))
                    .is_ok()
                    && nix::unistd::setresuid(Uid::from(2000), Uid::from(1500), Uid::from(1700))
                        .is_ok();
                let _ = nix::unistd::write(&w, if ok { b"y" } else { b"n" });
                loop {
                    nix::unistd::pause();
                }
            }
            nix::unistd::ForkResult::Parent { child } => child,
        };
        let pid = child.as_raw() as u32;
        let mut b = [0u8; 1];
        assert_eq!(nix::unistd::read(&r, &mut b).unwrap(), 1);
        assert_eq!(b[0], b'y', "the child could not change its UIDs");
        let proc_dir = Dir::open(Path::new("/proc")).unwrap();
        let dir = proc_dir.open_pid(pid).unwrap();
        let st = dir.stat().unwrap();
        assert_eq!(st.uid, 1500, "the effective UID, not the real or saved one");
        let mut buf = FileBuf::default();
        dir.read_single_at(c"status", &mut buf).unwrap();
        let status = String::from_utf8_lossy(&buf);
        assert!(status.contains("Uid:\t2000\t1500\t1700\t1500"), "{status}");
        let file_owner = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(format!("/proc/{pid}/status"))
                .unwrap()
                .uid()
        };
        assert_eq!(file_owner, 0, "a non-dumpable task's files belong to root");
        assert_eq!(proc_dir.open_pid(pid).unwrap().stat().unwrap().id, st.id);
        assert!(proc_dir.is_procfs());
        kill(child, Signal::SIGKILL).unwrap();
        nix::sys::wait::waitpid(child, None).unwrap();
        drop((r, w));
        assert_eq!(
            dir.stat().unwrap().uid,
            0,
            "a dead task's directory reads UID 0"
        );
        assert!(is_vanished(
            &dir.read_single_at(c"schedstat", &mut buf).unwrap_err()
        ));
        assert!(!Dir::open(Path::new("/")).unwrap().is_procfs());
    }

    #[test]
    fn reads_big_and_small_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("small"), b"abc").unwrap();
        let big = vec![b'x'; 100_000];
        std::fs::write(dir.path().join("big"), &big).unwrap();
        std::fs::write(dir.path().join("huge"), vec![b'y'; MAX_FILE + 10]).unwrap();
        let d = Dir::open(dir.path()).unwrap();
        let mut buf = FileBuf::default();
        d.read_at(c"small", &mut buf).unwrap();
        assert_eq!(&*buf, b"abc");
        d.read_at(c"big", &mut buf).unwrap();
        assert_eq!(&*buf, &big[..]);
        assert!(d.read_at(c"huge", &mut buf).is_err());
        let e = d.read_at(c"missing", &mut buf).unwrap_err();
        assert!(is_vanished(&e));
        d.read_single_at(c"small", &mut buf).unwrap();
        assert_eq!(&*buf, b"abc");
    }
}

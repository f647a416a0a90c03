//! Thin, allocation-free access to `/proc/<pid>` through directory file descriptors:
//! `openat` once per process, then `readlinkat` and one `read` per small file relative
//! to it. This is the scan's hot path, so it talks to the kernel directly.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Dir {
    /// Open a directory by path.
    pub(crate) fn open(path: &Path) -> io::Result<Dir> {
        let mut bytes = path.as_os_str().as_bytes().to_vec();
        bytes.push(0);
        let c = CStr::from_bytes_with_nul(&bytes)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
        counted(1);
        // SAFETY: `c` is a valid NUL-terminated string that outlives the call.
        let fd = cvt(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `fd` was just returned by open and is owned by nobody else.
        Ok(Dir(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Open the subdirectory for `pid`.
    pub(crate) fn open_pid(&self, pid: u32) -> io::Result<Dir> {
        let mut buf = [0u8; 16];
        let name = pid_cstr(pid, &mut buf);
        self.open_dir_at(name)
    }

    pub(crate) fn open_dir_at(&self, name: &CStr) -> io::Result<Dir> {
        counted(1);
        // SAFETY: valid dirfd and NUL-terminated name.
        let fd = cvt(unsafe {
            libc::openat(
                self.0.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: fresh fd, owned by nobody else.
        Ok(Dir(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Read the whole file `name` into `buf` (cleared first), until end of file, up to
    /// [`MAX_FILE`]. For files that /proc generates record by record (mountinfo,
    /// uid_map), where a short read does not mean the end.
    pub(crate) fn read_at(&self, name: &CStr, buf: &mut Vec<u8>) -> io::Result<()> {
        self.read_impl(name, buf, false)
    }

    /// Read a file that /proc generates in one piece (`single_open`: stat, status,
    /// cgroup): it comes back whole from one `read` when the buffer is big enough, so a
    /// short read ends it without a second call. Regular files behave the same way.
    pub(crate) fn read_single_at(&self, name: &CStr, buf: &mut Vec<u8>) -> io::Result<()> {
        self.read_impl(name, buf, true)
    }

    fn read_impl(&self, name: &CStr, buf: &mut Vec<u8>, single: bool) -> io::Result<()> {
        counted(1);
        // SAFETY: valid dirfd and NUL-terminated name.
        let fd = cvt(unsafe {
            libc::openat(
                self.0.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY,
            )
        })?;
        // SAFETY: fresh fd, owned by nobody else; closed on drop (one more syscall).
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        counted(1);
        buf.clear();
        if buf.capacity() < 4096 {
            buf.reserve(4096);
        }
        loop {
            let spare = buf.capacity() - buf.len();
            counted(1);
            // SAFETY: the destination is the vector's spare capacity, `spare` bytes long.
            let n = unsafe {
                libc::read(
                    file.as_raw_fd(),
                    buf.as_mut_ptr().add(buf.len()).cast(),
                    spare,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let n = n as usize;
            // SAFETY: the kernel initialised `n` bytes of spare capacity.
            unsafe { buf.set_len(buf.len() + n) };
            if n == 0 || (single && n < spare) {
                return Ok(());
            }
            if buf.len() >= MAX_FILE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("file is larger than {MAX_FILE} bytes"),
                ));
            }
            if buf.len() == buf.capacity() {
                buf.reserve(buf.len());
            }
        }
    }

    /// `fstat` of this directory (one syscall).
    // The time fields are i64 here but not on every target.
    #[allow(clippy::unnecessary_cast)]
    pub(crate) fn stat(&self) -> io::Result<DirStat> {
        counted(1);
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: valid fd; the kernel fills `st` when it returns 0.
        cvt(unsafe { libc::fstat(self.0.as_raw_fd(), st.as_mut_ptr()) })?;
        // SAFETY: fstat succeeded, so `st` is initialised.
        let st = unsafe { st.assume_init() };
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
        let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
        // SAFETY: valid fd; the kernel fills `st` when it returns 0.
        if unsafe { libc::fstatfs(self.0.as_raw_fd(), st.as_mut_ptr()) } != 0 {
            return false;
        }
        // SAFETY: fstatfs succeeded, so `st` is initialised.
        let st = unsafe { st.assume_init() };
        // PROC_SUPER_MAGIC (its libc type differs between glibc and musl).
        #[allow(clippy::unnecessary_cast)]
        let magic = st.f_type as u64;
        magic == 0x9fa0
    }

    /// The target of the symlink `name`, into `buf`.
    pub(crate) fn readlink_at<'b>(
        &self,
        name: &CStr,
        buf: &'b mut [u8; 128],
    ) -> io::Result<&'b [u8]> {
        counted(1);
        // SAFETY: valid dirfd, NUL-terminated name, and `buf` is writable for its length.
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

impl Dir {
    /// The numeric entries of this directory (the TIDs of a `task` directory) into `out`,
    /// cleared first, by `getdents64` into `buf`: no allocation once both have grown.
    /// Reads from the directory's current position, so once per opened directory.
    pub(crate) fn list_numeric(&self, buf: &mut Vec<u8>, out: &mut Vec<u32>) -> io::Result<()> {
        out.clear();
        buf.clear();
        if buf.capacity() < 4096 {
            buf.reserve(4096);
        }
        let mut dir = rustix::fs::RawDir::new(&self.0, buf.spare_capacity_mut());
        loop {
            // An empty buffer means that this `next` makes one `getdents64` call.
            if dir.is_buffer_empty() {
                counted(1);
            }
            match dir.next() {
                None => return Ok(()),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(entry)) => {
                    let name = entry.file_name().to_bytes();
                    let n = (!name.is_empty() && name.len() <= 10)
                        .then(|| std::str::from_utf8(name).ok()?.parse::<u32>().ok())
                        .flatten();
                    if let Some(n) = n {
                        out.push(n);
                    }
                }
            }
        }
    }
}

/// `task/<tid>/<name>`, NUL-terminated in `buf`: a path relative to a `/proc/<pid>`
/// directory that reaches one of its threads without opening that thread's directory.
pub(crate) fn task_path<'b>(tid: u32, name: &CStr, buf: &'b mut [u8; 64]) -> &'b CStr {
    let mut digits = [0u8; 16];
    let tid = pid_cstr(tid, &mut digits).to_bytes();
    let name = name.to_bytes();
    // "task/" + at most 10 digits + "/" + the name: the names used are a few bytes long.
    let name = &name[..name.len().min(64 - 5 - tid.len() - 2)];
    let sep: &[u8] = if name.is_empty() { b"" } else { b"/" };
    let mut len = 0;
    for part in [&b"task/"[..], tid, sep, name] {
        buf[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    buf[len] = 0;
    // The name has no NUL (it came from a CStr), nor have the digits: exactly one NUL.
    CStr::from_bytes_with_nul(&buf[..=len]).unwrap_or(c"task")
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
    // SAFETY: digits followed by exactly one NUL.
    unsafe { CStr::from_bytes_with_nul_unchecked(&buf[..=len]) }
}

/// Whether an error means the process is gone (it exited mid-read).
pub(crate) fn is_vanished(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH))
}

/// Whether an error means we may not read it.
pub(crate) fn is_permission(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM))
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
        // SAFETY: plain syscall.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root to change a child's UIDs");
            return;
        }
        let mut fds = [0; 2];
        // SAFETY: plain syscall.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let [r, w] = fds;
        // SAFETY: the child makes only async-signal-safe calls.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: async-signal-safe calls only.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                let ok = libc::setresgid(1000, 1000, 1000) == 0
                    && libc::setresuid(2000, 1500, 1700) == 0;
                libc::write(w, if ok { c"y" } else { c"n" }.as_ptr().cast(), 1);
                loop {
                    libc::pause();
                }
            }
        }
        let mut b = 0u8;
        // SAFETY: reading one byte into a local.
        assert_eq!(unsafe { libc::read(r, (&mut b as *mut u8).cast(), 1) }, 1);
        assert_eq!(b, b'y', "the child could not change its UIDs");
        let proc_dir = Dir::open(Path::new("/proc")).unwrap();
        let dir = proc_dir.open_pid(pid as u32).unwrap();
        let st = dir.stat().unwrap();
        assert_eq!(st.uid, 1500, "the effective UID, not the real or saved one");
        let mut buf = Vec::new();
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
        assert_eq!(
            proc_dir.open_pid(pid as u32).unwrap().stat().unwrap().id,
            st.id
        );
        assert!(proc_dir.is_procfs());
        // SAFETY: our own child and pipe.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
            libc::close(r);
            libc::close(w);
        }
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
    fn task_paths() {
        let mut b = [0u8; 64];
        assert_eq!(task_path(42, c"stat", &mut b).to_bytes(), b"task/42/stat");
        assert_eq!(task_path(42, c"", &mut b).to_bytes(), b"task/42");
        assert_eq!(
            task_path(u32::MAX, c"ns/cgroup", &mut b).to_bytes(),
            b"task/4294967295/ns/cgroup"
        );
    }

    /// A thread's directory is listed under `task`, with the leader's.
    #[test]
    fn lists_the_threads_of_this_process() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            // SAFETY: plain syscall.
            tx.send(unsafe { libc::gettid() } as u32).unwrap();
            let _ = stop_rx.recv();
        });
        let tid = rx.recv().unwrap();
        let task = Dir::open(Path::new("/proc/self/task")).unwrap();
        let (mut buf, mut tids) = (Vec::new(), Vec::new());
        task.list_numeric(&mut buf, &mut tids).unwrap();
        // SAFETY: plain syscall.
        let me = unsafe { libc::getpid() } as u32;
        assert!(tids.contains(&me) && tids.contains(&tid), "{tids:?}");
        stop_tx.send(()).unwrap();
        t.join().unwrap();
    }

    #[test]
    fn reads_big_and_small_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("small"), b"abc").unwrap();
        let big = vec![b'x'; 100_000];
        std::fs::write(dir.path().join("big"), &big).unwrap();
        std::fs::write(dir.path().join("huge"), vec![b'y'; MAX_FILE + 10]).unwrap();
        let d = Dir::open(dir.path()).unwrap();
        let mut buf = Vec::new();
        d.read_at(c"small", &mut buf).unwrap();
        assert_eq!(buf, b"abc");
        d.read_at(c"big", &mut buf).unwrap();
        assert_eq!(buf, big);
        assert!(d.read_at(c"huge", &mut buf).is_err());
        let e = d.read_at(c"missing", &mut buf).unwrap_err();
        assert!(is_vanished(&e));
        d.read_single_at(c"small", &mut buf).unwrap();
        assert_eq!(buf, b"abc");
    }
}

//! The reference loop: the least a scan can do to read the data nsexporter needs, with
//! raw syscalls and no parsing beyond finding the user namespace inode.
//!
//! For every entry of the procfs root: `openat` the PID directory, one `read` each of
//! `stat` (identity, kernel-thread flag, comm), `status` (UID) and `cgroup`, a
//! `readlinkat` of each of the eight `ns/*` links, `close`; and the uid_map once per
//! user namespace, read until end of file, as nsexporter does. It builds nothing, so a
//! scan's cost over it is the price of parsing, attribution and the snapshot.
//!
//! That is the floor as issue 3 defines it (the UID from `status`). Two variants:
//! [`RefLoop::uid_by_fstat`] takes the UID from `fstat` of the PID directory instead,
//! which procfs makes the effective UID's (one syscall, no file to generate): the
//! fastest raw loop for the same data, and how nsexporter reads the UID on a procfs.
//! [`RefLoop::with_schedstat`] also reads `schedstat`, which a cold nsexporter scan
//! reads as the baseline that lets later scans skip the links: with both, the loop
//! makes exactly the calls a cold scan makes.
//!
//! Shared by `examples/scanbench` (the load script's side-by-side runs) and
//! `benches/scan.rs` (criterion).

use std::ffi::CStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

const LINKS: [&CStr; 8] = [
    c"ns/cgroup",
    c"ns/ipc",
    c"ns/mnt",
    c"ns/net",
    c"ns/pid",
    c"ns/time",
    c"ns/user",
    c"ns/uts",
];
const USER: usize = 6;

/// Reusable state: the procfs directory, one file buffer, the user namespaces seen.
pub struct RefLoop {
    proc: OwnedFd,
    procfs: std::path::PathBuf,
    buf: Vec<u8>,
    userns: Vec<u64>,
    schedstat: bool,
    fstat_uid: bool,
}

/// What one pass saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pass {
    /// Entries of the procfs root that were read.
    pub entries: usize,
    /// Bytes read, so the work cannot be optimised away.
    pub bytes: usize,
    /// Distinct user namespaces (uid_maps read).
    pub userns: usize,
}

fn open_dir(path: &Path) -> OwnedFd {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: valid NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    assert!(fd >= 0, "cannot open {}", path.display());
    // SAFETY: fresh fd.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

impl RefLoop {
    pub fn new(procfs: &Path) -> RefLoop {
        RefLoop {
            proc: open_dir(procfs),
            procfs: procfs.to_path_buf(),
            buf: vec![0; 4096],
            userns: Vec::new(),
            schedstat: false,
            fstat_uid: false,
        }
    }

    pub fn uid_by_fstat(mut self) -> RefLoop {
        self.fstat_uid = true;
        self
    }

    /// Also read `schedstat` of every process, as a cold nsexporter scan does.
    pub fn with_schedstat(mut self) -> RefLoop {
        self.schedstat = true;
        self
    }

    /// The numeric entries of the procfs root (as nsexporter lists them).
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = std::fs::read_dir(&self.procfs)
            .expect("list procfs")
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
            .collect();
        pids.sort_unstable();
        pids
    }

    /// One `read` of `name` relative to `dir` (or until EOF with `whole`).
    fn read(&mut self, dir: RawFd, name: &CStr, whole: bool) -> usize {
        // SAFETY: valid dirfd and NUL-terminated name.
        let fd = unsafe { libc::openat(dir, name.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return 0;
        }
        let mut total = 0;
        loop {
            // SAFETY: `buf` is writable for its length.
            let n = unsafe { libc::read(fd, self.buf.as_mut_ptr().cast(), self.buf.len()) };
            if n <= 0 {
                break;
            }
            total += n as usize;
            if !whole && (n as usize) < self.buf.len() {
                break;
            }
        }
        // SAFETY: `fd` is ours.
        unsafe { libc::close(fd) };
        total
    }

    /// One full pass: list, then read every process.
    pub fn pass(&mut self) -> Pass {
        let pids = self.pids();
        self.pass_over(&pids)
    }

    /// One pass over `pids`.
    pub fn pass_over(&mut self, pids: &[u32]) -> Pass {
        self.userns.clear();
        let mut out = Pass::default();
        let mut link = [0u8; 128];
        for &pid in pids {
            let mut digits = [0u8; 16];
            let name = pid_cstr(pid, &mut digits);
            // SAFETY: valid dirfd and NUL-terminated name.
            let fd = unsafe {
                libc::openat(
                    self.proc.as_raw_fd(),
                    name.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                )
            };
            if fd < 0 {
                continue;
            }
            out.entries += 1;
            out.bytes += self.read(fd, c"stat", false);
            if self.schedstat {
                out.bytes += self.read(fd, c"schedstat", false);
            }
            if self.fstat_uid {
                let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
                // SAFETY: valid fd; the kernel fills `st` on success.
                if unsafe { libc::fstat(fd, st.as_mut_ptr()) } == 0 {
                    // SAFETY: fstat succeeded.
                    out.bytes += unsafe { st.assume_init() }.st_uid as usize & 1;
                }
            } else {
                out.bytes += self.read(fd, c"status", false);
            }
            out.bytes += self.read(fd, c"cgroup", false);
            for (i, l) in LINKS.iter().enumerate() {
                // SAFETY: valid dirfd, NUL-terminated name, writable buffer.
                let n = unsafe {
                    libc::readlinkat(fd, l.as_ptr(), link.as_mut_ptr().cast(), link.len())
                };
                if n <= 0 {
                    continue;
                }
                out.bytes += n as usize;
                if i == USER {
                    let ino = link[..n as usize]
                        .iter()
                        .filter(|b| b.is_ascii_digit())
                        .fold(0u64, |v, b| v * 10 + u64::from(b - b'0'));
                    if !self.userns.contains(&ino) {
                        self.userns.push(ino);
                        out.bytes += self.read(fd, c"uid_map", true);
                    }
                }
            }
            // SAFETY: `fd` is ours.
            unsafe { libc::close(fd) };
        }
        out.userns = self.userns.len();
        out
    }
}

/// `pid` as a NUL-terminated decimal, without allocating.
fn pid_cstr(pid: u32, buf: &mut [u8; 16]) -> &CStr {
    let mut n = pid;
    let mut i = 10;
    buf[10] = 0;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    CStr::from_bytes_with_nul(&buf[i..=10]).expect("digits then one NUL")
}

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

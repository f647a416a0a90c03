//! Reads of runtime files that cannot leave the directory they are asked under: no
//! symlink, no `..`, no magic link, regular files only, and a bounded size.
//!
//! Runtime state directories are written by root, but what they hold comes partly from
//! workloads (a container's rootfs is mounted beside its `config.json`; annotations come
//! from pod specs), and a bundle holds the container's environment, so its secrets. The
//! exporter runs as root with the host's root file system mounted: one symlink followed
//! the wrong way would hand it `/etc/shadow`. Every open here therefore goes through
//! `openat2(2)` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`
//! relative to a directory descriptor (Linux 5.6+), or, where the kernel lacks it (or a
//! seccomp filter hides it), through a walk that opens one component at a time with
//! `O_NOFOLLOW`. Both refuse any symlink below the directory.
//!
//! The runtime directory itself is found under the host's root (`--path.rootfs`) with
//! `RESOLVE_IN_ROOT`: a host whose `/var/lib/docker` is a symlink to `/data/docker` works,
//! and the symlink is resolved as the host would, never to the exporter's own files.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path};
use std::sync::atomic::{AtomicU8, Ordering};

use rustix::fs::{openat2, FileType, Mode, OFlags, ResolveFlags};

/// Why a runtime file could not be read. Carries no file content, ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The file or a directory on its path does not exist: the container is gone, the
    /// runtime keeps its state elsewhere, or it is another runtime's container.
    Missing,
    /// A symlink, `..` or magic link on the way: refused, never followed.
    Symlink,
    /// Not a regular file (a FIFO, a device, a directory).
    NotRegular,
    /// Larger than the bound for its kind of file.
    TooLarge,
    /// The content did not parse (malformed or too deeply nested JSON, a corrupt db).
    Parse,
    /// Reading was refused (EACCES, EPERM).
    Permission,
    /// The runtime's database was locked by a writer; tried again on a later scan.
    Busy,
    /// Any other I/O error.
    Io,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::Missing,
        ErrorKind::Symlink,
        ErrorKind::NotRegular,
        ErrorKind::TooLarge,
        ErrorKind::Parse,
        ErrorKind::Permission,
        ErrorKind::Busy,
        ErrorKind::Io,
    ];

    /// The `kind` label value.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorKind::Missing => "missing",
            ErrorKind::Symlink => "symlink",
            ErrorKind::NotRegular => "not_regular",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Parse => "parse",
            ErrorKind::Permission => "permission",
            ErrorKind::Busy => "busy",
            ErrorKind::Io => "io",
        }
    }

    pub(crate) fn of_io(e: &io::Error) -> ErrorKind {
        match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ESRCH) => ErrorKind::Missing,
            // ELOOP: a symlink under RESOLVE_NO_SYMLINKS or O_NOFOLLOW; EXDEV: `..` or an
            // absolute link under RESOLVE_BENEATH.
            Some(libc::ELOOP) | Some(libc::EXDEV) => ErrorKind::Symlink,
            Some(libc::EACCES) | Some(libc::EPERM) => ErrorKind::Permission,
            Some(libc::EFBIG) => ErrorKind::TooLarge,
            Some(libc::EWOULDBLOCK) => ErrorKind::Busy,
            _ => ErrorKind::Io,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed read: what kind, of which file, and the OS error where there was one.
/// `Display` shows the file's name and the error, never its content.
#[derive(Debug)]
pub struct ReadError {
    pub kind: ErrorKind,
    /// The file's role (`config.json`, `hostconfig.json`, `bolt_state.db`...).
    pub file: &'static str,
    /// What went wrong, in words that hold no file content.
    pub detail: String,
}

impl ReadError {
    pub(crate) fn io(file: &'static str, e: &io::Error) -> ReadError {
        ReadError {
            kind: ErrorKind::of_io(e),
            file,
            detail: e.to_string(),
        }
    }

    pub(crate) fn new(kind: ErrorKind, file: &'static str, detail: impl Into<String>) -> Self {
        ReadError {
            kind,
            file,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.file, self.kind, self.detail)
    }
}

impl std::error::Error for ReadError {}

/// Whether `openat2` works here: unknown, yes, no (ENOSYS, or a seccomp filter's EPERM).
static OPENAT2: AtomicU8 = AtomicU8::new(OPENAT2_UNKNOWN);
const OPENAT2_UNKNOWN: u8 = 0;
const OPENAT2_YES: u8 = 1;
const OPENAT2_NO: u8 = 2;

/// An open directory that reads happen under.
#[derive(Debug)]
pub struct SafeDir {
    fd: OwnedFd,
    /// Tests force the component walk, to prove the fallback on a kernel with openat2.
    walk_only: bool,
}

/// How a relative path must be resolved.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resolve {
    /// Below the directory, never through a symlink.
    Beneath,
    /// As if the directory were `/`: symlinks are followed, but only within it.
    InRoot,
}

impl SafeDir {
    /// Open a directory by its path as the exporter sees it (the host root, a test's
    /// temporary directory). This one path is trusted: it comes from configuration.
    pub fn open(path: &Path) -> io::Result<SafeDir> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(SafeDir {
            fd,
            walk_only: false,
        })
    }

    /// The same directory, but every later open walks components with `O_NOFOLLOW`
    /// instead of using `openat2`: the fallback for kernels before 5.6.
    #[cfg(test)]
    pub(crate) fn walk_only(mut self) -> SafeDir {
        self.walk_only = true;
        self
    }

    /// Open the directory `rel` as the host would resolve it with this directory as its
    /// root (`RESOLVE_IN_ROOT`): the configured runtime locations, whose symlinks (a
    /// moved `/var/lib/docker`) are the host administrator's. Without openat2, symlinks
    /// are refused.
    pub fn open_dir_in_root(&self, rel: &Path) -> io::Result<SafeDir> {
        let fd = self.open_rel(
            rel,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Resolve::InRoot,
        )?;
        Ok(SafeDir {
            fd,
            walk_only: self.walk_only,
        })
    }

    /// Open the directory `rel` below this one, through no symlink.
    pub fn open_dir(&self, rel: &Path) -> io::Result<SafeDir> {
        let fd = self.open_rel(
            rel,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Resolve::Beneath,
        )?;
        Ok(SafeDir {
            fd,
            walk_only: self.walk_only,
        })
    }

    /// Read the regular file `rel` below this directory, through no symlink, refusing
    /// anything larger than `max` bytes before reading it. `file` names its role in
    /// errors.
    pub fn read(&self, rel: &Path, max: u64, file: &'static str) -> Result<Vec<u8>, ReadError> {
        let f = self.open_regular(rel, file)?;
        read_bounded(f, max, file)
    }

    /// Open the regular file `rel` below this directory for reading, through no
    /// symlink. `O_NONBLOCK` keeps a FIFO planted in its place from blocking the open.
    pub fn open_regular(&self, rel: &Path, file: &'static str) -> Result<File, ReadError> {
        let fd = self
            .open_rel(
                rel,
                OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
                Resolve::Beneath,
            )
            .map_err(|e| ReadError::io(file, &e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| ReadError::io(file, &e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(ReadError::new(
                ErrorKind::NotRegular,
                file,
                "not a regular file",
            ));
        }
        Ok(File::from(fd))
    }

    /// The names of the subdirectories of this directory (`.` and `..` left out), at
    /// most `max` of them.
    pub fn subdirs(&self, max: usize) -> io::Result<Vec<String>> {
        let fd = self.open_rel(
            Path::new("."),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Resolve::Beneath,
        )?;
        let mut out = Vec::new();
        for entry in rustix::fs::Dir::new(fd)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." || entry.file_type() != FileType::Directory {
                continue;
            }
            if let Ok(s) = std::str::from_utf8(name) {
                out.push(s.to_owned());
            }
            if out.len() >= max {
                break;
            }
        }
        out.sort();
        Ok(out)
    }

    /// The inode of the namespace file `rel`, resolved as the host would with this
    /// directory as its root (`/run/netns/cni-…`, or `/var/run/netns/…` through the
    /// host's `/var/run` symlink), checked to be an nsfs file.
    pub fn nsfs_inode_in_root(&self, rel: &Path) -> io::Result<u64> {
        let fd = self.open_rel(rel, OFlags::PATH | OFlags::CLOEXEC, Resolve::InRoot)?;
        let fs = rustix::fs::fstatfs(&fd)?;
        // NSFS_MAGIC, from linux/magic.h. The field's type differs between targets.
        #[allow(clippy::unnecessary_cast)]
        if fs.f_type as i64 != 0x6e73_6673 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a namespace file",
            ));
        }
        Ok(rustix::fs::fstat(&fd)?.st_ino)
    }

    fn open_rel(&self, rel: &Path, flags: OFlags, how: Resolve) -> io::Result<OwnedFd> {
        let rel = relative(rel)?;
        if !self.walk_only && OPENAT2.load(Ordering::Relaxed) != OPENAT2_NO {
            let resolve = match how {
                Resolve::Beneath => {
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
                }
                Resolve::InRoot => ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            };
            // No O_NOFOLLOW: with it, a final symlink opened with O_DIRECTORY fails with
            // ENOTDIR (read as missing) instead of RESOLVE_NO_SYMLINKS's ELOOP.
            match openat2(&self.fd, rel, flags, Mode::empty(), resolve) {
                Ok(fd) => {
                    OPENAT2.store(OPENAT2_YES, Ordering::Relaxed);
                    return Ok(fd);
                }
                // ENOSYS: before Linux 5.6. EPERM from a seccomp filter that predates
                // openat2 would also mean "not here", but EPERM is a real answer once
                // openat2 has worked, so it only counts before.
                Err(e)
                    if e == rustix::io::Errno::NOSYS
                        || (e == rustix::io::Errno::PERM
                            && OPENAT2.load(Ordering::Relaxed) == OPENAT2_UNKNOWN) =>
                {
                    OPENAT2.store(OPENAT2_NO, Ordering::Relaxed);
                }
                Err(e) => return Err(e.into()),
            }
        }
        walk(&self.fd, rel, flags)
    }
}

/// `rel` as a path with only normal components; `..`, a root or a prefix is refused, so
/// no caller can build a path that climbs out (the kernel would refuse it too).
fn relative(rel: &Path) -> io::Result<&Path> {
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            _ => {
                return Err(io::Error::from_raw_os_error(libc::EXDEV));
            }
        }
    }
    Ok(rel)
}

/// The fallback: open `rel` one component at a time below `dir`, each with
/// `O_NOFOLLOW`, so a symlink anywhere fails with `ELOOP` (or `ENOTDIR` for a directory
/// component opened with `O_DIRECTORY`, which the caller sees as missing). Mount points
/// are crossed, as `RESOLVE_BENEATH` crosses them.
fn walk(dir: &OwnedFd, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let comps: Vec<_> = rel
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let Some((last, parents)) = comps.split_last() else {
        return Ok(rustix::fs::openat(dir, ".", flags, Mode::empty())?);
    };
    let mut cur: Option<OwnedFd> = None;
    for c in parents {
        let base = cur.as_ref().map(|f| f.as_fd()).unwrap_or(dir.as_fd());
        let next = rustix::fs::openat(
            base,
            c.as_os_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            // O_PATH|O_DIRECTORY|O_NOFOLLOW on a symlink fails with ENOTDIR: say what it was.
            if e == rustix::io::Errno::NOTDIR && is_symlink(base, c.as_os_str()) {
                io::Error::from_raw_os_error(libc::ELOOP)
            } else {
                e.into()
            }
        })?;
        cur = Some(next);
    }
    let base = cur.as_ref().map(|f| f.as_fd()).unwrap_or(dir.as_fd());
    if flags.contains(OFlags::PATH) && is_symlink(base, last.as_os_str()) {
        // O_PATH|O_NOFOLLOW would open the link itself.
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    let fd = rustix::fs::openat(
        base,
        last.as_os_str(),
        flags | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| {
        if e == rustix::io::Errno::NOTDIR && is_symlink(base, last.as_os_str()) {
            io::Error::from_raw_os_error(libc::ELOOP)
        } else {
            io::Error::from(e)
        }
    })?;
    Ok(fd)
}

fn is_symlink(dir: std::os::fd::BorrowedFd<'_>, name: &std::ffi::OsStr) -> bool {
    rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
        .unwrap_or(false)
}

/// Read all of `f`, refusing it when its size says more than `max` bytes, and when it
/// turns out longer than `max` anyway (a file that grows, a size that lies).
pub(crate) fn read_bounded(f: File, max: u64, file: &'static str) -> Result<Vec<u8>, ReadError> {
    let len = f.metadata().map_err(|e| ReadError::io(file, &e))?.len();
    if len > max {
        return Err(ReadError::new(
            ErrorKind::TooLarge,
            file,
            format!("{len} bytes, more than the {max} allowed"),
        ));
    }
    let mut buf = Vec::with_capacity(len as usize);
    f.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ReadError::io(file, &e))?;
    if buf.len() as u64 > max {
        return Err(ReadError::new(
            ErrorKind::TooLarge,
            file,
            format!("more than the {max} bytes allowed"),
        ));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn both(root: &Path) -> [SafeDir; 2] {
        [
            SafeDir::open(root).unwrap(),
            SafeDir::open(root).unwrap().walk_only(),
        ]
    }

    #[test]
    fn reads_regular_files_below() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a/b")).unwrap();
        std::fs::write(t.path().join("a/b/config.json"), b"{}").unwrap();
        for d in both(t.path()) {
            assert_eq!(
                d.read(Path::new("a/b/config.json"), 10, "f").unwrap(),
                b"{}"
            );
            assert_eq!(
                d.read(Path::new("/a/b/config.json"), 10, "f").unwrap(),
                b"{}",
                "a leading / is relative to the directory"
            );
            let e = d.read(Path::new("a/x/config.json"), 10, "f").unwrap_err();
            assert_eq!(e.kind, ErrorKind::Missing);
            let sub = d.open_dir(Path::new("a")).unwrap();
            assert_eq!(sub.subdirs(10).unwrap(), vec!["b".to_string()]);
        }
    }

    #[test]
    fn refuses_symlinks_dotdot_and_non_regular_files() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("dir")).unwrap();
        std::fs::write(t.path().join("outside"), b"secret").unwrap();
        symlink("/etc/shadow", root.join("shadow")).unwrap();
        symlink(t.path().join("outside"), root.join("abs")).unwrap();
        symlink("../outside", root.join("rel")).unwrap();
        symlink("dir", root.join("inner")).unwrap();
        std::fs::write(root.join("dir/f"), b"ok").unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            root.join("fifo"),
            Mode::from_raw_mode(0o600),
        )
        .unwrap();
        for d in both(&root) {
            for (p, kind) in [
                ("shadow", ErrorKind::Symlink),
                ("abs", ErrorKind::Symlink),
                ("rel", ErrorKind::Symlink),
                // Even a symlink that stays inside is refused: nothing in a bundle is one.
                ("inner/f", ErrorKind::Symlink),
                ("../outside", ErrorKind::Symlink),
                ("dir/../../outside", ErrorKind::Symlink),
                ("fifo", ErrorKind::NotRegular),
                ("dir", ErrorKind::NotRegular),
            ] {
                let e = d.read(Path::new(p), 100, "f").unwrap_err();
                assert_eq!(e.kind, kind, "{p}: {e}");
                assert!(!e.to_string().contains("secret"));
            }
            assert_eq!(d.read(Path::new("dir/f"), 100, "f").unwrap(), b"ok");
        }
    }

    #[test]
    fn bounds_the_size_before_reading() {
        let t = tempfile::tempdir().unwrap();
        let f = File::create(t.path().join("huge")).unwrap();
        // A sparse 8 GiB file: allocating for it would be the failure.
        f.set_len(8 << 30).unwrap();
        std::fs::write(t.path().join("edge"), vec![b'x'; 100]).unwrap();
        for d in both(t.path()) {
            let e = d.read(Path::new("huge"), 4 << 20, "f").unwrap_err();
            assert_eq!(e.kind, ErrorKind::TooLarge, "{e}");
            assert_eq!(d.read(Path::new("edge"), 100, "f").unwrap().len(), 100);
            assert_eq!(
                d.read(Path::new("edge"), 99, "f").unwrap_err().kind,
                ErrorKind::TooLarge
            );
        }
    }

    #[test]
    fn in_root_resolution_keeps_absolute_symlinks_inside() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("data/docker/containers")).unwrap();
        std::fs::create_dir_all(root.join("var/lib")).unwrap();
        // The host's /var/lib/docker -> /data/docker, absolute as administrators write it.
        symlink("/data/docker", root.join("var/lib/docker")).unwrap();
        let d = SafeDir::open(root).unwrap();
        let docker = d.open_dir_in_root(Path::new("/var/lib/docker")).unwrap();
        assert_eq!(docker.subdirs(10).unwrap(), vec!["containers".to_string()]);
        // A symlink to / inside the root stays at the root.
        symlink("/", root.join("up")).unwrap();
        let up = d.open_dir_in_root(Path::new("up/up/up")).unwrap();
        assert!(up.subdirs(10).unwrap().contains(&"data".to_string()));
        // The walk refuses what it cannot resolve safely.
        let w = SafeDir::open(root).unwrap().walk_only();
        assert_eq!(
            w.open_dir_in_root(Path::new("/var/lib/docker"))
                .unwrap_err()
                .raw_os_error(),
            Some(libc::ELOOP)
        );
    }

    #[test]
    fn namespace_files_resolve_to_their_inode() {
        let d = SafeDir::open(Path::new("/")).unwrap();
        // Through the magic link, /proc/self/ns/net is refused (RESOLVE_NO_MAGICLINKS);
        // callers resolve /proc paths through the host procfs instead.
        assert!(d
            .nsfs_inode_in_root(Path::new("/proc/self/ns/net"))
            .is_err());
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("plain"), b"").unwrap();
        let d = SafeDir::open(t.path()).unwrap();
        assert!(d.nsfs_inode_in_root(Path::new("plain")).is_err());
    }
}

//! Mount tables on the real kernel: a mountinfo of any size is read whole in bounded
//! memory (a 5 MiB table still shows its pinned namespaces), and a table is read only
//! when its namespace's mounts changed, through a file tied to the namespace, not to the
//! member it was opened through. Every namespace, mount and process made here goes away
//! with the processes, which die on drop (and with the test process).

mod common;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nsexporter::model::{NsType, Snapshot};
use nsexporter::scan::{ScanOptions, Scanner};

use common::require_root;

fn mntns(pid: u32) -> u64 {
    let l = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).expect("ns/mnt link");
    let l = l.to_string_lossy();
    l.trim_start_matches("mnt:[")
        .trim_end_matches(']')
        .parse()
        .expect("mnt inode")
}

/// The net namespaces bound below `under` in `pid`'s mount table, read with nothing but
/// a `grep` (the host may have nsfs mounts of its own, which every copy shows too).
fn nsfs_net_inodes(pid: u32, under: &Path) -> Vec<u64> {
    let text = std::fs::read(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let under = under.display().to_string();
    String::from_utf8_lossy(&text)
        .lines()
        .filter(|l| l.contains(" - nsfs "))
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&under)))
        .filter_map(|l| l.split(' ').nth(3))
        .filter_map(|r| r.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok())
        .collect()
}

fn pinned_net(s: &Snapshot) -> Vec<u64> {
    s.pinned
        .iter()
        .filter(|p| p.ns_type == NsType::Net)
        .map(|p| p.inode)
        .collect()
}

/// A process killed (and reaped) on drop.
struct Proc(Child);

impl Proc {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sleep` in a private mount namespace of its own.
fn private_mntns() -> Proc {
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sleep", "600"])
        .stdout(Stdio::null())
        .spawn()
        .expect("unshare");
    let p = Proc(child);
    let own = mntns(std::process::id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{}/comm", p.pid()))
        .map_or(true, |c| c.trim() != "sleep")
        || mntns(p.pid()) == own
    {
        assert!(Instant::now() < deadline, "unshare --mount did not happen");
        std::thread::sleep(Duration::from_millis(10));
    }
    p
}

/// `sleep` joining `pid`'s mount namespace.
fn join_mntns(pid: u32) -> Proc {
    let child = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "sleep", "600"])
        .stdout(Stdio::null())
        .spawn()
        .expect("nsenter");
    let p = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{}/comm", p.pid()))
        .map_or(true, |c| c.trim() != "sleep")
    {
        assert!(Instant::now() < deadline, "nsenter did not exec sleep");
        std::thread::sleep(Duration::from_millis(10));
    }
    p
}

/// Run `cmd` in `pid`'s mount namespace.
fn in_mntns(pid: u32, cmd: &[&str]) {
    let st = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "--"])
        .args(cmd)
        .status()
        .expect("nsenter");
    assert!(st.success(), "nsenter -t {pid} -m {cmd:?} failed");
}

/// A forked child in a private mount namespace holding `binds` bind mounts of
/// directories with long names onto themselves and `pins` network namespaces bound to
/// files (each made with `unshare(CLONE_NEWNET)`; the last one is also its own).
/// It dies with the test process; dropping it kills it.
struct BigTable {
    pid: libc::pid_t,
    dir: tempfile::TempDir,
}

impl BigTable {
    fn new(binds: usize, pins: usize) -> BigTable {
        let dir = tempfile::tempdir().expect("tempdir");
        // Four components of about 250 bytes: mount point and root near 1 KiB each.
        let mut base = dir.path().to_path_buf();
        for c in ['a', 'b', 'c'] {
            base.push(c.to_string().repeat(250));
        }
        let cstr = |p: &Path| CString::new(p.as_os_str().as_bytes()).unwrap();
        let mut leaves = Vec::new();
        for i in 0..binds {
            let p = base.join(format!("{i:06}{}", "d".repeat(230)));
            std::fs::create_dir_all(&p).unwrap();
            leaves.push(cstr(&p));
        }
        let mut files = Vec::new();
        for i in 0..pins {
            let p = dir.path().join(format!("netns-{i}"));
            std::fs::write(&p, b"").unwrap();
            files.push(cstr(&p));
        }
        let ns_net = c"/proc/self/ns/net";
        let mut fds = [0; 2];
        // SAFETY: plain syscall.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let [r, w] = fds;
        // SAFETY: the child makes only async-signal-safe calls (raw syscalls) on data
        // prepared before the fork.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            // SAFETY: raw syscalls only, on prepared NUL-terminated strings.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                let ok = libc::unshare(libc::CLONE_NEWNS) == 0
                    && libc::mount(
                        std::ptr::null(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    ) == 0
                    && leaves.iter().all(|l| {
                        libc::mount(
                            l.as_ptr(),
                            l.as_ptr(),
                            std::ptr::null(),
                            libc::MS_BIND,
                            std::ptr::null(),
                        ) == 0
                    })
                    && files.iter().all(|f| {
                        libc::unshare(libc::CLONE_NEWNET) == 0
                            && libc::mount(
                                ns_net.as_ptr(),
                                f.as_ptr(),
                                std::ptr::null(),
                                libc::MS_BIND,
                                std::ptr::null(),
                            ) == 0
                    });
                libc::write(w, if ok { c"y" } else { c"n" }.as_ptr().cast(), 1);
                loop {
                    libc::pause();
                }
            }
        }
        let mut b = 0u8;
        // SAFETY: one byte into a local; then our own pipe's ends.
        unsafe {
            let n = libc::read(r, (&mut b as *mut u8).cast(), 1);
            libc::close(r);
            libc::close(w);
            assert_eq!(n, 1);
        }
        let t = BigTable { pid, dir };
        assert_eq!(b, b'y', "the child could not make its mounts");
        t
    }
}

impl Drop for BigTable {
    fn drop(&mut self) {
        // SAFETY: our own child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

#[test]
fn a_5_mib_mount_table_keeps_its_pinned_namespaces() {
    require_root("mount namespaces, bind mounts and network namespaces");
    let t = BigTable::new(2_600, 50);
    let pid = t.pid as u32;
    let size = std::fs::read(format!("/proc/{pid}/mountinfo"))
        .unwrap()
        .len();
    eprintln!("mountinfo of the child: {size} bytes");
    assert!(size > 5 << 20, "only {size} bytes");
    let want = nsfs_net_inodes(pid, t.dir.path());
    // 50 bound, of which the last is the child's own: 49 held by nothing but a mount.
    assert_eq!(want.len(), 50);
    let mut scanner = Scanner::new(ScanOptions::default());
    let s = scanner.scan().expect("scan");
    let pinned = pinned_net(&s);
    let own = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let missing: Vec<_> = want
        .iter()
        .filter(|i| !pinned.contains(i) && own.to_string_lossy() != format!("net:[{i}]"))
        .collect();
    assert!(
        missing.is_empty(),
        "pinned namespaces not found: {missing:?}"
    );
    assert_eq!(s.errors.parse, 0, "{:?}", s.errors);
    assert_eq!(scanner.mount_table_read(mntns(pid)), Some(true));
    // The child's mount points are on the snapshot too, whole.
    let p = s
        .pinned
        .iter()
        .find(|p| p.inode == want[0])
        .expect("first pin");
    assert!(
        p.mount_points[0].ends_with("/netns-0"),
        "{:?}",
        p.mount_points
    );
    // And the exporter says so end to end.
    let out = Command::new(env!("CARGO_BIN_EXE_nsexporter"))
        .arg("--once")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("nsexporter_namespaces_pinned{type=\"net\"}"))
        .expect("pinned net series");
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 49.0, "{line}");
}

#[test]
fn a_mount_table_is_read_again_only_when_it_changed() {
    require_root("mount namespaces, bind mounts and network namespaces");
    let a = private_mntns();
    let ns = mntns(a.pid());
    // A second member, with a higher PID than the first (the one the file is opened by).
    let b = join_mntns(a.pid());
    assert_eq!(mntns(b.pid()), ns);
    assert!(b.pid() > a.pid());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("netns");
    std::fs::write(&file, b"").unwrap();
    let file = file.display().to_string();

    let mut scanner = Scanner::new(ScanOptions::default());
    scanner.scan().unwrap();
    assert_eq!(scanner.mount_table_read(ns), Some(true), "first scan");
    let kept = scanner.last_stats().mount_tables_kept;
    assert!(kept >= 1);
    for i in 0..3 {
        scanner.scan().unwrap();
        assert_eq!(
            scanner.mount_table_read(ns),
            Some(false),
            "unchanged, scan {i}"
        );
    }

    // A mount in that namespace only: read again, once, and the pin is seen.
    in_mntns(a.pid(), &["unshare", &format!("--net={file}"), "true"]);
    let pinned = nsfs_net_inodes(a.pid(), dir.path());
    assert_eq!(pinned.len(), 1);
    let s = scanner.scan().unwrap();
    assert_eq!(scanner.mount_table_read(ns), Some(true), "after the mount");
    assert!(pinned_net(&s).contains(&pinned[0]));
    let s = scanner.scan().unwrap();
    assert_eq!(scanner.mount_table_read(ns), Some(false));
    assert!(
        pinned_net(&s).contains(&pinned[0]),
        "reused tables still count"
    );

    // The member the file was opened through exits: the file is the namespace's, not
    // the member's, so the table is still not read again...
    drop(a);
    let s = scanner.scan().unwrap();
    assert_eq!(
        scanner.mount_table_read(ns),
        Some(false),
        "after the opener exited"
    );
    assert!(pinned_net(&s).contains(&pinned[0]));
    // ... and a change is still seen, and read through the remaining member.
    in_mntns(b.pid(), &["umount", &file]);
    let s = scanner.scan().unwrap();
    assert_eq!(scanner.mount_table_read(ns), Some(true), "after the umount");
    assert!(!pinned_net(&s).contains(&pinned[0]));

    // No member left: the file is closed, releasing the namespace.
    let bpid = b.pid();
    drop(b);
    scanner.scan().unwrap();
    assert_eq!(scanner.mount_table_read(ns), None);
    let ours: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|l| l.display().to_string())
        .filter(|l| l.ends_with("/mountinfo"))
        .collect();
    assert!(
        !ours.iter().any(|l| l.contains(&format!("/{bpid}/"))),
        "a file of the gone namespace is still open: {ours:?}"
    );
}

#[test]
fn kept_tables_are_bounded() {
    require_root("mount namespaces, bind mounts and network namespaces");
    let a = private_mntns();
    let b = private_mntns();
    let mut scanner = Scanner::new(ScanOptions {
        max_kept_mount_tables: 1,
        ..ScanOptions::default()
    });
    scanner.scan().unwrap();
    assert_eq!(scanner.last_stats().mount_tables_kept, 1);
    // At most one table is reused; every other one is read on every scan.
    for _ in 0..2 {
        scanner.scan().unwrap();
        let st = scanner.last_stats();
        assert_eq!(st.mount_tables_kept, 1);
        let read = [a.pid(), b.pid()]
            .iter()
            .filter(|p| scanner.mount_table_read(mntns(**p)) == Some(true))
            .count();
        assert!(read >= 1, "{st:?}");
    }
    // With none kept, every table is read on every scan.
    let mut none = Scanner::new(ScanOptions {
        max_kept_mount_tables: 0,
        ..ScanOptions::default()
    });
    none.scan().unwrap();
    none.scan().unwrap();
    assert_eq!(none.last_stats().mount_tables_kept, 0);
    assert_eq!(none.mount_table_read(mntns(a.pid())), Some(true));
    assert_eq!(none.mount_table_read(mntns(b.pid())), Some(true));
}

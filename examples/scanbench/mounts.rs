//! `scanbench mounts N M R`: what many big mount tables cost a scan. It times, in the
//! same run, warm scans of this machine as it is (the quiet node), then with N extra
//! processes each in a mount namespace of its own holding only the copied mounts, then
//! with each of those namespaces holding M more bind mounts: the first scan (every table
//! read), later scans (nothing changed: every table reused on `poll`'s word), and later
//! scans of a scanner that keeps no table open (every table read on every scan, as
//! before tables were polled). Scans run back to back with the idle gap lifted, as the
//! criterion bench's warm scans do. Every child dies with this process.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use nsexporter::scan::{ScanOptions, Scanner};

use super::{pipe, time, Series};

/// N forked children, each in a private mount namespace with `dirs.len()` bind mounts
/// of `src` (none when `dirs` is empty). Killed on drop.
struct Namespaces {
    pids: Vec<libc::pid_t>,
}

impl Namespaces {
    fn new(n: usize, unshare: bool, src: &CString, dirs: &[CString]) -> Namespaces {
        let [ready_r, ready_w] = pipe();
        // SAFETY: plain syscall.
        let me = unsafe { libc::getpid() };
        let mut pids = Vec::with_capacity(n);
        for _ in 0..n {
            // SAFETY: this process is single-threaded here (no scanner threads run), so
            // forking is sound; the child makes only raw syscalls on prepared strings.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
            if pid == 0 {
                // SAFETY: as above.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if libc::getppid() != me {
                        libc::_exit(1);
                    }
                    let ok = !unshare
                        || (libc::unshare(libc::CLONE_NEWNS) == 0
                            && libc::mount(
                                std::ptr::null(),
                                c"/".as_ptr(),
                                std::ptr::null(),
                                libc::MS_REC | libc::MS_PRIVATE,
                                std::ptr::null(),
                            ) == 0
                            && dirs.iter().all(|d| {
                                libc::mount(
                                    src.as_ptr(),
                                    d.as_ptr(),
                                    std::ptr::null(),
                                    libc::MS_BIND,
                                    std::ptr::null(),
                                ) == 0
                            }));
                    libc::write(ready_w, if ok { c"y" } else { c"n" }.as_ptr().cast(), 1);
                    loop {
                        libc::pause();
                    }
                }
            }
            pids.push(pid);
        }
        let ns = Namespaces { pids };
        let mut got = 0;
        let mut buf = [0u8; 512];
        while got < n {
            // SAFETY: reading into a local buffer.
            let r = unsafe { libc::read(ready_r, buf.as_mut_ptr().cast(), buf.len()) };
            assert!(r > 0, "ready pipe: {}", std::io::Error::last_os_error());
            assert!(
                buf[..r as usize].iter().all(|&b| b == b'y'),
                "a child could not make its mounts"
            );
            got += r as usize;
        }
        // SAFETY: our own pipe ends.
        unsafe {
            libc::close(ready_r);
            libc::close(ready_w);
        }
        ns
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for &pid in &self.pids {
            // SAFETY: our own children.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

fn opts() -> ScanOptions {
    ScanOptions {
        idle_gap: Duration::ZERO,
        ..ScanOptions::default()
    }
}

/// A scanner after a cold and a proving scan.
fn warmed(o: ScanOptions) -> Scanner {
    let mut s = Scanner::new(o);
    s.scan().expect("scan");
    s.scan().expect("scan");
    s
}

pub(super) fn run(n: usize, m: usize, rounds: usize) {
    // Kept tables need a file descriptor each, as the daemon, which raises its soft
    // limit to the hard one at start.
    nsexporter::scan::raise_file_limit();
    let base = std::env::temp_dir().join(format!("nsx-mounts-{}", std::process::id()));
    let src = base.join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let dirs: Vec<CString> = (0..m)
        .map(|i| {
            let d = base.join("m").join(format!("{i:05}"));
            std::fs::create_dir_all(&d).expect("mkdir");
            CString::new(d.as_os_str().as_bytes()).unwrap()
        })
        .collect();
    let src = CString::new(src.as_os_str().as_bytes()).unwrap();
    let series = |name| Series {
        name,
        samples: Vec::new(),
    };

    let mut quiet = series("quiet node");
    let mut q = warmed(opts());
    for _ in 0..rounds {
        quiet.samples.push(time(|| q.scan().expect("scan")).0);
    }
    drop(q);

    let mut procs = series("+ N processes");
    {
        let _ns = Namespaces::new(n, false, &src, &[]);
        let mut s = warmed(opts());
        for _ in 0..rounds {
            procs.samples.push(time(|| s.scan().expect("scan")).0);
        }
    }
    let mut bare = series("+ N processes, each in a mount namespace of its own");
    {
        let _ns = Namespaces::new(n, true, &src, &[]);
        let mut s = warmed(opts());
        for _ in 0..rounds {
            bare.samples.push(time(|| s.scan().expect("scan")).0);
        }
    }

    let (made, ns) = time(|| Namespaces::new(n, true, &src, &dirs));
    let pid = ns.pids[0];
    let size = std::fs::metadata(format!("/proc/{pid}/mountinfo"))
        .map(|_| {
            std::fs::read(format!("/proc/{pid}/mountinfo"))
                .map(|b| b.len())
                .unwrap_or(0)
        })
        .unwrap_or(0);
    let mut first = series("+ N × M mounts: first scan");
    let mut later = series("+ N × M mounts: later scans");
    let mut every = series("+ N × M mounts: later scans, no table kept (before polling)");
    let mut polled = Scanner::new(opts());
    first.samples.push(time(|| polled.scan().expect("scan")).0);
    let first_read = polled.last_stats().mount_tables_read;
    let mut old = Scanner::new(ScanOptions {
        max_kept_mount_tables: 0,
        ..opts()
    });
    old.scan().expect("scan");
    let (mut later_read, mut every_read) = (0, 0);
    for _ in 0..rounds {
        later.samples.push(time(|| polled.scan().expect("scan")).0);
        later_read = later_read.max(polled.last_stats().mount_tables_read);
        every.samples.push(time(|| old.scan().expect("scan")).0);
        every_read = old.last_stats().mount_tables_read;
    }
    let kept = polled.last_stats().mount_tables_kept;
    drop(ns);
    let _ = std::fs::remove_dir_all(&base);

    let q = quiet.median().as_secs_f64();
    let b = bare.median().as_secs_f64();
    println!(
        "### {n} mount namespaces × {m} bind mounts ({size} bytes of mountinfo each; made in {:.1} s), {rounds} rounds",
        made.as_secs_f64()
    );
    println!();
    println!("tables read: first scan {first_read}, later scans at most {later_read} ({kept} kept open); without keeping: {every_read} every scan");
    println!();
    println!("| what | median ms | min ms | max ms | × quiet node | × same namespaces without the mounts |");
    println!("|---|---:|---:|---:|---:|---:|");
    for s in [&quiet, &procs, &bare, &first, &later, &every] {
        let med = s.median().as_secs_f64();
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} |",
            s.name,
            med * 1e3,
            s.samples.iter().min().unwrap().as_secs_f64() * 1e3,
            s.samples.iter().max().unwrap().as_secs_f64() * 1e3,
            med / q,
            med / b,
        );
    }
}

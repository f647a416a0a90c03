//! A process with more than one thread is never confirmed from `schedstat` alone.
//!
//! Another thread can `execve` while the leader sleeps: the kernel then makes that
//! thread the leader, with the same PID, start time and `/proc/<pid>` directory, and
//! the process takes the new thread's namespaces. The leader's `schedstat` says nothing
//! of it; the group's fault count in `stat` does (an exec always faults). So the scanner
//! keeps reading `stat` for such a process, and this test proves, on the real kernel,
//! that a second thread that joins another network namespace and then executes a new
//! program is reported in that namespace, under its new name, on the very next scan.
//!
//! The process under test must be multi-threaded from its first instruction on, which a
//! fork of a multi-threaded test harness cannot safely be; so this test has its own
//! `main` (harness = false) and runs itself again as that process.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Lab;
use nsexporter::model::{NsType, Snapshot};
use nsexporter::scan::{ScanOptions, Scanner};

const PUPPET: &str = "NSX_THREADS_PUPPET";

fn main() {
    if let Some(netns) = std::env::var_os(PUPPET) {
        puppet(&netns);
    }
    if std::env::args().any(|a| a == "--list") {
        // `cargo test -- --list`: this file holds one test.
        println!("a_second_thread_that_joins_a_namespace_and_execs_is_seen: test");
        return;
    }
    a_second_thread_that_joins_a_namespace_and_execs_is_seen();
    println!("test a_second_thread_that_joins_a_namespace_and_execs_is_seen ... ok");
}

/// The process under test. Its leader waits for the second thread forever; the second
/// thread reads one line from stdin, then joins the network namespace pinned at
/// `netns` and executes `sleep`.
fn puppet(netns: &std::ffi::OsStr) -> ! {
    // Die with the test, even if it is killed (this survives the exec of `sleep`).
    // SAFETY: plain syscall.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let pin = std::fs::File::open(netns).expect("open the netns pin");
    let worker = std::thread::spawn(move || {
        println!("ready");
        std::io::stdout().flush().unwrap();
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        // SAFETY: plain syscall on an fd this thread owns.
        assert_eq!(
            unsafe { libc::setns(pin.as_raw_fd(), libc::CLONE_NEWNET) },
            0,
            "setns: {}",
            std::io::Error::last_os_error()
        );
        let e = std::os::unix::process::CommandExt::exec(
            Command::new("sleep").arg("1000").env_remove(PUPPET),
        );
        panic!("exec sleep: {e}");
    });
    let _ = worker.join();
    std::process::exit(1);
}

/// The puppet process, killed and reaped on drop (also when the test fails).
struct Puppet(Child);

impl Drop for Puppet {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read(pid: u32, file: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default()
}

/// Wait until the leader is asleep and off the CPU: its `schedstat` stands still.
fn wait_still(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let asleep = read(pid, "status")
            .lines()
            .any(|l| l.starts_with("State:\tS"));
        if asleep {
            let before = read(pid, "schedstat");
            std::thread::sleep(Duration::from_millis(20));
            if read(pid, "schedstat") == before {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the puppet never went to sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The inode of the network namespace at `path` (an `ns/net` link or a pin).
fn net_inode(path: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("stat the namespace").ino()
}

fn a_second_thread_that_joins_a_namespace_and_execs_is_seen() {
    // Declared first, dropped last: the puppet must be gone before the lab removes its
    // cgroup and network namespace.
    let mut lab = Lab::new();
    let netns = lab.netns_pin();
    let pin = format!("/run/netns/{netns}");
    let target_net = net_inode(&pin);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(PUPPET, &pin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the puppet");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let puppet = Puppet(child);
    let pid = puppet.0.id();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the puppet did not start");
    wait_still(pid);
    assert!(read(pid, "status").contains("Threads:\t2"));
    let member = lab.kube_cgroupfs("besteffort", pid);

    let quick = |threads| ScanOptions {
        threads,
        idle_gap: Duration::ZERO,
        ..ScanOptions::default()
    };
    let mut scanners = [Scanner::new(quick(1)), Scanner::new(quick(2))];
    let scan = |scanners: &mut [Scanner]| -> Vec<Snapshot> {
        scanners.iter_mut().map(|s| s.scan().unwrap()).collect()
    };
    let summary = |snap: &Snapshot| {
        snap.containers
            .values()
            .find(|c| c.container.id == member.id)
            .cloned()
            .expect("the puppet is attributed to its container")
    };
    let host_net = net_inode("/proc/self/ns/net");
    for _ in 0..3 {
        for snap in scan(&mut scanners) {
            assert_eq!(summary(&snap).main_ns.get(NsType::Net), Some(host_net));
        }
    }
    for s in &scanners {
        assert_eq!(
            s.reused_links(pid),
            Some(true),
            "an idle process keeps its links"
        );
        assert_eq!(
            s.proven_alone(pid),
            Some(false),
            "a process with two threads is never proven alone"
        );
        assert_eq!(s.reused_quickly(pid), Some(false));
    }

    // The second thread joins the pinned namespace and executes `sleep`; the leader,
    // which never ran in between, is gone.
    writeln!(stdin, "go").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while read(pid, "comm").trim() != "sleep" {
        assert!(Instant::now() < deadline, "the puppet never executed sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_still(pid);
    assert_eq!(net_inode(&format!("/proc/{pid}/ns/net")), target_net);
    for (snap, s) in scan(&mut scanners).iter().zip(&scanners) {
        let c = summary(snap);
        assert_eq!(
            c.main_ns.get(NsType::Net),
            Some(target_net),
            "the exec from another thread is seen on the next scan"
        );
        assert_eq!(c.comm, "sleep");
        assert_eq!(c.main_pid, pid);
        assert_eq!(s.reused_links(pid), Some(false));
    }
    // Now alone: proven so by the next scan, confirmed quickly by the one after.
    scan(&mut scanners);
    for s in &scanners {
        assert_eq!(s.proven_alone(pid), Some(true));
    }
    for (snap, s) in scan(&mut scanners).iter().zip(&scanners) {
        assert_eq!(s.reused_quickly(pid), Some(true));
        assert_eq!(summary(snap).main_ns.get(NsType::Net), Some(target_net));
    }
    drop(stdin);
    drop(puppet);
}

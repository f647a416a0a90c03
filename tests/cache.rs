//! The scanner's cache never goes stale, on the real kernel (as root).
//!
//! The scanner reuses a process's namespace links between scans when the process
//! provably has not run since (see `src/scan/process.rs`). These tests make processes change
//! what the cache holds *after* they were first seen, each by the means that real
//! software uses, and check that the very next scan reports the new state:
//! - `setns` into another network namespace (CNI plugins, `nsenter`);
//! - `unshare` of the UTS and IPC namespaces;
//! - being moved into a container's cgroup by another process (what runc does);
//! - `setresuid` away from root;
//! - renaming itself (`prctl(PR_SET_NAME)`).
//!
//! Each through both ways a scan confirms an unchanged process: from `stat` and
//! `schedstat` (every process), and from the directory identity and `schedstat` alone
//! (a process proven alone in its thread group and idle, once scans are far enough
//! apart). `tests/threads.rs` covers processes with more than one thread.
//!
//! Plus the regression guard for the scan's cost: syscalls per process, counted, not
//! timed, so it cannot flake on a busy machine.

mod common;

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use common::*;
use nsexporter::model::{NsSet, NsType, Snapshot};
use nsexporter::scan::{ScanOptions, Scanner};

/// A process forked from this test that blocks reading commands from a pipe and carries
/// each out itself: `n` setns into the network namespace open in the parent as
/// `net_fd`, `u` unshare UTS and IPC, `s` setresuid to 4242, `c` rename itself to
/// `nsx-renamed`. It acks every command with one byte. Killed and reaped on drop; it also dies with the thread that forked it.
struct Puppet {
    pid: u32,
    cmd: File,
    ack: File,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid two-int array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both fds are fresh and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Puppet {
    fn spawn(net_fd: Option<&File>) -> Puppet {
        let (cmd_r, cmd_w) = pipe();
        let (ack_r, ack_w) = pipe();
        let net = net_fd.map_or(-1, |f| f.as_raw_fd());
        let (cr, aw) = (cmd_r.as_raw_fd(), ack_w.as_raw_fd());
        // SAFETY: the child only calls async-signal-safe libc functions on stack data
        // and leaves through `_exit`, so forking a multi-threaded test is sound.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                loop {
                    let mut b = 0u8;
                    if libc::read(cr, (&mut b as *mut u8).cast(), 1) != 1 {
                        libc::_exit(0);
                    }
                    let ok = match b {
                        b'n' => libc::setns(net, libc::CLONE_NEWNET) == 0,
                        b'u' => libc::unshare(libc::CLONE_NEWUTS | libc::CLONE_NEWIPC) == 0,
                        b's' => libc::setresuid(4242, 4242, 4242) == 0,
                        b'c' => libc::prctl(libc::PR_SET_NAME, c"nsx-renamed".as_ptr()) == 0,
                        _ => false,
                    };
                    let reply: u8 = if ok { b'y' } else { b'n' };
                    libc::write(aw, (&reply as *const u8).cast(), 1);
                }
            }
        }
        Puppet {
            pid: pid as u32,
            cmd: File::from(cmd_w),
            ack: File::from(ack_r),
        }
    }

    /// Have the puppet do `what` itself and wait until it has; then wait until it is
    /// asleep again, as an idle process would be when the next scan comes.
    fn order(&mut self, what: u8) {
        use std::io::{Read, Write};
        self.cmd.write_all(&[what]).unwrap();
        let mut reply = [0u8];
        self.ack.read_exact(&mut reply).unwrap();
        assert_eq!(reply[0], b'y', "puppet failed to do {:?}", what as char);
        self.wait_asleep();
    }

    /// Wait until the puppet is asleep and really off the CPU: `State: S` shows while a
    /// task is still on its way out, so also wait until its `schedstat` (CPU time,
    /// switch-ins) stands still. Otherwise a scan could see it still accruing CPU time
    /// and rightly re-read it, and the reuse assertions would depend on timing.
    fn wait_asleep(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let read = |f: &str| std::fs::read_to_string(format!("/proc/{}/{f}", self.pid)).unwrap();
        loop {
            let asleep = |st: &str| st.lines().any(|l| l.starts_with("State:\tS"));
            if asleep(&read("status")) {
                let before = read("schedstat");
                std::thread::sleep(Duration::from_millis(20));
                if read("schedstat") == before && asleep(&read("status")) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "puppet never went to sleep");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Puppet {
    fn drop(&mut self) {
        // SAFETY: plain syscalls on the PID this test forked.
        unsafe {
            libc::kill(self.pid as i32, libc::SIGKILL);
            libc::waitpid(self.pid as i32, std::ptr::null_mut(), 0);
        }
    }
}

/// What the kernel says `pid`'s namespaces are, right now.
fn kernel_ns(pid: u32) -> NsSet {
    let mut set = NsSet::default();
    for t in NsType::ALL {
        if let Ok(l) = std::fs::read_link(format!("/proc/{pid}/ns/{}", t.name())) {
            let l = l.to_string_lossy().into_owned();
            let ino = l
                .trim_start_matches(|c: char| !c.is_ascii_digit())
                .trim_end_matches(']')
                .parse()
                .unwrap_or_else(|_| panic!("odd ns link {l}"));
            set.set(t, Some(ino));
        }
    }
    set
}

/// Scan with every scanner (single- and multi-threaded) and check they agree.
fn scan_all(scanners: &mut [Scanner]) -> Vec<Snapshot> {
    scanners
        .iter_mut()
        .map(|s| s.scan().expect("scan"))
        .collect()
}

fn summary<'a>(snap: &'a Snapshot, id: &str) -> Option<&'a nsexporter::model::ContainerSummary> {
    snap.containers.values().find(|c| c.container.id == id)
}

/// Scanners that confirm a lone idle process from the directory identity and
/// `schedstat` on every scan after it is proven alone (no gap needed between scans:
/// these tests wait until the puppet is off the CPU), with one and two threads; and one
/// that reads `stat` for every process.
fn scanners() -> Vec<Scanner> {
    let quick = |threads| ScanOptions {
        threads,
        idle_gap: Duration::ZERO,
        ..ScanOptions::default()
    };
    vec![
        Scanner::new(quick(1)),
        Scanner::new(quick(2)),
        Scanner::new(ScanOptions {
            idle_gap: Duration::MAX,
            ..ScanOptions::default()
        }),
    ]
}

const QUICK: [bool; 3] = [true, true, false];

/// Two quiet scans: the first proves the puppet alone and idle (from `stat`), the second
/// confirms it without `stat` where the scanner may. Both keep its links, and both must
/// still report `check`.
fn settle(scanners: &mut [Scanner], pid: u32, check: impl Fn(&Snapshot)) {
    for round in 0..2 {
        for (i, snap) in scan_all(scanners).iter().enumerate() {
            check(snap);
            let s = &scanners[i];
            assert_eq!(
                s.reused_links(pid),
                Some(true),
                "a process that did not run keeps its links (else this test proves nothing)"
            );
            assert_eq!(s.proven_alone(pid), Some(true));
            assert_eq!(s.reused_quickly(pid), Some(round == 1 && QUICK[i]));
        }
    }
}

/// After the puppet changed: every scanner read it whole.
fn read_whole(scanners: &[Scanner], pid: u32) {
    for s in scanners {
        assert_eq!(s.reused_links(pid), Some(false));
        assert_eq!(s.proven_alone(pid), Some(false));
    }
}

#[test]
fn a_process_that_changes_after_it_was_seen_is_reported_as_it_is_now() {
    require_root("the puppets setns, unshare and setresuid, and the lab makes cgroups");
    // Declared first, dropped last: the puppet must be gone before the lab removes its
    // cgroups and network namespace.
    let mut lab = Lab::new();
    let netns = lab.netns_pin();
    let net_file = File::open(format!("/run/netns/{netns}")).expect("open the netns pin");
    let mut puppet = Puppet::spawn(Some(&net_file));
    puppet.wait_asleep();
    let pid = puppet.pid;
    let host_ns = kernel_ns(std::process::id());
    assert_eq!(
        kernel_ns(pid),
        host_ns,
        "the puppet starts in the host namespaces"
    );
    let mut scanners = scanners();

    // Seen first as a host process.
    for snap in scan_all(&mut scanners) {
        assert!(snap.containers.values().all(|c| c.main_pid != pid));
    }

    // runc's move: another process writes the PID into a container cgroup. The puppet
    // does not run, so its links are reused, but the cgroup is read every time.
    let member = lab.kube_cgroupfs("besteffort", pid);
    settle(&mut scanners, pid, |snap| {
        let c = summary(snap, &member.id).expect("moved into a container: attributed");
        assert_eq!(c.main_pid, pid);
        assert_eq!(c.container.pod_uid, member.pod_uid);
        assert_eq!(c.main_ns, host_ns);
        assert_eq!(c.host_ns_processes[NsType::Net.index()], 1);
        assert_eq!(c.host_root_processes, 1);
    });

    // setns into the pinned network namespace, by the process itself.
    puppet.order(b'n');
    let now = kernel_ns(pid);
    assert_ne!(now.get(NsType::Net), host_ns.get(NsType::Net));
    for snap in scan_all(&mut scanners) {
        let c = summary(&snap, &member.id).unwrap();
        assert_eq!(c.main_ns, now, "setns is seen on the next scan");
        assert_eq!(c.host_ns_processes[NsType::Net.index()], 0);
        assert_eq!(c.host_ns_processes[NsType::Uts.index()], 1);
    }
    read_whole(&scanners, pid);
    settle(&mut scanners, pid, |snap| {
        assert_eq!(summary(snap, &member.id).unwrap().main_ns, now);
    });

    // unshare UTS and IPC.
    puppet.order(b'u');
    let now = kernel_ns(pid);
    assert_ne!(now.get(NsType::Uts), host_ns.get(NsType::Uts));
    for snap in scan_all(&mut scanners) {
        let c = summary(&snap, &member.id).unwrap();
        assert_eq!(c.main_ns, now, "unshare is seen on the next scan");
        assert_eq!(c.host_ns_processes[NsType::Uts.index()], 0);
        assert_eq!(c.host_ns_processes[NsType::Ipc.index()], 0);
    }
    read_whole(&scanners, pid);
    settle(&mut scanners, pid, |snap| {
        assert_eq!(summary(snap, &member.id).unwrap().main_ns, now);
    });

    // A new name, given by the process itself.
    puppet.order(b'c');
    for snap in scan_all(&mut scanners) {
        let c = summary(&snap, &member.id).unwrap();
        assert_eq!(c.comm, "nsx-renamed", "a rename is seen on the next scan");
    }
    read_whole(&scanners, pid);
    settle(&mut scanners, pid, |snap| {
        assert_eq!(summary(snap, &member.id).unwrap().comm, "nsx-renamed");
    });

    // setuid away from root.
    puppet.order(b's');
    for snap in scan_all(&mut scanners) {
        let c = summary(&snap, &member.id).unwrap();
        assert_eq!(c.host_root_processes, 0, "setuid is seen on the next scan");
        assert_eq!(c.main_ns, now);
    }
    read_whole(&scanners, pid);
    settle(&mut scanners, pid, |snap| {
        assert_eq!(summary(snap, &member.id).unwrap().host_root_processes, 0);
    });

    // Moved again while it sleeps, now into a Docker container: the quick check reads the
    // cgroup as every check does.
    let moved = lab.docker(pid);
    for (i, snap) in scan_all(&mut scanners).iter().enumerate() {
        assert!(summary(snap, &member.id).is_none());
        let c = summary(snap, &moved.id).expect("moved again: attributed anew");
        assert_eq!(c.main_pid, pid);
        assert_eq!(scanners[i].reused_quickly(pid), Some(QUICK[i]));
    }

    // And once it is gone, it is gone.
    drop(puppet);
    for snap in scan_all(&mut scanners) {
        assert!(summary(&snap, &member.id).is_none());
        assert!(summary(&snap, &moved.id).is_none());
    }
    drop(net_file);
}

/// The regression guard. A cold read of a process costs at most 20 syscalls (open the
/// PID directory; stat, schedstat and cgroup at open+read+close each; fstat; 8
/// readlinkat; close); a warm read of a process that has not run at most 11 (stat,
/// schedstat, cgroup), or 9 once it is proven alone (fstat, schedstat, cgroup).
/// Counted by the scanner's own reader, so it is exact and does not depend on timing.
#[test]
fn syscalls_per_process_stay_at_the_floor() {
    require_root("the scan must read every process's namespace links");
    let puppets: Vec<Puppet> = (0..32).map(|_| Puppet::spawn(None)).collect();
    for p in &puppets {
        p.wait_asleep();
    }
    let mut scanner = Scanner::new(ScanOptions {
        idle_gap: Duration::ZERO,
        ..ScanOptions::default()
    });
    scanner.scan().unwrap();
    let cold = scanner.last_stats();
    eprintln!("cold: {cold:?}");
    assert_eq!(cold.reused, 0);
    assert!(cold.read >= 32);
    assert!(
        cold.per_process_syscalls <= 20 * cold.read,
        "cold scan: {} syscalls for {} processes, more than 20 each",
        cold.per_process_syscalls,
        cold.read
    );

    let budget =
        |s: &nsexporter::scan::ScanStats| 20 * s.read + 11 * (s.reused - s.quick) + 9 * s.quick;
    scanner.scan().unwrap();
    let warm = scanner.last_stats();
    eprintln!("warm: {warm:?}");
    for p in &puppets {
        assert_eq!(scanner.reused_links(p.pid), Some(true));
        assert_eq!(scanner.reused_quickly(p.pid), Some(false));
    }
    assert!(warm.reused >= 32);
    assert!(
        warm.per_process_syscalls <= budget(&warm),
        "warm scan: {warm:?} is over budget"
    );

    scanner.scan().unwrap();
    let quick = scanner.last_stats();
    eprintln!("quick: {quick:?}");
    for p in &puppets {
        assert_eq!(scanner.reused_quickly(p.pid), Some(true));
    }
    assert!(quick.quick >= 32);
    assert!(
        quick.per_process_syscalls <= budget(&quick),
        "warm scan of lone idle processes: {quick:?} is over budget"
    );
    assert!(
        quick.per_process_syscalls < warm.per_process_syscalls,
        "the quick check must be cheaper: {quick:?} against {warm:?}"
    );
}

/// With the daemon's settings, a scan confirms a process without `stat` only when it
/// starts at least `IDLE_GAP` after the last one ended: a task that had been on a CPU
/// all along must show more CPU time by then, tick or no tick.
#[test]
fn the_quick_check_waits_for_the_idle_gap() {
    let puppets: Vec<Puppet> = (0..4).map(|_| Puppet::spawn(None)).collect();
    for p in &puppets {
        p.wait_asleep();
    }
    let mut scanner = Scanner::new(ScanOptions::default());
    for _ in 0..3 {
        scanner.scan().unwrap();
    }
    for p in &puppets {
        assert_eq!(scanner.proven_alone(p.pid), Some(true));
        assert_eq!(scanner.reused_links(p.pid), Some(true));
        assert_eq!(
            scanner.reused_quickly(p.pid),
            Some(false),
            "scans back to back read stat"
        );
    }
    // The scanner's clock moved on by the gap (instead of this test sleeping for it).
    scanner.age_last_scan(nsexporter::scan::IDLE_GAP);
    scanner.scan().unwrap();
    for p in &puppets {
        assert_eq!(scanner.reused_quickly(p.pid), Some(true));
    }
}

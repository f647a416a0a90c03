//! scanbench: the load generator and side-by-side timer behind `bench/load.sh` and the
//! README's Performance table. Run it as root (reading other processes' ns links needs
//! it).
//!
//! ```text
//! scanbench spawn N      fork N pausing processes: most in the host namespaces, about
//!                        a tenth in 20 "pods" that share a private net+uts+ipc
//!                        namespace, and 8 in user namespaces with uid/gid maps
//!                        written; print "ready <n>" and wait to be killed. Every child
//!                        dies with its parent (PR_SET_PDEATHSIG).
//! scanbench measure R    R rounds of, in alternation: the reference loop (UID from
//!                        status, the issue's floor), the fastest loop (UID by fstat)
//!                        and the same with schedstat (the calls a cold scan makes), a
//!                        cold scan, a warm scan (single- and two-threaded, each at
//!                        least 5 s after its last, as the daemon's are), a warm scan
//!                        that reads stat for every process (what a multi-threaded
//!                        process costs) and `lsns`; print a Markdown table (median,
//!                        min, max, µs/process, ratios).
//! scanbench passes M K   K passes of M (ref, fastest, cold, warm or stat; warm passes
//!                        follow a cold and a proving scan and are 5 s apart), for
//!                        counting syscalls by difference under `perf stat`.
//! scanbench soak K       K sampler steps (scan and encode, as the daemon's loop does);
//!                        print RSS along the way and the peak.
//! scanbench file NAME... the kernel's cost of one read of /proc/<pid>/NAME, per process.
//! scanbench mounts N M R N mount namespaces of M bind mounts each: warm scans against
//!                        the quiet node and the same processes without the mounts, with
//!                        and without keeping tables open (see mounts.rs).
//! ```

mod mounts;
mod refloop;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nsexporter::sampler::Sampler;
use nsexporter::scan::{ScanOptions, Scanner, IDLE_GAP};
use refloop::RefLoop;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> usize {
        args.get(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| usage())
    };
    match args.first().map(String::as_str) {
        Some("spawn") => spawn(arg(1)),
        Some("measure") => measure(arg(1)),
        Some("passes") => passes(args.get(1).map(String::as_str).unwrap_or(""), arg(2)),
        Some("soak") => soak(arg(1)),
        Some("file") => file(&args[1..]),
        Some("mounts") => mounts::run(arg(1), arg(2), arg(3)),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: scanbench spawn N | measure ROUNDS | passes ref|fastest|cold|warm|stat K | soak K | file NAME... | mounts N M ROUNDS"
    );
    std::process::exit(2);
}

fn opts(threads: usize) -> ScanOptions {
    ScanOptions {
        threads,
        ..ScanOptions::default()
    }
}

// ------------------------------------------------------------------------------------
// spawn

/// In a forked child: die with the parent, then sleep forever. Only async-signal-safe
/// calls from here on.
unsafe fn pause_forever(parent: libc::pid_t, ready: libc::c_int) -> ! {
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    if libc::getppid() != parent {
        libc::_exit(1);
    }
    libc::write(ready, b"r".as_ptr().cast(), 1);
    loop {
        libc::pause();
    }
}

fn pipe() -> [libc::c_int; 2] {
    let mut fds = [0; 2];
    // SAFETY: valid two-int array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    fds
}

fn spawn(n: usize) {
    const PODS: usize = 20;
    const USERNS: usize = 8;
    let per_pod = (n / 10 / PODS).max(1);
    let plain = n.saturating_sub(PODS * per_pod + USERNS);
    // A process group of our own, so that the load script can kill everything this
    // spawned with one signal to it (fails harmlessly when we already lead one).
    // SAFETY: plain syscall.
    unsafe { libc::setsid() };
    let [ready_r, ready_w] = pipe();
    // SAFETY: this process is single-threaded, so forking is sound; children only make
    // async-signal-safe calls.
    let me = unsafe { libc::getpid() };
    let mut expected = 0usize;
    let fork = || {
        // SAFETY: see above.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        pid
    };
    for _ in 0..plain {
        if fork() == 0 {
            unsafe { pause_forever(me, ready_w) }
        }
        expected += 1;
    }
    for _ in 0..PODS {
        if fork() == 0 {
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC) != 0
                {
                    libc::_exit(1);
                }
                let leader = libc::getpid();
                for _ in 1..per_pod {
                    let pid = libc::fork();
                    if pid == 0 {
                        pause_forever(leader, ready_w);
                    }
                }
                pause_forever(me, ready_w);
            }
        }
        expected += per_pod;
    }
    for i in 0..USERNS {
        let [sync_r, sync_w] = pipe();
        let pid = fork();
        if pid == 0 {
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                    libc::_exit(1);
                }
                libc::write(sync_w, b"u".as_ptr().cast(), 1);
                pause_forever(me, ready_w);
            }
        }
        let mut b = 0u8;
        // SAFETY: reading one byte into a local.
        assert_eq!(
            unsafe { libc::read(sync_r, (&mut b as *mut u8).cast(), 1) },
            1
        );
        let map = format!("0 {} 65536\n", 100_000 + i * 65_536);
        std::fs::write(format!("/proc/{pid}/uid_map"), &map).expect("write uid_map");
        std::fs::write(format!("/proc/{pid}/gid_map"), &map).expect("write gid_map");
        // SAFETY: our own pipe ends.
        unsafe {
            libc::close(sync_r);
            libc::close(sync_w);
        }
        expected += 1;
    }
    let mut got = 0;
    let mut buf = [0u8; 4096];
    while got < expected {
        // SAFETY: reading into a local buffer.
        let r = unsafe { libc::read(ready_r, buf.as_mut_ptr().cast(), buf.len()) };
        assert!(r > 0, "ready pipe: {}", std::io::Error::last_os_error());
        got += r as usize;
    }
    println!("ready {expected}");
    std::io::stdout().flush().ok();
    loop {
        // SAFETY: plain syscall.
        unsafe { libc::pause() };
    }
}

// ------------------------------------------------------------------------------------
// measure

struct Series {
    name: &'static str,
    samples: Vec<Duration>,
}

impl Series {
    fn median(&self) -> Duration {
        let mut s = self.samples.clone();
        s.sort();
        s[s.len() / 2]
    }
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let t = Instant::now();
    let v = f();
    (t.elapsed(), v)
}

/// A scanner kept across rounds, whose scans are spaced as the daemon's are: at least
/// [`IDLE_GAP`] apart, so that it confirms lone idle processes from `schedstat` alone.
struct Spaced {
    scanner: Scanner,
    last: Instant,
}

impl Spaced {
    fn new(o: ScanOptions) -> Spaced {
        let mut scanner = Scanner::new(o);
        // A cold scan, then one that proves the idle processes alone.
        scanner.scan().expect("scan");
        scanner.scan().expect("scan");
        Spaced {
            scanner,
            last: Instant::now(),
        }
    }

    fn scan(&mut self) -> Duration {
        let since = self.last.elapsed();
        if since < IDLE_GAP {
            std::thread::sleep(IDLE_GAP - since + Duration::from_millis(50));
        }
        let d = time(|| self.scanner.scan().expect("scan")).0;
        self.last = Instant::now();
        d
    }
}

fn measure(rounds: usize) {
    let procfs = ScanOptions::default().paths.procfs;
    let mut reference = RefLoop::new(&procfs);
    let mut fastest = RefLoop::new(&procfs).uid_by_fstat();
    let mut same_files = RefLoop::new(&procfs).uid_by_fstat().with_schedstat();
    let entries = reference.pids().len();
    let lsns = Command::new("lsns")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut warm1 = Spaced::new(opts(1));
    let mut warm2 = Spaced::new(opts(2));
    // Scans back to back, as for a process that is not alone in its thread group: `stat`
    // is read for every process.
    let mut stat_path = Scanner::new(ScanOptions {
        idle_gap: Duration::MAX,
        ..opts(1)
    });
    stat_path.scan().expect("scan");
    let names = [
        "reference loop (UID from status)",
        "fastest loop (UID by fstat)",
        "fastest loop + schedstat",
        "nsexporter cold, 1 thread",
        "nsexporter warm, 1 thread",
        "nsexporter warm reading stat, 1 thread",
        "nsexporter cold, 2 threads",
        "nsexporter warm, 2 threads",
        "lsns",
    ];
    let mut series: Vec<Series> = names
        .iter()
        .map(|&name| Series {
            name,
            samples: Vec::new(),
        })
        .collect();
    let (mut reused, mut quick) = (0.0, 0.0);
    for _ in 0..rounds {
        series[0].samples.push(time(|| reference.pass()).0);
        series[1].samples.push(time(|| fastest.pass()).0);
        series[2].samples.push(time(|| same_files.pass()).0);
        series[3]
            .samples
            .push(time(|| Scanner::new(opts(1)).scan()).0);
        series[4].samples.push(warm1.scan());
        let s = warm1.scanner.last_stats();
        let all = (s.reused + s.read).max(1) as f64;
        reused = s.reused as f64 / all;
        quick = s.quick as f64 / all;
        series[5].samples.push(time(|| stat_path.scan()).0);
        series[6]
            .samples
            .push(time(|| Scanner::new(opts(2)).scan()).0);
        series[7].samples.push(warm2.scan());
        if lsns {
            let (d, st) = time(|| {
                Command::new("lsns")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
            });
            assert!(st.is_ok_and(|s| s.success()), "lsns failed");
            series[8].samples.push(d);
        }
    }
    series.retain(|s| !s.samples.is_empty());
    let reference = series[0].median().as_secs_f64();
    let fastest = series[1].median().as_secs_f64();
    let lsns = series
        .iter()
        .find(|s| s.name == "lsns")
        .map(|s| s.median().as_secs_f64());
    println!(
        "### {entries} /proc entries, {rounds} rounds; warm scans reused {:.1}% of links, {:.1}% without reading stat",
        reused * 100.0,
        quick * 100.0
    );
    println!();
    println!(
        "| what | median ms | min ms | max ms | µs/process | × reference | × fastest loop | lsns ÷ this |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for s in &series {
        let med = s.median().as_secs_f64();
        let min = s.samples.iter().min().unwrap().as_secs_f64();
        let max = s.samples.iter().max().unwrap().as_secs_f64();
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {} |",
            s.name,
            med * 1e3,
            min * 1e3,
            max * 1e3,
            med * 1e6 / entries as f64,
            med / reference,
            med / fastest,
            lsns.map_or("-".into(), |l| format!("{:.1}", l / med)),
        );
    }
}

// ------------------------------------------------------------------------------------
// passes, soak

fn passes(mode: &str, k: usize) {
    let procfs = ScanOptions::default().paths.procfs;
    match mode {
        "ref" | "fastest" => {
            let mut r = RefLoop::new(&procfs);
            if mode == "fastest" {
                r = r.uid_by_fstat();
            }
            for _ in 0..k {
                std::hint::black_box(r.pass());
            }
        }
        "cold" => {
            let mut s = Scanner::new(opts(1));
            for _ in 0..k {
                s.forget();
                std::hint::black_box(s.scan().expect("scan"));
            }
        }
        "warm" => {
            let mut s = Spaced::new(opts(1));
            for _ in 0..k {
                std::hint::black_box(s.scan());
            }
        }
        "stat" => {
            let mut s = Scanner::new(ScanOptions {
                idle_gap: Duration::MAX,
                ..opts(1)
            });
            s.scan().expect("scan");
            for _ in 0..k {
                std::hint::black_box(s.scan().expect("scan"));
            }
        }
        _ => usage(),
    }
}

/// (VmRSS, VmHWM) of this process, in KiB.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn soak(k: usize) {
    let mut sampler = Sampler::new(Scanner::new(opts(1)));
    let started = Instant::now();
    let mut checkpoints = vec![1, 10, 100, k];
    checkpoints.extend((1..10).map(|i| i * k / 10));
    checkpoints.sort();
    checkpoints.dedup();
    let mut min_after_warmup = u64::MAX;
    let mut max_after_warmup = 0;
    for i in 1..=k {
        std::hint::black_box(sampler.step());
        let (now, _) = rss();
        if i >= 10 {
            min_after_warmup = min_after_warmup.min(now);
            max_after_warmup = max_after_warmup.max(now);
        }
        if checkpoints.contains(&i) {
            let (now, peak) = rss();
            println!(
                "scan {i:>5}: VmRSS {:>6} KiB, VmHWM {:>6} KiB, {:.1} s",
                now,
                peak,
                started.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "VmRSS from scan 10 to {k}: min {min_after_warmup} KiB, max {max_after_warmup} KiB, spread {} KiB",
        max_after_warmup - min_after_warmup
    );
}

/// Time one read of each named file of every process (what each costs the kernel).
fn file(names: &[String]) {
    let procfs = ScanOptions::default().paths.procfs;
    let r = RefLoop::new(&procfs);
    let pids = r.pids();
    let mut buf = vec![0u8; 4096];
    for name in names {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            for pid in &pids {
                if let Ok(mut f) = std::fs::File::open(format!("/proc/{pid}/{name}")) {
                    use std::io::Read;
                    let _ = std::hint::black_box(f.read(&mut buf));
                }
            }
            best = best.min(t.elapsed());
        }
        println!(
            "{name}: {:.2} µs per process",
            best.as_secs_f64() * 1e6 / pids.len() as f64
        );
    }
}

//! Soak: thousands of short-lived processes churn through new namespaces (net, uts,
//! ipc, mnt, and user namespaces with a root mapping) while the real exporter scans
//! every 250 ms and four threads scrape it without pause. Asserts that every scrape
//! answers 200 with parseable output, no scan fails, and the exporter's RSS and open
//! file descriptors stay flat: the maximum over the last quarter of the run is at most
//! the maximum over the first quarter (after a warm-up) plus a small slack.
//!
//! 120 s by default; `NSEXPORTER_SOAK_SECS=3600` for a longer run on demand.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// RSS may grow this much between the first and the last quarter (allocator noise).
const RSS_SLACK_KB: u64 = 4096;
/// Open fds may differ by this much (scrapes in flight, scan threads' directory fds).
const FD_SLACK: u64 = 16;

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Keep `width` short-lived processes alive, cycling through kinds of namespaces, until
/// `stop`. Every child is waited for (or killed by PID and waited for at the end).
fn churn(stop: Arc<AtomicBool>, width: usize, started: Arc<AtomicU64>) {
    let mut live: Vec<Child> = Vec::new();
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        live.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
        while live.len() < width {
            let mut cmd = Command::new("unshare");
            match n % 4 {
                0 => cmd.args(["--net", "--uts", "--ipc", "--mount"]),
                1 => cmd.args(["--user", "--map-root-user", "--net"]),
                2 => cmd.args(["--uts", "--ipc"]),
                _ => cmd.args(["--mount", "--net"]),
            };
            cmd.args(["sleep", "0.2"]);
            let child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn unshare");
            live.push(child);
            n += 1;
            started.store(n, Ordering::Relaxed);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for mut c in live {
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .expect("VmRSS of the exporter")
}

fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir of the exporter")
        .count() as u64
}

#[test]
fn soak_rss_and_fds_stay_flat_under_churn_and_concurrent_scrapes() {
    require_root("the churn makes new namespaces and the exporter reads every process");
    let secs: u64 = std::env::var("NSEXPORTER_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let run = Duration::from_secs(secs.max(20));

    let stop = Arc::new(AtomicBool::new(false));
    let _guard = StopOnDrop(stop.clone());
    let started = Arc::new(AtomicU64::new(0));
    let churner = {
        let (stop, started) = (stop.clone(), started.clone());
        std::thread::spawn(move || churn(stop, 30, started))
    };

    let mut exporter = Exporter::start(&["--scan.interval", "250ms", "--scan.threads", "2"]);
    exporter.wait_ready();
    let addr = exporter.addr;
    let pid = exporter.pid();

    // Four scrapers: every answer must be 200, parse, and show no failed scan.
    let scrapes = Arc::new(AtomicU64::new(0));
    let scrapers: Vec<_> = (0..4)
        .map(|_| {
            let (stop, scrapes) = (stop.clone(), scrapes.clone());
            std::thread::spawn(move || -> Result<(), String> {
                while !stop.load(Ordering::Relaxed) {
                    let r = http_get(addr, "/metrics", &[]);
                    if r.status != 200 {
                        return Err(format!("scrape answered {}", r.status));
                    }
                    let s = std::panic::catch_unwind(|| parse_exposition(&r.body))
                        .map_err(|_| format!("unparseable exposition:\n{}", r.body))?;
                    let failed = value(&s, "nsexporter_scan_errors_total", &[("reason", "procfs")]);
                    if failed != Some(0.0) {
                        return Err(format!("a scan failed: procfs errors {failed:?}"));
                    }
                    scrapes.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();

    // Sample RSS and fds once a second.
    let t0 = Instant::now();
    let mut samples: Vec<(u64, u64)> = Vec::new();
    while t0.elapsed() < run {
        std::thread::sleep(Duration::from_secs(1));
        assert!(exporter.alive(), "the exporter exited");
        samples.push((rss_kb(pid), open_fds(pid)));
    }
    stop.store(true, Ordering::Relaxed);
    for s in scrapers {
        s.join().expect("scraper thread").expect("scrape");
    }
    churner.join().expect("churn thread");

    let final_metrics = parse_exposition(&exporter.get("/metrics").body);
    let scans = value(&final_metrics, "nsexporter_scans_total", &[]).unwrap_or(0.0);
    let vanished = value(
        &final_metrics,
        "nsexporter_scan_errors_total",
        &[("reason", "vanished")],
    )
    .unwrap_or(0.0);
    assert_eq!(
        value(
            &final_metrics,
            "nsexporter_scan_errors_total",
            &[("reason", "procfs")]
        ),
        Some(0.0)
    );
    assert_eq!(exporter.get("/readyz").status, 200);

    // Flatness: skip a warm-up tenth, compare the first and last quarters of the rest.
    let body = &samples[samples.len() / 10..];
    let q = (body.len() / 4).max(1);
    let (first, last) = (&body[..q], &body[body.len() - q..]);
    let max = |s: &[(u64, u64)], f: fn(&(u64, u64)) -> u64| s.iter().map(f).max().unwrap_or(0);
    let (rss_first, rss_last) = (max(first, |s| s.0), max(last, |s| s.0));
    let (fd_first, fd_last) = (max(first, |s| s.1), max(last, |s| s.1));
    let rss_all = (
        samples.iter().map(|s| s.0).min().unwrap_or(0),
        max(&samples, |s| s.0),
    );
    let procs = started.load(Ordering::Relaxed);
    let n_scrapes = scrapes.load(Ordering::Relaxed);
    eprintln!(
        "soak: {}s, {procs} processes started in new namespaces, {scans} scans ({vanished} \
         processes vanished mid-read), {n_scrapes} scrapes by 4 threads, all 200 and parseable; \
         RSS {}..{} kB (first-quarter max {rss_first}, last-quarter max {rss_last}); \
         open fds first-quarter max {fd_first}, last-quarter max {fd_last}",
        run.as_secs(),
        rss_all.0,
        rss_all.1,
    );
    assert!(
        procs >= 1000 || run < Duration::from_secs(60),
        "only {procs} processes churned"
    );
    assert!(
        // Scans go on (at least one every 2 s: a liveness check, not a speed
        // figure; on a loaded machine far fewer than 4 a second complete).
        scans >= run.as_secs_f64() * 0.5,
        "only {scans} scans in {run:?} at 250 ms"
    );
    assert!(n_scrapes >= 100, "only {n_scrapes} scrapes");
    assert!(
        rss_last <= rss_first + RSS_SLACK_KB + rss_first / 10,
        "RSS grew: first-quarter max {rss_first} kB, last-quarter max {rss_last} kB"
    );
    assert!(
        fd_last <= fd_first + FD_SLACK,
        "open fds grew: first-quarter max {fd_first}, last-quarter max {fd_last}"
    );
}

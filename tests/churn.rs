//! Churn: processes keep starting and exiting, in and out of namespaces, while scans
//! run back to back, in-process and in a scraped server. No scan fails, nothing panics.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use nsexporter::scan::{ScanOptions, Scanner};

/// Keep ~`width` short-lived processes (half of them in new namespaces) alive until
/// `stop`; returns how many were started. Every child is waited for.
fn churn(stop: Arc<AtomicBool>, width: usize) -> usize {
    let mut live: Vec<Child> = Vec::new();
    let mut started = 0;
    while !stop.load(Ordering::Relaxed) {
        live.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
        while live.len() < width {
            let mut cmd = if started % 2 == 0 {
                let mut c = Command::new("unshare");
                c.args(["--net", "--uts", "--ipc", "--mount", "sleep", "0.05"]);
                c
            } else {
                let mut c = Command::new("sh");
                c.args(["-c", "sleep 0.02"]);
                c
            };
            match cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn() {
                Ok(c) => live.push(c),
                Err(e) => panic!("spawn: {e}"),
            }
            started += 1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for mut c in live {
        let _ = c.kill();
        let _ = c.wait();
    }
    started
}

#[test]
fn scans_survive_churn() {
    require_root("the churn makes new namespaces with unshare");
    let stop = Arc::new(AtomicBool::new(false));
    let churner = {
        let stop = stop.clone();
        std::thread::spawn(move || churn(stop, 40))
    };
    // Stop the churner even if an assertion below fails.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let guard = StopOnDrop(stop.clone());

    let exporter = Exporter::start(&["--scan.interval", "500ms", "--scan.threads", "2"]);
    let mut scanner = Scanner::new(ScanOptions::default());
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut scans = 0;
    let mut vanished = 0;
    let mut scrapes = 0;
    while Instant::now() < deadline {
        let snap = scanner.scan().expect("a scan under churn must not fail");
        assert!(snap.processes > 0);
        vanished += snap.errors.vanished;
        scans += 1;
        let r = exporter.get("/metrics");
        assert_eq!(r.status, 200);
        let samples = parse_exposition(&r.body);
        assert_eq!(
            value(
                &samples,
                "nsexporter_scan_errors_total",
                &[("reason", "procfs")]
            ),
            Some(0.0)
        );
        scrapes += 1;
    }
    drop(guard);
    let started = churner.join().expect("churner thread");
    assert!(started > 100, "the churn started only {started} processes");
    assert!(
        scans >= 3 && scrapes >= 3,
        "{scans} scans, {scrapes} scrapes"
    );
    let s = parse_exposition(&exporter.get("/metrics").body);
    let server_scans = value(&s, "nsexporter_scans_total", &[]).unwrap();
    assert!(server_scans >= 3.0, "server ran {server_scans} scans");
    assert_eq!(exporter.get("/readyz").status, 200);
    eprintln!("churn: {started} processes started, {scans} in-process scans ({vanished} vanished mid-read), {scrapes} scrapes, {server_scans} server scans");
}

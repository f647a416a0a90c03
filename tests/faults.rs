//! Faults: the host procfs disappears, becomes unreadable, is mounted over (a missing
//! mount), or lacks the sysctl files. Each gives a clear log line, an error counter and
//! `/readyz` failing where that is right; the process never exits and recovers on its
//! own when the cause goes away. Everything changed is restored on drop, also when an
//! assertion fails.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const INTERVAL: &str = "200ms";
/// Within this a change must show in `/readyz` ("at once": a few intervals at most).
const SOON: Duration = Duration::from_secs(3);

/// A copy of the fixture procfs under a world-traversable temporary directory.
struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let st = Command::new("cp")
            .arg("-a")
            .arg(fixture_proc())
            .arg(dir.path().join("proc"))
            .status()
            .expect("cp");
        assert!(st.success());
        Tree { dir }
    }

    fn proc(&self) -> PathBuf {
        self.dir.path().join("proc")
    }

    fn arg(&self) -> String {
        self.proc().display().to_string()
    }
}

/// Renames `from` to `to`, and back on drop.
struct Moved(PathBuf, PathBuf);

impl Moved {
    fn new(from: PathBuf, to: PathBuf) -> Moved {
        std::fs::rename(&from, &to).expect("rename");
        Moved(from, to)
    }
}

impl Drop for Moved {
    fn drop(&mut self) {
        if self.1.exists() {
            let _ = std::fs::rename(&self.1, &self.0);
        }
    }
}

/// chmod 000 on a directory, the old mode back on drop.
struct Chmod(PathBuf, u32);

impl Chmod {
    fn new(p: &Path, mode: u32) -> Chmod {
        let old = std::fs::metadata(p).unwrap().permissions().mode();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        Chmod(p.to_path_buf(), old)
    }
}

impl Drop for Chmod {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(self.1));
    }
}

/// A tmpfs mounted over a directory, unmounted on drop.
struct MountedOver(PathBuf);

impl MountedOver {
    fn new(p: &Path) -> MountedOver {
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "nsx-faults"])
            .arg(p)
            .status()
            .expect("mount");
        assert!(st.success(), "mount tmpfs over {}", p.display());
        MountedOver(p.to_path_buf())
    }
}

impl Drop for MountedOver {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn counter(e: &Exporter, reason: &str) -> f64 {
    let r = e.get("/metrics");
    assert_eq!(r.status, 200, "/metrics must keep answering");
    value(
        &parse_exposition(&r.body),
        "nsexporter_scan_errors_total",
        &[("reason", reason)],
    )
    .unwrap_or(0.0)
}

/// The common shape: ready, break, not ready at once with a log line and a count,
/// repair, ready again with a recovery line; alive throughout.
fn break_and_repair<G>(mut e: Exporter, log: &str, reason: &str, brk: impl FnOnce() -> G) {
    e.wait_ready();
    let before = counter(&e, reason);
    e.drain_log();
    let guard = brk();
    assert_eq!(e.wait_readyz(503, SOON), 503, "/readyz did not fail");
    let line = e.wait_log(log, SOON);
    eprintln!("fault log: {line}");
    assert!(line.contains("level=error"), "{line}");
    let why = e.get("/readyz").body;
    eprintln!("fault /readyz: {why}");
    assert!(counter(&e, reason) > before, "{reason} errors not counted");
    // It stays up while broken, answering scrapes with the last good data: alive after
    // another failed scan.
    let counted = counter(&e, reason);
    let deadline = std::time::Instant::now() + SOON;
    while counter(&e, reason) <= counted {
        assert!(
            std::time::Instant::now() < deadline,
            "no further failed scan while broken"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(e.alive(), "nsexporter exited");
    let r = e.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("nsexporter_processes 14"), "{}", r.body);
    drop(guard);
    assert_eq!(e.wait_readyz(200, SOON), 200, "/readyz did not recover");
    e.wait_log("scan succeeded again", SOON);
    assert!(e.alive());
}

#[test]
fn procfs_disappears_and_comes_back() {
    let t = Tree::new();
    let e = Exporter::start(&["--path.procfs", &t.arg(), "--scan.interval", INTERVAL]);
    let away = t.dir.path().join("away");
    break_and_repair(e, "scan failed", "procfs", || Moved::new(t.proc(), away));
}

#[test]
fn procfs_unreadable_for_a_non_root_exporter() {
    require_root("it runs the exporter as another user");
    // Root reads through chmod 000 (CAP_DAC_OVERRIDE), so run the exporter as nobody.
    let t = Tree::new();
    let e = Exporter::start_wrapped(
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ],
        &["--path.procfs", &t.arg(), "--scan.interval", INTERVAL],
    );
    let p = t.proc();
    break_and_repair(e, "Permission denied", "procfs", || Chmod::new(&p, 0o000));
}

#[test]
fn a_missing_mount_is_not_a_procfs() {
    require_root("it mounts a tmpfs");
    // A tmpfs over --path.procfs: the directory is there but empty, as when the host's
    // /proc is not mounted where the flag points.
    let t = Tree::new();
    let e = Exporter::start(&["--path.procfs", &t.arg(), "--scan.interval", INTERVAL]);
    let p = t.proc();
    break_and_repair(e, "not a procfs", "procfs", || MountedOver::new(&p));
}

#[test]
fn absent_sysctl_files_are_logged_and_counted_but_not_fatal() {
    let t = Tree::new();
    let sys = t.proc().join("sys");
    let away = t.dir.path().join("sys-away");
    let moved = Moved::new(sys, away);
    let mut e = Exporter::start(&["--path.procfs", &t.arg(), "--scan.interval", INTERVAL]);
    e.wait_ready();
    let line = e.wait_log("namespace limits are unreadable", SOON);
    assert!(
        line.contains("level=warn") && line.contains("max_net_namespaces"),
        "{line}"
    );
    assert!(counter(&e, "io") > 0.0);
    let s = parse_exposition(&e.get("/metrics").body);
    assert!(find(&s, "nsexporter_namespace_limit", &[]).is_empty());
    // Everything else is still reported, and the exporter is ready: it does its job.
    assert_eq!(value(&s, "nsexporter_processes", &[]), Some(14.0));
    assert_eq!(e.get("/readyz").status, 200);
    // The files come back: the limits do too.
    drop(moved);
    e.scrape_until(SOON, "limits back", |s| {
        value(s, "nsexporter_namespace_limit", &[("type", "net")]) == Some(63541.0)
    });
    assert!(e.alive());
}

#[test]
fn once_on_a_missing_procfs_fails_clearly() {
    let out = Command::new(BIN)
        .args(["--once", "--path.procfs", "/nonexistent/nsx-proc"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read the host procfs at /nonexistent/nsx-proc"),
        "{err}"
    );
}

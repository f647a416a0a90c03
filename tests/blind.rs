//! Blindness is never silent. A procfs that hides processes from the exporter
//! (`hidepid`, `subset=pid`, a procfs of another PID namespace), a directory that is not
//! a procfs, or a procfs whose processes are unreadable (no CAP_SYS_PTRACE): the server
//! logs an error, fails `/readyz` and sets `nsexporter_procfs_blind{reason}`; `report`,
//! `inspect`, `diff` and `--once` exit non-zero with a message that says what to do, and
//! never print a report of an empty node.
//!
//! Each special procfs is mounted in a private mount namespace of the process under test
//! (`unshare --mount`), so it goes away with that process; nothing is mounted on the host.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

/// Drop to nobody with no capability at all.
const NOBODY: &[&str] = &[
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all",
    "--bounding-set=-all",
];

/// A directory that nobody may traverse, for the procfs mount point.
fn mount_point() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// A wrapper that runs what follows it with a new procfs mounted with `options` at
/// `dir`, in a private mount namespace (and a new PID namespace when `pidns`), then
/// execs through `then` (e.g. [`NOBODY`]; empty to stay root).
fn with_procfs(dir: &str, options: &str, pidns: bool, then: &[&str]) -> Vec<String> {
    let mut w: Vec<String> = vec![
        "unshare".into(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
    ];
    if pidns {
        // --kill-child: the forked PID 1 dies with unshare, which the tests kill.
        w.extend(["--pid".into(), "--fork".into(), "--kill-child".into()]);
    }
    let then: Vec<String> = then.iter().map(|s| format!("'{s}'")).collect();
    w.extend([
        "sh".into(),
        "-c".into(),
        format!(
            "mount -t proc -o {options} nsx-blind '{dir}' && exec {} \"$0\" \"$@\"",
            then.join(" ")
        ),
    ]);
    w
}

fn run_wrapped(wrapper: &[String], args: &[&str]) -> Output {
    Command::new(&wrapper[0])
        .args(&wrapper[1..])
        .arg(BIN)
        .args(args)
        .args(["--log.format", "logfmt"])
        .output()
        .expect("run nsexporter")
}

/// Every terminal command against `procfs` through `wrapper` fails with exit status 1
/// and a message holding each of `want`, and prints no report.
fn every_command_fails(wrapper: &[String], procfs: &str, want: &[&str]) {
    let commands: [&[&str]; 5] = [
        &["--once"],
        &["report"],
        &["report", "--json"],
        &["inspect", "1"],
        &["diff", "1", "2"],
    ];
    for c in commands {
        let mut args = c.to_vec();
        args.extend(["--path.procfs", procfs]);
        let out = run_wrapped(wrapper, &args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("{c:?}: exit {:?}: {}", out.status.code(), stderr.trim_end());
        assert_eq!(
            out.status.code(),
            Some(1),
            "{c:?} must fail: {stderr}\n{stdout}"
        );
        assert!(
            stdout.is_empty(),
            "{c:?} printed a report of what it could see:\n{stdout}"
        );
        assert!(!stdout.contains("CONTAINERS: 0 of 0"));
        let msg = stderr
            .lines()
            .find(|l| l.starts_with("nsexporter: "))
            .unwrap_or_else(|| panic!("{c:?}: no one-line message: {stderr}"));
        for w in want {
            assert!(msg.contains(w), "{c:?}: {msg:?} should say {w:?}");
        }
    }
}

fn blind_series(s: &[Sample]) -> Vec<(String, f64)> {
    find(s, "nsexporter_procfs_blind", &[])
        .iter()
        .map(|x| (x.labels["reason"].clone(), x.value))
        .collect()
}

/// Poll `/readyz` until its body holds `want` (it is 503 before the first scan too);
/// returns the body.
fn wait_not_ready(e: &Exporter, want: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = e.get("/readyz");
        assert_eq!(r.status, 503, "{}", r.body);
        if r.body.contains(want) {
            return r.body;
        }
        assert!(std::time::Instant::now() < deadline, "{}", r.body);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The server through `wrapper`: not ready with `want` in the reason, an error line,
/// and `nsexporter_procfs_blind{reason}` 1 (the other reasons 0).
fn server_is_blind(wrapper: &[String], procfs: &str, reason: &str, want: &str) {
    let w: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let e = Exporter::start_wrapped(&w, &["--path.procfs", procfs, "--scan.interval", "300ms"]);
    let line = e.wait_log("cannot see the whole node", Duration::from_secs(20));
    eprintln!("blind log: {line}");
    assert!(line.contains("level=error"), "{line}");
    assert!(line.contains(&format!("reason={reason}")), "{line}");
    // The log says what /readyz says; logfmt quotes with `"`, so an apostrophe (the
    // host's /proc) is written as it is.
    assert!(line.contains(want), "{line}");
    assert!(
        !line.contains("\\'"),
        "an escaped apostrophe in the log: {line}"
    );
    let body = wait_not_ready(&e, want);
    eprintln!("blind /readyz: {}", body.trim_end());
    let s = parse_exposition(&e.get("/metrics").body);
    let series = blind_series(&s);
    assert_eq!(series.len(), 5, "{series:?}");
    for (r, v) in series {
        assert_eq!(v, if r == reason { 1.0 } else { 0.0 }, "{r}");
    }
    // It stays blind, and keeps saying so, scan after scan.
    let scans = |s: &[Sample]| value(s, "nsexporter_scans_total", &[]).unwrap_or(0.0);
    let before = scans(&s);
    e.scrape_until(Duration::from_secs(20), "two more scans", |s| {
        scans(s) >= before + 2.0
    });
    assert_eq!(e.get("/readyz").status, 503);
}

#[test]
fn a_hidepid_procfs_blinds_a_non_root_exporter_and_says_so() {
    require_root("a procfs mount in a private mount namespace, setpriv");
    let d = mount_point();
    let dir = d.path().display().to_string();
    let w = with_procfs(&dir, "hidepid=2", false, NOBODY);
    every_command_fails(&w, &dir, &["hidepid=invisible", "CAP_SYS_PTRACE"]);
    server_is_blind(&w, &dir, "hidepid", "hidepid=invisible");
}

#[test]
fn a_hidepid_procfs_hides_nothing_from_root() {
    require_root("a procfs mount in a private mount namespace, setpriv");
    let d = mount_point();
    let dir = d.path().display().to_string();
    let w = with_procfs(&dir, "hidepid=2", false, &[]);
    // Processes this test knows exist (a quiet machine has only about ten others): root
    // sees them all through the hidepid=2 mount.
    struct Sleepers(Vec<std::process::Child>);
    impl Drop for Sleepers {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let sleepers = Sleepers(
        (0..20)
            .map(|_| Command::new("sleep").arg("60").spawn().expect("sleep"))
            .collect(),
    );
    let out = run_wrapped(&w, &["--once", "--path.procfs", &dir]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = parse_exposition(&String::from_utf8_lossy(&out.stdout));
    let seen = value(&s, "nsexporter_processes", &[]).unwrap_or(0.0);
    assert!(
        seen > sleepers.0.len() as f64,
        "root saw {seen} processes through hidepid=2, fewer than the {} this test started",
        sleepers.0.len()
    );
    drop(sleepers);
    assert!(blind_series(&s).iter().all(|(_, v)| *v == 0.0));
    let out = run_wrapped(&w, &["report", "--path.procfs", &dir]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_subset_pid_procfs_is_blind() {
    require_root("a procfs mount in a private mount namespace, setpriv");
    let d = mount_point();
    let dir = d.path().display().to_string();
    let w = with_procfs(&dir, "subset=pid", false, &[]);
    every_command_fails(&w, &dir, &["subset=pid"]);
    server_is_blind(&w, &dir, "subset_pid", "subset=pid");
}

#[test]
fn a_procfs_of_another_pid_namespace_is_blind() {
    require_root("a procfs mount in a private mount namespace, setpriv");
    let d = mount_point();
    let dir = d.path().display().to_string();
    // A new PID namespace's procfs shows its few tasks; the kernel counts the node's.
    let w = with_procfs(&dir, "rw", true, &[]);
    every_command_fails(&w, &dir, &["the host's /proc"]);
    server_is_blind(&w, &dir, "hidden_tasks", "not the host's /proc");
}

#[test]
fn an_empty_directory_or_tmp_is_not_a_procfs() {
    let d = tempfile::tempdir().unwrap();
    let empty = d.path().display().to_string();
    let none: Vec<String> = vec!["env".into()];
    for p in [empty.as_str(), "/tmp"] {
        every_command_fails(&none, p, &["is not a procfs", "mount the host's /proc"]);
    }
    let e = Exporter::start(&["--path.procfs", &empty, "--scan.interval", "300ms"]);
    let line = e.wait_log("scan failed", Duration::from_secs(20));
    assert!(
        line.contains("level=error") && line.contains("not a procfs"),
        "{line}"
    );
    wait_not_ready(&e, "not a procfs");
    let s = parse_exposition(&e.get("/metrics").body);
    assert_eq!(
        value(&s, "nsexporter_procfs_blind", &[("reason", "not_procfs")]),
        Some(1.0)
    );
}

#[test]
fn an_unprivileged_report_is_an_error_not_an_empty_node() {
    require_root("a procfs mount in a private mount namespace, setpriv");
    let w: Vec<String> = NOBODY.iter().map(|s| s.to_string()).collect();
    // The real /proc: every process listed, hardly any readable. inspect and diff of
    // unreadable processes already fail per process; report and --once must too.
    for c in [&["report"][..], &["report", "--all"], &["--once"]] {
        let out = run_wrapped(&w, c);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("{c:?}: {}", stderr.trim_end());
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(!stdout.contains("CONTAINERS: 0 of 0"), "{stdout}");
        assert!(stdout.is_empty(), "{stdout}");
        let msg = stderr
            .lines()
            .find(|l| l.starts_with("nsexporter: "))
            .unwrap();
        assert!(
            msg.contains("CAP_SYS_PTRACE") && msg.contains("unreadable"),
            "{msg}"
        );
    }
}

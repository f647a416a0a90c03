//! Settings: flags over `NSEXPORTER_*` environment over the YAML file over defaults, and
//! a bad value stops the program with exit code 2 and a message naming the setting.

mod common;

use std::process::Command;

use common::*;

/// Run the binary with `--once` against the fixture tree plus `args`, `envs` and an
/// optional config file body; returns (exit code, stdout, stderr).
fn run(args: &[&str], envs: &[(&str, &str)], file: Option<&str>) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("--once");
    for (k, _) in std::env::vars() {
        if k.starts_with("NSEXPORTER_") {
            cmd.env_remove(k);
        }
    }
    if let Some(body) = file {
        let p = dir.path().join("nsexporter.yml");
        std::fs::write(&p, body).unwrap();
        cmd.arg("--config.file").arg(&p);
    }
    cmd.args(args).envs(envs.iter().copied());
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// (flags, environment, config file body, the setting the error must name)
type Case<'a> = (
    &'a [&'a str],
    &'a [(&'a str, &'a str)],
    Option<&'a str>,
    &'a str,
);

#[test]
fn bad_values_exit_2_naming_the_setting() {
    let cases: &[Case] = &[
        (&["--scan.interval", "5x"], &[], None, "scan.interval"),
        (&["--scan.interval", "10ms"], &[], None, "scan.interval"),
        (&["--scan.threads", "0"], &[], None, "scan.threads"),
        (&["--scan.threads", "many"], &[], None, "scan.threads"),
        (
            &["--web.listen-address", "nowhere"],
            &[],
            None,
            "web.listen-address",
        ),
        (
            &["--web.telemetry-path", "metrics"],
            &[],
            None,
            "web.telemetry-path",
        ),
        (
            &["--web.telemetry-path", "/healthz"],
            &[],
            None,
            "web.telemetry-path",
        ),
        (&["--log.level", "loud"], &[], None, "log.level"),
        (&["--log.format", "xml"], &[], None, "log.format"),
        (
            &["--container.default-runtime", "rkt"],
            &[],
            None,
            "container.default-runtime",
        ),
        (
            &[],
            &[("NSEXPORTER_SCAN_INTERVAL", "soon")],
            None,
            "scan.interval",
        ),
        (
            &[],
            &[],
            Some("scan:\n  interval: never\n"),
            "scan.interval",
        ),
        (&[], &[], Some("scan:\n  intervall: 15s\n"), "config.file"),
        (&[], &[], Some("scan: [unclosed\n"), "config.file"),
        (
            &["--config.file", "/nonexistent/nsexporter.yml"],
            &[],
            None,
            "config.file",
        ),
    ];
    for (args, envs, file, setting) in cases {
        let (code, stdout, stderr) = run(args, envs, *file);
        assert_eq!(
            code, 2,
            "{args:?} {envs:?} {file:?}: exit code; stderr: {stderr}"
        );
        assert!(stdout.is_empty(), "{args:?}: nothing on stdout");
        assert!(
            stderr.contains(&format!("invalid setting {setting}")),
            "{args:?} {envs:?} {file:?}: stderr should name {setting}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // An unknown flag is a usage error: exit 2 as well.
    let (code, _, stderr) = run(&["--scan.intervall", "1s"], &[], None);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn flags_override_environment_override_file() {
    let fixture = fixture_proc().display().to_string();
    let empty = tempfile::tempdir().unwrap();
    let empty = empty.path().display().to_string();
    let procs = |out: &str| value(&parse_exposition(out), "nsexporter_processes", &[]);
    // The file alone points at the fixture tree (17 processes).
    let file = format!("path:\n  procfs: {fixture}\n");
    let (code, out, err) = run(&[], &[], Some(&file));
    assert_eq!(code, 0, "{err}");
    assert_eq!(procs(&out), Some(17.0));
    // The environment beats the file: an empty procfs has no processes.
    let (code, out, err) = run(&[], &[("NSEXPORTER_PATH_PROCFS", &empty)], Some(&file));
    assert_eq!(code, 0, "{err}");
    assert_eq!(procs(&out), Some(0.0));
    // A flag beats both.
    let (code, out, err) = run(
        &["--path.procfs", &fixture],
        &[("NSEXPORTER_PATH_PROCFS", &empty)],
        Some(&format!("path:\n  procfs: {empty}\n")),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(procs(&out), Some(17.0));
}

#[test]
fn once_fails_clearly_on_a_missing_procfs() {
    let (code, out, err) = run(&["--path.procfs", "/nonexistent/proc"], &[], None);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty());
    assert!(
        err.contains("cannot read the host procfs at /nonexistent/proc"),
        "{err}"
    );
}

#[test]
fn json_logs() {
    let (code, _, err) = run(
        &[
            "--path.procfs",
            &fixture_proc().display().to_string(),
            "--log.format",
            "json",
            "--log.level",
            "debug",
        ],
        &[],
        None,
    );
    assert_eq!(code, 0);
    let line = err
        .lines()
        .find(|l| l.contains("scan complete"))
        .expect("a debug line for the scan");
    let v: serde_json::Value = serde_json::from_str(line).expect("JSON log line");
    assert_eq!(v["level"], "DEBUG");
    assert_eq!(v["processes"], 17);
}

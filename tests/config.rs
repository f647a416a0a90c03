//! Settings: flags over `NSEXPORTER_*` environment over the YAML file over defaults, and
//! a bad value stops the program with exit code 2 and a message naming the setting.

mod common;

use std::process::Command;

use common::*;

/// Run the binary with `--once` against the fixture tree plus `args`, `envs` and an
/// optional config file body; returns (exit code, stdout, stderr).
fn run(args: &[&str], envs: &[(&str, &str)], file: Option<&str>) -> (i32, String, String) {
    let (code, out, err, _) = run_with_path(args, envs, file);
    (code, out, err)
}

/// [`run`], also returning the config file's path.
fn run_with_path(
    args: &[&str],
    envs: &[(&str, &str)],
    file: Option<&str>,
) -> (i32, String, String, String) {
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
        dir.path().join("nsexporter.yml").display().to_string(),
    )
}

/// (flags, environment, config file body, how the error must name the setting: `<file>`
/// stands for the config file's path)
type Case<'a> = (
    &'a [&'a str],
    &'a [(&'a str, &'a str)],
    Option<&'a str>,
    &'a str,
);

#[test]
fn bad_values_exit_2_naming_the_flag_variable_or_key_and_file() {
    let cases: &[Case] = &[
        (&["--scan.interval", "5x"], &[], None, "--scan.interval"),
        (&["--scan.interval", "10ms"], &[], None, "--scan.interval"),
        (&["--scan.threads", "0"], &[], None, "--scan.threads"),
        (&["--scan.threads", "many"], &[], None, "--scan.threads"),
        (
            &["--web.listen-address", "nowhere"],
            &[],
            None,
            "--web.listen-address",
        ),
        (
            &["--web.telemetry-path", "metrics"],
            &[],
            None,
            "--web.telemetry-path",
        ),
        (
            &["--web.telemetry-path", "/healthz"],
            &[],
            None,
            "--web.telemetry-path",
        ),
        (&["--log.level", "loud"], &[], None, "--log.level"),
        (&["--log.format", "xml"], &[], None, "--log.format"),
        (
            &["--container.default-runtime", "rkt"],
            &[],
            None,
            "--container.default-runtime",
        ),
        (
            &[],
            &[("NSEXPORTER_SCAN_INTERVAL", "abc")],
            None,
            "NSEXPORTER_SCAN_INTERVAL",
        ),
        (
            &[],
            &[("NSEXPORTER_LOG_LEVEL", "loud")],
            Some("log:\n  level: debug\n"),
            "NSEXPORTER_LOG_LEVEL",
        ),
        (
            &[],
            &[],
            Some("scan:\n  interval: never\n"),
            "scan.interval in <file>",
        ),
        (
            &[],
            &[],
            Some("scan:\n  interval: [1]\n"),
            "scan.interval in <file>",
        ),
        (
            &[],
            &[],
            Some("web:\n  config-file: /nonexistent/web.yml\n"),
            "web.config-file in <file>",
        ),
        (
            &[],
            &[],
            Some("scan:\n  intervall: 15s\n"),
            "settings file <file>",
        ),
        (&[], &[], Some("scan: [unclosed\n"), "settings file <file>"),
        (
            &["--config.file", "/nonexistent/nsexporter.yml"],
            &[],
            None,
            "--config.file",
        ),
        (
            &[],
            &[("NSEXPORTER_CONFIG_FILE", "/nonexistent/nsexporter.yml")],
            None,
            "NSEXPORTER_CONFIG_FILE",
        ),
        (
            &["--web.config.file", "/nonexistent/web.yml"],
            &[],
            None,
            "--web.config.file",
        ),
    ];
    for (args, envs, file, origin) in cases {
        let (code, stdout, stderr, path) = run_with_path(args, envs, *file);
        let origin = origin.replace("<file>", &path);
        assert_eq!(
            code, 2,
            "{args:?} {envs:?} {file:?}: exit code; stderr: {stderr}"
        );
        assert!(stdout.is_empty(), "{args:?}: nothing on stdout");
        assert!(
            stderr.starts_with(&format!("nsexporter: invalid {origin}: ")),
            "{args:?} {envs:?} {file:?}: stderr should name {origin}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        // No library boilerplate, and no path twice.
        assert!(!stderr.contains("variations"), "{stderr}");
        let paths: Vec<&str> = stderr
            .split_whitespace()
            .map(|w| w.trim_end_matches([':', ',', ')']))
            .filter(|w| w.starts_with('/') && w.len() > 1)
            .collect();
        for p in &paths {
            let times = paths.iter().filter(|q| q == &p).count();
            assert_eq!(times, 1, "{p} twice: {stderr}");
        }
    }
    // An unknown flag is a usage error: exit 2 as well.
    let (code, _, stderr) = run(&["--scan.intervall", "1s"], &[], None);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn durations_are_explained_in_our_words() {
    let (_, _, e) = run(&["--scan.interval", "5x"], &[], None);
    assert!(
        e.contains(r#""5x" is not a duration (unknown unit "x")"#),
        "{e}"
    );
    assert!(e.contains("e.g. 15s, 1m, 500ms"), "{e}");
    let (_, _, e) = run(&[], &[("NSEXPORTER_SCAN_INTERVAL", "abc")], None);
    assert!(e.contains(r#""abc" is not a duration"#), "{e}");
    assert!(!e.contains(" at 0"), "a parser's offset: {e}");
}

/// The values `--help` lists for `flag` (the text after the last ':' of its help, up
/// to the `[default` note: "a, b or c").
fn help_values(help: &str, flag: &str) -> Vec<String> {
    let lines: Vec<&str> = help.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.trim_start().starts_with(flag))
        .unwrap_or_else(|| panic!("{flag} not in --help"));
    // The description runs until the next flag.
    let desc: String = lines[i + 1..]
        .iter()
        .take_while(|l| !l.trim_start().starts_with('-'))
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join(" ");
    let list = desc.split('[').next().unwrap();
    let list = list
        .rsplit(':')
        .next()
        .unwrap()
        .trim()
        .trim_end_matches('.');
    list.replace(" or ", ", ")
        .split(", ")
        .map(|v| v.trim().to_owned())
        .collect()
}

#[test]
fn help_and_validation_agree_on_the_allowed_values() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in ["--container.default-runtime", "--log.level", "--log.format"] {
        let listed = help_values(&help, flag);
        assert!(listed.len() >= 2, "{flag}: {listed:?}");
        // Each listed value is accepted...
        for v in &listed {
            let (code, _, err) = run(
                &[
                    flag,
                    v,
                    "--path.procfs",
                    &fixture_proc().display().to_string(),
                ],
                &[],
                None,
            );
            assert_eq!(code, 0, "{flag} {v}, listed in --help, is refused: {err}");
        }
        // ... and the refusal of anything else lists the same values.
        let (code, _, err) = run(&[flag, "bogus"], &[], None);
        assert_eq!(code, 2);
        let allowed = err.rsplit("must be ").next().unwrap().trim();
        let allowed = allowed.strip_prefix("one of ").unwrap_or(allowed);
        let refused_lists: Vec<String> = allowed
            .replace(" or ", ", ")
            .split(", ")
            .map(|v| v.trim().to_owned())
            .collect();
        assert_eq!(listed, refused_lists, "{flag}: --help vs the error: {err}");
    }
}

#[test]
fn flags_override_environment_override_file() {
    let fixture = fixture_proc().display().to_string();
    let empty = tempfile::tempdir().unwrap();
    let empty = empty.path().display().to_string();
    let procs = |out: &str| value(&parse_exposition(out), "nsexporter_processes", &[]);
    // The file alone points at the fixture tree (14 processes).
    let file = format!("path:\n  procfs: {fixture}\n");
    let (code, out, err) = run(&[], &[], Some(&file));
    assert_eq!(code, 0, "{err}");
    assert_eq!(procs(&out), Some(14.0));
    // The environment beats the file: an empty directory, which is not a procfs.
    let (code, out, err) = run(&[], &[("NSEXPORTER_PATH_PROCFS", &empty)], Some(&file));
    assert_eq!(code, 1, "{out}");
    assert!(err.contains(&format!("{empty} is not a procfs")), "{err}");
    // A flag beats both.
    let (code, out, err) = run(
        &["--path.procfs", &fixture],
        &[("NSEXPORTER_PATH_PROCFS", &empty)],
        Some(&format!("path:\n  procfs: {empty}\n")),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(procs(&out), Some(14.0));
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
    assert_eq!(v["processes"], 14);
}

#[test]
fn logfmt_lines_keep_apostrophes_as_they_are() {
    // As nobody without capabilities, PID 1 is unreadable on every host, so the debug
    // line about it (an apostrophe inside a quoted value) is always there.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            BIN,
            "--once",
            "--log.level",
            "debug",
            "--log.format",
            "logfmt",
        ])
        .output()
        .expect("run setpriv (util-linux; needs root)");
    let err = String::from_utf8_lossy(&out.stderr);
    // Nobody without CAP_SYS_PTRACE reads almost no process: --once is blind and fails
    // (tests/blind.rs), after logging what it met on the way.
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("namespaces are unreadable; trying a kernel thread"))
        .unwrap_or_else(|| panic!("no line about PID 1:\n{err}"));
    assert!(line.contains(r#"message="PID 1's namespaces"#), "{line}");
    assert!(!err.contains(r"\'"), "an escaped apostrophe:\n{err}");
}

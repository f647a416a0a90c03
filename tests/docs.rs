//! The README's metric and flag tables are kept honest: they must name exactly what the
//! exporter emits (from a real run on the fixture tree) and what `--help` lists.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use common::*;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The rows of the table between `<!-- <tag>:begin -->` and `<!-- <tag>:end -->`.
fn table(tag: &str) -> Vec<Vec<String>> {
    let text = readme();
    let begin = format!("<!-- {tag}:begin -->");
    let end = format!("<!-- {tag}:end -->");
    let start = text
        .find(&begin)
        .unwrap_or_else(|| panic!("README has no {begin}"));
    let stop = text
        .find(&end)
        .unwrap_or_else(|| panic!("README has no {end}"));
    text[start + begin.len()..stop]
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn readme_metric_table_matches_real_output() {
    let rows = table("metrics");
    let documented: BTreeMap<String, BTreeSet<String>> = rows
        .iter()
        .map(|r| {
            (
                code_spans(&r[0])[0].clone(),
                code_spans(&r[1]).into_iter().collect(),
            )
        })
        .collect();
    // What a real run emits, on the fixture tree where every metric has series, with
    // the alerting sidecar on (its series exist only then) towards a port where nothing
    // listens.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let url = format!("http://{dead}");
    let mut args: Vec<&str> = vec!["--alertmanager.url", &url];
    let fixture = fixture_args();
    args.extend(fixture.iter().map(String::as_str));
    let exporter = Exporter::start(&args);
    exporter.wait_ready();
    let text = exporter.get("/metrics").body;
    let mut emitted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        emitted
            .entry(line.split(' ').nth(2).unwrap().to_string())
            .or_default();
    }
    for s in parse_exposition(&text) {
        emitted
            .entry(s.name)
            .or_default()
            .extend(s.labels.into_keys());
    }
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        emitted.keys().collect::<Vec<_>>(),
        "README metric names vs a real run"
    );
    for (name, labels) in &emitted {
        assert_eq!(&documented[name], labels, "labels of {name}");
    }
    // And the registry's own list says the same.
    let registered: BTreeSet<String> = nsexporter::metrics::exposed_names().into_iter().collect();
    assert_eq!(registered, documented.keys().cloned().collect());
}

#[test]
fn readme_flag_table_matches_help() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let mut from_help: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
    let lines: Vec<&str> = help.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        let Some(rest) = t.strip_prefix("--") else {
            continue;
        };
        let flag = format!("--{}", rest.split([' ', ',']).next().unwrap());
        if flag == "--help" || flag == "--version" {
            continue;
        }
        let desc = lines.get(i + 1).copied().unwrap_or("");
        let grab = |key: &str| {
            desc.split(key).nth(1).map(|r| {
                r.split(']')
                    .next()
                    .unwrap()
                    .trim_end_matches('=')
                    .to_string()
            })
        };
        from_help.insert(flag, (grab("[default: "), grab("[env: ")));
    }
    let rows = table("flags");
    let documented: BTreeMap<String, (Option<String>, Option<String>)> = rows
        .iter()
        .map(|r| {
            let flag = code_spans(&r[0])[0].clone();
            let env = code_spans(&r[1]).first().cloned();
            let default = code_spans(&r[3]).first().cloned();
            (flag, (default, env))
        })
        .collect();
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        from_help.keys().collect::<Vec<_>>(),
        "README flags vs --help"
    );
    for (flag, (default, env)) in &from_help {
        assert_eq!(&documented[flag].0, default, "default of {flag}");
        assert_eq!(&documented[flag].1, env, "environment variable of {flag}");
    }
}

fn repo_file(rel: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text between `<!-- <tag>:begin -->` and `<!-- <tag>:end -->`.
fn section(text: &str, tag: &str) -> String {
    let begin = format!("<!-- {tag}:begin -->");
    let end = format!("<!-- {tag}:end -->");
    let start = text.find(&begin).unwrap_or_else(|| panic!("no {begin}")) + begin.len();
    let stop = text.find(&end).unwrap_or_else(|| panic!("no {end}"));
    text[start..stop].to_string()
}

/// The value of `name=value` (up to a space) in a shell script.
fn shell_var(script: &str, name: &str) -> String {
    let prefix = format!("{name}=");
    script
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or_else(|| panic!("tests/run.sh sets no {name}"))
        .to_string()
}

#[test]
fn readme_test_command_is_tests_run_sh_and_names_what_it_installs() {
    let readme = readme();
    let script = repo_file("tests/run.sh");
    // The quick start, up to the setup notes, shows the command and the Rust version.
    let quick = &readme[..readme
        .find("<!-- test-setup:begin -->")
        .expect("setup notes")];
    assert!(
        quick.contains("```sh\ntests/run.sh\n```"),
        "the README's test command is not `tests/run.sh`"
    );
    let setup = section(&readme, "test-setup");

    // Every Debian package the script installs, npm included, is named.
    let list = script
        .split_once("packages=(")
        .and_then(|(_, rest)| rest.split_once("\n)"))
        .expect("tests/run.sh has a packages=( ... ) list")
        .0;
    let mut packages: Vec<&str> = list
        .lines()
        .flat_map(|l| l.split('#').next().unwrap_or("").split_whitespace())
        .collect();
    assert!(packages.len() >= 10, "packages parsed: {packages:?}");
    // The ones asked for only where their command is missing: `for pair in pkg:cmd ...`.
    let pairs = script
        .split_once("for pair in ")
        .and_then(|(_, rest)| rest.split_once("; do"))
        .expect("tests/run.sh has a `for pair in pkg:cmd ...; do` list")
        .0;
    for pair in pairs.split_whitespace() {
        packages.push(pair.split(':').next().unwrap());
    }
    assert!(packages.contains(&"npm"), "{packages:?}");
    for p in packages {
        assert!(
            setup.contains(&format!("`{p}`")),
            "README's test setup does not name the package {p} that tests/run.sh installs"
        );
    }
    for var in ["helm_version", "validate_version", "prefix", "venv"] {
        let value = shell_var(&script, var).replace("$prefix", &shell_var(&script, "prefix"));
        assert!(
            setup.contains(&format!("`{value}`")),
            "README's test setup does not name {var} {value}"
        );
    }

    // The per-binary watchdog: its variable and default are the script's.
    let timeout = shell_var(&script, "binary_timeout_default");
    assert!(
        setup.contains(&format!("`{timeout}` seconds"))
            && setup.contains("`NSEXPORTER_TEST_BINARY_TIMEOUT`")
            && script.contains("${NSEXPORTER_TEST_BINARY_TIMEOUT:-$binary_timeout_default}"),
        "README's test setup does not name the per-binary timeout {timeout} and its variable"
    );

    // The Rust version is Cargo.toml's.
    let cargo = repo_file("Cargo.toml");
    let rust = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("Cargo.toml has a rust-version")
        .trim_matches('"');
    for text in [quick, &script] {
        assert!(
            text.contains(&format!("Rust {rust} or newer")),
            "README or tests/run.sh does not say Rust {rust} or newer"
        );
    }

    // .ci/run runs that script and nothing else.
    let ci = repo_file(".ci/run");
    let code: Vec<&str> = ci
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && *l != "set -euo pipefail")
        .collect();
    assert_eq!(
        code,
        ["exec \"$(dirname \"$0\")/../tests/run.sh\" \"$@\""],
        ".ci/run must run tests/run.sh and nothing else"
    );
}

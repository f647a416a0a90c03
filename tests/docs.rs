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
    // What a real run emits, on the fixture tree where every metric has series.
    let text = once(&[
        "--path.procfs",
        &fixture_proc().display().to_string(),
        "--path.rootfs",
        &fixture_rootfs().display().to_string(),
    ]);
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

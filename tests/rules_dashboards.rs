//! The Prometheus rules and Grafana dashboards, checked as their users would check
//! them: `promtool check rules` and `promtool test rules` on the rules file, every
//! dashboard query parsed by promtool, the dashboards' structure, the runbook links
//! against README.md, and every metric they name against a real run of the exporter.
//!
//! promtool comes from Debian's `prometheus` package (`tests/run.sh` installs it);
//! without it these tests fail.
//!
//! Why one file of about 900 lines: the rules and the dashboards are checked against
//! each other and the same real run (every metric a rule or a panel names must be
//! emitted or recorded by a rule), so the rules parser, the query extraction and the
//! promtool helpers serve both halves.

mod common;

use common::root;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const RULES: &str = "charts/nsexporter/files/nsexporter.rules.yml";
const RULE_TESTS: &str = "tests/rules";
const SUBSTITUTED_TEST: &str = "tests/rules/substituted/allowlist.yml";
const DASHBOARDS: &str = "dashboards";
const GOLDEN: &str = "tests/fixtures/golden/metrics.prom";
const FIXTURE_PROC: &str = "tests/fixtures/proc";
const README: &str = "README.md";
const RUNBOOK_BASE: &str = "https://github.com/nsexporter/nsexporter/blob/main/README.md#";

/// Series the rules and dashboards may use without the exporter emitting them:
/// Prometheus' own and kube-state-metrics' (v2).
const EXTERNAL_METRICS: &[&str] = &[
    "up",
    "kube_pod_info",
    "kube_pod_owner",
    "kube_pod_container_info",
];

/// The allow-list tokens of the rules file (files/README-rules.md) and the values the
/// substituted unit test expects, written as a user writes them in values.yaml.
const TOKENS: &[(&str, &str)] = &[
    (
        "NSEXPORTER_ALLOW_NAMESPACES_RE",
        "calico-system|tigera-operator",
    ),
    (
        "NSEXPORTER_ALLOW_WORKLOADS_RE",
        "monitoring/DaemonSet/nsexporter|(?:kube-system)/(?:DaemonSet)/(?:cilium)|(?:default)/(?:Pod)/(?:debug-[a-z]+)",
    ),
    ("NSEXPORTER_ALLOW_COMMS_RE", r"my\.agent"),
    ("NSEXPORTER_HOST_ROOT_ALLOW_NAMESPACES_RE", "rook-ceph"),
    ("NSEXPORTER_JOB_RE", "custom-scrape"),
];

fn read(rel: &str) -> String {
    let path = root().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Runs promtool ($PROMTOOL, else from PATH); a missing promtool is a failure, not a skip.
fn promtool(args: &[&str], dir: &Path) -> Output {
    Command::new(common::require_tool("promtool"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool")
}

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------
// A reader for the rules file. No YAML crate is a dependency; the file's shape is
// ours (`- record:` / `- alert:` items, `expr: |` block scalars), and promtool
// checks that it is valid YAML and valid rules, so a line reader is enough.

#[derive(Debug, Default)]
struct Rule {
    kind: &'static str,
    name: String,
    expr: String,
    /// `key: value` lines inside the rule (labels and annotations), block scalars joined.
    fields: BTreeMap<String, String>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn parse_rules(text: &str) -> Vec<Rule> {
    let lines: Vec<&str> = text.lines().collect();
    let mut rules: Vec<Rule> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim_start();
        let item = t
            .strip_prefix("- record:")
            .map(|n| ("record", n))
            .or_else(|| t.strip_prefix("- alert:").map(|n| ("alert", n)));
        if let Some((kind, name)) = item {
            rules.push(Rule {
                kind,
                name: name.trim().to_string(),
                ..Rule::default()
            });
            i += 1;
            continue;
        }
        let Some(rule) = rules.last_mut() else {
            i += 1;
            continue;
        };
        if t.starts_with("- name:") {
            // a new group: the previous rule is over
            i += 1;
            continue;
        }
        if let Some((key, value)) = t.split_once(':') {
            let key = key.trim();
            let value = value.trim();
            let is_key = !key.is_empty()
                && !t.starts_with('#')
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if is_key {
                let own = indent(line);
                let mut text = value.to_string();
                if matches!(value, "|" | "|-" | ">" | ">-") {
                    let mut block = Vec::new();
                    let mut j = i + 1;
                    while j < lines.len() && (lines[j].trim().is_empty() || indent(lines[j]) > own)
                    {
                        block.push(lines[j].trim());
                        j += 1;
                    }
                    let sep = if value.starts_with('|') { "\n" } else { " " };
                    text = block.join(sep).trim().to_string();
                    i = j;
                } else {
                    i += 1;
                }
                let text = text
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .map(|s| s.replace("''", "'"))
                    .unwrap_or(text);
                if key == "expr" {
                    rule.expr = text;
                } else {
                    rule.fields.insert(key.to_string(), text);
                }
                continue;
            }
        }
        i += 1;
    }
    rules
}

fn rules() -> Vec<Rule> {
    let rules = parse_rules(&read(RULES));
    assert!(
        rules.len() >= 10,
        "found only {} rules in {RULES}",
        rules.len()
    );
    for r in &rules {
        assert!(!r.expr.is_empty(), "rule {} has no expr", r.name);
    }
    rules
}

// ---------------------------------------------------------------------------
// PromQL: the metric names an expression selects.

const PROMQL_WORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "inf",
    "nan",
    "atan2",
    "start",
    "end",
];

/// Metric names selected by `expr`: identifiers outside strings, label matchers,
/// ranges and label lists that are neither functions nor keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let c: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_string = |i: &mut usize| {
        let q = c[*i];
        *i += 1;
        while *i < c.len() && c[*i] != q {
            if c[*i] == '\\' && q != '`' {
                *i += 1;
            }
            *i += 1;
        }
        *i += 1;
    };
    // skips a bracketed region from an opening char to its match, strings inside
    let skip_group = |i: &mut usize, open: char, close: char| {
        let mut depth = 0;
        while *i < c.len() {
            match c[*i] {
                '"' | '\'' | '`' => {
                    skip_string(i);
                    continue;
                }
                ch if ch == open => depth += 1,
                ch if ch == close => {
                    depth -= 1;
                    if depth == 0 {
                        *i += 1;
                        return;
                    }
                }
                _ => {}
            }
            *i += 1;
        }
    };
    while i < c.len() {
        let ch = c[i];
        match ch {
            '#' => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '"' | '\'' | '`' => skip_string(&mut i),
            '{' => skip_group(&mut i, '{', '}'),
            '[' => skip_group(&mut i, '[', ']'),
            d if d.is_ascii_digit()
                || (d == '.' && c.get(i + 1).is_some_and(|n| n.is_ascii_digit())) =>
            {
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.' || c[i] == '_') {
                    i += 1;
                }
            }
            a if a.is_ascii_alphabetic() || a == '_' || a == ':' => {
                let start = i;
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == ':') {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                let mut k = i;
                while k < c.len() && c[k].is_whitespace() {
                    k += 1;
                }
                let call = c.get(k) == Some(&'(');
                let label_list = matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                );
                if call && label_list {
                    i = k;
                    skip_group(&mut i, '(', ')');
                } else if !call && !PROMQL_WORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn metric_name_reader_finds_selectors_only() {
    let got = metric_names(
        r#"sum by (cluster, node) (rate(a_total{job=~"x|y", le="0.5"}[5m] offset 1h))
           / on (cluster) group_left (node) b:rec:sum  # c_in_comment
           unless label_replace(c, "d", "$1", "e", "(.+)") > 1e3 and topk(3, f) or vector(0)"#,
    );
    let want: BTreeSet<String> = ["a_total", "b:rec:sum", "c", "f"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want);
}

// ---------------------------------------------------------------------------
// Dashboards

struct Dashboard {
    file: String,
    json: Value,
}

fn dashboards() -> Vec<Dashboard> {
    let dir = root().join(DASHBOARDS);
    let mut out: Vec<Dashboard> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = fs::read_to_string(&p).expect("read dashboard");
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()));
            Dashboard {
                file: p.file_name().unwrap().to_string_lossy().into_owned(),
                json,
            }
        })
        .collect();
    out.sort_by(|a, b| a.file.cmp(&b.file));
    let files: Vec<&str> = out.iter().map(|d| d.file.as_str()).collect();
    for want in ["nsexporter-fleet.json", "nsexporter-node.json"] {
        assert!(files.contains(&want), "{DASHBOARDS}/{want} is missing");
    }
    out
}

/// Every panel, rows' nested panels included.
fn panels(json: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = json["panels"].as_array().into_iter().flatten().collect();
    while let Some(p) = stack.pop() {
        out.push(p);
        stack.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

fn variables(json: &Value) -> &Vec<Value> {
    json["templating"]["list"]
        .as_array()
        .expect("templating.list")
}

/// (where, PromQL) for every query: panel targets, and variables' `label_values`
/// and `query_result` selectors.
fn dashboard_queries(d: &Dashboard) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(&d.json) {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push((
                    format!("{} panel {} {:?}", d.file, p["id"], p["title"]),
                    e.to_string(),
                ));
            }
        }
    }
    for v in variables(&d.json) {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or_else(|| panic!("{}: variable {} has no query", d.file, v["name"]));
        let inner = q
            .strip_prefix("label_values(")
            .or_else(|| q.strip_prefix("query_result("))
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{}: variable query {q:?} is not label_values(...)", d.file));
        // label_values(selector, label): the selector is PromQL; label_values(label) has none
        let selector = match inner.rfind(',') {
            Some(at) if q.starts_with("label_values(") => inner[..at].trim(),
            _ if q.starts_with("label_values(") => continue,
            _ => inner.trim(),
        };
        out.push((
            format!("{} variable {}", d.file, v["name"]),
            selector.to_string(),
        ));
    }
    out
}

/// Grafana's built-in variables and the dashboards' own, replaced by sample values.
fn substitute(expr: &str, defined: &BTreeSet<String>) -> Result<String, String> {
    let builtins = [
        ("__rate_interval", "5m"),
        ("__interval", "1m"),
        ("__range", "1h"),
        ("__range_s", "3600"),
        ("__interval_ms", "60000"),
    ];
    let mut out = String::new();
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = if let Some(b) = after.strip_prefix('{') {
            let end = b.find('}').ok_or("unclosed ${")?;
            (&b[..end], end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if let Some((_, v)) = builtins.iter().find(|(n, _)| *n == name) {
            out.push_str(v);
        } else if defined.contains(name) {
            out.push_str(&format!("sample-{name}"));
        } else {
            return Err(format!("undefined variable ${name}"));
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    Ok(out)
}

fn defined_variables(d: &Dashboard) -> BTreeSet<String> {
    variables(&d.json)
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect()
}

// ---------------------------------------------------------------------------
// What the exporter really emits

fn sample_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            l.split(|c: char| c == '{' || c.is_whitespace())
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

fn run_once(extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_nsexporter"))
        .arg("--once")
        .args(extra)
        .current_dir(root())
        .output()
        .expect("run nsexporter --once");
    assert_success(&out, &format!("nsexporter --once {}", extra.join(" ")));
    String::from_utf8(out.stdout).expect("exposition is UTF-8")
}

/// Names from a real run on this machine, a real run on the fixture /proc tree
/// (per-container series that a quiet machine does not have) and the golden file.
fn emitted_metrics() -> BTreeSet<String> {
    let mut names = sample_names(&run_once(&[]));
    assert!(
        names.contains("nsexporter_build_info"),
        "nsexporter --once printed no nsexporter_build_info: {names:?}"
    );
    if root().join(FIXTURE_PROC).is_dir() {
        names.extend(sample_names(&run_once(&["--path.procfs", FIXTURE_PROC])));
    }
    if root().join(GOLDEN).is_file() {
        names.extend(sample_names(&read(GOLDEN)));
    }
    names
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn rules_file_passes_promtool_check() {
    let out = promtool(&["check", "rules", RULES], &root());
    assert_success(&out, "promtool check rules");
    let n = rules().len();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("SUCCESS: {n} rules found")),
        "promtool and this test disagree on the number of rules ({n}): {stdout}"
    );
}

fn rule_test_files() -> Vec<String> {
    let mut files: Vec<String> = fs::read_dir(root().join(RULE_TESTS))
        .expect("list tests/rules")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .map(|p| format!("{RULE_TESTS}/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no promtool tests in {RULE_TESTS}");
    files
}

#[test]
fn promtool_unit_tests_pass() {
    let files = rule_test_files();
    let mut args = vec!["test", "rules"];
    args.extend(files.iter().map(String::as_str));
    let out = promtool(&args, &root());
    assert_success(&out, "promtool test rules");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches("SUCCESS").count(),
        files.len(),
        "not every test file reported SUCCESS: {stdout}"
    );
}

#[test]
fn allowlist_tokens_substituted_like_the_chart() {
    let rules = read(RULES);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut substituted = rules.clone();
    for (token, value) in TOKENS {
        let in_exprs = parse_rules(&rules)
            .iter()
            .filter(|r| r.expr.contains(token))
            .count();
        assert!(in_exprs > 0, "{token} is in no rule expression of {RULES}");
        // the chart's escaping for a PromQL double-quoted string
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        substituted = substituted.replace(token, &escaped);
    }
    assert!(
        !substituted.contains("NSEXPORTER_"),
        "a token the test does not know is left in the rules file"
    );
    fs::write(
        tmp.path().join("nsexporter.rules.substituted.yml"),
        &substituted,
    )
    .expect("write substituted rules");
    fs::copy(
        root().join(SUBSTITUTED_TEST),
        tmp.path().join("allowlist.yml"),
    )
    .expect("copy test");
    let out = promtool(
        &["check", "rules", "nsexporter.rules.substituted.yml"],
        tmp.path(),
    );
    assert_success(&out, "promtool check rules (substituted)");
    let out = promtool(&["test", "rules", "allowlist.yml"], tmp.path());
    assert_success(&out, "promtool test rules (substituted allow-list)");
}

#[test]
fn every_rule_has_unit_tests_that_fire_and_that_do_not() {
    let mut fires: BTreeSet<String> = BTreeSet::new();
    let mut silent: BTreeSet<String> = BTreeSet::new();
    let mut exprs = String::new();
    for f in rule_test_files() {
        let text = read(&f);
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim();
            if let Some(name) = t.strip_prefix("- alertname:") {
                let verdict = lines[i + 1..]
                    .iter()
                    .map(|l| l.trim())
                    .find(|l| l.starts_with("exp_alerts:"))
                    .unwrap_or_else(|| panic!("{f}: no exp_alerts after {t}"));
                if verdict == "exp_alerts: []" {
                    silent.insert(name.trim().to_string());
                } else {
                    fires.insert(name.trim().to_string());
                }
            }
            if let Some(e) = t.strip_prefix("- expr:") {
                exprs.push_str(e);
                exprs.push('\n');
            }
        }
    }
    let used = metric_names(&exprs);
    let mut missing = Vec::new();
    for r in rules() {
        match r.kind {
            "alert" => {
                if !fires.contains(&r.name) {
                    missing.push(format!("{}: no case where it fires", r.name));
                }
                if !silent.contains(&r.name) {
                    missing.push(format!("{}: no case where it must not fire", r.name));
                }
            }
            _ => {
                if !used.contains(&r.name) {
                    missing.push(format!("{}: no promql_expr_test", r.name));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "untested rules:\n{}",
        missing.join("\n")
    );
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to `-`.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn alerts_carry_severity_summary_description_and_a_runbook_in_the_readme() {
    let readme = read(README);
    let anchors: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| {
            l.trim_start_matches('#')
                .strip_prefix(' ')
                .filter(|_| l.starts_with('#'))
        })
        .map(github_anchor)
        .collect();
    let section = readme
        .split("\n## Alerts and dashboards")
        .nth(1)
        .expect("README.md has no `## Alerts and dashboards` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut problems = Vec::new();
    let alerts: Vec<Rule> = rules().into_iter().filter(|r| r.kind == "alert").collect();
    assert!(
        alerts.len() >= 10,
        "expected at least 10 alerts, got {}",
        alerts.len()
    );
    for a in &alerts {
        let f = |k: &str| a.fields.get(k).map(String::as_str).unwrap_or("");
        if !["critical", "warning", "info"].contains(&f("severity")) {
            problems.push(format!("{}: severity {:?}", a.name, f("severity")));
        }
        if f("summary").len() < 10 {
            problems.push(format!("{}: no summary", a.name));
        }
        let d = f("description");
        // NsexporterNewHostNamespaceWorkload names the node of a pod it looks up
        let names_target = [
            "$labels.node",
            "$labels.instance",
            "$labels.job",
            ".Labels.node",
        ];
        if !names_target.iter().any(|t| d.contains(t)) {
            problems.push(format!("{}: description names no node or target", a.name));
        }
        if a.expr.contains("container_host")
            && !(d.contains("$labels.pod") || d.contains("$labels.workload"))
        {
            problems.push(format!("{}: description does not name the pod", a.name));
        }
        if a.expr.contains("container_host") && !d.contains("$labels.comm") {
            problems.push(format!("{}: description has no comm fallback", a.name));
        }
        let want = format!("{RUNBOOK_BASE}alert-{}", a.name.to_lowercase());
        if f("runbook_url") != want {
            problems.push(format!(
                "{}: runbook_url {:?}, want {want}",
                a.name,
                f("runbook_url")
            ));
        }
        let anchor = format!("alert-{}", a.name.to_lowercase());
        if !anchors.contains(&anchor) {
            problems.push(format!(
                "{}: README.md has no heading `### Alert: {}`",
                a.name, a.name
            ));
        }
        if !section.contains(&format!("| [`{}`](#{anchor}) |", a.name)) {
            problems.push(format!("{}: not in the README's alert table", a.name));
        }
    }
    // and no runbook section for an alert that does not exist
    for l in section.lines() {
        if let Some(name) = l.strip_prefix("### Alert: ") {
            if !alerts.iter().any(|a| a.name == name.trim()) {
                problems.push(format!("README.md documents unknown alert {name}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn dashboards_are_well_formed() {
    let want_ds = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});
    let mut uids = BTreeSet::new();
    let mut problems = Vec::new();
    for d in dashboards() {
        let j = &d.json;
        let file = &d.file;
        let schema = j["schemaVersion"].as_u64().unwrap_or(0);
        if schema < 39 {
            problems.push(format!("{file}: schemaVersion {schema} < 39"));
        }
        for key in ["uid", "title"] {
            if j[key].as_str().unwrap_or("").is_empty() {
                problems.push(format!("{file}: no {key}"));
            }
        }
        if !uids.insert(j["uid"].to_string()) {
            problems.push(format!("{file}: uid {} used twice", j["uid"]));
        }
        // variables: datasource, cluster, node
        let vars = variables(j);
        let var = |n: &str| vars.iter().find(|v| v["name"] == n);
        match var("datasource") {
            Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
            _ => problems.push(format!("{file}: no prometheus datasource variable")),
        }
        for n in ["cluster", "node"] {
            match var(n) {
                Some(v) if v["type"] == "query" && v["datasource"] == want_ds => {}
                _ => problems.push(format!(
                    "{file}: no query variable `{n}` on ${{datasource}}"
                )),
            }
        }
        // unique panel ids, a grid position, the datasource variable everywhere
        let mut ids = BTreeSet::new();
        let all = panels(j);
        if all.len() < 8 {
            problems.push(format!("{file}: only {} panels", all.len()));
        }
        for p in &all {
            let id = p["id"].as_u64();
            match id {
                Some(id) if ids.insert(id) => {}
                _ => problems.push(format!(
                    "{file}: panel {:?} has a missing or repeated id {:?}",
                    p["title"], p["id"]
                )),
            }
            for k in ["x", "y", "w", "h"] {
                if !p["gridPos"][k].is_u64() {
                    problems.push(format!("{file}: panel {:?} gridPos.{k}", p["title"]));
                }
            }
            if p["type"] == "row" {
                continue;
            }
            if p["datasource"] != want_ds {
                problems.push(format!(
                    "{file}: panel {:?} datasource {}",
                    p["title"], p["datasource"]
                ));
            }
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                problems.push(format!("{file}: panel {:?} has no query", p["title"]));
            }
            for t in targets {
                if t["datasource"] != want_ds {
                    problems.push(format!(
                        "{file}: panel {:?} target datasource {}",
                        p["title"], t["datasource"]
                    ));
                }
            }
        }
        // no datasource UID other than the variable anywhere in the file
        let text = serde_json::to_string(j).expect("serialize");
        for (at, _) in text.match_indices("\"uid\":\"") {
            let v = &text[at + 7..];
            let v = &v[..v.find('"').unwrap_or(0)];
            if v != "${datasource}" && v != "-- Grafana --" && Some(v) != j["uid"].as_str() {
                problems.push(format!("{file}: hard-coded uid {v:?}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn dashboard_queries_parse_with_promtool() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut yaml = String::from("groups:\n  - name: dashboard-queries\n    rules:\n");
    let mut n = 0;
    let mut problems = Vec::new();
    for d in dashboards() {
        let defined = defined_variables(&d);
        for (place, expr) in dashboard_queries(&d) {
            match substitute(&expr, &defined) {
                Ok(e) => {
                    n += 1;
                    // a JSON string is a valid YAML double-quoted scalar
                    yaml.push_str(&format!(
                        "      - record: dashboard:query_{n}:check\n        expr: {}\n",
                        serde_json::to_string(&e).expect("quote")
                    ));
                }
                Err(e) => problems.push(format!("{place}: {e}")),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(n >= 20, "only {n} dashboard queries found");
    fs::write(tmp.path().join("dashboards.rules.yml"), &yaml).expect("write");
    let out = promtool(&["check", "rules", "dashboards.rules.yml"], tmp.path());
    assert_success(
        &out,
        &format!("promtool check rules on the dashboard queries:\n{yaml}"),
    );
}

#[test]
fn every_referenced_metric_is_emitted_recorded_or_external() {
    let rules = rules();
    let recorded: BTreeSet<String> = rules
        .iter()
        .filter(|r| r.kind == "record")
        .map(|r| r.name.clone())
        .collect();
    let mut referenced: BTreeMap<String, String> = BTreeMap::new();
    for r in &rules {
        for m in metric_names(&r.expr) {
            referenced
                .entry(m)
                .or_insert_with(|| format!("rule {}", r.name));
        }
    }
    for d in dashboards() {
        let defined = defined_variables(&d);
        for (place, expr) in dashboard_queries(&d) {
            let e = substitute(&expr, &defined).unwrap_or(expr);
            for m in metric_names(&e) {
                referenced.entry(m).or_insert_with(|| place.clone());
            }
        }
    }
    let emitted = emitted_metrics();
    let unknown: Vec<String> = referenced
        .iter()
        .filter(|(m, _)| {
            !recorded.contains(*m)
                && !emitted.contains(*m)
                && !EXTERNAL_METRICS.contains(&m.as_str())
        })
        .map(|(m, at)| format!("{m} (first used by {at})"))
        .collect();
    assert!(
        unknown.is_empty(),
        "referenced but neither emitted by nsexporter (emitted: {emitted:?}), \
         recorded by the rules, nor a known external metric:\n{}",
        unknown.join("\n")
    );
    // the check itself must see the exporter's per-container series
    for m in [
        "nsexporter_container_host_namespace",
        "nsexporter_container_info",
        "nsexporter_namespaces",
    ] {
        assert!(referenced.contains_key(m), "{m} is referenced nowhere");
    }
    // every recording rule is used by an alert, another rule or a dashboard
    let unused: Vec<&String> = recorded
        .iter()
        .filter(|r| !referenced.contains_key(*r))
        .collect();
    assert!(unused.is_empty(), "recording rules nobody uses: {unused:?}");
}

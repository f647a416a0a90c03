//! The queries users run: every panel target and template variable of the Grafana
//! dashboards (dashboards/*.json) with the variables substituted as Grafana does, and
//! the recording rules of the shipped rules file, ordered by what they read.
//!
//! Shared by `examples/fleetgen` and the tests that evaluate the dashboards on real
//! data (`tests/dashboards_live.rs`, `tests/fleet.rs`).

// Each includer uses part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

/// One query of one panel.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    pub dashboard: String,
    pub panel_id: u64,
    pub title: String,
    pub panel_type: String,
    pub ref_id: String,
    pub expr: String,
    pub instant: bool,
    pub legend: String,
}

impl PanelQuery {
    /// Label names the legend shows (`{{node}}`): every result must carry them.
    pub fn legend_labels(&self) -> Vec<String> {
        self.legend
            .split("{{")
            .skip(1)
            .filter_map(|s| s.split_once("}}"))
            .map(|(name, _)| name.trim().to_string())
            .collect()
    }
}

/// A template variable of type `query`.
#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    pub query: String,
    pub include_all: bool,
    pub all_value: Option<String>,
}

impl Variable {
    /// `label_values(<selector>, <label>)`: the selector and the label.
    pub fn label_values(&self) -> Option<(String, String)> {
        let inner = self
            .query
            .trim()
            .strip_prefix("label_values(")?
            .strip_suffix(')')?;
        let (selector, label) = inner.rsplit_once(',')?;
        Some((selector.trim().to_string(), label.trim().to_string()))
    }
}

pub fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Every panel query of `dashboard`, rows' panels included.
pub fn panels(dashboard: &Value) -> Vec<PanelQuery> {
    fn walk(out: &mut Vec<PanelQuery>, title: &str, panels: &Value) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                let Some(expr) = t["expr"].as_str() else {
                    continue;
                };
                out.push(PanelQuery {
                    dashboard: title.to_string(),
                    panel_id: p["id"].as_u64().unwrap_or_default(),
                    title: p["title"].as_str().unwrap_or_default().to_string(),
                    panel_type: p["type"].as_str().unwrap_or_default().to_string(),
                    ref_id: t["refId"].as_str().unwrap_or_default().to_string(),
                    expr: expr.to_string(),
                    instant: t["instant"] == true && t["range"] != true,
                    legend: t["legendFormat"].as_str().unwrap_or_default().to_string(),
                });
            }
            walk(out, title, &p["panels"]);
        }
    }
    let mut out = Vec::new();
    let title = dashboard["title"].as_str().unwrap_or_default();
    walk(&mut out, title, &dashboard["panels"]);
    out
}

pub fn variables(dashboard: &Value) -> Vec<Variable> {
    dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["type"] == "query")
        .map(|v| Variable {
            name: v["name"].as_str().unwrap_or_default().to_string(),
            query: v["query"]["query"]
                .as_str()
                .or(v["query"].as_str())
                .unwrap_or_default()
                .to_string(),
            include_all: v["includeAll"] == true,
            all_value: v["allValue"].as_str().map(str::to_string),
        })
        .collect()
}

/// Grafana's `$__rate_interval`: the larger of four scrape intervals and the step plus
/// one scrape interval.
pub fn rate_interval(step_seconds: u64, scrape_seconds: u64) -> String {
    format!(
        "{}s",
        (4 * scrape_seconds).max(step_seconds + scrape_seconds)
    )
}

/// `expr` with `$name` and `${name}` replaced from `values` (longest names first) and
/// Grafana's interval variables. Panics on a variable it does not know.
pub fn substitute(
    expr: &str,
    values: &BTreeMap<String, String>,
    step_seconds: u64,
    scrape_seconds: u64,
) -> String {
    let mut all = values.clone();
    all.insert(
        "__rate_interval".into(),
        rate_interval(step_seconds, scrape_seconds),
    );
    all.insert("__interval".into(), format!("{step_seconds}s"));
    let mut names: Vec<&String> = all.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = expr.to_string();
    for n in names {
        out = out
            .replace(&format!("${{{n}}}"), &all[n])
            .replace(&format!("${n}"), &all[n]);
    }
    assert!(
        !out.contains('$') || out.contains("\"$1\""),
        "unknown variable left in {out}"
    );
    out
}

/// A recording rule of the rules file.
#[derive(Debug, Clone)]
pub struct Rule {
    pub group: String,
    pub record: String,
    pub expr: String,
    /// How many recording rules stand between it and the raw series (0: reads only
    /// scraped series).
    pub level: usize,
}

/// The recording rules of a Prometheus rules file, with their levels.
pub fn recording_rules(rules_yaml: &str) -> Vec<Rule> {
    let doc: Value = serde_yaml_ng::from_str(rules_yaml).expect("the rules file is YAML");
    let mut rules = Vec::new();
    for g in doc["groups"].as_array().into_iter().flatten() {
        for r in g["rules"].as_array().into_iter().flatten() {
            if let Some(record) = r["record"].as_str() {
                rules.push(Rule {
                    group: g["name"].as_str().unwrap_or_default().to_string(),
                    record: record.to_string(),
                    expr: r["expr"].as_str().unwrap_or_default().to_string(),
                    level: 0,
                });
            }
        }
    }
    let names: BTreeSet<String> = rules.iter().map(|r| r.record.clone()).collect();
    let deps: Vec<Vec<String>> = rules
        .iter()
        .map(|r| {
            names
                .iter()
                .filter(|n| **n != r.record && mentions(&r.expr, n))
                .cloned()
                .collect()
        })
        .collect();
    let mut level: BTreeMap<String, usize> = BTreeMap::new();
    while level.len() < rules.len() {
        let before = level.len();
        for (r, d) in rules.iter().zip(&deps) {
            if level.contains_key(&r.record) {
                continue;
            }
            if d.iter().all(|n| level.contains_key(n)) {
                let l = d.iter().map(|n| level[n] + 1).max().unwrap_or(0);
                level.insert(r.record.clone(), l);
            }
        }
        assert!(
            level.len() > before,
            "recording rules depend on each other in a cycle"
        );
    }
    for r in &mut rules {
        r.level = level[&r.record];
    }
    rules
}

/// Whether `expr` names the metric `name` (not as part of a longer name).
pub fn mentions(expr: &str, name: &str) -> bool {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    expr.match_indices(name).any(|(i, _)| {
        let before = expr[..i].chars().next_back();
        let after = expr[i + name.len()..].chars().next();
        !before.is_some_and(is_name) && !after.is_some_and(is_name)
    })
}

/// A rules file holding `rules` (one group), as `promtool` reads it.
pub fn rules_file(group: &str, rules: &[&Rule]) -> String {
    let mut out = format!("groups:\n  - name: {group}\n    rules:\n");
    for r in rules {
        out.push_str(&format!("      - record: {}\n        expr: |\n", r.record));
        for line in r.expr.lines() {
            out.push_str(&format!("          {line}\n"));
        }
    }
    out
}

//! From the synthetic fleet to a Prometheus that holds it: OpenMetrics chunks backfilled
//! with `promtool tsdb create-blocks-from openmetrics`, the recording rules backfilled
//! level by level with `promtool tsdb create-blocks-from rules` (a rule can only be
//! backfilled once the rules it reads are in the TSDB), and every dashboard query and
//! recording rule timed on the result.
//!
//! Shared by `examples/fleetgen run` (bench/fleet.sh) and `tests/fleet.rs`.
//!
//! Why one file of about 800 lines: backfill, rule levels and query timing are one
//! pipeline that both bench/fleet.sh and tests/fleet.rs run step by step.

use std::collections::BTreeMap;
use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::model::{self, Config, Node};
use crate::prom::{sample_label as label, sample_value as value_of, Prometheus};
use crate::queries::{self, PanelQuery, Rule};

/// Flags for every Prometheus on the backfilled TSDB: nothing is deleted for age, and
/// queries over the whole window may take their time.
pub const PROMETHEUS_FLAGS: &[&str] = &[
    "--storage.tsdb.retention.time=3650d",
    "--query.timeout=10m",
    "--query.max-samples=500000000",
    "--log.level=warn",
];

pub fn prometheus_config(rule_files: &[&Path]) -> String {
    let mut c = String::from("global:\n  scrape_interval: 5m\n  evaluation_interval: 5m\n");
    if !rule_files.is_empty() {
        c.push_str("rule_files:\n");
        for f in rule_files {
            c.push_str(&format!("  - {}\n", f.display()));
        }
    }
    c
}

/// What the OpenMetrics backfill did and cost.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Backfill {
    pub chunks: usize,
    pub samples: u64,
    pub text_bytes: u64,
    /// Writing the OpenMetrics text (all chunks, one after the other).
    pub generate_seconds: f64,
    /// promtool's own time, summed over chunks.
    pub promtool_seconds: f64,
    /// Start to end, with `parallel` promtool processes.
    pub wall_seconds: f64,
    pub blocks: usize,
    pub tsdb_bytes: u64,
}

fn dir_bytes(p: &Path) -> u64 {
    fs::read_dir(p)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| {
            let m = e.metadata().ok();
            if m.as_ref().is_some_and(|m| m.is_dir()) {
                dir_bytes(&e.path())
            } else {
                m.map_or(0, |m| m.len())
            }
        })
        .sum()
}

/// Moves every block directory of `from` into `data`; returns how many.
fn move_blocks(from: &Path, data: &Path) -> usize {
    let mut n = 0;
    for e in fs::read_dir(from)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        let name = e.file_name();
        let is_block = e.path().join("meta.json").exists();
        if is_block {
            fs::rename(e.path(), data.join(&name)).expect("move block");
            n += 1;
        }
    }
    n
}

/// A promtool process backfilling one chunk file into its own output directory.
struct Job {
    child: Child,
    file: PathBuf,
    out: PathBuf,
    began: Instant,
}

/// A failed run (a panic) must not leave promtool processes behind.
impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How the window is cut and backfilled.
#[derive(Debug, Clone, Copy)]
pub struct Chunking {
    /// Seconds per chunk: aligned, and a block range promtool accepts (2h × 3^k).
    pub seconds: i64,
    /// promtool processes at once.
    pub parallel: usize,
    /// Their niceness (0: as is).
    pub nice: u32,
}

/// Writes the window in chunks and backfills each with promtool. Blocks end up in
/// `data`.
pub fn backfill_openmetrics(
    cfg: &Config,
    nodes: &[Node],
    work: &Path,
    data: &Path,
    chunking: Chunking,
    log: &mut dyn FnMut(String),
) -> Backfill {
    let Chunking {
        seconds: chunk,
        parallel,
        nice,
    } = chunking;
    fs::create_dir_all(data).expect("mkdir data");
    let mut b = Backfill::default();
    let began = Instant::now();
    let mut running: Vec<Job> = Vec::new();
    let wait_one = |running: &mut Vec<Job>, b: &mut Backfill, log: &mut dyn FnMut(String)| {
        let mut job = running.remove(0);
        let out = job.child.wait_with_output_or_status();
        assert!(
            out.0.success(),
            "promtool tsdb create-blocks-from openmetrics {} failed:\n{}",
            job.file.display(),
            out.1
        );
        let took = job.began.elapsed().as_secs_f64();
        b.promtool_seconds += took;
        b.blocks += move_blocks(&job.out, data);
        let _ = fs::remove_file(&job.file);
        let _ = fs::remove_dir_all(&job.out);
        log(format!(
            "promtool: {} in {took:.1} s",
            job.file.file_name().unwrap().to_string_lossy()
        ));
    };
    let first = cfg.start() + cfg.step;
    let mut from = first - first.rem_euclid(chunk);
    while from <= cfg.end {
        let to = from + chunk;
        while running.len() >= parallel.max(1) {
            wait_one(&mut running, &mut b, log);
        }
        let file = work.join(format!("chunk-{from}.om"));
        let g = Instant::now();
        let f = fs::File::create(&file).expect("create chunk file");
        let (_, samples) =
            model::write_range(cfg, nodes, from, to, BufWriter::with_capacity(1 << 20, f))
                .expect("write chunk");
        b.generate_seconds += g.elapsed().as_secs_f64();
        b.samples += samples;
        b.text_bytes += fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        b.chunks += 1;
        let out = work.join(format!("blocks-{from}"));
        let mut cmd = if nice > 0 {
            let mut c = Command::new("nice");
            c.args(["-n", &nice.to_string(), "promtool"]);
            c
        } else {
            Command::new("promtool")
        };
        let child = cmd
            .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet"])
            .arg(format!("--max-block-duration={}s", chunk))
            .arg(&file)
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run promtool (apt-get install prometheus): {e}"));
        log(format!(
            "chunk {}: {samples} samples, {:.1} MB",
            b.chunks,
            fs::metadata(&file).map(|m| m.len()).unwrap_or(0) as f64 / 1e6
        ));
        running.push(Job {
            child,
            file,
            out,
            began: Instant::now(),
        });
        from = to;
    }
    while !running.is_empty() {
        wait_one(&mut running, &mut b, log);
    }
    b.wall_seconds = began.elapsed().as_secs_f64();
    b.tsdb_bytes = dir_bytes(data);
    b
}

trait WaitOutput {
    fn wait_with_output_or_status(&mut self) -> (std::process::ExitStatus, String);
}

impl WaitOutput for Child {
    fn wait_with_output_or_status(&mut self) -> (std::process::ExitStatus, String) {
        use std::io::Read;
        let mut text = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut text);
        }
        if let Some(mut o) = self.stdout.take() {
            let mut s = String::new();
            let _ = o.read_to_string(&mut s);
            text.push_str(&s);
        }
        (self.wait().expect("wait promtool"), text)
    }
}

/// One recording rule backfilled over the window.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuleBackfill {
    pub record: String,
    pub level: usize,
    /// Backfilled over this many seconds.
    pub span: i64,
    pub seconds: f64,
}

/// The group of per-container rules: they feed instant tables and the alerts, whose
/// longest memory is a day, not the 30-day panels.
pub const CONTAINER_GROUP: &str = "nsexporter.containers";

/// Where a rule's backfill starts: the fleet rules (node:, cluster:) over the whole
/// window, which the capacity and fleet panels read back over 30 days; the per-container
/// rules over the last `container_span` seconds only (their cost grows with every
/// container that ever ran, and nothing reads them further back than the alerts' day).
pub fn rule_start(r: &Rule, start: i64, end: i64, container_span: i64) -> i64 {
    if r.group == CONTAINER_GROUP {
        start.max(end - container_span)
    } else {
        start
    }
}

/// Backfills every recording rule of `rules_yaml` up to `end` at `step`, each from
/// `start_of(rule)`, level by level: for each level a Prometheus on `data` (which holds
/// the levels below), one promtool run per rule (so each rule is timed), then the new
/// blocks moved into `data`.
pub fn backfill_rules(
    rules_yaml: &str,
    work: &Path,
    data: &Path,
    start_of: &dyn Fn(&Rule) -> i64,
    end: i64,
    step: i64,
    log: &mut dyn FnMut(String),
) -> Vec<RuleBackfill> {
    let rules = queries::recording_rules(rules_yaml);
    let top = rules.iter().map(|r| r.level).max().unwrap_or(0);
    let mut out = Vec::new();
    for level in 0..=top {
        let prom = Prometheus::start(
            work,
            &prometheus_config(&[]),
            data,
            PROMETHEUS_FLAGS,
            Duration::from_secs(1800),
        );
        let blocks = work.join(format!("rules-{level}"));
        for r in rules.iter().filter(|r| r.level == level) {
            // One file path per group, rewritten for each rule: promtool evaluates a rule
            // at its group's phase, an offset hashed from the group's name and file path
            // (Prometheus' `Group.EvalTimestamp`). With a file per rule every rule had a
            // phase of its own, so a rule reading two others (the own-user-namespace
            // ratio reads two cluster sums) mixed samples from different scrapes: ~2 % off
            // any one scrape's answer, depending on how `now` fell against the phases.
            // In Prometheus a group evaluates its rules in order at one timestamp, each
            // seeing the ones before it at that timestamp; one path per group gives the
            // backfill that same single phase, so every recorded value is one scrape's.
            let file = work.join(format!("group-{}.yml", r.group));
            fs::write(&file, queries::rules_file(&r.group, &[r])).expect("write rule file");
            let began = Instant::now();
            let o = Command::new("promtool")
                .args(["tsdb", "create-blocks-from", "rules", "--quiet"])
                .arg(format!("--url={}", prom.url()))
                .arg(format!("--start={}", start_of(r)))
                .arg(format!("--end={end}"))
                .arg(format!("--eval-interval={step}s"))
                .arg("--max-block-duration=54h")
                .arg(format!("--output-dir={}", blocks.display()))
                .arg(&file)
                .output()
                .expect("run promtool");
            let text = String::from_utf8_lossy(&o.stderr).to_string()
                + &String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success() && !text.contains("level=error"),
                "promtool create-blocks-from rules {} failed:\n{text}",
                r.record
            );
            let seconds = began.elapsed().as_secs_f64();
            log(format!("rule {} (level {level}): {seconds:.1} s", r.record));
            out.push(RuleBackfill {
                record: r.record.clone(),
                level,
                span: end - start_of(r),
                seconds,
            });
        }
        prom.stop();
        move_blocks(&blocks, data);
        let _ = fs::remove_dir_all(&blocks);
    }
    out
}

/// One timed query.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Measurement {
    pub what: String,
    pub kind: String,
    pub expr: String,
    pub series: usize,
    /// First run, then the median of `runs` more.
    pub first_seconds: f64,
    pub median_seconds: f64,
    pub exec_seconds: f64,
    pub samples: u64,
}

fn time_query(
    prom: &Prometheus,
    what: String,
    kind: &str,
    expr: &str,
    run: &dyn Fn(&str) -> Result<crate::prom::Timed, String>,
    runs: usize,
) -> Measurement {
    let first = run(expr).unwrap_or_else(|e| panic!("{what}: {expr}: {e}\n{}", prom.log_tail()));
    let mut walls = Vec::new();
    let mut last = first.clone();
    for _ in 0..runs {
        last = run(expr).unwrap_or_else(|e| panic!("{what}: {e}"));
        walls.push(last.wall.as_secs_f64());
    }
    walls.sort_by(f64::total_cmp);
    Measurement {
        what,
        kind: kind.to_string(),
        expr: expr.to_string(),
        series: last.result.len(),
        first_seconds: first.wall.as_secs_f64(),
        median_seconds: walls
            .get(walls.len() / 2)
            .copied()
            .unwrap_or(first.wall.as_secs_f64()),
        exec_seconds: last.exec.map_or(0.0, |d| d.as_secs_f64()),
        samples: last.samples.unwrap_or(0),
    }
}

/// When dashboards are looked at: instant panels at `at`, the others over
/// `[at - range, at]` at `step`; `scrape` is the scrape interval, for `$__rate_interval`.
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub at: i64,
    pub range: i64,
    pub step: u64,
    pub scrape: u64,
}

/// Every query of `dashboard`, with `values` for the variables, timed.
pub fn measure_dashboard(
    prom: &Prometheus,
    dashboard: &Value,
    values: &BTreeMap<String, String>,
    view: View,
    runs: usize,
) -> Vec<Measurement> {
    let View {
        at,
        range,
        step,
        scrape,
    } = view;
    queries::panels(dashboard)
        .iter()
        .map(|p: &PanelQuery| {
            let expr = queries::substitute(&p.expr, values, step, scrape);
            let what = format!("{}: {} ({})", p.dashboard, p.title, p.ref_id);
            if p.instant {
                time_query(prom, what, "instant", &expr, &|e| prom.query(e, at), runs)
            } else {
                let r = |e: &str| prom.query_range(e, at - range, at, step);
                time_query(prom, what, "range", &expr, &r, runs)
            }
        })
        .collect()
}

/// Every recording rule evaluated once at `at` (what Prometheus pays per evaluation).
pub fn measure_rules(prom: &Prometheus, rules: &[Rule], at: i64, runs: usize) -> Vec<Measurement> {
    rules
        .iter()
        .map(|r| {
            time_query(
                prom,
                r.record.clone(),
                "rule",
                &r.expr,
                &|e| prom.query(e, at),
                runs,
            )
        })
        .collect()
}

/// Waits until the TSDB holds a steady number of blocks (Prometheus compacts the
/// backfilled blocks in the background) for `quiet`, at most `within`; returns the count.
pub fn wait_compacted(prom: &Prometheus, quiet: Duration, within: Duration) -> u64 {
    let count = || -> u64 {
        crate::prom::http_get(prom.port, "/metrics")
            .ok()
            .and_then(|(_, body)| {
                body.lines()
                    .find(|l| l.starts_with("prometheus_tsdb_blocks_loaded "))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .unwrap_or(0.0) as u64
    };
    let deadline = Instant::now() + within;
    let mut last = count();
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(5));
        let now = count();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            break;
        }
    }
    last
}

/// One answer of the fleet dashboard checked against the model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// Runs every query of the fleet dashboard (all clusters, all nodes) at `at` and over
/// `[at - range, at]`, and checks each answer against what the model says: the
/// counts, the leaking nodes (pinned-growth panel and alert), the nodes growing toward a
/// limit (most namespaces, least headroom, time until the limit within `tolerance`),
/// the table of host-namespace containers, named through kube-state-metrics, and the
/// variables. Every query must return data, with the labels its legend shows.
///
/// The panels read recording rules, which Prometheus evaluates on its own schedule
/// (offset within the 5-minute interval), and a rule that reads another lags it by up
/// to one more interval, so a count matches the model at `truth.at` or at one of the
/// scrapes just before (`recent`: the model at the end and up to three scrapes before).
#[allow(clippy::too_many_arguments)]
pub fn verify_fleet(
    prom: &Prometheus,
    fleet: &Value,
    rules_yaml: &str,
    recent: &[model::Truth],
    range: i64,
    step: u64,
    tolerance: f64,
) -> Vec<Check> {
    let truth = &recent[0];
    let at = truth.at;
    let mut checks = Vec::new();
    let mut check = |name: &str, ok: bool, detail: String| {
        checks.push(Check {
            name: name.to_string(),
            ok,
            detail,
        })
    };
    let all: BTreeMap<String, String> = [("cluster", ".*"), ("node", ".*")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    let mut answers: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in queries::panels(fleet) {
        let expr = queries::substitute(&p.expr, &all, step, 300);
        let got = if p.instant {
            prom.query(&expr, at)
        } else {
            prom.query_range(&expr, at - range, at, step)
        };
        let result = match got {
            Ok(t) => t.result,
            Err(e) => {
                check(&format!("{} ({})", p.title, p.ref_id), false, e);
                continue;
            }
        };
        let labels = p.legend_labels();
        let unlabelled = result
            .iter()
            .filter(|r| labels.iter().any(|l| label(r, l).is_empty()))
            .count();
        check(
            &format!("{} ({}) returns labelled data", p.title, p.ref_id),
            !result.is_empty() && unlabelled == 0,
            format!(
                "{} series, {unlabelled} without one of {labels:?}",
                result.len()
            ),
        );
        answers.insert(format!("{}/{}", p.title, p.ref_id), result);
    }
    let get = |key: &str| answers.get(key).cloned().unwrap_or_default();
    let sum = |key: &str| get(key).iter().map(value_of).sum::<f64>();
    // The model's figures at the end and at the scrapes just before.
    let total = |f: &dyn Fn(&model::ClusterTruth) -> f64| -> Vec<f64> {
        recent
            .iter()
            .map(|t| t.clusters.values().map(f).sum::<f64>())
            .collect()
    };
    let eq = |a: f64, b: &Vec<f64>| b.iter().any(|b| (a - b).abs() < 1e-6 * b.abs().max(1.0));

    let want: Vec<f64> = recent.iter().map(|t| t.nodes_up as f64).collect();
    let got = sum("Nodes/A");
    check("Nodes", eq(got, &want), format!("{got} (model: {want:?})"));
    let want = total(&|c| c.containers as f64);
    let got = sum("Containers/A");
    check(
        "Containers",
        eq(got, &want),
        format!("{got} (model: {want:?})"),
    );
    let want = total(&|c| c.host_root_containers as f64);
    let got = sum("Host-root containers/A");
    check(
        "Host-root containers",
        eq(got, &want),
        format!("{got} (model: {want:?})"),
    );
    let want = total(&|c| c.pinned.values().sum::<u64>() as f64);
    let got = sum("Pinned namespaces/A");
    check(
        "Pinned namespaces",
        eq(got, &want),
        format!("{got} (model: {want:?})"),
    );
    for key in [
        "Containers in host net / pid / ipc/A",
        "Containers in host namespaces/A",
    ] {
        for r in get(key) {
            let ty = label(&r, "type").to_string();
            let want = total(&|c| c.host_ns_containers[&ty] as f64);
            let got = value_of(&r);
            check(
                &format!("{key} {ty}"),
                eq(got, &want),
                format!("{got} (model: {want:?})"),
            );
        }
    }
    for key in [
        "Nodes with stale data or down/A",
        "Nodes with stale data or down/B",
    ] {
        let got = sum(key);
        check(
            &format!("{key}: none on a healthy fleet at the end"),
            got == 0.0,
            format!("{got}"),
        );
    }
    let growing: Vec<String> = truth.growing.iter().map(|g| g.node.clone()).collect();
    let g = growing.len();
    let names = |key: &str, n: usize| -> Vec<String> {
        let mut rows = get(key);
        rows.sort_by(|a, b| value_of(b).total_cmp(&value_of(a)));
        rows.iter()
            .take(n)
            .map(|r| label(r, "node").to_string())
            .collect()
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let top = names("Nodes with the most namespaces/A", g);
    check(
        "Nodes with the most namespaces: the growing nodes first",
        sorted(top.clone()) == sorted(growing.clone()),
        format!("{top:?} (model: {growing:?})"),
    );
    let mut least = get("Nodes with the least headroom/A");
    least.sort_by(|a, b| value_of(a).total_cmp(&value_of(b)));
    let least: Vec<String> = least
        .iter()
        .take(g)
        .map(|r| label(r, "node").to_string())
        .collect();
    check(
        "Nodes with the least headroom: the growing nodes first",
        sorted(least.clone()) == sorted(growing.clone()),
        format!("{least:?} (model: {growing:?})"),
    );
    let mut until = get("Time until a namespace limit/A");
    until.sort_by(|a, b| value_of(a).total_cmp(&value_of(b)));
    for (i, gt) in truth.growing.iter().enumerate() {
        let row = until.get(i);
        let node = row.map(|r| label(r, "node")).unwrap_or_default();
        let got = row.map(value_of).unwrap_or(f64::NAN);
        let err = (got - gt.seconds_to_limit).abs() / gt.seconds_to_limit;
        check(
            &format!(
                "Time until a namespace limit: {} ({} growing)",
                gt.node, gt.r#type
            ),
            node == gt.node && err <= tolerance,
            format!(
                "predicted {:.3} days, model {:.3} days ({:.2}% off; listed {node})",
                got / 86400.0,
                gt.seconds_to_limit / 86400.0,
                err * 100.0
            ),
        );
    }
    let others_far = until
        .iter()
        .skip(g)
        .map(value_of)
        .fold(f64::INFINITY, f64::min);
    check(
        "Time until a namespace limit: no other node within 30 days",
        others_far > 30.0 * 86400.0,
        format!("next: {:.1} days", others_far / 86400.0),
    );
    for r in get("Namespaces per type/A") {
        let ty = label(&r, "type").to_string();
        let want = total(&|c| c.namespaces[&ty] as f64);
        let got = value_of(&r);
        check(
            &format!("Namespaces per type {ty}"),
            eq(got, &want),
            format!("{got} (model: {want:?})"),
        );
    }
    let leaking = truth.leaking.clone();
    let top = names("Pinned namespaces, top nodes/A", leaking.len());
    check(
        "Pinned namespaces, top nodes: the leaking nodes first",
        sorted(top.clone()) == sorted(leaking.clone()),
        format!("{top:?} (model: {leaking:?})"),
    );
    let alert = alert_expr(rules_yaml, "NsexporterPinnedNamespacesGrowing");
    let fired: Vec<String> = prom
        .query(&alert, at)
        .map(|t| {
            t.result
                .iter()
                .map(|r| label(r, "node").to_string())
                .collect()
        })
        .unwrap_or_default();
    check(
        "NsexporterPinnedNamespacesGrowing names the leaking nodes",
        sorted(fired.clone()) == sorted(truth.pinned_growing.clone()) && !fired.is_empty(),
        format!("{fired:?} (model: {:?})", truth.pinned_growing),
    );
    for r in get("Containers with their own user namespace/A") {
        let c = label(&r, "cluster");
        let want: Vec<f64> = recent
            .iter()
            .map(|t| t.clusters.get(c).map_or(f64::NAN, |c| c.own_userns_ratio))
            .collect();
        let got = value_of(&r);
        check(
            &format!("Own user namespace share {c}"),
            eq(got, &want),
            format!("{got} (model: {want:?})"),
        );
    }
    let table = get("hostNetwork / hostPID / hostIPC containers/A");
    let unnamed = table
        .iter()
        .filter(|r| {
            ["namespace", "pod", "workload", "container", "comm"]
                .iter()
                .any(|l| label(r, l).is_empty())
        })
        .count();
    check(
        "hostNetwork / hostPID / hostIPC containers: every row, named by kube-state-metrics",
        recent
            .iter()
            .any(|t| table.len() as u64 == t.host_sharing_rows)
            && unnamed == 0,
        format!(
            "{} rows, {unnamed} unnamed (model: {:?})",
            table.len(),
            recent
                .iter()
                .map(|t| t.host_sharing_rows)
                .collect::<Vec<_>>()
        ),
    );
    for v in queries::variables(fleet) {
        let (selector, lbl) = v.label_values().expect("label_values variable");
        let selector = queries::substitute(&selector, &all, step, 300);
        let got = prom
            .label_values(&selector, &lbl, at - range, at)
            .unwrap_or_default();
        let want: Vec<String> = match lbl.as_str() {
            "cluster" => truth.clusters.keys().cloned().collect(),
            _ => (0..truth.nodes).map(|i| format!("node-{i:04}")).collect(),
        };
        check(
            &format!("variable {}", v.name),
            got == want,
            format!("{} values", got.len()),
        );
    }
    checks
}

/// The expression of alert `name` in the rules file.
pub fn alert_expr(rules_yaml: &str, name: &str) -> String {
    let doc: Value = serde_yaml_ng::from_str(rules_yaml).expect("rules YAML");
    doc["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .find(|r| r["alert"] == name)
        .and_then(|r| r["expr"].as_str())
        .unwrap_or_else(|| panic!("no alert {name}"))
        .to_string()
}

//! fleetgen: a synthetic fleet of nsexporter nodes on a real Prometheus, behind
//! `bench/fleet.sh` and `tests/fleet.rs`.
//!
//! ```text
//! fleetgen generate NODES DAYS END FROM TO   OpenMetrics of the samples in [FROM, TO)
//! fleetgen stats NODES DAYS END              series per node, churn, samples (JSON)
//! fleetgen truth NODES DAYS END              what the fleet panels must show at END (JSON)
//! fleetgen run --nodes N --days D --dir DIR [--parallel P] [--chunk-hours H]
//!              [--nice N] [--runs R] [--end END] [--container-rules-hours H]
//!     backfill the fleet into DIR/data with promtool (OpenMetrics, then the recording
//!     rules level by level), start Prometheus on it with the shipped rules, time every
//!     dashboard query and recording rule; results in DIR/results.md and .json
//! ```
//!
//! END, FROM and TO are Unix seconds; END is the last sample (rounded down to 5 minutes).
//! The model is in model.rs; the same code runs in tests/fleet.rs on a small fleet.

mod model;
mod pipeline;
mod prom;
mod queries;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use model::Config;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> f64 {
        args.get(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| usage())
    };
    match args.first().map(String::as_str) {
        Some("generate") => {
            let cfg = Config::new(num(1) as usize, num(2), num(3) as i64);
            let nodes = model::fleet(&cfg);
            let out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            match model::write_range(&cfg, &nodes, num(4) as i64, num(5) as i64, out) {
                Ok((_, samples)) => eprintln!("fleetgen: {samples} samples"),
                Err(e) => {
                    eprintln!("fleetgen: writing failed: {e}");
                    std::process::exit(1);
                }
            }
        }
        Some("stats") => {
            let cfg = Config::new(num(1) as usize, num(2), num(3) as i64);
            let s = model::stats(&cfg, &model::fleet(&cfg));
            println!("{}", serde_json::to_string_pretty(&s).unwrap());
        }
        Some("truth") => {
            let cfg = Config::new(num(1) as usize, num(2), num(3) as i64);
            let t = model::truth(&cfg, &model::fleet(&cfg), cfg.end);
            println!("{}", serde_json::to_string_pretty(&t).unwrap());
        }
        Some("run") => run(&args[1..]),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: fleetgen generate NODES DAYS END FROM TO | stats NODES DAYS END | truth NODES DAYS END\n\
         \x20      fleetgen run --nodes N --days D --dir DIR [--parallel P] [--chunk-hours H] [--nice N] [--runs R] [--end END] [--container-rules-hours H]"
    );
    std::process::exit(2);
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[String]) {
    let get = |name: &str, default: &str| flag(args, name).unwrap_or_else(|| default.to_string());
    let nodes_n: usize = get("--nodes", "2000").parse().unwrap_or_else(|_| usage());
    let days: f64 = get("--days", "30").parse().unwrap_or_else(|_| usage());
    let dir = PathBuf::from(flag(args, "--dir").unwrap_or_else(|| usage()));
    // Absolute: Prometheus and promtool run in directories of their own, where a path
    // relative to ours (bench/fleet.sh's default target/bench/fleet) names nothing.
    std::fs::create_dir_all(&dir).expect("create --dir");
    let dir = std::fs::canonicalize(&dir).expect("resolve --dir");
    let parallel: usize = get("--parallel", "2").parse().unwrap_or_else(|_| usage());
    let chunk_hours: i64 = get("--chunk-hours", "18")
        .parse()
        .unwrap_or_else(|_| usage());
    let nice: u32 = get("--nice", "10").parse().unwrap_or_else(|_| usage());
    let runs: usize = get("--runs", "3").parse().unwrap_or_else(|_| usage());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let end: i64 = get("--end", &now.to_string())
        .parse()
        .unwrap_or_else(|_| usage());
    let cfg = Config::new(nodes_n, days, end);
    let data = dir.join("data");
    let work = dir.join("work");
    if data.exists()
        && std::fs::read_dir(&data)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    {
        eprintln!("fleetgen: {} is not empty", data.display());
        std::process::exit(2);
    }
    std::fs::create_dir_all(&work).expect("mkdir work");
    let began = Instant::now();
    let mut log = |m: String| eprintln!("fleetgen [{:>6.0} s] {m}", began.elapsed().as_secs_f64());

    log(format!(
        "building {nodes_n} nodes x {days} days, end {}",
        cfg.end
    ));
    let nodes = model::fleet(&cfg);
    let stats = model::stats(&cfg, &nodes);
    log(format!(
        "{} samples, {} series over the window, {:.1} live series per node",
        stats.samples, stats.series, stats.live_series_per_node
    ));
    let chunking = pipeline::Chunking {
        seconds: chunk_hours * 3600,
        parallel,
        nice,
    };
    let backfill = pipeline::backfill_openmetrics(&cfg, &nodes, &work, &data, chunking, &mut log);
    log(format!("openmetrics backfill: {backfill:?}"));
    let rules_path = repo().join("charts/nsexporter/files/nsexporter.rules.yml");
    let rules_yaml = std::fs::read_to_string(&rules_path).expect("rules file");
    let container_span: i64 = get("--container-rules-hours", "24")
        .parse::<i64>()
        .unwrap_or_else(|_| usage())
        * 3600;
    let (start, end) = (cfg.start(), cfg.end);
    let rule_backfill = pipeline::backfill_rules(
        &rules_yaml,
        &work,
        &data,
        &|r| pipeline::rule_start(r, start, end, container_span),
        cfg.end,
        cfg.step,
        &mut log,
    );
    let rules_seconds: f64 = rule_backfill.iter().map(|r| r.seconds).sum();
    log(format!("rules backfill: {rules_seconds:.0} s"));

    let prom = prom::Prometheus::start(
        &work,
        &pipeline::prometheus_config(&[rules_path.as_path()]),
        &data,
        pipeline::PROMETHEUS_FLAGS,
        Duration::from_secs(3600),
    );
    log("prometheus up; waiting for compaction to settle".into());
    let blocks =
        pipeline::wait_compacted(&prom, Duration::from_secs(120), Duration::from_secs(3600));
    log(format!("{blocks} blocks loaded"));

    let truth = model::truth(&cfg, &nodes, cfg.end);
    let fleet = queries::load(&repo().join("dashboards/nsexporter-fleet.json"));
    let node_dash = queries::load(&repo().join("dashboards/nsexporter-node.json"));
    let range = cfg.window;
    let step = 3600;
    let view = pipeline::View {
        at: cfg.end,
        range,
        step,
        scrape: 300,
    };
    let all: BTreeMap<String, String> = [("cluster", ".*"), ("node", ".*")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    let mut m = pipeline::measure_dashboard(&prom, &fleet, &all, view, runs);
    let leaking = &truth.leaking[0];
    let leaking_node = nodes.iter().find(|n| &n.name == leaking).unwrap();
    let one: BTreeMap<String, String> = [
        ("cluster".to_string(), leaking_node.cluster.clone()),
        ("node".to_string(), leaking.clone()),
    ]
    .into();
    m.extend(pipeline::measure_dashboard(
        &prom, &node_dash, &one, view, runs,
    ));
    let rules = queries::recording_rules(&rules_yaml);
    let rm = pipeline::measure_rules(&prom, &rules, cfg.end, runs);
    log("measured".into());
    let recent: Vec<model::Truth> = (0..4)
        .map(|k| model::truth(&cfg, &nodes, cfg.end - k * cfg.step))
        .collect();
    let checks = pipeline::verify_fleet(&prom, &fleet, &rules_yaml, &recent, range, step, 0.05);
    let failed = checks.iter().filter(|c| !c.ok).count();
    log(format!(
        "{} checks against the model, {failed} failed",
        checks.len()
    ));

    let mut report = report(
        &cfg,
        &stats,
        &backfill,
        &rule_backfill,
        blocks,
        &m,
        &rm,
        step,
    );
    let _ = writeln!(
        report,
        "\nThe fleet dashboard against the model ({failed} of {} failed):\n",
        checks.len()
    );
    for c in &checks {
        let _ = writeln!(
            report,
            "- {} {}: {}",
            if c.ok { "ok" } else { "FAILED" },
            c.name,
            c.detail
        );
    }
    std::fs::write(dir.join("results.md"), &report).expect("write results.md");
    let json = serde_json::json!({
        "nodes": nodes_n, "days": days, "end": cfg.end, "stats": stats, "backfill": backfill,
        "rules_backfill": rule_backfill, "blocks": blocks, "panels": m, "rules": rm, "truth": truth,
        "checks": checks,
    });
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&json).unwrap(),
    )
    .expect("write results.json");
    let _ = std::io::stdout().write_all(report.as_bytes());
    prom.stop();
}

#[allow(clippy::too_many_arguments)]
fn report(
    cfg: &Config,
    stats: &model::Stats,
    b: &pipeline::Backfill,
    rb: &[pipeline::RuleBackfill],
    blocks: u64,
    panels: &[pipeline::Measurement],
    rules: &[pipeline::Measurement],
    step: u64,
) -> String {
    let mut r = String::new();
    let _ = writeln!(
        r,
        "## Fleet: {} nodes x {} days, samples every {} s\n",
        cfg.nodes,
        cfg.window / 86400,
        cfg.step
    );
    let _ = writeln!(
        r,
        "- series alive per node: {:.1} ({:.1} the exporter's and `up`, {:.1} kube-state-metrics' for its node and pods)",
        stats.live_series_per_node, stats.live_exporter_series_per_node, stats.live_ksm_series_per_node
    );
    let _ = writeln!(
        r,
        "- distinct series over the window: {} ({:.0} per node; the exporter's: {}), from {} pods and {} containers",
        stats.series, stats.series_per_node_over_window, stats.exporter_series, stats.pods, stats.containers
    );
    let _ = writeln!(
        r,
        "- OpenMetrics backfill: {} samples in {} chunks, {:.1} GB of text; generating {:.0} s, promtool {:.0} s in total ({:.0} samples/s per process), {:.0} s wall; {} blocks, {:.2} GB of TSDB ({:.2} bytes/sample)",
        b.samples,
        b.chunks,
        b.text_bytes as f64 / 1e9,
        b.generate_seconds,
        b.promtool_seconds,
        b.samples as f64 / b.promtool_seconds.max(1e-9),
        b.wall_seconds,
        b.blocks,
        b.tsdb_bytes as f64 / 1e9,
        b.tsdb_bytes as f64 / b.samples.max(1) as f64
    );
    let total: f64 = rb.iter().map(|x| x.seconds).sum();
    let _ = writeln!(
        r,
        "- recording rules backfill: {} rules, {:.0} s; {} blocks loaded when measured\n",
        rb.len(),
        total,
        blocks
    );
    let _ = writeln!(
        r,
        "Panels (instant queries at the end; range queries over the whole window at a {step} s step), median of the warm runs:\n"
    );
    let _ = writeln!(
        r,
        "| panel | query | series | first | median | Prometheus exec | samples read |"
    );
    let _ = writeln!(r, "|---|---|---:|---:|---:|---:|---:|");
    for m in panels {
        let _ = writeln!(
            r,
            "| {} | {} | {} | {:.3} s | {:.3} s | {:.3} s | {} |",
            m.what, m.kind, m.series, m.first_seconds, m.median_seconds, m.exec_seconds, m.samples
        );
    }
    let _ = writeln!(
        r,
        "\nRecording rules: one evaluation at the end, and the backfill over the window:\n"
    );
    let _ = writeln!(r, "| rule | level | series | evaluation (median) | Prometheus exec | backfill | backfilled over |");
    let _ = writeln!(r, "|---|---:|---:|---:|---:|---:|---:|");
    for m in rules {
        let bf = rb.iter().find(|x| x.record == m.what);
        let _ = writeln!(
            r,
            "| `{}` | {} | {} | {:.3} s | {:.3} s | {:.1} s | {:.1} days |",
            m.what,
            bf.map_or(0, |x| x.level),
            m.series,
            m.median_seconds,
            m.exec_seconds,
            bf.map_or(0.0, |x| x.seconds),
            bf.map_or(0.0, |x| x.span as f64 / 86400.0)
        );
    }
    r
}

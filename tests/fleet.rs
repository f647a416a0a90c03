//! A small fleet on a real Prometheus, through the same generator, backfill and queries
//! as the fleet benchmark (bench/fleet.sh, examples/fleetgen): 50 nodes over 2 days of
//! 5-minute samples, with container churn, host-network agents on every node, two nodes
//! leaking pinned network namespaces and three growing toward a namespace limit, written
//! as OpenMetrics and backfilled with `promtool tsdb create-blocks-from openmetrics`;
//! the shipped recording rules backfilled with `promtool tsdb create-blocks-from rules`,
//! level by level; then Prometheus on that TSDB with the rules loaded.
//!
//! Every query of the fleet dashboard must return labelled data and the answer the
//! model gives: counts, the leaking nodes (pinned-growth panel and alert), the growing
//! nodes (most namespaces, least headroom) and, within 5 %, when each reaches its limit
//! (the capacity panel's prediction). Every recording rule has data at the end, and
//! every panel of the node dashboard has data for a leaking node.
//!
//! Needs promtool and prometheus (Debian: prometheus). Everything lives in a temporary
//! directory; Prometheus is killed when the test ends, pass or fail.

mod common;
#[allow(dead_code)]
#[path = "../examples/fleetgen/model.rs"]
mod model;
#[allow(dead_code)]
#[path = "../examples/fleetgen/pipeline.rs"]
mod pipeline;
#[path = "../examples/fleetgen/prom.rs"]
mod prom;
#[path = "../examples/fleetgen/queries.rs"]
mod queries;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{require_tool, root};

const NODES: usize = 50;
const DAYS: f64 = 2.0;
/// Per-container rules are backfilled over the last 3 hours only (the benchmark: a day).
const CONTAINER_RULES_SPAN: i64 = 3 * 3600;
/// The capacity prediction must be within this share of the model's limit-hit time.
const TOLERANCE: f64 = 0.05;

/// Recording rules meant to be empty on the synthetic fleet, and why: checked empty,
/// so the list fails if the model starts to produce them.
const EMPTY_ON_THE_MODEL: &[(&str, &str)] = &[(
    "nsexporter:container_escaped_processes:named",
    "the model has no namespace escapes (a healthy fleet has none; tests/escapes.rs and \
     the promtool cases in tests/rules/escapes.yml cover the rule on real and unit data)",
)];
#[test]
fn a_small_fleet_gives_the_fleet_dashboard_the_models_answers() {
    let began = Instant::now();
    require_tool("promtool");
    require_tool("prometheus");
    let mut log = |m: String| eprintln!("fleet [{:>5.1} s] {m}", began.elapsed().as_secs_f64());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let cfg = model::Config::new(NODES, DAYS, now);
    let nodes = model::fleet(&cfg);
    let stats = model::stats(&cfg, &nodes);
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("work");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&work).unwrap();

    let b = pipeline::backfill_openmetrics(
        &cfg,
        &nodes,
        &work,
        &data,
        pipeline::Chunking {
            seconds: 18 * 3600,
            parallel: 2,
            nice: 0,
        },
        &mut log,
    );
    log(format!(
        "{} samples in {} blocks; {:.1} live series per node",
        b.samples, b.blocks, stats.live_series_per_node
    ));
    assert_eq!(
        b.samples, stats.samples,
        "generated samples against the model's count"
    );
    assert!(b.blocks >= 1);

    let rules_path = root().join("charts/nsexporter/files/nsexporter.rules.yml");
    let rules_yaml = std::fs::read_to_string(&rules_path).expect("rules file");
    let (start, end) = (cfg.start(), cfg.end);
    let rb = pipeline::backfill_rules(
        &rules_yaml,
        &work,
        &data,
        &|r| pipeline::rule_start(r, start, end, CONTAINER_RULES_SPAN),
        end,
        cfg.step,
        &mut log,
    );
    assert_eq!(rb.len(), queries::recording_rules(&rules_yaml).len());

    let prom = prom::Prometheus::start(
        &work,
        &pipeline::prometheus_config(&[rules_path.as_path()]),
        &data,
        pipeline::PROMETHEUS_FLAGS,
        Duration::from_secs(300),
    );
    // The shipped rules load as they are.
    let groups = prom.api("/api/v1/rules").expect("rules API");
    let loaded: usize = groups["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| g["rules"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(loaded > rb.len(), "Prometheus loaded {loaded} rules");

    let recent: Vec<model::Truth> = (0..4)
        .map(|k| model::truth(&cfg, &nodes, cfg.end - k * cfg.step))
        .collect();
    let t = &recent[0];
    assert_eq!(t.leaking.len(), 2, "the model has two leaking nodes");
    assert_eq!(t.growing.len(), 3, "and three growing toward a limit");
    assert_eq!(
        t.pinned_growing, t.leaking,
        "both leaking nodes meet the alert's condition"
    );

    let fleet = queries::load(&root().join("dashboards/nsexporter-fleet.json"));
    let checks = pipeline::verify_fleet(
        &prom,
        &fleet,
        &rules_yaml,
        &recent,
        cfg.window,
        600,
        TOLERANCE,
    );
    for c in &checks {
        eprintln!(
            "fleet: {} {}: {}",
            if c.ok { "ok" } else { "FAILED" },
            c.name,
            c.detail
        );
    }
    let failed: Vec<&pipeline::Check> = checks.iter().filter(|c| !c.ok).collect();
    assert!(
        failed.is_empty(),
        "fleet dashboard answers that differ from the model: {failed:#?}"
    );
    assert!(
        checks
            .iter()
            .any(|c| c.name.starts_with("Time until a namespace limit: node-")),
        "the capacity prediction was checked"
    );

    for r in queries::recording_rules(&rules_yaml) {
        let got = prom.query(&r.record, end).expect("query a recorded series");
        if let Some((_, why)) = EMPTY_ON_THE_MODEL.iter().find(|(rec, _)| *rec == r.record) {
            assert!(
                got.result.is_empty(),
                "recording rule {} has data, but {why}",
                r.record
            );
            eprintln!("fleet: ok {} is empty, as meant: {why}", r.record);
            continue;
        }
        assert!(
            !got.result.is_empty(),
            "recording rule {} has no data at the end",
            r.record
        );
    }

    let node_dash = queries::load(&root().join("dashboards/nsexporter-node.json"));
    let leaking = nodes.iter().find(|n| n.name == t.leaking[0]).unwrap();
    let values: BTreeMap<String, String> = [
        ("cluster".to_string(), leaking.cluster.clone()),
        ("node".to_string(), leaking.name.clone()),
    ]
    .into();
    for p in queries::panels(&node_dash) {
        let expr = queries::substitute(&p.expr, &values, 600, 300);
        let got = if p.instant {
            prom.query(&expr, end)
        } else {
            prom.query_range(&expr, end - cfg.window, end, 600)
        }
        .unwrap_or_else(|e| panic!("node dashboard {}: {e}", p.title));
        // A panel that reads a rule the model leaves empty is empty too (the node
        // dashboard's escapes table; tests/dashboards_live.rs fills it on a real lab).
        if let Some((rule, why)) = EMPTY_ON_THE_MODEL
            .iter()
            .find(|(rule, _)| queries::mentions(&p.expr, rule))
        {
            assert!(
                got.result.is_empty(),
                "node dashboard panel {:?} reads {rule} and has data, but {why}",
                p.title
            );
            eprintln!(
                "fleet: ok node panel {:?} is empty, as meant: {why}",
                p.title
            );
            continue;
        }
        assert!(
            !got.result.is_empty(),
            "node dashboard panel {:?} has no data for {}: {expr}",
            p.title,
            leaking.name
        );
    }
    log("done".into());
}

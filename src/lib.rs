//! nsexporter: a Prometheus exporter that tells, per node and from the kernel's own
//! records, which containers share the host's namespaces, which run as real host root,
//! and how many namespaces of each type the node holds against its limits.
//!
//! # Layout
//! - [`paths`]: where the host's procfs is (`--path.procfs`); every path comes from it.
//! - [`parse`]: pure parsers for ns links, uid_map, stat, status, cgroup and mountinfo.
//! - [`procfd`]: dirfd-relative reads of `/proc/<pid>`, the scan's hot path.
//! - [`hostref`]: which namespaces are the host's (PID 1, a kernel thread, fixed inodes).
//! - [`cgroup`]: container attribution from cgroup path shapes.
//! - [`model`]: namespace types, per-process records and the node [`model::Snapshot`].
//! - [`scan`]: one pass over /proc into a snapshot.
//! - [`sampler`]: scans on an interval, keeps cross-scan counters, publishes.
//! - [`metrics`]: the metric contract, encoded from a published snapshot.
//! - [`server`]: the HTTP endpoints and the limits that protect them.
//! - [`webconfig`]: `--web.config.file`: TLS, client certificates, basic auth, reloading.
//! - [`config`]: flags, environment and config file.
//! - [`telemetry`]: logging through tracing, as logfmt or JSON.
//! - [`report`]: `report`, `inspect` and `diff` for a person at a terminal.

pub mod alerting;
pub mod cgroup;
pub mod config;
pub mod hostref;
pub mod metrics;
pub mod model;
pub mod parse;
pub mod paths;
pub(crate) mod procfd;
pub mod report;
pub mod sampler;
pub mod scan;
pub mod server;
pub mod telemetry;
pub mod webconfig;

use std::future::Future;
use std::sync::Arc;

use crate::config::Settings;
use crate::sampler::{Sampler, Shared};
use crate::scan::{ScanOptions, Scanner};

/// Scanner options from settings.
pub fn scan_options(settings: &Settings) -> ScanOptions {
    ScanOptions {
        paths: settings.paths.clone(),
        default_runtime: settings.default_runtime,
        threads: settings.scan_threads,
        ..ScanOptions::default()
    }
}

/// `--once`: one scan, encoded in the Prometheus text format. A procfs that cannot be
/// read at all is an error rather than an exposition without data.
pub fn run_once(settings: &Settings) -> Result<String, scan::ScanError> {
    let mut scanner = Scanner::new(scan_options(settings));
    let snapshot = scanner.scan()?;
    let mut sampler = Sampler::new(scanner);
    let exp = sampler.publish_snapshot(snapshot);
    Ok(String::from_utf8_lossy(&exp.body(metrics::Format::PrometheusText)).into_owned())
}

/// Serve metrics on `listener` and scan on a background thread until `shutdown`.
pub async fn serve(
    settings: &Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let shared = Shared::new(settings.scan_interval);
    let sampler = Sampler::new(Scanner::new(scan_options(settings)));
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let sampler_shared = shared.clone();
    std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || sampler::run(sampler, sampler_shared, stop_rx))?;
    let app = Arc::new(server::App::new(
        shared,
        settings.telemetry_path.clone(),
        settings.web_config.clone(),
        settings.max_requests,
    ));
    let res = server::run(listener, app, shutdown).await;
    // The sampler stops at its next wait; a scan in progress is abandoned with the process.
    let _ = stop_tx.send(());
    res
}

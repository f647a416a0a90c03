//! nsexporter: a Prometheus exporter that tells, per node and from the kernel's own
//! records, which containers share the host's namespaces, which run as real host root,
//! and how many namespaces of each type the node holds against its limits.
//!
//! # Layout
//! One line per module, from the bottom up: each imports only modules above it.
//! - [`model`]: namespace types, per-process records and the node [`model::Snapshot`].
//! - [`procfs`]: reading the host's procfs.
//!   - [`procfs::paths`]: where it is (`--path.procfs`, `--path.sysfs`); every path comes from it.
//!   - `procfs::fd`: dirfd-relative reads of `/proc/<pid>`, syscall counts, error kinds.
//!   - [`procfs::parse`]: pure parsers of ns links, uid_map, stat, status, cgroup, mountinfo.
//! - [`cgroup`]: container attribution from cgroup path shapes.
//! - [`scan`]: one pass over /proc into a snapshot: `Scanner`, its options and errors.
//!   - `scan::process`: the per-process read, with the proof of why its reuse is sound.
//!   - `scan::summary`: one scan's processes folded into the snapshot; the limits.
//!   - `scan::mounts`: the nsfs mounts of each mount namespace (pinned namespaces).
//!   - `scan::hostref`: which namespaces are the host's (PID 1, a kernel thread, fixed).
//!   - `scan::delegation`: containers in cgroup subtrees delegated to a user (`--path.sysfs`).
//!   - [`scan::visible`]: whether the procfs can show the whole node (blindness).
//!   - [`scan::one`]: one process read on its own, for `inspect` and `diff`.
//! - [`metrics`]: the metric contract, encoded from a published snapshot.
//! - [`sampler`]: scans on an interval, keeps cross-scan counters, publishes.
//! - `http`: the endpoints and the limits that protect them; reads the sampler only.
//!   - `http::body`: response bodies in bounded frames, gzipped once per scan.
//!   - `http::conn`: one connection: write-stall guard, TLS handshake, HTTP/1.1.
//!   - `http::webconfig`: `--web.config.file`: its format, loading and reloading.
//!   - `http::tls`: the rustls config: certificates, client certs, versions, suites.
//!   - `http::auth`: basic auth: the header, bcrypt and the cache of verified users.
//! - [`telemetry`]: logging through tracing, as logfmt or JSON.
//! - [`cli`]: every flag and subcommand (clap), in one place.
//! - [`config`]: flags over environment, config file and defaults, checked into settings.
//! - [`report`]: `report`, `inspect` and `diff` for a person at a terminal.
//!
//! Choices a reader may wonder about: the bcrypt cache is its own type in `http::auth`,
//! held by the web config source, so that auth owns its state; `lower_priority` (the
//! scan thread's nice value) sits with the scanner it serves in `scan`; the host
//! reference is part of `scan` because only the scanner resolves it.

pub mod cgroup;
pub mod cli;
pub mod config;
pub(crate) mod http;
pub mod metrics;
pub mod model;
pub mod procfs;
pub mod report;
pub mod sampler;
pub mod scan;
pub mod telemetry;

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
/// read at all, or that hides most of the node, is an error rather than an exposition
/// without data.
pub fn run_once(settings: &Settings) -> Result<String, scan::ScanError> {
    let mut scanner = Scanner::new(scan_options(settings));
    let snapshot = scanner.scan_whole()?;
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
    scan::raise_file_limit();
    let sampler = Sampler::new(Scanner::new(scan_options(settings)));
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let sampler_shared = shared.clone();
    std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || sampler::run(sampler, sampler_shared, stop_rx))?;
    let app = Arc::new(http::App::new(
        shared,
        settings.telemetry_path.clone(),
        settings.web_config.clone(),
        settings.max_requests,
    ));
    let res = http::run(listener, app, shutdown).await;
    // The sampler stops at its next wait; a scan in progress is abandoned with the process.
    let _ = stop_tx.send(());
    res
}

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
//!   - [`procfs::parse`]: pure parsers of ns links, uid_map, stat, schedstat, status,
//!     cgroup, mountinfo.
//!   - [`procfs::own`]: the exporter's own `process_*` figures (procfs-core's parsers).
//! - [`cgroup`]: container attribution from cgroup path shapes.
//! - [`runtime`]: names and declared namespaces from the container runtimes' own files.
//! - [`scan`]: one pass over /proc into a snapshot: `Scanner`, its options and errors.
//!   - `scan::process`: the per-process read, with the proof of why its reuse is sound.
//!   - `scan::summary`: one scan's processes folded into the snapshot; the limits.
//!   - `scan::mounts`: the nsfs mounts of each mount namespace (pinned namespaces).
//!   - `scan::hostref`: which namespaces are the host's (PID 1, a kernel thread, fixed).
//!   - `scan::delegation`: containers in cgroup subtrees delegated to a user (`--path.sysfs`).
//!   - [`scan::visible`]: whether the procfs can show the whole node (blindness).
//!   - [`scan::one`]: one process read on its own, for `inspect` and `diff`.
//! - [`events`]: the kernel's proc connector: every exec as it happens, read at once.
//!   - [`events::proto`]: its wire format, parsed as pure functions; sequence gaps.
//!   - [`events::connector`]: subscribing, receiving, and why it is unavailable.
//!   - [`events::feed`]: the events thread and its bounded hand-over to the sampler.
//!   - [`events::ledger`]: exec counts per container, kept for the retention.
//! - [`alerting`]: the alerting sidecar: alerts judged on every snapshot, pushed to
//!   Alertmanager (rules, allow-list, per-URL outbox, v2 client, http_config).
//! - [`metrics`]: the metric contract, encoded from a published snapshot.
//! - [`sampler`]: scans on an interval, keeps cross-scan counters, publishes (and
//!   hands each snapshot to the sidecar).
//! - `http`: the endpoints and the limits that protect them; reads the sampler only.
//!   - `http::admit`: which connections and scrapes are admitted, per source and in all.
//!   - `http::body`: response bodies in bounded frames, gzipped once per scan.
//!   - `http::conn`: one connection: deadlines, write deadline, TLS handshake, HTTP/1.1.
//!   - `http::webconfig`: `--web.config.file`: its format, loading and reloading.
//!   - `http::tls`: the rustls config: certificates, client certs, versions, suites.
//!   - `http::auth`: basic auth: the header, bcrypt costs, the fair bcrypt pool, the
//!     cache of verified users.
//!   - `http::listen`: the listening socket; `:port` is dual-stack IPv6 and IPv4.
//! - [`telemetry`]: logging through tracing, as logfmt or JSON.
//! - [`cli`]: every flag and subcommand (clap), in one place.
//! - [`config`]: flags over environment, config file and defaults, checked into settings.
//! - [`report`]: `report`, `inspect` and `diff` for a person at a terminal.
//! - [`watch`]: `watch`, the live view of execs of container processes in host namespaces.
//!
//! Choices a reader may wonder about: the bcrypt cache is its own type in `http::auth`,
//! held by the web config source, so that auth owns its state; `lower_priority` (the
//! scan thread's nice value) sits with the scanner it serves in `scan`; the host
//! reference is part of `scan` because only the scanner resolves it.

pub mod alerting;
pub mod cgroup;
pub mod cli;
pub mod config;
pub mod events;
pub(crate) mod http;
pub mod metrics;
pub mod model;
pub mod procfs;
pub mod report;
pub mod runtime;
pub mod sampler;
pub mod scan;
pub mod telemetry;
pub mod watch;

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
        runtime: settings.runtime_dirs.clone(),
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

/// The listening socket for `--web.listen-address`: `:port` is dual-stack, IPv6 and
/// IPv4, or IPv4 alone where there is no IPv6 (see `http::listen`). Call it inside the
/// tokio runtime.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    http::listen::listen(addr)
}

/// Serve metrics on `listener` and scan on a background thread until `shutdown`.
pub async fn serve(
    settings: &Settings,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let shared = Shared::new(settings.scan_interval);
    // The sidecar's senders run on this runtime until `_alerting` is dropped at the end.
    let (sidecar, _alerting) = match &settings.alerting {
        Some(a) => {
            let urls: Vec<&str> = a.urls.iter().map(|u| u.display.as_str()).collect();
            tracing::info!(alertmanagers = ?urls, node = %a.node,
                resend_interval = ?a.resend_interval, "alerting sidecar on");
            let (s, t) = alerting::Sidecar::start(a.clone());
            (Some(s), Some(t))
        }
        None => (None, None),
    };
    scan::raise_file_limit();
    // Open files are shared: the scanner keeps up to this many mount tables open, and
    // the server's connections get what is left.
    let opts = scan_options(settings);
    let kept_mount_tables = opts.max_kept_mount_tables;
    let mut sampler = Sampler::new(Scanner::new(opts))
        .with_retention(settings.events_retention)
        .with_alerting(sidecar);
    let inbox = events::feed::Inbox::new();
    if settings.scan_events {
        sampler.set_events_enabled(start_events(settings, inbox.clone()));
    }
    let sampler_shared = shared.clone();
    let sampler_inbox = inbox.clone();
    std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || sampler::run(sampler, sampler_shared, sampler_inbox))?;
    let app = Arc::new(http::App::new(
        shared,
        settings.telemetry_path.clone(),
        settings.web_config.clone(),
        settings.max_requests,
        http::Limits::for_this_process(settings.max_connections, kept_mount_tables),
    ));
    let res = http::run(listener, app, shutdown).await;
    // The sampler and the events thread stop at their next wait; a scan in progress is
    // abandoned with the process.
    inbox.stop();
    res
}

/// Subscribe to process events and start the events thread. Whatever fails, one log
/// line says what is missing and scans go on alone: never an exit, never a crash loop.
fn start_events(settings: &Settings, inbox: Arc<events::feed::Inbox<scan::Fresh>>) -> bool {
    let opts = scan_options(settings);
    let conn = match events::subscribe(&opts.paths, &events::Options::default()) {
        Ok(c) => c,
        Err(reason) => {
            tracing::warn!(
                reason = %reason,
                "process events (--scan.events) are unavailable; nsexporter goes on with \
                 scans alone every --scan.interval, and nsexporter_scan_events_enabled is 0"
            );
            return false;
        }
    };
    let mut reader = match scan::ExecReader::new(&opts) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(
                reason = %format!("cannot open the host procfs {}: {e}", opts.paths.procfs.display()),
                "process events (--scan.events) are unavailable; nsexporter goes on with \
                 scans alone every --scan.interval, and nsexporter_scan_events_enabled is 0"
            );
            return false;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("events".into())
        .spawn(move || events::feed::run(conn, inbox, move |pid| reader.read(pid)));
    match spawned {
        Ok(_) => {
            tracing::info!("process events on: every exec is read at once");
            true
        }
        Err(e) => {
            tracing::warn!(reason = %format!("cannot start the events thread: {e}"), "process events (--scan.events) are unavailable; nsexporter goes on with scans alone");
            false
        }
    }
}

//! The sampler: runs a scan every interval on its own thread, keeps the counters that
//! span scans (errors, host-namespace starts), and publishes each result, already
//! encoded, for the HTTP server to hand out.

use std::collections::HashSet;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::metrics::{self, Counters, Format, Published};
use crate::model::{BlindReason, ContainerRef, NsType, Snapshot};
use crate::scan::Scanner;

/// One published state: the snapshot and counters, and both encodings of them, made
/// once per scan so that a scrape only copies a reference.
#[derive(Debug, Clone)]
pub struct Exposition {
    pub published: Arc<Published>,
    pub prometheus_text: Bytes,
    pub openmetrics: Bytes,
    /// When the latest successful scan finished (monotonic), for readiness.
    pub last_success: Option<Instant>,
    /// Why the exporter is not doing its job right now, if it is not: the latest scan
    /// failed, or it could not see the whole node ([`Snapshot::blindness`]). Readiness
    /// fails at once then.
    pub failing: Option<String>,
}

impl Exposition {
    pub fn new(published: Arc<Published>, last_success: Option<Instant>) -> Self {
        let enc = |f| match metrics::encode(published.clone(), f) {
            Ok(s) => Bytes::from(s),
            Err(e) => {
                tracing::error!(error = %e, "encoding metrics failed");
                Bytes::new()
            }
        };
        Exposition {
            prometheus_text: enc(Format::PrometheusText),
            openmetrics: enc(Format::OpenMetrics),
            published,
            last_success,
            failing: None,
        }
    }

    pub fn body(&self, f: Format) -> Bytes {
        match f {
            Format::OpenMetrics => self.openmetrics.clone(),
            Format::PrometheusText => self.prometheus_text.clone(),
        }
    }
}

/// The state the sampler writes and the server reads.
#[derive(Debug)]
pub struct Shared {
    current: RwLock<Arc<Exposition>>,
    pub interval: Duration,
}

impl Shared {
    pub fn new(interval: Duration) -> Arc<Self> {
        Arc::new(Shared {
            current: RwLock::new(Arc::new(Exposition::new(Arc::default(), None))),
            interval,
        })
    }

    pub fn current(&self) -> Arc<Exposition> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn publish(&self, e: Exposition) {
        let e = Arc::new(e);
        match self.current.write() {
            Ok(mut g) => *g = e,
            Err(poisoned) => *poisoned.into_inner() = e,
        }
    }

    /// Ready when a scan has completed, the latest is no older than three intervals,
    /// and the latest attempt neither failed nor was blind (a procfs that hides most
    /// tasks, or most processes unreadable): a failing procfs or missing privileges show
    /// at once, not after three intervals of stale data.
    pub fn readiness(&self) -> Result<(), String> {
        let cur = self.current();
        if let Some(why) = &cur.failing {
            return Err(why.clone());
        }
        match cur.last_success {
            None => Err("no scan has completed yet".into()),
            Some(t) if t.elapsed() > self.interval * 3 => Err(format!(
                "the latest completed scan is {:.0?} old, more than three scan intervals",
                t.elapsed()
            )),
            Some(_) => Ok(()),
        }
    }
}

/// Scans and the state that spans them.
#[derive(Debug)]
pub struct Sampler {
    scanner: Scanner,
    counters: Counters,
    /// (container, type) pairs sharing a host namespace in the previous scan.
    sharing: HashSet<(ContainerRef, NsType)>,
    baseline_taken: bool,
    last: Option<Arc<Snapshot>>,
    last_success: Option<Instant>,
    /// Whether permission errors were already logged.
    warned_permission: bool,
    /// Whether running in a child user namespace was already logged.
    warned_userns: bool,
    /// Whether unreadable namespace limits were logged (again after they recover).
    warned_limits: bool,
    /// Why the latest scan attempt leaves the exporter not ready (see
    /// [`Exposition::failing`]).
    failing: Option<String>,
    /// Scans failed in a row, and when the last error line about it was logged
    /// (a failure that persists is logged again once a minute; recovery once).
    failed_in_row: u64,
    last_failure_log: Option<Instant>,
    /// Why the latest scan attempt could not see the whole node, if it could not, and
    /// when that was last logged (again once a minute while it lasts, and at once when
    /// the reason changes; recovery once).
    blind: Option<BlindReason>,
    last_blind_log: Option<Instant>,
}

/// How often a scan failure that persists is logged again at error level.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

impl Sampler {
    pub fn new(scanner: Scanner) -> Self {
        Sampler {
            scanner,
            counters: Counters::default(),
            sharing: HashSet::new(),
            baseline_taken: false,
            last: None,
            last_success: None,
            warned_permission: false,
            warned_userns: false,
            warned_limits: false,
            failing: None,
            failed_in_row: 0,
            last_failure_log: None,
            blind: None,
            last_blind_log: None,
        }
    }

    /// Run one scan and fold it into the counters. A failed scan keeps the previous
    /// snapshot (so readiness, not the data, tells that it is getting old).
    pub fn step(&mut self) -> Exposition {
        match self.scanner.scan() {
            Ok(snap) => self.publish_snapshot(snap),
            Err(err) => {
                // An empty directory or another file system where the procfs should be
                // (the host's /proc not mounted there, or mounted over) is blind too.
                self.blind = err.blind_reason();
                self.counters.scans += 1;
                self.counters.procfs += 1;
                self.failed_in_row += 1;
                let due = self
                    .last_failure_log
                    .is_none_or(|t| t.elapsed() >= FAILURE_LOG_EVERY);
                if due {
                    tracing::error!(
                        error = %err,
                        failed_in_row = self.failed_in_row,
                        "scan failed: the host procfs is unusable; counted in \
                         nsexporter_scan_errors_total{{reason=\"procfs\"}}, and /readyz fails \
                         until a scan succeeds again"
                    );
                    self.last_failure_log = Some(Instant::now());
                }
                self.failing = Some(format!("the latest scan failed: {err}"));
                self.exposition()
            }
        }
    }

    /// Fold a completed scan into the counters and publish it.
    pub fn publish_snapshot(&mut self, snap: Snapshot) -> Exposition {
        self.counters.scans += 1;
        if self.failed_in_row > 0 {
            tracing::info!(
                failed_in_row = self.failed_in_row,
                "scan succeeded again: the host procfs is readable"
            );
            self.failed_in_row = 0;
            self.last_failure_log = None;
        }
        self.failing = None;
        let e = &snap.errors;
        self.counters.errors.add(e);
        // Blind: a procfs that hides most tasks, or most processes unreadable. What the
        // scan shows then is not the node: it is published (it is what can be seen), but
        // the exporter is not ready and says why.
        let procfs = self.scanner.options().paths.procfs.display().to_string();
        let blindness = snap.blindness(&procfs);
        let reason = blindness.as_ref().map(|b| b.reason);
        if let Some(b) = &blindness {
            let due = reason != self.blind
                || self
                    .last_blind_log
                    .is_none_or(|t| t.elapsed() >= FAILURE_LOG_EVERY);
            if due {
                tracing::error!(
                    reason = b.reason.name(),
                    error = %b.message,
                    processes = snap.processes,
                    unreadable = e.permission,
                    tasks_seen = snap.visibility.tasks_seen,
                    tasks_total = ?snap.visibility.tasks_total,
                    "the scan cannot see the whole node; nsexporter_procfs_blind says why, and \
                     /readyz fails until it can"
                );
                self.last_blind_log = Some(Instant::now());
            }
            self.failing = Some(b.message.clone());
        } else if self.blind.is_some() {
            tracing::info!("the scan sees the whole node again");
            self.last_blind_log = None;
        }
        self.blind = reason;
        if blindness.is_none() && e.permission > 0 && !self.warned_permission {
            tracing::info!(
                unreadable = e.permission,
                "some processes' namespaces are unreadable (EACCES); they are counted in \
                 nsexporter_scan_errors_total{{reason=\"permission\"}}"
            );
            self.warned_permission = true;
        }
        // The limit of every type the kernel has should be readable; a missing or
        // unparseable sysctl file loses that limit (and the capacity alert).
        let unreadable: Vec<String> = snap
            .supported
            .iter()
            .filter(|t| snap.limits[t.index()].is_none())
            .map(|t| {
                self.scanner
                    .options()
                    .paths
                    .ns_limit(*t)
                    .display()
                    .to_string()
            })
            .collect();
        self.counters.errors.io += unreadable.len() as u64;
        if unreadable.is_empty() {
            self.warned_limits = false;
        } else if !self.warned_limits {
            tracing::warn!(
                files = ?unreadable,
                "namespace limits are unreadable (missing or not a number): \
                 nsexporter_namespace_limit is not reported for these types, so capacity \
                 alerts cannot fire; counted in nsexporter_scan_errors_total{{reason=\"io\"}}"
            );
            self.warned_limits = true;
        }
        if snap.reader_in_child_userns && !self.warned_userns {
            tracing::warn!(
                "nsexporter runs in a user namespace other than the host's: host UIDs that are \
                 not mapped into it read as 65534, so host-root detection is unreliable; run it \
                 in the host user namespace (no hostUsers: false for its pod)"
            );
            self.warned_userns = true;
        }
        self.track_starts(&snap);
        tracing::debug!(
            processes = snap.processes,
            containers = snap.containers.len(),
            duration_ms = snap.duration.as_secs_f64() * 1e3,
            "scan complete"
        );
        self.last = Some(Arc::new(snap));
        self.last_success = Some(Instant::now());
        self.exposition()
    }

    fn exposition(&self) -> Exposition {
        let mut e = Exposition::new(
            Arc::new(Published {
                snapshot: self.last.clone(),
                counters: self.counters.clone(),
                blind: self.blind,
            }),
            self.last_success,
        );
        e.failing = self.failing.clone();
        e
    }

    fn track_starts(&mut self, snap: &Snapshot) {
        let mut now = HashSet::new();
        for c in snap.containers.values() {
            for t in &snap.supported {
                if c.shares(*t) {
                    now.insert((c.container.clone(), *t));
                }
            }
        }
        if self.baseline_taken {
            for (c, t) in now.difference(&self.sharing) {
                self.counters.host_ns_starts[t.index()] += 1;
                tracing::info!(container_id = %c.container_id(), uid = %c.pod_uid, r#type = %t, "container started sharing a host namespace");
            }
        }
        self.baseline_taken = true;
        self.sharing = now;
    }
}

/// Run the sampler on the current thread until `stop` fires or its sender is dropped.
pub fn run(mut sampler: Sampler, shared: Arc<Shared>, stop: Receiver<()>) {
    // Scans are background work: scrapes on the server's threads come first.
    crate::scan::lower_priority();
    loop {
        let started = Instant::now();
        shared.publish(sampler.step());
        let wait = shared.interval.saturating_sub(started.elapsed());
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => continue,
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::paths::HostPaths;
    use crate::scan::ScanOptions;

    #[test]
    fn a_failed_scan_fails_readiness_at_once_and_a_good_one_restores_it() {
        let dir = tempfile::tempdir().unwrap();
        let procfs = dir.path().join("proc");
        let shared = Shared::new(Duration::from_secs(3600));
        let mut sampler = Sampler::new(Scanner::new(ScanOptions {
            paths: HostPaths::new(&procfs),
            ..ScanOptions::default()
        }));
        // Missing procfs: not ready, with the reason.
        shared.publish(sampler.step());
        let why = shared.readiness().unwrap_err();
        assert!(why.contains("the latest scan failed"), "{why}");
        // An empty directory (a mount missing) is not a procfs either.
        std::fs::create_dir(&procfs).unwrap();
        shared.publish(sampler.step());
        let why = shared.readiness().unwrap_err();
        assert!(why.contains("not a procfs"), "{why}");
        // The real one appears: ready again without a restart.
        std::fs::remove_dir(&procfs).unwrap();
        std::os::unix::fs::symlink("/proc", &procfs).unwrap();
        shared.publish(sampler.step());
        assert_eq!(shared.readiness(), Ok(()));
        // It disappears again: not ready at once, although the last success is recent.
        std::fs::remove_file(&procfs).unwrap();
        shared.publish(sampler.step());
        assert!(shared.readiness().is_err());
        let c = &shared.current().published.counters;
        assert_eq!((c.scans, c.procfs), (4, 3));
    }
}

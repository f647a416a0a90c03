//! The sampler: runs a scan every interval on its own thread, keeps the counters that
//! span scans (errors, host-namespace starts), and publishes each result, already
//! encoded, for the HTTP server to hand out.
//!
//! Why one file of about 800 lines: about 560 of code, the rest its unit tests beside it.
//! Scans, event folds, counters, readiness and the exec ledger all change the same state
//! on the sampler's one thread; split apart, that state would leak across modules.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::alerting::Sidecar;
use crate::events::feed::{self, Inbox, Pending, Wake};
use crate::events::ledger::{ExecRecord, Ledger};
use crate::metrics::{self, Counters, Format, Published};
use crate::model::{BlindReason, ContainerRef, Names, NsType, ProcRecord, Snapshot};
use crate::procfs::own;
use crate::procfs::paths::OWN_PROCFS;
use crate::scan::{Change, Fresh, Scanner};

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
    /// How many expositions were published: a burst of execs must make a few, not one
    /// per exec.
    publishes: AtomicU64,
}

impl Shared {
    pub fn new(interval: Duration) -> Arc<Self> {
        Arc::new(Shared {
            current: RwLock::new(Arc::new(Exposition::new(Arc::default(), None))),
            interval,
            publishes: AtomicU64::new(0),
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
        self.publishes.fetch_add(1, Ordering::Relaxed);
    }

    /// How many expositions were published since the start.
    pub fn publishes(&self) -> u64 {
        self.publishes.load(Ordering::Relaxed)
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
    /// Exec counts per container, kept for the retention after its last process.
    ledger: Ledger,
    /// The exec records folded in since the last publish.
    execs: Vec<ExecRecord>,
    /// Lost events not yet logged, and when the last line about them was.
    lost_unlogged: u64,
    last_loss_log: Option<Instant>,
    /// The alerting sidecar, fed every snapshot this publishes.
    alerting: Option<Sidecar>,
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
            ledger: Ledger::new(DEFAULT_RETENTION),
            execs: Vec::new(),
            lost_unlogged: 0,
            last_loss_log: None,
            alerting: None,
            blind: None,
            last_blind_log: None,
        }
    }

    /// Feed every snapshot this publishes to the alerting sidecar.
    pub fn with_alerting(mut self, sidecar: Option<Sidecar>) -> Self {
        self.alerting = sidecar;
        self
    }

    /// How long a container's exec counter stays after its last process
    /// (`--scan.events-retention`).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.ledger = Ledger::new(retention);
        self
    }

    /// Whether process events are being received (`nsexporter_scan_events_enabled`).
    pub fn set_events_enabled(&mut self, on: bool) {
        self.counters.events_enabled = on;
    }

    /// The exec records of one kind, judged against `snap`'s host: only container
    /// processes in at least one host namespace leave one. Each carries its container's
    /// names: from `snap` while the container is there, else from `names_of` (a
    /// container whose last process is gone already).
    fn exec_records(
        snap: &Snapshot,
        records: Vec<ProcRecord>,
        at: SystemTime,
        by_event: bool,
        mut names_of: impl FnMut(&ContainerRef) -> Names,
    ) -> Vec<ExecRecord> {
        records
            .into_iter()
            .filter_map(|r| {
                let names = r.container.as_ref().map(|c| match snap.containers.get(c) {
                    Some(s) => s.runtime_info.names.clone(),
                    None => names_of(c),
                })?;
                ExecRecord::of(r, &snap.host.ns, &snap.supported, at, by_event, names)
            })
            .collect()
    }

    /// Count `records` in the ledger, refresh the containers `snap` shows present, and
    /// drop those past the retention.
    fn update_ledger(&mut self, snap: &Snapshot, records: Vec<ExecRecord>) {
        let now = Instant::now();
        for r in records {
            self.execs.push(r.clone());
            self.ledger.record(r, now);
        }
        for c in snap.containers.values() {
            self.ledger
                .seen(&c.container, &c.comm, &c.runtime_info.names, now);
        }
        self.ledger.prune(now);
    }

    /// Fold a batch from the events thread: count its losses, fold what it read into
    /// the scanner's state, count the execs of container processes in a host
    /// namespace. Returns the new exposition when the containers' picture changed (an
    /// exec counted, a container process gone), `None` when there is nothing new to
    /// publish (the state is still folded; the next publish shows it).
    /// The batch's lists are left empty, their capacity for [`Inbox::recycle`].
    pub fn fold_events(&mut self, batch: &mut Pending<Fresh>) -> Option<Exposition> {
        self.counters.exec_events = self.counters.exec_events.max(batch.stats.execs);
        self.counters.events_lost += batch.lost;
        if batch.lost > 0 {
            self.lost_unlogged += batch.lost;
            let due = self
                .last_loss_log
                .is_none_or(|t| t.elapsed() >= FAILURE_LOG_EVERY);
            if due {
                tracing::warn!(
                    lost = self.lost_unlogged,
                    total = self.counters.events_lost,
                    "process events were lost (the receive buffer overflowed): a full scan \
                     repairs the state; counted in nsexporter_events_lost_total, logged at \
                     most once a minute"
                );
                self.lost_unlogged = 0;
                self.last_loss_log = Some(Instant::now());
            }
        }
        let mut changes: Vec<(u64, Change)> =
            Vec::with_capacity(batch.execs.len() + batch.exits.len());
        let received = batch.execs.first().map(|e| e.received);
        // Gone before the events thread could read them (processes that live a
        // millisecond): counted like processes that vanish mid-scan.
        self.counters.errors.vanished += batch.vanished;
        changes.extend(
            batch
                .execs
                .drain(..)
                .map(|e| (e.kernel_ns, Change::Exec(e.read))),
        );
        changes.extend(
            batch
                .exits
                .drain(..)
                .map(|(ts, pid)| (ts, Change::Exit(pid))),
        );
        if changes.is_empty() {
            return None;
        }
        let (snap, records) = self.scanner.fold(changes)?;
        // Wall time of the batch's first receipt, as near to the exec as this thread knows.
        let at = SystemTime::now() - received.map_or(Duration::ZERO, |r| r.elapsed());
        let scanner = &mut self.scanner;
        let records = Self::exec_records(&snap, records, at, true, |c| scanner.names_of(c));
        let changed = !records.is_empty()
            || self
                .last
                .as_ref()
                .is_none_or(|l| l.containers != snap.containers);
        self.update_ledger(&snap, records);
        self.last = Some(Arc::new(snap));
        changed.then(|| self.exposition())
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
                    tasks_total = snap.visibility.tasks_total,
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
        let first = self.scanner.take_first_found();
        // A scan finds only present containers: their names are in the snapshot.
        let records = Self::exec_records(&snap, first, snap.taken_at, false, |_| Names::default());
        self.update_ledger(&snap, records);
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

    fn exposition(&mut self) -> Exposition {
        // The sidecar judges only a snapshot the exporter stands behind: after a failed
        // or blind scan its alerts stay as they were (and are re-sent), rather than
        // resolving everything a missing privilege hides.
        let alerting = self
            .alerting
            .as_ref()
            .map(|a| match (&self.last, &self.failing) {
                (Some(snap), None) => a.observe(snap),
                _ => a.stats(),
            });
        // The exporter's own figures, read once per publish like everything else a
        // scrape hands out (a scrape does no work: it copies the encoded buffer).
        let process = match own::read(Path::new(OWN_PROCFS)) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the exporter's own process figures");
                None
            }
        };
        let mut e = Exposition::new(
            Arc::new(Published {
                snapshot: self.last.clone(),
                counters: self.counters.clone(),
                retained: Arc::new(self.ledger.containers().clone()),
                execs: std::mem::take(&mut self.execs).into(),
                alerting,
                blind: self.blind,
                process,
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
            // One line per container: at info for the types that expose the node, at
            // debug for those that ordinary containers share.
            let mut started: BTreeMap<&ContainerRef, Vec<NsType>> = BTreeMap::new();
            for (c, t) in now.difference(&self.sharing) {
                self.counters.host_ns_starts[t.index()] += 1;
                started.entry(c).or_default().push(*t);
            }
            for (c, mut types) in started {
                types.sort();
                let (exposing, ordinary): (Vec<NsType>, Vec<NsType>) = types
                    .into_iter()
                    .partition(|t| NsType::EXPOSING.contains(t));
                let names =
                    |ts: &[NsType]| ts.iter().map(|t| t.name()).collect::<Vec<_>>().join(",");
                if !exposing.is_empty() {
                    tracing::info!(container_id = %c.container_id(), uid = %c.pod_uid, types = %names(&exposing), "container started sharing host namespaces");
                }
                if !ordinary.is_empty() {
                    tracing::debug!(container_id = %c.container_id(), uid = %c.pod_uid, types = %names(&ordinary), "container started sharing host namespaces that ordinary containers share");
                }
            }
        }
        self.baseline_taken = true;
        self.sharing = now;
    }
}

/// How long a container's exec counter stays after its last process by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(600);

/// After events were lost, the full scan that repairs them starts at once, but no
/// sooner than this after the previous scan started: a flood that overflows the
/// buffer again and again must not turn into back-to-back scans.
const LOSS_SCAN_GAP: Duration = Duration::from_secs(1);

/// Run the sampler on the current thread until `inbox` is stopped: a scan every
/// interval, and between scans the batches the events thread hands over (none when
/// events are off). A batch is let gather for [`feed::COALESCE`] after its first
/// event, so a burst makes one publish, not one per exec.
pub fn run(mut sampler: Sampler, shared: Arc<Shared>, inbox: Arc<Inbox<Fresh>>) {
    // Scans are background work: scrapes on the server's threads come first. The
    // events thread, which reads exec'd processes, keeps its normal priority.
    crate::scan::lower_priority();
    let mut last_scan = Instant::now();
    shared.publish(sampler.step());
    let mut next_scan = last_scan + shared.interval;
    loop {
        match inbox.wait(next_scan) {
            Wake::Stop => return,
            Wake::Deadline => {
                last_scan = Instant::now();
                shared.publish(sampler.step());
                next_scan = last_scan + shared.interval;
            }
            Wake::Work => {
                if !inbox.sleep_until((Instant::now() + feed::COALESCE).min(next_scan)) {
                    return;
                }
                let mut batch = inbox.take();
                let needs_scan = batch.needs_scan;
                if let Some(e) = sampler.fold_events(&mut batch) {
                    shared.publish(e);
                }
                inbox.recycle(batch);
                if needs_scan {
                    // Repair what the lost events would have told, at once (or as soon
                    // as the gap allows), then on the usual interval.
                    next_scan = next_scan.min(last_scan + LOSS_SCAN_GAP);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::paths::HostPaths;
    use crate::scan::ScanOptions;

    /// A snapshot in which one container shares the host network namespace; blind
    /// (every other process unreadable) when `blind`, with no container then.
    fn snapshot(blind: bool) -> crate::model::Snapshot {
        use crate::model::*;
        let c = ContainerSummary {
            container: ContainerRef {
                runtime: Runtime::Containerd,
                id: "aa".into(),
                pod_uid: String::new(),
                owner_uid: None,
            },
            processes: 1,
            main_pid: 100,
            main_start_time: 1,
            comm: "sleep".into(),
            main_ns: NsSet::default(),
            host_ns_processes: {
                let mut h = [0; 8];
                h[NsType::Net.index()] = 1;
                h
            },
            host_root_processes: 0,
            root: RootMapping::NonRoot,
            uid_map: None,
            runtime_info: Default::default(),
            escaped_processes: [0; 8],
            escapes: Vec::new(),
        };
        Snapshot {
            taken_at: std::time::SystemTime::now(),
            duration: Duration::ZERO,
            host: HostRef {
                source: HostSource::Kthread,
                ns: NsSet::default(),
            },
            supported: NsType::ALL.to_vec(),
            processes: if blind { 1 } else { 10 },
            counts: [NsCount::default(); 8],
            limits: [Some(1000); 8],
            host_ns_processes: [0; 8],
            containers: if blind {
                Default::default()
            } else {
                [(c.container.clone(), c)].into_iter().collect()
            },
            pinned: Vec::new(),
            errors: ScanErrors {
                permission: if blind { 50 } else { 0 },
                ..ScanErrors::default()
            },
            reader_in_child_userns: false,
            runtime_read_errors: Vec::new(),
            visibility: Default::default(),
        }
    }

    #[test]
    fn a_blind_scan_resolves_no_alert() {
        use crate::alerting::allow::{AllowConfig, AllowList};
        use crate::alerting::{client::AlertmanagerUrl, httpconfig::HttpConfig};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _g = rt.enter();
        let (sidecar, _tasks) =
            crate::alerting::Sidecar::start(crate::alerting::AlertingSettings {
                // Nothing is sent: the runtime never runs the senders.
                urls: vec![AlertmanagerUrl::parse("http://127.0.0.1:1").unwrap()],
                http: Arc::new(HttpConfig::none().unwrap()),
                resend_interval: Duration::from_secs(60),
                queue_capacity: 100,
                batch_max: 10,
                timeout: Duration::from_secs(1),
                node: "n".into(),
                allow: AllowList::new(&AllowConfig::default(), None).unwrap(),
            });
        let mut sampler =
            Sampler::new(Scanner::new(ScanOptions::default())).with_alerting(Some(sidecar));
        let firing = |e: &Exposition| {
            let a = e.published.alerting.as_ref().unwrap();
            let n = a
                .alerts
                .iter()
                .find(|(n, s, _)| *n == "NsexporterHostNetworkContainer" && *s == "firing")
                .map(|x| x.2);
            (n, a.targets[0].queue_length)
        };
        // Seen: firing, one alert queued.
        assert_eq!(
            firing(&sampler.publish_snapshot(snapshot(false))),
            (Some(1), 1)
        );
        // Blind: not ready, and the alert stands (no resolve queued behind it).
        let e = sampler.publish_snapshot(snapshot(true));
        assert!(e.failing.is_some());
        assert_eq!(firing(&e), (Some(1), 1));
        // A good scan without the container: resolved (the resolve replaces the
        // waiting firing state).
        let mut gone = snapshot(false);
        gone.containers.clear();
        assert_eq!(firing(&sampler.publish_snapshot(gone)), (Some(0), 1));
    }

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

    /// Execs that arrive one every 2 ms for about half a second (250 of them, each of a
    /// container process in a host namespace, so each one changes what is published)
    /// make a few publishes, one per [`feed::COALESCE`] at most, not one per exec; and
    /// every one of them is counted. The processes are those of the fixture tree.
    #[test]
    fn a_burst_of_execs_makes_a_few_publishes_not_one_per_exec() {
        use crate::events::feed::Exec;
        use crate::scan::ExecReader;
        let (_dir, opts) = crate::scan::fixture_with_time_links();
        let mut reader = ExecReader::new(&opts).expect("open the fixture procfs");
        let shared = Shared::new(Duration::from_secs(3600));
        let inbox: Arc<Inbox<Fresh>> = Inbox::new();
        let sampler = Sampler::new(Scanner::new(opts));
        let runner = {
            let (shared, inbox) = (shared.clone(), inbox.clone());
            std::thread::spawn(move || run(sampler, shared, inbox))
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while shared.publishes() == 0 {
            assert!(Instant::now() < deadline, "no first scan within 30 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        let execs = |e: &Exposition| -> f64 {
            let text = String::from_utf8_lossy(&e.prometheus_text).into_owned();
            text.lines()
                .filter(|l| l.starts_with("nsexporter_container_host_namespace_execs_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        let counted_before = execs(&shared.current());
        let pid = (1..1000)
            .filter_map(|pid| reader.read(pid))
            .find(|f| {
                f.record()
                    .is_some_and(|r| r.container.is_some() && r.comm != "runc")
            })
            .map(|f| f.pid())
            .expect("a container process in the fixture tree");
        let before = shared.publishes();
        const N: u64 = 250;
        let started = Instant::now();
        for i in 0..N {
            let read = reader
                .read(pid)
                .unwrap_or_else(|| panic!("fixture process {pid} read"));
            inbox.update(|p| {
                p.execs.push(Exec {
                    pid,
                    kernel_ns: i,
                    received: Instant::now(),
                    read,
                })
            });
            std::thread::sleep(Duration::from_millis(2));
        }
        let took = started.elapsed();
        let deadline = Instant::now() + Duration::from_secs(30);
        let (published, counted) = loop {
            let counted = execs(&shared.current()) - counted_before;
            if counted >= N as f64 || Instant::now() > deadline {
                break (shared.publishes() - before, counted);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        inbox.stop();
        runner.join().expect("sampler thread");
        // Each exec counted once per host namespace type it shares: at least once each.
        assert!(counted >= N as f64, "{counted} of {N} execs counted");
        let bound = took.as_millis() as u64 / feed::COALESCE.as_millis() as u64 + 2;
        assert!(
            (1..=bound).contains(&published),
            "{published} publishes for {N} execs over {took:?} (at most {bound})"
        );
    }
}

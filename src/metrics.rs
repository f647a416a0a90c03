//! The metric contract: a `prometheus-client` collector that encodes one published
//! snapshot plus the sampler's cumulative counters. Encoding never touches /proc.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use std::collections::BTreeMap;

use crate::alerting::AlertingStats;
use crate::events::ledger::{ExecRecord, Retained};
use crate::model::{
    BlindReason, ContainerRef, HostSource, Names, NsType, Runtime, ScanErrors, Snapshot,
};
use crate::procfs::own::ProcessStats;

/// Counters that accumulate over the exporter's life, across scans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub scans: u64,
    /// Every scan's per-process errors, summed; with the limit files that could not be
    /// read counted as `io`.
    pub errors: ScanErrors,
    /// Whole scans that could not read the procfs at all.
    pub procfs: u64,
    /// Containers that started sharing the host namespace of each type after the
    /// first (baseline) scan.
    pub host_ns_starts: [u64; 8],
    /// Process events: whether they are on, exec events received, events lost.
    pub events_enabled: bool,
    pub exec_events: u64,
    pub events_lost: u64,
}

impl Counters {
    pub fn error_pairs(&self) -> [(&'static str, u64); 5] {
        let [vanished, permission, parse, io] = self.errors.pairs();
        [vanished, permission, parse, io, ("procfs", self.procfs)]
    }
}

/// What a scrape encodes: the latest completed snapshot (absent before the first) and
/// the counters as of the latest scan attempt.
#[derive(Debug, Clone)]
pub struct Published {
    pub snapshot: Option<Arc<Snapshot>>,
    pub counters: Counters,
    /// Containers with exec counts, present or within the retention after their last
    /// process.
    pub retained: Arc<BTreeMap<ContainerRef, Retained>>,
    /// The exec records this publish folded in (an exec event batch, or the processes
    /// a scan found first), for consumers that act on each.
    pub execs: Arc<[ExecRecord]>,
    /// The alerting sidecar's counts as of this publish; `None` when it is off.
    pub alerting: Option<AlertingStats>,
    /// Why the latest scan attempt could not see the whole node, if it could not.
    pub blind: Option<BlindReason>,
    /// The exporter's own process figures when this was published (absent when they
    /// could not be read).
    pub process: Option<ProcessStats>,
}

impl Default for Published {
    fn default() -> Self {
        Published {
            snapshot: None,
            counters: Counters::default(),
            retained: Arc::default(),
            execs: Arc::new([]),
            alerting: None,
            blind: None,
            process: None,
        }
    }
}

/// Every metric name and help text, in exposition order. The README's metric table is
/// tested against this list and against real output.
pub const METRICS: &[(&str, MetricType, &str)] = &[
    ("nsexporter_namespaces", MetricType::Gauge, "Distinct namespaces alive on the node, held by a process or pinned by a bind mount."),
    ("nsexporter_namespaces_pinned", MetricType::Gauge, "Namespaces alive on the node that no process is a member of (pinned by a bind mount)."),
    ("nsexporter_namespace_limit", MetricType::Gauge, "Limit on namespaces of this type, from /proc/sys/user/max_<type>_namespaces."),
    ("nsexporter_processes", MetricType::Gauge, "Processes scanned, without kernel threads."),
    ("nsexporter_host_namespace_processes", MetricType::Gauge, "Processes in the host namespace of this type."),
    ("nsexporter_containers", MetricType::Gauge, "Containers seen, by runtime."),
    ("nsexporter_host_namespace_containers", MetricType::Gauge, "Containers with a process in the host namespace of this type."),
    ("nsexporter_container_host_namespace", MetricType::Gauge, "Processes of this container in the host namespace of this type; only sharing pairs are emitted."),
    ("nsexporter_container_host_root_processes", MetricType::Gauge, "Processes of this container whose host-view effective UID is 0."),
    ("nsexporter_host_root_containers", MetricType::Gauge, "Containers with at least one process whose host-view effective UID is 0."),
    ("nsexporter_container_namespace_drift", MetricType::Gauge, "Processes of this container not in the namespace its runtime declared: in the host's though declared private, or elsewhere though declared host; only non-zero series."),
    ("nsexporter_container_info", MetricType::Gauge, "Always 1 for each container named by a per-container series; comm is that of its oldest process; namespace, pod and container come from the runtime's files, empty when unknown."),
    ("nsexporter_container_host_namespace_execs", MetricType::Counter, "Execs by this container's processes that were in the host namespace of this type: exec events (--scan.events), and once each process a scan found first. Kept for --scan.events-retention after the container's last process."),
    ("nsexporter_host_namespace_container_starts", MetricType::Counter, "Containers that started sharing the host namespace of this type after the exporter's first scan."),
    ("nsexporter_scans", MetricType::Counter, "Scans of the host procfs attempted."),
    ("nsexporter_scan_events_enabled", MetricType::Gauge, "1 when process events (--scan.events) are received, 0 when they are off or unavailable."),
    ("nsexporter_exec_events", MetricType::Counter, "Exec events received from the kernel's proc connector."),
    ("nsexporter_events_lost", MetricType::Counter, "Process events lost (receive buffer overruns, sequence gaps); each loss starts a full scan."),
    ("nsexporter_scan_errors", MetricType::Counter, "Errors met while scanning, by reason; none of them fails a scan except reason procfs."),
    ("nsexporter_runtime_read_errors", MetricType::Counter, "Container runtime files that could not be read or parsed, by runtime and kind; each container's files are read once, when it is first seen."),
    ("nsexporter_procfs_blind", MetricType::Gauge, "1 for the reason the latest scan could not see the whole node through the procfs, 0 for the others; /readyz fails while one is 1."),
    ("nsexporter_last_scan_duration_seconds", MetricType::Gauge, "Duration of the latest completed scan."),
    ("nsexporter_last_scan_timestamp_seconds", MetricType::Gauge, "Unix time at which the latest completed scan started."),
    ("nsexporter_host_reference_info", MetricType::Gauge, "Always 1; source tells where the host namespaces were read from: pid1, kthread or fixed."),
    ("nsexporter_alertmanager_notifications", MetricType::Counter, "Alerts the sidecar sent to this Alertmanager, by result: success, http_4xx, http_5xx or error (no answer)."),
    ("nsexporter_alertmanager_queue_length", MetricType::Gauge, "Alerts waiting to be sent to this Alertmanager, or in flight."),
    ("nsexporter_alertmanager_dropped", MetricType::Counter, "Alerts the sidecar dropped for this Alertmanager: queue_full, or rejected (a batch it refused as invalid)."),
    ("nsexporter_alerts", MetricType::Gauge, "Alerts of the sidecar's latest evaluation: firing (sent) or allowed (allow-listed, not sent)."),
    ("nsexporter_build_info", MetricType::Gauge, "Always 1; the version of nsexporter that is running."),
    // The exporter's own process, as the Prometheus client libraries name and explain it.
    ("process_cpu_seconds", MetricType::Counter, "Total user and system CPU time spent in seconds."),
    ("process_resident_memory_bytes", MetricType::Gauge, "Resident memory size in bytes."),
    ("process_virtual_memory_bytes", MetricType::Gauge, "Virtual memory size in bytes."),
    ("process_open_fds", MetricType::Gauge, "Number of open file descriptors."),
    ("process_max_fds", MetricType::Gauge, "Maximum number of open file descriptors."),
    ("process_start_time_seconds", MetricType::Gauge, "Start time of the process since unix epoch in seconds."),
];

/// The names as they appear in the exposition (counters with `_total`).
pub fn exposed_names() -> Vec<String> {
    METRICS
        .iter()
        .map(|(n, t, _)| match t {
            MetricType::Counter => format!("{n}_total"),
            _ => (*n).to_string(),
        })
        .collect()
}

/// The collector over one [`Published`] value.
#[derive(Debug)]
pub struct SnapshotCollector(pub Arc<Published>);

/// Build a registry that encodes `published`.
pub fn registry(published: Arc<Published>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(SnapshotCollector(published)));
    r
}

fn help(name: &str) -> &'static str {
    METRICS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, h)| *h)
        .unwrap_or("")
}

fn gauge<L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    series: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help(name), None, MetricType::Gauge)?;
    for (labels, v) in series {
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter<L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    series: impl IntoIterator<Item = (L, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help(name), None, MetricType::Counter)?;
    for (labels, v) in series {
        ConstCounter::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

type NoLabels = [(&'static str, &'static str); 0];

impl Collector for SnapshotCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let p = &self.0;
        if let Some(s) = &p.snapshot {
            encode_snapshot(&mut e, s, &p.counters, &p.retained)?;
        }
        counter(
            &mut e,
            "nsexporter_scans",
            [(NoLabels::default(), p.counters.scans)],
        )?;
        counter(
            &mut e,
            "nsexporter_scan_errors",
            p.counters.error_pairs().map(|(r, v)| ([("reason", r)], v)),
        )?;
        gauge(
            &mut e,
            "nsexporter_scan_events_enabled",
            [(
                NoLabels::default(),
                f64::from(u8::from(p.counters.events_enabled)),
            )],
        )?;
        counter(
            &mut e,
            "nsexporter_exec_events",
            [(NoLabels::default(), p.counters.exec_events)],
        )?;
        counter(
            &mut e,
            "nsexporter_events_lost",
            [(NoLabels::default(), p.counters.events_lost)],
        )?;
        counter(
            &mut e,
            "nsexporter_runtime_read_errors",
            p.snapshot
                .iter()
                .flat_map(|s| s.runtime_read_errors.iter())
                .map(|(r, kind, n)| ([("runtime", r.name()), ("kind", *kind)], *n)),
        )?;
        if p.counters.scans > 0 {
            gauge(
                &mut e,
                "nsexporter_procfs_blind",
                BlindReason::ALL.map(|r| {
                    (
                        [("reason", r.name())],
                        f64::from(u8::from(p.blind == Some(r))),
                    )
                }),
            )?;
        }
        if let Some(s) = &p.snapshot {
            gauge(
                &mut e,
                "nsexporter_last_scan_duration_seconds",
                [(NoLabels::default(), s.duration.as_secs_f64())],
            )?;
            let ts = s
                .taken_at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            gauge(
                &mut e,
                "nsexporter_last_scan_timestamp_seconds",
                [(NoLabels::default(), ts)],
            )?;
            gauge(
                &mut e,
                "nsexporter_host_reference_info",
                HostSource::ALL
                    .into_iter()
                    .filter(|src| *src == s.host.source)
                    .map(|src| ([("source", src.name())], 1.0)),
            )?;
        }
        if let Some(a) = &p.alerting {
            encode_alerting(&mut e, a)?;
        }
        gauge(
            &mut e,
            "nsexporter_build_info",
            [([("version", env!("CARGO_PKG_VERSION"))], 1.0)],
        )?;
        if let Some(ps) = &p.process {
            encode_process(&mut e, ps)?;
        }
        Ok(())
    }
}

/// The `process_*` series, as the client libraries' process collector writes them.
fn encode_process(e: &mut DescriptorEncoder, p: &ProcessStats) -> Result<(), std::fmt::Error> {
    let name = "process_cpu_seconds";
    let mut m = e.encode_descriptor(name, help(name), None, MetricType::Counter)?;
    ConstCounter::new(p.cpu_seconds).encode(m.encode_family(&NoLabels::default())?)?;
    let one = |v: f64| [(NoLabels::default(), v)];
    gauge(
        e,
        "process_resident_memory_bytes",
        one(p.resident_memory_bytes as f64),
    )?;
    gauge(
        e,
        "process_virtual_memory_bytes",
        one(p.virtual_memory_bytes as f64),
    )?;
    gauge(e, "process_open_fds", one(p.open_fds as f64))?;
    // Unlimited, as client_golang reports it: the largest value.
    let max = p.max_fds.map_or(u64::MAX as f64, |m| m as f64);
    gauge(e, "process_max_fds", one(max))?;
    gauge(e, "process_start_time_seconds", one(p.start_time_seconds))?;
    Ok(())
}

fn encode_snapshot(
    e: &mut DescriptorEncoder,
    s: &Snapshot,
    c: &Counters,
    retained: &BTreeMap<ContainerRef, Retained>,
) -> Result<(), std::fmt::Error> {
    let types = || s.supported.iter().copied();
    let by_type = |f: &dyn Fn(NsType) -> f64| -> Vec<([(&'static str, &'static str); 1], f64)> {
        types().map(|t| ([("type", t.name())], f(t))).collect()
    };
    gauge(
        e,
        "nsexporter_namespaces",
        by_type(&|t| s.counts[t.index()].total as f64),
    )?;
    gauge(
        e,
        "nsexporter_namespaces_pinned",
        by_type(&|t| s.counts[t.index()].pinned as f64),
    )?;
    gauge(
        e,
        "nsexporter_namespace_limit",
        types().filter_map(|t| s.limits[t.index()].map(|l| ([("type", t.name())], l as f64))),
    )?;
    gauge(
        e,
        "nsexporter_processes",
        [(NoLabels::default(), s.processes as f64)],
    )?;
    gauge(
        e,
        "nsexporter_host_namespace_processes",
        by_type(&|t| s.host_ns_processes[t.index()] as f64),
    )?;
    gauge(
        e,
        "nsexporter_containers",
        Runtime::ALL.map(|r| {
            let n = s.containers.keys().filter(|c| c.runtime == r).count();
            ([("runtime", r.name())], n as f64)
        }),
    )?;
    gauge(
        e,
        "nsexporter_host_namespace_containers",
        by_type(&|t| s.containers.values().filter(|c| c.shares(t)).count() as f64),
    )?;

    // Per-container series: only sharing pairs and host-root containers.
    let id_labels = |c: &crate::model::ContainerSummary| {
        [
            ("uid", c.container.pod_uid.clone()),
            ("container_id", c.container.container_id()),
            ("runtime", c.container.runtime.name().to_string()),
        ]
    };
    let mut sharing = Vec::new();
    for c in s.containers.values() {
        for t in types() {
            let n = c.host_ns_processes[t.index()];
            if n > 0 {
                let [u, id, rt] = id_labels(c);
                sharing.push(([("type", t.name().to_string()), u, id, rt], f64::from(n)));
            }
        }
    }
    gauge(e, "nsexporter_container_host_namespace", sharing)?;
    let root: Vec<_> = s
        .containers
        .values()
        .filter(|c| c.host_root_processes > 0)
        .map(|c| (id_labels(c), f64::from(c.host_root_processes)))
        .collect();
    let host_root_containers = root.len();
    gauge(e, "nsexporter_container_host_root_processes", root)?;
    gauge(
        e,
        "nsexporter_host_root_containers",
        [(NoLabels::default(), host_root_containers as f64)],
    )?;
    let mut drift = Vec::new();
    let mut drifting = std::collections::HashSet::new();
    for c in s.containers.values() {
        for d in c.drift(&s.host.ns) {
            drifting.insert(&c.container);
            let [u, id, rt] = id_labels(c);
            drift.push((
                [
                    ("type", d.ns_type.name().to_string()),
                    u,
                    id,
                    rt,
                    ("declared", d.declared.name().to_string()),
                ],
                f64::from(d.processes),
            ));
        }
    }
    gauge(e, "nsexporter_container_namespace_drift", drift)?;
    // Info for every container another per-container series names: those sharing, with
    // host root or drifting now, and those the exec counter keeps (present or not).
    let ref_labels = |c: &ContainerRef| {
        [
            ("uid", c.pod_uid.clone()),
            ("container_id", c.container_id()),
            ("runtime", c.runtime.name().to_string()),
        ]
    };
    let mut info: BTreeMap<&ContainerRef, (&str, &Names)> = retained
        .iter()
        .map(|(c, r)| (c, (r.comm.as_str(), &r.names)))
        .collect();
    for c in s.containers.values().filter(|c| {
        c.host_root_processes > 0 || types().any(|t| c.shares(t)) || drifting.contains(&c.container)
    }) {
        info.insert(&c.container, (&c.comm, &c.runtime_info.names));
    }
    gauge(
        e,
        "nsexporter_container_info",
        info.into_iter().map(|(c, (comm, n))| {
            let [u, id, rt] = ref_labels(c);
            (
                [
                    u,
                    id,
                    rt,
                    ("comm", comm.to_string()),
                    ("namespace", n.namespace.clone()),
                    ("pod", n.pod.clone()),
                    ("container", n.container.clone()),
                ],
                1.0,
            )
        }),
    )?;
    let mut execs = Vec::new();
    for (c, r) in retained {
        for t in types() {
            let n = r.execs[t.index()];
            if n > 0 {
                let [u, id, rt] = ref_labels(c);
                execs.push(([("type", t.name().to_string()), u, id, rt], n));
            }
        }
    }
    counter(e, "nsexporter_container_host_namespace_execs", execs)?;
    counter(
        e,
        "nsexporter_host_namespace_container_starts",
        types().map(|t| ([("type", t.name())], c.host_ns_starts[t.index()])),
    )?;
    Ok(())
}

/// The alerting sidecar's series: per Alertmanager URL, and per alert name.
fn encode_alerting(e: &mut DescriptorEncoder, a: &AlertingStats) -> Result<(), std::fmt::Error> {
    counter(
        e,
        "nsexporter_alertmanager_notifications",
        a.targets.iter().flat_map(|t| {
            t.notifications
                .iter()
                .map(|(result, n)| ([("url", t.url.as_str()), ("result", *result)], *n))
        }),
    )?;
    gauge(
        e,
        "nsexporter_alertmanager_queue_length",
        a.targets
            .iter()
            .map(|t| ([("url", t.url.as_str())], t.queue_length as f64)),
    )?;
    counter(
        e,
        "nsexporter_alertmanager_dropped",
        a.targets.iter().flat_map(|t| {
            [
                (
                    [("url", t.url.as_str()), ("reason", "queue_full")],
                    t.dropped_full,
                ),
                (
                    [("url", t.url.as_str()), ("reason", "rejected")],
                    t.dropped_rejected,
                ),
            ]
        }),
    )?;
    gauge(
        e,
        "nsexporter_alerts",
        a.alerts
            .iter()
            .map(|(name, state, n)| ([("alertname", *name), ("state", *state)], *n as f64)),
    )
}

/// The two text formats a scrape can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    PrometheusText,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::PrometheusText => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }

    /// Pick the format from an Accept header: OpenMetrics when the client lists it (with a
    /// non-zero q), Prometheus text otherwise, as Prometheus' own exporters do.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::PrometheusText;
        };
        for part in accept.split(',') {
            let mut params = part.split(';').map(str::trim);
            let media = params.next().unwrap_or("");
            if !media.eq_ignore_ascii_case("application/openmetrics-text") {
                continue;
            }
            let q_zero = params.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            if !q_zero {
                return Format::OpenMetrics;
            }
        }
        Format::PrometheusText
    }
}

/// Encode `published` in `format`.
pub fn encode(published: Arc<Published>, format: Format) -> Result<String, std::fmt::Error> {
    let registry = registry(published);
    let mut out = String::with_capacity(8 * 1024);
    match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry)?,
        Format::PrometheusText => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        let cases = [
            (None, Format::PrometheusText),
            (Some("*/*"), Format::PrometheusText),
            (Some("text/plain"), Format::PrometheusText),
            (
                Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
                Format::OpenMetrics,
            ),
            (Some("application/openmetrics-text; q=0"), Format::PrometheusText),
            (Some("text/plain;q=0.5, APPLICATION/OPENMETRICS-TEXT"), Format::OpenMetrics),
        ];
        for (h, want) in cases {
            assert_eq!(Format::negotiate(h), want, "{h:?}");
        }
    }

    #[test]
    fn alerting_series_only_with_the_sidecar() {
        use crate::alerting::TargetStats;
        let off = encode(Arc::new(Published::default()), Format::PrometheusText).unwrap();
        assert!(!off.contains("nsexporter_alert"), "{off}");
        let on = Published {
            alerting: Some(AlertingStats {
                targets: vec![TargetStats {
                    url: "http://am:9093".into(),
                    notifications: vec![("success", 3), ("http_5xx", 1)],
                    queue_length: 2,
                    dropped_full: 0,
                    dropped_rejected: 5,
                }],
                alerts: vec![("NsexporterHostNetworkContainer", "firing", 1)],
            }),
            ..Published::default()
        };
        let out = encode(Arc::new(on), Format::PrometheusText).unwrap();
        for line in [
            "nsexporter_alertmanager_notifications_total{url=\"http://am:9093\",result=\"success\"} 3",
            "nsexporter_alertmanager_notifications_total{url=\"http://am:9093\",result=\"http_5xx\"} 1",
            "nsexporter_alertmanager_queue_length{url=\"http://am:9093\"} 2",
            "nsexporter_alertmanager_dropped_total{url=\"http://am:9093\",reason=\"queue_full\"} 0",
            "nsexporter_alertmanager_dropped_total{url=\"http://am:9093\",reason=\"rejected\"} 5",
            "nsexporter_alerts{alertname=\"NsexporterHostNetworkContainer\",state=\"firing\"} 1",
        ] {
            assert!(out.contains(line), "{line} missing:\n{out}");
        }
    }

    #[test]
    fn before_first_scan_only_health_series() {
        let out = encode(Arc::new(Published::default()), Format::PrometheusText).unwrap();
        assert!(out.contains("nsexporter_scans_total 0\n"), "{out}");
        assert!(out.contains("nsexporter_build_info{version="), "{out}");
        assert!(!out.contains("nsexporter_namespaces"), "{out}");
        let om = encode(Arc::new(Published::default()), Format::OpenMetrics).unwrap();
        assert!(om.ends_with("# EOF\n"), "{om}");
    }

    #[test]
    fn process_series_as_the_client_libraries_write_them() {
        let p = Published {
            process: Some(ProcessStats {
                cpu_seconds: 1.25,
                resident_memory_bytes: 7 << 20,
                virtual_memory_bytes: 100 << 20,
                open_fds: 9,
                max_fds: Some(1024),
                start_time_seconds: 1.7e9 + 0.5,
            }),
            ..Published::default()
        };
        let out = encode(Arc::new(p), Format::PrometheusText).unwrap();
        for want in [
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 1.25\n",
            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 7340032.0\n",
            "process_virtual_memory_bytes 104857600.0\n",
            "process_open_fds 9.0\n",
            "process_max_fds 1024.0\n",
            "process_start_time_seconds 1700000000.5\n",
        ] {
            assert!(out.contains(want), "{want} not in\n{out}");
        }
        // Absent when they could not be read.
        let out = encode(Arc::new(Published::default()), Format::PrometheusText).unwrap();
        assert!(!out.contains("process_"), "{out}");
    }
}

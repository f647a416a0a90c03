//! The alerting sidecar: alerts evaluated in-process on every published snapshot and
//! pushed straight to Alertmanager, without waiting for a scrape and a rules pipeline.
//!
//! # Alertmanager's client contract (as Prometheus follows it)
//! - Alerts are POSTed as a JSON list to `<url>/api/v2/alerts` ([`client`]), in batches.
//! - Every Alertmanager of an HA set gets every alert: one [`client::Target`] per URL,
//!   each with its own bounded outbox ([`queue`]), retry with exponential backoff and
//!   its own failure counts.
//! - Active alerts are sent again every resend interval with `endsAt` four intervals
//!   ahead, so an Alertmanager that lost its state (restarted with its storage wiped)
//!   has every active alert back within one interval, and one that stops hearing from
//!   this node resolves them by itself after four.
//! - When a condition clears the alert is sent once more with `endsAt` = now: resolved.
//! - While an Alertmanager is down its outbox holds the newest state of each alert,
//!   bounded; beyond the capacity the oldest is dropped and counted.
//!
//! # Layout
//! - [`rules`]: which alerts hold in a snapshot.
//! - [`allow`]: the allow-list.
//! - [`queue`]: one Alertmanager's outbox, pure state.
//! - [`client`]: the HTTP client and the per-Alertmanager send loop.
//! - [`httpconfig`]: TLS and credentials from a Prometheus `http_config` file.
//! - [`settings`]: the flags and the config file's `alerts.allow`, checked.

pub mod allow;
pub mod client;
pub mod httpconfig;
pub mod queue;
pub mod rules;
pub mod settings;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::task::JoinHandle;

use crate::cgroup::Attribution;
use crate::model::{ContainerRef, NsType, Runtime, Snapshot};
use crate::procfs::paths::HostPaths;

use self::allow::AllowList;
use self::client::{AlertmanagerUrl, SendResult, Sender, Target};
use self::httpconfig::HttpConfig;
use self::queue::{Backoff, Outbox};
use self::rules::{Evaluation, Evaluator};

/// The label every sidecar alert carries, and its value: what tells them from the
/// Prometheus rules' alerts of the same name (see the README's `inhibit_rules`).
pub const SOURCE_LABEL: &str = "source";
pub const SOURCE_VALUE: &str = "nsexporter-sidecar";

/// A firing alert's `endsAt` is this many resend intervals past each send.
pub const VALID_FOR_INTERVALS: u32 = 4;

/// An alert's label set, shared between the outboxes of every Alertmanager.
pub type Labels = Arc<BTreeMap<String, String>>;

/// An alert that holds in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// One state of one alert, to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub labels: Labels,
    pub annotations: Arc<BTreeMap<String, String>>,
    pub starts_at: SystemTime,
    /// `None` while firing: `endsAt` is then set when sent, ahead of that moment (an
    /// outbox may hold a notice for long while its Alertmanager is down, and a stale
    /// `endsAt` would resolve a firing alert). `Some` when resolved.
    pub ends_at: Option<SystemTime>,
}

/// The JSON of Alertmanager's `postableAlert` (api/v2/openapi.yaml).
#[derive(Serialize)]
struct PostableAlert<'a> {
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt")]
    ends_at: String,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The request body for `batch`, sent at `now`.
pub fn encode_batch(batch: &[Notice], now: SystemTime, valid_for: Duration) -> Vec<u8> {
    let list: Vec<PostableAlert<'_>> = batch
        .iter()
        .map(|n| PostableAlert {
            labels: &n.labels,
            annotations: &n.annotations,
            starts_at: rfc3339(n.starts_at),
            // A resolve that raced ahead of the start (clock step) still validates.
            ends_at: rfc3339(n.ends_at.unwrap_or(now + valid_for).max(n.starts_at)),
        })
        .collect();
    // Serializing maps of strings cannot fail.
    serde_json::to_vec(&list).unwrap_or_default()
}

/// Checked sidecar settings.
#[derive(Debug, Clone)]
pub struct AlertingSettings {
    pub urls: Vec<AlertmanagerUrl>,
    pub http: Arc<HttpConfig>,
    pub resend_interval: Duration,
    pub queue_capacity: usize,
    pub batch_max: usize,
    pub timeout: Duration,
    /// The `node` label.
    pub node: String,
    pub allow: AllowList,
}

/// The `node` label: `NODE_NAME` (the chart sets it from the downward API), else the
/// host name (that of the exporter's own UTS namespace, whichever procfs is read: the
/// host's outside a pod).
pub fn node_name(paths: &HostPaths) -> String {
    node_name_from(
        std::env::var("NODE_NAME").ok().as_deref(),
        &paths.proc(Path::new("sys/kernel/hostname")),
    )
}

fn node_name_from(env: Option<&str>, hostname: &Path) -> String {
    if let Some(n) = env.map(str::trim).filter(|n| !n.is_empty()) {
        return n.to_string();
    }
    std::fs::read_to_string(hostname)
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The exporter's own container (and so its pod), from its own cgroup as the host's
/// procfs shows it (`<procfs>/self`). `None` outside a container or when unreadable.
pub fn own_container(paths: &HostPaths, default_runtime: Runtime) -> Option<ContainerRef> {
    let text = std::fs::read_to_string(paths.proc(Path::new("self/cgroup"))).ok()?;
    let lines = crate::procfs::parse::parse_cgroup(&text).ok()?;
    match crate::cgroup::attribute(&lines, default_runtime) {
        Attribution::Container(c) => Some(c),
        _ => None,
    }
}

/// The exporter's own IPC namespace (that of its pod), from `<procfs>/self/ns/ipc`; a
/// process may always read its own links. `None` when unreadable.
pub fn own_ipc(paths: &HostPaths) -> Option<u64> {
    let link = std::fs::read_link(paths.proc(Path::new("self/ns/ipc"))).ok()?;
    crate::procfs::parse::parse_ns_link(link.as_os_str().as_encoded_bytes(), NsType::Ipc).ok()
}

/// The alerts this sidecar knows to be active, and when each started.
#[derive(Debug, Default)]
struct Dispatcher {
    active: BTreeMap<Labels, (SystemTime, Arc<BTreeMap<String, String>>)>,
}

impl Dispatcher {
    /// Fold one evaluation: new alerts and changed annotations are returned to be sent
    /// at once; alerts that no longer hold are returned resolved.
    fn apply(&mut self, firing: Vec<Alert>, now: SystemTime) -> Vec<Notice> {
        let mut out = Vec::new();
        let mut next = BTreeMap::new();
        for a in firing {
            let labels: Labels = Arc::new(a.labels);
            let annotations = Arc::new(a.annotations);
            let (starts_at, changed) = match self.active.remove(&labels) {
                Some((s, old)) => (s, old != annotations),
                None => (now, true),
            };
            if changed {
                out.push(Notice {
                    labels: labels.clone(),
                    annotations: annotations.clone(),
                    starts_at,
                    ends_at: None,
                });
            }
            next.insert(labels, (starts_at, annotations));
        }
        for (labels, (starts_at, annotations)) in std::mem::take(&mut self.active) {
            out.push(Notice {
                labels,
                annotations,
                starts_at,
                ends_at: Some(now),
            });
        }
        self.active = next;
        out
    }

    /// Every active alert, to be sent again.
    fn resend(&self) -> Vec<Notice> {
        self.active
            .iter()
            .map(|(labels, (starts_at, annotations))| Notice {
                labels: labels.clone(),
                annotations: annotations.clone(),
                starts_at: *starts_at,
                ends_at: None,
            })
            .collect()
    }
}

/// What the sidecar exposes as metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertingStats {
    pub targets: Vec<TargetStats>,
    /// (alertname, state, count): state `firing` (sent) or `allowed` (allow-listed).
    pub alerts: Vec<(&'static str, &'static str, u64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetStats {
    pub url: String,
    /// (result, alerts) per `SendResult`.
    pub notifications: Vec<(&'static str, u64)>,
    pub queue_length: u64,
    /// Alerts dropped because the queue was full.
    pub dropped_full: u64,
    /// Alerts of batches the Alertmanager rejected as invalid.
    pub dropped_rejected: u64,
}

/// The sidecar as the sampler holds it: it evaluates each snapshot the sampler
/// publishes, on the sampler's thread, before the snapshot is encoded, so that
/// `nsexporter_alerts` in an exposition describes that exposition's snapshot. An
/// evaluation only queues what it finds; the sending is [`Tasks`]' on the async
/// runtime, so nothing an Alertmanager does can hold back a scan or a scrape.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sidecar {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    targets: Vec<Arc<Target>>,
    state: Mutex<State>,
}

/// What spans evaluations.
#[derive(Debug)]
struct State {
    evaluator: Evaluator,
    dispatcher: Dispatcher,
    /// Per (alertname, state), the latest evaluation's count.
    counts: BTreeMap<(&'static str, &'static str), u64>,
}

/// The sidecar's tasks on the async runtime: one sender per Alertmanager and the
/// resend timer. Dropping this stops them.
#[derive(Debug)]
pub struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl Sidecar {
    /// Start the senders and the resend timer on the current tokio runtime.
    pub fn start(settings: AlertingSettings) -> (Sidecar, Tasks) {
        let backoff = Backoff {
            initial: Duration::from_millis(500),
            max: settings
                .resend_interval
                .clamp(Duration::from_secs(1), Duration::from_secs(30)),
        };
        let sender = Arc::new(Sender::new(
            settings.http.clone(),
            settings.timeout,
            settings.resend_interval * VALID_FOR_INTERVALS,
        ));
        let targets: Vec<Arc<Target>> = settings
            .urls
            .iter()
            .map(|u| {
                Arc::new(Target::new(
                    u.clone(),
                    Outbox::new(settings.queue_capacity, settings.batch_max, backoff),
                ))
            })
            .collect();
        let mut tasks: Vec<JoinHandle<()>> = targets
            .iter()
            .map(|t| tokio::spawn(client::run(t.clone(), sender.clone())))
            .collect();
        let sidecar = Sidecar {
            inner: Arc::new(Inner {
                targets,
                state: Mutex::new(State {
                    evaluator: Evaluator::new(settings.node.clone(), settings.allow.clone()),
                    dispatcher: Dispatcher::default(),
                    counts: zero_counts(),
                }),
            }),
        };
        let resender = sidecar.inner.clone();
        let resend_interval = settings.resend_interval;
        tasks.push(tokio::spawn(async move {
            let mut resend = tokio::time::interval(resend_interval);
            resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            resend.tick().await; // the first tick is at once
            loop {
                resend.tick().await;
                let again = resender.state().dispatcher.resend();
                resender.send(again);
            }
        }));
        (sidecar, Tasks(tasks))
    }

    /// Evaluate `snap`: queue new alerts, changed ones and resolves for every
    /// Alertmanager, and return the counts as of this evaluation.
    pub fn observe(&self, snap: &Snapshot) -> AlertingStats {
        let notices = {
            let mut st = self.inner.state();
            let ev = st.evaluator.evaluate(snap);
            st.counts = counts(&ev);
            st.dispatcher.apply(ev.firing, SystemTime::now())
        };
        self.inner.send(notices);
        self.stats()
    }

    /// The counts now.
    pub fn stats(&self) -> AlertingStats {
        let targets = self
            .inner
            .targets
            .iter()
            .map(|t| {
                let (len, (dropped_full, dropped_rejected)) = t.queue();
                TargetStats {
                    url: t.url.display.clone(),
                    notifications: SendResult::ALL
                        .iter()
                        .zip(t.notifications())
                        .map(|(r, n)| (r.name(), n))
                        .collect(),
                    queue_length: len as u64,
                    dropped_full,
                    dropped_rejected,
                }
            })
            .collect();
        let alerts = self.inner.state().counts.clone();
        AlertingStats {
            targets,
            alerts: alerts.into_iter().map(|((a, s), n)| (a, s, n)).collect(),
        }
    }
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Queue `notices` for every Alertmanager.
    fn send(&self, notices: Vec<Notice>) {
        if notices.is_empty() {
            return;
        }
        for t in &self.targets {
            t.push(notices.iter().cloned());
        }
    }
}

/// Every alert name in both states, at 0.
fn zero_counts() -> BTreeMap<(&'static str, &'static str), u64> {
    let mut m = BTreeMap::new();
    for name in rules::alert_names() {
        m.insert((name, "firing"), 0);
        m.insert((name, "allowed"), 0);
    }
    m
}

/// One evaluation's counts, for `nsexporter_alerts{alertname,state}`: every alert
/// name always, at 0 when nothing holds.
fn counts(ev: &Evaluation) -> BTreeMap<(&'static str, &'static str), u64> {
    let mut m = zero_counts();
    for a in &ev.firing {
        if let Some(name) =
            rules::alert_names().find(|n| a.labels.get("alertname").is_some_and(|v| v == n))
        {
            *m.entry((name, "firing")).or_default() += 1;
        }
    }
    for (name, n) in &ev.allowed {
        *m.entry((*name, "allowed")).or_default() += n;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str, desc: &str) -> Alert {
        Alert {
            labels: [("alertname".to_string(), name.to_string())]
                .into_iter()
                .collect(),
            annotations: [("description".to_string(), desc.to_string())]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn dispatcher_sends_changes_resolves_and_resends() {
        let mut d = Dispatcher::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let t1 = t0 + Duration::from_secs(15);
        let t2 = t1 + Duration::from_secs(15);
        let out = d.apply(vec![alert("A", "x"), alert("B", "y")], t0);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|n| n.ends_at.is_none() && n.starts_at == t0));
        // Unchanged: nothing to send; a changed annotation is sent with the old start.
        let out = d.apply(vec![alert("A", "x"), alert("B", "z")], t1);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].labels["alertname"].as_str(), out[0].starts_at),
            ("B", t0)
        );
        // A clears: resolved at t2, with its start.
        let out = d.apply(vec![alert("B", "z")], t2);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].labels["alertname"], "A");
        assert_eq!((out[0].starts_at, out[0].ends_at), (t0, Some(t2)));
        // Resend: the active ones only.
        let again = d.resend();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].labels["alertname"], "B");
        assert!(again[0].ends_at.is_none());
    }

    #[test]
    fn node_label_from_node_name_else_the_host_name() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("hostname");
        std::fs::write(&host, "worker-3\n").unwrap();
        assert_eq!(node_name_from(Some(" node-a "), &host), "node-a");
        assert_eq!(node_name_from(Some(""), &host), "worker-3");
        assert_eq!(node_name_from(None, &host), "worker-3");
        assert_eq!(node_name_from(None, &dir.path().join("missing")), "unknown");
    }

    #[test]
    fn postable_alert_json() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let firing = Notice {
            labels: Arc::new(alert("A", "x").labels),
            annotations: Arc::new(alert("A", "x").annotations),
            starts_at: t0,
            ends_at: None,
        };
        let resolved = Notice {
            ends_at: Some(t0 + Duration::from_secs(30)),
            ..firing.clone()
        };
        let body = encode_batch(
            &[firing, resolved],
            t0 + Duration::from_secs(60),
            Duration::from_secs(240),
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"labels": {"alertname": "A"}, "annotations": {"description": "x"},
                 "startsAt": "2023-11-14T22:13:20.000Z", "endsAt": "2023-11-14T22:18:20.000Z"},
                {"labels": {"alertname": "A"}, "annotations": {"description": "x"},
                 "startsAt": "2023-11-14T22:13:20.000Z", "endsAt": "2023-11-14T22:13:50.000Z"}
            ])
        );
    }
}

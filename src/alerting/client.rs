//! The Alertmanager v2 client: one [`Target`] per `--alertmanager.url`, each with its
//! own [`Outbox`] and a task that POSTs its batches to `<url>/api/v2/alerts`, retrying
//! with exponential backoff. Every Alertmanager of an HA set gets every alert: a slow or
//! dead one never holds back the others.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use hyper::{Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Notify;

use super::httpconfig::HttpConfig;
use super::queue::Outbox;
use super::Notice;

/// How a send ended, as the `result` label of `nsexporter_alertmanager_notifications_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendResult {
    Success,
    /// The Alertmanager answered 4xx (bad request, authentication).
    Http4xx,
    /// It answered 5xx, or anything else that is not 2xx.
    Http5xx,
    /// No answer: connection, TLS, timeout.
    Error,
}

impl SendResult {
    pub const ALL: [SendResult; 4] = [
        SendResult::Success,
        SendResult::Http4xx,
        SendResult::Http5xx,
        SendResult::Error,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            SendResult::Success => "success",
            SendResult::Http4xx => "http_4xx",
            SendResult::Http5xx => "http_5xx",
            SendResult::Error => "error",
        }
    }
}

/// A checked `--alertmanager.url`: http or https, a host, an optional path prefix, no
/// credentials, query or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertmanagerUrl {
    /// As given, less a trailing `/`: the `url` label.
    pub display: String,
    /// `<url>/api/v2/alerts`.
    pub endpoint: Uri,
}

impl AlertmanagerUrl {
    pub fn parse(s: &str) -> Result<AlertmanagerUrl, String> {
        let s = s.trim();
        let uri: Uri = s.parse().map_err(|e| format!("{s:?} is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(format!("{s:?} must start with http:// or https://")),
        }
        let Some(authority) = uri.authority() else {
            return Err(format!("{s:?} has no host"));
        };
        if authority.as_str().contains('@') {
            return Err(format!(
                "{:?} carries credentials; put them in --alertmanager.http-config-file \
                 (basic_auth or authorization), where they are not logged",
                uri.host().unwrap_or("")
            ));
        }
        if authority.host().is_empty() {
            return Err(format!("{s:?} has no host"));
        }
        if uri.query().is_some() || s.contains('#') {
            return Err(format!("{s:?} must not have a query or fragment"));
        }
        let prefix = uri.path().trim_end_matches('/');
        let endpoint = format!(
            "{}://{}{prefix}/api/v2/alerts",
            uri.scheme_str().unwrap_or("http"),
            authority
        )
        .parse()
        .map_err(|e| format!("{s:?}: {e}"))?;
        Ok(AlertmanagerUrl {
            display: s.trim_end_matches('/').to_string(),
            endpoint,
        })
    }
}

/// Why a send failed, for the log and the outbox.
struct Failure {
    kind: SendResult,
    /// The Alertmanager refused the alerts themselves (400, 422): sending them again
    /// cannot help, so the batch is dropped (see [`super::queue`]).
    rejected: bool,
    message: String,
}

impl Failure {
    fn error(message: String) -> Failure {
        Failure {
            kind: SendResult::Error,
            rejected: false,
            message,
        }
    }
}

/// Whether an answer refuses the alerts themselves. 400 is Alertmanager's answer to
/// alerts that fail validation; 422 that of proxies that check bodies. Other 4xx (401
/// and 403 while credentials rotate, 404 from a proxy not yet routed, 408, 429) say
/// nothing against the alerts and are retried.
fn rejects_alerts(status: hyper::StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 422)
}

/// One Alertmanager: its outbox and what happened to its sends.
#[derive(Debug)]
pub struct Target {
    pub url: AlertmanagerUrl,
    outbox: Mutex<Outbox>,
    wake: Notify,
    /// Alerts sent, per [`SendResult`] (indexed as `SendResult::ALL`).
    notifications: [AtomicU64; 4],
}

impl Target {
    pub fn new(url: AlertmanagerUrl, outbox: Outbox) -> Target {
        Target {
            url,
            outbox: Mutex::new(outbox),
            wake: Notify::new(),
            notifications: Default::default(),
        }
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        match self.outbox.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Queue notices for this Alertmanager and wake its sender.
    pub fn push(&self, notices: impl IntoIterator<Item = Notice>) {
        {
            let mut q = self.outbox();
            for n in notices {
                q.push(n);
            }
        }
        self.wake.notify_one();
    }

    /// (queue length, (dropped because full, dropped because rejected)).
    pub fn queue(&self) -> (usize, (u64, u64)) {
        let q = self.outbox();
        (q.len(), q.dropped())
    }

    /// Alerts per [`SendResult`], in `SendResult::ALL` order.
    pub fn notifications(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.notifications[i].load(Ordering::Relaxed))
    }

    fn count(&self, r: SendResult, alerts: usize) {
        let i = SendResult::ALL.iter().position(|x| *x == r).unwrap_or(0);
        self.notifications[i].fetch_add(alerts as u64, Ordering::Relaxed);
    }
}

/// What every sender shares.
pub struct Sender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    http: Arc<HttpConfig>,
    timeout: Duration,
    /// A firing alert's `endsAt` is this far past the send.
    valid_for: Duration,
    user_agent: HeaderValue,
}

impl Sender {
    pub fn new(http: Arc<HttpConfig>, timeout: Duration, valid_for: Duration) -> Sender {
        let mut conn = HttpConnector::new();
        conn.enforce_http(false);
        conn.set_connect_timeout(Some(timeout));
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*http.tls()).clone())
            .https_or_http();
        let builder = match http.server_name() {
            Some(name) => builder.with_server_name_resolver(
                hyper_rustls::FixedServerNameResolver::new(name.clone()),
            ),
            None => builder,
        };
        let https = builder.enable_http1().wrap_connector(conn);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(2)
            .build(https);
        Sender {
            client,
            http,
            timeout,
            valid_for,
            user_agent: HeaderValue::from_static(concat!("nsexporter/", env!("CARGO_PKG_VERSION"))),
        }
    }

    /// POST one batch.
    async fn post(&self, url: &AlertmanagerUrl, batch: &[Notice]) -> Result<(), Failure> {
        let body = super::encode_batch(batch, SystemTime::now(), self.valid_for);
        let mut req = Request::post(url.endpoint.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, self.user_agent.clone());
        match self.http.authorization() {
            Ok(Some(v)) => req = req.header(AUTHORIZATION, v),
            Ok(None) => {}
            Err(e) => return Err(Failure::error(format!("credentials: {e}"))),
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Failure::error(e.to_string()))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| Failure::error(error_chain(&e)))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            // The first KiB of the answer says why; never more.
            let text = match Limited::new(resp.into_body(), 1024).collect().await {
                Ok(b) => String::from_utf8_lossy(&b.to_bytes()).trim().to_string(),
                Err(_) => String::new(),
            };
            let kind = if status.is_client_error() {
                SendResult::Http4xx
            } else {
                SendResult::Http5xx
            };
            Err(Failure {
                kind,
                rejected: rejects_alerts(status),
                message: format!("HTTP {status}: {text}"),
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(Failure::error(format!(
                "no answer within {:?}",
                self.timeout
            ))),
        }
    }
}

/// The error and its sources, one line ("connection refused" sits at the bottom).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A factor in 0.8..1.2 from the system's random source, so that the nodes of a fleet
/// do not retry a recovering Alertmanager in step.
fn jitter() -> f64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 2];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        return 1.0;
    }
    0.8 + 0.4 * f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX)
}

/// How often a failure that persists is logged again.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Send `target`'s batches until the task is aborted.
pub async fn run(target: Arc<Target>, sender: Arc<Sender>) {
    let mut last_log: Option<Instant> = None;
    loop {
        let (batch, ready_at) = {
            let mut q = target.outbox();
            match q.take_batch(Instant::now()) {
                Some(b) => (Some(b), None),
                None => (None, q.ready_at()),
            }
        };
        let Some(batch) = batch else {
            match ready_at {
                Some(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t.into()) => {}
                        _ = target.wake.notified() => {}
                    }
                }
                None => target.wake.notified().await,
            }
            continue;
        };
        let result = sender.post(&target.url, &batch).await;
        let mut q = target.outbox();
        match result {
            Ok(()) => {
                let failures = q.failures_in_row();
                q.sent();
                drop(q);
                target.count(SendResult::Success, batch.len());
                if failures > 0 {
                    tracing::info!(url = %target.url.display, failed_in_row = failures,
                        "Alertmanager accepts alerts again");
                    last_log = None;
                }
            }
            Err(f) if f.rejected => {
                let dropped = q.rejected();
                drop(q);
                target.count(f.kind, batch.len());
                if last_log.is_none_or(|t| t.elapsed() >= FAILURE_LOG_EVERY) {
                    tracing::warn!(url = %target.url.display, error = %f.message, dropped,
                        "Alertmanager refused a batch of alerts as invalid; it is dropped, \
                         not retried (counted in nsexporter_alertmanager_dropped_total\
                         {{reason=\"rejected\"}}); active alerts go again at the next resend");
                    last_log = Some(Instant::now());
                }
            }
            Err(f) => {
                let wait = q.failed(Instant::now(), jitter());
                let (failures, queued) = (q.failures_in_row(), q.len());
                drop(q);
                target.count(f.kind, batch.len());
                if last_log.is_none_or(|t| t.elapsed() >= FAILURE_LOG_EVERY) {
                    tracing::warn!(url = %target.url.display, error = %f.message,
                        failed_in_row = failures, queued, retry_in = ?wait,
                        "sending alerts to Alertmanager failed; retrying with backoff \
                         (counted in nsexporter_alertmanager_notifications_total)");
                    last_log = Some(Instant::now());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = AlertmanagerUrl::parse("http://am:9093").unwrap();
        assert_eq!(u.endpoint, "http://am:9093/api/v2/alerts");
        assert_eq!(u.display, "http://am:9093");
        let u = AlertmanagerUrl::parse("https://am.example/prefix/").unwrap();
        assert_eq!(u.endpoint, "https://am.example/prefix/api/v2/alerts");
        assert_eq!(u.display, "https://am.example/prefix");
        for (bad, why) in [
            ("am:9093", "http:// or https://"),
            ("ftp://am", "http:// or https://"),
            ("", "not a URL"),
            ("http://user:pw@am:9093", "carries credentials"),
            ("http://am:9093/?x=1", "query"),
            ("http://am:9093/#x", "fragment"),
            ("http:///x", "not a URL"),
        ] {
            let e = AlertmanagerUrl::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("pw"), "{e}");
        }
    }

    #[test]
    fn only_answers_that_refuse_the_alerts_drop_them() {
        let rejects = |c: u16| rejects_alerts(hyper::StatusCode::from_u16(c).unwrap());
        assert!(rejects(400) && rejects(422));
        for retried in [401, 403, 404, 408, 429, 500, 502, 503] {
            assert!(!rejects(retried), "{retried}");
        }
    }

    #[test]
    fn jitter_is_in_range() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.8..=1.2).contains(&j), "{j}");
        }
    }
}

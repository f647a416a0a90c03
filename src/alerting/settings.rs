//! The sidecar's settings, checked once at startup: the `alertmanager.*` flags and the
//! config file's `alerts.allow`. Every problem names its setting.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::allow::{AllowConfig, AllowList};
use super::client::AlertmanagerUrl;
use super::httpconfig::HttpConfig;
use super::AlertingSettings;
use crate::model::ContainerRef;

/// `alertmanager.*` as strings, as flags, variables and the file give them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlertmanager {
    #[serde(default, deserialize_with = "one_or_many")]
    pub url: Vec<String>,
    #[serde(rename = "http-config-file", default)]
    pub http_config_file: String,
    #[serde(rename = "resend-interval")]
    pub resend_interval: String,
    #[serde(rename = "queue-capacity")]
    pub queue_capacity: String,
    pub timeout: String,
}

/// The config file's `alerts:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    #[serde(default)]
    pub allow: AllowConfig,
}

/// A config file may give `url` as one string or a list.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Most alerts in one POST (as Prometheus' notifier).
pub const BATCH_MAX: usize = 256;

fn duration(
    key: &'static str,
    v: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, (&'static str, String)> {
    let d = humantime::parse_duration(v.trim()).map_err(|e| (key, format!("{v:?}: {e}")))?;
    if d < min || d > max {
        return Err((
            key,
            format!(
                "{v:?} must be between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(d)
}

/// Check the settings. `None` when no URL is given (the sidecar is off; its other
/// settings are still checked, so a typo does not wait for the day it is turned on).
/// `own` is the exporter's own container and `own_ipc` its IPC namespace, by which its
/// pod is always allowed; `node` the `node` label.
pub fn build(
    raw: &RawAlertmanager,
    alerts: &RawAlerts,
    own: Option<ContainerRef>,
    own_ipc: Option<u64>,
    node: String,
) -> Result<Option<AlertingSettings>, (&'static str, String)> {
    let mut urls = Vec::new();
    for u in raw.url.iter().flat_map(|u| u.split(',')) {
        if u.trim().is_empty() {
            continue;
        }
        let parsed = AlertmanagerUrl::parse(u).map_err(|m| ("alertmanager.url", m))?;
        if urls
            .iter()
            .any(|x: &AlertmanagerUrl| x.endpoint == parsed.endpoint)
        {
            return Err(("alertmanager.url", format!("{u:?} is given twice")));
        }
        urls.push(parsed);
    }
    let http = match raw.http_config_file.trim() {
        "" => HttpConfig::none(),
        f => HttpConfig::load(Path::new(f)),
    }
    .map_err(|e| ("alertmanager.http-config-file", e.to_string()))?;
    let resend_interval = duration(
        "alertmanager.resend-interval",
        &raw.resend_interval,
        Duration::from_secs(1),
        Duration::from_secs(3600),
    )?;
    let timeout = duration(
        "alertmanager.timeout",
        &raw.timeout,
        Duration::from_millis(100),
        Duration::from_secs(300),
    )?;
    let queue_capacity: usize = raw
        .queue_capacity
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=1_000_000).contains(n))
        .ok_or((
            "alertmanager.queue-capacity",
            format!(
                "{:?} must be a whole number from 1 to 1000000",
                raw.queue_capacity
            ),
        ))?;
    let allow = AllowList::new(&alerts.allow, own)
        .map_err(|m| ("alerts.allow", m))?
        .with_own_ipc(own_ipc);
    if urls.is_empty() {
        return Ok(None);
    }
    Ok(Some(AlertingSettings {
        urls,
        http: Arc::new(http),
        resend_interval,
        queue_capacity,
        batch_max: BATCH_MAX,
        timeout,
        node,
        allow,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(urls: &[&str]) -> RawAlertmanager {
        RawAlertmanager {
            url: urls.iter().map(|s| s.to_string()).collect(),
            http_config_file: String::new(),
            resend_interval: "1m".into(),
            queue_capacity: "10000".into(),
            timeout: "10s".into(),
        }
    }

    #[test]
    fn off_without_urls_but_still_checked() {
        let a = RawAlerts::default();
        assert!(build(&raw(&[]), &a, None, None, "n".into())
            .unwrap()
            .is_none());
        let mut r = raw(&[]);
        r.resend_interval = "soon".into();
        assert_eq!(
            build(&r, &a, None, None, "n".into()).unwrap_err().0,
            "alertmanager.resend-interval"
        );
    }

    #[test]
    fn urls_repeat_or_comma_separated() {
        let a = RawAlerts::default();
        let s = build(
            &raw(&["http://a:9093", "http://b:9093,http://c:9093"]),
            &a,
            None,
            None,
            "n".into(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.urls.len(), 3);
        assert_eq!(
            (s.resend_interval, s.queue_capacity),
            (Duration::from_secs(60), 10000)
        );
        let e = build(
            &raw(&["http://a:9093", "http://a:9093/"]),
            &a,
            None,
            None,
            "n".into(),
        )
        .unwrap_err();
        assert!(e.1.contains("twice"), "{e:?}");
        let e = build(&raw(&["a:9093"]), &a, None, None, "n".into()).unwrap_err();
        assert_eq!(e.0, "alertmanager.url");
    }

    #[test]
    fn bad_values_name_their_setting() {
        let a = RawAlerts::default();
        type Edit = fn(&mut RawAlertmanager);
        let cases: [(&str, Edit); 4] = [
            ("alertmanager.queue-capacity", |r| {
                r.queue_capacity = "0".into()
            }),
            ("alertmanager.timeout", |r| r.timeout = "1h".into()),
            ("alertmanager.resend-interval", |r| {
                r.resend_interval = "100ms".into()
            }),
            ("alertmanager.http-config-file", |r| {
                r.http_config_file = "/nonexistent/http.yml".into()
            }),
        ];
        for (key, f) in cases {
            let mut r = raw(&["http://a:9093"]);
            f(&mut r);
            assert_eq!(build(&r, &a, None, None, "n".into()).unwrap_err().0, key);
        }
        let bad = RawAlerts {
            allow: AllowConfig {
                comms: vec!["(".into()],
                ..AllowConfig::default()
            },
        };
        let e = build(&raw(&["http://a:9093"]), &bad, None, None, "n".into()).unwrap_err();
        assert_eq!(e.0, "alerts.allow");
        assert!(e.1.contains("comms"), "{e:?}");
    }
}

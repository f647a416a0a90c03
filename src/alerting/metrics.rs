//! The sidecar's own series, encoded from an [`AlertingStats`] taken when a state is
//! published. Names and help texts are listed here and in `crate::metrics::METRICS`.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::AlertingStats;

/// (name, type, help) of the sidecar's series, in exposition order.
pub const METRICS: [(&str, MetricType, &str); 4] = [
    ("nsexporter_alertmanager_notifications", MetricType::Counter, "Alerts sent to this Alertmanager, by result: success, http_4xx, http_5xx or error (no answer)."),
    ("nsexporter_alertmanager_queue_length", MetricType::Gauge, "Alerts waiting to be sent to this Alertmanager, or in flight."),
    ("nsexporter_alertmanager_dropped", MetricType::Counter, "Alerts dropped because this Alertmanager's queue was full."),
    ("nsexporter_alerts", MetricType::Gauge, "Alerts of the sidecar's latest evaluation: firing (sent) or allowed (allow-listed, not sent)."),
];

fn help(name: &str) -> &'static str {
    METRICS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, h)| *h)
        .unwrap_or("")
}

/// Encode `s` into `e`.
pub fn encode(e: &mut DescriptorEncoder, s: &AlertingStats) -> Result<(), std::fmt::Error> {
    let name = "nsexporter_alertmanager_notifications";
    let mut m = e.encode_descriptor(name, help(name), None, MetricType::Counter)?;
    for t in &s.targets {
        for (result, n) in &t.notifications {
            let labels = [("url", t.url.as_str()), ("result", result)];
            ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
        }
    }
    let name = "nsexporter_alertmanager_queue_length";
    let mut m = e.encode_descriptor(name, help(name), None, MetricType::Gauge)?;
    for t in &s.targets {
        ConstGauge::new(t.queue_length as i64)
            .encode(m.encode_family(&[("url", t.url.as_str())])?)?;
    }
    let name = "nsexporter_alertmanager_dropped";
    let mut m = e.encode_descriptor(name, help(name), None, MetricType::Counter)?;
    for t in &s.targets {
        ConstCounter::new(t.dropped).encode(m.encode_family(&[("url", t.url.as_str())])?)?;
    }
    let name = "nsexporter_alerts";
    let mut m = e.encode_descriptor(name, help(name), None, MetricType::Gauge)?;
    for (alertname, state, n) in &s.alerts {
        let labels = [("alertname", *alertname), ("state", *state)];
        ConstGauge::new(*n as i64).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::TargetStats;
    use prometheus_client::collector::Collector;
    use prometheus_client::registry::Registry;

    #[derive(Debug)]
    struct C(AlertingStats);

    impl Collector for C {
        fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            encode(&mut e, &self.0)
        }
    }

    #[test]
    fn exposition() {
        let stats = AlertingStats {
            targets: vec![TargetStats {
                url: "http://am:9093".into(),
                notifications: vec![("success", 3), ("http_5xx", 1)],
                queue_length: 2,
                dropped: 0,
            }],
            alerts: vec![("NsexporterHostNetworkContainer", "firing", 1)],
        };
        let mut r = Registry::default();
        r.register_collector(Box::new(C(stats)));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        for line in [
            "nsexporter_alertmanager_notifications_total{url=\"http://am:9093\",result=\"success\"} 3",
            "nsexporter_alertmanager_notifications_total{url=\"http://am:9093\",result=\"http_5xx\"} 1",
            "nsexporter_alertmanager_queue_length{url=\"http://am:9093\"} 2",
            "nsexporter_alertmanager_dropped_total{url=\"http://am:9093\"} 0",
            "nsexporter_alerts{alertname=\"NsexporterHostNetworkContainer\",state=\"firing\"} 1",
        ] {
            assert!(out.contains(line), "{line} missing:\n{out}");
        }
    }
}

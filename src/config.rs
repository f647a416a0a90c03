//! Settings: command-line flags, `NSEXPORTER_*` environment variables and an optional
//! YAML `--config.file`, in that order of precedence, layered with the `config` crate
//! and checked once at startup. A bad value is named as it was given: the flag, the
//! environment variable, or the key and the file.
//!
//! The flags are declared in [`crate::cli`]; `SETTINGS` names each setting's flag by
//! its id there.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, ValueEnum};
use serde::Deserialize;

use crate::alerting::settings::{RawAlertmanager, RawAlerts};
use crate::alerting::AlertingSettings;
use crate::cli::Flags;
use crate::http::webconfig::WebConfigSource;
use crate::model::Runtime;
use crate::procfs::paths::HostPaths;
use crate::telemetry::LogFormat;

/// Checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen_address: SocketAddr,
    pub telemetry_path: String,
    /// The checked `--web.config.file`, re-read by the server; None: plain HTTP, no auth.
    pub web_config: Option<Arc<WebConfigSource>>,
    /// `--web.max-requests`; 0 means no limit.
    pub max_requests: usize,
    /// `--web.max-connections`; None: `auto`, from the open-file limit.
    pub max_connections: Option<usize>,
    pub paths: HostPaths,
    pub scan_interval: Duration,
    /// `--scan.events`: receive process events between scans.
    pub scan_events: bool,
    /// `--scan.events-retention`.
    pub events_retention: Duration,
    pub scan_threads: usize,
    pub default_runtime: Runtime,
    /// Where each container runtime keeps its state, under `paths.rootfs`.
    pub runtime_dirs: crate::runtime::Locations,
    pub log_level: tracing::level_filters::LevelFilter,
    pub log_format: LogFormat,
    /// The alerting sidecar; `None` without `--alertmanager.url`.
    pub alerting: Option<AlertingSettings>,
}

/// A setting that cannot be used, named as the user wrote it: the flag
/// (`--scan.interval`), the environment variable (`NSEXPORTER_SCAN_INTERVAL`), or the
/// key and the file (`scan.interval in /etc/nsexporter.yml`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid {origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("cannot load settings: {0}")]
    Load(String),
}

/// Where each setting's value came from, to name it in an error.
struct Origins {
    /// (setting key, how to name it).
    names: Vec<(&'static str, String)>,
}

impl Origins {
    fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let origin = self
            .names
            .iter()
            .find(|(k, _)| *k == key)
            .map_or_else(|| key.to_owned(), |(_, name)| name.clone());
        ConfigError::Invalid {
            origin,
            message: message.into(),
        }
    }
}

/// How to name the value of flag `id`, given where clap found it.
fn flag_origin(id: &str, source: ValueSource) -> String {
    let cmd = Flags::command();
    let arg = cmd.get_arguments().find(|a| a.get_id() == id);
    let env = arg
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned());
    let long = arg.and_then(|a| a.get_long()).map(|l| format!("--{l}"));
    match source {
        ValueSource::EnvVariable => env.or(long),
        _ => long,
    }
    .unwrap_or_else(|| id.to_owned())
}

/// A `config` crate error about the settings file, in our words: no file name of its
/// own (ours comes first), the key it is about when it knows it.
fn file_error(file: &std::path::Path, e: &config::ConfigError) -> ConfigError {
    use config::ConfigError as E;
    fn describe(e: &E) -> String {
        match e {
            E::FileParse { cause, .. } => format!("not valid YAML: {cause}"),
            E::Type {
                unexpected,
                expected,
                ..
            } => format!("expected {expected}, found {unexpected}"),
            E::At { error, key, .. } => match key {
                Some(k) => format!("{k}: {}", describe(error)),
                None => describe(error),
            },
            E::NotFound(k) => format!("{k} not found"),
            E::Message(m) => m.clone(),
            other => other.to_string(),
        }
    }
    let (origin, message) = match e {
        E::Type { key: Some(k), .. } => (format!("{k} in {}", file.display()), describe(e)),
        _ => (format!("settings file {}", file.display()), describe(e)),
    };
    ConfigError::Invalid { origin, message }
}

/// A duration such as `15s`, `1m` or `500ms`, with an error in our words (humantime's
/// lists its units with "(and few variations)").
fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        let why = match e {
            humantime::DurationError::UnknownUnit { unit, .. } => {
                format!("unknown unit {unit:?}")
            }
            humantime::DurationError::NumberOverflow => "too large".to_owned(),
            humantime::DurationError::Empty => "empty".to_owned(),
            _ => "not a number followed by a unit".to_owned(),
        };
        format!(
            "{s:?} is not a duration ({why}); write a number and a unit: ms, s, m or h, \
             e.g. 15s, 1m, 500ms"
        )
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    web: RawWeb,
    path: RawPath,
    scan: RawScan,
    container: RawContainer,
    runtime: RawRuntime,
    log: RawLog,
    alertmanager: RawAlertmanager,
    /// Only in the file: `alerts.allow`.
    #[serde(default)]
    alerts: RawAlerts,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    #[serde(rename = "listen-address")]
    listen_address: String,
    #[serde(rename = "telemetry-path")]
    telemetry_path: String,
    #[serde(rename = "config-file")]
    config_file: String,
    #[serde(rename = "max-requests")]
    max_requests: String,
    #[serde(rename = "max-connections")]
    max_connections: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPath {
    procfs: String,
    sysfs: String,
    rootfs: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntime {
    #[serde(rename = "containerd-dir")]
    containerd_dir: String,
    #[serde(rename = "crio-dir")]
    crio_dir: String,
    #[serde(rename = "docker-dir")]
    docker_dir: String,
    #[serde(rename = "podman-dir")]
    podman_dir: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScan {
    interval: String,
    threads: String,
    events: String,
    #[serde(rename = "events-retention")]
    events_retention: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContainer {
    #[serde(rename = "default-runtime")]
    default_runtime: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: String,
    format: String,
}

/// (setting key, default, flag id) for every setting.
const SETTINGS: &[(&str, &str, &str)] = &[
    ("web.listen-address", ":9816", "listen_address"),
    ("web.telemetry-path", "/metrics", "telemetry_path"),
    ("web.config-file", "", "web_config_file"),
    ("web.max-requests", "40", "max_requests"),
    ("web.max-connections", "auto", "max_connections"),
    ("path.procfs", "/proc", "procfs"),
    ("path.sysfs", "/sys", "sysfs"),
    ("path.rootfs", "/", "rootfs"),
    (
        "runtime.containerd-dir",
        "/run/containerd/io.containerd.runtime.v2.task",
        "runtime_containerd_dir",
    ),
    (
        "runtime.crio-dir",
        "/run/containers/storage",
        "runtime_crio_dir",
    ),
    (
        "runtime.docker-dir",
        "/var/lib/docker",
        "runtime_docker_dir",
    ),
    (
        "runtime.podman-dir",
        "/var/lib/containers/storage",
        "runtime_podman_dir",
    ),
    ("scan.interval", "15s", "scan_interval"),
    ("scan.threads", "1", "scan_threads"),
    ("scan.events", "false", "scan_events"),
    ("scan.events-retention", "10m", "scan_events_retention"),
    ("container.default-runtime", "containerd", "default_runtime"),
    ("log.level", "info", "log_level"),
    ("log.format", "logfmt", "log_format"),
    (
        "alertmanager.http-config-file",
        "",
        "alertmanager_http_config_file",
    ),
    (
        "alertmanager.resend-interval",
        "1m",
        "alertmanager_resend_interval",
    ),
    (
        "alertmanager.queue-capacity",
        "10000",
        "alertmanager_queue_capacity",
    ),
    ("alertmanager.timeout", "10s", "alertmanager_timeout"),
];

/// The one setting given as a list: (key, flag id). Flags and the environment
/// replace the file's list; they do not add to it.
const URLS: (&str, &str) = ("alertmanager.url", "alertmanager_url");

/// Where each setting's value came from: flags and environment variables (both via clap)
/// override the file, which overrides the defaults.
pub fn load(matches: &ArgMatches) -> Result<Settings, ConfigError> {
    let sub = matches.subcommand().map(|(_, m)| m);
    let value = |id: &str| -> Option<(String, ValueSource)> {
        // Global flags given after a subcommand land in the subcommand's matches.
        for m in [Some(matches), sub].into_iter().flatten() {
            let given = matches!(
                m.try_get_raw(id)
                    .ok()
                    .flatten()
                    .and_then(|_| m.value_source(id)),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            );
            if given {
                if let (Ok(Some(v)), Some(source)) =
                    (m.try_get_one::<String>(id), m.value_source(id))
                {
                    return Some((v.clone(), source));
                }
            }
        }
        None
    };
    let urls: Option<(Vec<String>, ValueSource)> =
        [Some(matches), sub].into_iter().flatten().find_map(|m| {
            let source = m
                .try_get_raw(URLS.1)
                .ok()
                .flatten()
                .and_then(|_| m.value_source(URLS.1))
                .filter(|s| matches!(s, ValueSource::CommandLine | ValueSource::EnvVariable))?;
            let v = m.try_get_many::<String>(URLS.1).ok().flatten()?;
            Some((v.cloned().collect(), source))
        });
    let config_file = [Some(matches), sub].into_iter().flatten().find_map(|m| {
        m.try_get_one::<PathBuf>("config_file")
            .ok()
            .flatten()
            .cloned()
    });

    let mut b = config::Config::builder()
        .set_default(URLS.0, Vec::<String>::new())
        .map_err(|e| ConfigError::Load(e.to_string()))?;
    for (key, default, _) in SETTINGS {
        b = b
            .set_default(*key, *default)
            .map_err(|e| ConfigError::Load(e.to_string()))?;
    }
    // What the file itself sets, to name a bad value from it by its key and file.
    let mut from_file = None;
    if let Some(f) = &config_file {
        if !f.is_file() {
            let source = [Some(matches), sub]
                .into_iter()
                .flatten()
                .find_map(|m| m.value_source("config_file"))
                .unwrap_or(ValueSource::CommandLine);
            return Err(ConfigError::Invalid {
                origin: flag_origin("config_file", source),
                message: format!("{} does not exist or is not a file", f.display()),
            });
        }
        let file = config::File::from(f.as_path()).format(config::FileFormat::Yaml);
        from_file = Some(
            config::Config::builder()
                .add_source(file.clone())
                .build()
                .map_err(|e| file_error(f, &e))?,
        );
        b = b.add_source(file);
    }
    let mut origins = Origins { names: Vec::new() };
    for (key, _, id) in SETTINGS {
        let name = if let Some((v, source)) = value(id) {
            b = b
                .set_override(*key, v)
                .map_err(|e| ConfigError::Load(e.to_string()))?;
            flag_origin(id, source)
        } else if let (Some(cfg), Some(f)) = (&from_file, &config_file) {
            if cfg.get::<config::Value>(key).is_ok() {
                format!("{key} in {}", f.display())
            } else {
                format!("default {key}")
            }
        } else {
            format!("default {key}")
        };
        origins.names.push((key, name));
    }
    // The list, and the allow-list (only ever from the file), named like the rest.
    if let Some((urls, source)) = urls {
        b = b
            .set_override(URLS.0, urls)
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        origins.names.push((URLS.0, flag_origin(URLS.1, source)));
    } else if let Some(f) = &config_file {
        origins
            .names
            .push((URLS.0, format!("{} in {}", URLS.0, f.display())));
    }
    if let Some(f) = &config_file {
        origins
            .names
            .push(("alerts.allow", format!("alerts.allow in {}", f.display())));
    }
    let cfg = b.build().map_err(|e| match &config_file {
        Some(f) => file_error(f, &e),
        None => ConfigError::Load(e.to_string()),
    })?;
    let raw: Raw = cfg.try_deserialize().map_err(|e| match &config_file {
        Some(f) => file_error(f, &e),
        None => ConfigError::Load(e.to_string()),
    })?;
    validate(raw, &origins)
}

fn validate(raw: Raw, o: &Origins) -> Result<Settings, ConfigError> {
    let listen_address = parse_listen_address(&raw.web.listen_address)
        .map_err(|m| o.invalid("web.listen-address", m))?;
    let telemetry_path = raw.web.telemetry_path;
    if !telemetry_path.starts_with('/')
        || telemetry_path == "/"
        || telemetry_path == "/healthz"
        || telemetry_path == "/readyz"
        || telemetry_path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(o.invalid(
            "web.telemetry-path",
            format!(
                "{telemetry_path:?} must be an absolute path other than /, /healthz and /readyz"
            ),
        ));
    }
    let web_config = match raw.web.config_file.trim() {
        "" => None,
        f => Some(Arc::new(
            WebConfigSource::load(PathBuf::from(f))
                .map_err(|e| o.invalid("web.config-file", format!("{f}: {e}")))?,
        )),
    };
    let max_requests: usize = raw
        .web
        .max_requests
        .trim()
        .parse()
        .ok()
        .filter(|n| *n <= 100_000)
        .ok_or_else(|| {
            o.invalid(
                "web.max-requests",
                format!(
                    "{:?} must be a whole number from 0 (no limit) to 100000",
                    raw.web.max_requests
                ),
            )
        })?;
    let max_connections = match raw.web.max_connections.trim() {
        "auto" => None,
        n => Some(
            n.parse::<usize>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| {
                    o.invalid(
                        "web.max-connections",
                        format!(
                            "{:?} must be auto or a whole number from 1 to 1000000",
                            raw.web.max_connections
                        ),
                    )
                })?,
        ),
    };
    if raw.path.procfs.is_empty() {
        return Err(o.invalid("path.procfs", "must not be empty"));
    }
    if raw.path.sysfs.is_empty() {
        return Err(o.invalid("path.sysfs", "must not be empty"));
    }
    if raw.path.rootfs.is_empty() {
        return Err(o.invalid("path.rootfs", "must not be empty"));
    }
    let runtime_dir = |setting: &'static str, v: &str| -> Result<PathBuf, ConfigError> {
        let p = PathBuf::from(v.trim());
        let ok = p.is_absolute()
            && p.components()
                .all(|c| !matches!(c, std::path::Component::ParentDir));
        if ok {
            Ok(p)
        } else {
            Err(o.invalid(
                setting,
                format!("{v:?} must be an absolute path (read under --path.rootfs) without `..`"),
            ))
        }
    };
    let runtime_dirs = crate::runtime::Locations {
        containerd: runtime_dir("runtime.containerd-dir", &raw.runtime.containerd_dir)?,
        crio: runtime_dir("runtime.crio-dir", &raw.runtime.crio_dir)?,
        docker: runtime_dir("runtime.docker-dir", &raw.runtime.docker_dir)?,
        podman: runtime_dir("runtime.podman-dir", &raw.runtime.podman_dir)?,
    };
    let scan_interval =
        parse_duration(&raw.scan.interval).map_err(|m| o.invalid("scan.interval", m))?;
    if scan_interval < Duration::from_millis(100) || scan_interval > Duration::from_secs(3600) {
        return Err(o.invalid(
            "scan.interval",
            format!("{:?} must be between 100ms and 1h", raw.scan.interval),
        ));
    }
    let scan_events = match raw.scan.events.trim() {
        "true" => true,
        "false" => false,
        other => return Err(o.invalid("scan.events", format!("{other:?} must be true or false"))),
    };
    let events_retention = parse_duration(&raw.scan.events_retention)
        .map_err(|m| o.invalid("scan.events-retention", m))?;
    if events_retention < Duration::from_secs(1) || events_retention > Duration::from_secs(86400) {
        return Err(o.invalid(
            "scan.events-retention",
            format!("{:?} must be between 1s and 24h", raw.scan.events_retention),
        ));
    }
    let scan_threads: usize = raw
        .scan
        .threads
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=64).contains(n))
        .ok_or_else(|| {
            o.invalid(
                "scan.threads",
                format!("{:?} must be a whole number from 1 to 64", raw.scan.threads),
            )
        })?;
    let default_runtime =
        Runtime::from_name(raw.container.default_runtime.trim()).ok_or_else(|| {
            o.invalid(
                "container.default-runtime",
                format!(
                    "{:?} must be one of {}",
                    raw.container.default_runtime,
                    Runtime::ALL.map(Runtime::name).join(", ")
                ),
            )
        })?;
    let log_level = raw
        .log
        .level
        .trim()
        .parse::<tracing::level_filters::LevelFilter>()
        .ok()
        .filter(|l| *l != tracing::level_filters::LevelFilter::OFF)
        .ok_or_else(|| {
            o.invalid(
                "log.level",
                format!(
                    "{:?} must be one of error, warn, info, debug, trace",
                    raw.log.level
                ),
            )
        })?;
    let log_format = LogFormat::from_str(raw.log.format.trim(), true).map_err(|_| {
        o.invalid(
            "log.format",
            format!("{:?} must be logfmt or json", raw.log.format),
        )
    })?;
    let paths = HostPaths::new(raw.path.procfs)
        .with_sysfs(raw.path.sysfs)
        .with_rootfs(raw.path.rootfs);
    // Checked whether the sidecar is on or not, so that a typo does not wait for the
    // day it is turned on.
    let alerting = crate::alerting::settings::build(
        &raw.alertmanager,
        &raw.alerts,
        crate::alerting::own_container(&paths, default_runtime),
        crate::alerting::own_ipc(&paths),
        crate::alerting::node_name(&paths),
    )
    .map_err(|(setting, message)| {
        // The allow-list says which list ("pods: ..."): name that key in the file.
        match message.split_once(": ").filter(|(k, _)| {
            setting == "alerts.allow" && !k.is_empty() && !k.contains(char::is_whitespace)
        }) {
            Some((key, rest)) => match o.invalid(setting, rest) {
                ConfigError::Invalid { origin, message } => ConfigError::Invalid {
                    origin: origin.replacen(setting, &format!("{setting}.{key}"), 1),
                    message,
                },
                other => other,
            },
            None => o.invalid(setting, message),
        }
    })?;
    Ok(Settings {
        listen_address,
        telemetry_path,
        web_config,
        max_requests,
        max_connections,
        paths,
        scan_interval,
        scan_events,
        events_retention,
        scan_threads,
        default_runtime,
        runtime_dirs,
        log_level,
        log_format,
        alerting,
    })
}

/// `host:port`, `[v6]:port`, or `:port` meaning every interface, IPv6 and IPv4 (as the
/// Go exporters spell it): `[::]:port`, which the server binds dual-stack.
pub fn parse_listen_address(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let full = if let Some(port) = s.strip_prefix(':') {
        format!("[::]:{port}")
    } else {
        s.to_string()
    };
    if let Ok(a) = full.parse::<SocketAddr>() {
        return Ok(a);
    }
    match full.to_socket_addrs() {
        Ok(mut it) => it
            .next()
            .ok_or_else(|| format!("{s:?} resolves to no address")),
        Err(e) => Err(format!("{s:?} is not host:port or :port ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen_address(":9816").unwrap(),
            "[::]:9816".parse().unwrap()
        );
        assert_eq!(
            parse_listen_address("127.0.0.1:0").unwrap(),
            "127.0.0.1:0".parse().unwrap()
        );
        assert_eq!(
            parse_listen_address("[::1]:9816").unwrap(),
            "[::1]:9816".parse().unwrap()
        );
        for bad in ["", ":", "9816", ":99999", "127.0.0.1", "nonsense:port"] {
            assert!(parse_listen_address(bad).is_err(), "{bad}");
        }
    }
}

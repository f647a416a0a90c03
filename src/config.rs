//! Settings: command-line flags, `NSEXPORTER_*` environment variables and an optional
//! YAML `--config.file`, in that order of precedence, layered with the `config` crate
//! and checked once at startup. A bad value names its setting.
//!
//! The flags are declared in [`crate::cli`]; `SETTINGS` names each setting's flag by
//! its id there.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, ValueEnum};
use serde::Deserialize;

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
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid setting {setting}: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
    #[error("cannot load settings: {0}")]
    Load(String),
}

fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.into(),
    }
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPath {
    procfs: String,
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
    ("path.procfs", "/proc", "procfs"),
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
];

/// Where each setting's value came from: flags and environment variables (both via clap)
/// override the file, which overrides the defaults.
pub fn load(matches: &ArgMatches) -> Result<Settings, ConfigError> {
    let sub = matches.subcommand().map(|(_, m)| m);
    let value = |id: &str| -> Option<String> {
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
                if let Ok(Some(v)) = m.try_get_one::<String>(id) {
                    return Some(v.clone());
                }
            }
        }
        None
    };
    let config_file = [Some(matches), sub].into_iter().flatten().find_map(|m| {
        m.try_get_one::<PathBuf>("config_file")
            .ok()
            .flatten()
            .cloned()
    });

    let mut b = config::Config::builder();
    for (key, default, _) in SETTINGS {
        b = b
            .set_default(*key, *default)
            .map_err(|e| ConfigError::Load(e.to_string()))?;
    }
    if let Some(f) = &config_file {
        if !f.is_file() {
            return Err(invalid(
                "config.file",
                format!("{} does not exist or is not a file", f.display()),
            ));
        }
        b = b.add_source(config::File::from(f.as_path()).format(config::FileFormat::Yaml));
    }
    for (key, _, id) in SETTINGS {
        if let Some(v) = value(id) {
            b = b
                .set_override(*key, v)
                .map_err(|e| ConfigError::Load(e.to_string()))?;
        }
    }
    let cfg = b.build().map_err(|e| match &config_file {
        Some(f) => invalid("config.file", format!("{}: {e}", f.display())),
        None => ConfigError::Load(e.to_string()),
    })?;
    let raw: Raw = cfg.try_deserialize().map_err(|e| {
        invalid(
            "config.file",
            format!(
                "{}: {e}",
                config_file
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
        )
    })?;
    validate(raw)
}

fn validate(raw: Raw) -> Result<Settings, ConfigError> {
    let listen_address = parse_listen_address(&raw.web.listen_address)
        .map_err(|m| invalid("web.listen-address", m))?;
    let telemetry_path = raw.web.telemetry_path;
    if !telemetry_path.starts_with('/')
        || telemetry_path == "/"
        || telemetry_path == "/healthz"
        || telemetry_path == "/readyz"
        || telemetry_path
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
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
                .map_err(|e| invalid("web.config-file", format!("{f}: {e}")))?,
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
            invalid(
                "web.max-requests",
                format!(
                    "{:?} must be a whole number from 0 (no limit) to 100000",
                    raw.web.max_requests
                ),
            )
        })?;
    if raw.path.procfs.is_empty() {
        return Err(invalid("path.procfs", "must not be empty"));
    }
    if raw.path.rootfs.is_empty() {
        return Err(invalid("path.rootfs", "must not be empty"));
    }
    let runtime_dir = |setting: &'static str, v: &str| -> Result<PathBuf, ConfigError> {
        let p = PathBuf::from(v.trim());
        let ok = p.is_absolute()
            && p.components()
                .all(|c| !matches!(c, std::path::Component::ParentDir));
        if ok {
            Ok(p)
        } else {
            Err(invalid(
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
    let scan_interval = humantime::parse_duration(raw.scan.interval.trim())
        .map_err(|e| invalid("scan.interval", format!("{:?}: {e}", raw.scan.interval)))?;
    if scan_interval < Duration::from_millis(100) || scan_interval > Duration::from_secs(3600) {
        return Err(invalid(
            "scan.interval",
            format!("{:?} must be between 100ms and 1h", raw.scan.interval),
        ));
    }
    let scan_events = match raw.scan.events.trim() {
        "true" => true,
        "false" => false,
        other => {
            return Err(invalid(
                "scan.events",
                format!("{other:?} must be true or false"),
            ))
        }
    };
    let events_retention =
        humantime::parse_duration(raw.scan.events_retention.trim()).map_err(|e| {
            invalid(
                "scan.events-retention",
                format!("{:?}: {e}", raw.scan.events_retention),
            )
        })?;
    if events_retention < Duration::from_secs(1) || events_retention > Duration::from_secs(86400) {
        return Err(invalid(
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
            invalid(
                "scan.threads",
                format!("{:?} must be a whole number from 1 to 64", raw.scan.threads),
            )
        })?;
    let default_runtime =
        Runtime::from_name(raw.container.default_runtime.trim()).ok_or_else(|| {
            invalid(
                "container.default-runtime",
                format!(
                    "{:?} must be one of containerd, cri-o, docker, podman",
                    raw.container.default_runtime
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
            invalid(
                "log.level",
                format!(
                    "{:?} must be one of error, warn, info, debug, trace",
                    raw.log.level
                ),
            )
        })?;
    let log_format = LogFormat::from_str(raw.log.format.trim(), true).map_err(|_| {
        invalid(
            "log.format",
            format!("{:?} must be logfmt or json", raw.log.format),
        )
    })?;
    Ok(Settings {
        listen_address,
        telemetry_path,
        web_config,
        max_requests,
        paths: HostPaths::new(raw.path.procfs).with_rootfs(raw.path.rootfs),
        scan_interval,
        scan_events,
        events_retention,
        scan_threads,
        default_runtime,
        runtime_dirs,
        log_level,
        log_format,
    })
}

/// `host:port`, `[v6]:port`, or `:port` meaning every IPv4 interface (as the Go
/// exporters spell it).
pub fn parse_listen_address(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let full = if let Some(port) = s.strip_prefix(':') {
        format!("0.0.0.0:{port}")
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
            "0.0.0.0:9816".parse().unwrap()
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

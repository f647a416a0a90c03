//! The command line: every flag and subcommand, in one place. Flags are kept as the
//! text given (or `None`): [`crate::config`] layers them over the environment, the
//! config file and the defaults, and checks them, so a bad value is reported the same
//! way wherever it came from.

use std::path::PathBuf;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

/// nsexporter: which containers share the host's namespaces or run as host root, and
/// how many namespaces the node holds, from the kernel's own records.
#[derive(Debug, Parser)]
#[command(name = "nsexporter", version, about, long_about = None)]
pub struct Flags {
    /// YAML file with settings (flags and environment variables override it).
    #[arg(
        long = "config.file",
        env = "NSEXPORTER_CONFIG_FILE",
        value_name = "PATH",
        global = true
    )]
    pub config_file: Option<PathBuf>,
    /// Address to serve on: `host:port`, or `:port` for every interface, IPv6 and IPv4
    /// (IPv4 alone where the kernel has no IPv6). [default: :9816]
    #[arg(
        long = "web.listen-address",
        env = "NSEXPORTER_WEB_LISTEN_ADDRESS",
        value_name = "ADDR"
    )]
    pub listen_address: Option<String>,
    /// Path under which to expose metrics. [default: /metrics]
    #[arg(
        long = "web.telemetry-path",
        env = "NSEXPORTER_WEB_TELEMETRY_PATH",
        value_name = "PATH"
    )]
    pub telemetry_path: Option<String>,
    /// Web config file (exporter-toolkit format): TLS, client certificates, basic auth,
    /// response headers. Re-read on every new connection, so certificates rotate live.
    #[arg(
        long = "web.config.file",
        env = "NSEXPORTER_WEB_CONFIG_FILE",
        value_name = "PATH"
    )]
    pub web_config_file: Option<String>,
    /// Most scrapes of the metrics path in flight at once; more get 503. 0: no limit. [default: 40]
    #[arg(
        long = "web.max-requests",
        env = "NSEXPORTER_WEB_MAX_REQUESTS",
        value_name = "N"
    )]
    pub max_requests: Option<String>,
    /// Most connections held at once, or `auto`: from the open-file limit (raised to its
    /// hard limit), at most 1024. [default: auto]
    #[arg(
        long = "web.max-connections",
        env = "NSEXPORTER_WEB_MAX_CONNECTIONS",
        value_name = "N"
    )]
    pub max_connections: Option<String>,
    /// The host's procfs mount point (`/host/proc` in a pod). [default: /proc]
    #[arg(
        long = "path.procfs",
        env = "NSEXPORTER_PATH_PROCFS",
        value_name = "PATH",
        global = true
    )]
    pub procfs: Option<String>,
    /// The host's sysfs mount point (`/host/sys` in a pod), for its cgroup hierarchies:
    /// who owns a container's parent cgroups tells delegated subtrees. [default: /sys]
    #[arg(
        long = "path.sysfs",
        env = "NSEXPORTER_PATH_SYSFS",
        value_name = "PATH",
        global = true
    )]
    pub sysfs: Option<String>,
    /// The host's root (`/host/root` in a pod), under which the container runtimes' state
    /// directories are read for names and declared namespaces. [default: /]
    #[arg(
        long = "path.rootfs",
        env = "NSEXPORTER_PATH_ROOTFS",
        value_name = "PATH",
        global = true
    )]
    pub rootfs: Option<String>,
    /// containerd's task state directory, under --path.rootfs. [default: /run/containerd/io.containerd.runtime.v2.task]
    #[arg(
        long = "runtime.containerd-dir",
        env = "NSEXPORTER_RUNTIME_CONTAINERD_DIR",
        value_name = "PATH",
        global = true
    )]
    pub runtime_containerd_dir: Option<String>,
    /// CRI-O's run root (containers/storage runroot), under --path.rootfs. [default: /run/containers/storage]
    #[arg(
        long = "runtime.crio-dir",
        env = "NSEXPORTER_RUNTIME_CRIO_DIR",
        value_name = "PATH",
        global = true
    )]
    pub runtime_crio_dir: Option<String>,
    /// Docker's data root, under --path.rootfs. [default: /var/lib/docker]
    #[arg(
        long = "runtime.docker-dir",
        env = "NSEXPORTER_RUNTIME_DOCKER_DIR",
        value_name = "PATH",
        global = true
    )]
    pub runtime_docker_dir: Option<String>,
    /// Podman's (rootful) graph root, under --path.rootfs. [default: /var/lib/containers/storage]
    #[arg(
        long = "runtime.podman-dir",
        env = "NSEXPORTER_RUNTIME_PODMAN_DIR",
        value_name = "PATH",
        global = true
    )]
    pub runtime_podman_dir: Option<String>,
    /// Time between scans, e.g. 15s, 1m. [default: 15s]
    #[arg(
        long = "scan.interval",
        env = "NSEXPORTER_SCAN_INTERVAL",
        value_name = "DURATION"
    )]
    pub scan_interval: Option<String>,
    /// Receive process events from the kernel (proc connector) and read every exec'd
    /// process at once, between scans. Needs the host's PID and network namespaces.
    /// `--scan.events` alone means true. [default: false]
    #[arg(
        long = "scan.events",
        env = "NSEXPORTER_SCAN_EVENTS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub scan_events: Option<String>,
    /// How long a container's exec counter and info stay exposed after its last
    /// process is gone. [default: 10m]
    #[arg(
        long = "scan.events-retention",
        env = "NSEXPORTER_SCAN_EVENTS_RETENTION",
        value_name = "DURATION"
    )]
    pub scan_events_retention: Option<String>,
    /// Threads that read /proc in parallel during a scan. [default: 1]
    #[arg(
        long = "scan.threads",
        env = "NSEXPORTER_SCAN_THREADS",
        value_name = "N",
        global = true
    )]
    pub scan_threads: Option<String>,
    /// Runtime assumed for kubelet cgroupfs paths, which do not name it:
    /// containerd, cri-o, docker or podman. [default: containerd]
    #[arg(
        long = "container.default-runtime",
        env = "NSEXPORTER_CONTAINER_DEFAULT_RUNTIME",
        value_name = "RUNTIME",
        global = true
    )]
    pub default_runtime: Option<String>,
    /// Log level: error, warn, info, debug or trace. [default: info]
    #[arg(
        long = "log.level",
        env = "NSEXPORTER_LOG_LEVEL",
        value_name = "LEVEL",
        global = true
    )]
    pub log_level: Option<String>,
    /// Log format: logfmt or json. [default: logfmt]
    #[arg(
        long = "log.format",
        env = "NSEXPORTER_LOG_FORMAT",
        value_name = "FORMAT",
        global = true
    )]
    pub log_format: Option<String>,
    /// Alertmanager to push alerts to (the alerting sidecar); repeat it, or separate
    /// URLs by commas, for every member of an HA set. Unset: the sidecar is off.
    #[arg(
        long = "alertmanager.url",
        env = "NSEXPORTER_ALERTMANAGER_URL",
        value_name = "URL",
        action = clap::ArgAction::Append,
        value_delimiter = ','
    )]
    pub alertmanager_url: Vec<String>,
    /// Prometheus `http_config` file for the Alertmanagers: tls_config, basic_auth,
    /// authorization.
    #[arg(
        long = "alertmanager.http-config-file",
        env = "NSEXPORTER_ALERTMANAGER_HTTP_CONFIG_FILE",
        value_name = "PATH"
    )]
    pub alertmanager_http_config_file: Option<String>,
    /// How often active alerts are sent again (1s to 1h). [default: 1m]
    #[arg(
        long = "alertmanager.resend-interval",
        env = "NSEXPORTER_ALERTMANAGER_RESEND_INTERVAL",
        value_name = "DURATION"
    )]
    pub alertmanager_resend_interval: Option<String>,
    /// Most alerts waiting for one Alertmanager; beyond, the oldest are dropped. [default: 10000]
    #[arg(
        long = "alertmanager.queue-capacity",
        env = "NSEXPORTER_ALERTMANAGER_QUEUE_CAPACITY",
        value_name = "N"
    )]
    pub alertmanager_queue_capacity: Option<String>,
    /// Time allowed for one request to an Alertmanager (100ms to 5m). [default: 10s]
    #[arg(
        long = "alertmanager.timeout",
        env = "NSEXPORTER_ALERTMANAGER_TIMEOUT",
        value_name = "DURATION"
    )]
    pub alertmanager_timeout: Option<String>,
    /// Run one scan, print the exposition (Prometheus text format) to stdout and exit.
    #[arg(long)]
    pub once: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Terminal commands for a person on the node.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Table of the node's containers, their host sharing and root mapping, and the
    /// node's namespace counts and pinned namespaces.
    Report(ReportArgs),
    /// One process's namespaces side by side with the host's, and how to enter them.
    Inspect(InspectArgs),
    /// Which namespace types two processes share.
    Diff(DiffArgs),
    /// Live: one line per exec of a container process in a host namespace (needs the
    /// kernel's process events: root in the host's user, PID and network namespaces).
    Watch(WatchArgs),
}

/// Flags of `nsexporter watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// One JSON object per line: at (Unix seconds), container_id, uid, runtime,
    /// namespace, pod, container (names empty when unknown), pid, comm, host_ns.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `nsexporter report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Include every container, not only those sharing net, pid, ipc, uts or mnt with
    /// the host or running a process as host root.
    #[arg(long)]
    pub all: bool,
    /// Machine-readable output (schema in the README).
    #[arg(long)]
    pub json: bool,
    /// Never colour the output (colour is used only when stdout is a terminal and
    /// NO_COLOR is unset).
    #[arg(long = "no-color")]
    pub no_color: bool,
}

/// Arguments of `nsexporter inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The process to inspect, as its PID in the host procfs.
    #[arg(allow_negative_numbers = true)]
    pub pid: String,
    /// Machine-readable output (schema in the README).
    #[arg(long)]
    pub json: bool,
    /// Never colour the output.
    #[arg(long = "no-color")]
    pub no_color: bool,
}

/// Arguments of `nsexporter diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The first process, as its PID in the host procfs.
    #[arg(allow_negative_numbers = true)]
    pub pid_a: String,
    /// The second process.
    #[arg(allow_negative_numbers = true)]
    pub pid_b: String,
    /// Machine-readable output (schema in the README).
    #[arg(long)]
    pub json: bool,
    /// Never colour the output.
    #[arg(long = "no-color")]
    pub no_color: bool,
}

/// Parse the command line (exits 2 on a usage error, as clap does).
pub fn parse_flags() -> (Flags, ArgMatches) {
    let matches = Flags::command().get_matches();
    let flags = match Flags::from_arg_matches(&matches) {
        Ok(f) => f,
        Err(e) => e.exit(),
    };
    (flags, matches)
}

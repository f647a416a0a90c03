//! Terminal commands for a person on the node: `report`, `inspect` and `diff`, built on
//! the same scanner as the exporter.
//!
//! # Layout
//! - [`node`]: `report`, the node's containers, namespace counts and pins.
//! - [`inspect`]: one process against the host, and the `nsenter` line to enter it.
//! - [`diff`]: which namespaces two processes share.
//! - `style`: aligned columns and colour.
//!
//! Every command has a `--json` form whose documents carry `schema_version`
//! ([`SCHEMA_VERSION`]); the schema is documented in the README. The JSON types here
//! are the schema: they are separate from the model's types on purpose, so that a
//! change inside the scanner cannot silently change the output.

pub mod diff;
pub mod inspect;
pub mod node;
pub(crate) mod style;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;

use crate::cli::Command;
use crate::config::Settings;
use crate::model::{ContainerRef, HostRef, HostSource, NsSet, NsType, RootMapping, UidMap};
use crate::scan::one::ProcessView;

pub(crate) use style::{Cell, Painter, Table, Tone};

/// Version of the JSON documents. Bumped only for changes that break a reader (a field
/// removed, renamed or changing meaning); new fields may appear without a bump.
pub const SCHEMA_VERSION: u32 = 1;

/// The types whose sharing exposes the node: [`NsType::EXPOSING`].
pub const EXPOSING: [NsType; 5] = NsType::EXPOSING;

/// Why a terminal command failed: always told in one line.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0:?} is not a PID (a whole number from 1 up)")]
    BadPid(String),
    #[error(transparent)]
    Process(#[from] crate::scan::one::ProcessError),
    #[error(transparent)]
    Scan(#[from] crate::scan::ScanError),
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Run a terminal command: its output on stdout, or one line on stderr and exit 1.
pub fn run(cmd: Command, settings: &Settings) -> ExitCode {
    let opts = crate::scan_options(settings);
    let res = match cmd {
        Command::Report(a) => node::run(&opts, &a, painter(a.no_color || a.json)),
        Command::Inspect(a) => inspect::run(&opts, &a, painter(a.no_color || a.json)),
        Command::Diff(a) => diff::run(&opts, &a, painter(a.no_color || a.json)),
        Command::Watch(a) => return crate::watch::run(&opts, &a),
    };
    match res {
        Ok(text) => write_stdout(&text),
        Err(e) => {
            // One line of printable text, whatever the error carries (it may quote /proc).
            let msg = style::printable(&e.to_string());
            eprintln!("nsexporter: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Write the whole output; a closed pipe (`| head`) is not an error worth a panic.
fn write_stdout(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nsexporter: cannot write output: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Colour only for a terminal, and never when `--no-color` or `NO_COLOR` (any
/// non-empty value, per no-color.org) says no, or the terminal is `dumb`.
fn painter(no_color: bool) -> Painter {
    Painter::for_stdout(no_color)
}

/// A PID as typed by a person.
pub(crate) fn parse_pid(s: &str) -> Result<u32, ReportError> {
    match s.trim().parse::<u32>() {
        Ok(p) if p > 0 && s.trim().bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(ReportError::BadPid(s.to_owned())),
    }
}

pub(crate) fn to_json(v: &impl Serialize) -> Result<String, ReportError> {
    let mut s = serde_json::to_string_pretty(v)?;
    s.push('\n');
    Ok(s)
}

/// The colour of a type shared with the host.
pub(crate) fn shared_tone(t: NsType) -> Tone {
    if EXPOSING.contains(&t) {
        Tone::Danger
    } else {
        Tone::Notice
    }
}

pub(crate) fn root_tone(r: &RootMapping) -> Tone {
    match r {
        RootMapping::HostRoot => Tone::Danger,
        RootMapping::Remapped { .. } => Tone::Good,
        RootMapping::NonRoot => Tone::Plain,
    }
}

/// Where the host reference came from, in words.
pub(crate) fn host_source_text(source: HostSource) -> &'static str {
    match source {
        HostSource::Pid1 => "PID 1",
        HostSource::Kthread => "a kernel thread (PID 1 was unreadable)",
        HostSource::Fixed => "the kernel's fixed initial inodes (host net and mnt unknown)",
    }
}

/// `0 100000 65536; 1 2 3`, or a note when there is none.
pub(crate) fn uid_map_text(m: Option<&UidMap>) -> String {
    match m {
        Some(m) if !m.0.is_empty() => {
            m.0.iter()
                .map(|l| format!("{} {} {}", l.inside, l.outside, l.length))
                .collect::<Vec<_>>()
                .join("; ")
        }
        Some(_) => "not written yet".to_owned(),
        None => "unreadable".to_owned(),
    }
}

/// The first 12 characters of a container ID, as `docker ps` and `crictl ps` show it.
pub(crate) fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

// ---------------------------------------------------------------------------------
// JSON pieces shared by the commands

/// Namespace inodes by type name; `null` for a type that is unknown or that the kernel
/// lacks.
pub(crate) type NsJson = BTreeMap<&'static str, Option<u64>>;

pub(crate) fn ns_json(ns: &NsSet, supported: &[NsType]) -> NsJson {
    supported.iter().map(|t| (t.name(), ns.get(*t))).collect()
}

/// `host_reference`: where the host's namespaces came from and what they are.
#[derive(Debug, Serialize)]
pub(crate) struct HostJson {
    /// `pid1`, `kthread` or `fixed`.
    pub source: &'static str,
    pub namespaces: NsJson,
}

impl HostJson {
    pub(crate) fn new(h: &HostRef, supported: &[NsType]) -> HostJson {
        HostJson {
            source: h.source.name(),
            namespaces: ns_json(&h.ns, supported),
        }
    }
}

/// A container as the `container_id` label names it.
#[derive(Debug, Serialize)]
pub(crate) struct ContainerRefJson {
    pub runtime: &'static str,
    /// `<scheme>://<id>`, as kube-state-metrics writes it.
    pub container_id: String,
    pub id: String,
    /// API form; empty outside Kubernetes.
    pub pod_uid: String,
}

impl ContainerRefJson {
    pub(crate) fn new(c: &ContainerRef) -> ContainerRefJson {
        ContainerRefJson {
            runtime: c.runtime.name(),
            container_id: c.container_id(),
            id: c.id.clone(),
            pod_uid: c.pod_uid.clone(),
        }
    }
}

/// `{"kind": "host_root"}`, `{"kind": "remapped", "host_uid": N}` or
/// `{"kind": "non_root"}`.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum RootJson {
    HostRoot,
    Remapped { host_uid: u32 },
    NonRoot,
}

impl From<&RootMapping> for RootJson {
    fn from(r: &RootMapping) -> RootJson {
        match r {
            RootMapping::HostRoot => RootJson::HostRoot,
            RootMapping::Remapped { host_uid } => RootJson::Remapped {
                host_uid: *host_uid,
            },
            RootMapping::NonRoot => RootJson::NonRoot,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct UidMapLineJson {
    pub inside: u32,
    pub outside: u32,
    pub length: u32,
}

pub(crate) fn uid_map_json(m: Option<&UidMap>) -> Option<Vec<UidMapLineJson>> {
    m.map(|m| {
        m.0.iter()
            .map(|l| UidMapLineJson {
                inside: l.inside,
                outside: l.outside,
                length: l.length,
            })
            .collect()
    })
}

/// One process read on its own (`inspect`, `diff`).
#[derive(Debug, Serialize)]
pub(crate) struct ProcessJson {
    pub pid: u32,
    pub comm: String,
    /// Field 22 of stat (clock ticks since boot): with `pid`, the process identity.
    pub start_time: u64,
    /// Effective UID as the host sees it.
    pub host_euid: u32,
    pub root: RootJson,
    /// `host root`, `0 -> N` or `non-root`.
    pub root_text: String,
    /// `null` when unreadable.
    pub uid_map: Option<Vec<UidMapLineJson>>,
    /// `null` for a host process (its cgroup names no container).
    pub container: Option<ContainerRefJson>,
    pub namespaces: NsJson,
}

impl ProcessJson {
    pub(crate) fn new(v: &ProcessView, supported: &[NsType]) -> ProcessJson {
        ProcessJson {
            pid: v.record.pid,
            comm: v.record.comm.clone(),
            start_time: v.record.start_time,
            host_euid: v.record.host_euid,
            root: (&v.root).into(),
            root_text: v.root.to_string(),
            uid_map: uid_map_json(v.uid_map.as_ref()),
            container: v.record.container.as_ref().map(ContainerRefJson::new),
            namespaces: ns_json(&v.record.ns, supported),
        }
    }
}

/// Types that either side knows: the host's or the processes' links.
pub(crate) fn supported_types(sets: &[&NsSet]) -> Vec<NsType> {
    NsType::ALL
        .into_iter()
        .filter(|t| sets.iter().any(|s| s.get(*t).is_some()))
        .collect()
}

/// `containerd://4d1f6c6e2c7a… pod <uid>` or `host process`.
pub(crate) fn attribution_text(c: Option<&ContainerRef>) -> String {
    match c {
        Some(c) if c.pod_uid.is_empty() => format!("{} (runtime {})", c.container_id(), c.runtime),
        Some(c) => format!(
            "{} (runtime {}, pod UID {})",
            c.container_id(),
            c.runtime,
            c.pod_uid
        ),
        None => "none: a host process (its cgroup names no container)".to_owned(),
    }
}

/// What the root mapping means, in a sentence.
pub(crate) fn root_text(v: &ProcessView) -> String {
    match v.root {
        RootMapping::HostRoot => {
            let userns_private = !v.record.ns.shares(&v.host.ns, NsType::User)
                && v.record.ns.get(NsType::User).is_some();
            if userns_private {
                "host root: effective UID 0 as the host sees it, although in its own user namespace (its uid_map maps 0 to 0)".to_owned()
            } else {
                "host root: effective UID 0 as the host sees it".to_owned()
            }
        }
        RootMapping::Remapped { host_uid } => format!(
            "0 -> {host_uid}: root inside its user namespace, host UID {host_uid}; not host root"
        ),
        RootMapping::NonRoot => format!("non-root: host UID {}", v.record.host_euid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids() {
        assert_eq!(parse_pid("1").unwrap(), 1);
        assert_eq!(parse_pid("4194304").unwrap(), 4194304);
        for bad in ["", "0", "abc", "-1", "+5", "1.5", "99999999999", "1 2"] {
            assert!(parse_pid(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_pid("abc").unwrap_err().to_string(),
            "\"abc\" is not a PID (a whole number from 1 up)"
        );
    }

    #[test]
    fn short_ids() {
        assert_eq!(short_id("4d1f6c6e2c7a8b9e0f1a"), "4d1f6c6e2c7a");
        assert_eq!(short_id("abc"), "abc");
    }
}

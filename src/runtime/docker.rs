//! Docker: `containers/<id>/config.v2.json` for names (the `io.kubernetes.*` labels that
//! cri-dockerd sets, else Docker's own name) and `containers/<id>/hostconfig.json` for the
//! namespace modes the container was created with.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::oci::{parse_error, NameKeys};
use super::safefs::{ReadError, SafeDir};
use super::{is_container_id, Declared, DeclaredNs, Joins, Lookup, Names, MAX_FILE};
use crate::model::NsType;

/// `container:<id>` chains followed at most this far (cri-dockerd makes one link: an app
/// container joins its pod's sandbox).
const MAX_JOIN_DEPTH: usize = 4;

/// The subset of `config.v2.json` that is read; `Config.Env` and everything else are
/// skipped by the parser.
#[derive(Deserialize)]
struct ConfigV2 {
    #[serde(default, rename = "Name")]
    name: Option<String>,
    #[serde(default, rename = "Config")]
    config: Option<Config>,
    #[serde(default, rename = "State")]
    state: Option<State>,
}

#[derive(Deserialize)]
struct Config {
    #[serde(default, rename = "Labels")]
    labels: Option<NameKeys>,
}

#[derive(Deserialize)]
struct State {
    #[serde(default, rename = "Pid")]
    pid: i64,
}

/// The namespace modes of `hostconfig.json`.
#[derive(Deserialize, Default)]
struct HostConfig {
    #[serde(default, rename = "NetworkMode")]
    network: Option<String>,
    #[serde(default, rename = "PidMode")]
    pid: Option<String>,
    #[serde(default, rename = "IpcMode")]
    ipc: Option<String>,
    #[serde(default, rename = "UTSMode")]
    uts: Option<String>,
    #[serde(default, rename = "UsernsMode")]
    userns: Option<String>,
    #[serde(default, rename = "CgroupnsMode")]
    cgroupns: Option<String>,
}

impl HostConfig {
    fn mode(&self, t: NsType) -> &str {
        let m = match t {
            NsType::Net => &self.network,
            NsType::Pid => &self.pid,
            NsType::Ipc => &self.ipc,
            NsType::Uts => &self.uts,
            NsType::User => &self.userns,
            NsType::Cgroup => &self.cgroupns,
            NsType::Mnt | NsType::Time => &None,
        };
        m.as_deref().unwrap_or("")
    }
}

fn container_dir(id: &str) -> PathBuf {
    Path::new("containers").join(id)
}

fn read_config(dir: &SafeDir, id: &str) -> Result<ConfigV2, ReadError> {
    let bytes = dir.read(
        &container_dir(id).join("config.v2.json"),
        MAX_FILE,
        "config.v2.json",
    )?;
    parse_config(&bytes)
}

fn read_hostconfig(dir: &SafeDir, id: &str) -> Result<HostConfig, ReadError> {
    let bytes = dir.read(
        &container_dir(id).join("hostconfig.json"),
        MAX_FILE,
        "hostconfig.json",
    )?;
    parse_hostconfig(&bytes)
}

fn parse_config(bytes: &[u8]) -> Result<ConfigV2, ReadError> {
    serde_json::from_slice(bytes).map_err(|e| parse_error("config.v2.json", &e))
}

fn parse_hostconfig(bytes: &[u8]) -> Result<HostConfig, ReadError> {
    serde_json::from_slice(bytes).map_err(|e| parse_error("hostconfig.json", &e))
}

/// Parse both files' bytes, for the property tests: whatever the input, a value or an
/// error, never a panic.
#[cfg(test)]
pub(super) fn parse_both(config: &[u8], hostconfig: &[u8]) -> (Option<Names>, bool) {
    (
        parse_config(config).ok().map(names),
        parse_hostconfig(hostconfig).is_ok(),
    )
}

/// Names and declared namespaces of Docker container `id`, under the data root `dir`.
pub(super) fn read(dir: &SafeDir, id: &str, joins: &Joins<'_>) -> Lookup {
    let mut out = Lookup::default();
    match read_config(dir, id) {
        Ok(c) => out.info.names = names(c),
        Err(e) => out.errors.push(e),
    }
    match read_hostconfig(dir, id) {
        Ok(hc) => out.info.declared = declared(&hc, dir, joins),
        Err(e) => out.errors.push(e),
    }
    out
}

fn names(c: ConfigV2) -> Names {
    let mut n = c
        .config
        .and_then(|c| c.labels)
        .map(NameKeys::names)
        .unwrap_or_default();
    if n.is_empty() {
        // Not a Kubernetes container: Docker's own name, stored with a leading `/`.
        n.container = c
            .name
            .map(|s| s.trim_start_matches('/').to_owned())
            .unwrap_or_default();
    }
    n
}

/// The modes read as Docker applies them:
/// - net, pid, ipc: `host` is the host's, `container:<id>` joins that container's, and
///   anything else (`""`, `private`, `shareable`, `none`, `bridge`, a network) is new;
/// - uts: `host` or new; mnt: always new; time: Docker never makes one, so the host's;
/// - cgroup: `host` or `private`; `""` is the daemon's default, which depends on the
///   cgroup version, so unknown;
/// - user: `host`, or `""`, which is the daemon's `userns-remap` setting: unknown.
fn declared(hc: &HostConfig, dir: &SafeDir, joins: &Joins<'_>) -> Declared {
    let mut d = Declared::default();
    for t in NsType::ALL {
        let mode = hc.mode(t);
        let v = match (t, mode) {
            (NsType::Mnt, _) => Some(DeclaredNs::Private),
            (NsType::Time, _) => Some(DeclaredNs::Host),
            (_, "host") => Some(DeclaredNs::Host),
            (NsType::User, _) => None,
            (NsType::Cgroup, "private") => Some(DeclaredNs::Private),
            (NsType::Cgroup, _) => None,
            (NsType::Net | NsType::Pid | NsType::Ipc, m) if m.starts_with("container:") => Some(
                join_container(dir, &m["container:".len()..], t, joins, MAX_JOIN_DEPTH),
            ),
            _ => Some(DeclaredNs::Private),
        };
        d.set(t, v);
    }
    d
}

/// The namespace of type `t` of the container `target` that a `container:<target>` mode
/// joins: the host's if that container has it in `host` mode, else its process's, read
/// from the host's procfs through its `State.Pid`.
fn join_container(
    dir: &SafeDir,
    target: &str,
    t: NsType,
    joins: &Joins<'_>,
    depth: usize,
) -> DeclaredNs {
    let unresolved = DeclaredNs::Joins { inode: None };
    // Docker accepts a name or a short ID here; only a full ID names a directory.
    if depth == 0 || !is_container_id(target) {
        return unresolved;
    }
    let Ok(hc) = read_hostconfig(dir, target) else {
        return unresolved;
    };
    match hc.mode(t) {
        "host" => DeclaredNs::Host,
        m if m.starts_with("container:") => {
            join_container(dir, &m["container:".len()..], t, joins, depth - 1)
        }
        _ => {
            let pid = read_config(dir, target)
                .ok()
                .and_then(|c| c.state)
                .and_then(|s| u32::try_from(s.pid).ok());
            DeclaredNs::Joins {
                inode: pid.and_then(|p| joins.pid_ns(p, t)),
            }
        }
    }
}

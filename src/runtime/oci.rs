//! OCI runtime bundles (`config.json`): the annotations that name a container and the
//! `linux.namespaces` and `linux.uidMappings` that declare its namespaces. containerd and
//! CRI-O are read here; Podman reads its spec here too.

use std::fmt;
use std::path::Path;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::safefs::{ErrorKind, ReadError, SafeDir};
use super::{Declared, DeclaredNs, Joins, Lookup, Names, RuntimeInfo, MAX_FILE};
use crate::model::NsType;

/// At most this many containerd namespaces are tried (`k8s.io`, `moby`, `default`...).
const MAX_CONTAINERD_NAMESPACES: usize = 64;

/// The subset of an OCI runtime spec that is read. Every other field (the process's
/// environment among them) is skipped by the parser, never stored.
#[derive(Deserialize)]
struct Spec {
    #[serde(default)]
    annotations: Option<NameKeys>,
    #[serde(default)]
    linux: Option<Linux>,
}

#[derive(Deserialize)]
struct Linux {
    #[serde(default)]
    namespaces: Option<Vec<Namespace>>,
    /// Only whether there are any: the mappings themselves are the kernel's to tell.
    #[serde(default, rename = "uidMappings")]
    uid_mappings: Option<Vec<IgnoredAny>>,
}

#[derive(Deserialize)]
struct Namespace {
    #[serde(rename = "type")]
    ns_type: String,
    #[serde(default)]
    path: Option<String>,
}

/// The name-giving keys of a string map (OCI annotations, Docker labels); every other key
/// is skipped with its value unread, whatever it holds.
#[derive(Debug, Default)]
pub(super) struct NameKeys {
    cri_namespace: Option<String>,
    cri_pod: Option<String>,
    cri_container: Option<String>,
    kube_namespace: Option<String>,
    kube_pod: Option<String>,
    kube_container: Option<String>,
}

impl NameKeys {
    /// The names, the CRI annotations (containerd) first, then the `io.kubernetes.*`
    /// keys that CRI-O and cri-dockerd set.
    pub(super) fn names(self) -> Names {
        let pick = |a: Option<String>, b: Option<String>| {
            a.filter(|s| !s.is_empty()).or(b).unwrap_or_default()
        };
        Names {
            namespace: pick(self.cri_namespace, self.kube_namespace),
            pod: pick(self.cri_pod, self.kube_pod),
            container: pick(self.cri_container, self.kube_container),
        }
    }
}

impl<'de> Deserialize<'de> for NameKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NameKeys;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_unit<E>(self) -> Result<NameKeys, E> {
                Ok(NameKeys::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NameKeys, A::Error> {
                let mut k = NameKeys::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        "io.kubernetes.cri.sandbox-namespace" => &mut k.cri_namespace,
                        "io.kubernetes.cri.sandbox-name" => &mut k.cri_pod,
                        "io.kubernetes.cri.container-name" => &mut k.cri_container,
                        "io.kubernetes.pod.namespace" => &mut k.kube_namespace,
                        "io.kubernetes.pod.name" => &mut k.kube_pod,
                        "io.kubernetes.container.name" => &mut k.kube_container,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value()?);
                }
                Ok(k)
            }
        }
        d.deserialize_any(V)
    }
}

/// A parse error reported by category and position only: serde_json's own messages
/// quote the offending value, which may be a secret.
pub(super) fn parse_error(file: &'static str, e: &serde_json::Error) -> ReadError {
    let what = match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "malformed or too deeply nested JSON",
        serde_json::error::Category::Data => "JSON of an unexpected shape",
        serde_json::error::Category::Eof => "truncated JSON",
    };
    ReadError::new(
        ErrorKind::Parse,
        file,
        format!("{what} at line {} column {}", e.line(), e.column()),
    )
}

/// The namespace type an OCI `linux.namespaces[].type` names.
fn oci_type(name: &str) -> Option<NsType> {
    Some(match name {
        "cgroup" => NsType::Cgroup,
        "ipc" => NsType::Ipc,
        "mount" => NsType::Mnt,
        "network" => NsType::Net,
        "pid" => NsType::Pid,
        "time" => NsType::Time,
        "user" => NsType::User,
        "uts" => NsType::Uts,
        _ => return None,
    })
}

/// Parse a `config.json`: names from its annotations, declared namespaces from `linux`.
pub(super) fn parse_spec(bytes: &[u8], joins: &Joins<'_>) -> Result<RuntimeInfo, ReadError> {
    let spec: Spec = serde_json::from_slice(bytes).map_err(|e| parse_error("config.json", &e))?;
    let names = spec.annotations.map(NameKeys::names).unwrap_or_default();
    let (declared, uid_mappings) = match &spec.linux {
        Some(linux) => declared(linux, joins),
        None => (Declared::default(), false),
    };
    Ok(RuntimeInfo {
        names,
        declared,
        uid_mappings,
    })
}

/// `linux.namespaces` read as the runtime reads it: not listed is the runtime's own (the
/// host's), listed without a path is new, listed with one joins it. `uidMappings`
/// present means a new user namespace even where `user` is not listed.
fn declared(linux: &Linux, joins: &Joins<'_>) -> (Declared, bool) {
    let mut d = Declared([Some(DeclaredNs::Host); 8]);
    for ns in linux.namespaces.iter().flatten() {
        let Some(t) = oci_type(&ns.ns_type) else {
            continue;
        };
        let v = match ns.path.as_deref() {
            None | Some("") => DeclaredNs::Private,
            Some(p) => DeclaredNs::Joins {
                inode: joins.resolve(t, p),
            },
        };
        d.set(t, Some(v));
    }
    let mapped = linux.uid_mappings.as_ref().is_some_and(|m| !m.is_empty());
    if mapped && d.get(NsType::User) == Some(DeclaredNs::Host) {
        d.set(NsType::User, Some(DeclaredNs::Private));
    }
    (d, mapped)
}

/// Read and parse the bundle at `rel` below `dir`.
pub(super) fn read_bundle(dir: &SafeDir, rel: &Path, joins: &Joins<'_>) -> Lookup {
    match dir
        .read(rel, MAX_FILE, "config.json")
        .and_then(|b| parse_spec(&b, joins))
    {
        Ok(info) => Lookup {
            info,
            errors: Vec::new(),
        },
        Err(e) => Lookup::fail(e),
    }
}

/// containerd: `<namespace>/<id>/config.json`, in whichever namespace holds the task.
pub(super) fn read_containerd(dir: &SafeDir, id: &str, joins: &Joins<'_>) -> Lookup {
    let namespaces = match dir.subdirs(MAX_CONTAINERD_NAMESPACES) {
        Ok(n) => n,
        Err(e) => return Lookup::fail(ReadError::io("containerd state directory", &e)),
    };
    for ns in namespaces {
        let task = Path::new(&ns).join(id);
        match dir.open_dir(&task) {
            Ok(_) => return read_bundle(dir, &task.join("config.json"), joins),
            Err(e) if ErrorKind::of_io(&e) == ErrorKind::Missing => continue,
            Err(e) => return Lookup::fail(ReadError::io("config.json", &e)),
        }
    }
    Lookup::fail(ReadError::new(
        ErrorKind::Missing,
        "config.json",
        "no containerd namespace holds this task",
    ))
}

/// CRI-O: `overlay-containers/<id>/userdata/config.json` under its run root.
pub(super) fn read_crio(dir: &SafeDir, id: &str, joins: &Joins<'_>) -> Lookup {
    read_bundle(dir, &userdata_config(id), joins)
}

/// `overlay-containers/<id>/userdata/config.json`, where containers/storage users (CRI-O,
/// Podman) keep a container's spec.
pub(super) fn userdata_config(id: &str) -> std::path::PathBuf {
    Path::new("overlay-containers")
        .join(id)
        .join("userdata/config.json")
}

//! Podman (rootful): the spec at `overlay-containers/<id>/userdata/config.json` under its
//! graph root, and the names from its database, `libpod/bolt_state.db`.
//!
//! Podman 4 writes neither the pod's nor the container's name into the spec (checked with
//! Podman 4.3: `podman pod create` then `podman run --pod`); its annotations name only the
//! pod's infra container by ID. The names live in the bolt database:
//! - `all-ctrs/<container id>` = the container's name;
//! - `ctr/<container id>/pod-id` = its pod's ID, for a container in a pod;
//! - `allPods/<pod id>` = the pod's name.
//!
//! The container's full configuration (`ctr/<id>/config`, with its environment) is in the
//! same file; it is never read. Podman 5 (and 4.8+ set to it) keeps its state in SQLite
//! (`libpod/db.sql`) instead, which is not read: names then stay empty (counted as a
//! missing database), and the declared namespaces still come from the spec.

use std::path::Path;

use rustix::fs::{flock, FlockOperation};

use super::bolt::BoltDb;
use super::oci::{read_bundle, userdata_config};
use super::safefs::{ErrorKind, ReadError, SafeDir};
use super::{Joins, Lookup, Names};

const DB: &str = "libpod/bolt_state.db";

pub(super) fn read(dir: &SafeDir, id: &str, joins: &Joins<'_>) -> Lookup {
    let mut out = read_bundle(dir, &userdata_config(id), joins);
    match names(dir, id) {
        Ok(n) => {
            // A name from the database wins; annotations (`podman kube play`) fill the rest.
            let cur = &mut out.info.names;
            for (slot, v) in [(&mut cur.pod, n.pod), (&mut cur.container, n.container)] {
                if !v.is_empty() {
                    *slot = v;
                }
            }
        }
        Err(e) => out.errors.push(e),
    }
    out
}

/// The pod and container names of `id` from Podman's bolt database.
fn names(dir: &SafeDir, id: &str) -> Result<Names, ReadError> {
    let f = dir.open_regular(Path::new(DB), "bolt_state.db")?;
    // A writer holds an exclusive lock while it has the database open; take a shared one
    // without waiting, and try again on a later scan when a writer is at work.
    flock(&f, FlockOperation::NonBlockingLockShared).map_err(|e| {
        let e = std::io::Error::from(e);
        ReadError::new(ErrorKind::of_io(&e), "bolt_state.db", format!("lock: {e}"))
    })?;
    let corrupt = |e: super::bolt::BoltError| {
        ReadError::new(ErrorKind::Parse, "bolt_state.db", e.to_string())
    };
    let db = BoltDb::open(&f).map_err(corrupt)?;
    let text = |v: Option<Vec<u8>>| {
        v.and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default()
    };
    let container = text(db.get(&[b"all-ctrs"], id.as_bytes()).map_err(corrupt)?);
    let pod = match db
        .get(&[b"ctr", id.as_bytes()], b"pod-id")
        .map_err(corrupt)?
    {
        Some(pod_id) => text(db.get(&[b"allPods"], &pod_id).map_err(corrupt)?),
        None => String::new(),
    };
    Ok(Names {
        namespace: String::new(),
        pod,
        container,
    })
}

//! Process events from the kernel's proc connector (netlink `NETLINK_CONNECTOR`, group
//! `CN_IDX_PROC`): every fork, exec and exit as it happens, so that a process that
//! lives less than a scan interval is still seen.
//!
//! - [`proto`]: the wire format as pure functions over bytes, and the per-CPU sequence
//!   numbers that reveal lost events.
//! - [`connector`]: the socket: subscribe, receive, count losses, and a typed
//!   [`Unavailable`] reason when the kernel will not serve this process.
//! - [`feed`]: the events thread, which reads each exec'd process at once, and the
//!   bounded inbox the sampler drains in batches.
//! - [`ledger`]: exec counts per container and type, kept named for a retention after
//!   the container's last process, and the latest exec records.
//!
//! What the kernel promises, and what it does not (see `guide/DOMAIN.md`):
//! - it serves subscribers only in the initial user and PID namespaces, and the
//!   connector's socket exists only in the initial network namespace;
//! - there is no namespace event: a `setns` or `unshare` without an exec is seen only by
//!   the next scan (`nsenter` execs its command after `setns`, so it is seen);
//! - events are dropped when the receive buffer is full (`ENOBUFS` on the next `recv`,
//!   and a gap in that CPU's sequence numbers): whatever they would have told must then
//!   come from a scan.

pub mod connector;
pub mod feed;
pub mod ledger;
pub mod proto;

use std::path::Path;

pub use connector::{Connector, Options, Received, Stats, Unavailable};
pub use proto::{Message, ProcEvent};

use crate::model::NsSet;
use crate::procfs::fd::Dir;
use crate::procfs::paths::HostPaths;

/// The caller's own namespaces, from `/proc/self/ns`. This is the process's own procfs
/// view, not the host's (`--path.procfs`): in a pod without hostPID the host's procfs
/// has no `self` for it at all.
pub fn own_namespaces() -> std::io::Result<NsSet> {
    let dir = Dir::open(Path::new("/proc/self"))?;
    crate::scan::hostref::read_ns_links_in(&dir)
}

/// Subscribe, checking first that this process is where the kernel serves subscribers:
/// its own namespaces against the host reference resolved from `paths`.
pub fn subscribe(paths: &HostPaths, opts: &Options) -> Result<Connector, Unavailable> {
    let own = own_namespaces().map_err(|error| Unavailable::Io {
        step: "reading /proc/self/ns",
        error,
    })?;
    let host = Dir::open(&paths.procfs)
        .and_then(|dir| {
            Ok(crate::scan::hostref::resolve(
                &dir,
                &crate::scan::list_pids(paths)?,
            ))
        })
        .map_err(|error| Unavailable::Io {
            step: "reading the host procfs for the host reference",
            error,
        })?;
    Connector::subscribe(&own, &host, opts)
}

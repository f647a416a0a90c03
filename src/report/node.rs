//! `nsexporter report`: the node's containers and what each shares with the host, the
//! namespace counts against their limits, and the namespaces only a bind mount holds.

use std::fmt::Write as _;

use serde::Serialize;

use super::{
    ns_json, root_tone, shared_tone, short_id, to_json, uid_map_json, Cell, ContainerRefJson,
    HostJson, NsJson, Painter, ReportError, RootJson, Table, Tone, UidMapLineJson, EXPOSING,
};
use crate::cli::ReportArgs;
use crate::model::{ContainerSummary, Escape, HostSource, NsType, RootMapping, Snapshot};
use crate::scan::{ScanOptions, Scanner};

pub(crate) fn run(
    opts: &ScanOptions,
    args: &ReportArgs,
    p: Painter,
) -> Result<String, ReportError> {
    let snapshot = Scanner::new(opts.clone()).scan_whole()?;
    if args.json {
        to_json(&ReportJson::new(&snapshot, args.all))
    } else {
        Ok(render(&snapshot, args.all, p))
    }
}

/// Whether `report` lists a container without `--all`: it has a process in the host's
/// net, pid, ipc, uts or mnt namespace, a process or thread that escaped into any host
/// namespace, or a process whose host-view effective UID is 0.
pub fn shown_by_default(c: &ContainerSummary) -> bool {
    c.shares_any(&EXPOSING) || c.any_escaped() || c.host_root_processes > 0
}

/// The containers to list, pods together: by pod UID, then runtime and ID.
fn listed(s: &Snapshot, all: bool) -> Vec<&ContainerSummary> {
    let mut v: Vec<&ContainerSummary> = s
        .containers
        .values()
        .filter(|c| all || shown_by_default(c))
        .collect();
    v.sort_by(|a, b| {
        (&a.container.pod_uid, a.container.runtime, &a.container.id).cmp(&(
            &b.container.pod_uid,
            b.container.runtime,
            &b.container.id,
        ))
    });
    v
}

/// The types a container shares with the host, in label order: through a process's
/// links, or a thread that escaped there.
fn shared_types(c: &ContainerSummary, supported: &[NsType]) -> Vec<NsType> {
    supported
        .iter()
        .copied()
        .filter(|t| c.shares(*t) || c.escaped(*t))
        .collect()
}

/// The types into which a process or thread of the container escaped, in label order.
fn escaped_types(c: &ContainerSummary, supported: &[NsType]) -> Vec<NsType> {
    supported
        .iter()
        .copied()
        .filter(|t| c.escaped(*t))
        .collect()
}

/// `net` or `net ipc`.
fn type_names(types: &[NsType]) -> String {
    types.iter().map(|t| t.name()).collect::<Vec<_>>().join(" ")
}

fn render(s: &Snapshot, all: bool, p: Painter) -> String {
    let mut out = String::new();
    let list = listed(s, all);
    let total = s.containers.len();
    heading(
        &mut out,
        p,
        &format!(
            "CONTAINERS: {} of {total} shown{}",
            list.len(),
            if all {
                " (--all)".to_owned()
            } else {
                format!(
                    ", those sharing {} with the host, escaped into a host namespace or running a process as host root (--all shows every one)",
                    EXPOSING.map(NsType::name).join(", ")
                )
            }
        ),
    );
    if list.is_empty() {
        out.push_str("none\n");
    } else {
        let mut t = Table::new(&[
            "RUNTIME",
            "POD UID",
            "CONTAINER",
            "COMM",
            "PID",
            "SHARED WITH HOST",
            "ROOT",
            "NAME",
        ]);
        for c in &list {
            t.row(container_row(c, &s.supported));
        }
        out.push_str(&t.render(p));
        drift_lines(&mut out, s, &list, p);
        if list.iter().any(|c| c.any_escaped()) {
            let _ = writeln!(
                out,
                "{}",
                p.paint(
                    "!: escaped, the container's own namespace of that type is not the host's (see ESCAPED)",
                    Tone::Dim
                )
            );
        }
    }

    out.push('\n');
    let escapes: Vec<(&ContainerSummary, &Escape)> = s
        .containers
        .values()
        .flat_map(|c| c.escapes.iter().map(move |e| (c, e)))
        .collect();
    heading(
        &mut out,
        p,
        &format!(
            "ESCAPED: {} in a host namespace that its container does not share",
            match escapes.len() {
                1 => "1 process or thread".to_owned(),
                n => format!("{n} processes or threads"),
            }
        ),
    );
    if escapes.is_empty() {
        out.push_str("none\n");
    } else {
        let mut t = Table::new(&[
            "RUNTIME",
            "POD UID",
            "CONTAINER",
            "PID",
            "TID",
            "COMM",
            "HOST",
        ]);
        for (c, e) in escapes {
            let pod = if c.container.pod_uid.is_empty() {
                "-"
            } else {
                c.container.pod_uid.as_str()
            };
            t.row(vec![
                Cell::plain(c.container.runtime.name()),
                Cell::plain(pod),
                Cell::plain(short_id(&c.container.id)),
                Cell::plain(e.pid.to_string()),
                Cell::plain(e.tid.to_string()),
                Cell::plain(e.comm.clone()),
                Cell::toned(type_names(&e.types), Tone::Danger),
            ]);
        }
        out.push_str(&t.render(p));
    }

    out.push('\n');
    heading(
        &mut out,
        p,
        &format!(
            "NAMESPACES: {} processes scanned; host namespaces from {}",
            s.processes,
            super::host_source_text(s.host.source)
        ),
    );
    let mut t = Table::new(&["TYPE", "TOTAL", "PINNED", "LIMIT", "USED"]);
    for ty in &s.supported {
        let n = s.counts[ty.index()];
        let limit = s.limits[ty.index()];
        let (limit_text, used) = match limit {
            None => ("-".to_owned(), Cell::plain("-")),
            Some(0) => ("0".to_owned(), Cell::toned("disabled", Tone::Notice)),
            Some(l) => {
                let pct = n.total as f64 * 100.0 / l as f64;
                let tone = if pct >= 80.0 {
                    Tone::Danger
                } else {
                    Tone::Plain
                };
                (l.to_string(), Cell::toned(format!("{pct:.1}%"), tone))
            }
        };
        t.row(vec![
            Cell::plain(ty.name()),
            Cell::plain(n.total.to_string()),
            Cell::plain(n.pinned.to_string()),
            Cell::plain(limit_text),
            used,
        ]);
    }
    out.push_str(&t.render(p));

    out.push('\n');
    heading(
        &mut out,
        p,
        &format!(
            "PINNED: {} held by a bind mount and no process",
            match s.pinned.len() {
                1 => "1 namespace".to_owned(),
                n => format!("{n} namespaces"),
            }
        ),
    );
    if s.pinned.is_empty() {
        out.push_str("none\n");
    } else {
        let mut t = Table::new(&["TYPE", "INODE", "MOUNT POINTS"]);
        for pn in &s.pinned {
            t.row(vec![
                Cell::plain(pn.ns_type.name()),
                Cell::plain(pn.inode.to_string()),
                Cell::plain(pn.mount_points.join(", ")),
            ]);
        }
        out.push_str(&t.render(p));
    }

    let e = &s.errors;
    // The host reference from a kernel thread means PID 1 was refused to a reader that
    // could read a root kernel thread: the kernel's doing, not a missing privilege.
    let pid1_refused = s.host.source == HostSource::Kthread && e.permission > 0;
    let skipped: Vec<String> = [
        (e.vanished, "exited while being read"),
        (
            e.permission - u64::from(pid1_refused),
            "unreadable (needs root or CAP_SYS_PTRACE)",
        ),
        (e.parse, "with unparseable /proc content"),
        (e.io, "with read errors"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, why)| format!("{n} {why}"))
    .collect();
    if !skipped.is_empty() {
        let _ = writeln!(
            out,
            "\n{}",
            p.paint(&format!("Not counted: {}.", skipped.join(", ")), Tone::Dim)
        );
    }
    if pid1_refused {
        let _ = writeln!(
            out,
            "\n{}",
            p.paint(
                "PID 1 is not counted either: this host's kernel refuses its namespace links \
                 even to root. The host's namespaces are read from a kernel thread (kthreadd, \
                 PID 2), which always sits in them: `readlink /proc/2/ns/*` shows them.",
                Tone::Dim
            )
        );
    }
    if s.reader_in_child_userns {
        let _ = writeln!(
            out,
            "\n{}",
            p.paint(
                "Warning: nsexporter runs in a child user namespace: host UIDs it cannot map read as 65534, so root mappings may be wrong.",
                Tone::Notice
            )
        );
    }
    out
}

/// A section heading, in bold.
fn heading(out: &mut String, p: Painter, text: &str) {
    let _ = writeln!(out, "{}", p.paint(text, Tone::Bold));
}

/// `namespace/pod/container` as far as known, from the runtime's files; `-` if nothing.
pub(crate) fn names_text(c: &ContainerSummary) -> String {
    c.runtime_info
        .names
        .joined()
        .unwrap_or_else(|| "-".to_owned())
}

/// One line per listed container whose processes are not where its runtime declared
/// them, after the table.
fn drift_lines(out: &mut String, s: &Snapshot, list: &[&ContainerSummary], p: Painter) {
    for c in list {
        let drift = c.drift(&s.host.ns);
        if drift.is_empty() {
            continue;
        }
        let what: Vec<String> = drift
            .iter()
            .map(|d| {
                format!(
                    "{} declared {} but {}/{} process(es) {}",
                    d.ns_type,
                    d.declared.name(),
                    d.processes,
                    c.processes,
                    match d.declared {
                        crate::model::DriftKind::Private => "in the host's",
                        crate::model::DriftKind::Host => "elsewhere",
                    }
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            p.paint(
                &format!(
                    "drift {} ({}): {}",
                    short_id(&c.container.id),
                    names_text(c),
                    what.join("; ")
                ),
                Tone::Danger
            )
        );
    }
}

fn container_row(c: &ContainerSummary, supported: &[NsType]) -> Vec<Cell> {
    let mut runtime = Cell::plain(c.container.runtime.name());
    if let Some(uid) = c.container.owner_uid {
        runtime.push(format!(" (user {uid})"), Tone::Notice);
    }
    let pod = if c.container.pod_uid.is_empty() {
        "-"
    } else {
        c.container.pod_uid.as_str()
    };
    let mut shared = Cell::default();
    let types = shared_types(c, supported);
    if types.is_empty() {
        shared.push("-", Tone::Good);
    }
    for (i, t) in types.iter().enumerate() {
        let n = c.host_ns_processes[t.index()];
        let text = if c.escaped(*t) {
            // Entered after the container started: the processes that did, marked.
            format!(
                "{}({}/{})!",
                t.name(),
                c.escaped_processes[t.index()],
                c.processes
            )
        } else if n < c.processes {
            // Only some processes: typically one that was entered into the host's.
            format!("{}({n}/{})", t.name(), c.processes)
        } else {
            t.name().to_owned()
        };
        if i > 0 {
            shared.push(" ", Tone::Plain);
        }
        shared.push(text, shared_tone(*t));
    }
    let mut root = Cell::toned(c.root.to_string(), root_tone(&c.root));
    if c.host_root_processes > 0 && c.root != RootMapping::HostRoot {
        root.push(
            format!(" (+{} host root)", c.host_root_processes),
            Tone::Danger,
        );
    }
    vec![
        runtime,
        Cell::plain(pod),
        Cell::plain(short_id(&c.container.id)),
        Cell::plain(c.comm.clone()),
        Cell::plain(c.main_pid.to_string()),
        shared,
        root,
        Cell::plain(names_text(c)),
    ]
}

// ---------------------------------------------------------------------------------
// JSON

#[derive(Debug, Serialize)]
struct ReportJson {
    schema_version: u32,
    command: &'static str,
    /// `true` with `--all`; else only containers with `shown_by_default` are listed.
    all: bool,
    host_reference: HostJson,
    /// Processes scanned, without kernel threads.
    processes: u64,
    /// Containers seen, listed or not.
    containers_total: usize,
    containers: Vec<ContainerJson>,
    namespaces: Vec<CountJson>,
    pinned: Vec<PinnedJson>,
    scan_errors: ErrorsJson,
    reader_in_child_userns: bool,
}

#[derive(Debug, Serialize)]
struct ContainerJson {
    #[serde(flatten)]
    container: ContainerRefJson,
    /// The host UID owning the delegated cgroup subtree (rootless), else `null`.
    owner_uid: Option<u32>,
    /// The oldest process, which stands for the container.
    main_pid: u32,
    comm: String,
    processes: u32,
    /// The main process's namespaces.
    namespaces: NsJson,
    /// Types with at least one process in the host's namespace.
    shared_host_namespaces: Vec<&'static str>,
    /// For each shared type, how many of its processes are in the host's namespace.
    host_namespace_processes: std::collections::BTreeMap<&'static str, u32>,
    /// Types into which a process or thread escaped: in the host's namespace of that
    /// type, which the container's own is not.
    escaped_host_namespaces: Vec<&'static str>,
    /// For each escaped type, how many of its processes escaped (a process counts once).
    escaped_processes: std::collections::BTreeMap<&'static str, u32>,
    /// Each escaped process or thread.
    escapes: Vec<EscapeJson>,
    /// Processes with host-view effective UID 0.
    host_root_processes: u32,
    /// The main process's root mapping.
    root: RootJson,
    root_text: String,
    uid_map: Option<Vec<UidMapLineJson>>,
    shown_by_default: bool,
    /// Names from the runtime's files; empty strings when unknown.
    names: NamesJson,
    /// What the runtime's files declare per type: `private`, `host` or `joined`;
    /// types they do not say are left out.
    declared: std::collections::BTreeMap<&'static str, &'static str>,
    /// `linux.uidMappings` was present (a user namespace was asked for).
    uid_mappings_declared: bool,
    /// Per type, processes not where the runtime declared them (only non-zero).
    drift: std::collections::BTreeMap<&'static str, u32>,
}

#[derive(Debug, Serialize)]
struct NamesJson {
    namespace: String,
    pod: String,
    container: String,
}

/// One process, or one thread of it, in host namespaces its container does not share.
#[derive(Debug, Serialize)]
pub(crate) struct EscapeJson {
    pub pid: u32,
    /// The thread whose links these are (`pid` for the leader's own).
    pub tid: u32,
    pub comm: String,
    /// The host namespace types it is in and the container is not.
    pub types: Vec<&'static str>,
}

impl EscapeJson {
    pub(crate) fn new(e: &Escape) -> EscapeJson {
        EscapeJson {
            pid: e.pid,
            tid: e.tid,
            comm: e.comm.clone(),
            types: e.types.iter().map(|t| t.name()).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
struct CountJson {
    #[serde(rename = "type")]
    ns_type: &'static str,
    total: u64,
    pinned: u64,
    limit: Option<u64>,
}

#[derive(Debug, Serialize)]
struct PinnedJson {
    #[serde(rename = "type")]
    ns_type: &'static str,
    inode: u64,
    mount_points: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ErrorsJson {
    vanished: u64,
    permission: u64,
    parse: u64,
    io: u64,
}

impl ReportJson {
    fn new(s: &Snapshot, all: bool) -> ReportJson {
        let containers = listed(s, all)
            .into_iter()
            .map(|c| {
                let shared = shared_types(c, &s.supported);
                let escaped = escaped_types(c, &s.supported);
                ContainerJson {
                    container: ContainerRefJson::new(&c.container),
                    owner_uid: c.container.owner_uid,
                    main_pid: c.main_pid,
                    comm: c.comm.clone(),
                    processes: c.processes,
                    namespaces: ns_json(&c.main_ns, &s.supported),
                    shared_host_namespaces: shared.iter().map(|t| t.name()).collect(),
                    host_namespace_processes: shared
                        .iter()
                        .filter(|t| c.shares(**t))
                        .map(|t| (t.name(), c.host_ns_processes[t.index()]))
                        .collect(),
                    escaped_host_namespaces: escaped.iter().map(|t| t.name()).collect(),
                    escaped_processes: escaped
                        .iter()
                        .map(|t| (t.name(), c.escaped_processes[t.index()]))
                        .collect(),
                    escapes: c.escapes.iter().map(EscapeJson::new).collect(),
                    host_root_processes: c.host_root_processes,
                    root: (&c.root).into(),
                    root_text: c.root.to_string(),
                    uid_map: uid_map_json(c.uid_map.as_ref()),
                    shown_by_default: shown_by_default(c),
                    names: NamesJson {
                        namespace: c.runtime_info.names.namespace.clone(),
                        pod: c.runtime_info.names.pod.clone(),
                        container: c.runtime_info.names.container.clone(),
                    },
                    declared: NsType::ALL
                        .into_iter()
                        .filter_map(|t| c.runtime_info.declared(t).map(|d| (t.name(), d.name())))
                        .collect(),
                    uid_mappings_declared: c.runtime_info.uid_mappings,
                    drift: c
                        .drift(&s.host.ns)
                        .into_iter()
                        .map(|d| (d.ns_type.name(), d.processes))
                        .collect(),
                }
            })
            .collect();
        ReportJson {
            schema_version: super::SCHEMA_VERSION,
            command: "report",
            all,
            host_reference: HostJson::new(&s.host, &s.supported),
            processes: s.processes,
            containers_total: s.containers.len(),
            containers,
            namespaces: s
                .supported
                .iter()
                .map(|t| CountJson {
                    ns_type: t.name(),
                    total: s.counts[t.index()].total,
                    pinned: s.counts[t.index()].pinned,
                    limit: s.limits[t.index()],
                })
                .collect(),
            pinned: s
                .pinned
                .iter()
                .map(|p| PinnedJson {
                    ns_type: p.ns_type.name(),
                    inode: p.inode,
                    mount_points: p.mount_points.clone(),
                })
                .collect(),
            scan_errors: ErrorsJson {
                vanished: s.errors.vanished,
                permission: s.errors.permission,
                parse: s.errors.parse,
                io: s.errors.io,
            },
            reader_in_child_userns: s.reader_in_child_userns,
        }
    }
}

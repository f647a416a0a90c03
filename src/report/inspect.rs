//! `nsexporter inspect <pid>`: one process's namespaces next to the host's, its
//! container, its root mapping, and the `nsenter` line that enters only the namespaces
//! that differ from the host's.

use std::fmt::Write as _;

use serde::Serialize;

use super::{
    attribution_text, parse_pid, root_text, root_tone, shared_tone, supported_types, to_json,
    uid_map_text, Cell, HostJson, Painter, ProcessJson, ReportError, Table, Tone,
};
use crate::cli::InspectArgs;
use crate::model::NsType;
use crate::scan::one::{read_one, ProcessView};
use crate::scan::ScanOptions;

/// The order of flags in the `nsenter` line: the types that matter most for a debug
/// session first. nsenter itself enters them in its own fixed order.
const FLAG_ORDER: [NsType; 8] = [
    NsType::Net,
    NsType::Pid,
    NsType::Ipc,
    NsType::Uts,
    NsType::Mnt,
    NsType::Cgroup,
    NsType::Time,
    NsType::User,
];

pub(crate) fn run(
    opts: &ScanOptions,
    args: &InspectArgs,
    p: Painter,
) -> Result<String, ReportError> {
    let pid = parse_pid(&args.pid)?;
    let v = read_one(opts, pid)?;
    if args.json {
        to_json(&InspectJson::new(&v))
    } else {
        Ok(render(&v, p))
    }
}

/// How one type of the process relates to the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    /// The host's own namespace.
    Shared,
    /// A namespace of its own (or another container's).
    Private,
    /// The host's namespace of this type is not known (fixed-inode fallback for net and
    /// mnt) or the process's link could not be read.
    Unknown,
}

fn state(v: &ProcessView, t: NsType) -> State {
    match (v.record.ns.get(t), v.host.ns.get(t)) {
        (Some(a), Some(b)) if a == b => State::Shared,
        (Some(_), Some(_)) => State::Private,
        _ => State::Unknown,
    }
}

/// The types to enter: those that differ, and those that cannot be compared (entering
/// a namespace one is already in changes nothing).
fn to_enter(v: &ProcessView, supported: &[NsType]) -> Vec<NsType> {
    FLAG_ORDER
        .into_iter()
        .filter(|t| supported.contains(t) && state(v, *t) != State::Shared)
        .collect()
}

/// `["nsenter", "-t", "<pid>", "-n", ...]`, or `None` when every namespace is the host's.
pub(crate) fn nsenter_args(v: &ProcessView, supported: &[NsType]) -> Option<Vec<String>> {
    let types = to_enter(v, supported);
    if types.is_empty() {
        return None;
    }
    let mut a = vec![
        "nsenter".to_owned(),
        "-t".to_owned(),
        v.record.pid.to_string(),
    ];
    a.extend(types.iter().map(|t| t.nsenter_flag().to_owned()));
    Some(a)
}

/// A command that shows what the namespace of type `t` of `pid` holds, entering only
/// what it needs, and what it shows. Each runs the host's tool, except `ps`: it reads
/// `/proc`, which is the container's only in its mount namespace (`-m`), so that one is
/// the container's own.
fn look_command(t: NsType, pid: u32) -> Option<(String, &'static str)> {
    match t {
        NsType::Net => Some((format!("nsenter -t {pid} -n ss -lntp"), "its sockets (net)")),
        NsType::Pid => Some((
            format!("nsenter -t {pid} -p -m ps -ef"),
            "its processes (pid; -m for its /proc, so its own ps)",
        )),
        NsType::Ipc => Some((format!("nsenter -t {pid} -i ipcs"), "its IPC objects (ipc)")),
        NsType::Uts => Some((
            format!("nsenter -t {pid} -u hostname"),
            "its hostname (uts)",
        )),
        NsType::Mnt => Some((format!("findmnt -N {pid}"), "its mounts (mnt)")),
        NsType::Cgroup | NsType::Time | NsType::User => None,
    }
}

fn render(v: &ProcessView, p: Painter) -> String {
    let supported = supported_types(&[&v.record.ns, &v.host.ns]);
    let mut out = String::new();
    let mut head = Table::new(&["", ""]);
    let r = &v.record;
    head.row(vec![
        Cell::toned("PROCESS", Tone::Bold),
        Cell::plain(format!("{} ({})", r.pid, r.comm)),
    ]);
    head.row(vec![
        Cell::toned("CONTAINER", Tone::Bold),
        Cell::plain(attribution_text(r.container.as_ref())),
    ]);
    head.row(vec![
        Cell::toned("ROOT", Tone::Bold),
        Cell::toned(root_text(v), root_tone(&v.root)),
    ]);
    head.row(vec![
        Cell::toned("UID_MAP", Tone::Bold),
        Cell::plain(uid_map_text(v.uid_map.as_ref())),
    ]);
    head.row(vec![
        Cell::toned("HOST", Tone::Bold),
        Cell::plain(format!(
            "namespaces of {}",
            super::host_source_text(v.host.source)
        )),
    ]);
    // The header row of this key/value table is empty: skip it.
    let head_text = head.render(p);
    out.push_str(head_text.split_once('\n').map_or("", |(_, rest)| rest));
    out.push('\n');

    let mut t = Table::new(&["TYPE", "PROCESS", "HOST", ""]);
    let ino = |x: Option<u64>| x.map_or_else(|| "-".to_owned(), |i| i.to_string());
    for ty in &supported {
        let st = state(v, *ty);
        let mark = match st {
            State::Shared => Cell::toned("shared", shared_tone(*ty)),
            State::Private => Cell::toned("private", Tone::Good),
            State::Unknown => Cell::toned("unknown", Tone::Dim),
        };
        t.row(vec![
            Cell::plain(ty.name()),
            Cell::plain(ino(r.ns.get(*ty))),
            Cell::plain(ino(v.host.ns.get(*ty))),
            mark,
        ]);
    }
    out.push_str(&t.render(p));
    out.push('\n');

    match nsenter_args(v, &supported) {
        None => {
            out.push_str(
                "Every namespace is the host's: there is nothing to enter, host tools already see what this process sees.\n",
            );
        }
        Some(a) => {
            let types = to_enter(v, &supported);
            let _ = writeln!(
                out,
                "Enter only the namespaces that differ from the host's ({}):",
                types
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let _ = writeln!(out, "  {}", p.paint(&a.join(" "), Tone::Bold));
            if types.contains(&NsType::Mnt) {
                out.push_str(
                    "followed by a command, which -m runs from its files, where host tools may be missing.\n",
                );
            } else {
                out.push_str("followed by a command.\n");
            }
            let looks: Vec<(String, &str)> = types
                .iter()
                .filter_map(|t| look_command(*t, r.pid))
                .collect();
            if !looks.is_empty() {
                out.push_str("One namespace at a time, with the host's tools:\n");
                let width = looks.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
                for (cmd, what) in &looks {
                    let pad = " ".repeat(width - cmd.len());
                    let _ = writeln!(out, "  {}{pad}  {what}", p.paint(cmd, Tone::Bold));
                }
            }
            if types.contains(&NsType::User) {
                out.push_str("-U makes you root of its user namespace only; host root can enter the others without it.\n");
            }
            if types.iter().any(|t| state(v, *t) == State::Unknown) {
                out.push_str("Types marked unknown are in the line too: entering a namespace one is already in changes nothing.\n");
            }
        }
    }
    out
}

#[derive(Debug, Serialize)]
struct InspectJson {
    schema_version: u32,
    command: &'static str,
    host_reference: HostJson,
    process: ProcessJson,
    /// Whether the process's effective UID is 0 as the host sees it.
    host_root: bool,
    namespaces: Vec<TypeJson>,
    /// Types that differ from the host's (or cannot be compared), in `nsenter` order.
    private: Vec<&'static str>,
    /// The `nsenter` command line as separate arguments; `null` when every namespace is
    /// the host's.
    nsenter: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
struct TypeJson {
    #[serde(rename = "type")]
    ns_type: &'static str,
    process: Option<u64>,
    host: Option<u64>,
    state: State,
}

impl InspectJson {
    fn new(v: &ProcessView) -> InspectJson {
        let supported = supported_types(&[&v.record.ns, &v.host.ns]);
        InspectJson {
            schema_version: super::SCHEMA_VERSION,
            command: "inspect",
            host_reference: HostJson::new(&v.host, &supported),
            process: ProcessJson::new(v, &supported),
            host_root: v.root == crate::model::RootMapping::HostRoot,
            namespaces: supported
                .iter()
                .map(|t| TypeJson {
                    ns_type: t.name(),
                    process: v.record.ns.get(*t),
                    host: v.host.ns.get(*t),
                    state: state(v, *t),
                })
                .collect(),
            private: to_enter(v, &supported).iter().map(|t| t.name()).collect(),
            nsenter: nsenter_args(v, &supported),
        }
    }
}

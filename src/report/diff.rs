//! `nsexporter diff <pid-a> <pid-b>`: which namespace types two processes share, and
//! what that means ("same pod network", "the sidecar does not see the app's files").

use serde::Serialize;

use super::{
    attribution_text, parse_pid, supported_types, to_json, Cell, HostJson, Painter, ProcessJson,
    ReportError, Table, Tone,
};
use crate::cli::DiffArgs;
use crate::model::NsType;
use crate::scan::one::{read_one, ProcessView};
use crate::scan::ScanOptions;

pub(crate) fn run(opts: &ScanOptions, args: &DiffArgs, p: Painter) -> Result<String, ReportError> {
    let a = parse_pid(&args.pid_a)?;
    let b = parse_pid(&args.pid_b)?;
    let va = read_one(opts, a).map_err(|e| e.with_other(b))?;
    let vb = read_one(opts, b).map_err(|e| e.with_other(a))?;
    let d = Diff::new(&va, &vb);
    if args.json {
        to_json(&DiffJson::new(&d))
    } else {
        Ok(render(&d, p))
    }
}

/// The order the summary answers in: the questions people ask first.
const SUMMARY_ORDER: [NsType; 8] = [
    NsType::Net,
    NsType::Mnt,
    NsType::Pid,
    NsType::Ipc,
    NsType::Uts,
    NsType::User,
    NsType::Cgroup,
    NsType::Time,
];

/// How one type compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Same,
    Different,
    /// One side's link could not be read.
    Unknown,
}

struct Diff<'a> {
    a: &'a ProcessView,
    b: &'a ProcessView,
    supported: Vec<NsType>,
}

impl<'a> Diff<'a> {
    fn new(a: &'a ProcessView, b: &'a ProcessView) -> Diff<'a> {
        Diff {
            a,
            b,
            supported: supported_types(&[&a.record.ns, &b.record.ns]),
        }
    }

    fn verdict(&self, t: NsType) -> Verdict {
        match (self.a.record.ns.get(t), self.b.record.ns.get(t)) {
            (Some(x), Some(y)) if x == y => Verdict::Same,
            (Some(_), Some(_)) => Verdict::Different,
            _ => Verdict::Unknown,
        }
    }

    fn types_with(&self, v: Verdict) -> Vec<NsType> {
        self.supported
            .iter()
            .copied()
            .filter(|t| self.verdict(*t) == v)
            .collect()
    }

    /// Whether the namespace both are in is the host's.
    fn both_host(&self, t: NsType) -> bool {
        self.a.record.ns.shares(&self.a.host.ns, t) && self.b.record.ns.shares(&self.b.host.ns, t)
    }

    fn same_container(&self) -> bool {
        matches!((&self.a.record.container, &self.b.record.container), (Some(x), Some(y)) if x == y)
    }

    fn same_pod(&self) -> bool {
        matches!((&self.a.record.container, &self.b.record.container),
            (Some(x), Some(y)) if !x.pod_uid.is_empty() && x.pod_uid == y.pod_uid)
    }

    /// One sentence per type, in [`SUMMARY_ORDER`].
    fn summary(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.a.record.pid == self.b.record.pid {
            out.push("both PIDs are the same process".to_owned());
        } else if self.same_container() {
            out.push("both processes are in the same container".to_owned());
        } else if self.same_pod() {
            out.push("both processes are in the same pod, in different containers".to_owned());
        }
        for t in SUMMARY_ORDER {
            if !self.supported.contains(&t) {
                continue;
            }
            let v = self.verdict(t);
            let mut s = match v {
                Verdict::Unknown => format!("{t}: cannot compare, a link was unreadable"),
                Verdict::Same => sentence(t, true).to_owned(),
                Verdict::Different => sentence(t, false).to_owned(),
            };
            if v == Verdict::Same && self.both_host(t) {
                s.push_str("; it is the host's");
            }
            out.push(s);
        }
        out
    }
}

/// What sharing (or not) a namespace of type `t` means for two processes.
fn sentence(t: NsType, same: bool) -> &'static str {
    match (t, same) {
        (NsType::Net, true) => "same network namespace (same pod network): same interfaces, addresses and ports; they reach each other on localhost",
        (NsType::Net, false) => "different network namespaces (not the same pod network): localhost in one is not the other; they talk over an address",
        (NsType::Mnt, true) => "same mount namespace: they see the same files and mounts",
        (NsType::Mnt, false) => "different mount namespaces (the one does not see the other's files unless through shared volumes)",
        (NsType::Pid, true) => "same PID namespace: they see and can signal each other's processes",
        (NsType::Pid, false) => "different PID namespaces: they do not see each other's processes (unless one's is an ancestor of the other's, as the host's is of every container's)",
        (NsType::Ipc, true) => "same IPC namespace: they share System V IPC objects and POSIX message queues",
        (NsType::Ipc, false) => "different IPC namespaces: no shared memory segments or message queues between them",
        (NsType::Uts, true) => "same UTS namespace: same hostname",
        (NsType::Uts, false) => "different UTS namespaces: their hostnames can differ",
        (NsType::User, true) => "same user namespace: a UID means the same user to both",
        (NsType::User, false) => "different user namespaces: UIDs map differently (compare their uid_maps)",
        (NsType::Cgroup, true) => "same cgroup namespace: the same view of /proc/self/cgroup",
        (NsType::Cgroup, false) => "different cgroup namespaces: each sees its own cgroup as the root",
        (NsType::Time, true) => "same time namespace: same monotonic and boot clocks",
        (NsType::Time, false) => "different time namespaces: their monotonic and boot clocks can be offset",
    }
}

fn render(d: &Diff<'_>, p: Painter) -> String {
    let mut out = String::new();
    let mut head = Table::new(&["", "", "", ""]);
    for (label, v) in [("A", d.a), ("B", d.b)] {
        head.row(vec![
            Cell::toned(label, Tone::Bold),
            Cell::plain(format!("{} ({})", v.record.pid, v.record.comm)),
            Cell::plain(attribution_text(v.record.container.as_ref())),
            Cell::plain(format!("root: {}", v.root)),
        ]);
    }
    let head_text = head.render(p);
    out.push_str(head_text.split_once('\n').map_or("", |(_, rest)| rest));
    out.push('\n');

    let mut t = Table::new(&["TYPE", "A", "B", ""]);
    let ino = |x: Option<u64>| x.map_or_else(|| "-".to_owned(), |i| i.to_string());
    for ty in &d.supported {
        let mut mark = match d.verdict(*ty) {
            Verdict::Same => Cell::toned("same", Tone::Plain),
            Verdict::Different => Cell::toned("different", Tone::Notice),
            Verdict::Unknown => Cell::toned("unknown", Tone::Dim),
        };
        if d.verdict(*ty) == Verdict::Same && d.both_host(*ty) {
            mark.push(" (host)", Tone::Dim);
        }
        t.row(vec![
            Cell::plain(ty.name()),
            Cell::plain(ino(d.a.record.ns.get(*ty))),
            Cell::plain(ino(d.b.record.ns.get(*ty))),
            mark,
        ]);
    }
    out.push_str(&t.render(p));
    out.push('\n');
    for s in d.summary() {
        out.push_str("- ");
        out.push_str(&s);
        out.push('\n');
    }
    out
}

#[derive(Debug, Serialize)]
struct DiffJson {
    schema_version: u32,
    command: &'static str,
    host_reference: HostJson,
    a: ProcessJson,
    b: ProcessJson,
    namespaces: Vec<TypeJson>,
    same: Vec<&'static str>,
    different: Vec<&'static str>,
    same_container: bool,
    same_pod: bool,
    summary: Vec<String>,
}

#[derive(Debug, Serialize)]
struct TypeJson {
    #[serde(rename = "type")]
    ns_type: &'static str,
    a: Option<u64>,
    b: Option<u64>,
    verdict: Verdict,
    /// Both are in the host's namespace of this type.
    host: bool,
}

impl DiffJson {
    fn new(d: &Diff<'_>) -> DiffJson {
        let names = |v: Vec<NsType>| v.into_iter().map(|t| t.name()).collect();
        DiffJson {
            schema_version: super::SCHEMA_VERSION,
            command: "diff",
            host_reference: HostJson::new(&d.a.host, &d.supported),
            a: ProcessJson::new(d.a, &d.supported),
            b: ProcessJson::new(d.b, &d.supported),
            namespaces: d
                .supported
                .iter()
                .map(|t| TypeJson {
                    ns_type: t.name(),
                    a: d.a.record.ns.get(*t),
                    b: d.b.record.ns.get(*t),
                    verdict: d.verdict(*t),
                    host: d.verdict(*t) == Verdict::Same && d.both_host(*t),
                })
                .collect(),
            same: names(d.types_with(Verdict::Same)),
            different: names(d.types_with(Verdict::Different)),
            same_container: d.same_container(),
            same_pod: d.same_pod(),
            summary: d.summary(),
        }
    }
}

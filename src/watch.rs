//! `nsexporter watch`: a live terminal view of process events. One line per exec of a
//! container process that is in a host namespace (time, container, its names when its
//! runtime's files give them, PID, comm, which host namespaces), or one JSON object per
//! line with `--json`: the report's workflow, as it happens.

use std::io::Write;
use std::process::ExitCode;
use std::time::SystemTime;

use serde::Serialize;

use crate::cli::WatchArgs;
use crate::events::ledger::ExecRecord;
use crate::events::{self, Options, ProcEvent};
use crate::model::{HostRef, NsType};
use crate::procfs::fd::Dir;
use crate::runtime::{Reader, RuntimeCache};
use crate::scan::{ExecReader, ScanOptions};

/// More containers than this in the names cache, and it starts over: `watch` may run
/// for days on a node that makes containers without end.
const NAMES_CACHE_MAX: usize = 4096;

/// Subscribe and print until interrupted (or the output is closed).
pub fn run(opts: &ScanOptions, args: &WatchArgs) -> ExitCode {
    let mut conn = match events::subscribe(&opts.paths, &Options::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nsexporter watch: process events are unavailable: {e}");
            return ExitCode::FAILURE;
        }
    };
    let host = match Dir::open(&opts.paths.procfs).and_then(|d| {
        Ok(crate::scan::hostref::resolve(
            &d,
            &crate::scan::list_pids(&opts.paths)?,
        ))
    }) {
        Ok(h) => h,
        Err(e) => {
            eprintln!(
                "nsexporter watch: cannot read {}: {e}",
                opts.paths.procfs.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let mut reader = match ExecReader::new(opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "nsexporter watch: cannot read {}: {e}",
                opts.paths.procfs.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let mut runtime = RuntimeCache::new(Reader::new(
        opts.paths.rootfs.clone(),
        opts.paths.procfs.clone(),
        opts.runtime.clone(),
    ));
    if !args.json {
        eprintln!(
            "nsexporter watch: execs of container processes in a host namespace (Ctrl-C to stop)"
        );
    }
    let mut msgs = Vec::new();
    let mut out = std::io::stdout().lock();
    loop {
        msgs.clear();
        match conn.recv(&mut msgs) {
            Ok(Some(r)) if r.lost > 0 => {
                eprintln!("nsexporter watch: {} process events lost", r.lost);
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("nsexporter watch: receiving process events failed: {e}");
                return ExitCode::FAILURE;
            }
        }
        for m in &msgs {
            let ProcEvent::Exec { tgid, .. } = m.event else {
                continue;
            };
            let Some(rec) = reader
                .read(tgid)
                .and_then(|f| record(&host, f.record(), &mut runtime))
            else {
                continue;
            };
            let line = if args.json {
                serde_json::to_string(&JsonLine::new(&rec)).unwrap_or_default()
            } else {
                line(&rec)
            };
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                // Output closed (`| head`): done.
                return ExitCode::SUCCESS;
            }
        }
    }
}

/// The exec record of a container process in at least one host namespace, with the
/// names its runtime's files give its container.
fn record(
    host: &HostRef,
    r: crate::model::ProcRecord,
    runtime: &mut RuntimeCache,
) -> Option<ExecRecord> {
    let names = match &r.container {
        Some(c) => {
            if runtime.len() > NAMES_CACHE_MAX {
                runtime.clear();
            }
            runtime.lookup(c).names.clone()
        }
        None => return None,
    };
    ExecRecord::of(r, &host.ns, &NsType::ALL, SystemTime::now(), true, names)
}

/// `<RFC 3339 time>  <container_id>  [<namespace/pod/container>  ]pid <pid>  <comm>  host <types>`.
pub fn line(r: &ExecRecord) -> String {
    let types: Vec<&str> = r.host_ns.iter().map(|t| t.name()).collect();
    let names = r
        .names
        .joined()
        .map(|n| format!("{}  ", crate::report::style::printable(&n)))
        .unwrap_or_default();
    format!(
        "{}  {}  {names}pid {}  {}  host {}",
        humantime::format_rfc3339_millis(r.at),
        r.container.container_id(),
        r.pid,
        crate::report::style::printable(&r.comm),
        types.join(",")
    )
}

/// One `--json` line: the container named as in the metrics' labels (`container_id`,
/// `uid`, `runtime`, and `namespace`, `pod`, `container` from its runtime's files,
/// empty when unknown).
#[derive(Debug, Serialize)]
struct JsonLine<'a> {
    /// Unix seconds.
    at: f64,
    container_id: String,
    uid: &'a str,
    runtime: &'static str,
    namespace: &'a str,
    pod: &'a str,
    container: &'a str,
    pid: u32,
    comm: &'a str,
    host_ns: Vec<&'static str>,
}

impl<'a> JsonLine<'a> {
    fn new(r: &'a ExecRecord) -> Self {
        JsonLine {
            at: r
                .at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            container_id: r.container.container_id(),
            uid: &r.container.pod_uid,
            runtime: r.container.runtime.name(),
            namespace: &r.names.namespace,
            pod: &r.names.pod,
            container: &r.names.container,
            pid: r.pid,
            comm: &r.comm,
            host_ns: r.host_ns.iter().map(|t| t.name()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ContainerRef, Names, Runtime};

    fn rec(names: Names) -> ExecRecord {
        ExecRecord {
            at: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_250),
            container: ContainerRef {
                runtime: Runtime::Containerd,
                id: "ab".repeat(32),
                pod_uid: "0b7e6c1a-1111-2222-3333-444455556666".into(),
                owner_uid: None,
            },
            pid: 42,
            comm: "sh".into(),
            host_ns: vec![NsType::Net, NsType::Pid],
            by_event: true,
            names,
        }
    }

    #[test]
    fn a_line_names_the_container_as_far_as_known() {
        let named = rec(Names {
            namespace: "debug".into(),
            pod: "node-debugger-x".into(),
            container: "debugger".into(),
        });
        let id = format!("containerd://{}", "ab".repeat(32));
        assert_eq!(
            line(&named),
            format!(
                "2023-11-14T22:13:20.250Z  {id}  debug/node-debugger-x/debugger  pid 42  sh  host net,pid"
            )
        );
        assert_eq!(
            line(&rec(Names::default())),
            format!("2023-11-14T22:13:20.250Z  {id}  pid 42  sh  host net,pid")
        );
    }

    #[test]
    fn a_json_line_carries_the_labels_of_the_metrics() {
        let r = rec(Names {
            namespace: "debug".into(),
            pod: "node-debugger-x".into(),
            container: String::new(),
        });
        let v: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&JsonLine::new(&r)).unwrap()).unwrap();
        assert_eq!(
            v["container_id"],
            format!("containerd://{}", "ab".repeat(32)).as_str()
        );
        assert_eq!(v["uid"], "0b7e6c1a-1111-2222-3333-444455556666");
        assert_eq!(v["runtime"], "containerd");
        assert_eq!(v["namespace"], "debug");
        assert_eq!(v["pod"], "node-debugger-x");
        assert_eq!(v["container"], "");
        assert_eq!(v["pid"], 42);
        assert_eq!(v["comm"], "sh");
        assert_eq!(v["host_ns"], serde_json::json!(["net", "pid"]));
        assert_eq!(v["at"], 1_700_000_000.25);
    }
}

//! `nsexporter watch`: a live terminal view of process events. One line per exec of a
//! container process that is in a host namespace (time, container, PID, comm, which
//! host namespaces), or one JSON object per line with `--json`: the report's workflow,
//! as it happens.

use std::io::Write;
use std::process::ExitCode;
use std::time::SystemTime;

use crate::cli::WatchArgs;
use crate::events::ledger::ExecRecord;
use crate::events::{self, Options, ProcEvent};
use crate::model::{HostRef, NsType};
use crate::procfs::fd::Dir;
use crate::scan::{ExecReader, ScanOptions};

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
            let Some(rec) = reader.read(tgid).and_then(|f| record(&host, f.record())) else {
                continue;
            };
            let line = if args.json {
                serde_json::to_string(&rec).unwrap_or_default()
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

/// The exec record of a container process in at least one host namespace.
fn record(host: &HostRef, r: crate::model::ProcRecord) -> Option<ExecRecord> {
    let container = r.container?;
    let host_ns: Vec<NsType> = NsType::ALL
        .into_iter()
        .filter(|t| r.ns.shares(&host.ns, *t))
        .collect();
    (!host_ns.is_empty()).then_some(ExecRecord {
        at: SystemTime::now(),
        container,
        pid: r.pid,
        comm: r.comm,
        host_ns,
        by_event: true,
    })
}

/// `<RFC 3339 time>  <container_id>  pid <pid>  <comm>  host <types>`.
pub fn line(r: &ExecRecord) -> String {
    let types: Vec<&str> = r.host_ns.iter().map(|t| t.name()).collect();
    format!(
        "{}  {}  pid {}  {}  host {}",
        humantime::format_rfc3339_millis(r.at),
        r.container.container_id(),
        r.pid,
        crate::report::style::printable(&r.comm),
        types.join(",")
    )
}

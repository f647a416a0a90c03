//! The exporter against a hostile /proc (tests/fixtures/hostile-proc, made by
//! make-hostile-proc.py, plus files over the 4 MiB cap added to a copy here): comms
//! and cgroup paths with newlines, quotes, `)` and bytes that are not UTF-8; cgroups in
//! a user's delegated subtree named after another container or pod; a cgroup file that
//! smuggles a second line; garbage ns links, a 341-line uid_map, missing and huge files;
//! a leader that exited leaving threads whose links cannot be read (issue 12).
//!
//! What must hold: promtool accepts the output, every label value is clean UTF-8, and
//! nothing a workload controls forges or merges into another container's series or
//! hides a process from the counts.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// sha256 of the names in make-hostile-proc.py.
const VICTIM: &str = "1bdd5b5b92e2d9f30a3b223bb359551d0da20e3702923e5f7b0a73889eba3d21";
const QUOTED: &str = "b3a2bd470cb2c4f99e2421d9fa793a89f1b537b6a2447810c431b5a04e141529";
const ROOTLESS: &str = "12b961af5feb3e9d39f93b2cefb9a1a944f18d02cca0cac2f04f5a982240605f";
const FORGED: &str = "ccdd35168ab474fa5764a526cfb83621351e23682c5075b2e18d56bddf96aa30";
const BIGCGROUP: &str = "e7d62a0a5f187af2c6aec47bbcd3e91cf03a89e4c95dc6bfe995a0f654d9f67a";
const BIGMAP: &str = "46a55da64350a24bd9dcf47d432ea6c21a7c73f277991e8f39c5b2313b0f3e92";
const LONGMAP: &str = "1d4f1c73e2a6c04854808b3174b4357439d6407a25b046066df73026fe85d27d";
const VICTIM_POD: &str = "26ab26cd-6409-443f-a13c-fd6c231207c8";

/// Just over the scanner's cap (procfs::fd::MAX_FILE, 4 MiB).
const HUGE: usize = (4 << 20) + 4096;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile-proc")
}

/// A copy of the fixture (symlinks kept) with the huge files added: PID 25's stat,
/// PID 26's cgroup, PID 27's uid_map and PID 1's mountinfo. Removed on drop.
fn hostile_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let st = Command::new("cp")
        .arg("-a")
        .arg(fixture())
        .arg(dir.path().join("proc"))
        .status()
        .expect("cp");
    assert!(st.success());
    let p = |rel: &str| dir.path().join("proc").join(rel);
    let mut stat = b"25 (bigstat) S 1 25 25 0 -1 4194560 ".to_vec();
    stat.resize(HUGE, b'7');
    std::fs::write(p("25/stat"), stat).unwrap();
    let mut cg = format!("0::/system.slice/docker-{BIGCGROUP}.scope\n").into_bytes();
    while cg.len() < HUGE {
        cg.extend_from_slice(format!("{}:pids:/\n", cg.len()).as_bytes());
    }
    std::fs::write(p("26/cgroup"), cg).unwrap();
    std::fs::write(p("27/uid_map"), "0 100000 65536\n".repeat(HUGE / 15 + 1)).unwrap();
    let mut mi = std::fs::read(p("1/mountinfo")).unwrap();
    let line = b"631 25 0:4 net:[4026539999] /run/netns/x rw - nsfs nsfs rw\n";
    while mi.len() < HUGE {
        mi.extend_from_slice(line);
    }
    std::fs::write(p("1/mountinfo"), mi).unwrap();
    dir
}

fn procfs(dir: &Path) -> String {
    dir.join("proc").display().to_string()
}

/// Every check on one exposition (Prometheus text format).
fn check_exposition(text: &str) {
    let (ok, out) = promtool_check_metrics(text);
    assert!(
        ok,
        "promtool check metrics rejected the output:\n{out}\n{text}"
    );
    let s = parse_exposition(text);

    // Every label value is UTF-8 (it is a String) without control characters.
    for x in &s {
        for (k, v) in &x.labels {
            assert!(
                !v.chars().any(char::is_control),
                "{}{{{k}={v:?}}} holds a control character",
                x.name
            );
        }
    }

    // The hostile comm is escaped, not interpreted: `\n` and `\t` become `?`, bytes that
    // are not UTF-8 become U+FFFD, quote and backslash survive the round trip.
    let quoted = format!("docker://{QUOTED}");
    let info = find(
        &s,
        "nsexporter_container_info",
        &[("container_id", &quoted)],
    );
    assert_eq!(info.len(), 1, "{text}");
    assert_eq!(info[0].labels["comm"], "a) b?\"\\{x=?,}\u{fffd}\u{fffd}(");

    // The victim: its own series only, with its own process count.
    let victim = format!("docker://{VICTIM}");
    assert_eq!(
        value(
            &s,
            "nsexporter_container_host_root_processes",
            &[("container_id", &victim)]
        ),
        Some(1.0),
        "the victim's host-root count was changed by another process"
    );
    assert_eq!(
        find(
            &s,
            "nsexporter_container_info",
            &[("container_id", &victim)]
        )[0]
        .labels["comm"],
        "victim"
    );
    // Neither the impostor (12) nor the smugglers (16, 17) put the victim on the host
    // network.
    assert!(
        find(
            &s,
            "nsexporter_container_host_namespace",
            &[("container_id", &victim), ("type", "net")]
        )
        .is_empty(),
        "a forged cgroup made the victim look like a host-network container"
    );
    // The impostor is reported, under its own, marked identity.
    let impostor = format!("docker://user-1000/{VICTIM}");
    assert_eq!(
        value(
            &s,
            "nsexporter_container_host_namespace",
            &[("container_id", &impostor), ("type", "net")]
        ),
        Some(1.0)
    );
    // A forged pod UID never appears; the forged container is marked.
    assert!(
        s.iter()
            .all(|x| x.labels.get("uid").map(String::as_str) != Some(VICTIM_POD)),
        "a user subtree claimed a real pod's UID"
    );
    let forged = format!("containerd://user-1000/{FORGED}");
    assert!(!find(
        &s,
        "nsexporter_container_info",
        &[("container_id", &forged)]
    )
    .is_empty());
    assert!(!text.contains(&format!("containerd://{FORGED}")));
    // The legitimate rootless container is attributed (marked) too.
    let rootless = format!("podman://user-1000/{ROOTLESS}");
    assert!(!find(
        &s,
        "nsexporter_container_info",
        &[("container_id", &rootless)]
    )
    .is_empty());

    // Container IDs are only what the paths carried, in the expected shape.
    let ids: BTreeSet<&str> = s
        .iter()
        .filter_map(|x| x.labels.get("container_id").map(String::as_str))
        .collect();
    for id in &ids {
        let (_, rest) = id.split_once("://").expect("scheme");
        let hex = rest.strip_prefix("user-1000/").unwrap_or(rest);
        assert!(
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
    }

    // Processes are never hidden by their cgroup file: the smugglers (16, 17), the odd
    // path (15), the garbage cgroup (24) and the huge cgroup (26) are all counted, on
    // the host network, unattributed. Not counted: the kernel thread, the garbage ns
    // links (20), the missing status (22), no Uid line (23), the huge stat (25).
    // 1 10 11 12 13 14 15 16 17 21 24 26 27 = 13.
    assert_eq!(value(&s, "nsexporter_processes", &[]), Some(13.0), "{text}");
    // On the host network: all of those but 11 and 21 = 11.
    assert_eq!(
        value(
            &s,
            "nsexporter_host_namespace_processes",
            &[("type", "net")]
        ),
        Some(11.0)
    );
    // The huge cgroup file's container is not invented from a file it could not read.
    assert!(!text.contains(BIGCGROUP));
    // A huge or over-long uid_map loses the map, not the container.
    assert!(text.contains(BIGMAP) || text.contains(LONGMAP));

    // Errors are counted, none fails the scan.
    let err = |r: &str| value(&s, "nsexporter_scan_errors_total", &[("reason", r)]).unwrap();
    let scans = value(&s, "nsexporter_scans_total", &[]).unwrap();
    assert_eq!(err("procfs"), 0.0);
    assert_eq!(
        err("vanished"),
        scans,
        "PID 22 (missing files), once a scan"
    );
    // 16, 17, 20, 23, 24 + huge: 25 stat, 26 cgroup, 27 uid_map; 21 uid_map. PID 1's
    // mountinfo of over 4 MiB is no error: it is streamed whole, and its pin counted.
    assert!(
        err("parse") >= 9.0 * scans,
        "parse errors: {}",
        err("parse")
    );
    assert_eq!(
        value(&s, "nsexporter_namespaces_pinned", &[("type", "net")]),
        Some(1.0),
        "the net namespace pinned at the end of the huge mountinfo\n{text}"
    );

    // Limits: only the readable, parseable sysctl.
    assert_eq!(
        value(&s, "nsexporter_namespace_limit", &[("type", "net")]),
        Some(63541.0)
    );
    assert_eq!(find(&s, "nsexporter_namespace_limit", &[]).len(), 1);
}

#[test]
fn once_on_hostile_proc_is_valid_and_unforgeable() {
    let dir = hostile_tree();
    let text = once(&["--path.procfs", &procfs(dir.path())]);
    check_exposition(&text);
}

#[test]
fn server_on_hostile_proc_is_valid_in_both_formats_and_ready() {
    let dir = hostile_tree();
    let p = procfs(dir.path());
    let exporter = Exporter::start(&["--path.procfs", &p, "--scan.interval", "200ms"]);
    exporter.wait_ready();
    // Several scans over the same hostile tree: the output stays the same and valid.
    let first = exporter.scrape_until(std::time::Duration::from_secs(10), "3 scans", |s| {
        value(s, "nsexporter_scans_total", &[]).unwrap_or(0.0) >= 3.0
    });
    assert!(!first.is_empty());
    let r = exporter.get("/metrics");
    assert_eq!(r.status, 200);
    check_exposition(&r.body);
    let om = http_get(
        exporter.addr,
        "/metrics",
        &[("Accept", "application/openmetrics-text;version=1.0.0")],
    );
    assert_eq!(om.status, 200);
    assert!(om.body.ends_with("# EOF\n"));
    let a: Vec<_> = parse_exposition(&r.body)
        .into_iter()
        .filter(|x| {
            !x.name.starts_with("nsexporter_last_scan") && !x.name.starts_with("nsexporter_scan")
        })
        .map(|x| (x.name, x.labels))
        .collect();
    let b: Vec<_> = parse_exposition(om.body.trim_end_matches("# EOF\n"))
        .into_iter()
        .filter(|x| {
            !x.name.starts_with("nsexporter_last_scan") && !x.name.starts_with("nsexporter_scan")
        })
        .map(|x| (x.name, x.labels))
        .collect();
    assert_eq!(a, b);
    assert_eq!(exporter.get("/readyz").status, 200);
}

#[test]
fn the_checked_in_tree_alone_is_valid_too() {
    // Without the huge files (e.g. someone runs the binary on the fixture by hand).
    let text = once(&["--path.procfs", &fixture().display().to_string()]);
    let (ok, out) = promtool_check_metrics(&text);
    assert!(ok, "{out}");
    let s = parse_exposition(&text);
    // 25 now reads fine: 14 processes.
    assert_eq!(value(&s, "nsexporter_processes", &[]), Some(14.0));
    assert!(text.contains(&format!("docker://{BIGCGROUP}")));
}

/// A process whose leader exited (a zombie keeps the PID; its links but `user` and
/// `pid` are gone) and whose other threads cannot be read either: an error counted,
/// never a process taken to be outside the host's namespaces. Once a thread can be
/// read, it stands for the process and shows its sharing again.
#[test]
fn an_exited_leader_with_no_readable_thread_is_counted_not_taken_for_private() {
    use nsexporter::model::NsType;
    use nsexporter::procfs::paths::HostPaths;
    use nsexporter::scan::{ScanOptions, Scanner};
    let tmp = tempfile::tempdir().unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(fixture_proc())
        .arg(tmp.path())
        .status()
        .expect("cp");
    assert!(st.success());
    let procfs = tmp.path().join("proc");
    let scan = || {
        Scanner::new(ScanOptions {
            paths: HostPaths::new(&procfs),
            ..ScanOptions::default()
        })
        .scan()
        .expect("scan")
    };
    let base = scan();
    // A one-process container in the host's network namespace.
    let (id, c) = base
        .containers
        .iter()
        .find(|(_, c)| c.processes == 1 && c.shares(NsType::Net))
        .expect("the fixture has a one-process container in the host network namespace");
    let pid = c.main_pid;
    let dir = procfs.join(pid.to_string());
    // The thread that runs on: a copy of the process as it was, under task/.
    let thread = dir.join(format!("task/{}", pid + 1));
    std::fs::create_dir_all(dir.join(format!("task/{pid}"))).unwrap();
    std::fs::create_dir_all(&thread).unwrap();
    for f in std::fs::read_dir(&dir).unwrap().flatten() {
        if f.file_name() != "task" {
            let st = Command::new("cp")
                .arg("-a")
                .arg(f.path())
                .arg(&thread)
                .status()
                .expect("cp");
            assert!(st.success());
        }
    }
    // The leader exits with `pthread_exit`: a zombie of two threads, whose links but
    // user and pid are gone. So are the thread's (it cannot be read either).
    let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
    let (head, tail) = stat.rsplit_once(") ").expect("stat");
    let mut fields: Vec<&str> = tail.split(' ').collect();
    fields[0] = "Z"; // field 3, the state
    fields[17] = "2"; // field 20, the thread count
    std::fs::write(dir.join("stat"), format!("{head}) {}", fields.join(" "))).unwrap();
    let gone = ["cgroup", "ipc", "mnt", "net", "uts", "time"];
    for ns in [dir.join("ns"), thread.join("ns")] {
        for t in gone {
            let _ = std::fs::remove_file(ns.join(t));
        }
    }
    let hidden = scan();
    assert!(
        !hidden.containers.contains_key(id),
        "a process read without its network link was taken for one outside the host's: {:?}",
        hidden.containers.get(id)
    );
    assert_eq!(
        hidden.errors.vanished,
        base.errors.vanished + 1,
        "the unreadable process is counted"
    );
    // The thread can be read again: it stands for the process.
    std::fs::remove_dir_all(thread.join("ns")).unwrap();
    let st = Command::new("cp")
        .arg("-a")
        .arg(fixture_proc().join(format!("{pid}/ns")))
        .arg(&thread)
        .status()
        .expect("cp");
    assert!(st.success());
    let back = scan();
    let c = back
        .containers
        .get(id)
        .unwrap_or_else(|| panic!("{id:?} is back through its thread"));
    assert!(c.shares(NsType::Net), "{c:?}");
    assert_eq!(back.errors.vanished, base.errors.vanished);
}

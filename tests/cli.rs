//! The terminal commands (`report`, `inspect`, `diff`) run as the real binary: against
//! real namespaces in kubelet-shaped cgroups (the shared lab, needs root), and against
//! the fixture /proc tree, whose human output is pinned by snapshot files under
//! `tests/snapshots/` (`UPDATE_GOLDEN=1` rewrites them).
//!
//! Why one file of about 760 lines: every test here drives the same binary's three
//! commands, and the lab tests share one kubelet-shaped node (`node()`, `join`) and the
//! terminal helpers (`on_tty`, `inspect_state`); split by command, each file would
//! need them all again.

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const TYPES: [&str; 8] = ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .expect("run nsexporter")
}

/// Run and require exit 0 with nothing on stderr; stdout as text.
fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "nsexporter {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "nsexporter {args:?} wrote to stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn json(args: &[&str]) -> Value {
    let text = ok(args);
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("nsexporter {args:?} is not JSON: {e}\n{text}"));
    assert_eq!(v["schema_version"], 1, "{args:?}");
    v
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

/// The row of the human report whose CONTAINER column is `id`'s short form, split into
/// (runtime, pod, short id, comm, pid, shared types, root text).
#[derive(Debug)]
struct Row {
    runtime: String,
    pod: String,
    comm: String,
    pid: u32,
    shared: Vec<String>,
    root: String,
}

fn row(report: &str, id: &str) -> Option<Row> {
    let short = &id[..12];
    let line = report
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some(short))?;
    let toks: Vec<&str> = line.split_whitespace().collect();
    let rest = &toks[5..];
    let n_shared = rest
        .iter()
        .take_while(|t| **t == "-" || TYPES.contains(&t.split('(').next().unwrap()))
        .count();
    Some(Row {
        runtime: toks[0].to_string(),
        pod: toks[1].to_string(),
        comm: toks[3].to_string(),
        pid: toks[4].parse().expect("PID column"),
        shared: rest[..n_shared]
            .iter()
            .filter(|t| **t != "-")
            .map(|t| t.to_string())
            .collect(),
        // The last column is NAME, one word.
        root: rest[n_shared..rest.len() - 1].join(" "),
    })
}

/// The `nsenter` line of `inspect`, if any.
fn nsenter_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with("nsenter -t "))
        .map(str::to_string)
}

/// The state column (`shared`, `private`) of `inspect`'s row for `ty`.
fn inspect_state(text: &str, ty: &str) -> String {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(ty) && l.split_whitespace().count() == 4)
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_else(|| panic!("no {ty} row in:\n{text}"))
        .to_string()
}

// ---------------------------------------------------------------------------------
// The lab

const PRIVATE: &[&str] = &["--pid", "--fork", "--mount", "--uts", "--ipc", "--net"];

/// The shapes these tests need, in one lab.
struct Node {
    /// hostNetwork-like: private pid, ipc, uts, mnt; the host's net. Host root.
    hostnet: Member,
    /// Every kernel-made namespace private except cgroup, time, user; runs as host root.
    private_root: Member,
    /// Like `private_root` but runs as UID 65534: nothing to show by default.
    private_user: Member,
    /// Its own user namespace mapped `0 100000 65536`, root inside.
    remapped: Member,
    /// A second process in `private_root`'s namespaces and cgroups.
    second: Extra,
    /// `ip netns add` name.
    pin: String,
    // Dropped last: the lab removes its cgroups only once `second` has been stopped.
    _lab: Lab,
}

/// A process started with `nsenter` into a lab container and moved into its cgroups;
/// killed by PID on drop (before the lab removes the cgroups).
struct Extra {
    pid: u32,
    nsenter: Child,
}

impl Drop for Extra {
    fn drop(&mut self) {
        // The forked child first, by PID, so nsenter reaps it; then nsenter itself.
        let _ = Command::new("kill")
            .args(["-9", &self.pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let _ = self.nsenter.kill();
        let _ = self.nsenter.wait();
    }
}

/// Start `sleep 600` in every namespace of `target` but user (shared anyway) and put
/// it in the same cgroups, read from the target's own cgroup file.
fn join(target: u32) -> Extra {
    let mut nsenter = Command::new("nsenter")
        .args(["-t", &target.to_string(), "-n", "-p", "-i", "-u", "-m"])
        .args(["sleep", "600"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nsenter");
    let np = nsenter.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        let kids =
            std::fs::read_to_string(format!("/proc/{np}/task/{np}/children")).unwrap_or_default();
        if let Some(p) = kids.split_whitespace().next().and_then(|c| c.parse().ok()) {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            if comm.trim() == "sleep" {
                break p;
            }
        }
        if Instant::now() > deadline {
            let _ = nsenter.kill();
            let _ = nsenter.wait();
            panic!("nsenter never started sleep");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let extra = Extra { pid, nsenter };
    let cgroups = std::fs::read_to_string(format!("/proc/{target}/cgroup")).unwrap();
    for line in cgroups.lines() {
        let mut f = line.splitn(3, ':');
        let (id, ctrl, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let layout = cgroup_layout();
        let root = match (id, ctrl) {
            ("0", "") => layout.v2.clone(),
            (_, c) => match layout.v1_root(c) {
                Some(r) => r.to_string(),
                None => continue,
            },
        };
        std::fs::write(format!("{root}{path}/cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("join {root}{path}: {e}"));
    }
    extra
}

fn node() -> Node {
    let mut lab = Lab::new();
    let hostnet = lab.kube_systemd(
        "besteffort",
        "cri-containerd",
        &["--pid", "--fork", "--mount", "--uts", "--ipc"],
    );
    let private_root = lab.kube_systemd("besteffort", "cri-containerd", PRIVATE);
    let mut user_flags = PRIVATE.to_vec();
    user_flags.extend(["--setuid", "65534", "--setgid", "65534"]);
    let private_user = lab.kube_systemd("burstable", "cri-containerd", &user_flags);
    let rp = lab.unshare_remapped_root(100000, PRIVATE);
    let remapped = lab.crio(rp);
    let pin = lab.netns_pin();
    let second = join(private_root.pid);
    Node {
        hostnet,
        private_root,
        private_user,
        remapped,
        second,
        pin,
        _lab: lab,
    }
}

// ---------------------------------------------------------------------------------
// report

#[test]
fn report_lists_host_sharing_and_host_root_containers_then_counts_and_pins() {
    require_root("the lab");
    let n = node();
    let text = ok(&["report", "--no-color"]);
    assert!(!text.contains('\x1b'), "escape codes with --no-color");

    let hn = row(&text, &n.hostnet.id).unwrap_or_else(|| panic!("no hostnet row:\n{text}"));
    assert_eq!(hn.runtime, "containerd");
    assert_eq!(hn.pod, n.hostnet.pod_uid);
    assert_eq!(hn.comm, "sleep");
    assert_eq!(hn.pid, n.hostnet.pid);
    assert!(hn.shared.contains(&"net".to_string()), "{hn:?}");
    for t in ["pid", "ipc", "uts", "mnt"] {
        assert!(!hn.shared.contains(&t.to_string()), "{t} in {hn:?}");
    }
    assert_eq!(hn.root, "host root");

    // Private but host root: listed, sharing only what every container shares.
    let pr = row(&text, &n.private_root.id).unwrap_or_else(|| panic!("no private row:\n{text}"));
    assert_eq!(pr.shared, ["cgroup", "time", "user"], "{pr:?}");
    assert_eq!(pr.root, "host root");
    // Two processes, both counted: the main one is the oldest.
    assert_eq!(pr.pid, n.private_root.pid);

    // Neither sharing an exposing type nor host root: only with --all.
    assert!(row(&text, &n.private_user.id).is_none(), "{text}");
    assert!(row(&text, &n.remapped.id).is_none(), "{text}");
    let header = text.lines().next().unwrap();
    assert!(header.starts_with("CONTAINERS: "), "{header}");
    assert!(header.contains("--all shows every one"), "{header}");

    let all = ok(&["report", "--no-color", "--all"]);
    let pu = row(&all, &n.private_user.id).unwrap_or_else(|| panic!("no row:\n{all}"));
    assert_eq!(pu.shared, ["cgroup", "time", "user"]);
    assert_eq!(pu.root, "non-root");
    let rm = row(&all, &n.remapped.id).unwrap_or_else(|| panic!("no row:\n{all}"));
    assert_eq!(rm.runtime, "cri-o");
    assert_eq!(rm.shared, ["cgroup", "time"], "own user namespace: {rm:?}");
    assert_eq!(rm.root, "0 -> 100000");

    // Counts per type against the limits, then the pin with its mount path.
    let counts: Vec<&str> = all
        .lines()
        .skip_while(|l| !l.starts_with("NAMESPACES: "))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(
        counts[0].split_whitespace().collect::<Vec<_>>(),
        ["TYPE", "TOTAL", "PINNED", "LIMIT", "USED"]
    );
    let net: Vec<&str> = counts
        .iter()
        .find(|l| l.starts_with("net "))
        .expect("net count row")
        .split_whitespace()
        .collect();
    let limit = std::fs::read_to_string("/proc/sys/user/max_net_namespaces").unwrap();
    assert_eq!(net[3], limit.trim());
    assert!(net[1].parse::<u64>().unwrap() >= 3, "{net:?}"); // host, private_root, pin
    assert!(net[2].parse::<u64>().unwrap() >= 1, "{net:?}");
    let pin_line = all
        .lines()
        .skip_while(|l| !l.starts_with("PINNED: "))
        .find(|l| l.contains(&format!("/run/netns/{}", n.pin)))
        .unwrap_or_else(|| panic!("pin not listed:\n{all}"));
    assert!(pin_line.starts_with("net "), "{pin_line}");
    drop(n);
}

#[test]
fn report_json_has_the_documented_fields() {
    require_root("the lab");
    let n = node();
    let v = json(&["report", "--json"]);
    assert_eq!(v["command"], "report");
    assert_eq!(v["all"], false);
    let find = |v: &Value, id: &str| -> Option<Value> {
        v["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .cloned()
    };
    let hn = find(&v, &n.hostnet.id).expect("hostnet listed");
    assert_eq!(hn["runtime"], "containerd");
    assert_eq!(hn["container_id"], n.hostnet.container_id("containerd"));
    assert_eq!(hn["pod_uid"], n.hostnet.pod_uid);
    assert_eq!(hn["main_pid"], n.hostnet.pid);
    assert_eq!(hn["comm"], "sleep");
    assert_eq!(hn["processes"], 1);
    assert_eq!(
        strs(&hn["shared_host_namespaces"]),
        ["cgroup", "net", "time", "user"]
    );
    assert_eq!(hn["host_namespace_processes"]["net"], 1);
    assert!(hn["host_namespace_processes"].get("pid").is_none());
    assert_eq!(hn["root"]["kind"], "host_root");
    assert_eq!(hn["root_text"], "host root");
    assert_eq!(hn["host_root_processes"], 1);
    assert_eq!(hn["shown_by_default"], true);
    assert_eq!(
        hn["namespaces"]["net"], v["host_reference"]["namespaces"]["net"],
        "hostnet's net is the host's"
    );
    assert_ne!(
        hn["namespaces"]["pid"],
        v["host_reference"]["namespaces"]["pid"]
    );
    let pr = find(&v, &n.private_root.id).expect("private_root listed");
    assert_eq!(pr["processes"], 2, "the nsenter'd second process counts");
    assert!(find(&v, &n.private_user.id).is_none());
    assert!(find(&v, &n.remapped.id).is_none());
    assert!(v["containers_total"].as_u64().unwrap() >= 4);

    let all = json(&["report", "--json", "--all"]);
    assert_eq!(all["all"], true);
    let rm = find(&all, &n.remapped.id).expect("remapped listed with --all");
    assert_eq!(rm["runtime"], "cri-o");
    assert_eq!(rm["container_id"], n.remapped.container_id("cri-o"));
    assert_eq!(rm["root"]["kind"], "remapped");
    assert_eq!(rm["root"]["host_uid"], 100000);
    assert_eq!(rm["root_text"], "0 -> 100000");
    assert_eq!(rm["host_root_processes"], 0);
    assert_eq!(
        rm["uid_map"],
        serde_json::json!([{"inside": 0, "outside": 100000, "length": 65536}])
    );
    assert_eq!(strs(&rm["shared_host_namespaces"]), ["cgroup", "time"]);
    assert_eq!(rm["shown_by_default"], false);
    let pu = find(&all, &n.private_user.id).expect("private_user listed with --all");
    assert_eq!(pu["root"]["kind"], "non_root");
    assert_eq!(pu["shown_by_default"], false);

    let net = all["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "net")
        .expect("net counts");
    assert!(net["total"].as_u64().unwrap() >= 3);
    assert!(net["pinned"].as_u64().unwrap() >= 1);
    assert!(net["limit"].as_u64().is_some());
    let mp = format!("/run/netns/{}", n.pin);
    let pin = all["pinned"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| strs(&p["mount_points"]).contains(&mp))
        .unwrap_or_else(|| panic!("{mp} not in {}", all["pinned"]));
    assert_eq!(pin["type"], "net");
    assert!(pin["inode"].as_u64().unwrap() > 0);
    drop(n);
}

// ---------------------------------------------------------------------------------
// inspect

#[test]
fn inspect_marks_each_type_and_enters_only_what_differs() {
    require_root("the lab");
    let n = node();
    let pid = n.private_root.pid.to_string();
    let text = ok(&["inspect", &pid, "--no-color"]);
    for t in ["ipc", "mnt", "net", "pid", "uts"] {
        assert_eq!(inspect_state(&text, t), "private", "{t}:\n{text}");
    }
    for t in ["cgroup", "time", "user"] {
        assert_eq!(inspect_state(&text, t), "shared", "{t}:\n{text}");
    }
    assert!(
        text.contains(&n.private_root.container_id("containerd")),
        "{text}"
    );
    assert!(text.contains(&n.private_root.pod_uid), "{text}");
    assert!(text.contains("UID_MAP    0 0 4294967295"), "{text}");
    assert!(text.contains("ROOT       host root"), "{text}");
    assert_eq!(
        nsenter_line(&text).as_deref(),
        Some(format!("nsenter -t {pid} -n -p -i -u -m").as_str()),
        "{text}"
    );

    // hostNetwork-like: everything but net.
    let pid = n.hostnet.pid.to_string();
    let text = ok(&["inspect", &pid, "--no-color"]);
    assert_eq!(inspect_state(&text, "net"), "shared");
    assert_eq!(
        nsenter_line(&text).as_deref(),
        Some(format!("nsenter -t {pid} -p -i -u -m").as_str()),
        "{text}"
    );

    // Own user namespace: -U too, and the remapped root.
    let pid = n.remapped.pid.to_string();
    let text = ok(&["inspect", &pid, "--no-color"]);
    assert_eq!(inspect_state(&text, "user"), "private");
    assert!(text.contains("ROOT       0 -> 100000"), "{text}");
    assert!(text.contains("UID_MAP    0 100000 65536"), "{text}");
    assert_eq!(
        nsenter_line(&text).as_deref(),
        Some(format!("nsenter -t {pid} -n -p -i -u -m -U").as_str()),
        "{text}"
    );
    let v = json(&["inspect", &pid, "--json"]);
    assert_eq!(v["command"], "inspect");
    assert_eq!(v["host_root"], false);
    assert_eq!(v["process"]["pid"], n.remapped.pid);
    assert_eq!(v["process"]["comm"], "sleep");
    assert_eq!(v["process"]["host_euid"], 100000);
    assert_eq!(v["process"]["root"]["kind"], "remapped");
    assert_eq!(
        v["process"]["container"]["container_id"],
        n.remapped.container_id("cri-o")
    );
    assert_eq!(v["process"]["container"]["pod_uid"], n.remapped.pod_uid);
    assert_eq!(
        strs(&v["private"]),
        ["net", "pid", "ipc", "uts", "mnt", "user"]
    );
    assert_eq!(
        strs(&v["nsenter"]),
        ["nsenter", "-t", &pid, "-n", "-p", "-i", "-u", "-m", "-U"]
    );
    let states: Vec<(String, String)> = v["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["type"].as_str().unwrap().into(),
                t["state"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        states.contains(&("time".into(), "shared".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&("user".into(), "private".into())),
        "{states:?}"
    );

    // This test's own process is in every host namespace: nothing to enter.
    let me = std::process::id().to_string();
    let text = ok(&["inspect", &me, "--no-color"]);
    assert!(nsenter_line(&text).is_none(), "{text}");
    assert!(text.contains("Every namespace is the host's"), "{text}");
    assert!(text.contains("CONTAINER  none: a host process"), "{text}");
    let v = json(&["inspect", &me, "--json"]);
    assert!(v["nsenter"].is_null());
    assert_eq!(v["private"], serde_json::json!([]));
    assert!(v["process"]["container"].is_null());
    drop(n);
}

// ---------------------------------------------------------------------------------
// diff

#[test]
fn diff_same_container_is_same_everywhere_and_hostnet_differs_in_net() {
    require_root("the lab");
    let n = node();
    let a = n.private_root.pid.to_string();
    let b = n.second.pid.to_string();
    let text = ok(&["diff", &a, &b, "--no-color"]);
    assert!(
        text.contains("both processes are in the same container"),
        "{text}"
    );
    assert!(
        text.contains("same network namespace (same pod network)"),
        "{text}"
    );
    assert!(text.contains("same mount namespace"), "{text}");
    assert!(!text.contains("different"), "{text}");
    let v = json(&["diff", &a, &b, "--json"]);
    assert_eq!(v["command"], "diff");
    assert_eq!(v["same_container"], true);
    assert_eq!(strs(&v["same"]), TYPES);
    assert_eq!(v["different"], serde_json::json!([]));
    assert_eq!(v["a"]["pid"], n.private_root.pid);
    assert_eq!(v["b"]["pid"], n.second.pid);

    let h = n.hostnet.pid.to_string();
    let text = ok(&["diff", &h, &a, "--no-color"]);
    assert!(text.contains("different network namespaces"), "{text}");
    assert!(
        text.contains("different mount namespaces (the one does not see the other's files unless through shared volumes)"),
        "{text}"
    );
    let net_row = text
        .lines()
        .find(|l| l.starts_with("net "))
        .expect("net row");
    assert!(net_row.ends_with("different"), "{net_row}");
    let time_row = text
        .lines()
        .find(|l| l.starts_with("time "))
        .expect("time row");
    assert!(time_row.ends_with("same (host)"), "{time_row}");
    let v = json(&["diff", &h, &a, "--json"]);
    assert_eq!(v["same_container"], false);
    assert_eq!(v["same_pod"], false);
    assert_eq!(strs(&v["different"]), ["ipc", "mnt", "net", "pid", "uts"]);
    assert_eq!(strs(&v["same"]), ["cgroup", "time", "user"]);
    let net = v["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "net")
        .unwrap();
    assert_eq!(net["verdict"], "different");
    assert_eq!(
        net["a"],
        json(&["inspect", &h, "--json"])["host_reference"]["namespaces"]["net"]
    );
    drop(n);
}

// ---------------------------------------------------------------------------------
// Errors

fn assert_one_line_error(args: &[&str], want: &str) {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("nsexporter: "), "{args:?}: {stderr}");
    assert!(stderr.contains(want), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}");
}

#[test]
fn bad_or_missing_pids_give_one_line_and_a_nonzero_exit() {
    let fixture = fixture_proc().display().to_string();
    // PID_MAX_LIMIT: no PID is ever this large.
    assert_one_line_error(&["inspect", "4194304"], "no process 4194304");
    assert_one_line_error(&["inspect", "abc"], "\"abc\" is not a PID");
    assert_one_line_error(&["inspect", "0"], "\"0\" is not a PID");
    assert_one_line_error(&["inspect", "-5"], "is not a PID");
    assert_one_line_error(&["inspect", "4194304", "--json"], "no process 4194304");
    assert_one_line_error(&["diff", "abc", "1"], "\"abc\" is not a PID");
    assert_one_line_error(&["diff", "1", "12x"], "\"12x\" is not a PID");
    assert_one_line_error(&["diff", "4194304", "4194305"], "no process 4194304");
    // Kernel threads and processes that vanished leaving only stat, in the fixture.
    assert_one_line_error(
        &["--path.procfs", &fixture, "inspect", "2"],
        "kernel thread",
    );
    assert_one_line_error(
        &["inspect", "700", "--path.procfs", &fixture],
        "no process 700",
    );
    assert_one_line_error(
        &["inspect", "999", "--path.procfs", &fixture],
        "no process 999",
    );
    // A procfs that is not there.
    assert_one_line_error(
        &["report", "--path.procfs", "/nonexistent/proc"],
        "cannot read the host procfs at /nonexistent/proc",
    );
    assert_one_line_error(
        &["inspect", "1", "--path.procfs", "/nonexistent/proc"],
        "/nonexistent/proc",
    );
}

#[test]
fn pid1_refusing_root_is_explained_as_such() {
    require_root("only root meets PID 1's refusal");
    // Whether this host's kernel refuses root PID 1's links (ours does; many do not).
    let refused = match std::fs::read_link("/proc/1/ns/net") {
        Ok(_) => false,
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => true,
        Err(e) => panic!("readlink /proc/1/ns/net: {e}"),
    };
    if !refused {
        eprintln!("PID 1 is readable by root on this host: inspect 1 must simply work");
        assert!(ok(&["inspect", "1", "--no-color"]).contains("PROCESS    1 "));
        return;
    }
    let me = std::process::id().to_string();
    let inspect = run(&["inspect", "1"]);
    let diff = run(&["diff", "1", &me]);
    let diff_back = run(&["diff", &me, "1"]);
    for (what, out, advice) in [
        (
            "inspect 1",
            &inspect,
            "`nsexporter inspect <pid>`".to_owned(),
        ),
        ("diff 1 <pid>", &diff, format!("`nsexporter inspect {me}`")),
        (
            "diff <pid> 1",
            &diff_back,
            format!("`nsexporter inspect {me}`"),
        ),
    ] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(err.contains("refused even to root"), "{what}: {err}");
        assert!(err.contains("kthreadd (PID 2)"), "{what}: {err}");
        assert!(err.contains(&advice), "{what}: no {advice}: {err}");
        assert!(
            !err.contains("needs root or CAP_SYS_PTRACE"),
            "{what}: {err}"
        );
    }
    // What it advises works: inspect of this process, whose HOST column is kthreadd's.
    let text = ok(&["inspect", &me, "--no-color"]);
    assert!(text.contains("namespaces of a kernel thread"), "{text}");
    let link = std::fs::read_link("/proc/2/ns/net").unwrap();
    let kthreadd_net = link
        .to_string_lossy()
        .trim_start_matches("net:[")
        .trim_end_matches(']')
        .to_owned();
    let net_row = text
        .lines()
        .find(|l| l.starts_with("net "))
        .expect("a net row");
    assert!(
        net_row.contains(&kthreadd_net),
        "{net_row} vs kthreadd's {kthreadd_net}"
    );
    // The report tells PID 1 apart from processes that need privileges.
    let report = ok(&["report", "--no-color"]);
    assert!(
        report.contains("PID 1 is not counted either: this host's kernel refuses its namespace links even to root")
            && report.contains("`readlink /proc/2/ns/*` shows them"),
        "{report}"
    );
    // And the command it gives does show them.
    let shown = Command::new("sh")
        .args(["-c", "readlink /proc/2/ns/*"])
        .output()
        .expect("sh");
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(&kthreadd_net),
        "readlink /proc/2/ns/*: {shown:?}"
    );
    // Without privileges, PID 1 is one more process that needs them.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            BIN,
            "inspect",
            "1",
        ])
        .output()
        .expect("run setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs root or CAP_SYS_PTRACE"), "{err}");
}

// ---------------------------------------------------------------------------------
// Colour

/// Run under a pseudo-terminal (util-linux `script`), so stdout is a terminal.
fn on_tty(args: &str, no_color: bool) -> String {
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &format!("{BIN} {args}"), "/dev/null"])
        .env_remove("NO_COLOR")
        .env("TERM", "xterm");
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    let out = cmd.output().expect("run script(1)");
    assert!(out.status.success(), "{args}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let fixture = fixture_proc().display().to_string();
    let args = format!("report --all --path.procfs {fixture}");
    let tty = on_tty(&args, false);
    // Host sharing of net (an exposing type) is red; time/user/cgroup sharing yellow.
    assert!(tty.contains("\x1b[1m\x1b[31mnet\x1b[0m"), "{tty:?}");
    assert!(tty.contains("\x1b[33muser\x1b[0m"), "{tty:?}");
    assert!(tty.contains("\x1b[1m\x1b[31mhost root\x1b[0m"), "{tty:?}");
    assert!(
        !on_tty(&args, true).contains('\x1b'),
        "NO_COLOR=1 still colours"
    );
    assert!(
        !on_tty(&format!("{args} --no-color"), false).contains('\x1b'),
        "--no-color still colours"
    );
    // A pipe is not a terminal.
    let piped = ok(&["report", "--all", "--path.procfs", &fixture]);
    assert!(!piped.contains('\x1b'), "colour into a pipe");
}

// ---------------------------------------------------------------------------------
// Snapshots of the human layout, on the fixture tree

fn snapshot(name: &str, args: &[&str]) {
    let fixture = fixture_proc().display().to_string();
    let rootfs = fixture_rootfs().display().to_string();
    let mut full: Vec<&str> = args.to_vec();
    full.extend(["--path.procfs", &fixture, "--path.rootfs", &rootfs]);
    let got = ok(&full);
    assert_golden(&format!("tests/snapshots/{name}"), &got);
}

#[test]
fn snapshot_report_all_on_fixture() {
    snapshot("report-all.txt", &["report", "--no-color", "--all"]);
}

#[test]
fn snapshot_report_default_on_fixture() {
    snapshot("report.txt", &["report", "--no-color"]);
}

#[test]
fn snapshot_inspect_on_fixture() {
    // hostUsers: false on CRI-O (everything private, remapped root) and a hostNetwork
    // app in the same pod as its pause container.
    snapshot("inspect-300.txt", &["inspect", "300", "--no-color"]);
    snapshot("inspect-201.txt", &["inspect", "201", "--no-color"]);
    // A systemd service with only a private mount namespace.
    snapshot("inspect-120.txt", &["inspect", "120", "--no-color"]);
    // Escapes: a shell entered into the host's net namespace, a process whose second
    // thread is there, and a process whose exited leader's thread stands for it.
    snapshot("inspect-810.txt", &["inspect", "810", "--no-color"]);
    snapshot("inspect-800.txt", &["inspect", "800", "--no-color"]);
    snapshot("inspect-850.txt", &["inspect", "850", "--no-color"]);
}

#[test]
fn snapshot_diff_on_fixture() {
    // Pause and app of one hostNetwork pod; two unrelated containers.
    snapshot("diff-200-201.txt", &["diff", "200", "201", "--no-color"]);
    snapshot("diff-300-500.txt", &["diff", "300", "500", "--no-color"]);
}

#[test]
fn fixture_json_matches_the_fixture() {
    let fixture = fixture_proc().display().to_string();
    let v = json(&["report", "--json", "--all", "--path.procfs", &fixture]);
    assert_eq!(v["host_reference"]["source"], "pid1");
    assert!(
        v["host_reference"]["namespaces"].get("time").is_none(),
        "the fixture kernel has no time namespaces"
    );
    assert_eq!(v["containers_total"], 8);
    assert_eq!(v["processes"], 17);
    // The escaped pod: its app's thread 805 and the shell 810, in the host's net.
    let app = v["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["comm"] == "app")
        .expect("the escaped pod is listed");
    assert_eq!(strs(&app["escaped_host_namespaces"]), ["net"]);
    assert_eq!(app["escaped_processes"]["net"], 2);
    assert_eq!(
        app["host_namespace_processes"]["net"], 1,
        "the leaders' view"
    );
    let escapes: Vec<(u64, u64, String)> = app["escapes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(strs(&e["types"]), ["net"]);
            (
                e["pid"].as_u64().unwrap(),
                e["tid"].as_u64().unwrap(),
                e["comm"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        escapes,
        [
            (800, 805, "worker".to_string()),
            (810, 810, "sh".to_string())
        ]
    );
    let i = json(&["inspect", "810", "--json", "--path.procfs", &fixture]);
    assert_eq!(i["escaped_from"]["container_id"], app["container_id"]);
    assert_eq!(i["escapes"][0]["tid"], 810);
    let i = json(&["inspect", "201", "--json", "--path.procfs", &fixture]);
    assert!(
        i["escaped_from"].is_null(),
        "a hostNetwork pod did not escape"
    );
    assert_eq!(i["escapes"].as_array().map(Vec::len), Some(0));
    let i = json(&["inspect", "850", "--json", "--path.procfs", &fixture]);
    assert_eq!(i["process"]["via_thread"], 851);
    assert_eq!(i["process"]["container"]["runtime"], "docker");
    let pinned: Vec<String> = v["pinned"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| strs(&p["mount_points"]))
        .collect();
    assert!(
        pinned.contains(&"/run/nsx/leaked uts".to_string()),
        "{pinned:?}"
    );
    let d = json(&["diff", "200", "201", "--json", "--path.procfs", &fixture]);
    assert_eq!(d["same_pod"], true);
    assert_eq!(d["same_container"], false);
    assert_eq!(strs(&d["different"]), ["mnt"]);
    let net = d["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "net")
        .unwrap();
    assert_eq!(net["host"], true, "hostNetwork pod: both in the host's net");
}

// ---------------------------------------------------------------------------------
// The README documents the JSON schema

fn keys(v: &Value, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.insert(k.clone());
                keys(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
        _ => {}
    }
}

#[test]
fn every_json_field_is_documented_in_the_readme() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("## At a terminal: report, inspect, diff")
        .expect("README section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let fixture = fixture_proc().display().to_string();
    let mut all = std::collections::BTreeSet::new();
    for args in [
        vec!["report", "--json", "--all"],
        vec!["inspect", "300", "--json"],
        vec!["inspect", "810", "--json"],
        vec!["inspect", "1", "--json"],
        vec!["diff", "200", "201", "--json"],
    ] {
        let mut a = args.clone();
        a.extend(["--path.procfs", &fixture]);
        keys(&json(&a), &mut all);
    }
    let word = |w: &str| {
        section.match_indices(w).any(|(i, _)| {
            let before = section[..i].chars().next_back();
            let after = section[i + w.len()..].chars().next();
            let edge = |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            edge(before) && edge(after)
        })
    };
    let missing: Vec<&String> = all.iter().filter(|k| !word(k)).collect();
    assert!(
        missing.is_empty(),
        "JSON fields not in the README: {missing:?}"
    );
    assert!(all.contains("schema_version") && all.contains("shared_host_namespaces"));
}

//! Namespace escapes (issue 12), on the real kernel: container processes and threads in a
//! host namespace that their container does not share.
//!
//! - The scanner, in the lab's kubelet-shaped cgroups: a second thread that enters the
//!   host's network namespace after its links were first read (and reused while idle) is
//!   caught on the next scan; a process whose leader ended with `pthread_exit` is read
//!   through a live thread, so it hides neither its namespaces nor an escape.
//! - Real Docker containers (images FROM scratch with the host's static busybox and the
//!   static `tests/docker/escape-helper.c`), the exporter and the terminal commands: an
//!   `nsenter` from `docker exec` into the host's network namespace is an escape;
//!   `--network host` and `unshare -n` inside a container are not; a thread in the host
//!   network namespace is caught; a container whose leader exited still shows its
//!   sharing; a Podman pod (infra container and a container joining it) is no escape.
//! - With `--scan.events`, the `nsenter` escape is published without waiting for a scan.
//! - The README's runbook for `NsexporterNamespaceEscape`, run as written.
//! - The alerting sidecar pushes `NsexporterNamespaceEscape` to a real Alertmanager past
//!   an allow-list that allows everything; only `alerts.escape-opt-out` holds one back.
//!
//! Needs root, `prometheus-alertmanager`, a running dockerd (`tests/docker/start-dockerd.sh`), Podman with runc and
//! catatonit, gcc (static glibc) and the host's static `/bin/busybox`. Every container,
//! image, pod and process made here is removed by a Drop guard, also when a test fails.
//!
//! Why one file of about 1200 lines: the scanner, the binary, the terminal commands,
//! the runbook and the sidecar are checked on the same escape helpers and Docker
//! images, built once per run.

mod am;
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{
    find, parse_exposition, rand_hex, require_dockerd, require_root, require_tool, root, value,
    Exporter, Lab, Sample, BIN,
};
use nsexporter::model::{NsType, Snapshot};
use nsexporter::scan::{ScanOptions, Scanner};
use serde_json::Value;

const ESCAPED: &str = "nsexporter_container_escaped_processes";
const SHARING: &str = "nsexporter_container_host_namespace";
const PROCESSES: &str = "nsexporter_container_processes";
const HINT: &str = "tests/run.sh, as root, installs it and starts dockerd (CI does)";

/// Why every test here needs root.
const ROOT: &str =
    "it reads other processes' namespaces, makes namespaces and cgroups, and runs containers";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Wait, up to `secs` seconds, until `f` gives a value.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn link(path: &str) -> Option<String> {
    std::fs::read_link(path)
        .ok()
        .map(|p| p.display().to_string())
}

/// The host's network namespace as a path: PID 1's, or where PID 1 refuses even root
/// (as on our build machines), kthreadd's.
fn host_net() -> String {
    if link("/proc/1/ns/net").is_some() {
        return "/proc/1/ns/net".into();
    }
    let comm = std::fs::read_to_string("/proc/2/comm").unwrap_or_default();
    assert_eq!(comm.trim(), "kthreadd", "no readable host reference");
    "/proc/2/ns/net".into()
}

/// The static helper, built once per test process with gcc.
fn helper() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let src = root().join("tests/docker/escape-helper.c");
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("escape-helper");
        let res = run(Command::new(require_tool("gcc"))
            .args(["-O2", "-Wall", "-static", "-pthread", "-o"])
            .arg(&out)
            .arg(&src));
        assert!(
            res.status.success(),
            "gcc -static -pthread {} failed (apt-get install gcc libc6-dev):\n{}",
            src.display(),
            text(&res.stderr)
        );
        out
    })
}

/// A process this test started; killed and reaped on drop.
struct Proc {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Proc {
    /// Start `cmd` with its stdin and stdout piped to this test.
    fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        let out = BufReader::new(child.stdout.take().unwrap());
        Proc { child, out }
    }

    /// A shell that waits for a line on its stdin (see [`Proc::say`]), then execs
    /// `cmdline` with the same PID: it can be moved into a cgroup first.
    fn launcher(cmdline: &str) -> Proc {
        Proc::spawn(Command::new("sh").args(["-c", &format!("read go; exec {cmdline}")]))
    }

    /// `unshare -n <helper> args...`: the helper in a new network namespace of its own.
    fn helper_in_new_netns(args: &[&str]) -> Proc {
        Proc::spawn(Command::new("unshare").arg("-n").arg(helper()).args(args))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn say(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("write to the helper");
    }

    /// Wait for the helper's "ready" (it is in place).
    fn ready(&mut self) {
        let mut line = String::new();
        self.out.read_line(&mut line).expect("read the helper");
        assert_eq!(line.trim(), "ready", "the helper did not get ready");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tids(pid: u32) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn state(pid: u32, tid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .unwrap_or("")
        .to_string()
}

/// Wait until every thread of `pid` sleeps and stays off the CPU.
fn wait_still(pid: u32) {
    wait_for(20, "the helper's threads to go to sleep", || {
        let ts = tids(pid);
        let read = |t: u32| std::fs::read_to_string(format!("/proc/{pid}/task/{t}/schedstat")).ok();
        let before: Vec<_> = ts.iter().map(|t| read(*t)).collect();
        std::thread::sleep(Duration::from_millis(30));
        let after: Vec<_> = ts.iter().map(|t| read(*t)).collect();
        let asleep = ts
            .iter()
            .all(|t| matches!(state(pid, *t).as_str(), "S" | "Z"));
        (asleep && before == after && !ts.is_empty()).then_some(())
    })
}

// -------------------------------------------------------------------------------------
// The scanner, in the lab

fn summary<'a>(snap: &'a Snapshot, id: &str) -> &'a nsexporter::model::ContainerSummary {
    snap.containers
        .values()
        .find(|c| c.container.id == id)
        .unwrap_or_else(|| panic!("container {id} is not in the snapshot"))
}

/// A second thread that enters the host's network namespace while its leader stays in
/// the container's is caught by the next scan, even though the scans before it reused
/// that thread's links (it was idle): the per-thread proof of `scan/process.rs`.
#[test]
fn a_thread_that_enters_the_host_network_later_is_caught_on_the_next_scan() {
    require_root(ROOT);
    let host = host_net();
    let host_ino = link(&host).expect("host net");
    // Declared first, dropped last: the helper must be gone before the lab removes its
    // cgroup.
    let mut lab = Lab::new();
    let mut p = Proc::helper_in_new_netns(&["thread", &host, "wait"]);
    let pid = p.pid();
    wait_for(20, "the helper's second thread", || {
        (tids(pid).len() == 2).then_some(())
    });
    let tid = tids(pid)[1];
    let m = lab.kube_cgroupfs("burstable", pid);
    wait_still(pid);
    let mut scanners = [1, 2].map(|threads| {
        Scanner::new(ScanOptions {
            threads,
            idle_gap: Duration::ZERO,
            ..ScanOptions::default()
        })
    });
    for round in 0..3 {
        for s in &mut scanners {
            let snap = s.scan().expect("scan");
            let c = summary(&snap, &m.id);
            assert!(!c.any_escaped(), "nothing escaped yet: {:?}", c.escapes);
            assert_eq!(
                s.reused_thread_links(pid, tid),
                Some(round > 0),
                "an idle thread's links are reused from the second scan on"
            );
        }
    }
    p.say("go");
    p.ready();
    assert_eq!(
        link(&format!("/proc/{pid}/task/{tid}/ns/net")),
        Some(host_ino.clone())
    );
    assert_ne!(link(&format!("/proc/{pid}/ns/net")), Some(host_ino));
    wait_still(pid);
    for s in &mut scanners {
        let snap = s.scan().expect("scan");
        assert_eq!(
            s.reused_thread_links(pid, tid),
            Some(false),
            "it ran: read again"
        );
        let c = summary(&snap, &m.id);
        assert_eq!(c.escaped_processes[NsType::Net.index()], 1);
        assert_eq!(
            c.host_ns_processes[NsType::Net.index()],
            0,
            "the leader's links do not show it"
        );
        assert_eq!(c.escapes.len(), 1, "{:?}", c.escapes);
        let e = &c.escapes[0];
        assert_eq!(
            (e.pid, e.tid, e.types.as_slice()),
            (pid, tid, &[NsType::Net][..])
        );
        assert_eq!(e.comm, "escape-helper");
        // And once more, idle again: reused, still caught.
        let snap = s.scan().expect("scan");
        assert_eq!(s.reused_thread_links(pid, tid), Some(true));
        assert_eq!(
            summary(&snap, &m.id).escaped_processes[NsType::Net.index()],
            1
        );
    }
    drop(p);
}

/// A leader that ended with `pthread_exit` leaves a zombie whose links are gone: the
/// process is read through its live thread, so a container made of it still shows its
/// sharing and every namespace type, and one made of a private process plus such a
/// process shows the escape.
#[test]
fn an_exited_leader_hides_neither_its_namespaces_nor_an_escape() {
    require_root(ROOT);
    let host = host_net();
    let mut lab = Lab::new();
    let helper = helper().display().to_string();
    // Container A: only the hider, whose thread is in the host's network namespace. It
    // is placed in its cgroup before its leader exits.
    let mut a = Proc::launcher(&format!("unshare -n {helper} leader-exit {host}"));
    let a_pid = a.pid();
    let ma = lab.kube_cgroupfs("besteffort", a_pid);
    a.say("go");
    a.ready();
    wait_for(20, "the leader to exit", || {
        (state(a_pid, a_pid) == "Z").then_some(())
    });
    let a_tid = tids(a_pid)
        .into_iter()
        .find(|t| *t != a_pid)
        .expect("a live thread");
    assert!(
        link(&format!("/proc/{a_pid}/ns/net")).is_none(),
        "the zombie's link is gone"
    );
    // Container B: a private process, then a hider in its network namespace and its
    // cgroup, whose thread enters the host's.
    let b_main = lab.unshare(&["-n"]);
    let mb = lab.kube_cgroupfs("besteffort", b_main);
    let mut b = Proc::launcher(&format!(
        "nsenter --net=/proc/{b_main}/ns/net {helper} leader-exit {host}"
    ));
    let b_pid = b.pid();
    for root in common::cgroup_layout().roots() {
        let cg = cgroup_of(b_main, root);
        std::fs::write(format!("{root}{cg}/cgroup.procs"), b_pid.to_string())
            .unwrap_or_else(|e| panic!("move {b_pid} into {root}{cg}: {e}"));
    }
    b.say("go");
    b.ready();
    wait_for(20, "the second leader to exit", || {
        (state(b_pid, b_pid) == "Z").then_some(())
    });
    let b_tid = tids(b_pid)
        .into_iter()
        .find(|t| *t != b_pid)
        .expect("a live thread");
    wait_still(a_pid);
    wait_still(b_pid);

    let snap = Scanner::new(ScanOptions::default()).scan().expect("scan");
    let kernel: Vec<NsType> = NsType::ALL
        .into_iter()
        .filter(|t| snap.host.ns.get(*t).is_some())
        .collect();
    let ca = summary(&snap, &ma.id);
    assert_eq!(ca.main_pid, a_pid);
    for t in &kernel {
        assert!(ca.main_ns.get(*t).is_some(), "{t} dropped for the hider");
    }
    assert_eq!(
        ca.host_ns_processes[NsType::Net.index()],
        1,
        "its sharing is reported"
    );
    assert!(
        !ca.any_escaped(),
        "its own namespace is the host's: sharing, not escape"
    );
    let cb = summary(&snap, &mb.id);
    assert_eq!(cb.processes, 2);
    assert_eq!(cb.main_pid, b_main);
    assert_eq!(cb.escaped_processes[NsType::Net.index()], 1);
    assert_eq!(cb.escapes.len(), 1, "{:?}", cb.escapes);
    assert_eq!((cb.escapes[0].pid, cb.escapes[0].tid), (b_pid, b_tid));
    // inspect reads it the same way, and says which thread stands for it.
    let v = nsexporter_json(&["inspect", &a_pid.to_string(), "--json"]);
    assert_eq!(v["process"]["via_thread"], a_tid);
    for t in &kernel {
        assert!(v["process"]["namespaces"][t.name()].is_u64(), "{t}: {v}");
    }
    drop(b);
    drop(a);
}

/// `cgroup.procs` path of `pid` under the hierarchy mounted at `root`.
fn cgroup_of(pid: u32, root: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    let ctrl = root.rsplit('/').next().unwrap_or("");
    text.lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (id, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            let matches = if root == common::cgroup_layout().v2 {
                id == "0"
            } else {
                ctrls.split(',').any(|c| c == ctrl)
            };
            matches.then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no {root} line for {pid}"))
}

// -------------------------------------------------------------------------------------
// The binary

/// `nsexporter args...` (the terminal commands), which must succeed; stdout.
fn nsexporter(args: &[&str]) -> String {
    let out = run(Command::new(BIN).args(args).env_remove("NO_COLOR"));
    assert!(
        out.status.success(),
        "nsexporter {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn nsexporter_json(args: &[&str]) -> Value {
    let out = nsexporter(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("nsexporter {args:?}: {e}\n{out}"))
}

/// One `nsexporter --once` of this node.
fn once() -> Vec<Sample> {
    parse_exposition(&common::once(&[]))
}

/// The escaped-process series of `container_id`, by type.
fn escaped(samples: &[Sample], container_id: &str) -> BTreeMap<String, f64> {
    find(samples, ESCAPED, &[("container_id", container_id)])
        .into_iter()
        .map(|s| (s.labels["type"].clone(), s.value))
        .collect()
}

/// The `report --json` entry of `container_id` (listed with `--all`).
fn report_entry(container_id: &str) -> Value {
    let v = nsexporter_json(&["report", "--json", "--all"]);
    v["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["container_id"] == container_id)
        .cloned()
        .unwrap_or_else(|| panic!("{container_id} is not in report --json --all"))
}

// -------------------------------------------------------------------------------------
// Docker

fn docker(args: &[&str]) -> String {
    let out = run(Command::new("docker").args(args));
    assert!(
        out.status.success(),
        "docker {args:?} failed: {} ({HINT})",
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_string()
}

/// The test image, built once for the tests that run at the same time and removed when
/// the last of them is done: the host's static busybox (sleep, sh, nsenter, unshare,
/// cat) and the static helper, FROM scratch.
struct Image(String);

static IMAGE: Mutex<(usize, Option<String>)> = Mutex::new((0, None));

impl Image {
    fn get() -> Image {
        let mut g = IMAGE.lock().unwrap_or_else(|p| p.into_inner());
        if g.1.is_none() {
            require_dockerd();
            let file = run(Command::new("file").args(["-L", "/bin/busybox"]));
            assert!(
                text(&file.stdout).contains("statically linked"),
                "/bin/busybox is not static; install busybox-static ({HINT})"
            );
            let ctx = tempfile::tempdir().expect("tempdir");
            let bin = ctx.path().join("bin");
            std::fs::create_dir(&bin).unwrap();
            std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
            for applet in ["sleep", "sh", "nsenter", "unshare", "cat"] {
                std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
            }
            std::fs::copy(helper(), bin.join("escape-helper")).unwrap();
            std::fs::write(
                ctx.path().join("Dockerfile"),
                "FROM scratch\nCOPY bin/ /bin/\nENTRYPOINT [\"/bin/sleep\"]\nCMD [\"3600\"]\n",
            )
            .unwrap();
            let tag = format!("nsexporter-escape:{}", rand_hex(8));
            let out = run(Command::new("docker")
                .env("DOCKER_BUILDKIT", "0")
                .args(["build", "-q", "-t", &tag])
                .arg(ctx.path()));
            assert!(
                out.status.success(),
                "docker build failed: {}",
                text(&out.stderr)
            );
            g.1 = Some(tag);
        }
        g.0 += 1;
        Image(g.1.clone().unwrap_or_default())
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let mut g = IMAGE.lock().unwrap_or_else(|p| p.into_inner());
        g.0 -= 1;
        if g.0 == 0 {
            if let Some(tag) = g.1.take() {
                let _ = Command::new("docker").args(["rmi", "-f", &tag]).output();
            }
        }
    }
}

/// A container this test started; `docker rm -f` when dropped, pass or fail.
struct Container {
    id: String,
}

impl Container {
    /// `docker run -d` with the capabilities an `nsenter` into the host needs (Docker
    /// here refuses `--privileged`) and the host's network namespace at `/hostnet`.
    fn run(image: &Image, args: &[&str]) -> Container {
        let hostnet = format!("{}:/hostnet:ro", host_net());
        let mut full = vec![
            "run",
            "-d",
            "--label",
            "nsexporter-test=escapes",
            "--cap-add",
            "ALL",
            "--cap-drop",
            "SYS_RESOURCE",
            "--security-opt",
            "seccomp=unconfined",
            "-v",
            &hostnet,
        ];
        let (opts, cmd): (Vec<&str>, Vec<&str>) = {
            let at = args.iter().position(|a| *a == "--").unwrap_or(args.len());
            (
                args[..at].to_vec(),
                args.get(at + 1..).unwrap_or(&[]).to_vec(),
            )
        };
        full.extend(opts);
        full.push(&image.0);
        full.extend(cmd);
        let id = docker(&full);
        assert_eq!(id.len(), 64, "docker run printed {id:?}");
        Container { id }
    }

    /// The escape helper as PID 1 of a private container, whose second thread enters
    /// the host's network namespace and stays; the container, its PID and that TID.
    fn with_thread_in_host_net(image: &Image) -> (Container, u32, u32) {
        let c = Container::run(
            image,
            &[
                "--entrypoint",
                "/bin/escape-helper",
                "--",
                "thread",
                "/hostnet",
            ],
        );
        c.wait_ready();
        let pid = c.pid();
        let tid = tids(pid)
            .into_iter()
            .find(|t| *t != pid)
            .expect("its thread");
        (c, pid, tid)
    }

    fn label(&self) -> String {
        format!("docker://{}", self.id)
    }

    fn pid(&self) -> u32 {
        docker(&["inspect", "--format", "{{.State.Pid}}", &self.id])
            .parse()
            .expect("State.Pid")
    }

    /// Host PIDs of its processes.
    fn pids(&self) -> Vec<u32> {
        let out = docker(&["top", &self.id, "-eo", "pid"]);
        out.lines()
            .skip(1)
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn exec_detached(&self, cmd: &[&str]) {
        let mut args = vec!["exec", "-d", self.id.as_str()];
        args.extend(cmd);
        docker(&args);
    }

    fn logs(&self) -> String {
        let out = run(Command::new("docker").args(["logs", &self.id]));
        text(&out.stdout) + &text(&out.stderr)
    }

    /// Wait until the container's main process has printed "ready".
    fn wait_ready(&self) {
        wait_for(60, "the container's helper to print ready", || {
            self.logs().contains("ready").then_some(())
        });
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // A container whose PID 1 is a zombie leader with a live thread looks stopped to
        // runc: `rm -f` then removes it without killing that thread, which lives on in
        // the host's network namespace (with its shim). So SIGKILL its init's thread
        // group from here first, while the container, and so that PID, is still its own.
        let init = Command::new("docker")
            .args(["inspect", "--format", "{{.State.Pid}}", &self.id])
            .output()
            .ok()
            .and_then(|o| text(&o.stdout).trim().parse::<i32>().ok())
            .filter(|p| *p > 0);
        if let Some(p) = init {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // Docker may refuse the first `rm -f` of a container whose PID 1 is a zombie
        // while it kills the rest: try again until it is gone.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = Command::new("docker")
                .args(["rm", "-f", "-v", &self.id])
                .output();
            let gone = out
                .as_ref()
                .is_ok_and(|o| o.status.success() || text(&o.stderr).contains("No such container"));
            if gone || out.is_err() || Instant::now() > deadline {
                if !gone {
                    eprintln!("cleanup: cannot remove container {}", self.id);
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The PID of the container's process whose network namespace is the host's.
fn wait_process_in_host_net(c: &Container) -> u32 {
    let host = link(&host_net());
    wait_for(
        60,
        "a container process in the host's network namespace",
        || {
            c.pids()
                .into_iter()
                .find(|p| link(&format!("/proc/{p}/ns/net")) == host)
        },
    )
}

/// A private container, then `docker exec … nsenter --net=<host netns> sleep`: one
/// process escaped into the host's network namespace, and every view says so.
#[test]
fn docker_exec_nsenter_into_the_host_network_is_an_escape() {
    require_root(ROOT);
    let image = Image::get();
    let c = Container::run(&image, &[]);
    let main = c.pid();
    c.exec_detached(&["/bin/nsenter", "--net=/hostnet", "/bin/sleep", "3601"]);
    let pid = wait_process_in_host_net(&c);
    assert_ne!(pid, main);

    let s = once();
    let id = c.label();
    assert_eq!(escaped(&s, &id), BTreeMap::from([("net".to_string(), 1.0)]));
    assert_eq!(
        value(&s, PROCESSES, &[("container_id", &id)]),
        Some(2.0),
        "1 of 2"
    );
    assert_eq!(
        value(&s, SHARING, &[("container_id", &id), ("type", "net")]),
        Some(1.0)
    );
    assert_eq!(
        find(&s, "nsexporter_container_info", &[("container_id", &id)])[0].labels["comm"],
        "sleep"
    );

    let r = report_entry(&id);
    assert_eq!(r["escaped_processes"]["net"], 1);
    assert_eq!(r["shown_by_default"], true);
    let e = &r["escapes"][0];
    assert_eq!(
        (e["pid"].as_u64(), e["tid"].as_u64()),
        (Some(pid.into()), Some(pid.into()))
    );
    assert_eq!(e["comm"], "sleep");
    assert_eq!(e["types"], serde_json::json!(["net"]));
    let text = nsexporter(&["report", "--no-color"]);
    let short = &c.id[..12];
    assert!(
        text.lines()
            .any(|l| l.contains(short) && l.contains("net(1/2)!")),
        "report marks the container:\n{text}"
    );
    assert!(
        text.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() == 7
                && w[2] == short
                && w[3] == pid.to_string()
                && w[5] == "sleep"
                && w[6] == "net"
        }),
        "report lists the escaped PID:\n{text}"
    );

    let i = nsexporter(&["inspect", &pid.to_string(), "--no-color"]);
    let line = i
        .lines()
        .find(|l| l.starts_with("ESCAPED"))
        .unwrap_or_else(|| panic!("{i}"));
    assert!(
        line.contains("host's net namespace") && line.contains(&id),
        "{line}"
    );
    let j = nsexporter_json(&["inspect", &pid.to_string(), "--json"]);
    assert_eq!(j["escaped_from"]["container_id"], id.as_str());
    let m = nsexporter_json(&["inspect", &main.to_string(), "--json"]);
    assert!(
        m["escaped_from"].is_null(),
        "the container's own process did not escape"
    );
}

/// `--network host` shares the host's network namespace from the start: no escape. A
/// process that runs `unshare -n` inside a private container moved the other way: no
/// escape either.
#[test]
fn host_network_and_unshare_inside_a_container_are_no_escape() {
    require_root(ROOT);
    let image = Image::get();
    let hostnet = Container::run(&image, &["--network", "host"]);
    let private = Container::run(&image, &[]);
    private.exec_detached(&["/bin/unshare", "-n", "/bin/sleep", "3601"]);
    wait_for(60, "the unshared process", || {
        (private.pids().len() == 2).then_some(())
    });
    let s = once();
    let (h, p) = (hostnet.label(), private.label());
    assert_eq!(
        value(&s, SHARING, &[("container_id", &h), ("type", "net")]),
        Some(1.0)
    );
    assert_eq!(escaped(&s, &h), BTreeMap::new(), "a host-network container");
    assert_eq!(
        escaped(&s, &p),
        BTreeMap::new(),
        "unshare inside a container"
    );
    assert_eq!(value(&s, PROCESSES, &[("container_id", &p)]), Some(2.0));
    assert!(find(&s, SHARING, &[("container_id", &p), ("type", "net")]).is_empty());
    assert_eq!(report_entry(&h)["escapes"], serde_json::json!([]));
    assert_eq!(report_entry(&p)["escapes"], serde_json::json!([]));
}

/// A second thread (the helper, PID 1 of a scratch container) enters the host's network
/// namespace and stays; the leader does not. Only `task/<tid>/ns/net` shows it.
#[test]
fn a_container_thread_in_the_host_network_is_caught() {
    require_root(ROOT);
    let image = Image::get();
    let (c, pid, tid) = Container::with_thread_in_host_net(&image);
    let s = once();
    let id = c.label();
    assert_eq!(escaped(&s, &id), BTreeMap::from([("net".to_string(), 1.0)]));
    assert!(
        find(&s, SHARING, &[("container_id", &id), ("type", "net")]).is_empty(),
        "the leader's links show no sharing"
    );
    let r = report_entry(&id);
    let e = &r["escapes"][0];
    assert_eq!(
        (e["pid"].as_u64(), e["tid"].as_u64()),
        (Some(pid.into()), Some(tid.into()))
    );
    assert_eq!(e["comm"], "escape-helper");
    // inspect of the TID reads that thread, and says it escaped.
    let j = nsexporter_json(&["inspect", &tid.to_string(), "--json"]);
    assert_eq!(j["escaped_from"]["container_id"], id.as_str());
    assert_eq!(
        j["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "net")
            .unwrap()["state"],
        "shared"
    );
}

/// The container's only process ended its leader with `pthread_exit` while its thread
/// runs on in the host's network namespace: the container still shows that sharing, with
/// every namespace type, and since Docker declared its network namespace private (its
/// `hostconfig.json`), that is an escape too; a second such process in a private
/// container is an escape.
#[test]
fn a_container_whose_leader_exited_hides_nothing() {
    require_root(ROOT);
    let image = Image::get();
    let hider = Container::run(
        &image,
        &[
            "--entrypoint",
            "/bin/escape-helper",
            "--",
            "leader-exit",
            "/hostnet",
        ],
    );
    hider.wait_ready();
    let pid = hider.pid();
    wait_for(20, "the leader to exit", || {
        (state(pid, pid) == "Z").then_some(())
    });
    let private = Container::run(&image, &[]);
    private.exec_detached(&["/bin/escape-helper", "leader-exit", "/hostnet"]);
    let second = wait_for(60, "the second hider's leader to exit", || {
        private.pids().into_iter().find(|p| state(*p, *p) == "Z")
    });
    let s = once();
    let (h, p) = (hider.label(), private.label());
    assert_eq!(
        value(&s, SHARING, &[("container_id", &h), ("type", "net")]),
        Some(1.0)
    );
    assert_eq!(escaped(&s, &h), BTreeMap::from([("net".to_string(), 1.0)]));
    assert_eq!(escaped(&s, &p), BTreeMap::from([("net".to_string(), 1.0)]));
    let r = report_entry(&h);
    assert_eq!(r["main_pid"], pid);
    let kernel: Vec<String> = nsexporter_json(&["report", "--json"])["host_reference"]
        ["namespaces"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    for t in &kernel {
        assert!(r["namespaces"][t].is_u64(), "{t} dropped: {r}");
    }
    let e = &report_entry(&p)["escapes"][0];
    assert_eq!(e["pid"], second);
    assert_ne!(
        e["tid"], second,
        "the live thread's links stand for the exited leader"
    );
    let j = nsexporter_json(&["inspect", &pid.to_string(), "--json"]);
    assert!(j["process"]["via_thread"].is_u64(), "{j}");
}

// -------------------------------------------------------------------------------------
// Podman

/// A Podman pod, removed (with its containers) when dropped.
struct PodmanPod {
    name: String,
    conf: tempfile::TempDir,
}

impl PodmanPod {
    fn podman(&self, args: &[&str]) -> String {
        let out = run(Command::new("podman")
            .env("CONTAINERS_CONF", self.conf.path().join("containers.conf"))
            .args(args));
        assert!(
            out.status.success(),
            "podman {args:?} failed: {} (.ci/run installs podman, runc and catatonit)",
            text(&out.stderr)
        );
        text(&out.stdout).trim().to_string()
    }
}

impl Drop for PodmanPod {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .env("CONTAINERS_CONF", self.conf.path().join("containers.conf"))
            .args(["pod", "rm", "-f", &self.name])
            .output();
    }
}

/// A Podman pod: its infra container holds the pod's network, IPC and UTS namespaces and
/// a container joins them. Joining a namespace that is not the host's is no escape.
#[test]
fn a_podman_pod_is_no_escape() {
    require_root(ROOT);
    require_tool("podman");
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(
        conf.path().join("containers.conf"),
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n[engine]\nruntime = \"runc\"\n",
    )
    .unwrap();
    let rootfs = tempfile::tempdir().unwrap();
    for d in ["bin", "proc", "dev", "sys", "etc", "run", "tmp"] {
        std::fs::create_dir(rootfs.path().join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.path().join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.path().join("bin/sleep")).unwrap();
    let pod = PodmanPod {
        name: format!("nsxesc-{}", rand_hex(6)),
        conf,
    };
    pod.podman(&["pod", "create", "--name", &pod.name]);
    let ctr = pod.podman(&[
        "run",
        "-d",
        "--pod",
        &pod.name,
        "--rootfs",
        &rootfs.path().display().to_string(),
        "/bin/sleep",
        "3600",
    ]);
    let infra = pod.podman(&[
        "pod",
        "inspect",
        "--format",
        "{{.InfraContainerID}}",
        &pod.name,
    ]);
    let s = once();
    for id in [&ctr, &infra] {
        let label = format!("podman://{id}");
        assert_eq!(escaped(&s, &label), BTreeMap::new(), "{label}");
        let r = report_entry(&label);
        assert_eq!(r["escapes"], serde_json::json!([]), "{label}");
        assert!(r["shared_host_namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t != "net"));
    }
    let ns = |id: &str| report_entry(&format!("podman://{id}"))["namespaces"]["net"].clone();
    assert_eq!(
        ns(&ctr),
        ns(&infra),
        "the container joined the pod's network namespace"
    );
}

// -------------------------------------------------------------------------------------
// Events

/// With `--scan.events`, the `nsenter` of a `docker exec` (an exec after `setns`) is read
/// when it happens and published without waiting for a scan (the interval here is an
/// hour; `bench/escapes.sh` measures the latency).
#[test]
fn with_events_an_nsenter_escape_is_published_without_a_scan() {
    require_root(ROOT);
    let image = Image::get();
    let nsx = Exporter::start(&["--scan.interval", "1h", "--scan.events"]);
    nsx.wait_ready();
    let scrape = || parse_exposition(&nsx.get("/metrics").body);
    assert_eq!(
        value(&scrape(), "nsexporter_scan_events_enabled", &[]),
        Some(1.0),
        "process events are unavailable here: {:?}",
        nsx.drain_log()
    );
    let c = Container::run(&image, &[]);
    let id = c.label();
    let t0 = Instant::now();
    c.exec_detached(&["/bin/nsenter", "--net=/hostnet", "/bin/sleep", "3601"]);
    let seen = wait_for(20, "the escape in /metrics", || {
        (escaped(&scrape(), &id).get("net") == Some(&1.0)).then(|| t0.elapsed())
    });
    println!("docker exec nsenter -> escape in /metrics after {seen:?} (scan interval 1 h)");
    let s = scrape();
    assert_eq!(
        value(&s, "nsexporter_scans_total", &[]),
        Some(1.0),
        "no scan ran since"
    );
    assert_eq!(value(&s, PROCESSES, &[("container_id", &id)]), Some(2.0));
}

// -------------------------------------------------------------------------------------
// The runbook

/// The README's runbook for `NsexporterNamespaceEscape`, run as written against a
/// container whose thread entered the host's network namespace: every command of its
/// `sh` block, placeholders filled, must succeed and show what the runbook says.
#[test]
fn the_escape_runbook_commands_work() {
    require_root(ROOT);
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("### Alert: NsexporterNamespaceEscape")
        .nth(1)
        .expect("the runbook section")
        .split("\n### ")
        .next()
        .unwrap();
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a ```sh block in the runbook");
    let commands: Vec<&str> = block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(commands.len(), 6, "{commands:?}");

    let image = Image::get();
    let (c, pid, tid) = Container::with_thread_in_host_net(&image);
    let bin_dir = Path::new(BIN).parent().expect("binary directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut outputs = Vec::new();
    for cmd in &commands {
        let cmd = cmd
            .replace("<main pid>", &pid.to_string())
            .replace("<pid>", &pid.to_string())
            .replace("<tid>", &tid.to_string())
            .replace("<type>", "net");
        assert!(!cmd.contains('<'), "placeholder left in {cmd}");
        let out = run(Command::new("sh").args(["-c", &cmd]).env("PATH", &path));
        assert!(
            out.status.success(),
            "runbook command failed: {cmd}\n{}",
            text(&out.stderr)
        );
        outputs.push(text(&out.stdout));
    }
    // 1: the ESCAPED section lists the thread.
    let short = &c.id[..12];
    assert!(
        outputs[0].lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() == 7 && w[2] == short && w[3] == pid.to_string() && w[4] == tid.to_string()
        }),
        "{}",
        outputs[0]
    );
    // 2: inspect of the thread says it escaped, and from which container.
    let escaped = outputs[1]
        .lines()
        .find(|l| l.starts_with("ESCAPED"))
        .unwrap_or_else(|| panic!("{}", outputs[1]));
    assert!(escaped.contains(&c.label()), "{escaped}");
    // 3: the thread's link is the host's, the container's is not.
    let links: Vec<&str> = outputs[2].lines().collect();
    assert_eq!(links.len(), 3, "{}", outputs[2]);
    assert_eq!(
        links[0], links[1],
        "the thread is in the host's net namespace"
    );
    assert_ne!(links[2], links[1], "the container is not");
    // 4, 5: what it runs, its parent and capabilities.
    assert!(outputs[3].contains("escape-helper"), "{}", outputs[3]);
    assert!(outputs[4].contains("CapEff"), "{}", outputs[4]);
    // 6: stopped.
    wait_for(10, "the process to stop", || {
        (state(pid, pid) == "T").then_some(())
    });
}

// -------------------------------------------------------------------------------------
// The alerting sidecar

/// The sidecar (`--alertmanager.url`) sends NsexporterNamespaceEscape to a real
/// Alertmanager with the rule's labels and words, although its allow-list allows every
/// container (by namespace, workload and comm): that list never quiets an escape.
/// A second escaped container, opted out by `container_id` in `alerts.escape-opt-out`,
/// is held back and counted. The alert resolves when the escaped process is gone.
#[test]
fn the_sidecar_sends_the_escape_past_its_allow_list_and_resolves_it() {
    require_root(ROOT);
    let image = Image::get();
    let tmp = tempfile::tempdir().unwrap();
    let am = am::Alertmanager::start(tmp.path(), "am");
    let c = Container::run(&image, &[]);
    let opted = Container::run(&image, &[]);
    let (id, opted_id) = (c.label(), opted.label());
    let config = tmp.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "alerts:\n  allow:\n    namespaces: [\".*\"]\n    workloads:\n    \
             - {{namespace: \".*\", kind: \".*\", name: \".*\"}}\n    comms: [\".*\"]\n  \
             escape-opt-out:\n    containers: [\"{opted_id}\"]\n"
        ),
    )
    .unwrap();
    let nsx = Exporter::start(&[
        "--scan.interval",
        "500ms",
        "--alertmanager.url",
        &am.url(),
        "--alertmanager.resend-interval",
        "5s",
        "--config.file",
        &config.display().to_string(),
    ]);
    nsx.wait_ready();
    for x in [&c, &opted] {
        x.exec_detached(&["/bin/nsenter", "--net=/hostnet", "/bin/sleep", "3601"]);
    }
    let pid = wait_process_in_host_net(&c);
    let escape_of = |container_id: &str| -> Result<Option<Value>, String> {
        Ok(am.alerts()?.into_iter().find(|a| {
            a["labels"]["alertname"] == "NsexporterNamespaceEscape"
                && a["labels"]["container_id"] == container_id
                && a["labels"]["source"] == "nsexporter-sidecar"
        }))
    };
    let t0 = Instant::now();
    let alert = am::wait_for(
        "the escape alert in Alertmanager",
        Duration::from_secs(30),
        || escape_of(&id)?.ok_or_else(|| format!("{:?}", am.sidecar_keys())),
    );
    println!(
        "docker exec nsenter -> escape alert in Alertmanager after {:?}",
        t0.elapsed()
    );
    let labels = &alert["labels"];
    for (k, v) in [
        ("severity", "critical"),
        ("type", "net"),
        ("runtime", "docker"),
        ("comm", "sleep"),
    ] {
        assert_eq!(labels[k], v, "{k}: {alert}");
    }
    let a = &alert["annotations"];
    assert_eq!(
        a["summary"],
        "A container process entered a host namespace that its container does not share."
    );
    assert_eq!(
        a["runbook_url"],
        "https://github.com/nsexporter/nsexporter/blob/main/README.md#alert-nsexporternamespaceescape"
    );
    let d = a["description"].as_str().unwrap_or_default();
    assert!(
        d.contains(&id)
            && d.contains("1 process(es) in the host net namespace")
            && d.contains(&format!("PID {pid} (sleep)")),
        "{d}"
    );
    // The allow-list is in force and matches these containers: their host root (no
    // user namespace) is allowed, not sent. The opted-out container escaped too: held
    // back, counted as allowed.
    wait_process_in_host_net(&opted);
    let allowed = |s: &[Sample], name: &str| {
        value(
            s,
            "nsexporter_alerts",
            &[("alertname", name), ("state", "allowed")],
        )
        .unwrap_or(0.0)
    };
    nsx.scrape_until(Duration::from_secs(10), "the opt-out counted", |s| {
        allowed(s, "NsexporterNamespaceEscape") >= 1.0
            && allowed(s, "NsexporterContainerHostRoot") >= 2.0
    });
    assert_eq!(
        escape_of(&opted_id).unwrap(),
        None,
        "the opt-out held it back"
    );

    // The escaped process ends: the alert resolves.
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    assert!(killed.is_ok_and(|s| s.success()), "kill {pid}");
    am::wait_for(
        "the escape alert resolved",
        Duration::from_secs(30),
        || match escape_of(&id)? {
            None => Ok(()),
            Some(_) => Err("still active".into()),
        },
    );
}

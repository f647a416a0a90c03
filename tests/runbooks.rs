//! The README's runbooks, run. Every command in a fenced `sh` block between
//! `<!-- runbooks:begin -->` and `<!-- runbooks:end -->` is taken from the README as
//! written, its placeholders (`<pid>`, `<type>`, ...) filled in, and run on this node
//! against real containers: Docker containers sharing the host's network, PID and IPC
//! namespaces or not, as root or not, with the chart's capabilities; a Podman container
//! in its own user namespace; a named network namespace and a bind-mounted one. Each
//! result is checked against what the runbook says it shows. A command without a check
//! here fails the test, so the README and this file stay in step; the `kubectl` and
//! `crictl` ones need a Kubernetes cluster and are only listed (and printed), and the
//! few that another test runs as written are listed with that test.
//!
//! The commands that `nsexporter inspect` prints are run the same way, against a
//! private Docker container and the Podman one, and what `nsexporter diff` says two
//! Docker containers share is tried between them.
//!
//! Needs root, a Docker engine, Podman and the host tools the runbooks name (ss, ip,
//! ipcs, capsh, lsns, nsenter, findmnt, curl): `tests/run.sh` installs and starts them.
//!
//! Why one file of about 1000 lines: the README's runbooks are one list, and a command
//! without a check here fails the test; split, that completeness check would span
//! files.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::docker::Container;
use common::{free_port, rand_hex, require_tool, Exporter, BIN};

/// Runbook commands that need a Kubernetes cluster: not run here.
const CLUSTER_ONLY: &[&str] = &[
    "crictl inspect --output go-template --template '{{.info.pid}}' <container id>",
    "kubectl get pod -n <namespace> <pod> -o jsonpath='{.spec.hostNetwork}'",
    "kubectl get <kind> -n <namespace> <workload> -o yaml",
    "crictl pods",
    "kubectl get pods -n <exporter namespace> -o wide",
    "kubectl logs -n <exporter namespace> <pod>",
];

/// Runbook commands that another test runs as written, against what they need here:
/// (command, the test).
const CHECKED_ELSEWHERE: &[(&str, &str)] = &[
    (
        "jq -c '.linux.namespaces, .linux.uidMappings' /run/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/config.json",
        "tests/runtime_files.rs namespace_drift_runbook_commands_work, on a containerd bundle under --path.rootfs",
    ),
    (
        "nsexporter report",
        ESCAPE_RUNBOOK,
    ),
    ("nsexporter inspect <tid>", ESCAPE_RUNBOOK),
    (
        "readlink /proc/<pid>/task/<tid>/ns/<type> /proc/2/ns/<type> /proc/<main pid>/ns/<type>",
        ESCAPE_RUNBOOK,
    ),
    ("ps -o pid,ppid,user,lstart,args -p <pid>", ESCAPE_RUNBOOK),
    ("grep -E '^(PPid|Uid|CapEff)' /proc/<pid>/status", ESCAPE_RUNBOOK),
    ("kill -STOP <pid>", ESCAPE_RUNBOOK),
];

/// The escape runbook's commands need a container with an escaped thread, which that
/// test makes.
const ESCAPE_RUNBOOK: &str =
    "tests/escapes.rs the_escape_runbook_commands_work, against a Docker container's escaped thread";

/// The commands of the fenced `sh` blocks of the README's runbooks (comments left out),
/// in order, each once.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("read README.md");
    let (begin, end) = ("<!-- runbooks:begin -->", "<!-- runbooks:end -->");
    let start = readme.find(begin).expect("README marks its runbooks");
    let stop = readme
        .find(end)
        .expect("README marks the end of its runbooks");
    let mut out: Vec<String> = Vec::new();
    let mut in_block = false;
    for line in readme[start..stop].lines().map(str::trim) {
        match (in_block, line) {
            (false, "```sh") => in_block = true,
            (true, "```") => in_block = false,
            (true, "") => {}
            (true, comment) if comment.starts_with('#') => {}
            (true, cmd) if !out.iter().any(|c| c == cmd) => out.push(cmd.to_owned()),
            _ => {}
        }
    }
    assert!(
        !in_block,
        "an unclosed ```sh block in the README's runbooks"
    );
    out
}

struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs a runbook command line through `sh -c`, with this build's `nsexporter` first on
/// PATH.
fn sh(cmd: &str) -> Ran {
    let bin_dir = Path::new(BIN).parent().expect("binary directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out: Output = Command::new("sh")
        .args(["-c", cmd])
        .env("PATH", path)
        .output()
        .expect("run sh");
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `cmd`, which must succeed; its stdout.
fn ok(cmd: &str) -> String {
    let r = sh(cmd);
    assert!(r.ok, "`{cmd}` failed:\n{}{}", r.stdout, r.stderr);
    r.stdout
}

/// `template` with each `<name>` replaced by its value.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut s = template.to_owned();
    for (k, v) in values {
        s = s.replace(&format!("<{k}>"), v);
    }
    assert!(
        !s.contains('<'),
        "placeholder left in `{s}` (from `{template}`)"
    );
    s
}

/// Words of each line, for comparing columns without caring about their alignment.
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// The interface names of `ip addr` output.
fn interfaces(ip_addr: &str) -> BTreeSet<String> {
    ip_addr
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect()
}

/// A Podman container in its own user namespace (root inside is host UID 100000), from
/// a rootfs of the host's static busybox; `podman rm` when dropped.
struct PodmanUserns {
    id: String,
    _rootfs: tempfile::TempDir,
}

impl PodmanUserns {
    fn start() -> PodmanUserns {
        let podman = require_tool("podman");
        let rootfs = tempfile::tempdir().expect("tempdir");
        // runc enters the rootfs as the mapped root: it must be able to reach it.
        std::fs::set_permissions(rootfs.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod rootfs");
        for d in ["bin", "proc", "dev", "sys", "etc", "run", "tmp"] {
            std::fs::create_dir(rootfs.path().join(d)).expect("mkdir");
        }
        std::fs::copy("/bin/busybox", rootfs.path().join("bin/busybox")).expect("copy busybox");
        for applet in ["sleep", "sh", "cat", "id", "hostname", "ps"] {
            std::os::unix::fs::symlink("busybox", rootfs.path().join("bin").join(applet))
                .expect("symlink");
        }
        chown_tree(rootfs.path(), 100_000);
        let out = Command::new(&podman)
            .args([
                "run",
                "-d",
                "--runtime",
                "runc",
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
                "--uidmap",
                "0:100000:65536",
                "--gidmap",
                "0:100000:65536",
                "--network",
                "none",
                "--label",
                "nsexporter-test=runbooks",
                "--rootfs",
            ])
            .arg(rootfs.path())
            .args(["/bin/sleep", "3600"])
            .output()
            .expect("run podman");
        assert!(
            out.status.success(),
            "podman run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PodmanUserns {
            id: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            _rootfs: rootfs,
        }
    }

    fn pid(&self) -> String {
        let out = Command::new("podman")
            .args(["inspect", "--format", "{{.State.Pid}}", &self.id])
            .output()
            .expect("podman inspect");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for PodmanUserns {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["rm", "-f", "-t", "0", &self.id])
            .output();
    }
}

fn chown_tree(dir: &Path, id: u32) {
    std::os::unix::fs::lchown(dir, Some(id), Some(id)).expect("chown");
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("dir entry").path();
        if p.is_dir() && !p.is_symlink() {
            chown_tree(&p, id);
        } else {
            std::os::unix::fs::lchown(&p, Some(id), Some(id)).expect("chown");
        }
    }
}

/// A named network namespace (`ip netns add`), deleted on drop unless gone already.
struct NamedNetns(String);

impl Drop for NamedNetns {
    fn drop(&mut self) {
        if Path::new("/run/netns").join(&self.0).exists() {
            let _ = Command::new("ip")
                .args(["netns", "delete", &self.0])
                .status();
        }
    }
}

/// A System V shared memory segment in the host's IPC namespace, removed on drop.
struct HostShm(String);

impl HostShm {
    fn create() -> HostShm {
        let out = ok("ipcmk -M 4096");
        let id = out
            .split_whitespace()
            .last()
            .expect("ipcmk prints the id")
            .to_owned();
        HostShm(id)
    }
}

impl Drop for HostShm {
    fn drop(&mut self) {
        let _ = Command::new("ipcrm").args(["-m", &self.0]).status();
    }
}

/// A bind mount of a namespace file on `path`, unmounted and removed on drop unless the
/// runbook did it already.
struct NsBindMount(PathBuf);

impl Drop for NsBindMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The containers the checks read.
struct Node {
    /// `--network host`, running a listener on `port`.
    host_net: Container,
    port: u16,
    /// `--pid host --ipc host`.
    host_pid_ipc: Container,
    /// Default namespaces but no network, root inside; hostname `runbook-private`.
    private: Container,
    /// `--user 65534`.
    non_root: Container,
    /// The chart's capabilities: all dropped but SYS_PTRACE.
    chart_caps: Container,
    userns: PodmanUserns,
}

impl Node {
    fn start() -> Node {
        let port = free_port();
        let image = common::docker::busybox_image();
        let port_s = port.to_string();
        let host_net = Container::run(&[
            "--network",
            "host",
            "--entrypoint",
            "/bin/nc",
            image,
            "-ll",
            "-p",
            &port_s,
            "-e",
            "/bin/cat",
        ]);
        Node {
            host_net,
            port,
            host_pid_ipc: Container::busybox(&[
                "--network",
                "none",
                "--pid",
                "host",
                "--ipc",
                "host",
            ]),
            private: Container::busybox(&["--network", "none", "--hostname", "runbook-private"]),
            non_root: Container::busybox(&["--network", "none", "--user", "65534"]),
            chart_caps: Container::busybox(&[
                "--network",
                "none",
                "--cap-drop",
                "ALL",
                "--cap-add",
                "SYS_PTRACE",
            ]),
            userns: PodmanUserns::start(),
        }
    }
}

/// `readlink A B` prints two links; whether they are the same.
fn same_links(out: &str) -> bool {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "readlink printed {out:?}");
    lines[0] == lines[1]
}

/// The value of field `name` (e.g. `CapEff`) in /proc/<pid>/status text.
fn status_field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
}

/// Runs one runbook command (as the README writes it) and checks what it shows.
fn check(cmd: &str, node: &Node) {
    let pid_of = |c: &Container| c.pid().to_string();
    let priv_pid = pid_of(&node.private);
    match cmd {
        "nsexporter report --all" => {
            let out = ok(&format!("{cmd} --no-color"));
            let short = &node.private.id[..12];
            let row = rows(&out)
                .into_iter()
                .find(|r| r.iter().any(|w| w == short))
                .unwrap_or_else(|| panic!("no row for container {short}:\n{out}"));
            assert!(row.contains(&priv_pid), "PID {priv_pid} not in {row:?}");
        }
        "docker inspect -f '{{.State.Pid}}' <id>" => {
            let out = ok(&fill(cmd, &[("id", &node.private.id)]));
            assert_eq!(out.trim(), priv_pid);
            let cgroup = std::fs::read_to_string(format!("/proc/{priv_pid}/cgroup")).unwrap();
            assert!(cgroup.contains(&node.private.id), "{cgroup}");
        }
        "readlink /proc/<pid>/ns/net /proc/2/ns/net" => {
            assert!(same_links(&ok(&fill(
                cmd,
                &[("pid", &pid_of(&node.host_net))]
            ))));
            assert!(!same_links(&ok(&fill(cmd, &[("pid", &priv_pid)]))));
        }
        "readlink /proc/<pid>/ns/<type> /proc/2/ns/<type>" => {
            for ty in ["net", "pid", "ipc"] {
                let filled = |pid: &str| fill(cmd, &[("pid", pid), ("type", ty)]);
                let shared = if ty == "net" {
                    &node.host_net
                } else {
                    &node.host_pid_ipc
                };
                assert!(same_links(&ok(&filled(&pid_of(shared)))), "{ty}");
                assert!(!same_links(&ok(&filled(&priv_pid))), "{ty}");
            }
        }
        "nsexporter report --all | grep '<short id>'" => {
            let out = ok(&fill(cmd, &[("short id", &node.private.id[..12])]));
            assert_eq!(out.lines().count(), 1, "{out}");
            assert!(out.contains(&priv_pid), "{out}");
        }
        "readlink /proc/<pid>/ns/pid /proc/2/ns/pid"
        | "readlink /proc/<pid>/ns/ipc /proc/2/ns/ipc" => {
            assert!(same_links(&ok(&fill(
                cmd,
                &[("pid", &pid_of(&node.host_pid_ipc))]
            ))));
            assert!(!same_links(&ok(&fill(cmd, &[("pid", &priv_pid)]))));
        }
        "nsenter -t <pid> -n ss -lntup" => {
            // The listener of the host-network container, with its process: in its
            // namespace and, being the host's, on the node too.
            let pid = pid_of(&node.host_net);
            let want = |out: &str| {
                out.lines().any(|l| {
                    l.contains(&format!(":{} ", node.port)) && l.contains(&format!("pid={pid},"))
                })
            };
            let inside = ok(&fill(cmd, &[("pid", &pid)]));
            assert!(
                want(&inside),
                "no listener :{} of {pid}:\n{inside}",
                node.port
            );
            let on_node = ok("ss -lntup");
            assert!(want(&on_node), "the node's ss differs:\n{on_node}");
            let private = ok(&fill(cmd, &[("pid", &priv_pid)]));
            assert!(!want(&private), "{private}");
        }
        "nsenter -t <pid> -n ip addr" => {
            // Host network: the node's interfaces (retried: other tests on this machine
            // may add or remove one in between).
            let pid = pid_of(&node.host_net);
            let same = (0..5).any(|_| {
                let inside = interfaces(&ok(&fill(cmd, &[("pid", &pid)])));
                let on_node = interfaces(&ok("ip addr"));
                inside.len() > 1 && inside == on_node
            });
            assert!(
                same,
                "the host-network container's interfaces are not the node's"
            );
            let private = interfaces(&ok(&fill(cmd, &[("pid", &priv_pid)])));
            assert_eq!(private, BTreeSet::from(["lo".to_owned()]));
        }
        "nsenter -t <pid> -p -m ps -ef" => {
            // Shared: the node's processes, kernel threads included.
            let shared = ok(&fill(cmd, &[("pid", &pid_of(&node.host_pid_ipc))]));
            assert!(shared.contains("kthreadd"), "{shared}");
            // Private: only the container's, its main process as PID 1.
            let private = ok(&fill(cmd, &[("pid", &priv_pid)]));
            let procs: Vec<Vec<String>> = rows(&private).into_iter().skip(1).collect();
            assert!(!private.contains("kthreadd"), "{private}");
            assert_eq!(procs[0][0], "1", "{private}");
            assert!(procs[0].iter().any(|w| w.contains("sleep")), "{private}");
            assert!(procs.len() <= 2, "more than sleep and ps:\n{private}");
            // Without -m, /proc is the node's (PID 2 there is kthreadd): ps would list
            // every process of the node, the mistake the runbook warns about.
            let without_m = ok(&format!("nsenter -t {priv_pid} -p cat /proc/2/comm"));
            assert_eq!(without_m.trim(), "kthreadd");
        }
        "grep Cap /proc/<pid>/status" => {
            let status = ok(&fill(cmd, &[("pid", &priv_pid)]));
            for f in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
                status_field(&status, f);
            }
            // Docker's default set.
            assert_eq!(status_field(&status, "CapEff"), "00000000a80425fb");
            let status = ok(&fill(cmd, &[("pid", &pid_of(&node.chart_caps))]));
            assert_eq!(status_field(&status, "CapEff"), "0000000000080000");
        }
        "capsh --decode=<CapEff>" => {
            let status = ok(&format!("grep Cap /proc/{priv_pid}/status"));
            let out = ok(&fill(cmd, &[("CapEff", status_field(&status, "CapEff"))]));
            assert!(
                out.contains("cap_chown") && out.contains("cap_net_raw"),
                "{out}"
            );
            assert!(
                !out.contains("cap_sys_admin") && !out.contains("cap_sys_ptrace"),
                "{out}"
            );
        }
        "grep CapEff /proc/<exporter pid>/status" => {
            let out = ok(&fill(cmd, &[("exporter pid", &pid_of(&node.chart_caps))]));
            let cap_eff = status_field(&out, "CapEff");
            let decoded = ok(&format!("capsh --decode={cap_eff}"));
            assert!(decoded.trim().ends_with("=cap_sys_ptrace"), "{decoded}");
        }
        "nsenter -t <pid> -i ipcs -a" => {
            let shm = HostShm::create();
            let shared = ok(&fill(cmd, &[("pid", &pid_of(&node.host_pid_ipc))]));
            let listed = |out: &str| rows(out).iter().any(|r| r.get(1) == Some(&shm.0));
            assert!(
                listed(&shared),
                "host segment {} not listed:\n{shared}",
                shm.0
            );
            let private = ok(&fill(cmd, &[("pid", &priv_pid)]));
            assert!(!listed(&private), "{private}");
        }
        "grep -E '^(Uid|Gid)' /proc/<pid>/status" => {
            let effective = |pid: &str| {
                let out = ok(&fill(cmd, &[("pid", pid)]));
                assert!(out.lines().count() == 2, "{out}");
                status_field(&out, "Uid")
                    .split_whitespace()
                    .nth(1)
                    .expect("effective UID")
                    .to_owned()
            };
            assert_eq!(effective(&priv_pid), "0");
            assert_eq!(effective(&pid_of(&node.non_root)), "65534");
            assert_eq!(effective(&node.userns.pid()), "100000");
        }
        "readlink /proc/<pid>/ns/user /proc/2/ns/user" => {
            assert!(same_links(&ok(&fill(cmd, &[("pid", &priv_pid)]))));
            assert!(!same_links(&ok(&fill(cmd, &[("pid", &node.userns.pid())]))));
        }
        "cat /proc/<pid>/uid_map" => {
            let map = |pid: &str| rows(&ok(&fill(cmd, &[("pid", pid)])));
            assert_eq!(map(&priv_pid), [["0", "0", "4294967295"]]);
            assert_eq!(map(&node.userns.pid()), [["0", "100000", "65536"]]);
        }
        "grep nsfs /proc/self/mountinfo" | "ls /run/netns" => {
            let netns = NamedNetns(format!("nsx-rb-{}", rand_hex(6)));
            ok(&format!("ip netns add {}", netns.0));
            let out = ok(cmd);
            let name = if cmd.starts_with("ls") {
                netns.0.clone()
            } else {
                format!("/run/netns/{}", netns.0)
            };
            assert!(
                out.lines().any(|l| l.split_whitespace().any(|w| w == name)),
                "{out}"
            );
        }
        "ip netns exec <name> ip addr" | "nsenter --net=/run/netns/<name> ip addr" => {
            let netns = NamedNetns(format!("nsx-rb-{}", rand_hex(6)));
            ok(&format!("ip netns add {}", netns.0));
            let out = ok(&fill(cmd, &[("name", &netns.0)]));
            assert_eq!(interfaces(&out), BTreeSet::from(["lo".to_owned()]), "{out}");
            assert!(out.contains("state DOWN"), "{out}");
        }
        "ip netns delete <name>" => {
            let netns = NamedNetns(format!("nsx-rb-{}", rand_hex(6)));
            ok(&format!("ip netns add {}", netns.0));
            ok(&fill(cmd, &[("name", &netns.0)]));
            let mounts = ok("grep nsfs /proc/self/mountinfo");
            assert!(
                !mounts.contains(&format!("/run/netns/{} ", netns.0)),
                "{mounts}"
            );
            assert!(!Path::new("/run/netns").join(&netns.0).exists());
        }
        "umount <mount point>" | "rm <mount point>" => {
            // A namespace held by a bind mount outside /run/netns: a container's network
            // namespace, bind-mounted on a file.
            let dir = tempfile::tempdir().expect("tempdir");
            let pin = NsBindMount(dir.path().join("pinned-net"));
            std::fs::write(&pin.0, b"").expect("create mount point");
            ok(&format!(
                "mount --bind /proc/{priv_pid}/ns/net {}",
                pin.0.display()
            ));
            let point = pin.0.display().to_string();
            let listed = || ok("grep nsfs /proc/self/mountinfo").contains(&point);
            assert!(listed(), "the bind mount is not an nsfs mount");
            ok(&fill("umount <mount point>", &[("mount point", &point)]));
            assert!(!listed(), "still mounted after umount");
            ok(&fill("rm <mount point>", &[("mount point", &point)]));
            assert!(!pin.0.exists());
        }
        "cat /proc/sys/user/max_<type>_namespaces" => {
            let n: u64 = ok(&fill(cmd, &[("type", "net")]))
                .trim()
                .parse()
                .expect("a number");
            assert!(n > 0);
        }
        "lsns -t <type> | wc -l" => {
            // A header, the host's and at least the private container's.
            let n: u64 = ok(&fill(cmd, &[("type", "net")]))
                .trim()
                .parse()
                .expect("a number");
            assert!(n >= 3, "{n}");
        }
        "lsns -t <type>" => {
            let out = ok(&fill(cmd, &[("type", "net")]));
            let link = std::fs::read_link(format!("/proc/{priv_pid}/ns/net")).unwrap();
            let inode = link
                .to_string_lossy()
                .trim_start_matches("net:[")
                .trim_end_matches(']')
                .to_owned();
            let header = &rows(&out)[0];
            let col = |name: &str| {
                header
                    .iter()
                    .position(|h| h == name)
                    .unwrap_or_else(|| panic!("no {name}: {out}"))
            };
            let row = rows(&out)
                .into_iter()
                .find(|r| r[col("NS")] == inode)
                .unwrap_or_else(|| panic!("net:[{inode}] not listed:\n{out}"));
            assert_eq!(row[col("NPROCS")], "1", "{row:?}");
            assert_eq!(row[col("PID")], priv_pid, "{row:?}");
        }
        "sysctl user.max_<type>_namespaces=<n>" => {
            // The node's own limit is not writable on this machine, but every user
            // namespace has its own (counted in it): in a child user namespace, the
            // limit reached makes `unshare --net` fail with ENOSPC, and the command raises it.
            let lower = fill(cmd, &[("type", "net"), ("n", "0")]);
            let raise = fill(cmd, &[("type", "net"), ("n", "5")]);
            let script = format!(
                "{lower} && if unshare --net true; then echo created; fi; \
                 {raise} && unshare --net true && echo created"
            );
            let r = Command::new("unshare")
                .args(["--user", "--map-root-user", "sh", "-c", &script])
                .output()
                .expect("run unshare");
            let (stdout, stderr) = (
                String::from_utf8_lossy(&r.stdout),
                String::from_utf8_lossy(&r.stderr),
            );
            assert!(r.status.success(), "{stdout}{stderr}");
            assert_eq!(
                stdout.lines().collect::<Vec<_>>(),
                [
                    "user.max_net_namespaces = 0",
                    "user.max_net_namespaces = 5",
                    "created"
                ],
                "{stderr}"
            );
            assert!(stderr.contains("No space left on device"), "{stderr}");
        }
        "curl http://<instance>/metrics" => {
            let e = Exporter::start(&[]);
            let out = ok(&fill(cmd, &[("instance", &e.addr.to_string())]));
            assert!(out.contains("# TYPE nsexporter_"), "{out}");
        }
        "curl http://<instance>/readyz" => {
            // Ready, then not ready with the reason once the procfs it reads is gone.
            let dir = tempfile::tempdir().expect("tempdir");
            let procfs = dir.path().join("proc");
            ok(&format!(
                "cp -a {} {}",
                common::fixture_proc().display(),
                procfs.display()
            ));
            let e = Exporter::start(&[
                "--path.procfs",
                &procfs.display().to_string(),
                "--scan.interval",
                "1s",
            ]);
            let url = fill(cmd, &[("instance", &e.addr.to_string())]);
            // Ready once its first scan is in (it listens before that).
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let out = ok(&url);
                if out.trim() == "ok" {
                    break;
                }
                assert!(
                    out.starts_with("not ready: no scan has completed yet")
                        && std::time::Instant::now() < deadline,
                    "not ready within 10 s: {out}"
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            std::fs::rename(&procfs, dir.path().join("gone")).unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let out = ok(&url);
                if out.starts_with("not ready: ") {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "still {out:?}");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
        "nsexporter --once --log.level debug" => {
            let r = sh(cmd);
            assert!(r.ok, "{}", r.stderr);
            assert!(
                r.stdout.contains("# TYPE nsexporter_"),
                "no metrics on stdout"
            );
            assert!(
                r.stderr
                    .lines()
                    .any(|l| l.contains("DEBUG") || l.contains("level=debug")),
                "no debug line on stderr:\n{}",
                r.stderr
            );
        }
        other => panic!(
            "the README's runbooks run `{other}`, which tests/runbooks.rs does not check: \
             add a check (or, for a command that needs a cluster, add it to CLUSTER_ONLY)"
        ),
    }
}

#[test]
fn every_runbook_command_shows_what_the_readme_says() {
    let commands = readme_commands();
    assert!(
        commands.len() > 20,
        "only {} commands found",
        commands.len()
    );
    for c in CLUSTER_ONLY
        .iter()
        .chain(CHECKED_ELSEWHERE.iter().map(|(c, _)| c))
    {
        assert!(
            commands.iter().any(|r| r == c),
            "this test lists `{c}`, which the README's runbooks no longer run"
        );
    }
    let node = Node::start();
    for cmd in &commands {
        if CLUSTER_ONLY.contains(&cmd.as_str()) {
            eprintln!("not run here (needs a Kubernetes cluster): {cmd}");
            continue;
        }
        if let Some((_, by)) = CHECKED_ELSEWHERE.iter().find(|(c, _)| c == cmd) {
            eprintln!("run by {by}: {cmd}");
            continue;
        }
        eprintln!("checking: {cmd}");
        check(cmd, &node);
    }
}

/// The lines `inspect` prints to enter a process: the full `nsenter` line, and the
/// one-namespace commands with what each shows.
fn inspect_hints(text: &str) -> (String, Vec<(String, String)>) {
    let mut lines = text.lines();
    lines
        .by_ref()
        .find(|l| l.starts_with("Enter only the namespaces"))
        .unwrap_or_else(|| panic!("no nsenter hint in:\n{text}"));
    let full = lines.next().expect("the nsenter line").trim().to_owned();
    assert!(full.starts_with("nsenter -t "), "{full}");
    let looks = lines
        .skip_while(|l| !l.starts_with("One namespace at a time"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let (cmd, what) = l
                .trim()
                .split_once("  ")
                .expect("command, then what it shows");
            (cmd.to_owned(), what.trim().to_owned())
        })
        .collect();
    (full, looks)
}

#[test]
fn every_command_inspect_prints_shows_what_it_says() {
    let image = common::docker::busybox_image();
    let c = Container::run(&[
        "--network",
        "none",
        "--hostname",
        "hint-private",
        "--entrypoint",
        "/bin/sh",
        image,
        "-c",
        "nc -ll -p 7777 -e /bin/cat & exec sleep 3600",
    ]);
    let pid = c.pid().to_string();
    // What the host has and the container must not show.
    let host_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let host_port = format!(":{}", host_listener.local_addr().unwrap().port());
    let shm = HostShm::create();

    let text = ok(&format!("nsexporter inspect {pid} --no-color"));
    let (full, looks) = inspect_hints(&text);
    assert_eq!(full, format!("nsenter -t {pid} -n -p -i -u -m"), "{text}");
    // The full line, followed by a command from the container's files.
    assert_eq!(ok(&format!("{full} hostname")).trim(), "hint-private");
    let ps = ok(&format!("{full} ps -ef"));
    assert!(
        ps.contains("nc -ll -p 7777") && !ps.contains("kthreadd"),
        "{ps}"
    );

    let mut seen = BTreeSet::new();
    for (cmd, what) in &looks {
        let out = ok(cmd);
        let kind = what.split(' ').nth(1).unwrap_or_default();
        match kind {
            "sockets" => {
                assert!(out.contains(":7777"), "{cmd}: {out}");
                assert!(
                    !out.contains(&host_port),
                    "{cmd} shows the host's socket: {out}"
                );
            }
            "processes" => {
                let rows = rows(&out);
                assert_eq!(rows[1][0], "1", "{cmd}: {out}");
                assert!(
                    out.contains("nc -ll -p 7777") && !out.contains("kthreadd"),
                    "{out}"
                );
                assert!(rows.len() <= 4, "{cmd}: more than sleep, nc and ps: {out}");
            }
            "IPC" => {
                let listed = |o: &str| rows(o).iter().any(|r| r.get(1) == Some(&shm.0));
                assert!(listed(&ok("ipcs")), "the host's ipcs misses its segment");
                assert!(
                    !listed(&out),
                    "{cmd} shows the host's segment {}: {out}",
                    shm.0
                );
            }
            "hostname" => assert_eq!(out.trim(), "hint-private", "{cmd}"),
            "mounts" => {
                // Docker's bind mounts over the container's /etc, not the host's mounts.
                assert!(out.contains("/etc/hostname"), "{cmd}: {out}");
                assert_ne!(out, ok("findmnt"), "{cmd} shows the host's mounts");
            }
            other => {
                panic!("inspect prints `{cmd}` ({what}), which this test does not check ({other})")
            }
        }
        seen.insert(kind.to_owned());
    }
    assert_eq!(
        seen,
        BTreeSet::from(["sockets", "processes", "IPC", "hostname", "mounts"].map(String::from)),
        "{text}"
    );

    // A container in its own user namespace: the line has -U, and the note on it holds:
    // without -U host root enters the others and stays host root; with it, root is the
    // container's, host UID 100000.
    let userns = PodmanUserns::start();
    let upid = userns.pid();
    let text = ok(&format!("nsexporter inspect {upid} --no-color"));
    let (full, _) = inspect_hints(&text);
    assert!(full.ends_with(" -U"), "{full}");
    assert!(
        text.contains(
            "-U makes you root of its user namespace only; host root can enter the others without it."
        ),
        "{text}"
    );
    let without_u = full.trim_end_matches(" -U");
    let map = |cmd: &str| rows(&ok(&format!("{cmd} cat /proc/self/uid_map")));
    assert_eq!(map(without_u), [["0", "0", "4294967295"]]);
    assert_eq!(map(&full), [["0", "100000", "65536"]]);
    assert_eq!(ok(&format!("{full} id -u")).trim(), "0");
}

/// `docker exec <c> sh -c <script>`: whether it succeeded, and its stdout.
fn exec(c: &Container, script: &str) -> (bool, String) {
    let out = Command::new("docker")
        .args(["exec", &c.id, "sh", "-c", script])
        .output()
        .expect("run docker exec");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn what_diff_says_two_containers_share_holds_between_them() {
    let image = common::docker::busybox_image();
    // A listens on localhost:7777; B joins its network, PID and IPC namespaces (as
    // containers of one pod do); C is a container of its own.
    let a = Container::run(&[
        "--network",
        "none",
        "--ipc",
        "shareable",
        "--hostname",
        "diff-a",
        "--entrypoint",
        "/bin/sh",
        image,
        "-c",
        "nc -ll -p 7777 -e /bin/cat & exec sleep 3600",
    ]);
    let joined = format!("container:{}", a.id);
    let b = Container::busybox(&["--network", &joined, "--pid", &joined, "--ipc", &joined]);
    let c = Container::busybox(&["--network", "none"]);
    let (pa, pb, pc) = (
        a.pid().to_string(),
        b.pid().to_string(),
        c.pid().to_string(),
    );
    let shm = ok(&format!("nsenter -t {pa} -i ipcmk -M 4096"));
    let shmid = shm.split_whitespace().last().expect("shm id").to_owned();
    assert!(exec(&a, "echo x > /only-in-a").0);

    for (other, other_pid) in [(&b, &pb), (&c, &pc)] {
        let text = ok(&format!("nsexporter diff {pa} {other_pid} --no-color"));
        let sentences: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("- ")).collect();
        assert_eq!(sentences.len(), 8, "{text}");
        for s in sentences {
            let (ty, same) = match s.split_once(' ') {
                Some(("same", rest)) => (rest.split(' ').next().unwrap_or_default(), true),
                Some(("different", rest)) => (rest.split(' ').next().unwrap_or_default(), false),
                _ => panic!("diff says {s:?}, which this test does not check"),
            };
            match (ty, same) {
                ("network", true) => {
                    assert!(s.contains("they reach each other on localhost"), "{s}");
                    let (ok, out) = exec(other, "echo hi | nc -w 2 127.0.0.1 7777");
                    assert!(ok && out.trim() == "hi", "{s}: not reached: {out}");
                }
                ("network", false) => {
                    assert!(s.contains("localhost in one is not the other"), "{s}");
                    assert!(!exec(other, "echo hi | nc -w 2 127.0.0.1 7777").0, "{s}");
                }
                ("mount", false) => {
                    assert!(s.contains("does not see the other's files"), "{s}");
                    assert!(!exec(other, "cat /only-in-a").0, "{s}: sees A's file");
                }
                ("PID", true) => {
                    assert!(
                        s.contains("see and can signal each other's processes"),
                        "{s}"
                    );
                    let (_, ps) = exec(other, "ps");
                    let nc = rows(&ps)
                        .into_iter()
                        .find(|r| r.iter().any(|w| w == "nc"))
                        .unwrap_or_else(|| panic!("{s}: A's nc not seen:\n{ps}"));
                    assert!(
                        exec(other, &format!("kill -0 {}", nc[0])).0,
                        "{s}: no signal"
                    );
                }
                ("PID", false) => {
                    assert!(s.contains("do not see each other's processes"), "{s}");
                    assert!(!exec(other, "ps").1.contains("nc -ll"), "{s}");
                }
                ("IPC", same) => {
                    let listed = rows(&ok(&format!("nsenter -t {other_pid} -i ipcs -m")))
                        .iter()
                        .any(|r| r.get(1) == Some(&shmid));
                    assert_eq!(listed, same, "{s}: A's segment {shmid}");
                }
                ("UTS", false) => {
                    // Docker gives a container that joins A's network A's hostname, in
                    // a UTS namespace of its own: renaming one leaves the other.
                    assert!(s.contains("their hostnames can differ"), "{s}");
                    ok(&format!("nsenter -t {other_pid} -u hostname renamed"));
                    assert_eq!(exec(other, "hostname").1.trim(), "renamed", "{s}");
                    assert_eq!(exec(&a, "hostname").1.trim(), "diff-a", "{s}");
                }
                ("user" | "cgroup" | "time", true) => {
                    // "...; it is the host's": both are in kthreadd's namespace.
                    assert!(s.ends_with("it is the host's"), "{s}");
                    let host = std::fs::read_link(format!("/proc/2/ns/{ty}")).unwrap();
                    for pid in [&pa, other_pid] {
                        let link = std::fs::read_link(format!("/proc/{pid}/ns/{ty}")).unwrap();
                        assert_eq!(link, host, "{s}: {pid}");
                    }
                }
                _ => panic!("diff says {s:?}, which this test does not check"),
            }
        }
    }
}

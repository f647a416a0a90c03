//! Container identity a workload cannot forge from a delegated cgroup subtree, on the
//! real kernel and a real Docker container: a user to whom a cgroup is delegated (its
//! directory and `cgroup.procs` chowned to them, as systemd does for `Delegate=yes`
//! with `User=`) creates `docker-<the real container's id>.scope` and
//! `kubepods-pod<uid>.slice/cri-containerd-<id>.scope` below it and moves a process
//! there. nsexporter marks both as that user's (`docker://user-<uid>/<id>`, no pod UID)
//! and never merges them with the real container's series. The same shapes made by
//! root are taken as the runtime's; a container's own directory chowned to a user (as
//! runtimes do for user-namespaced containers) marks nothing.
//!
//! Needs root, the v2 hierarchy at /sys/fs/cgroup/unified (this hybrid host) and a
//! running dockerd (`tests/docker/start-dockerd.sh`). Every cgroup, process and
//! container made here is removed on drop, pass or fail.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SLEEPER: &str = "nsexporter-delegation-sleeper:test";
const USER: u32 = 4242;

/// The v2 hierarchy: `/sys/fs/cgroup` on a unified host, `…/unified` on a hybrid one.
fn v2_root() -> PathBuf {
    for p in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
        if Path::new(p).join("cgroup.procs").exists()
            && Path::new(p).join("cgroup.subtree_control").exists()
        {
            return PathBuf::from(p);
        }
    }
    panic!("no cgroup v2 hierarchy under /sys/fs/cgroup");
}

fn docker(args: &[&str]) -> String {
    let out = Command::new(require_tool("docker"))
        .args(args)
        .output()
        .expect("docker (start it with tests/docker/start-dockerd.sh)");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A FROM-scratch image around the host's static busybox, `sleep` as its command.
fn sleeper_image() {
    let ctx = tempfile::tempdir().unwrap();
    let bin = ctx.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("a static /bin/busybox");
    std::os::unix::fs::symlink("busybox", bin.join("sleep")).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY bin/ /bin/\nENTRYPOINT [\"/bin/sleep\"]\nCMD [\"3600\"]\n",
    )
    .unwrap();
    let out = Command::new(require_tool("docker"))
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", SLEEPER])
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real container, removed on drop.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new(require_tool("docker"))
            .args(["rm", "-f", &self.0])
            .output();
    }
}

/// Cgroups (removed deepest first) and processes (killed first) made by the test.
#[derive(Default)]
struct Made {
    children: Vec<Child>,
    cgroups: Vec<PathBuf>,
}

impl Made {
    fn mkdir(&mut self, p: &Path) {
        std::fs::create_dir(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        self.cgroups.push(p.to_path_buf());
    }

    /// Delegate `dir` to `uid` as the kernel's model says: the directory, its
    /// `cgroup.procs` and `cgroup.subtree_control`.
    fn delegate(dir: &Path, uid: u32) {
        for p in [
            dir.to_path_buf(),
            dir.join("cgroup.procs"),
            dir.join("cgroup.subtree_control"),
        ] {
            std::os::unix::fs::chown(&p, Some(uid), Some(uid)).unwrap();
        }
    }

    /// A `sleep` run as `uid` that root first places in `start`, and that then, as
    /// itself, makes `leaf` (relative to `start`, every level) and moves itself there.
    /// Returns its PID once it sleeps in `leaf`.
    fn user_process(&mut self, uid: u32, start: &Path, leaf: &str) -> u32 {
        let dirs: Vec<String> = {
            let mut acc = start.to_path_buf();
            leaf.split('/')
                .map(|c| {
                    acc.push(c);
                    acc.display().to_string()
                })
                .collect()
        };
        let target = dirs.last().unwrap().clone();
        let script = format!(
            "read _ && mkdir {} && echo $$ > '{target}/cgroup.procs' && exec sleep 600",
            dirs.iter()
                .map(|d| format!("'{d}'"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mut child = Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                "sh",
                "-c",
                &script,
            ])
            .stdin(Stdio::piped())
            .spawn()
            .expect("setpriv");
        let pid = child.id();
        let mut stdin = child.stdin.take().unwrap();
        self.children.push(child);
        for d in &dirs {
            self.cgroups.push(PathBuf::from(d));
        }
        std::fs::write(start.join("cgroup.procs"), pid.to_string()).expect("place the process");
        stdin.write_all(b"go\n").unwrap();
        drop(stdin);
        wait_in(pid, &target);
        pid
    }

    /// `sleep` placed by root in `dir`.
    fn root_process(&mut self, dir: &Path) -> u32 {
        let child = Command::new("sleep").arg("600").spawn().unwrap();
        let pid = child.id();
        self.children.push(child);
        std::fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
        pid
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let mut dirs = self.cgroups.clone();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        dirs.dedup();
        for d in dirs {
            let deadline = Instant::now() + Duration::from_secs(5);
            while d.exists() && std::fs::remove_dir(&d).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if d.exists() {
                eprintln!("cleanup: cannot remove {}", d.display());
            }
        }
    }
}

/// Wait until `pid` sleeps in the v2 cgroup directory `dir`.
fn wait_in(pid: u32, dir: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let procs = std::fs::read_to_string(format!("{dir}/cgroup.procs")).unwrap_or_default();
        if comm.trim() == "sleep" && procs.lines().any(|l| l == pid.to_string()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} never slept in {dir}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ids_of(s: &[Sample]) -> Vec<String> {
    let mut v: Vec<String> = find(s, "nsexporter_container_info", &[])
        .iter()
        .map(|x| x.labels["container_id"].clone())
        .collect();
    v.sort();
    v
}

#[test]
fn a_delegated_subtree_cannot_forge_or_merge_into_a_real_container() {
    require_root("cgroups, chown, setpriv and docker");
    sleeper_image();
    let real = Container(docker(&[
        "run",
        "-d",
        "--label",
        "nsexporter-test=delegation",
        SLEEPER,
    ]));
    let id = real.0.clone();
    assert_eq!(id.len(), 64);
    let real_pid: u32 = docker(&["inspect", "-f", "{{.State.Pid}}", &id])
        .parse()
        .unwrap();
    let root = v2_root();
    let mut made = Made::default();
    let top = root.join(format!("nsxdeleg-{}", rand_hex(8)));
    made.mkdir(&top);

    // A delegated service's cgroup, as systemd makes it for Delegate=yes, User=4242.
    let delegated = top.join("delegated.service");
    made.mkdir(&delegated);
    Made::delegate(&delegated, USER);
    let forged_docker = made.user_process(USER, &delegated, &format!("docker-{id}.scope"));
    let pod = rand_uuid();
    let fake = rand_hex(64);
    let forged_pod = made.user_process(
        USER,
        &delegated,
        &format!(
            "kubepods.slice/kubepods-pod{}.slice/cri-containerd-{fake}.scope",
            pod.replace('-', "_")
        ),
    );
    // The same shape made by root: the runtime's naming (root is trusted to name).
    let system = top.join("system.slice");
    made.mkdir(&system);
    let other = rand_hex(64);
    let scope = system.join(format!("docker-{other}.scope"));
    made.mkdir(&scope);
    let system_pid = made.root_process(&scope);
    // A container's own directory chowned to its (user-namespaced) root, as runtimes
    // do: still the runtime's container.
    let own = rand_hex(64);
    let own_dir = system.join(format!("docker-{own}.scope"));
    made.mkdir(&own_dir);
    let own_pid = made.root_process(&own_dir);
    Made::delegate(&own_dir, 100_000);

    for (what, pid) in [
        ("real", real_pid),
        ("forged docker", forged_docker),
        ("forged pod", forged_pod),
        ("system", system_pid),
        ("own dir chowned", own_pid),
    ] {
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        eprintln!(
            "{what} ({pid}): {}",
            cg.lines().find(|l| l.starts_with("0::")).unwrap_or("")
        );
    }

    let text = once(&[]);
    let s = parse_exposition(&text);
    let ids = ids_of(&s);
    eprintln!("containers: {ids:?}");
    let real_id = format!("docker://{id}");
    let marked = format!("docker://user-{USER}/{id}");
    // The real container: its own series only (its root process, private network).
    assert_eq!(
        value(
            &s,
            "nsexporter_container_host_root_processes",
            &[("container_id", &real_id)]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        find(
            &s,
            "nsexporter_container_host_namespace",
            &[("container_id", &real_id), ("type", "net")]
        )
        .is_empty(),
        "the forged process put the real container on the host network:\n{text}"
    );
    // The forgery: reported, marked as the user's, with its host-network process.
    assert_eq!(
        value(
            &s,
            "nsexporter_container_host_namespace",
            &[("container_id", &marked), ("type", "net")]
        ),
        Some(1.0),
        "{text}"
    );
    let forged = format!("containerd://user-{USER}/{fake}");
    let f = find(
        &s,
        "nsexporter_container_info",
        &[("container_id", &forged)],
    );
    assert_eq!(f.len(), 1, "{text}");
    assert_eq!(
        f[0].labels["uid"], "",
        "a delegated subtree claimed a pod UID"
    );
    assert!(!text.contains(&pod), "the forged pod UID appears:\n{text}");
    // Root's own naming, and a container's own directory chowned: not marked.
    assert!(ids.contains(&format!("docker://{other}")), "{ids:?}");
    assert!(ids.contains(&format!("docker://{own}")), "{ids:?}");
    assert!(!ids.iter().any(|i| i.contains("user-100000")), "{ids:?}");

    // The report says whose it is.
    let out = Command::new(BIN)
        .args(["report", "--json", "--all"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let c = v["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["container_id"] == marked.as_str())
        .expect("the forgery in report --json");
    assert_eq!(c["owner_uid"], USER);

    // From a cgroup namespace of its own, as in a pod on a cgroup v2 node: the paths
    // read `/../delegated.service/…` and `/../../docker/<id>`; nsexporter finds its own
    // namespace root in the host's hierarchy and judges the same.
    let exporter = top.join("exporter");
    made.mkdir(&exporter);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > '{}/cgroup.procs' && exec unshare --cgroup \"$0\" --once --log.format logfmt --log.level debug",
            exporter.display()
        ))
        .arg(BIN)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("level=warn"), "{err}");
    let root_line = err
        .lines()
        .find(|l| l.contains("cgroup namespace root"))
        .unwrap_or_else(|| panic!("the namespace root was not looked for: {err}"));
    eprintln!("in a cgroup namespace: {root_line}");
    let s = parse_exposition(&String::from_utf8_lossy(&out.stdout));
    let ids = ids_of(&s);
    assert!(ids.contains(&marked), "{ids:?}");
    assert!(ids.contains(&forged), "{ids:?}");
    assert!(ids.contains(&real_id), "{ids:?}");
    assert!(ids.contains(&format!("docker://{own}")), "{ids:?}");
    assert!(find(
        &s,
        "nsexporter_container_host_namespace",
        &[("container_id", &real_id), ("type", "net")]
    )
    .is_empty());

    // Without the host's cgroup hierarchies (--path.sysfs elsewhere) nothing can be
    // checked: it says so, and paths are taken at their word, as before.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--once", "--log.format", "logfmt", "--path.sysfs"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("not mounted under --path.sysfs"))
        .unwrap_or_else(|| panic!("no warning: {err}"));
    assert!(line.contains("level=warn"), "{line}");
    let s = parse_exposition(&String::from_utf8_lossy(&out.stdout));
    assert!(!ids_of(&s).contains(&marked));
}

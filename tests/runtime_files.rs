//! Names and declared namespaces from the runtimes' own files, through the real binary:
//! - a runc-style bundle written here under a temporary `--path.rootfs`, for a real
//!   process in a containerd-shaped cgroup, whose declared namespaces differ from the
//!   kernel's view: drift for exactly the types that differ;
//! - hostile bundles: counted errors, no crash, no secret in the output or the log;
//! - real Docker with the labels cri-dockerd sets, and a real Podman pod: the names
//!   appear in `/metrics` and in `report`.
//!
//! Needs root (cgroups, namespaces), a running dockerd (`tests/docker/start-dockerd.sh`,
//! which .ci/run calls) and podman with runc and catatonit (.ci/run installs them).

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

const SECRET: &str = "s3cr3t-from-the-bundle-env";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// `nsexporter <args>`; panics unless it exits 0; returns stdout and stderr.
fn nsexporter(args: &[&str]) -> (String, String) {
    let out = run(Command::new(BIN).args(args));
    assert!(
        out.status.success(),
        "nsexporter {args:?} failed: {}",
        text(&out.stderr)
    );
    (text(&out.stdout), text(&out.stderr))
}

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn containerd_bundle(id: &str) -> String {
    format!("run/containerd/io.containerd.runtime.v2.task/k8s.io/{id}/config.json")
}

/// A bundle as containerd's CRI plugin writes it, trimmed: the process's environment
/// (with a secret), CRI annotations, and `namespaces` listing `types` without paths.
fn spec(pod: &str, container: &str, types: &[&str], uid_mappings: bool) -> String {
    let ns: Vec<String> = types
        .iter()
        .map(|t| format!(r#"{{"type":"{t}"}}"#))
        .collect();
    let maps = if uid_mappings {
        r#","uidMappings":[{"containerID":0,"hostID":65536,"size":65536}],"gidMappings":[{"containerID":0,"hostID":65536,"size":65536}]"#
    } else {
        ""
    };
    format!(
        r#"{{"ociVersion":"1.1.0","process":{{"user":{{"uid":0,"gid":0}},"args":["/bin/sleep","600"],"env":["PATH=/usr/bin","API_TOKEN={SECRET}"],"cwd":"/"}},
"root":{{"path":"rootfs"}},
"annotations":{{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-namespace":"shop","io.kubernetes.cri.sandbox-name":"{pod}","io.kubernetes.cri.container-name":"{container}","io.kubernetes.cri.sandbox-uid":"x"}},
"linux":{{"namespaces":[{}]{maps},"maskedPaths":["/proc/kcore"]}}}}"#,
        ns.join(",")
    )
}

fn info_of<'a>(samples: &'a [Sample], container_id: &str) -> &'a Sample {
    let info = find(
        samples,
        "nsexporter_container_info",
        &[("container_id", container_id)],
    );
    assert_eq!(info.len(), 1, "container_info of {container_id}: {info:?}");
    info[0]
}

fn drift_of(samples: &[Sample], container_id: &str) -> Vec<(String, String, f64)> {
    let mut v: Vec<_> = find(
        samples,
        "nsexporter_container_namespace_drift",
        &[("container_id", container_id)],
    )
    .into_iter()
    .map(|s| {
        (
            s.labels["type"].clone(),
            s.labels["declared"].clone(),
            s.value,
        )
    })
    .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The issue's case: a bundle declares private net and user namespaces (as a pod with
/// `hostUsers: false` would have), and private pid, ipc, uts and mnt; the container's
/// process has private pid, ipc, uts and mnt, but is in the host's net and user
/// namespaces. Drift: net and user, declared private; none for the four that are private
/// as declared, nor for cgroup and time (not listed: the host's, and they are).
/// A second container whose bundle matches what the kernel shows has no drift at all.
#[test]
fn declared_private_net_and_user_observed_in_the_hosts() {
    common::require_root("it makes namespaces, cgroups and containers");
    let rootfs = tempfile::tempdir().unwrap();
    let mut lab = Lab::new();
    let flags = ["--mount", "--uts", "--ipc", "--pid", "--fork"];
    let drifting = lab.kube_systemd("besteffort", "cri-containerd", &flags);
    let matching = lab.kube_systemd("besteffort", "cri-containerd", &flags);
    write(
        rootfs.path(),
        &containerd_bundle(&drifting.id),
        &spec(
            "web-0",
            "app",
            &["pid", "ipc", "uts", "mount", "network", "user"],
            true,
        ),
    );
    write(
        rootfs.path(),
        &containerd_bundle(&matching.id),
        &spec("agent-x", "agent", &["pid", "ipc", "uts", "mount"], false),
    );
    let root = rootfs.path().to_str().unwrap();
    let out = once(&["--path.rootfs", root]);
    assert!(!out.contains(SECRET));
    let samples = parse_exposition(&out);
    let cid = drifting.container_id("containerd");
    assert_eq!(
        drift_of(&samples, &cid),
        vec![
            ("net".to_string(), "private".to_string(), 1.0),
            ("user".to_string(), "private".to_string(), 1.0)
        ],
        "{out}"
    );
    for s in find(
        &samples,
        "nsexporter_container_namespace_drift",
        &[("container_id", &cid)],
    ) {
        assert_eq!(s.labels["uid"], drifting.pod_uid);
        assert_eq!(s.labels["runtime"], "containerd");
    }
    let info = info_of(&samples, &cid);
    assert_eq!(info.labels["namespace"], "shop");
    assert_eq!(info.labels["pod"], "web-0");
    assert_eq!(info.labels["container"], "app");
    let ok = matching.container_id("containerd");
    assert_eq!(drift_of(&samples, &ok), vec![], "{out}");
    assert_eq!(info_of(&samples, &ok).labels["pod"], "agent-x");

    // report names them and marks the drift.
    let (report, _) = nsexporter(&["report", "--no-color", "--path.rootfs", root]);
    let line = report
        .lines()
        .find(|l| l.contains(&drifting.id[..12]))
        .unwrap_or_else(|| panic!("no row for {}:\n{report}", &drifting.id[..12]));
    assert!(line.contains("shop/web-0/app"), "{line}");
    assert!(
        report.contains(&format!(
            "drift {} (shop/web-0/app): net declared private",
            &drifting.id[..12]
        )),
        "{report}"
    );
    assert!(!report.contains(SECRET));
    let (json, _) = nsexporter(&["report", "--json", "--path.rootfs", root]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let c = v["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["container_id"] == cid.as_str())
        .unwrap_or_else(|| panic!("{cid} not in report --json: {json}"));
    assert_eq!(c["names"]["pod"], "web-0");
    assert_eq!(c["declared"]["net"], "private");
    assert_eq!(c["drift"]["net"], 1);
    assert_eq!(c["drift"]["user"], 1);
}

/// Hostile bundles, each for a real process in a containerd-shaped cgroup: every read
/// fails with a counted error of its kind; the exporter keeps serving; neither the
/// exposition nor a debug-level log holds the secret that each one plants.
#[test]
fn hostile_bundles_through_the_binary() {
    common::require_root("it makes namespaces, cgroups and containers");
    let rootfs = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret_file = outside.path().join("secret");
    std::fs::write(&secret_file, format!("root:{SECRET}:19000:0:99999:7:::\n")).unwrap();
    let mut lab = Lab::new();
    let mut member = || lab.kube_systemd("besteffort", "cri-containerd", &["--uts"]);
    let (huge, link, linkrel, malformed, deep, gone) =
        (member(), member(), member(), member(), member(), member());
    let root = rootfs.path();
    // A sparse 16 GiB config.json.
    let p = root.join(containerd_bundle(&huge.id));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::File::create(&p)
        .unwrap()
        .set_len(16 << 30)
        .unwrap();
    // config.json -> a file with a secret outside the root, and -> /etc/shadow via `..`.
    let p = root.join(containerd_bundle(&link.id));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    symlink(&secret_file, &p).unwrap();
    let p = root.join(containerd_bundle(&linkrel.id));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    symlink("../../../../../../../../../etc/shadow", &p).unwrap();
    write(
        root,
        &containerd_bundle(&malformed.id),
        &format!(
            r#"{{"process":{{"env":["API_TOKEN={SECRET}"],"annotations":{{"io.kubernetes.cri.sandbox-name":["{SECRET}"]"#
        ),
    );
    write(root, &containerd_bundle(&deep.id), &"[".repeat(1 << 20));
    // The container is still running, but its bundle is gone.
    std::fs::create_dir_all(root.join("run/containerd/io.containerd.runtime.v2.task/k8s.io"))
        .unwrap();
    let _ = gone;
    let mut exporter = Exporter::start(&[
        "--path.rootfs",
        root.to_str().unwrap(),
        "--scan.interval",
        "1s",
        "--log.level",
        "debug",
    ]);
    exporter.wait_ready();
    let want = [
        ("too_large", 1.0),
        ("symlink", 2.0),
        ("parse", 2.0),
        ("missing", 1.0),
    ];
    let samples = exporter.scrape_until(Duration::from_secs(20), "runtime read errors", |s| {
        want.iter().all(|(kind, n)| {
            value(
                s,
                "nsexporter_runtime_read_errors_total",
                &[("runtime", "containerd"), ("kind", kind)],
            )
            .is_some_and(|v| v >= *n)
        })
    });
    for (kind, n) in want {
        if kind == "missing" {
            // Lab containers of other tests running now have no bundle here either.
            continue;
        }
        // Read once per container, not once per scan.
        assert_eq!(
            value(
                &samples,
                "nsexporter_runtime_read_errors_total",
                &[("runtime", "containerd"), ("kind", kind)]
            ),
            Some(n),
            "{kind}"
        );
    }
    for m in [&huge, &link, &linkrel, &malformed, &deep, &gone] {
        let info = info_of(&samples, &m.container_id("containerd"));
        assert_eq!(info.labels["pod"], "");
        assert!(drift_of(&samples, &m.container_id("containerd")).is_empty());
    }
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.iter().any(|l: &String| l.contains("runtime files")) {
        assert!(
            Instant::now() < deadline,
            "the debug log does not name the failures: {log:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
        log.extend(exporter.drain_log());
    }
    let body = exporter.get("/metrics").body;
    assert!(exporter.alive(), "the exporter died");
    log.extend(exporter.drain_log());
    let log = log.join("\n");
    // The terminal report reads the same bundles.
    let root = root.to_str().unwrap();
    let (report, report_err) =
        nsexporter(&["report", "--no-color", "--all", "--path.rootfs", root]);
    let (json, json_err) = nsexporter(&["report", "--json", "--all", "--path.rootfs", root]);
    assert!(
        report.contains(&huge.id[..12]),
        "report lists the containers: {report}"
    );
    for (what, s) in [
        ("exposition", &body),
        ("log", &log),
        ("report", &format!("{report}{report_err}")),
        ("JSON report", &format!("{json}{json_err}")),
    ] {
        assert!(!s.contains(SECRET), "the secret is in the {what}");
        assert!(!s.contains("API_TOKEN"), "the environment is in the {what}");
    }
}

// ---------------------------------------------------------------------------------
// Real runtimes

const SLEEPER: &str = "nsexporter-sleeper:test";
const PODMAN_IMAGE: &str = "localhost/nsexporter-sleeper:test";

fn docker(args: &[&str]) -> String {
    let out = run(Command::new("docker").args(args));
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_string()
}

/// A FROM-scratch image with the host's static busybox, `sleep` as its entrypoint.
fn sleeper_context() -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    let bin = ctx.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap_or_else(|e| {
        panic!("no /bin/busybox ({e}): {SETUP} installs Debian's busybox-static")
    });
    symlink("busybox", bin.join("sleep")).unwrap();
    ctx
}

struct DockerContainer(String);

impl Drop for DockerContainer {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.0])
            .output();
    }
}

/// Docker with the labels cri-dockerd puts on a pod's container: the names appear in
/// `/metrics` (the container runs as host root, so it is named by a per-container
/// series) and in `report`.
#[test]
fn docker_names_from_cri_dockerd_labels() {
    common::require_root("it makes namespaces, cgroups and containers");
    require_dockerd();
    if docker(&["images", "-q", SLEEPER]).is_empty() {
        let ctx = sleeper_context();
        std::fs::write(
            ctx.path().join("Dockerfile"),
            "FROM scratch\nCOPY bin/ /bin/\nENTRYPOINT [\"/bin/sleep\"]\nCMD [\"3600\"]\n",
        )
        .unwrap();
        let out = run(Command::new("docker")
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", SLEEPER])
            .arg(ctx.path()));
        assert!(out.status.success(), "docker build: {}", text(&out.stderr));
    }
    let pod = format!("web-{}", rand_hex(6));
    let c = DockerContainer(docker(&[
        "run",
        "-d",
        "--label",
        "nsexporter-test=runtime_files",
        "--label",
        "io.kubernetes.pod.namespace=shop",
        "--label",
        &format!("io.kubernetes.pod.name={pod}"),
        "--label",
        "io.kubernetes.container.name=app",
        "--label",
        "io.kubernetes.pod.uid=0f2a9c1e-1111-2222-3333-444455556666",
        "-e",
        &format!("API_TOKEN={SECRET}"),
        SLEEPER,
        "600",
    ]));
    let cid = format!("docker://{}", c.0);
    let out = once(&[]);
    assert!(!out.contains(SECRET));
    let samples = parse_exposition(&out);
    let info = info_of(&samples, &cid);
    assert_eq!(info.labels["namespace"], "shop");
    assert_eq!(info.labels["pod"], pod);
    assert_eq!(info.labels["container"], "app");
    // Docker's default: private net, pid, ipc, uts, mnt, as declared: no drift.
    assert_eq!(drift_of(&samples, &cid), vec![]);
    let (report, _) = nsexporter(&["report", "--no-color", "--all"]);
    assert!(
        report.contains(&format!("shop/{pod}/app")),
        "report names the container:\n{report}"
    );
    assert!(!report.contains(SECRET));
}

struct PodmanPod(String);

impl Drop for PodmanPod {
    fn drop(&mut self) {
        let _ = Command::new("podman")
            .args(["pod", "rm", "-f", &self.0])
            .output();
    }
}

/// `podman` with the settings this machine needs: runc, and explicit ulimits (the
/// defaults exceed what the sandbox allows), through a containers.conf of our own.
fn podman(conf: &Path, args: &[&str]) -> String {
    let out = run(Command::new("podman")
        .env("CONTAINERS_CONF", conf)
        .args(args));
    assert!(
        out.status.success(),
        "podman {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_string()
}

/// A real Podman pod (its infra container and one container in it): pod and container
/// names from Podman's database appear in `/metrics` and in `report`.
#[test]
fn podman_pod_and_container_names() {
    common::require_root("it makes namespaces, cgroups and containers");
    require_tool("podman");
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("containers.conf");
    std::fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n[engine]\nruntime = \"runc\"\n",
    )
    .unwrap();
    if podman(&conf, &["images", "-q", PODMAN_IMAGE]).is_empty() {
        let ctx = sleeper_context();
        let tar = run(Command::new("tar")
            .arg("-C")
            .arg(ctx.path())
            .args(["-cf", "-", "."]));
        assert!(tar.status.success());
        let mut child = Command::new("podman")
            .env("CONTAINERS_CONF", &conf)
            .args([
                "import",
                "--change",
                "ENTRYPOINT [\"/bin/sleep\"]",
                "-",
                PODMAN_IMAGE,
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("podman import");
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), &tar.stdout).unwrap();
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success(), "podman import failed");
    }
    let name = format!("nsxpod-{}", rand_hex(6));
    podman(&conf, &["pod", "create", "--name", &name]);
    let pod = PodmanPod(name.clone());
    let ctr = podman(
        &conf,
        &[
            "run",
            "-d",
            "--pod",
            &pod.0,
            "--name",
            &format!("{name}-app"),
            "-e",
            &format!("API_TOKEN={SECRET}"),
            PODMAN_IMAGE,
            "600",
        ],
    );
    let cid = format!("podman://{ctr}");
    let out = once(&[]);
    assert!(!out.contains(SECRET));
    let samples = parse_exposition(&out);
    let info = info_of(&samples, &cid);
    assert_eq!(info.labels["pod"], name);
    assert_eq!(info.labels["container"], format!("{name}-app"));
    assert_eq!(info.labels["namespace"], "");
    // It joins the infra container's net, ipc and uts by /proc/<pid>/ns paths, which
    // are not the host's, and has its own pid and mnt: no drift.
    assert_eq!(drift_of(&samples, &cid), vec![]);
    let (report, _) = nsexporter(&["report", "--no-color", "--all"]);
    assert!(
        report.contains(&format!("{name}/{name}-app")),
        "report names the container:\n{report}"
    );
}

/// The README's runbook for NsexporterNamespaceDrift, run as written: its shell block,
/// with `<id>`, `<short id>`, `<pid>` and `<type>` filled in for a drifting lab
/// container, and the bundle and `nsexporter` pointed at this test's root. Each command
/// must succeed and show what the runbook says it shows.
#[test]
fn namespace_drift_runbook_commands_work() {
    common::require_root("it makes namespaces, cgroups and containers");
    require_tool("jq");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("### Alert: NsexporterNamespaceDrift")
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
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    assert_eq!(commands.len(), 4, "{commands:?}");

    let rootfs = tempfile::tempdir().unwrap();
    let root = rootfs.path().to_str().unwrap().to_string();
    let mut lab = Lab::new();
    let m = lab.kube_systemd("besteffort", "cri-containerd", &["--mount", "--uts"]);
    write(
        rootfs.path(),
        &containerd_bundle(&m.id),
        &spec("web-0", "app", &["mount", "uts", "network", "user"], true),
    );
    let mut outputs = Vec::new();
    for c in &commands {
        let cmd = c
            .replace("<short id>", &m.id[..12])
            .replace("<id>", &m.id)
            .replace("<pid>", &m.pid.to_string())
            .replace("<type>", "net")
            .replace("nsexporter ", &format!("{BIN} --path.rootfs {root} "))
            .replace(" /run/containerd/", &format!(" {root}/run/containerd/"));
        let out = run(Command::new("sh").args(["-c", &cmd]));
        assert!(
            out.status.success(),
            "runbook command failed: {cmd}\n{}",
            text(&out.stderr)
        );
        outputs.push(text(&out.stdout));
    }
    // 1: the container's row, with its names.
    assert!(outputs[0].contains("shop/web-0/app"), "{}", outputs[0]);
    // 2: the declaration: a private network namespace and a uid mapping.
    assert!(
        outputs[1].contains(r#"{"type":"network"}"#),
        "{}",
        outputs[1]
    );
    assert!(outputs[1].contains(r#""hostID":65536"#), "{}", outputs[1]);
    // 3: the kernel: the container's net namespace is the host's (the drift).
    let links: Vec<&str> = outputs[2].lines().collect();
    assert_eq!(links.len(), 2, "{}", outputs[2]);
    assert_eq!(
        links[0], links[1],
        "the process is in the host's net namespace"
    );
    // 4: root maps to root: the host's user namespace, not a private one.
    assert_eq!(
        outputs[3].split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"]
    );
}

/// A container's runtime files are read when it is first seen, and never again while
/// it lives: a warm scan adds no read (and the /proc syscall guard in tests/cache.rs
/// covers the rest of the scan).
#[test]
fn runtime_files_are_read_once_per_container() {
    use nsexporter::procfs::paths::HostPaths;
    use nsexporter::scan::{ScanOptions, Scanner};
    let mut scanner = Scanner::new(ScanOptions {
        paths: HostPaths::new(fixture_proc()).with_rootfs(fixture_rootfs()),
        ..ScanOptions::default()
    });
    let first = scanner.scan().unwrap();
    assert_eq!(first.containers.len(), 8);
    assert_eq!(scanner.runtime_reads(), 8, "one read per container");
    let named = first
        .containers
        .values()
        .filter(|c| !c.runtime_info.names.is_empty())
        .count();
    assert_eq!(named, 4, "the fixture names four of them");
    for _ in 0..3 {
        let again = scanner.scan().unwrap();
        assert_eq!(again.containers.len(), 8);
        assert_eq!(
            scanner.runtime_reads(),
            8,
            "a warm scan reads no runtime file"
        );
    }
}

/// The cache forgets a container the scan no longer finds: when a container of the
/// same ID comes back (a restart keeps the ID), its files are read again, not taken
/// from a cache that would otherwise grow with every container the node ever ran.
#[test]
fn a_gone_container_is_forgotten_and_read_again_when_it_returns() {
    use nsexporter::procfs::paths::HostPaths;
    use nsexporter::scan::{ScanOptions, Scanner};
    let tmp = tempfile::tempdir().unwrap();
    let proc_copy = tmp.path().join("proc");
    let out = run(Command::new("cp")
        .arg("-a")
        .arg(fixture_proc())
        .arg(&proc_copy));
    assert!(out.status.success(), "cp: {}", text(&out.stderr));
    let mut scanner = Scanner::new(ScanOptions {
        paths: HostPaths::new(proc_copy.clone()).with_rootfs(fixture_rootfs()),
        ..ScanOptions::default()
    });
    let first = scanner.scan().unwrap();
    assert_eq!(scanner.runtime_reads(), 8);
    // A named container with one process: take its process away, then back.
    let (id, c) = first
        .containers
        .iter()
        .find(|(_, c)| c.processes == 1 && !c.runtime_info.names.is_empty())
        .expect("the fixture has a named one-process container");
    let pid = proc_copy.join(c.main_pid.to_string());
    let aside = tmp.path().join("aside");
    std::fs::rename(&pid, &aside).unwrap();
    let without = scanner.scan().unwrap();
    assert!(
        !without.containers.contains_key(id),
        "{id:?} is still found"
    );
    assert_eq!(
        scanner.runtime_reads(),
        8,
        "no read for a container that is gone"
    );
    std::fs::rename(&aside, &pid).unwrap();
    let back = scanner.scan().unwrap();
    assert_eq!(
        back.containers[id].runtime_info, c.runtime_info,
        "the same names once it is back"
    );
    assert_eq!(
        scanner.runtime_reads(),
        9,
        "its files are read again: the cache had forgotten it"
    );
}

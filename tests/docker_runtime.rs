//! The nsexporter image on a real Docker engine, run the way the Helm chart runs it:
//! host /proc read-only at /host/proc, every capability dropped but SYS_PTRACE, a
//! read-only root filesystem, no host network. Real containers run beside it (host
//! network; host PID + host IPC; default; default as an unprivileged user) and its
//! /metrics must name each of them with the `docker://<id>` that `docker inspect`
//! gives, sharing exactly the host namespaces that the kernel says they share.
//! A second run without CAP_SYS_PTRACE must say what is missing.
//!
//! Needs a running dockerd, plus `nsenter`, `curl`, `file` and a static `/bin/busybox` on
//! the host: `tests/run.sh` installs them and starts dockerd (tests/docker/start-dockerd.sh).
//! The daemon runs without a bridge, so `-p` publishes nothing: the test reaches the
//! exporter through its own container's loopback (`nsenter --net`), which keeps all
//! traffic on 127.0.0.1 and the exporter off the host network. Every container started
//! here is removed by a Drop guard; the two small `:test` images are kept for reruns.

mod common;

use common::{
    host_links, require_dockerd, require_root, require_tool, root, shared_with_host, SETUP,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const IMAGE: &str = "nsexporter:test";
const SLEEPER: &str = "nsexporter-sleeper:test";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs `docker args...`, panics with its stderr on failure, returns trimmed stdout.
fn docker(args: &[&str]) -> String {
    let out = run(Command::new("docker").args(args));
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout).trim().to_string()
}

/// A container this test started; removed (`docker rm -f`) when dropped, pass or fail.
struct Container {
    id: String,
}

impl Container {
    fn run(args: &[&str]) -> Container {
        let mut full = vec!["run", "-d", "--label", "nsexporter-test=docker_runtime"];
        full.extend_from_slice(args);
        let id = docker(&full);
        assert_eq!(
            id.len(),
            64,
            "docker run printed {id:?}, not a container id"
        );
        Container { id }
    }

    fn inspect(&self, format: &str) -> String {
        docker(&["inspect", "--format", format, &self.id])
    }

    /// Host PID of the container's first process.
    fn pid(&self) -> u32 {
        self.inspect("{{.State.Pid}}")
            .parse()
            .expect("State.Pid is a number")
    }

    fn label(&self) -> String {
        format!("docker://{}", self.id)
    }

    fn logs(&self) -> String {
        let out = run(Command::new("docker").args(["logs", &self.id]));
        text(&out.stdout) + &text(&out.stderr)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", "-v", &self.id])
            .output();
    }
}

/// Builds both images once per test process: the exporter through the same script
/// users run, and a FROM-scratch sleeper holding the host's static busybox (no image
/// can be pulled here). `sleep` is a symlink so the sleeper's comm is "sleep".
fn images() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    require_root("it drives the Docker daemon and reads /proc/<pid>/ns of containers");
    let built = BUILT.get_or_init(|| {
        require_dockerd();
        for tool in ["nsenter", "curl", "file"] {
            require_tool(tool);
        }
        // Containers that an interrupted earlier run of this file left behind.
        let stale = docker(&[
            "ps",
            "-aq",
            "--filter",
            "label=nsexporter-test=docker_runtime",
        ]);
        for id in stale.split_whitespace() {
            docker(&["rm", "-f", "-v", id]);
        }
        let out = run(Command::new(root().join("tests/docker/build-image.sh")).arg(IMAGE));
        if !out.status.success() {
            return Err(format!(
                "tests/docker/build-image.sh failed:\n{}",
                text(&out.stderr)
            ));
        }
        let busybox = Path::new("/bin/busybox");
        let file = run(Command::new("file").arg("-L").arg(busybox));
        if !text(&file.stdout).contains("statically linked") {
            return Err(format!(
                "/bin/busybox is not static ({}); {SETUP} installs Debian's busybox-static",
                text(&file.stdout).trim()
            ));
        }
        let ctx = tempfile::tempdir().map_err(|e| e.to_string())?;
        let bin = ctx.path().join("bin");
        std::fs::create_dir(&bin).map_err(|e| e.to_string())?;
        std::fs::copy(busybox, bin.join("busybox")).map_err(|e| e.to_string())?;
        std::os::unix::fs::symlink("busybox", bin.join("sleep")).map_err(|e| e.to_string())?;
        std::fs::write(
            ctx.path().join("Dockerfile"),
            "FROM scratch\nCOPY bin/ /bin/\nENTRYPOINT [\"/bin/sleep\"]\nCMD [\"3600\"]\n",
        )
        .map_err(|e| e.to_string())?;
        let out = run(Command::new("docker")
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", SLEEPER])
            .arg(ctx.path()));
        if !out.status.success() {
            return Err(format!("building {SLEEPER} failed: {}", text(&out.stderr)));
        }
        Ok(())
    });
    if let Err(e) = built {
        panic!("{e}");
    }
}

/// The flags the Helm chart's securityContext and volume amount to.
fn exporter_args<'a>(caps: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--read-only",
        "--security-opt",
        "no-new-privileges",
        "--cap-drop",
        "ALL",
    ];
    for cap in caps {
        args.extend_from_slice(&["--cap-add", cap]);
    }
    args.extend_from_slice(&["-v", "/proc:/host/proc:ro", IMAGE]);
    args.extend_from_slice(extra);
    args
}

/// GET http://127.0.0.1:9816<path> inside the exporter container's network namespace.
fn http_get(exporter: &Container, path: &str) -> Result<String, String> {
    let netns = format!("--net=/proc/{}/ns/net", exporter.pid());
    let url = format!("http://127.0.0.1:9816{path}");
    // curl, not busybox wget: Debian's busybox-static wget crashes in glibc's static
    // resolver even for a numeric address.
    let out = run(Command::new("nsenter").args([
        netns.as_str(),
        "curl",
        "--silent",
        "--show-error",
        "--fail",
        "--max-time",
        "5",
        url.as_str(),
    ]));
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

/// One sample of the text exposition.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_exposition(body: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in body.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find('{') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => {
                let (n, r) = line.split_once(' ').expect("name value");
                (n, r)
            }
        };
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if line.contains('{') {
            loop {
                rest = rest.trim_start_matches(',');
                if let Some(r) = rest.strip_prefix('}') {
                    rest = r;
                    break;
                }
                let (key, r) = rest.split_once("=\"").expect("label=\"value\"");
                let mut value = String::new();
                let mut chars = r.char_indices();
                let end = loop {
                    match chars.next().expect("closing quote") {
                        (_, '\\') => match chars.next().expect("escape").1 {
                            'n' => value.push('\n'),
                            c => value.push(c),
                        },
                        (i, '"') => break i,
                        (_, c) => value.push(c),
                    }
                };
                labels.insert(key.to_string(), value);
                rest = &r[end + 1..];
            }
        }
        let value = rest
            .split_whitespace()
            .next()
            .expect("a value")
            .parse()
            .unwrap_or_else(|e| panic!("bad value in {line:?}: {e}"));
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

fn series<'a>(samples: &'a [Sample], name: &str) -> impl Iterator<Item = &'a Sample> {
    let name = name.to_string();
    samples.iter().filter(move |s| s.name == name)
}

/// Types the exporter says `container` shares with the host, and the processes in each.
fn reported_sharing(samples: &[Sample], container: &Container) -> BTreeMap<String, f64> {
    series(samples, "nsexporter_container_host_namespace")
        .filter(|s| s.labels.get("container_id") == Some(&container.label()))
        .map(|s| (s.labels["type"].clone(), s.value))
        .collect()
}

#[test]
fn image_is_a_small_scratch_image_running_nsexporter_as_entrypoint() {
    images();
    let config: Value = serde_json::from_str(&docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        IMAGE,
    ]))
    .expect("json");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/nsexporter"]));
    assert_eq!(
        config["Cmd"],
        serde_json::json!(["--path.procfs=/host/proc"])
    );
    assert_eq!(config["User"], "0:0");
    assert!(config["ExposedPorts"]["9816/tcp"].is_object(), "{config}");
    let layers: Value = serde_json::from_str(&docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        IMAGE,
    ]))
    .expect("json");
    assert_eq!(
        layers.as_array().map(Vec::len),
        Some(1),
        "FROM scratch + one COPY is one layer"
    );
    let size: u64 = docker(&["image", "inspect", "--format", "{{.Size}}", IMAGE])
        .parse()
        .expect("size");
    // The README's figure is this measurement: within 5 %, in MB as Docker counts them.
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let figure: f64 = readme
        .split_once("A `FROM scratch` image with one statically linked binary (")
        .and_then(|(_, rest)| rest.split_once(" MB"))
        .and_then(|(mb, _)| mb.parse().ok())
        .expect("the README's Container image section gives the image size in MB");
    let measured = size as f64 / 1e6;
    assert!(
        (measured - figure).abs() <= figure * 0.05,
        "the image is {measured:.1} MB ({size} bytes); the README says {figure} MB: update it"
    );
}

#[test]
fn exporter_in_a_container_names_the_containers_beside_it() {
    images();
    let host = host_links();

    let host_net = Container::run(&["--network", "host", SLEEPER]);
    let host_pid_ipc = Container::run(&["--pid", "host", "--ipc", "host", SLEEPER]);
    let default = Container::run(&[SLEEPER]);
    let nobody = Container::run(&["--user", "65534:65534", SLEEPER]);
    let exporter = Container::run(&exporter_args(
        &["SYS_PTRACE"],
        &[
            "--path.procfs=/host/proc",
            "--web.listen-address=:9816",
            "--scan.interval=1s",
        ],
    ));
    let sleepers = [&host_net, &host_pid_ipc, &default, &nobody];

    // Each id must be what `docker inspect` says, and the kernel's view must be the one
    // Docker documents, or the comparisons below would prove nothing.
    for c in sleepers.iter().copied().chain([&exporter]) {
        assert_eq!(c.inspect("{{.Id}}"), c.id);
    }
    let truth: Vec<BTreeSet<String>> = sleepers
        .iter()
        .map(|c| shared_with_host(c.pid(), &host))
        .collect();
    assert!(
        truth[0].contains("net") && !truth[0].contains("pid"),
        "{:?}",
        truth[0]
    );
    assert!(truth[1].contains("pid") && truth[1].contains("ipc") && !truth[1].contains("net"));
    for t in ["ipc", "mnt", "net", "pid", "uts"] {
        assert!(!truth[2].contains(t), "a default container shares {t}?");
    }
    let exporter_truth = shared_with_host(exporter.pid(), &host);
    assert!(
        !exporter_truth.contains("net"),
        "the exporter must not be on the host network"
    );

    // Scans run every second; wait (bounded) until one has seen every sleeper.
    let deadline = Instant::now() + Duration::from_secs(60);
    let samples = loop {
        let attempt = http_get(&exporter, "/metrics").map(|body| parse_exposition(&body));
        if let Ok(samples) = &attempt {
            let seen: BTreeSet<&String> = series(samples, "nsexporter_container_info")
                .filter_map(|s| s.labels.get("container_id"))
                .collect();
            if sleepers.iter().all(|c| seen.contains(&c.label())) {
                break attempt.expect("checked");
            }
        }
        assert!(
            Instant::now() < deadline,
            "after 60 s /metrics still misses a container ({attempt:?}).\nexporter logs:\n{}",
            exporter.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    };

    for (c, expected) in sleepers.iter().zip(&truth) {
        let got = reported_sharing(&samples, c);
        let got_types: BTreeSet<String> = got.keys().cloned().collect();
        assert_eq!(
            &got_types,
            expected,
            "host namespaces shared by {} (left: /metrics, right: the kernel)",
            c.label()
        );
        for (t, processes) in &got {
            assert_eq!(
                *processes,
                1.0,
                "{} has one process in the host {t}",
                c.label()
            );
        }
        let info: Vec<&Sample> = series(&samples, "nsexporter_container_info")
            .filter(|s| s.labels.get("container_id") == Some(&c.label()))
            .collect();
        assert_eq!(info.len(), 1, "{}", c.label());
        assert_eq!(info[0].labels["comm"], "sleep");
        assert_eq!(info[0].labels["runtime"], "docker");
        assert_eq!(info[0].labels["uid"], "", "no pod UID outside Kubernetes");
        assert_eq!(info[0].value, 1.0);
    }
    assert!(reported_sharing(&samples, &host_net).contains_key("net"));
    assert!(reported_sharing(&samples, &host_pid_ipc).contains_key("pid"));
    assert!(reported_sharing(&samples, &host_pid_ipc).contains_key("ipc"));
    // The exporter sees itself, and it is not on the host network either.
    let own: BTreeSet<String> = reported_sharing(&samples, &exporter).into_keys().collect();
    assert_eq!(own, exporter_truth, "the exporter's own container");

    // Every per-container series of this test's containers is labelled the way
    // kube-state-metrics joins need (other containers on the machine, such as another
    // test's podman ones, are not this test's to judge).
    let ours: BTreeSet<String> = sleepers
        .iter()
        .copied()
        .chain([&exporter])
        .map(Container::label)
        .collect();
    for s in samples.iter().filter(|s| {
        s.labels
            .get("container_id")
            .is_some_and(|id| ours.contains(id))
    }) {
        let id = &s.labels["container_id"];
        assert!(id.starts_with("docker://") && id.len() == 9 + 64, "{s:?}");
        assert_eq!(s.labels["runtime"], "docker", "{s:?}");
        assert_eq!(s.labels.get("uid").map(String::as_str), Some(""), "{s:?}");
    }

    // Root in a Docker container is host root; --user 65534 is not.
    let root_procs = |c: &Container| {
        series(&samples, "nsexporter_container_host_root_processes")
            .find(|s| s.labels.get("container_id") == Some(&c.label()))
            .map(|s| s.value)
    };
    for c in [&host_net, &host_pid_ipc, &default] {
        assert_eq!(root_procs(c), Some(1.0), "{}", c.label());
    }
    assert_eq!(root_procs(&nobody), None, "UID 65534 is not host root");

    // With CAP_SYS_PTRACE the exporter reads real host namespaces, not the fixed inodes.
    let source: Vec<&String> = series(&samples, "nsexporter_host_reference_info")
        .filter_map(|s| s.labels.get("source"))
        .collect();
    assert!(
        source == ["pid1"] || source == ["kthread"],
        "host reference source {source:?}"
    );
    let counter = |name: &str, reason: Option<&str>| -> f64 {
        series(&samples, name)
            .filter(|s| reason.is_none() || s.labels.get("reason").map(String::as_str) == reason)
            .map(|s| s.value)
            .sum()
    };
    let scans = counter("nsexporter_scans_total", None);
    let processes = counter("nsexporter_processes", None);
    let denied = counter("nsexporter_scan_errors_total", Some("permission"));
    assert!(
        scans >= 1.0 && processes >= 5.0,
        "scans {scans}, processes {processes}"
    );
    assert!(
        denied / scans < 0.1 * processes,
        "{denied} permission errors in {scans} scans of {processes} processes: \
         SYS_PTRACE should be enough"
    );

    assert!(http_get(&exporter, "/healthz").is_ok(), "/healthz");
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = http_get(&exporter, "/readyz") {
        assert!(Instant::now() < deadline, "/readyz never ready: {e}");
        std::thread::sleep(Duration::from_millis(300));
    }

    // PID 1 in its container: SIGTERM (docker stop) must end it cleanly and quickly:
    // within a 3 s grace period, after which Docker would SIGKILL it (exit code 137).
    docker(&["stop", "--time", "3", &exporter.id]);
    assert_eq!(
        exporter.inspect("{{.State.ExitCode}}"),
        "0",
        "{}",
        exporter.logs()
    );
}

#[test]
fn without_cap_sys_ptrace_it_says_what_is_missing() {
    images();
    let host_net = Container::run(&["--network", "host", SLEEPER]);
    // No --rm: the guard removes it after its logs are read.
    let once = Container::run(&exporter_args(&[], &["--path.procfs=/host/proc", "--once"]));
    let code = docker(&["wait", &once.id]);
    let out = run(Command::new("docker").args(["logs", &once.id]));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    // Blind (nearly every process unreadable): --once prints no exposition of an empty
    // node, and fails with one line that says what to do.
    assert_eq!(
        code, "1",
        "--once must fail when blind:\n{stdout}\n{stderr}"
    );
    assert!(stdout.is_empty(), "a blind --once printed:\n{stdout}");
    assert!(
        !stdout.contains(&host_net.id),
        "a container it cannot read is reported:\n{stdout}"
    );
    let line = stderr
        .lines()
        .find(|l| l.starts_with("nsexporter: "))
        .unwrap_or_else(|| panic!("no one-line message:\n{stderr}"));
    assert!(
        line.contains("CAP_SYS_PTRACE") && line.contains("unreadable"),
        "the message does not name the missing capability CAP_SYS_PTRACE: {line}"
    );
}

#[test]
fn where_ipv6_sockets_are_refused_port_alone_listens_on_ipv4() {
    images();
    // A seccomp profile that allows everything but IPv6 sockets, which fail the way
    // they do on a kernel booted with ipv6.disable=1 (EAFNOSUPPORT).
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("no-ipv6.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["socket"],
            "action": "SCMP_ACT_ERRNO", "errnoRet": 97,
            "args": [{"index": 0, "value": 10, "op": "SCMP_CMP_EQ"}]}]}"#,
    )
    .expect("write the seccomp profile");
    let seccomp = format!("seccomp={}", profile.display());
    let mut args = vec!["--security-opt", &seccomp];
    args.extend(exporter_args(
        &["SYS_PTRACE"],
        &["--path.procfs=/host/proc", "--web.listen-address=:9816"],
    ));
    let exporter = Container::run(&args);
    let deadline = Instant::now() + Duration::from_secs(30);
    let logs = loop {
        let logs = exporter.logs();
        if logs.contains("nsexporter listening") {
            break logs;
        }
        assert!(Instant::now() < deadline, "never listened:\n{logs}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        logs.contains("no IPv6 here: listening on IPv4 only"),
        "no word of the fallback:\n{logs}"
    );
    assert!(logs.contains("address=0.0.0.0:9816"), "{logs}");
    assert_eq!(http_get(&exporter, "/healthz").as_deref(), Ok("ok\n"));
}

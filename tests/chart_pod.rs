//! The Helm chart's own pod, run for real: the DaemonSet's pod template, rendered by
//! `helm template` with every value, played by `podman kube play` with the image built
//! from the Dockerfile, next to real podman containers (one on the host network, one
//! running as host root, one in a user namespace). For the default values and for every
//! chart toggle that changes the pod ([`VARIANTS`]) it checks, from the host:
//!
//! - the container process has exactly the chart's UID and GID, capabilities (CapEff,
//!   CapPrm, CapBnd of /proc/<pid>/status), no-new-privileges, seccomp, a read-only root,
//!   the host paths mounted read-only where the chart says, its arguments and
//!   environment, memory and CPU limits, and the host namespaces the chart asks for
//!   and no others;
//! - its liveness and readiness probes pass, performed as the kubelet does them;
//! - its /metrics gives the same verdicts as the bare binary (`nsexporter --once` on the
//!   host) for every container podman runs here, names from the runtime's files included;
//! - with process events on, it reports them on (`nsexporter_scan_events_enabled`) and
//!   counts an exec of a fraction of a second in a host-network container; with Podman's
//!   state mounted, it names every container as Podman does; a network namespace pinned
//!   under /run/netns after the pod started shows up in the pod (`HostToContainer`);
//!   with the alerting sidecar, its alert reaches a real Alertmanager, also one that
//!   accepts only the credentials of the Secret the chart names.
//!
//! `podman kube play` (4.3 here) does not do everything a kubelet does. Each gap is in
//! [`GAPS`] (and the README's "Deploying on Kubernetes" section, checked by
//! `gap_list_is_in_the_readme`) with its translation; [`translate`] refuses any field
//! of the pod it does not know, so a new chart field fails here until it is translated.
//!
//! Podman runs with a private storage, run and hooks directory (a temporary directory:
//! everything the test creates is removed with it, also on failure). Its graph and run
//! roots sit at a node's paths under `<dir>/node`, the node root of this test: the
//! chart's runtime hostPaths are taken from there, and the bare binary reads it as
//! `--path.rootfs`. It runs with `--runtime runc`
//! and explicit nofile/nproc limits (containers.conf), and with `--network none` or
//! `host`, so it creates no network (this machine has no bridge to give a pod).
//!
//! Needs root, podman, helm, python3 (the OCI hook) and cargo (the static build of
//! tests/docker/build-image.sh); tests/run.sh installs them. A missing tool fails the test.
//!
//! Why one file of about 1850 lines: every variant plays the same rendered pod through
//! the same translation, Podman sandbox and host-side checks; split, the translation
//! and its gap list would sit apart from the pods they are checked on.

mod am;
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use am::Alertmanager;
use common::{
    free_port, host_links, parse_exposition, require_root, require_tool, root, shared_with_host,
    Sample,
};

const RELEASE: &str = "nsx";
const NAMESPACE: &str = "monitoring";
const SLEEPER: &str = "localhost/nsexporter-sleeper:chart-pod";
/// Annotation read by tests/podman/host-namespaces-hook: namespace types (`+`-separated)
/// the pod's containers keep from the host.
const HOST_NS_ANNOTATION: &str = "io.nsexporter.test/host-namespaces";
/// hostPath volumes that are the kernel's own views of the host, mounted as they are.
const HOST_KERNEL_PATHS: [&str; 2] = ["/proc", "/sys/fs/cgroup"];

/// The chart toggles that change the pod, each run as its own pod. Every check is
/// derived from the rendered pod, so a new toggle needs only a row here (and, if it
/// adds a field `podman kube play` lacks, a translation in [`translate`] and [`GAPS`]).
/// `{free_port}` stands for a free TCP port of the host (for pods on the host network),
/// `{alertmanager}` for the URL of the test's Alertmanager on the host's loopback,
/// `{alertmanager_auth}` for the one that asks for basic auth;
/// a `string:` prefix passes the value with `--set-string`.
const VARIANTS: &[Variant] = &[
    Variant {
        name: "defaults",
        set: &[],
    },
    Variant {
        name: "hostNetwork",
        set: &["hostNetwork=true", "exporter.port={free_port}"],
    },
    Variant {
        name: "hostPID and hostIPC",
        set: &["hostPID=true", "hostIPC=true"],
    },
    Variant {
        name: "exporter settings, host /proc elsewhere, pod labels",
        set: &[
            "exporter.port=9900",
            "exporter.telemetryPath=/ns-metrics",
            "exporter.scanInterval=5s",
            "exporter.logLevel=debug",
            "exporter.logFormat=json",
            "exporter.extraArgs[0]=--web.max-requests=10",
            "exporter.extraEnv[0].name=NSEXPORTER_SCAN_THREADS",
            "string:exporter.extraEnv[0].value=2",
            "hostProc.mountPath=/node/proc",
            "podLabels.team=platform",
            "podAnnotations.example\\.com/owner=platform",
            "resources.limits.memory=96Mi",
            "resources.limits.cpu=500m",
        ],
    },
    Variant {
        name: "process events, Podman's state",
        set: &[
            "events.enabled=true",
            "exporter.port={free_port}",
            "hostRoot.runtimes.containerd=false",
            "hostRoot.runtimes.podman=true",
        ],
    },
    Variant {
        name: "every runtime's state elsewhere, events without NET_ADMIN",
        set: &[
            "hostRoot.mountPath=/node",
            "hostRoot.runtimes.crio=true",
            "hostRoot.runtimes.docker=true",
            "hostRoot.runtimes.podman=true",
            "events.enabled=true",
            "events.netAdmin=false",
            "events.retention=2m",
            "exporter.port={free_port}",
        ],
    },
    Variant {
        name: "alerting sidecar to a real Alertmanager",
        set: &[
            "hostNetwork=true",
            "exporter.port={free_port}",
            "alertmanager.urls[0]={alertmanager}",
            "alertmanager.resendInterval=5s",
        ],
    },
    Variant {
        name: "alerting sidecar, credentials from a Secret, to an Alertmanager that asks for them",
        set: &[
            "hostNetwork=true",
            "exporter.port={free_port}",
            "alertmanager.urls[0]={alertmanager_auth}",
            "alertmanager.resendInterval=5s",
            "alertmanager.httpConfigSecret.name=nsexporter-am-credentials",
        ],
    },
];

/// The password the second Alertmanager asks for, which only the Secret holds.
const AM_PASSWORD: &str = "s3cret-from-the-secret";

/// The Secrets the chart's pod names, as the cluster would hold them (no API server
/// here): the sidecar's credentials, an http config with basic auth and the password
/// file it names, beside it in the same volume.
const SECRETS: &[(&str, &[(&str, &str)])] = &[(
    "nsexporter-am-credentials",
    &[
        (
            "http-config.yml",
            "basic_auth:\n  username: sidecar\n  password_file: password\n",
        ),
        ("password", AM_PASSWORD),
    ],
)];

struct Variant {
    name: &'static str,
    set: &'static [&'static str],
}

/// What `podman kube play` 4.3 lacks for this chart's pod, and how the test translates
/// it. The README carries the same list.
const GAPS: &[(&str, &str, &str)] = &[
    (
        "`kind: DaemonSet`",
        "plays Pods and Deployments only",
        "the DaemonSet's pod template is played as a Pod named as a DaemonSet pod is (`<release>-nsexporter-<5 characters>`), with its labels and annotations",
    ),
    (
        "`ports`",
        "publishes every `containerPort` on the host (as if it were a `hostPort`), which needs a bridge and is not what Kubernetes does",
        "left out of the played pod; the pod gets its own network namespace (`--network none`: loopback only, there is no CNI here) or the host's (`hostNetwork`), and is reached in it, as the kubelet reaches a pod IP",
    ),
    (
        "`livenessProbe`, `readinessProbe` (`httpGet`)",
        "turns liveness into a podman healthcheck that runs `curl` inside the container (a scratch image has none), on port 0 for a named port, driven by systemd timers (none here); ignores readiness",
        "left out of the played pod; the test probes as the kubelet does: HTTP GET of the path on the named port from outside the container, in its network namespace, after `initialDelaySeconds`, every `periodSeconds`, `timeoutSeconds` each, until success or `failureThreshold` failures",
    ),
    (
        "`hostPID`, `hostIPC`",
        "ignored (honoured from podman 4.4 and 4.5)",
        "an OCI precreate hook (tests/podman/host-namespaces-hook) removes the pid and ipc namespaces from the containers' runtime config, as containerd and CRI-O do",
    ),
    (
        "`hostNetwork`",
        "host network, but a private UTS namespace",
        "the same hook also keeps the host's UTS namespace, as Kubernetes runtimes do for hostNetwork pods",
    ),
    (
        "`env[].valueFrom.fieldRef`",
        "resolves only `metadata.name`, `metadata.uid`, labels and annotations",
        "other fields (`spec.nodeName`, `metadata.namespace`, `status.podIP`, `status.hostIP`, `spec.serviceAccountName`) become the literal value the kubelet would set on this machine",
    ),
    (
        "`securityContext.seccompProfile: RuntimeDefault`",
        "read only from annotations; podman applies its default profile anyway",
        "none needed: checked as `Seccomp: 2` (filter mode)",
    ),
    (
        "`resources.requests`",
        "CPU request ignored, memory request made a soft limit",
        "none: requests weigh scheduling and CPU shares only; limits are honoured and checked in the cgroup",
    ),
    (
        "`secret` volumes (the sidecar's Alertmanager credentials)",
        "no API server holds the Secret, which the chart names and the cluster provides",
        "the test holds the Secret's keys (`SECRETS` in tests/chart_pod.rs); each is written as a file with the volume's `defaultMode` in a directory under the node root, mounted as a read-only `hostPath`; the test reads them back inside the container and checks their mode",
    ),
    (
        "`configMap` volumes (the sidecar's config file)",
        "no API server holds the chart's ConfigMap",
        "each key of the rendered ConfigMap is written as a file in a directory under the node root, mounted as a read-only `hostPath`, as the kubelet projects it; the test reads the files back inside the container",
    ),
    (
        "`runAsNonRoot`",
        "ignored",
        "checked by the test: with `runAsNonRoot: true` and UID 0 the kubelet would refuse to start the container, and so does the test",
    ),
    (
        "`hostPath` of the runtimes' state and /run/netns (`hostRoot`)",
        "nothing: the test's podman keeps its state in a private directory, not at the node's paths",
        "each such path is taken under the test's node root (`<dir>/node`, where that podman's graph and run roots are), which the bare binary reads as `--path.rootfs`; a `type: Directory` path of a runtime this node does not run is created empty there",
    ),
    (
        "`serviceAccountName`, `automountServiceAccountToken`, `enableServiceLinks`, `imagePullSecrets`, `nodeSelector`, `affinity`, `tolerations`, `priorityClassName`, `dnsPolicy`, `metadata.namespace`",
        "no API server, scheduler or cluster DNS",
        "nothing to run on one node; no token is mounted and no service variables are set, as the chart asks",
    ),
];

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

// ---------------------------------------------------------------------------------
// Podman with its own storage

/// A podman whose storage, run state, temporary files and hooks live in one temporary
/// directory. Dropping it removes every pod, container and image it holds, unmounts
/// what is left and deletes the directory.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        require_root("podman kube play, and the /proc of the pod's processes");
        require_tool("podman");
        let version = Command::new("podman").arg("--version").output();
        match version {
            Ok(o) if o.status.success() => eprintln!("chart_pod: {}", text(&o.stdout).trim()),
            other => panic!("podman is needed (apt-get install podman catatonit): {other:?}"),
        }
        let dir = tempfile::Builder::new()
            .prefix("nsx-chart-pod-")
            .tempdir()
            .expect("tempdir");
        let d = &dir.path().to_path_buf();
        for sub in [GRAPH_ROOT, RUN_ROOT, "tmp", "hooks.d", "node/run/netns"] {
            fs::create_dir_all(d.join(sub)).expect("mkdir");
        }
        // As `ip netns add` makes it: /run/netns a shared mount, so that a namespace
        // pinned there later propagates into a pod that mounts it HostToContainer.
        let netns = d.join("node/run/netns");
        let podman = Podman { dir };
        for args in [vec!["--bind", "-o", "rw"], vec!["--make-shared"]] {
            let mut cmd = Command::new("mount");
            cmd.args(&args);
            if args[0] == "--bind" {
                cmd.arg(&netns);
            }
            let out = run(cmd.arg(&netns));
            assert!(
                out.status.success(),
                "mount {args:?}: {}",
                text(&out.stderr)
            );
        }
        fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                d.join(GRAPH_ROOT).display(),
                d.join(RUN_ROOT).display()
            ),
        )
        .expect("storage.conf");
        // runc: the runtime that works here. The ulimits: this machine's podman fails to
        // start containers without explicit nofile and nproc limits.
        fs::write(
            d.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\
                 [engine]\nruntime = \"runc\"\ntmp_dir = \"{}\"\nhooks_dir = [\"{}\"]\n\
                 events_logger = \"file\"\nevents_logfile_path = \"{}\"\n",
                d.join("tmp").display(),
                d.join("hooks.d").display(),
                d.join("events.log").display()
            ),
        )
        .expect("containers.conf");
        let hook = root().join("tests/podman/host-namespaces-hook");
        let hook_conf = json!({
            "version": "1.0.0",
            "hook": {"path": hook},
            "when": {"annotations": {format!("^{}$", HOST_NS_ANNOTATION.replace('.', "\\.")): ".+"}},
            "stages": ["precreate"],
        });
        fs::write(
            d.join("hooks.d/host-namespaces.json"),
            hook_conf.to_string(),
        )
        .expect("hook config");
        podman
    }

    /// The node root: the node's paths of podman's state, and its /run/netns.
    fn node(&self) -> PathBuf {
        self.dir.path().join("node")
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("CONTAINERS_CONF", self.dir.path().join("containers.conf"))
            .env(
                "CONTAINERS_STORAGE_CONF",
                self.dir.path().join("storage.conf"),
            );
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("podman");
        self.env(&mut cmd);
        cmd
    }

    fn try_run(&self, args: &[&str]) -> Result<String, String> {
        let out = run(self.command().args(args));
        if out.status.success() {
            Ok(text(&out.stdout).trim().to_string())
        } else {
            Err(format!(
                "podman {args:?} failed ({}): {}{}",
                out.status,
                text(&out.stdout),
                text(&out.stderr)
            ))
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        self.try_run(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Every container podman holds (infra containers included), full IDs.
    fn container_ids(&self) -> BTreeSet<String> {
        self.ok(&["ps", "-a", "--no-trunc", "--format", "{{.ID}}"])
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    fn pid(&self, container: &str) -> u32 {
        let pid = self.ok(&["inspect", "--format", "{{.State.Pid}}", container]);
        pid.parse()
            .ok()
            .filter(|p| *p > 0)
            .unwrap_or_else(|| panic!("{container} has no running process (State.Pid {pid})"))
    }

    /// Builds the exporter image from the Dockerfile, through the script users run.
    fn build_exporter(&self, tag: &str) {
        let mut cmd = Command::new(root().join("tests/docker/build-image.sh"));
        cmd.arg(tag).env("NSEXPORTER_IMAGE_ENGINE", "podman");
        self.env(&mut cmd);
        let out = run(&mut cmd);
        assert!(
            out.status.success(),
            "tests/docker/build-image.sh (podman) failed:\n{}",
            text(&out.stderr)
        );
    }

    /// A FROM-scratch image holding the host's static busybox; `sleep` is a symlink so
    /// its containers' comm is "sleep".
    fn build_sleeper(&self) {
        let busybox = Path::new("/bin/busybox");
        let file = run(Command::new(common::require_tool("file"))
            .arg("-L")
            .arg(busybox));
        assert!(
            text(&file.stdout).contains("statically linked"),
            "/bin/busybox must be static (apt-get install busybox-static): {}",
            text(&file.stdout)
        );
        let ctx = tempfile::tempdir().expect("tempdir");
        fs::create_dir(ctx.path().join("bin")).unwrap();
        fs::copy(busybox, ctx.path().join("bin/busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", ctx.path().join("bin/sleep")).unwrap();
        fs::write(
            ctx.path().join("Containerfile"),
            "FROM scratch\nCOPY bin/ /bin/\nENTRYPOINT [\"/bin/sleep\"]\nCMD [\"3600\"]\n",
        )
        .unwrap();
        let context = ctx.path().display().to_string();
        self.ok(&["build", "--quiet", "--pull=never", "-t", SLEEPER, &context]);
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        for args in [
            &["pod", "rm", "--all", "--force", "--time", "0"][..],
            &["rm", "--all", "--force", "--volumes", "--time", "0"],
            &["rmi", "--all", "--force"],
            &["volume", "rm", "--all", "--force"],
        ] {
            if let Err(e) = self.try_run(args) {
                eprintln!("chart_pod cleanup: {e}");
            }
        }
        // Whatever podman left mounted under the directory (overlay layers, shm), deepest
        // first, before the directory goes.
        let dir = self.dir.path().display().to_string();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&dir))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let c = std::ffi::CString::new(p).unwrap();
            // SAFETY: a valid C string; MNT_DETACH only unmounts.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Where the test's podman keeps its images and containers, and its run state: a node's
/// paths under the node root.
const GRAPH_ROOT: &str = "node/var/lib/containers/storage";
const RUN_ROOT: &str = "node/run/containers/storage";

/// A pod played from YAML; removed (with its containers) when dropped.
struct PlayedPod<'a> {
    podman: &'a Podman,
    name: String,
}

impl Drop for PlayedPod<'_> {
    fn drop(&mut self) {
        if let Err(e) = self
            .podman
            .try_run(&["pod", "rm", "--force", "--time", "0", &self.name])
        {
            eprintln!("chart_pod cleanup: {e}");
        }
    }
}

// ---------------------------------------------------------------------------------
// Rendering and translating

/// `helm template` with `--set` values; the DaemonSet it renders.
fn render_daemonset(set: &[String]) -> Value {
    render(set).0
}

/// `helm template` with `--set` values; the DaemonSet and the ConfigMaps (by name) it
/// renders.
fn render(set: &[String]) -> (Value, BTreeMap<String, Value>) {
    let mut cmd = Command::new(require_tool("helm"));
    cmd.args(["template", RELEASE])
        .arg(root().join("charts/nsexporter"))
        .args(["--namespace", NAMESPACE]);
    for s in set {
        match s.strip_prefix("string:") {
            Some(value) => cmd.args(["--set-string", value]),
            None => cmd.args(["--set", s]),
        };
    }
    let out = run(&mut cmd);
    assert!(
        out.status.success(),
        "helm template {set:?} failed: {}",
        text(&out.stderr)
    );
    let yaml = text(&out.stdout);
    let mut daemonsets = Vec::new();
    let mut config_maps = BTreeMap::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&yaml) {
        let v: Value = serde::Deserialize::deserialize(doc).expect("rendered YAML parses");
        if v["kind"] == "DaemonSet" {
            daemonsets.push(v);
        } else if v["kind"] == "ConfigMap" {
            let name = v["metadata"]["name"].as_str().expect("ConfigMap name");
            config_maps.insert(name.to_string(), v["data"].clone());
        }
    }
    assert_eq!(daemonsets.len(), 1, "one DaemonSet expected");
    (daemonsets.remove(0), config_maps)
}

/// A probe as the kubelet performs it.
#[derive(Debug, Clone)]
struct Probe {
    kind: &'static str,
    container: String,
    path: String,
    port: u16,
    initial_delay: Duration,
    period: Duration,
    timeout: Duration,
    failure_threshold: u32,
}

/// A directory the kubelet would project a volume into: where, its files (key,
/// content), and their mode.
type Projected = (PathBuf, Vec<(String, String)>, u32);

/// The pod to play, the extra `kube play` arguments, and what the test does itself.
struct Translated {
    pod: Value,
    play_args: Vec<String>,
    probes: Vec<Probe>,
    /// Namespace types the pod's containers must share with the host.
    host_namespaces: BTreeSet<&'static str>,
    /// Host paths taken under the node root, with the volume's `type`.
    node_paths: Vec<(PathBuf, String)>,
    /// ConfigMap and Secret volumes: the directory under the node root standing for
    /// each, the files (key, content) to write there before the pod starts, and their
    /// mode.
    config_dirs: Vec<Projected>,
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// Fails on any key of `v` outside `known`: a field this test does not translate yet.
fn only_known(v: &Value, known: &[&str], what: &str) {
    for k in keys(v) {
        assert!(
            known.contains(&k.as_str()),
            "{what}.{k}: a field this test does not know how `podman kube play` handles; \
             add it to translate() and GAPS (tests/chart_pod.rs) and to the README"
        );
    }
}

fn int(v: &Value, default: u64) -> u64 {
    v.as_u64().unwrap_or(default)
}

/// The pod template of `ds` as a Pod for `podman kube play`, with each gap of [`GAPS`]
/// translated.
fn translate(
    ds: &Value,
    config_maps: &BTreeMap<String, Value>,
    pod_name: &str,
    node_ip: &str,
    node_root: &Path,
) -> Translated {
    let template = &ds["spec"]["template"];
    only_known(template, &["metadata", "spec"], "template");
    let mut spec = template["spec"].clone();
    only_known(
        &spec,
        &[
            "serviceAccountName",
            "automountServiceAccountToken",
            "enableServiceLinks",
            "hostNetwork",
            "hostPID",
            "hostIPC",
            "dnsPolicy",
            "priorityClassName",
            "imagePullSecrets",
            "securityContext",
            "terminationGracePeriodSeconds",
            "containers",
            "volumes",
            "nodeSelector",
            "affinity",
            "tolerations",
        ],
        "spec",
    );
    only_known(
        &spec["securityContext"],
        &["seccompProfile", "runAsUser", "runAsGroup", "runAsNonRoot"],
        "spec.securityContext",
    );
    let mut node_paths = Vec::new();
    let mut config_dirs = Vec::new();
    for v in spec["volumes"].as_array_mut().into_iter().flatten() {
        only_known(
            v,
            &["name", "hostPath", "configMap", "secret"],
            "spec.volumes[]",
        );
        if !v["secret"].is_null() {
            only_known(
                &v["secret"],
                &["secretName", "defaultMode"],
                "spec.volumes[].secret",
            );
            let name = v["secret"]["secretName"]
                .as_str()
                .expect("secret.secretName");
            let files = SECRETS
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("the pod names a Secret {name} this test does not hold"))
                .1
                .iter()
                .map(|(k, c)| (k.to_string(), c.to_string()))
                .collect();
            // The kubelet's default mode for projected files.
            let mode = int(&v["secret"]["defaultMode"], 0o644) as u32;
            let dir = node_root.join("var/lib/kubelet/secrets").join(name);
            *v = json!({
                "name": v["name"],
                "hostPath": {"path": dir.display().to_string(), "type": "Directory"},
            });
            config_dirs.push((dir, files, mode));
            continue;
        }
        if !v["configMap"].is_null() {
            only_known(&v["configMap"], &["name"], "spec.volumes[].configMap");
            let name = v["configMap"]["name"].as_str().expect("configMap.name");
            let data = config_maps
                .get(name)
                .unwrap_or_else(|| panic!("the chart renders no ConfigMap {name}"));
            let files = data
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().expect("ConfigMap data").to_string()))
                .collect();
            let dir = node_root.join("var/lib/kubelet/configmaps").join(name);
            *v = json!({
                "name": v["name"],
                "hostPath": {"path": dir.display().to_string(), "type": "Directory"},
            });
            config_dirs.push((dir, files, 0o644));
            continue;
        }
        only_known(&v["hostPath"], &["path", "type"], "spec.volumes[].hostPath");
        let path = v["hostPath"]["path"].as_str().expect("hostPath.path");
        // The host's /proc and cgroup tree are the host's; every other path is the
        // runtimes' state or /run/netns, which this test's podman keeps under the node root.
        if !HOST_KERNEL_PATHS.contains(&path) {
            let under = node_root.join(path.trim_start_matches('/'));
            let kind = v["hostPath"]["type"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            v["hostPath"]["path"] = json!(under.display().to_string());
            node_paths.push((under, kind));
        }
    }
    let host_network = spec["hostNetwork"] == true;
    let mut host_namespaces = BTreeSet::new();
    if host_network {
        host_namespaces.extend(["net", "uts"]);
    }
    if spec["hostPID"] == true {
        host_namespaces.insert("pid");
    }
    if spec["hostIPC"] == true {
        host_namespaces.insert("ipc");
    }
    let pod_ip = if host_network { node_ip } else { "127.0.0.1" };
    let node_name = hostname();
    let mut probes = Vec::new();
    for c in spec["containers"].as_array_mut().expect("containers") {
        let name = c["name"].as_str().expect("container name").to_string();
        let what = format!("containers[{name}]");
        only_known(
            c,
            &[
                "name",
                "image",
                "imagePullPolicy",
                "command",
                "args",
                "env",
                "ports",
                "livenessProbe",
                "readinessProbe",
                "resources",
                "securityContext",
                "volumeMounts",
            ],
            &what,
        );
        for vm in c["volumeMounts"].as_array().into_iter().flatten() {
            only_known(
                vm,
                &["name", "mountPath", "readOnly", "mountPropagation"],
                &format!("{what}.volumeMounts[]"),
            );
            assert!(
                vm["mountPropagation"].is_null() || vm["mountPropagation"] == "HostToContainer",
                "{what}: only HostToContainer propagation is checked"
            );
        }
        only_known(
            &c["securityContext"],
            &[
                "runAsUser",
                "runAsGroup",
                "runAsNonRoot",
                "privileged",
                "allowPrivilegeEscalation",
                "readOnlyRootFilesystem",
                "capabilities",
                "seccompProfile",
            ],
            &format!("{what}.securityContext"),
        );
        let ports: BTreeMap<String, u16> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                only_known(p, &["name", "containerPort", "protocol"], "ports[]");
                (
                    p["name"].as_str().unwrap_or_default().to_string(),
                    p["containerPort"].as_u64().expect("containerPort") as u16,
                )
            })
            .collect();
        for (kind, key) in [
            ("liveness", "livenessProbe"),
            ("readiness", "readinessProbe"),
        ] {
            let p = &c[key];
            if p.is_null() {
                continue;
            }
            only_known(
                p,
                &[
                    "httpGet",
                    "initialDelaySeconds",
                    "periodSeconds",
                    "timeoutSeconds",
                    "failureThreshold",
                    "successThreshold",
                ],
                &format!("{what}.{key}"),
            );
            only_known(&p["httpGet"], &["path", "port", "scheme"], "httpGet");
            assert!(
                p["httpGet"]["scheme"].is_null() || p["httpGet"]["scheme"] == "HTTP",
                "only HTTP probes are translated"
            );
            let port = match &p["httpGet"]["port"] {
                Value::String(named) => *ports
                    .get(named)
                    .unwrap_or_else(|| panic!("probe port {named:?} is not a port of {name}")),
                n => n.as_u64().expect("probe port") as u16,
            };
            probes.push(Probe {
                kind,
                container: name.clone(),
                path: p["httpGet"]["path"].as_str().unwrap_or("/").to_string(),
                port,
                initial_delay: Duration::from_secs(int(&p["initialDelaySeconds"], 0)),
                period: Duration::from_secs(int(&p["periodSeconds"], 10)),
                timeout: Duration::from_secs(int(&p["timeoutSeconds"], 1)),
                failure_threshold: int(&p["failureThreshold"], 3) as u32,
            });
        }
        let obj = c.as_object_mut().unwrap();
        obj.remove("ports");
        obj.remove("livenessProbe");
        obj.remove("readinessProbe");
        for e in obj
            .get_mut("env")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(field) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() else {
                only_known(e, &["name", "value"], "env[]");
                continue;
            };
            let literal = match field {
                "metadata.name" | "metadata.uid" => continue,
                "metadata.namespace" => NAMESPACE.to_string(),
                "spec.nodeName" => node_name.clone(),
                "spec.serviceAccountName" => spec_service_account(ds),
                "status.podIP" | "status.podIPs" => pod_ip.to_string(),
                "status.hostIP" | "status.hostIPs" => node_ip.to_string(),
                other => panic!("env fieldRef {other} is not translated"),
            };
            let name = e["name"].clone();
            *e = json!({"name": name, "value": literal});
        }
    }
    let mut metadata = template["metadata"].clone();
    metadata["name"] = json!(pod_name);
    metadata["namespace"] = json!(NAMESPACE);
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec});
    let mut play_args = vec![
        "--network".to_string(),
        if host_network { "host" } else { "none" }.to_string(),
    ];
    let hook_types: Vec<&str> = host_namespaces
        .iter()
        .copied()
        .filter(|t| *t != "net")
        .collect();
    if !hook_types.is_empty() {
        play_args.push("--annotation".into());
        play_args.push(format!("{HOST_NS_ANNOTATION}={}", hook_types.join("+")));
    }
    Translated {
        pod,
        play_args,
        probes,
        host_namespaces,
        node_paths,
        config_dirs,
    }
}

/// The value of `--flag=value` among the container's arguments.
fn args_value(c: &Value, flag: &str) -> Option<String> {
    c["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix(&format!("{flag}=")).map(str::to_string))
}

fn has_arg(c: &Value, arg: &str) -> bool {
    c["args"].as_array().into_iter().flatten().any(|a| a == arg)
}

fn spec_service_account(ds: &Value) -> String {
    ds["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .unwrap_or("default")
        .to_string()
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string()
}

/// The address a hostNetwork pod's `status.podIP` and every pod's `status.hostIP` would
/// be: the host's first global IPv4 address (loopback if it has none).
fn node_ip() -> String {
    let out = run(Command::new(common::require_tool("ip"))
        .args(["-4", "-o", "addr", "show", "scope", "global"]));
    text(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or("127.0.0.1")
        .to_string()
}

/// A name as the DaemonSet controller gives its pods: `<name>-<5 characters>`.
fn daemonset_pod_name(ds: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = common::rand_hex(10)
        .as_bytes()
        .chunks(2)
        .map(|b| {
            let n = u8::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap();
            ALPHABET[n as usize % ALPHABET.len()] as char
        })
        .collect();
    format!(
        "{}-{suffix}",
        ds["metadata"]["name"].as_str().expect("name")
    )
}

/// `localhost/` for an image reference without a registry, as podman stores it.
fn local_reference(image: &str) -> String {
    let first = image.split('/').next().unwrap_or_default();
    if image.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost") {
        image.to_string()
    } else {
        format!("localhost/{image}")
    }
}

// ---------------------------------------------------------------------------------
// What the kernel says

/// `Key:\tvalue` of /proc/<pid>/status.
fn status_field(pid: u32, key: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// (mount point, mount options, fs type, optional fields) of every mount of the process.
fn mounts(pid: u32) -> Vec<(String, String, String, String)> {
    fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .expect("mountinfo")
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f
                .iter()
                .position(|x| *x == "-")
                .expect("mountinfo separator");
            (
                f[4].to_string(),
                f[5].to_string(),
                f[sep + 1].to_string(),
                f[6..sep].join(" "),
            )
        })
        .collect()
}

/// Linux capability numbers by Kubernetes name (without CAP_).
fn capability(name: &str) -> u32 {
    const CAPS: [&str; 41] = [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    let bare = name.trim_start_matches("CAP_");
    CAPS.iter()
        .position(|c| *c == bare)
        .unwrap_or_else(|| panic!("unknown capability {name}")) as u32
}

/// A Kubernetes quantity in base units (cores for CPU, bytes for memory).
fn quantity(q: &Value) -> f64 {
    let s = match q {
        Value::String(s) => s.clone(),
        n => n.to_string(),
    };
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().unwrap_or_else(|_| panic!("quantity {s}"));
    let factor = match unit {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        other => panic!("quantity unit {other} in {s}"),
    };
    n * factor
}

/// A file of the process's cgroup in the v1 `controller` hierarchy.
fn cgroup_file(pid: u32, controller: &str, file: &str) -> String {
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    let path = cgroups
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            ctrls.split(',').any(|c| c == controller).then_some(path)
        })
        .unwrap_or_else(|| panic!("process {pid} has no {controller} cgroup"));
    let dir = fs::read_dir("/sys/fs/cgroup")
        .expect("/sys/fs/cgroup")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.split(',').any(|c| c == controller))
        })
        .unwrap_or_else(|| panic!("no v1 {controller} hierarchy under /sys/fs/cgroup"));
    fs::read_to_string(dir.join(path.trim_start_matches('/')).join(file))
        .unwrap_or_else(|e| panic!("{controller}{path}/{file}: {e}"))
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------
// HTTP inside a network namespace

/// GET `path` on 127.0.0.1:`port` in the network namespace of `pid`, as the kubelet's
/// prober does (its user agent, at most `timeout`): a thread joins the namespace, so the
/// test's own namespaces stay as they are.
fn get_in_netns(
    pid: u32,
    port: u16,
    path: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let ns = format!("/proc/{pid}/ns/net");
    let path = path.to_string();
    std::thread::spawn(move || -> Result<(u16, String), String> {
        let f = fs::File::open(&ns).map_err(|e| format!("{ns}: {e}"))?;
        // SAFETY: a valid namespace fd; setns only changes this thread's namespace.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!("setns {ns}: {}", std::io::Error::last_os_error()));
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let r = common::HttpClient::plain_with_timeout(addr, timeout).request(
            "GET",
            &path,
            &[("User-Agent", "kube-probe/1.30")],
        )?;
        Ok((r.status, r.body))
    })
    .join()
    .expect("probe thread")
}

/// Performs `p` as the kubelet does, counting from `started`; returns when it first
/// succeeded, or the failures.
fn perform(p: &Probe, pid: u32, started: Instant) -> Result<Duration, String> {
    std::thread::sleep((started + p.initial_delay).saturating_duration_since(Instant::now()));
    let mut failures = Vec::new();
    loop {
        let attempt = Instant::now();
        match get_in_netns(pid, p.port, &p.path, p.timeout) {
            Ok((code, _)) if (200..400).contains(&code) => return Ok(started.elapsed()),
            other => failures.push(format!("{other:?}")),
        }
        if failures.len() as u32 >= p.failure_threshold {
            return Err(failures.join("; "));
        }
        std::thread::sleep((attempt + p.period).saturating_duration_since(Instant::now()));
    }
}

// ---------------------------------------------------------------------------------
// Verdicts

/// What an exposition says about one container: the host namespaces it shares (and
/// with how many processes), its drift from what its runtime declared, its host-root
/// processes, and its info labels.
#[derive(Debug, PartialEq)]
struct Verdict {
    sharing: BTreeMap<String, f64>,
    drift: BTreeMap<String, f64>,
    host_root: Option<f64>,
    info: Option<Info>,
}

#[derive(Debug, PartialEq)]
struct Info {
    comm: String,
    runtime: String,
    uid: String,
    namespace: String,
    pod: String,
    container: String,
}

fn verdicts(samples: &[Sample], ids: &BTreeSet<String>) -> BTreeMap<String, Verdict> {
    let of = |s: &Sample| {
        s.labels
            .get("container_id")
            .and_then(|c| c.strip_prefix("podman://"))
            .filter(|id| ids.contains(*id))
            .map(str::to_string)
    };
    let mut out: BTreeMap<String, Verdict> = ids
        .iter()
        .map(|id| {
            (
                id.clone(),
                Verdict {
                    sharing: BTreeMap::new(),
                    drift: BTreeMap::new(),
                    host_root: None,
                    info: None,
                },
            )
        })
        .collect();
    for s in samples {
        let Some(id) = of(s) else { continue };
        let v = out.get_mut(&id).unwrap();
        match s.name.as_str() {
            "nsexporter_container_host_namespace" => {
                v.sharing.insert(s.labels["type"].clone(), s.value);
            }
            "nsexporter_container_namespace_drift" => {
                v.drift.insert(s.labels["type"].clone(), s.value);
            }
            "nsexporter_container_host_root_processes" => v.host_root = Some(s.value),
            "nsexporter_container_info" => {
                let l = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
                v.info = Some(Info {
                    comm: l("comm"),
                    runtime: l("runtime"),
                    uid: l("uid"),
                    namespace: l("namespace"),
                    pod: l("pod"),
                    container: l("container"),
                })
            }
            _ => {}
        }
    }
    out
}

fn node_level(samples: &[Sample]) -> BTreeMap<String, f64> {
    samples
        .iter()
        .filter(|s| {
            matches!(
                s.name.as_str(),
                "nsexporter_namespace_limit" | "nsexporter_host_reference_info"
            )
        })
        .map(|s| (format!("{}{:?}", s.name, s.labels), s.value))
        .collect()
}

// ---------------------------------------------------------------------------------
// The containers beside the pod

struct Sleepers {
    host_net: String,
    host_root: String,
    userns: String,
}

impl Sleepers {
    fn start(podman: &Podman) -> Sleepers {
        let run = |args: &[&str]| {
            let mut full = vec!["run", "-d"];
            full.extend_from_slice(args);
            full.push(SLEEPER);
            podman.ok(&full)
        };
        let s = Sleepers {
            host_net: run(&["--network", "host"]),
            host_root: run(&["--network", "none"]),
            userns: run(&[
                "--network",
                "none",
                "--uidmap",
                "0:100000:65536",
                "--gidmap",
                "0:100000:65536",
            ]),
        };
        // The kernel's view must be what the comparisons below rely on.
        let host = host_links();
        let net = shared_with_host(podman.pid(&s.host_net), &host);
        assert!(net.contains("net"), "--network host: {net:?}");
        let root = podman.pid(&s.host_root);
        assert!(!shared_with_host(root, &host).contains("net"));
        assert_eq!(
            status_field(root, "Uid").split_whitespace().nth(1),
            Some("0")
        );
        let userns = podman.pid(&s.userns);
        assert!(!shared_with_host(userns, &host).contains("user"));
        assert_eq!(
            status_field(userns, "Uid").split_whitespace().nth(1),
            Some("100000"),
            "root in the user namespace is host UID 100000"
        );
        s
    }
}

// ---------------------------------------------------------------------------------
// One variant

fn play_variant(podman: &Podman, sleepers: &Sleepers, alertmanagers: &Alertmanagers, v: &Variant) {
    let port = free_port().to_string();
    let set: Vec<String> = v
        .set
        .iter()
        .map(|s| {
            s.replace("{free_port}", &port)
                .replace("{alertmanager}", &alertmanagers.open.url())
                .replace("{alertmanager_auth}", &alertmanagers.auth.url())
        })
        .collect();
    let (ds, config_maps) = render(&set);
    let pod_name = daemonset_pod_name(&ds);
    let node_ip = node_ip();
    let t = translate(&ds, &config_maps, &pod_name, &node_ip, &podman.node());
    for (dir, files, mode) in &t.config_dirs {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).expect("a ConfigMap's or Secret's directory under the node root");
        for (key, content) in files {
            fs::write(dir.join(key), content).expect("a ConfigMap or Secret key's file");
            fs::set_permissions(dir.join(key), fs::Permissions::from_mode(*mode))
                .expect("the volume's mode");
        }
    }
    for (path, kind) in &t.node_paths {
        // A runtime this node does not run: its directory, empty (podman's exist).
        if kind == "Directory" && !path.is_dir() {
            fs::create_dir_all(path).expect("a runtime's directory under the node root");
        }
    }
    let file = podman.dir.path().join(format!("{pod_name}.yaml"));
    fs::write(&file, serde_yaml_ng::to_string(&t.pod).unwrap()).expect("write pod");
    eprintln!(
        "chart_pod [{}]: podman kube play {} {}",
        v.name,
        t.play_args.join(" "),
        file.display()
    );

    let mut play: Vec<&str> = vec!["kube", "play"];
    play.extend(t.play_args.iter().map(String::as_str));
    let file_arg = file.display().to_string();
    play.push(&file_arg);
    let played = PlayedPod {
        podman,
        name: pod_name.clone(),
    };
    if let Err(e) = podman.try_run(&play) {
        panic!(
            "[{}] {e}\npod:\n{}",
            v.name,
            serde_yaml_ng::to_string(&t.pod).unwrap()
        );
    }
    let started = Instant::now();
    let host = host_links();
    let labels: Value = serde_json::from_str(&podman.ok(&[
        "pod",
        "inspect",
        "--format",
        "{{json .Labels}}",
        &pod_name,
    ]))
    .expect("pod labels");
    for (k, want) in t.pod["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
    {
        assert_eq!(&labels[k], want, "[{}] pod label {k}", v.name);
    }
    let spec = &t.pod["spec"];
    let containers = spec["containers"].as_array().unwrap();

    // Every container: identity, privileges, file system, arguments, environment,
    // limits and namespaces, as rendered.
    for c in containers {
        let name = c["name"].as_str().unwrap();
        let ctr = format!("{pod_name}-{name}");
        let pid = podman.pid(&ctr);
        let what = format!("[{}] container {name} (host PID {pid})", v.name);
        let sc = &c["securityContext"];
        let pod_sc = &spec["securityContext"];
        let uid = sc["runAsUser"]
            .as_u64()
            .or(pod_sc["runAsUser"].as_u64())
            .expect("the chart sets runAsUser");
        let gid = sc["runAsGroup"]
            .as_u64()
            .or(pod_sc["runAsGroup"].as_u64())
            .unwrap_or(uid);
        let non_root = sc["runAsNonRoot"] == true || pod_sc["runAsNonRoot"] == true;
        assert!(
            !(non_root && uid == 0),
            "{what}: runAsNonRoot with UID 0: the kubelet would refuse to start it"
        );
        for (field, want) in [("Uid", uid), ("Gid", gid)] {
            let ids: Vec<u64> = status_field(pid, field)
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            assert_eq!(
                ids,
                vec![want; 4],
                "{what}: {field} (real, effective, saved, fs)"
            );
        }
        let caps = &sc["capabilities"];
        let drop: Vec<&str> = caps["drop"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            drop.contains(&"ALL") && sc["privileged"] != true,
            "{what}: without drop ALL the runtime's default set applies, and podman's differs \
             from containerd's: translate it before testing it"
        );
        let mask: u64 = caps["add"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| 1u64 << capability(c.as_str().unwrap()))
            .fold(0, |a, b| a | b);
        let hex = |m: u64| format!("{m:016x}");
        // Kubernetes gives added capabilities to root only (no ambient capabilities).
        let effective = if uid == 0 { mask } else { 0 };
        assert_eq!(status_field(pid, "CapBnd"), hex(mask), "{what}: CapBnd");
        assert_eq!(
            status_field(pid, "CapEff"),
            hex(effective),
            "{what}: CapEff"
        );
        assert_eq!(
            status_field(pid, "CapPrm"),
            hex(effective),
            "{what}: CapPrm"
        );
        assert_eq!(status_field(pid, "CapInh"), hex(0), "{what}: CapInh");
        assert_eq!(status_field(pid, "CapAmb"), hex(0), "{what}: CapAmb");
        let no_new_privs = sc["allowPrivilegeEscalation"] == false;
        assert_eq!(
            status_field(pid, "NoNewPrivs"),
            if no_new_privs { "1" } else { "0" },
            "{what}: NoNewPrivs (allowPrivilegeEscalation: {})",
            sc["allowPrivilegeEscalation"]
        );
        let seccomp = sc["seccompProfile"]["type"]
            .as_str()
            .or(pod_sc["seccompProfile"]["type"].as_str());
        assert_eq!(
            seccomp,
            Some("RuntimeDefault"),
            "{what}: the chart's seccomp"
        );
        assert_eq!(
            status_field(pid, "Seccomp"),
            "2",
            "{what}: seccomp filter mode"
        );

        let mounts = mounts(pid);
        let mount = |point: &str| mounts.iter().rev().find(|m| m.0 == point).cloned();
        let (_, root_opts, _, _) = mount("/").expect("a root mount");
        let read_only_root = sc["readOnlyRootFilesystem"] == true;
        assert_eq!(
            root_opts.split(',').any(|o| o == "ro"),
            read_only_root,
            "{what}: root mounted {root_opts}, readOnlyRootFilesystem {read_only_root}"
        );
        let volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
        let mut mounted_runtimes = 0;
        for vm in c["volumeMounts"].as_array().into_iter().flatten() {
            let at = vm["mountPath"].as_str().unwrap();
            let (_, opts, fstype, optional) =
                mount(at).unwrap_or_else(|| panic!("{what}: nothing mounted at {at}"));
            // HostToContainer is a slave mount: it receives the host's later mounts.
            assert_eq!(
                optional.split(' ').any(|o| o.starts_with("master:")),
                vm["mountPropagation"] == "HostToContainer",
                "{what}: {at} propagation {optional:?}, asked {}",
                vm["mountPropagation"]
            );
            assert_eq!(
                opts.split(',').any(|o| o == "ro"),
                vm["readOnly"] == true,
                "{what}: {at} mounted {opts}"
            );
            let vol = volumes
                .iter()
                .find(|x| x["name"] == vm["name"])
                .expect("the mount's volume");
            let source = vol["hostPath"]["path"].as_str().unwrap();
            if let Some((_, files, mode)) = t
                .config_dirs
                .iter()
                .find(|(d, _, _)| Path::new(source) == d)
            {
                // A ConfigMap or Secret: every key a file at the mount path, with its
                // data and the volume's mode.
                use std::os::unix::fs::PermissionsExt;
                for (key, content) in files {
                    let inside = format!("/proc/{pid}/root{at}/{key}");
                    assert_eq!(
                        fs::read_to_string(&inside).ok().as_deref(),
                        Some(content.as_str()),
                        "{what}: key {key} at {at}"
                    );
                    let got = fs::metadata(&inside).map(|m| m.permissions().mode() & 0o777);
                    assert_eq!(got.ok(), Some(*mode), "{what}: mode of {key} at {at}");
                }
                continue;
            }
            let target_in_host_root = args_value(c, "--path.rootfs")
                .and_then(|r| at.strip_prefix(r.as_str()))
                .map(|p| podman.node().join(p.trim_start_matches('/')));
            if source == "/sys/fs/cgroup" {
                // The host's cgroup tree, under --path.sysfs where the exporter reads it.
                let sysfs = args_value(c, "--path.sysfs").unwrap_or("/sys".into());
                assert_eq!(
                    at,
                    format!("{sysfs}/fs/cgroup"),
                    "{what}: the host's cgroups are not under --path.sysfs"
                );
            } else if source != "/proc" {
                // A runtime's directory or /run/netns: under --path.rootfs at the node
                // path it comes from, so the exporter finds it where it looks.
                assert_eq!(
                    target_in_host_root.as_deref(),
                    Some(Path::new(source)),
                    "{what}: {at} (from {source}) is not at its node path under --path.rootfs"
                );
                mounted_runtimes += 1;
            }
            if vm["mountPropagation"] == "HostToContainer" {
                // A network namespace pinned after the pod started, as CNI pins one.
                let name = format!("nsx-chart-pod-{}", common::rand_hex(6));
                let pin = Path::new(source).join(&name);
                fs::write(&pin, "").expect("pin file");
                let ns = format!("/proc/{}/ns/net", podman.pid(&sleepers.host_root));
                let out = run(Command::new("mount").arg("--bind").arg(&ns).arg(&pin));
                assert!(out.status.success(), "pin {ns}: {}", text(&out.stderr));
                let seen = self::mounts(pid)
                    .into_iter()
                    .find(|m| m.0 == format!("{at}/{name}"));
                run(Command::new("umount").arg("--lazy").arg(&pin));
                let _ = fs::remove_file(&pin);
                assert_eq!(
                    seen.map(|m| m.2),
                    Some("nsfs".to_string()),
                    "{what}: a namespace pinned at {} after the pod started is not at {at}/{name}",
                    pin.display()
                );
            }
            if source == "/proc" {
                assert_eq!(fstype, "proc", "{what}: the host /proc at {at}");
                // The very procfs of the host: it lists the host's PIDs.
                let probe_pid = podman.pid(&sleepers.host_root);
                let root_dir = format!("/proc/{pid}/root{at}/{probe_pid}");
                assert!(
                    Path::new(&root_dir).exists(),
                    "{what}: {at} does not show host PID {probe_pid}"
                );
            }
        }

        assert_eq!(
            mounted_runtimes > 0,
            args_value(c, "--path.rootfs").is_some(),
            "{what}: --path.rootfs without the runtimes' directories, or the other way"
        );

        let cmdline: Vec<String> = fs::read(format!("/proc/{pid}/cmdline"))
            .expect("cmdline")
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(text)
            .collect();
        let args: Vec<String> = c["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        assert_eq!(&cmdline[1..], &args[..], "{what}: arguments");
        let environ = text(&fs::read(format!("/proc/{pid}/environ")).expect("environ"));
        let environ: BTreeSet<&str> = environ.split('\0').collect();
        for e in c["env"].as_array().into_iter().flatten() {
            let want = format!(
                "{}={}",
                e["name"].as_str().unwrap(),
                e["value"].as_str().unwrap_or_default()
            );
            assert!(
                environ.contains(want.as_str()),
                "{what}: {want} not in {environ:?}"
            );
        }

        let limits = &c["resources"]["limits"];
        if !limits["memory"].is_null() {
            let want = quantity(&limits["memory"]) as u64;
            let got: u64 = cgroup_file(pid, "memory", "memory.limit_in_bytes")
                .parse()
                .unwrap();
            assert_eq!(got, want, "{what}: memory limit");
        }
        if !limits["cpu"].is_null() {
            let quota: f64 = cgroup_file(pid, "cpu", "cpu.cfs_quota_us").parse().unwrap();
            let period: f64 = cgroup_file(pid, "cpu", "cpu.cfs_period_us")
                .parse()
                .unwrap();
            let want = quantity(&limits["cpu"]);
            assert!(
                (quota / period - want).abs() < 1e-6,
                "{what}: CPU limit {} cores, want {want}",
                quota / period
            );
        }

        // No hostUsers: false in the chart (translate() would refuse it): the pod is in
        // the host's user namespace, and in its own mount namespace.
        let shared = shared_with_host(pid, &host);
        for ty in ["net", "pid", "ipc", "uts", "mnt", "user"] {
            assert_eq!(
                shared.contains(ty),
                ty == "user" || t.host_namespaces.contains(ty),
                "{what}: in the host's {ty} namespace? (the pod asks for {:?})",
                t.host_namespaces
            );
        }
    }

    // The probes, as the kubelet performs them, all at once (each from the same start).
    let probes: Vec<_> = t
        .probes
        .iter()
        .map(|p| {
            let pid = podman.pid(&format!("{pod_name}-{}", p.container));
            let p = p.clone();
            std::thread::spawn(move || (p.clone(), perform(&p, pid, started)))
        })
        .collect();
    assert!(
        t.probes.iter().any(|p| p.kind == "liveness")
            && t.probes.iter().any(|p| p.kind == "readiness"),
        "[{}] the chart's container has both probes: {:?}",
        v.name,
        t.probes
    );
    for h in probes {
        let (p, result) = h.join().expect("probe thread");
        match result {
            Ok(after) => eprintln!(
                "chart_pod [{}]: {} probe GET :{}{} of {} passed {:.1} s after start",
                v.name,
                p.kind,
                p.port,
                p.path,
                p.container,
                after.as_secs_f64()
            ),
            Err(e) => panic!(
                "[{}] {} probe of {} failed {} times: {e}\nlogs:\n{}",
                v.name,
                p.kind,
                p.container,
                p.failure_threshold,
                podman
                    .try_run(&["logs", &format!("{pod_name}-{}", p.container)])
                    .unwrap_or_else(|e| e)
            ),
        }
    }
    // Nothing restarted it (podman would have, under the pod's restartPolicy Always).
    for c in containers {
        let ctr = format!("{pod_name}-{}", c["name"].as_str().unwrap());
        assert_eq!(
            podman.ok(&[
                "inspect",
                "--format",
                "{{.State.Status}} {{.RestartCount}}",
                &ctr
            ]),
            "running 0",
            "[{}] {ctr}",
            v.name
        );
    }

    // /metrics of the pod against the bare binary on the host, for every container
    // podman runs (the sleepers, this pod's infra and exporter containers).
    let exporter = containers
        .iter()
        .find(|c| c["name"] == "nsexporter")
        .expect("the nsexporter container");
    let port = t
        .probes
        .iter()
        .find(|p| p.container == "nsexporter")
        .map(|p| p.port)
        .expect("the exporter's probe port (its named port `metrics`)");
    let path = args_value(exporter, "--web.telemetry-path").unwrap_or("/metrics".into());
    let pid = podman.pid(&format!("{pod_name}-nsexporter"));
    let ids = podman.container_ids();
    let scrape = || {
        let (code, body) = get_in_netns(pid, port, &path, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("[{}] GET {path}: {e}", v.name));
        assert_eq!(code, 200, "[{}] GET {path}: {body}", v.name);
        parse_exposition(&body)
    };
    let in_pod = scrape();
    // The bare binary reads the node root's runtime files when the pod has Podman's
    // mounted, and (like the pod) finds none of this podman's otherwise.
    let podman_state = podman.node().join(GRAPH_ROOT.trim_start_matches("node/"));
    let names_mounted = t
        .node_paths
        .iter()
        .any(|(p, _)| p.starts_with(&podman_state));
    let node = podman.node().display().to_string();
    let bare_args: Vec<&str> = if names_mounted {
        vec!["--path.rootfs", &node]
    } else {
        vec![]
    };
    let bare = parse_exposition(&common::once(&bare_args));
    assert_eq!(
        ids,
        podman.container_ids(),
        "containers changed while comparing"
    );
    let (pod_v, bare_v) = (verdicts(&in_pod, &ids), verdicts(&bare, &ids));
    assert_eq!(
        pod_v, bare_v,
        "[{}] verdicts: left the chart's pod, right the bare binary",
        v.name
    );
    assert_eq!(
        node_level(&in_pod),
        node_level(&bare),
        "[{}] limits and host reference",
        v.name
    );
    let of = |id: &String| &pod_v[id];
    assert!(
        of(&sleepers.host_net).sharing.contains_key("net"),
        "[{}] host-network sleeper",
        v.name
    );
    assert_eq!(
        of(&sleepers.host_root).host_root,
        Some(1.0),
        "[{}] host-root sleeper",
        v.name
    );
    let userns = of(&sleepers.userns);
    assert!(
        userns.host_root.is_none() && !userns.sharing.contains_key("user") && userns.info.is_some(),
        "[{}] user-namespaced sleeper: {userns:?}",
        v.name
    );
    let own = ids
        .iter()
        .find(|id| {
            pod_v[*id]
                .info
                .as_ref()
                .is_some_and(|i| i.comm == "nsexporter")
        })
        .expect("the exporter names its own container");
    let own_types: BTreeSet<&str> = pod_v[own].sharing.keys().map(String::as_str).collect();
    for ty in ["net", "pid", "ipc", "uts"] {
        assert_eq!(
            own_types.contains(ty),
            t.host_namespaces.contains(ty),
            "[{}] the exporter's own container in the host {ty} namespace, by its /metrics",
            v.name
        );
    }
    // Podman's cgroups name no pod: an empty pod UID for every one of its containers.
    for (id, verdict) in &pod_v {
        let uid = verdict.info.as_ref().map(|i| i.uid.as_str());
        assert_eq!(uid, Some(""), "[{}] pod UID of podman://{id}", v.name);
    }

    // Names from the runtime's files: Podman's own names for every container where its
    // state is mounted, and none where it is not.
    for (id, verdict) in &pod_v {
        let info = verdict.info.as_ref().unwrap();
        let want = if names_mounted {
            podman.ok(&["inspect", "--format", "{{.Name}}", id])
        } else {
            String::new()
        };
        assert_eq!(info.container, want, "[{}] container name of {id}", v.name);
    }
    if names_mounted {
        let exporter_info = pod_v[own].info.as_ref().unwrap();
        assert_eq!(
            exporter_info.pod, pod_name,
            "[{}] the exporter's own pod, by name",
            v.name
        );
        for s in [&sleepers.host_net, &sleepers.host_root, &sleepers.userns] {
            assert_eq!(pod_v[s].info.as_ref().unwrap().pod, "", "[{}] {s}", v.name);
        }
    }

    // Process events: on as the chart says, and an exec of a fraction of a second in a
    // host-network container counted at once, from an exec event the pod received.
    // (0.3 s: the process must still be there when its exec event is read; an exec
    // that ends within the event's delivery cannot be attributed by anyone.)
    let events = has_arg(exporter, "--scan.events");
    assert_eq!(
        common::value(&in_pod, "nsexporter_scan_events_enabled", &[]),
        Some(if events { 1.0 } else { 0.0 }),
        "[{}] nsexporter_scan_events_enabled with --scan.events {events}",
        v.name
    );
    if events {
        let execs = |samples: &[Sample]| {
            let id = format!("podman://{}", sleepers.host_net);
            common::value(
                samples,
                "nsexporter_container_host_namespace_execs_total",
                &[("container_id", id.as_str()), ("type", "net")],
            )
            .unwrap_or(0.0)
        };
        let events_received =
            |samples: &[Sample]| common::value(samples, "nsexporter_exec_events_total", &[]);
        let (before, received_before) = (execs(&in_pod), events_received(&in_pod));
        podman.ok(&["exec", &sleepers.host_net, "/bin/sleep", "0.3"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        let (mut after, mut received) = (before, received_before);
        while after <= before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            let now = scrape();
            (after, received) = (execs(&now), events_received(&now));
        }
        assert!(
            after > before && received > received_before,
            "[{}] an exec in the host-network container was not counted in 10 s \
             (counter {before} -> {after}, exec events received {received_before:?} -> {received:?})",
            v.name
        );
        eprintln!(
            "chart_pod [{}]: events on; an exec in the host-network container counted ({before} -> {after})",
            v.name
        );
    }
    if let Some(url) = args_value(exporter, "--alertmanager.url") {
        // The sidecar: its series on /metrics, and the host-network sleeper's alert
        // in the test's Alertmanager, pushed by the pod itself (with the Secret's
        // credentials, where the Alertmanager asks for them).
        let alertmanager = alertmanagers.at(&url);
        let sidecar: BTreeSet<&str> = in_pod
            .iter()
            .map(|s| s.name.as_str())
            .filter(|n| n.starts_with("nsexporter_alert"))
            .collect();
        assert!(
            !sidecar.is_empty(),
            "[{}] no nsexporter_alert* series on {path} with --alertmanager.url={url}",
            v.name
        );
        let short = &sleepers.host_net[..12.min(sleepers.host_net.len())];
        let keys = am::wait_for(
            &format!(
                "[{}] the host-network sleeper's alert in Alertmanager",
                v.name
            ),
            Duration::from_secs(60),
            || {
                let keys = alertmanager.sidecar_keys()?;
                if keys.iter().any(|k| k.contains(short)) {
                    Ok(keys)
                } else {
                    Err(format!("{keys:?}\n{}", alertmanager.log_tail()))
                }
            },
        );
        eprintln!(
            "chart_pod [{}]: sidecar series {sidecar:?}; Alertmanager holds {keys:?}",
            v.name
        );
    }
    drop(played);
}

/// The test's Alertmanagers on the host's loopback: one open, one that asks for the
/// basic-auth credentials only the chart's Secret holds.
struct Alertmanagers {
    open: Alertmanager,
    auth: Alertmanager,
}

impl Alertmanagers {
    fn start(dir: &Path) -> Alertmanagers {
        let open = Alertmanager::start(dir, "am");
        let hash = bcrypt::hash(AM_PASSWORD, 4).expect("bcrypt");
        let web = dir.join("web.yml");
        fs::write(&web, format!("basic_auth_users:\n  sidecar: {hash}\n")).expect("web.yml");
        let access = am::ApiAccess {
            tls: None,
            basic_auth: Some(("sidecar".into(), AM_PASSWORD.into())),
        };
        let auth = Alertmanager::start_with(dir, "am-auth", Some(web), access);
        Alertmanagers { open, auth }
    }

    /// The one at `url`.
    fn at(&self, url: &str) -> &Alertmanager {
        [&self.open, &self.auth]
            .into_iter()
            .find(|a| a.url() == url)
            .unwrap_or_else(|| panic!("no test Alertmanager at {url}"))
    }
}

#[test]
fn chart_pod_runs_as_rendered_under_podman() {
    let podman = Podman::new();
    let image = render_daemonset(&[])["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("rendered image")
        .to_string();
    podman.build_exporter(&local_reference(&image));
    podman.build_sleeper();
    let sleepers = Sleepers::start(&podman);
    let am_dir = tempfile::tempdir().expect("tempdir");
    let alertmanagers = Alertmanagers::start(am_dir.path());
    for v in VARIANTS {
        let began = Instant::now();
        play_variant(&podman, &sleepers, &alertmanagers, v);
        eprintln!(
            "chart_pod [{}]: passed in {:.1} s",
            v.name,
            began.elapsed().as_secs_f64()
        );
    }
}

#[test]
fn gap_list_is_in_the_readme() {
    let readme = fs::read_to_string(root().join("README.md")).expect("README.md");
    for (field, lacks, translation) in GAPS {
        let row = format!("| {field} | {lacks} | {translation} |");
        assert!(
            readme.contains(&row),
            "README.md lacks the gap row (tests/chart_pod.rs GAPS):\n{row}"
        );
    }
}

#[test]
fn translation_refuses_fields_it_does_not_know() {
    let mut ds = render_daemonset(&[]);
    ds["spec"]["template"]["spec"]["containers"][0]["startupProbe"] =
        json!({"httpGet": {"path": "/healthz", "port": "metrics"}});
    let refused = std::panic::catch_unwind(|| {
        translate(
            &ds,
            &BTreeMap::new(),
            "nsx-nsexporter-abcde",
            "127.0.0.1",
            Path::new("/n"),
        )
    });
    assert!(
        refused.is_err(),
        "an unknown container field must stop the test"
    );
    let ds = render_daemonset(&["hostPID=true".into(), "hostNetwork=true".into()]);
    let t = translate(
        &ds,
        &BTreeMap::new(),
        "nsx-nsexporter-abcde",
        "10.0.0.1",
        Path::new("/n"),
    );
    assert_eq!(t.host_namespaces, BTreeSet::from(["net", "pid", "uts"]));
    assert_eq!(
        t.play_args,
        [
            "--network",
            "host",
            "--annotation",
            &format!("{HOST_NS_ANNOTATION}=pid+uts")
        ]
    );
    let c = &t.pod["spec"]["containers"][0];
    assert!(c["ports"].is_null() && c["livenessProbe"].is_null() && c["readinessProbe"].is_null());
    assert_eq!(t.probes.len(), 2);
    assert!(t.probes.iter().all(|p| p.port == 9816));
    // The runtimes' state and /run/netns come from the node root; /proc stays the host's.
    let ds = render_daemonset(&["hostRoot.runtimes.podman=true".into()]);
    let t = translate(
        &ds,
        &BTreeMap::new(),
        "nsx-nsexporter-abcde",
        "10.0.0.1",
        Path::new("/n"),
    );
    let paths: BTreeSet<String> = t.pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["hostPath"]["path"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "/proc",
        "/sys/fs/cgroup",
        "/n/run/containerd/io.containerd.runtime.v2.task",
        "/n/var/lib/containers/storage/overlay-containers",
        "/n/var/lib/containers/storage/libpod",
        "/n/run/netns",
    ] {
        assert!(paths.contains(want), "{want} not in {paths:?}");
    }
    assert_eq!(t.node_paths.len(), paths.len() - HOST_KERNEL_PATHS.len());
}

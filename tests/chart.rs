//! Helm chart checks: `helm lint`, `helm template` with default values and with every
//! toggle on (tests/chart/all-on.values.yaml), strict validation of the rendered core
//! objects against the Kubernetes 1.30 and newest bundled JSON schemas
//! (`kubernetes-validate`), hand checks of the Prometheus Operator objects that those
//! schemas do not cover, and the security-relevant fields of the DaemonSet.
//!
//! Needs `helm` (3.x), `kubernetes-validate` and, for the rendered rules, `promtool`;
//! `tests/run.sh` installs them. A missing tool fails the test with that hint instead of
//! skipping it.
//!
//! Why one file of about 800 lines: every test renders the same chart with the same
//! helm, validator and YAML helpers (the first 360 lines), and the checks of one
//! rendered object often need the others (the PrometheusRule against the rules file,
//! the dashboards' ConfigMaps against dashboards/).

mod common;

use common::{require_tool, root};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const RELEASE: &str = "nsx";
const NAMESPACE: &str = "monitoring";
/// Kubernetes versions whose schemas the rendered objects must pass: the oldest the
/// project supports and the newest that kubernetes-validate bundles.
const KUBE_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];

fn chart_dir() -> PathBuf {
    root().join("charts/nsexporter")
}

fn all_on_values() -> PathBuf {
    root().join("tests/chart/all-on.values.yaml")
}

/// The helm binary ($HELM, else `helm` on PATH), checked to be Helm 3.
fn helm() -> PathBuf {
    let helm = require_tool("helm");
    let out = Command::new(&helm)
        .args(["version", "--template", "{{.Version}}"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", helm.display()));
    let version = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && version.starts_with("v3."),
        "{} is not Helm 3 (`helm version` said {version:?}); {} installs Helm 3",
        helm.display(),
        common::SETUP
    );
    helm
}

fn run(cmd: &mut Command, stdin: Option<&[u8]>) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        if let Some(input) = stdin {
            pipe.write_all(input).expect("write stdin");
        }
    }
    child.wait_with_output().expect("wait for child")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `helm template` output as YAML text; panics with helm's message if rendering fails.
fn template_yaml(extra: &[&str]) -> String {
    let chart = chart_dir();
    let mut cmd = Command::new(helm());
    cmd.args(["template", RELEASE])
        .arg(&chart)
        .args(["--namespace", NAMESPACE])
        .args(extra);
    let out = run(&mut cmd, None);
    assert!(
        out.status.success(),
        "helm template {extra:?} failed:\n{}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `helm template` that is expected to fail; returns helm's error text.
fn template_error(extra: &[&str]) -> String {
    let mut cmd = Command::new(helm());
    cmd.args(["template", RELEASE])
        .arg(chart_dir())
        .args(["--namespace", NAMESPACE])
        .args(extra);
    let out = run(&mut cmd, None);
    assert!(
        !out.status.success(),
        "helm template {extra:?} should have failed but rendered:\n{}",
        text(&out.stdout)
    );
    text(&out.stderr)
}

/// YAML (one or many documents) to JSON values; empty documents are left out.
fn yaml_docs(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}"))
        })
        .filter(|doc| !doc.is_null())
        .collect()
}

fn render(extra: &[&str]) -> Vec<Value> {
    yaml_docs(&template_yaml(extra))
}

fn all_on_args() -> Vec<String> {
    vec!["-f".into(), all_on_values().display().to_string()]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

fn only<'a>(docs: &'a [Value], k: &str) -> &'a Value {
    let found: Vec<&Value> = docs.iter().filter(|d| kind(d) == k).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {k}, got {}",
        found.len()
    );
    found[0]
}

fn kinds(docs: &[Value]) -> BTreeSet<String> {
    docs.iter().map(|d| kind(d).to_string()).collect()
}

const OPERATOR_KINDS: [&str; 3] = ["ServiceMonitor", "PodMonitor", "PrometheusRule"];

/// Validates every core object of `yaml` with `kubernetes-validate --strict` for each
/// version in KUBE_VERSIONS and asserts that each one was really checked ("passed"),
/// not skipped for want of a schema. Prometheus Operator objects have no schema there:
/// they are checked by `check_operator_objects`.
fn validate_strict(yaml: &str) {
    let validate = require_tool("kubernetes-validate");
    let docs = yaml_docs(yaml);
    let core = docs
        .iter()
        .filter(|d| !OPERATOR_KINDS.contains(&kind(d)))
        .count();
    assert!(core > 0, "nothing to validate");
    for version in KUBE_VERSIONS {
        let out = run(
            Command::new(&validate).args(["--strict", "-k", version, "-"]),
            Some(yaml.as_bytes()),
        );
        let report = text(&out.stdout) + &text(&out.stderr);
        assert!(
            out.status.success(),
            "kubernetes-validate --strict -k {version} failed:\n{report}"
        );
        let passed = report
            .lines()
            .filter(|l| l.contains("passed for resource"))
            .count();
        assert_eq!(
            passed, core,
            "expected all {core} core objects to pass against {version}:\n{report}"
        );
        for line in report
            .lines()
            .filter(|l| l.contains("Couldn't find schema"))
        {
            assert!(
                OPERATOR_KINDS.iter().any(|k| line.contains(k)),
                "a core kind has no schema for {version}: {line}"
            );
        }
    }
}

/// Keys of `obj` must be a subset of `allowed` (a typo in a CRD field is silently ignored
/// by the API server's pruning, so it has to be caught here).
fn keys_within(obj: &Value, allowed: &[&str], what: &str) {
    let map = obj
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {obj}"));
    for key in map.keys() {
        assert!(
            allowed.contains(&key.as_str()),
            "{what} has unknown field {key:?}"
        );
    }
}

fn check_relabelings(list: &Value, what: &str) {
    for r in list.as_array().into_iter().flatten() {
        keys_within(
            r,
            &[
                "sourceLabels",
                "separator",
                "targetLabel",
                "regex",
                "modulus",
                "replacement",
                "action",
            ],
            what,
        );
    }
}

/// apiVersion, kind, required fields and known field names of the Prometheus Operator
/// objects (monitoring.coreos.com/v1), and that they select the exporter's own pods.
fn check_operator_objects(docs: &[Value]) {
    let ds = only(docs, "DaemonSet");
    let pod_labels = &ds["spec"]["template"]["metadata"]["labels"];
    let endpoint_keys = [
        "port",
        "path",
        "scheme",
        "interval",
        "scrapeTimeout",
        "honorLabels",
        "honorTimestamps",
        "relabelings",
        "metricRelabelings",
        "params",
        "tlsConfig",
        "bearerTokenSecret",
        "authorization",
        "basicAuth",
        "followRedirects",
        "enableHttp2",
    ];
    for doc in docs.iter().filter(|d| OPERATOR_KINDS.contains(&kind(d))) {
        let k = kind(doc);
        assert_eq!(doc["apiVersion"], "monitoring.coreos.com/v1", "{k}");
        keys_within(doc, &["apiVersion", "kind", "metadata", "spec"], k);
        assert!(doc["metadata"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty()));
        assert!(doc["metadata"]["namespace"].as_str().is_some());
        let spec = &doc["spec"];
        match k {
            "ServiceMonitor" | "PodMonitor" => {
                let list_key = if k == "ServiceMonitor" {
                    "endpoints"
                } else {
                    "podMetricsEndpoints"
                };
                keys_within(
                    spec,
                    &[
                        "jobLabel",
                        "namespaceSelector",
                        "selector",
                        list_key,
                        "targetLabels",
                        "podTargetLabels",
                        "sampleLimit",
                    ],
                    k,
                );
                assert_eq!(
                    spec["namespaceSelector"]["matchNames"],
                    serde_json::json!([NAMESPACE])
                );
                let selector = spec["selector"]["matchLabels"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{k} has no selector.matchLabels"));
                assert!(!selector.is_empty());
                for (key, value) in selector {
                    assert_eq!(
                        &pod_labels[key], value,
                        "{k} selects {key}={value}, which the exporter pods do not carry"
                    );
                }
                let endpoints = spec[list_key].as_array().expect("endpoint list");
                assert!(!endpoints.is_empty(), "{k} has no {list_key}");
                for e in endpoints {
                    keys_within(e, &endpoint_keys, list_key);
                    assert_eq!(e["port"], "metrics", "{k} must scrape the named port");
                    assert_eq!(e["path"], "/metrics");
                    check_relabelings(&e["relabelings"], "relabelings");
                    check_relabelings(&e["metricRelabelings"], "metricRelabelings");
                    // The exporter pod's own namespace, pod and container target labels
                    // would collide with the container names on nsexporter_container_info.
                    let drops = e["relabelings"].as_array().is_some_and(|l| {
                        l.iter().any(|r| {
                            r["action"] == "labeldrop" && r["regex"] == "(namespace|pod|container)"
                        })
                    });
                    assert!(
                        drops,
                        "{k} keeps the exporter pod's namespace/pod/container labels"
                    );
                }
            }
            "PrometheusRule" => {
                keys_within(spec, &["groups"], k);
                let groups = spec["groups"].as_array().expect("spec.groups");
                assert!(!groups.is_empty());
                for g in groups {
                    keys_within(g, &["name", "interval", "rules", "limit"], "rule group");
                    assert!(g["name"].as_str().is_some());
                    for r in g["rules"].as_array().expect("rules") {
                        keys_within(
                            r,
                            &["record", "alert", "expr", "for", "labels", "annotations"],
                            "rule",
                        );
                        assert!(r["expr"].as_str().is_some(), "rule without expr: {r}");
                        assert!(
                            r["record"].is_string() != r["alert"].is_string(),
                            "a rule is either a record or an alert: {r}"
                        );
                    }
                }
            }
            _ => unreachable!(),
        }
    }
}

#[test]
fn helm_lint_passes_with_default_and_all_on_values() {
    let helm = helm();
    for extra in [vec![], all_on_args()] {
        let mut cmd = Command::new(&helm);
        cmd.args(["lint", "--strict"]).arg(chart_dir()).args(&extra);
        let out = run(&mut cmd, None);
        let report = text(&out.stdout) + &text(&out.stderr);
        assert!(
            out.status.success(),
            "helm lint {extra:?} failed:\n{report}"
        );
        // `helm lint` only logs a template's `fail` at INFO level: treat it as an error.
        assert!(
            !report.contains("Fail:"),
            "helm lint {extra:?} hit a fail():\n{report}"
        );
        assert!(report.contains("0 chart(s) failed"), "{report}");
    }
}

#[test]
fn default_render_is_strictly_valid_and_minimal() {
    let yaml = template_yaml(&[]);
    validate_strict(&yaml);
    let docs = yaml_docs(&yaml);
    assert_eq!(
        kinds(&docs),
        ["DaemonSet", "Service", "ServiceAccount"]
            .map(String::from)
            .into(),
        "by default the chart renders only the workload, its Service and ServiceAccount"
    );
    for doc in &docs {
        assert_eq!(doc["metadata"]["namespace"], NAMESPACE, "{}", kind(doc));
    }
}

#[test]
fn all_toggles_on_render_is_strictly_valid() {
    let args = all_on_args();
    let yaml = template_yaml(&strs(&args));
    validate_strict(&yaml);
    let docs = yaml_docs(&yaml);
    let found = kinds(&docs);
    for k in [
        "DaemonSet",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
        "PodMonitor",
        "PrometheusRule",
        "NetworkPolicy",
        "ConfigMap",
    ] {
        assert!(found.contains(k), "all toggles on but no {k}: {found:?}");
    }
    check_operator_objects(&docs);
    let ds = only(&docs, "DaemonSet");
    let spec = &ds["spec"]["template"]["spec"];
    assert_eq!(spec["priorityClassName"], "system-node-critical");
    assert_eq!(spec["hostNetwork"], true);
    assert_eq!(spec["hostPID"], true);
    assert_eq!(spec["hostIPC"], true);
    assert_eq!(
        spec["dnsPolicy"], "ClusterFirstWithHostNet",
        "a hostNetwork pod still needs cluster DNS settings"
    );
    // Even with host namespaces and events asked for, the container keeps its
    // hardening: the one capability events may add, and nothing else.
    let sc = &spec["containers"][0]["securityContext"];
    assert_eq!(
        sc["capabilities"]["add"],
        serde_json::json!(["SYS_PTRACE", "NET_ADMIN"])
    );
    let args = spec["containers"][0]["args"].to_string();
    assert!(args.contains("--scan.events-retention=15m"), "{args}");
    assert_eq!(sc["readOnlyRootFilesystem"], true);
}

#[test]
fn the_validator_rejects_an_unknown_field() {
    // Negative control: strict validation must catch a misspelt field, or the two
    // tests above prove nothing.
    let mut docs = render(&[]);
    let ds = docs
        .iter_mut()
        .find(|d| kind(d) == "DaemonSet")
        .expect("a DaemonSet");
    ds["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] =
        Value::Bool(true);
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("daemonset.json");
    std::fs::write(&file, serde_json::to_vec(ds).expect("json")).expect("write");
    let out = run(
        Command::new(require_tool("kubernetes-validate"))
            .args(["--strict", "-k", KUBE_VERSIONS[0]])
            .arg(&file),
        None,
    );
    let report = text(&out.stdout) + &text(&out.stderr);
    assert!(!out.status.success(), "typo accepted:\n{report}");
    assert!(report.contains("readOnlyRootFilesytem"), "{report}");
}

#[test]
fn daemonset_is_least_privilege_and_sees_the_host_proc() {
    let docs = render(&[]);
    let ds = only(&docs, "DaemonSet");
    assert_eq!(ds["apiVersion"], "apps/v1");
    let pod = &ds["spec"]["template"]["spec"];

    // No host namespaces: the exporter reads everything from the mounted host /proc.
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        assert_eq!(pod[field], false, "{field} must be off by default");
    }
    assert!(pod.get("priorityClassName").is_none());
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );

    // Runs on every node: one toleration with operator Exists and no key tolerates
    // every taint, whatever its effect.
    let tolerations = pod["tolerations"].as_array().expect("tolerations");
    assert!(
        tolerations.iter().any(|t| t["operator"] == "Exists"
            && t.get("key").is_none()
            && t.get("effect").is_none()),
        "no catch-all toleration: {tolerations:?}"
    );

    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(
        sc["capabilities"]["add"],
        serde_json::json!(["SYS_PTRACE"]),
        "exactly the capability that reading other processes' ns links needs"
    );
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(
        sc["runAsUser"], 0,
        "capabilities only work for root in Kubernetes"
    );

    // Host /proc: hostPath /proc, mounted read-only where --path.procfs points; the
    // host's cgroup hierarchies, read-only under --path.sysfs; and, by default,
    // containerd's task state and /run/netns under /host/root, read-only.
    let volumes = pod["volumes"].as_array().expect("volumes");
    let host_paths: Vec<&str> = volumes
        .iter()
        .map(|v| {
            v["hostPath"]["path"]
                .as_str()
                .expect("only hostPath volumes")
        })
        .collect();
    assert_eq!(
        host_paths,
        [
            "/proc",
            "/sys/fs/cgroup",
            "/run/containerd/io.containerd.runtime.v2.task",
            "/run/netns"
        ],
        "{volumes:?}"
    );
    let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
    assert_eq!(mounts.len(), volumes.len());
    assert_eq!(mounts[0]["name"], volumes[0]["name"]);
    assert_eq!(mounts[0]["mountPath"], "/host/proc");
    for m in mounts {
        assert_eq!(m["readOnly"], true, "{m:?}");
    }
    assert_eq!(mounts[1]["name"], volumes[1]["name"]);
    assert_eq!(mounts[1]["mountPath"], "/host/sys/fs/cgroup");
    assert_eq!(
        mounts[2]["mountPath"],
        "/host/root/run/containerd/io.containerd.runtime.v2.task"
    );
    assert_eq!(mounts[3]["mountPath"], "/host/root/run/netns");
    assert_eq!(mounts[3]["mountPropagation"], "HostToContainer");
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--path.procfs=/host/proc"), "{args:?}");
    assert!(args.contains(&"--path.sysfs=/host/sys"), "{args:?}");
    assert!(args.contains(&"--path.rootfs=/host/root"), "{args:?}");
    assert!(args.contains(&"--web.listen-address=:9816"), "{args:?}");
    assert!(args.contains(&"--scan.interval=15s"), "{args:?}");

    // Probes on the named metrics port.
    assert_eq!(c["ports"][0]["name"], "metrics");
    assert_eq!(c["ports"][0]["containerPort"], 9816);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");

    // Requests and a memory limit, so the scheduler and the OOM killer know its size.
    for path in [
        ("requests", "cpu"),
        ("requests", "memory"),
        ("limits", "memory"),
    ] {
        assert!(
            c["resources"][path.0][path.1].is_string(),
            "resources.{}.{} missing",
            path.0,
            path.1
        );
    }

    // The Service selects exactly these pods.
    let svc = only(&docs, "Service");
    for (k, v) in svc["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(&ds["spec"]["template"]["metadata"]["labels"][k], v);
    }
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
}

/// Each runtime's state directories, and only those, are mounted read-only at their
/// own path under /host/root; never the node's `/`. With none, no --path.rootfs.
#[test]
fn runtime_directories_follow_values_and_never_mount_the_node_root() {
    let pod_of = |docs: &[Value]| only(docs, "DaemonSet")["spec"]["template"]["spec"].clone();
    let all = render(&[
        "--set",
        "hostRoot.runtimes.crio=true",
        "--set",
        "hostRoot.runtimes.docker=true",
        "--set",
        "hostRoot.runtimes.podman=true",
    ]);
    let pod = pod_of(&all);
    let paths: Vec<String> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["hostPath"]["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        paths,
        [
            "/proc",
            "/sys/fs/cgroup",
            "/run/containerd/io.containerd.runtime.v2.task",
            "/run/containers/storage/overlay-containers",
            "/var/lib/docker/containers",
            "/var/lib/containers/storage/overlay-containers",
            "/var/lib/containers/storage/libpod",
            "/run/netns",
        ]
    );
    let mounts = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .clone();
    // After /proc and the cgroup hierarchies (--path.sysfs), the runtimes' directories.
    for (m, host) in mounts.iter().zip(&paths).skip(2) {
        assert_eq!(m["readOnly"], true);
        assert_eq!(
            m["mountPath"].as_str().unwrap(),
            format!("/host/root{host}")
        );
    }
    for p in &paths {
        assert!(
            p.len() > 1 && !p.ends_with('/'),
            "a mount of the node's root: {p}"
        );
    }
    let none = render(&["--set", "hostRoot.runtimes.containerd=false"]);
    let pod = pod_of(&none);
    assert_eq!(pod["volumes"].as_array().unwrap().len(), 2);
    let args = pod["containers"][0]["args"].to_string();
    assert!(!args.contains("--path.rootfs"), "{args}");
    let err = template_error(&["--set", "hostRoot.mountPath=/"]);
    assert!(err.contains("mountPath"), "{err}");
}

#[test]
fn host_namespaces_and_priority_class_follow_values() {
    let docs = render(&["--set", "hostPID=true", "--set", "priorityClassName=high"]);
    let pod = &only(&docs, "DaemonSet")["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true);
    assert_eq!(pod["hostNetwork"], false);
    assert_eq!(pod["hostIPC"], false);
    assert!(pod.get("dnsPolicy").is_none());
    assert_eq!(pod["priorityClassName"], "high");
}

#[test]
fn events_add_the_host_pid_and_network_namespaces_and_net_admin() {
    let docs = render(&["--set", "events.enabled=true"]);
    let pod = &only(&docs, "DaemonSet")["spec"]["template"]["spec"];
    // The kernel serves its proc connector only there.
    assert_eq!(pod["hostPID"], true);
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["hostIPC"], false);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    let c = &pod["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&"--scan.events"), "{args:?}");
    assert!(args.contains(&"--scan.events-retention=10m"), "{args:?}");
    let sc = &c["securityContext"];
    assert_eq!(
        sc["capabilities"]["add"],
        serde_json::json!(["SYS_PTRACE", "NET_ADMIN"])
    );
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["allowPrivilegeEscalation"], false);

    // Without NET_ADMIN, for kernels that do not ask for it.
    let docs = render(&[
        "--set",
        "events.enabled=true",
        "--set",
        "events.netAdmin=false",
    ]);
    let c = &only(&docs, "DaemonSet")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        c["securityContext"]["capabilities"]["add"],
        serde_json::json!(["SYS_PTRACE"])
    );

    // Off by default: no flag, no host namespace, no added capability.
    let docs = render(&[]);
    let pod = &only(&docs, "DaemonSet")["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], false);
    assert_eq!(pod["hostNetwork"], false);
    let c = &pod["containers"][0];
    let args = c["args"].to_string();
    assert!(!args.contains("--scan.events"), "{args}");
    assert_eq!(
        c["securityContext"]["capabilities"]["add"],
        serde_json::json!(["SYS_PTRACE"])
    );
    let err = template_error(&["--set", "events.retention=forever"]);
    assert!(err.contains("retention"), "{err}");
}

#[test]
fn values_schema_rejects_typos_and_bad_values() {
    let err = template_error(&["--set", "hostNetwrok=true"]);
    assert!(err.contains("hostNetwrok"), "{err}");
    let err = template_error(&["--set", "exporter.logFormat=xml"]);
    assert!(err.contains("logFormat"), "{err}");
    let err = template_error(&["--set", "exporter.scanInterval=soon"]);
    assert!(err.contains("scanInterval"), "{err}");
    let err = template_error(&[
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "service.enabled=false",
    ]);
    assert!(err.contains("service.enabled"), "{err}");
}

#[test]
fn network_policy_allows_only_scrapes_and_no_egress() {
    // Without the alerting sidecar (its egress is tested with it).
    let mut args = all_on_args();
    args.extend(["--set-json".into(), "alertmanager.urls=[]".into()]);
    let docs = render(&strs(&args));
    let np = only(&docs, "NetworkPolicy");
    let spec = &np["spec"];
    assert_eq!(
        spec["policyTypes"],
        serde_json::json!(["Ingress", "Egress"])
    );
    assert_eq!(
        spec["egress"],
        serde_json::json!([]),
        "the exporter opens no connections"
    );
    let ingress = spec["ingress"].as_array().expect("ingress");
    assert_eq!(ingress.len(), 1);
    assert_eq!(
        ingress[0]["ports"],
        serde_json::json!([{"port": "metrics", "protocol": "TCP"}])
    );
    assert_eq!(
        ingress[0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    let ds = only(&docs, "DaemonSet");
    for (k, v) in spec["podSelector"]["matchLabels"]
        .as_object()
        .expect("podSelector")
    {
        assert_eq!(&ds["spec"]["template"]["metadata"]["labels"][k], v);
    }
}

fn rules_file_groups() -> Value {
    let path = chart_dir().join("files/nsexporter.rules.yml");
    let yaml = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut docs = yaml_docs(&yaml);
    assert_eq!(docs.len(), 1);
    docs.remove(0)["groups"].take()
}

fn rule_names(groups: &Value) -> Vec<String> {
    groups
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .map(|r| {
            r["record"]
                .as_str()
                .or_else(|| r["alert"].as_str())
                .expect("record or alert")
                .to_string()
        })
        .collect()
}

fn promtool_check(groups: &Value) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("rules.json");
    // promtool reads YAML, and JSON is YAML.
    std::fs::write(
        &file,
        serde_json::to_vec(&serde_json::json!({ "groups": groups })).expect("json"),
    )
    .expect("write");
    let out = Command::new(require_tool("promtool"))
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool rejects the rendered rules:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn prometheus_rule_carries_the_rules_file_and_allow_lists_the_exporter() {
    let file_groups = rules_file_groups();

    // Default allow-list: the release's own DaemonSet in its own namespace (namespace
    // and owner together, never a name alone), and its scrape jobs.
    let docs = render(&["--set", "prometheusRule.enabled=true"]);
    check_operator_objects(&docs);
    let rule = only(&docs, "PrometheusRule");
    let groups = &rule["spec"]["groups"];
    assert_eq!(
        rule_names(groups),
        rule_names(&file_groups),
        "the PrometheusRule must carry every rule of files/nsexporter.rules.yml, in order"
    );
    let rendered = serde_json::to_string(groups).expect("json");
    assert!(
        rendered.contains(r#"workload_key=~\"monitoring/DaemonSet/nsx-nsexporter\""#),
        "own DaemonSet not allowed in its namespace: {rendered}"
    );
    assert!(
        !rendered.contains("nsx-nsexporter-[a-z0-9]{5}"),
        "a pod name alone is allowed"
    );
    assert!(
        rendered.contains("monitoring/nsx-nsexporter"),
        "own PodMonitor job missing"
    );
    promtool_check(groups);

    // Expressions are unchanged except for the tokens.
    let unchanged = |g: &Value| -> Vec<String> {
        g.as_array()
            .expect("groups")
            .iter()
            .flat_map(|g| g["rules"].as_array().expect("rules").iter())
            .filter_map(|r| r["expr"].as_str())
            .filter(|e| !e.contains("NSEXPORTER_"))
            .map(str::to_string)
            .collect()
    };
    let file_exprs = unchanged(&file_groups);
    assert!(!file_exprs.is_empty());
    for e in &file_exprs {
        assert!(
            unchanged(groups).contains(e),
            "expression changed in rendering:\n{e}"
        );
    }

    // A fullnameOverride stays allow-listed.
    let docs = render(&[
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "fullnameOverride=node-ns.watch",
    ]);
    let rendered = serde_json::to_string(&only(&docs, "PrometheusRule")["spec"]).expect("json");
    assert!(
        rendered.contains(r"monitoring/DaemonSet/node-ns\\\\.watch"),
        "override not allow-listed (escaped for PromQL): {rendered}"
    );

    // User entries: joined, escaped for a double-quoted PromQL string, still valid PromQL.
    let args = all_on_args();
    let docs = render(&strs(&args));
    let groups = &only(&docs, "PrometheusRule")["spec"]["groups"];
    let rendered = serde_json::to_string(groups).expect("json");
    assert!(!rendered.contains("NSEXPORTER_ALLOW_NAMESPACES_RE"));
    assert!(!rendered.contains("NSEXPORTER_ALLOW_COMMS_RE"));
    assert!(!rendered.contains("NSEXPORTER_HOST_ROOT_ALLOW_NAMESPACES_RE"));
    for expr in rendered.split("\\n") {
        if expr.contains("namespace=~") && expr.contains("calico") {
            assert!(expr.contains("kube-system|calico-system"), "{expr}");
        }
    }
    assert!(
        rendered.contains(r#"weird\\\"comm\\\\.x"#),
        "quote and backslash escaped: {rendered}"
    );
    assert!(
        rendered.contains(
            "monitoring/DaemonSet/nsx-nsexporter|(?:kube-system)/(?:DaemonSet)/(?:cilium)|(?:ops-.*)/(?:Pod)/(?:debug-[a-z0-9]+)"
        ),
        "workload entries: {rendered}"
    );
    promtool_check(groups);
}

/// The rules as the chart renders them, run through `promtool test rules`
/// (tests/chart/allowlist.test.yml): the release's own DaemonSet and the user's
/// {namespace, kind, name} entries are allowed, and workloads named like them in
/// another namespace (a DaemonSet `evil-nsexporter`, `nsx-nsexporter` or `cilium` in a
/// tenant namespace) alert.
#[test]
fn rendered_allow_lists_match_namespace_and_owner_together() {
    let docs = render(&[
        "--set",
        "prometheusRule.enabled=true",
        "--set-json",
        r#"prometheusRule.allowList.workloads=[{"namespace":"kube-system","kind":"DaemonSet","name":"cilium"}]"#,
    ]);
    let groups = &only(&docs, "PrometheusRule")["spec"]["groups"];
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("rendered.rules.json"),
        serde_json::to_vec(&serde_json::json!({ "groups": groups })).expect("json"),
    )
    .expect("write");
    std::fs::copy(
        root().join("tests/chart/allowlist.test.yml"),
        tmp.path().join("allowlist.test.yml"),
    )
    .expect("copy");
    let out = Command::new(require_tool("promtool"))
        .args(["test", "rules", "allowlist.test.yml"])
        .current_dir(tmp.path())
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool test rules on the rendered rules:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn dashboards_ship_as_labelled_configmaps_identical_to_the_top_level_files() {
    // Helm reads only files inside the chart: charts/nsexporter/dashboards is a symlink to
    // the top-level dashboards/, which Helm 3 follows (and `helm package` bundles).
    let link = chart_dir().join("dashboards");
    let target = std::fs::read_link(&link).unwrap_or_else(|e| {
        panic!(
            "{} must be a symlink to ../../dashboards: {e}",
            link.display()
        )
    });
    assert_eq!(target, Path::new("../../dashboards"));

    let mut expected: Vec<(String, String)> = std::fs::read_dir(root().join("dashboards"))
        .expect("dashboards/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).expect("read dashboard"))
        })
        .collect();
    expected.sort();
    assert!(!expected.is_empty(), "no dashboards/*.json");

    let docs = render(&["--set", "dashboards.enabled=true"]);
    let mut shipped: Vec<(String, String)> = Vec::new();
    for cm in docs.iter().filter(|d| kind(d) == "ConfigMap") {
        assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
        let data = cm["data"].as_object().expect("data");
        assert_eq!(data.len(), 1, "one dashboard per ConfigMap");
        for (name, content) in data {
            let content = content.as_str().expect("string");
            serde_json::from_str::<Value>(content)
                .unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
            shipped.push((name.clone(), content.to_string()));
        }
    }
    shipped.sort();
    let names = |v: &[(String, String)]| v.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&shipped), names(&expected));
    for ((name, got), (_, want)) in shipped.iter().zip(&expected) {
        assert_eq!(
            got.trim_end(),
            want.trim_end(),
            "{name} differs from dashboards/{name}"
        );
    }
    assert!(
        !kinds(&render(&[])).contains("ConfigMap"),
        "dashboards are off by default"
    );
}

#[test]
fn alertmanager_sidecar_gets_urls_credentials_node_name_and_allow_list() {
    // Off by default: no flag, no env, no config, no extra volume.
    let docs = render(&[]);
    let c = &only(&docs, "DaemonSet")["spec"]["template"]["spec"]["containers"][0];
    let args = c["args"].to_string();
    assert!(
        !args.contains("alertmanager") && !args.contains("config.file"),
        "{args}"
    );
    assert!(c.get("env").is_none());

    let args = all_on_args();
    let docs = render(&strs(&args));
    let pod = &only(&docs, "DaemonSet")["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in [
        "--alertmanager.url=http://alertmanager-operated.monitoring:9093",
        "--alertmanager.url=https://alertmanager.example.internal/am",
        "--alertmanager.resend-interval=30s",
        "--alertmanager.http-config-file=/etc/nsexporter/alertmanager/http-config.yml",
        "--config.file=/etc/nsexporter/config/config.yml",
    ] {
        assert!(args.contains(&want), "{want} missing: {args:?}");
    }
    // NODE_NAME from the downward API, before the user's own variables.
    assert_eq!(c["env"][0]["name"], "NODE_NAME");
    assert_eq!(
        c["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    assert_eq!(c["env"][1]["name"], "NSEXPORTER_LOG_LEVEL");
    // The credentials come from the existing Secret, read-only, owner-only.
    let volumes = pod["volumes"].as_array().expect("volumes");
    let secret = volumes
        .iter()
        .find(|v| v.get("secret").is_some())
        .expect("a secret volume");
    assert_eq!(secret["secret"]["secretName"], "nsexporter-alertmanager");
    assert_eq!(secret["secret"]["defaultMode"], 0o400);
    let mounts = c["volumeMounts"].as_array().expect("mounts");
    let m = mounts
        .iter()
        .find(|m| m["name"] == secret["name"])
        .expect("mounted");
    assert_eq!(m["mountPath"], "/etc/nsexporter/alertmanager");
    assert_eq!(m["readOnly"], true);
    // The allow-list lands in the config file the exporter reads, as the sidecar's keys.
    let cm = docs
        .iter()
        .find(|d| {
            kind(d) == "ConfigMap"
                && d["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with("-config")
        })
        .expect("config ConfigMap");
    let cfg: Value =
        serde_yaml_ng::from_str(cm["data"]["config.yml"].as_str().expect("config.yml"))
            .expect("YAML");
    assert_eq!(
        cfg["alerts"]["allow"],
        serde_json::json!({
            "namespaces": ["kube-system"],
            "pods": ["kube-proxy-[a-z0-9]{5}"],
            "workloads": ["cilium"],
            "containers": ["istio-proxy"],
            "comms": ["cilium-agent"],
            "host-root-namespaces": ["kube-system", "calico-system"],
        })
    );
    // The binary accepts what the chart renders: the config file and the flags (less
    // the credentials file, which the Secret holds).
    let dir = tempfile::tempdir().unwrap();
    let cfg_file = dir.path().join("config.yml");
    std::fs::write(&cfg_file, cm["data"]["config.yml"].as_str().unwrap()).unwrap();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/proc");
    let run = |config: &Path| {
        Command::new(env!("CARGO_BIN_EXE_nsexporter"))
            .args(
                args.iter()
                    .filter(|a| a.starts_with("--alertmanager.") && !a.contains("http-config")),
            )
            .arg(format!("--config.file={}", config.display()))
            .args(["--path.procfs", fixture, "--once"])
            .output()
            .unwrap()
    };
    let out = run(&cfg_file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And refuses a pattern that is not a regex, naming the key.
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "alerts:\n  allow:\n    pods: [\"kube-proxy-[\"]\n").unwrap();
    let out = run(&bad);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("alerts.allow.pods in {}", bad.display())),
        "{err}"
    );
    // The NetworkPolicy opens egress to Alertmanager and DNS only.
    let np = only(&docs, "NetworkPolicy");
    let egress = np["spec"]["egress"].as_array().expect("egress");
    assert_eq!(egress.len(), 2, "{egress:?}");
    assert_eq!(
        egress[0]["ports"],
        serde_json::json!([{"port": 9093, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}])
    );
    assert_eq!(
        egress[0]["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "monitoring"
    );
    assert_eq!(
        egress[1]["ports"],
        serde_json::json!([{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}])
    );

    // Bad values are refused before anything is installed.
    let err = template_error(&["--set", "alertmanager.urls={alertmanager:9093}"]);
    assert!(err.contains("alertmanager.urls"), "{err}");
    let err = template_error(&[
        "--set",
        "alertmanager.urls={http://am:9093}",
        "--set",
        "exporter.extraArgs={--config.file=/x}",
    ]);
    assert!(err.contains("--config.file"), "{err}");
}

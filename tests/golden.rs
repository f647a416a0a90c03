//! End to end against the fixture /proc tree: the real binary's `/metrics` is diffed
//! against a checked-in golden file (`UPDATE_GOLDEN=1` rewrites it), and promtool must
//! accept that file.

mod common;

use common::*;

const GOLDEN: &str = "tests/fixtures/golden/metrics.prom";

/// Replace the values that change from run to run.
fn normalize(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("nsexporter_last_scan_duration_seconds ") {
                "nsexporter_last_scan_duration_seconds DURATION".to_string()
            } else if l.starts_with("nsexporter_last_scan_timestamp_seconds ") {
                "nsexporter_last_scan_timestamp_seconds TIMESTAMP".to_string()
            } else if let Some((name, _)) = l.split_once(' ').filter(|_| l.starts_with("process_"))
            {
                // The exporter's own process: its figures differ from run to run, its
                // series do not.
                format!("{name} PROCESS")
            } else {
                l.replace(
                    &format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
                    "version=\"VERSION\"",
                )
            }
        })
        .map(|l| l + "\n")
        .collect()
}

#[test]
fn metrics_endpoint_matches_golden_file() {
    let args = fixture_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exporter = Exporter::start(&args);
    exporter.wait_ready();
    let r = exporter.get("/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let got = normalize(&r.body);
    assert_golden(GOLDEN, &got);
    let want = got;
    // --once prints the same exposition.
    assert_eq!(normalize(&once(&args[..4])), want);
}

#[test]
fn golden_file_passes_promtool() {
    let text = std::fs::read_to_string(root().join(GOLDEN)).unwrap();
    // Placeholders are not numbers; put numbers back for promtool.
    let text = text
        .replace("DURATION", "0.001")
        .replace("TIMESTAMP", "1700000000")
        .replace("PROCESS", "1");
    let (ok, out) = promtool_check_metrics(&text);
    assert!(
        ok,
        "promtool check metrics rejected the golden file:\n{out}"
    );
}

#[test]
fn openmetrics_when_asked() {
    let args = fixture_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exporter = Exporter::start(&args);
    exporter.wait_ready();
    let r = http_get(
        exporter.addr,
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(r.body.ends_with("# EOF\n"));
    assert!(
        r.body
            .contains("# TYPE nsexporter_scans counter\nnsexporter_scans_total 1\n"),
        "{}",
        r.body
    );
    // Same samples as the text format.
    let text = exporter.get("/metrics").body;
    let a: Vec<_> = parse_exposition(&text)
        .into_iter()
        .map(|s| (s.name, s.labels))
        .collect();
    let b: Vec<_> = parse_exposition(&r.body)
        .into_iter()
        .map(|s| (s.name, s.labels))
        .collect();
    assert_eq!(a, b);
}

#[test]
fn fixture_attribution_is_right() {
    let text = once(&["--path.procfs", &fixture_proc().display().to_string()]);
    let s = parse_exposition(&text);
    // No time links in the fixture kernel: the type is left out.
    assert!(find(&s, "nsexporter_namespaces", &[("type", "time")]).is_empty());
    assert_eq!(
        value(&s, "nsexporter_namespaces_pinned", &[("type", "net")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "nsexporter_namespaces_pinned", &[("type", "uts")]),
        Some(1.0)
    );
    assert_eq!(value(&s, "nsexporter_processes", &[]), Some(14.0));
    assert_eq!(
        value(
            &s,
            "nsexporter_scan_errors_total",
            &[("reason", "vanished")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&s, "nsexporter_host_reference_info", &[("source", "pid1")]),
        Some(1.0)
    );
    // Runtimes: two containerd pods' containers + the kind pod, one CRI-O (conmon is
    // not a container), one Docker (the kind node), one Podman.
    for (rt, n) in [
        ("containerd", 3.0),
        ("cri-o", 1.0),
        ("docker", 1.0),
        ("podman", 1.0),
    ] {
        assert_eq!(
            value(&s, "nsexporter_containers", &[("runtime", rt)]),
            Some(n),
            "{rt}"
        );
    }
    // The hostUsers: false pod shares nothing but is a container; no per-container series.
    let crio: Vec<_> = s
        .iter()
        .filter(|x| {
            x.labels
                .get("container_id")
                .is_some_and(|c| c.starts_with("cri-o://"))
        })
        .collect();
    assert!(crio.is_empty(), "{crio:?}");
    // hostNetwork pod: net shared by both its containers, with the pod UID in API form.
    let net = find(
        &s,
        "nsexporter_container_host_namespace",
        &[("type", "net")],
    );
    assert_eq!(net.len(), 2);
    assert!(net
        .iter()
        .all(|x| x.labels["uid"] == "11111111-2222-3333-4444-555555555555"));
    // The kind pod is attributed to itself, with its static-pod UID.
    assert_eq!(
        find(
            &s,
            "nsexporter_container_info",
            &[
                ("comm", "etcd"),
                ("uid", "abcdef0123456789abcdef0123456789")
            ]
        )
        .len(),
        1
    );
}

const GOLDEN_SIDECAR: &str = "tests/fixtures/golden/metrics-sidecar.prom";

/// With the alerting sidecar on (towards a port where nothing listens): its series, as
/// the fixture makes them, against their own golden file (`UPDATE_GOLDEN=1` rewrites
/// it); the rest of the exposition is the golden file above. What depends on timing
/// (sends tried so far, the queue at that moment) is normalized. promtool must accept
/// the whole exposition.
#[test]
fn sidecar_series_match_golden_file() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let url = format!("http://{dead}");
    let mut args = fixture_args();
    args.extend(["--alertmanager.url".to_string(), url.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exporter = Exporter::start(&args);
    exporter.wait_ready();
    let body = exporter.get("/metrics").body;
    let (ok, out) = promtool_check_metrics(&body);
    assert!(ok, "promtool check metrics rejected it:\n{out}\n{body}");
    let sidecar = |l: &str| {
        let name = l
            .strip_prefix("# HELP ")
            .or_else(|| l.strip_prefix("# TYPE "))
            .unwrap_or(l);
        name.starts_with("nsexporter_alert")
    };
    let got: String = body
        .lines()
        .filter(|l| sidecar(l))
        .map(|l| {
            let l = l.replace(&url, "URL");
            let timing = l.starts_with("nsexporter_alertmanager_notifications_total{")
                || l.starts_with("nsexporter_alertmanager_queue_length{");
            match l.rsplit_once(' ') {
                Some((series, _)) if timing => format!("{series} N\n"),
                _ => l + "\n",
            }
        })
        .collect();
    assert_golden(GOLDEN_SIDECAR, &got);
    // The rest is the exposition without the sidecar.
    let rest: String = normalize(&body)
        .lines()
        .filter(|l| !sidecar(l))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_golden(GOLDEN, &rest);
}

/// The `process_*` series describe the exporter itself, as the client libraries
/// compute them: checked against its own /proc/<pid>, read here independently.
#[test]
fn process_series_are_the_exporters_own() {
    let args = fixture_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exporter = Exporter::start(&args);
    exporter.wait_ready();
    let s = parse_exposition(&exporter.get("/metrics").body);
    let pid = exporter.pid();
    let get = |name: &str| value(&s, name, &[]).unwrap_or_else(|| panic!("no {name}"));
    let proc_file = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}")).unwrap();
    // Fixed for the process's life: start time and the open-files limit.
    let stat = proc_file("stat");
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let start_ticks: f64 = fields[19].parse().unwrap();
    let btime: f64 = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap() as f64;
    assert_eq!(
        get("process_start_time_seconds"),
        btime + start_ticks / ticks
    );
    let soft: f64 = proc_file("limits")
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(get("process_max_fds"), soft);
    // Moving figures: plausible, and the counter only grows.
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as f64;
    let open = get("process_open_fds");
    assert!(open >= 3.0 && open <= soft, "open fds {open}, now {fds}");
    assert!(get("process_resident_memory_bytes") > 0.0);
    assert!(get("process_virtual_memory_bytes") >= get("process_resident_memory_bytes"));
    let cpu = get("process_cpu_seconds_total");
    assert!(cpu >= 0.0);
    let again = parse_exposition(&exporter.get("/metrics").body);
    assert!(value(&again, "process_cpu_seconds_total", &[]).unwrap() >= cpu);
}

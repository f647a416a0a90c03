//! Least privilege, tested against the real /proc: as UID 65534 with CAP_SYS_PTRACE as
//! its only capability (permitted, effective, inheritable, ambient and bounding set),
//! nsexporter reports a lab of namespaced containers exactly as root with every
//! capability does. Without it (and with CAP_DAC_READ_SEARCH instead) it says what is
//! missing: permission errors counted, an error log line naming CAP_SYS_PTRACE, and
//! `/readyz` failing.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// `setpriv` as nobody with exactly `caps` (e.g. "sys_ptrace"; empty for none).
fn as_nobody(caps: &str) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "setpriv".into(),
        "--reuid=65534".into(),
        "--regid=65534".into(),
        "--clear-groups".into(),
        "--no-new-privs".into(),
    ];
    if caps.is_empty() {
        v.extend(["--inh-caps=-all".into(), "--bounding-set=-all".into()]);
    } else {
        v.extend([
            format!("--inh-caps=-all,+{caps}"),
            format!("--ambient-caps=+{caps}"),
            format!("--bounding-set=-all,+{caps}"),
        ]);
    }
    v
}

/// Run `--once` through `wrapper`; (exit ok, stdout, stderr).
fn once_as(wrapper: &[String]) -> (bool, String, String) {
    let out = Command::new(&wrapper[0])
        .args(&wrapper[1..])
        .arg(BIN)
        .args(["--once", "--log.format", "logfmt"])
        .output()
        .expect("run setpriv");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The capability sets of a running process, from its status.
fn caps_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("Cap") || l.starts_with("Uid:"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn perm_errors(s: &[Sample]) -> f64 {
    value(
        s,
        "nsexporter_scan_errors_total",
        &[("reason", "permission")],
    )
    .unwrap_or(0.0)
}

/// What the lab's two containers look like in an exposition: (shared types of the
/// host-network one, shared types of the private one, host-root counts of both).
fn lab_view(
    s: &[Sample],
    hostnet: &Member,
    private: &Member,
) -> (Vec<String>, Vec<String>, f64, f64) {
    let shared = |m: &Member| {
        let id = m.container_id("docker");
        let mut t: Vec<String> = find(
            s,
            "nsexporter_container_host_namespace",
            &[("container_id", &id)],
        )
        .iter()
        .map(|x| x.labels["type"].clone())
        .collect();
        t.sort();
        t
    };
    let root = |m: &Member| {
        value(
            s,
            "nsexporter_container_host_root_processes",
            &[("container_id", &m.container_id("docker"))],
        )
        .unwrap_or(0.0)
    };
    (
        shared(hostnet),
        shared(private),
        root(hostnet),
        root(private),
    )
}

#[test]
fn cap_sys_ptrace_alone_is_enough_and_its_absence_is_reported() {
    let mut lab = Lab::new();
    // Host network, private uts/ipc/mnt; and everything private, with a pinned netns.
    let a = lab.unshare(&["--uts", "--ipc", "--mount"]);
    let hostnet = lab.docker(a);
    let b = lab.unshare(&["--net", "--uts", "--ipc", "--mount", "--pid", "--fork"]);
    let private = lab.docker(b);
    let _pinned = lab.netns_pin();

    // Reference: root with every capability.
    let root = parse_exposition(&once(&[]));
    let want = lab_view(&root, &hostnet, &private);
    assert!(want.0.contains(&"net".to_string()), "{want:?}");
    assert!(!want.1.contains(&"net".to_string()), "{want:?}");
    assert_eq!((want.2, want.3), (1.0, 1.0));

    // Nobody with CAP_SYS_PTRACE only.
    let (ok, out, err) = once_as(&as_nobody("sys_ptrace"));
    assert!(ok, "{err}");
    let got = parse_exposition(&out);
    assert_eq!(lab_view(&got, &hostnet, &private), want, "{out}");
    // No more refusals than root meets (a hardened PID 1 refuses even root).
    assert!(
        perm_errors(&got) <= perm_errors(&root),
        "{} permission errors with CAP_SYS_PTRACE, {} as root\n{err}",
        perm_errors(&got),
        perm_errors(&root)
    );
    // Mount tables are readable too: the pinned netns is seen (no CAP_DAC_READ_SEARCH).
    let pinned = |s: &[Sample]| value(s, "nsexporter_namespaces_pinned", &[("type", "net")]);
    assert!(pinned(&got) >= Some(1.0), "{out}");
    assert_eq!(
        value(
            &got,
            "nsexporter_host_reference_info",
            &[("source", "pid1")]
        ),
        value(
            &root,
            "nsexporter_host_reference_info",
            &[("source", "pid1")]
        )
    );
    assert_eq!(
        find(&got, "nsexporter_namespace_limit", &[]).len(),
        find(&root, "nsexporter_namespace_limit", &[]).len()
    );
    eprintln!(
        "privilege: root permission errors {}, CAP_SYS_PTRACE-only {}",
        perm_errors(&root),
        perm_errors(&got)
    );

    // Without CAP_SYS_PTRACE, with no capability or with CAP_DAC_READ_SEARCH instead:
    // the lab is invisible, so --once prints nothing and fails, naming the capability.
    for caps in ["", "dac_read_search"] {
        let (ok, out, err) = once_as(&as_nobody(caps));
        assert!(!ok, "[{caps}] --once must fail when blind:\n{out}");
        assert!(out.is_empty(), "[{caps}] {out}");
        let line = err
            .lines()
            .find(|l| l.contains("CAP_SYS_PTRACE"))
            .unwrap_or_else(|| panic!("[{caps}] no message names CAP_SYS_PTRACE:\n{err}"));
        assert!(line.starts_with("nsexporter: "), "{line}");
        eprintln!("privilege [{caps:?}] --once: {line}");
    }

    // And as a server: not ready, saying why, with the refusals counted and the
    // reason in nsexporter_procfs_blind; ready with the capability.
    let wrapper = as_nobody("");
    let w: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let e = Exporter::start_wrapped(&w, &["--scan.interval", "300ms"]);
    eprintln!("privilege: no caps: {}", caps_of(e.pid()));
    let line = e.wait_log("CAP_SYS_PTRACE", Duration::from_secs(10));
    assert!(line.contains("level=error"), "{line}");
    let s = e.scrape_until(Duration::from_secs(10), "the first scan", |s| {
        value(s, "nsexporter_scans_total", &[]).unwrap_or(0.0) >= 1.0
    });
    assert!(perm_errors(&s) > 0.0);
    assert_eq!(
        value(&s, "nsexporter_procfs_blind", &[("reason", "permission")]),
        Some(1.0)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = e.get("/readyz");
        assert_eq!(r.status, 503, "{}", r.body);
        if r.body.contains("CAP_SYS_PTRACE") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", r.body);
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(e);
    let wrapper = as_nobody("sys_ptrace");
    let w: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let e = Exporter::start_wrapped(&w, &["--scan.interval", "300ms"]);
    let caps = caps_of(e.pid());
    eprintln!("privilege: CAP_SYS_PTRACE only: {caps}");
    // CapEff/CapBnd hold exactly bit 19 (CAP_SYS_PTRACE), and the UID is 65534.
    assert!(caps.contains("CapEff:\t0000000000080000"), "{caps}");
    assert!(caps.contains("CapBnd:\t0000000000080000"), "{caps}");
    assert!(caps.contains("Uid:\t65534\t65534\t65534\t65534"), "{caps}");
    e.wait_ready();
    let s = e.scrape_until(Duration::from_secs(10), "the lab", |s| {
        lab_view(s, &hostnet, &private) == want
    });
    assert!(value(&s, "nsexporter_processes", &[]).unwrap_or(0.0) > 2.0);
}

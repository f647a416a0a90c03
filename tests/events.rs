//! The proc connector on the real kernel: an exec is received with its PID, and outside
//! the initial namespaces a subscription fails with the reason that names what is
//! missing (it never hangs, and never looks like a quiet success).
//!
//! Some cases must run in a process of their own inside a new namespace (a
//! multi-threaded test harness cannot `unshare` a user namespace): this file has its own
//! `main` (harness = false), runs itself again under `unshare`, and reads the child's
//! one-line verdict.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nsexporter::events::{self, Connector, Message, Options, ProcEvent, Unavailable};
use nsexporter::model::NsType;
use nsexporter::procfs::paths::HostPaths;

const PROBE: &str = "NSX_EVENTS_PROBE";

type Test = (&'static str, fn());

const TESTS: &[Test] = &[
    (
        "an_exec_is_received_with_its_pid",
        an_exec_is_received_with_its_pid,
    ),
    (
        "a_thread_in_a_new_network_namespace_is_refused_and_told_why",
        a_thread_in_a_new_network_namespace_is_refused_and_told_why,
    ),
    (
        "a_process_in_a_new_network_namespace_says_so",
        a_process_in_a_new_network_namespace_says_so,
    ),
    (
        "a_process_in_a_new_user_namespace_says_so",
        a_process_in_a_new_user_namespace_says_so,
    ),
    (
        "a_process_in_a_new_pid_namespace_says_so",
        a_process_in_a_new_pid_namespace_says_so,
    ),
    (
        "the_kernel_ignores_a_new_user_namespace_and_the_timeout_says_so",
        the_kernel_ignores_a_new_user_namespace_and_the_timeout_says_so,
    ),
    (
        "without_cap_net_admin_it_subscribes_or_names_the_capability",
        without_cap_net_admin_it_subscribes_or_names_the_capability,
    ),
];

fn main() {
    if let Ok(mode) = std::env::var(PROBE) {
        probe(&mode);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in TESTS {
            println!("{name}: test");
        }
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let exact = args.iter().any(|a| a == "--exact");
    let selected: Vec<&Test> = TESTS
        .iter()
        .filter(|(name, _)| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if exact {
                        name == f
                    } else {
                        name.contains(f.as_str())
                    }
                })
        })
        .collect();
    println!("\nrunning {} tests", selected.len());
    if !is_root() {
        // Every case needs the connector, which this machine gives to root; say so
        // loudly rather than pass.
        eprintln!("tests/events.rs needs root (the proc connector and unshare): FAILED");
        std::process::exit(101);
    }
    let mut failed = Vec::new();
    for (name, f) in selected {
        let ok = std::panic::catch_unwind(f).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(*name);
        }
    }
    if !failed.is_empty() {
        println!("\nfailures: {failed:?}");
        std::process::exit(101);
    }
    println!("\ntest result: ok");
}

fn is_root() -> bool {
    // SAFETY: plain syscall.
    unsafe { libc::geteuid() == 0 }
}

/// The child side: subscribe (checked, or unchecked to see what the kernel itself
/// does), print one verdict line and exit.
fn probe(mode: &str) -> ! {
    let opts = Options {
        answer_timeout: Duration::from_millis(1500),
        ..Options::default()
    };
    let res = match mode {
        "kernel" => Connector::subscribe_unchecked(&opts),
        _ => events::subscribe(&HostPaths::default(), &opts),
    };
    match res {
        Ok(_) => println!("subscribed"),
        Err(e) => println!("unavailable: {}", verdict(&e)),
    }
    std::process::exit(0);
}

/// A stable short form of the reason, for the parent to check, then the text.
fn verdict(e: &Unavailable) -> String {
    let kind = match e {
        Unavailable::Namespaces(t) => {
            let names: Vec<&str> = t.iter().map(|t| t.name()).collect();
            format!("namespaces={}", names.join(","))
        }
        Unavailable::Permission { .. } => "permission".into(),
        Unavailable::Unsupported => "unsupported".into(),
        Unavailable::NoAnswer(_) => "no-answer".into(),
        Unavailable::Io { .. } => "io".into(),
    };
    format!("{kind} | {e}")
}

/// Run this test binary as a probe under `unshare <flags>` and return its verdict.
fn probe_under(flags: &[&str], mode: &str) -> String {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new("unshare")
        .args(flags)
        .arg(exe)
        .env(PROBE, mode)
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    assert!(
        out.status.success(),
        "probe under unshare {flags:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Receive until `pred` matches a message or `deadline` passes.
fn receive_until(
    conn: &mut Connector,
    deadline: Duration,
    mut pred: impl FnMut(&Message) -> bool,
) -> Option<Message> {
    let end = Instant::now() + deadline;
    let mut msgs = Vec::new();
    while Instant::now() < end {
        msgs.clear();
        conn.recv(&mut msgs).expect("recv");
        if let Some(m) = msgs.iter().find(|m| pred(m)) {
            return Some(*m);
        }
    }
    None
}

fn an_exec_is_received_with_its_pid() {
    let mut conn =
        events::subscribe(&HostPaths::default(), &Options::default()).expect("subscribe as root");
    let mut child = Command::new("true").spawn().expect("spawn true");
    let pid = child.id();
    let _ = child.wait();
    let exec = receive_until(
        &mut conn,
        Duration::from_secs(10),
        |m| matches!(m.event, ProcEvent::Exec { tgid, .. } if tgid == pid),
    );
    let exec = exec.unwrap_or_else(|| panic!("no exec event for pid {pid} within 10 s"));
    assert_eq!(exec.event, ProcEvent::Exec { pid, tgid: pid });
    assert!(exec.timestamp_ns > 0);
    // The exit of the same process comes after it, on the same socket.
    let exit = receive_until(
        &mut conn,
        Duration::from_secs(10),
        |m| matches!(m.event, ProcEvent::Exit { tgid, .. } if tgid == pid),
    );
    assert!(exit.is_some(), "no exit event for pid {pid}");
    let s = conn.stats();
    assert!(s.execs >= 1 && s.events >= 2, "{s:?}");
}

fn a_thread_in_a_new_network_namespace_is_refused_and_told_why() {
    // A network namespace is per thread: this one leaves the initial one, and asks the
    // kernel directly (no pre-check).
    let res = std::thread::spawn(|| {
        // SAFETY: plain syscall; it changes only this thread, which ends right after.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
        Connector::subscribe_unchecked(&Options::default()).map(|_| ())
    })
    .join()
    .expect("thread");
    match res {
        Err(e @ Unavailable::Namespaces(_)) => {
            assert!(matches!(&e, Unavailable::Namespaces(t) if t == &[NsType::Net]));
            let text = e.to_string();
            assert!(text.contains("initial net namespace"), "{text}");
            assert!(text.contains("hostNetwork"), "{text}");
        }
        other => panic!("expected the network namespace named, got {other:?}"),
    }
}

fn a_process_in_a_new_network_namespace_says_so() {
    let v = probe_under(&["--net"], "checked");
    assert!(v.starts_with("unavailable: namespaces=net |"), "{v}");
    // The kernel alone says the same (ECONNREFUSED from a namespace without the
    // connector's socket).
    let v = probe_under(&["--net"], "kernel");
    assert!(v.starts_with("unavailable: namespaces=net |"), "{v}");
}

fn a_process_in_a_new_user_namespace_says_so() {
    let v = probe_under(&["--user", "--map-root-user"], "checked");
    assert!(v.starts_with("unavailable: namespaces=user |"), "{v}");
    assert!(v.contains("initial user namespace"), "{v}");
}

fn a_process_in_a_new_pid_namespace_says_so() {
    let v = probe_under(&["--pid", "--fork"], "checked");
    assert!(v.starts_with("unavailable: namespaces=pid |"), "{v}");
}

fn the_kernel_ignores_a_new_user_namespace_and_the_timeout_says_so() {
    // Without the pre-check, the kernel drops the request silently; the subscription
    // then ends at its deadline with a reason, rather than waiting forever.
    let started = Instant::now();
    let v = probe_under(&["--user", "--map-root-user"], "kernel");
    assert!(v.starts_with("unavailable: no-answer |"), "{v}");
    assert!(v.contains("initial user and PID namespaces"), "{v}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// Run this test binary as a probe under `wrapper` (a command that execs its
/// arguments) and return its verdict.
fn probe_wrapped(wrapper: &[&str], mode: &str) -> String {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(wrapper[0])
        .args(&wrapper[1..])
        .arg(exe)
        .env(PROBE, mode)
        .stdin(Stdio::null())
        .output()
        .expect("run the wrapper");
    assert!(
        out.status.success(),
        "probe under {wrapper:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn without_cap_net_admin_it_subscribes_or_names_the_capability() {
    // Older kernels ask for CAP_NET_ADMIN; since 6.6 the kernel gives process events to
    // any process in the initial namespaces. Either way the answer is one of these two,
    // never a hang or an error that names nothing.
    let cases: [&[&str]; 2] = [
        &[
            "setpriv",
            "--inh-caps=-net_admin",
            "--bounding-set=-net_admin",
        ],
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ],
    ];
    for wrapper in cases {
        for mode in ["checked", "kernel"] {
            let v = probe_wrapped(wrapper, mode);
            println!("  {wrapper:?} {mode}: {v}");
            assert!(
                v == "subscribed"
                    || (v.starts_with("unavailable: permission |")
                        && v.contains("CAP_NET_ADMIN is missing")),
                "{wrapper:?} {mode}: {v}"
            );
        }
    }
}

//! `--scan.events` end to end, on the real kernel: the exporter binary, real
//! container-shaped cgroups (the lab), real execs.
//!
//! - A process in a container cgroup, in the host network namespace, that lives 200 ms
//!   between two scans (interval 60 s) is counted at once, and its counter and info
//!   are still exposed 30 s later, while the gauges say it is gone.
//! - The same run without `--scan.events` does not count it: the test measures events.
//! - A burst of up to 20,000 execs in 10 s (tests/tools/execstorm.c, as fast as the
//!   machine allows): the exporter keeps serving, its memory stays bounded, any loss is
//!   counted, and the next scan is exact.
//! - A container that is gone keeps the names its runtime's files gave it, for the
//!   retention, also when its files are gone too.
//! - Without the connector (a new network or user namespace): one log line names what
//!   is missing, the gauge reads 0, and scans go on.
//!
//! Why one file of about 1000 lines: its tests share one lab, one exporter harness and
//! the exec storm; split, each file would build the storm and repeat the harness.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{find, parse_exposition, value, Exporter, Lab};

const EXECS: &str = "nsexporter_container_host_namespace_execs_total";

/// A process started so that it joins a container's cgroup between its fork and its
/// exec: its exec is the container's from the start (a process moved in after its
/// exec may be read by the events thread before or after the move, so whether that
/// exec counts would be a race). Killed on drop.
struct InContainer {
    child: Child,
}

impl InContainer {
    fn start(lab: &Lab, cgroup: &str, cmd: &mut Command) -> InContainer {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let files = lab.cgroup_procs(cgroup);
        let fds: Vec<i32> = files.iter().map(|f| f.as_raw_fd()).collect();
        // SAFETY: between fork and exec only write(2) on descriptors the parent
        // opened, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                for fd in &fds {
                    if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?} in {cgroup}: {e}"));
        drop(files);
        InContainer { child }
    }

    fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait")
    }
}

impl Drop for InContainer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sleep_cmd(secs: &str) -> Command {
    let mut c = Command::new("sleep");
    c.arg(secs).stdout(Stdio::null());
    c
}

fn execs(samples: &[common::Sample], container_id: &str) -> Option<f64> {
    value(
        samples,
        EXECS,
        &[("container_id", container_id), ("type", "net")],
    )
}

/// What one run of the 200 ms container showed.
struct ShortLived {
    id: String,
    /// The first scrape that showed its exec counter, and how long after its start.
    seen: Option<(Duration, Vec<common::Sample>)>,
    /// `nsexporter_scans_total` and `nsexporter_events_lost_total` before it started.
    scans_before: f64,
    lost_before: f64,
}

/// Run a process that joins a fresh container cgroup (`/docker/<id>`) before its exec,
/// stays in the host network namespace and lives 200 ms; scrape `nsx` until its exec
/// counter shows or `wait` has passed.
fn short_lived_container(nsx: &Exporter, lab: &mut Lab, wait: Duration) -> ShortLived {
    let s = parse_exposition(&nsx.get("/metrics").body);
    let scans_before = value(&s, "nsexporter_scans_total", &[]).expect("scans_total");
    let lost_before = value(&s, "nsexporter_events_lost_total", &[]).unwrap_or(0.0);
    let (m, cgroup) = lab.docker_cgroup();
    let id = m.container_id("docker");
    let t0 = Instant::now();
    let mut p = InContainer::start(lab, &cgroup, &mut sleep_cmd("0.2"));
    let mut seen = None;
    while t0.elapsed() < wait {
        let s = parse_exposition(&nsx.get("/metrics").body);
        if execs(&s, &id).is_some() {
            seen = Some((t0.elapsed(), s));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    p.wait();
    ShortLived {
        id,
        seen,
        scans_before,
        lost_before,
    }
}

/// The mechanism, not the speed: with `--scan.interval 60s` only the first scan runs
/// during the test, and a process that lives 200 ms between scans is counted, so it
/// was the exec event that counted it (the scrape that shows the counter also shows
/// that no scan ran since the process started). How fast (the 1 s target) is the
/// benchmark's figure (bench/events.sh); here a slow machine only takes longer. The
/// kernel may drop events when the machine is flooded with execs (other work on it);
/// that loss is counted and starts a scan that cannot see a process already gone, so
/// only then is the run repeated with a new container, at most twice.
#[test]
fn a_200ms_host_network_process_in_a_container_is_counted_and_kept() {
    common::require_root("the container is a real cgroup and the proc connector needs root");
    let nsx = Exporter::start(&["--scan.interval", "60s", "--scan.events"]);
    nsx.wait_ready();
    let mut lab = Lab::new();
    let mut attempt = 0;
    let (run, after, s) = loop {
        attempt += 1;
        // Three attempts of 15 s end well before the second periodic scan (60 s).
        let run = short_lived_container(&nsx, &mut lab, Duration::from_secs(15));
        if let Some((after, s)) = run.seen.clone() {
            break (run, after, s);
        }
        let s = parse_exposition(&nsx.get("/metrics").body);
        let lost = value(&s, "nsexporter_events_lost_total", &[]).unwrap_or(0.0);
        assert!(
            lost > run.lost_before && attempt < 3,
            "{}'s exec was not counted within 15 s (attempt {attempt}; events lost meanwhile: {})",
            run.id,
            lost - run.lost_before
        );
        println!(
            "attempt {attempt}: {} events were lost (the kernel dropped them), so {}'s exec may \
             be among them; again with a new container",
            lost - run.lost_before,
            run.id
        );
    };
    let id = run.id.clone();
    println!("exec -> counted in /metrics after {after:?} (attempt {attempt})");
    assert_eq!(value(&s, "nsexporter_scan_events_enabled", &[]), Some(1.0));
    assert!(value(&s, "nsexporter_exec_events_total", &[]).unwrap_or(0.0) >= 1.0);
    assert_eq!(execs(&s, &id), Some(1.0));
    let lost = value(&s, "nsexporter_events_lost_total", &[]).unwrap_or(0.0);
    let scans = value(&s, "nsexporter_scans_total", &[]).expect("scans_total");
    if lost == run.lost_before {
        assert_eq!(
            scans, run.scans_before,
            "a scan ran between the exec and the scrape that showed it: the test would not \
             show that events counted it"
        );
    } else {
        // A loss starts a scan at once; it could have read the process while it lived.
        println!(
            "events were lost during the run ({} -> {lost}): not checking that no scan ran",
            run.lost_before
        );
    }
    // Only the namespaces it was in: host net (and the others the lab shares), never
    // anything about a container's private namespace.
    let info = find(&s, "nsexporter_container_info", &[("container_id", &id)]);
    assert_eq!(info.len(), 1, "one info series");
    assert_eq!(
        info[0].labels.get("comm").map(String::as_str),
        Some("sleep")
    );

    // 30 s later: still exposed (the retention is 10m), while the gauges, which
    // describe the present, no longer show it (its exit was folded in).
    let later = Instant::now() + Duration::from_secs(30);
    nsx.scrape_until(Duration::from_secs(30), "the exit to be folded in", |s| {
        find(
            s,
            "nsexporter_container_host_namespace",
            &[("container_id", &id)],
        )
        .is_empty()
    });
    while Instant::now() < later {
        std::thread::sleep(Duration::from_millis(500));
    }
    let s = parse_exposition(&nsx.get("/metrics").body);
    assert_eq!(execs(&s, &id), Some(1.0), "counter gone within 30 s");
    assert_eq!(
        find(&s, "nsexporter_container_info", &[("container_id", &id)]).len(),
        1,
        "info gone within 30 s"
    );
    assert!(find(
        &s,
        "nsexporter_container_host_namespace",
        &[("container_id", &id)]
    )
    .is_empty());
}

/// The same process without `--scan.events`: not counted, so the test above measures
/// events. It waits a fixed 5 s: the test above sees the counter in well under a
/// second (its printed figure) on an idle machine.
#[test]
fn without_events_the_same_process_is_not_counted() {
    common::require_root("the container is a real cgroup");
    let nsx = Exporter::start(&["--scan.interval", "60s"]);
    nsx.wait_ready();
    let mut lab = Lab::new();
    let run = short_lived_container(&nsx, &mut lab, Duration::from_secs(5));
    assert!(
        run.seen.is_none(),
        "counted without events: the other test would prove nothing"
    );
    let s = parse_exposition(&nsx.get("/metrics").body);
    assert_eq!(value(&s, "nsexporter_scan_events_enabled", &[]), Some(0.0));
    assert_eq!(value(&s, "nsexporter_exec_events_total", &[]), Some(0.0));
    assert_eq!(
        value(&s, "nsexporter_scans_total", &[]),
        Some(run.scans_before)
    );
    assert_eq!(execs(&s, &run.id), None);
}

/// The retention's other end: with `--scan.events-retention 10s` the exec counter and
/// info of the 200 ms container go once 10 s have passed since it was last seen (at
/// the first publish after that: a scan, every second here). Load only delays that, so
/// a scrape done within 9 s of the one that first showed it must still show it (it is
/// done after 1 s; a machine too loaded for that fails, it does not skip the check).
#[test]
fn a_gone_container_is_dropped_after_the_retention() {
    common::require_root("the container is a real cgroup and the proc connector needs root");
    let nsx = Exporter::start(&[
        "--scan.interval",
        "1s",
        "--scan.events",
        "--scan.events-retention",
        "10s",
    ]);
    nsx.wait_ready();
    let mut lab = Lab::new();
    let run = short_lived_container(&nsx, &mut lab, Duration::from_secs(30));
    let (after, _) = run
        .seen
        .unwrap_or_else(|| panic!("{}'s exec was not counted within 30 s", run.id));
    let seen_at = Instant::now();
    let id = run.id;
    let info =
        |s: &[common::Sample]| find(s, "nsexporter_container_info", &[("container_id", &id)]).len();
    std::thread::sleep(Duration::from_secs(1));
    let s = parse_exposition(&nsx.get("/metrics").body);
    let early = seen_at.elapsed();
    assert!(
        early < Duration::from_secs(9),
        "a scrape 1 s later took until {early:?}: too late to say anything about the \
         early side (this machine is overloaded)"
    );
    assert_eq!(execs(&s, &id), Some(1.0), "dropped before the retention");
    assert_eq!(info(&s), 1, "info dropped before the retention");
    let s = nsx.scrape_until(
        Duration::from_secs(60),
        "the counter and info dropped after the retention",
        |s| execs(s, &id).is_none() && info(s) == 0,
    );
    let gone_after = seen_at.elapsed();
    println!("counted after {after:?}; dropped {gone_after:?} after that");
    assert!(
        gone_after >= Duration::from_secs(9),
        "dropped after {gone_after:?}"
    );
    assert!(
        find(&s, EXECS, &[("container_id", &id)]).is_empty(),
        "a series of another type stayed"
    );
}

#[test]
fn a_container_found_by_a_scan_is_counted_once() {
    // A long-lived container process in the host network namespace, present before the
    // exporter starts: the first scan counts it once, later scans do not again.
    let mut lab = Lab::new();
    let (m, cgroup) = lab.docker_cgroup();
    let _p = InContainer::start(&lab, &cgroup, &mut sleep_cmd("600"));
    let id = m.container_id("docker");
    let nsx = Exporter::start(&["--scan.interval", "200ms"]);
    nsx.wait_ready();
    let s = nsx.scrape_until(Duration::from_secs(10), "three scans", |s| {
        value(s, "nsexporter_scans_total", &[]).unwrap_or(0.0) >= 3.0
    });
    assert_eq!(execs(&s, &id), Some(1.0));
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// tests/tools/execstorm.c built into `dir`: the generator, and the static binary
/// without libc it execs (exit(0) and nothing else: the cheapest exec there is).
fn build_execstorm(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/execstorm.c");
    let storm = dir.join("execstorm");
    let nop = dir.join("nop");
    for args in [
        vec!["-O2", "-static", "-pthread", "-o"],
        vec!["-O2", "-static", "-nostdlib", "-DEXECSTORM_NOP", "-o"],
    ] {
        let out_file = if args.contains(&"-nostdlib") {
            &nop
        } else {
            &storm
        };
        let out = Command::new(common::require_tool("cc"))
            .args(&args)
            .arg(out_file)
            .arg(&src)
            .output()
            .expect("cc is needed to build tests/tools/execstorm.c (it links Rust too)");
        assert!(
            out.status.success(),
            "cc {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (storm, nop)
}

/// The `key=value` pairs of execstorm's one output line.
fn storm_field(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in execstorm's output {line:?}"))
}

/// Processes in `cgroup` now (the v2 hierarchy).
fn live_in(cgroup: &str) -> usize {
    std::fs::read_to_string(format!(
        "{}{cgroup}/cgroup.procs",
        common::cgroup_layout().v2
    ))
    .expect("cgroup.procs")
    .lines()
    .count()
}

/// The storm's target: 20,000 execs in 10 s. The test asserts its properties at
/// whatever rate this machine reaches (it prints the rate): a machine shared with other
/// work may give the generator less than the 2,000 a second the target needs.
const BURST_EXECS: u64 = 20_000;
const BURST_SECONDS: u64 = 10;
/// What the exporter may grow by during the burst. What waits for the sampler is
/// capped (4,096 read processes), not one entry per exec: 20,000 execs kept would cost
/// more than this on their own.
const BURST_RSS_GROWTH_KIB: u64 = 16 * 1024;

#[test]
fn a_burst_of_20000_execs_keeps_it_serving_bounded_and_exact() {
    let tools = tempfile::tempdir().expect("tempdir");
    let (storm_bin, nop) = build_execstorm(tools.path());
    let nsx = Exporter::start(&["--scan.interval", "15s", "--scan.events"]);
    nsx.wait_ready();
    let pid = nsx.pid();
    let mut lab = Lab::new();
    // The container: one long-lived process in the host network namespace, and the
    // storm, whose children (and so their execs) are in the container's cgroup.
    let (m, cgroup) = lab.docker_cgroup();
    let id = m.container_id("docker");
    let _anchor = InContainer::start(&lab, &cgroup, &mut sleep_cmd("600"));
    nsx.scrape_until(
        Duration::from_secs(20),
        "the long-lived process counted",
        |s| execs(s, &id) == Some(1.0),
    );
    let rss_before = rss_kib(pid);
    let before = parse_exposition(&nsx.get("/metrics").body);
    let vanished_before = value(
        &before,
        "nsexporter_scan_errors_total",
        &[("reason", "vanished")],
    )
    .unwrap_or(0.0);
    let lost_before = value(&before, "nsexporter_events_lost_total", &[]).unwrap_or(0.0);
    let scans_before = value(&before, "nsexporter_scans_total", &[]).unwrap_or(0.0);
    nsx.drain_log();
    let since_drain = Instant::now();

    let mut storm = InContainer::start(
        &lab,
        &cgroup,
        Command::new(&storm_bin)
            .args([
                &BURST_EXECS.to_string(),
                &BURST_SECONDS.to_string(),
                "4",
                "0",
            ])
            .arg(&nop)
            .stdout(Stdio::piped()),
    );
    // It keeps serving throughout: every scrape answers 200 (a failed one panics).
    let mut scrapes = 0;
    let mut worst = Duration::ZERO;
    let mut peak_rss = rss_before;
    while storm.child.try_wait().expect("try_wait").is_none() {
        let t = Instant::now();
        let r = nsx.get("/metrics");
        assert_eq!(r.status, 200, "a scrape failed during the burst");
        worst = worst.max(t.elapsed());
        scrapes += 1;
        peak_rss = peak_rss.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut line = String::new();
    std::io::Read::read_to_string(storm.child.stdout.as_mut().expect("stdout"), &mut line)
        .expect("execstorm's output");
    assert!(storm.wait().success(), "execstorm: {line}");
    let ran = storm_field(&line, "execs");
    let rate = storm_field(&line, "rate");
    let burst = storm_field(&line, "seconds");

    // Every exec of the storm is accounted for: counted, gone before it could be read
    // (vanished), or lost. Others' processes exec, vanish and are lost too, so the
    // node's counters alone do not say when the storm's are handled: wait for the sum.
    let accounted = |s: &[common::Sample]| {
        let counted = execs(s, &id).unwrap_or(0.0) - 1.0;
        let vanished = value(s, "nsexporter_scan_errors_total", &[("reason", "vanished")])
            .unwrap_or(0.0)
            - vanished_before;
        let lost = value(s, "nsexporter_events_lost_total", &[]).unwrap_or(0.0) - lost_before;
        (counted, vanished, lost)
    };
    let s = nsx.scrape_until(Duration::from_secs(120), "every exec accounted for", |s| {
        let (c, v, l) = accounted(s);
        c + v + l >= ran
    });
    peak_rss = peak_rss.max(rss_kib(pid));
    let (counted, vanished, lost) = accounted(&s);
    let scans = value(&s, "nsexporter_scans_total", &[]).unwrap_or(0.0) - scans_before;
    let loss_lines = nsx
        .drain_log()
        .iter()
        .filter(|l| l.contains("process events were lost"))
        .count();
    println!(
        "burst: {ran} execs in {burst:.1} s ({rate:.0}/s; target {BURST_EXECS} in \
         {BURST_SECONDS} s); {scrapes} scrapes, slowest {worst:?}; counted {counted}, \
         exited before they could be read {vanished}, lost {lost} ({loss_lines} log \
         lines), scans {scans}; RSS {rss_before} -> peak {peak_rss} KiB"
    );
    assert!(ran >= 1000.0, "the storm hardly ran: {line}");
    // Counted at most once each; every one counted, vanished or lost (others'
    // processes may be among the vanished and lost, so this is a bound).
    assert!(counted <= ran, "counted {counted} of {ran} execs");
    assert!(counted + vanished + lost >= ran);
    // A loss is counted, logged at most once a minute, and starts a full scan at once.
    let minutes = since_drain.elapsed().as_secs() / 60;
    assert!(
        loss_lines as u64 <= 1 + minutes,
        "lost events logged {loss_lines} times in {minutes} minutes"
    );
    if lost > 0.0 {
        assert!(scans >= 1.0, "events were lost but no scan repaired them");
        if lost_before == 0.0 {
            assert!(loss_lines >= 1, "events were lost and not logged");
        }
    }
    // Memory stays bounded.
    assert!(
        peak_rss <= rss_before + BURST_RSS_GROWTH_KIB,
        "RSS grew from {rss_before} to {peak_rss} KiB, more than {BURST_RSS_GROWTH_KIB} KiB"
    );
    // The next scan is exact: the container's processes in the gauges are those alive
    // in its cgroup (the long-lived one), whatever the events left out or lost; and the
    // scan did not count the storm's execs again.
    let scans_now = value(&s, "nsexporter_scans_total", &[]).unwrap_or(0.0);
    let s = nsx.scrape_until(Duration::from_secs(40), "the next scan", |s| {
        value(s, "nsexporter_scans_total", &[]).unwrap_or(0.0) > scans_now
    });
    let live = live_in(&cgroup) as f64;
    assert_eq!(live, 1.0, "the storm left processes behind");
    for (name, labels) in [
        (
            "nsexporter_container_host_namespace",
            vec![("container_id", id.as_str()), ("type", "net")],
        ),
        (
            "nsexporter_container_host_root_processes",
            vec![("container_id", id.as_str())],
        ),
    ] {
        assert_eq!(value(&s, name, &labels), Some(live), "{name}");
    }
    assert!(execs(&s, &id).unwrap_or(0.0) <= ran + 1.0);
    drop(lab);
}

/// Sends SIGCONT to a process it stopped, also when the test fails meanwhile.
struct Stopped(i32);

impl Stopped {
    fn stop(pid: u32) -> Stopped {
        let pid = pid as i32;
        // SAFETY: kill(2) on the exporter this test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0, "SIGSTOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// Lost events, made for sure: the exporter is stopped (SIGSTOP) while 20,000 execs
/// fill its socket's receive buffer (8 MiB: a few thousand events), so the kernel
/// drops the rest and says so (`ENOBUFS`) when it reads again. The loss is counted,
/// logged once, and a full scan starts at once (`--scan.interval 10m`: no periodic
/// scan explains it). A second loss in the same minute is counted and repaired by a
/// scan too, but not logged again.
#[test]
fn lost_events_are_counted_logged_once_a_minute_and_start_a_scan() {
    common::require_root("the proc connector needs root");
    let tools = tempfile::tempdir().expect("tempdir");
    let (storm_bin, nop) = build_execstorm(tools.path());
    let nsx = Exporter::start(&["--scan.interval", "10m", "--scan.events"]);
    nsx.wait_ready();
    let started = Instant::now();
    let mut lines = Vec::new();
    let mut last = parse_exposition(&nsx.get("/metrics").body);
    assert_eq!(
        value(&last, "nsexporter_scan_events_enabled", &[]),
        Some(1.0)
    );
    for round in 1..=2 {
        let lost0 = value(&last, "nsexporter_events_lost_total", &[]).expect("lost_total");
        let scans0 = value(&last, "nsexporter_scans_total", &[]).expect("scans_total");
        {
            let _stopped = Stopped::stop(nsx.pid());
            let out = Command::new(&storm_bin)
                .args(["20000", "30", "4", "0"])
                .arg(&nop)
                .output()
                .expect("run execstorm");
            assert!(out.status.success(), "execstorm: {out:?}");
        }
        let s = nsx.scrape_until(
            Duration::from_secs(60),
            "the loss counted and a scan",
            |s| {
                value(s, "nsexporter_events_lost_total", &[]).unwrap_or(0.0) > lost0
                    && value(s, "nsexporter_scans_total", &[]).unwrap_or(0.0) > scans0
            },
        );
        // Let the exporter read what the buffer still held (the gaps it shows count
        // too), so that the next round starts from a settled count.
        let mut s = s;
        let settle = Instant::now() + Duration::from_secs(30);
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let next = parse_exposition(&nsx.get("/metrics").body);
            let lost = |s: &[common::Sample]| value(s, "nsexporter_events_lost_total", &[]);
            let settled = lost(&next) == lost(&s);
            s = next;
            if settled || Instant::now() > settle {
                break;
            }
        }
        lines.extend(
            nsx.drain_log()
                .into_iter()
                .filter(|l| l.contains("process events were lost")),
        );
        println!(
            "round {round}: lost {} events, scans {} -> {}, loss log lines so far {}",
            value(&s, "nsexporter_events_lost_total", &[]).unwrap_or(0.0) - lost0,
            scans0,
            value(&s, "nsexporter_scans_total", &[]).unwrap_or(0.0),
            lines.len()
        );
        last = s;
    }
    assert!(
        started.elapsed() < Duration::from_secs(600),
        "the periodic scan could explain the scans"
    );
    // Both rounds ran within a minute of the first line (else a second line is due).
    if started.elapsed() < Duration::from_secs(60) {
        assert_eq!(lines.len(), 1, "logged more than once a minute: {lines:?}");
    } else {
        println!("slower than a minute: only checking that the loss was logged");
        assert!(!lines.is_empty());
    }
    assert!(
        lines[0].contains("nsexporter_events_lost_total"),
        "{}",
        lines[0]
    );
}

/// GET `path` from inside the network namespace of process `pid` (a thread's network
/// namespace is its own: this one joins it, makes the request and ends).
fn get_in_netns_of(pid: u32, addr: std::net::SocketAddr, path: &str) -> common::Response {
    let path = path.to_string();
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).expect("open ns/net");
        // SAFETY: plain syscall on a descriptor this thread owns; it changes only this
        // thread, which ends right after.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        common::http_get(addr, &path, &[])
    })
    .join()
    .expect("scrape thread")
}

/// Start the exporter under `unshare <flags>` with `--scan.events`, and check the one
/// log line, the gauge, and that scans go on.
fn unavailable_under(flags: &[&str], missing: &str) {
    // A new network namespace has its loopback down: bring it up, then run the
    // exporter ($0) with its arguments.
    let mut wrapper = vec!["unshare"];
    wrapper.extend_from_slice(flags);
    wrapper.extend_from_slice(&[
        "sh",
        "-c",
        "ip link set lo up 2>/dev/null; exec \"$0\" \"$@\"",
    ]);
    let nsx = Exporter::start_wrapped(&wrapper, &["--scan.interval", "200ms", "--scan.events"]);
    // In a new user namespace the exporter cannot read other processes' links (it is
    // not ready, rightly); scans still run and count.
    let deadline = Instant::now() + Duration::from_secs(20);
    let s = loop {
        let r = get_in_netns_of(nsx.child.id(), nsx.addr, "/metrics");
        assert_eq!(r.status, 200);
        let s = parse_exposition(&r.body);
        if value(&s, "nsexporter_scans_total", &[]).unwrap_or(0.0) >= 3.0 {
            break s;
        }
        assert!(Instant::now() < deadline, "scans do not go on: {}", r.body);
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(value(&s, "nsexporter_scan_events_enabled", &[]), Some(0.0));
    assert!(value(&s, "nsexporter_processes", &[]).unwrap_or(0.0) >= 1.0);
    // What it logged in its first seconds (bounded: a line per scan would never let
    // a read-until-quiet loop end, and is itself a fault this test catches below).
    let mut lines = Vec::new();
    let quiet_by = Instant::now() + Duration::from_secs(2);
    while let Ok(l) = nsx
        .stderr
        .recv_timeout(quiet_by.saturating_duration_since(Instant::now()))
    {
        lines.push(l);
    }
    // At 200 ms, a line per scan would be ten a second; a persistent condition is
    // logged once (then at most once a minute).
    let errors = lines.iter().filter(|l| l.contains("level=error")).count();
    assert!(
        errors <= 1,
        "a persistent condition logged per scan: {lines:#?}"
    );
    let about: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("process events (--scan.events) are unavailable"))
        .collect();
    assert_eq!(about.len(), 1, "one log line: {lines:#?}");
    assert!(about[0].contains(missing), "{}", about[0]);
    assert!(about[0].contains("level=warn"), "{}", about[0]);
    // Still running: never an exit, never a crash loop.
    let mut nsx = nsx;
    assert!(nsx.child.try_wait().expect("try_wait").is_none());
}

#[test]
fn in_a_new_network_namespace_it_says_so_and_scans_go_on() {
    unavailable_under(&["--net"], "initial net namespace");
}

#[test]
fn in_a_new_user_namespace_it_says_so_and_scans_go_on() {
    unavailable_under(&["--user", "--map-root-user"], "initial user namespace");
}

/// A runc bundle as containerd's CRI plugin writes it (trimmed) for container `id`,
/// under the host root `rootfs`, naming it `namespace/pod/container`; returns its
/// directory (containerd removes it when the task is deleted).
fn containerd_bundle(
    rootfs: &std::path::Path,
    id: &str,
    (namespace, pod, container): (&str, &str, &str),
) -> std::path::PathBuf {
    let dir = rootfs.join(format!(
        "run/containerd/io.containerd.runtime.v2.task/k8s.io/{id}"
    ));
    std::fs::create_dir_all(&dir).expect("mkdir bundle");
    std::fs::write(
        dir.join("config.json"),
        format!(
            r#"{{"ociVersion":"1.1.0","process":{{"args":["/bin/sleep","1"],"cwd":"/"}},"root":{{"path":"rootfs"}},
"annotations":{{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-namespace":"{namespace}","io.kubernetes.cri.sandbox-name":"{pod}","io.kubernetes.cri.container-name":"{container}","io.kubernetes.cri.sandbox-uid":"x"}},
"linux":{{"namespaces":[{{"type":"pid"}},{{"type":"ipc"}},{{"type":"uts"}},{{"type":"mount"}}]}}}}"#
        ),
    )
    .expect("write config.json");
    dir
}

/// `nsexporter watch [--json]` against a real exec in a containerd container whose
/// bundle names it: the line names the container (ID, pod UID and names), the PID, the
/// comm and the host namespaces.
fn watch_sees_an_exec(json: bool) {
    use std::io::BufRead;
    let rootfs = tempfile::tempdir().expect("tempdir");
    let mut lab = Lab::new();
    let (m, cgroup) = lab.kube_systemd_cgroup("besteffort", "cri-containerd");
    let id = m.container_id("containerd");
    containerd_bundle(rootfs.path(), &m.id, ("debug", "node-debugger-x", "shell"));
    let mut cmd = Command::new(common::BIN);
    cmd.args(["watch", "--path.rootfs"]).arg(rootfs.path());
    if json {
        cmd.arg("--json");
    }
    let mut w = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start watch");
    let stdout = w.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    // Subscribing takes a moment: exec in the container until watch shows one, within
    // a deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut execs = Vec::new();
    let line = loop {
        execs.push(InContainer::start(&lab, &cgroup, &mut sleep_cmd("1")));
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            if line.contains(&m.id) {
                break line;
            }
        }
        assert!(Instant::now() < deadline, "watch printed no line for {id}");
    };
    let _ = w.kill();
    let _ = w.wait();
    println!("watch: {line}");
    if json {
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
        assert!(v["pid"].as_u64().is_some_and(|p| p > 0), "{line}");
        assert_eq!(v["comm"], "sleep", "{line}");
        assert_eq!(v["container_id"], id.as_str(), "{line}");
        assert_eq!(v["uid"], m.pod_uid.as_str(), "{line}");
        assert_eq!(v["runtime"], "containerd", "{line}");
        assert_eq!(v["namespace"], "debug", "{line}");
        assert_eq!(v["pod"], "node-debugger-x", "{line}");
        assert_eq!(v["container"], "shell", "{line}");
        let types: Vec<&str> = v["host_ns"]
            .as_array()
            .expect("host_ns")
            .iter()
            .filter_map(|t| t.as_str())
            .collect();
        assert!(types.contains(&"net"), "{line}");
        assert!(v["at"].as_f64().is_some_and(|t| t > 1.6e9), "{line}");
    } else {
        assert!(
            line.contains(&format!("  {id}  debug/node-debugger-x/shell  pid ")),
            "{line}"
        );
        assert!(line.contains("  sleep  host "), "{line}");
        assert!(line.contains("net"), "{line}");
    }
}

#[test]
fn watch_prints_a_line_per_exec() {
    watch_sees_an_exec(false);
}

#[test]
fn watch_json_prints_an_object_per_exec() {
    watch_sees_an_exec(true);
}

/// A short-lived container keeps the names its runtime's files gave it in
/// `nsexporter_container_info` after its last process is gone and its bundle deleted:
/// one whose process was still there when its exec was folded in (names from the
/// snapshot), and one so short that its exit usually comes in the same batch as its
/// exec (names read for the exec record itself).
#[test]
fn a_gone_container_keeps_its_names_for_the_retention() {
    let rootfs = tempfile::tempdir().expect("tempdir");
    let mut lab = Lab::new();
    let (long, long_cg) = lab.kube_systemd_cgroup("besteffort", "cri-containerd");
    let (short, short_cg) = lab.kube_systemd_cgroup("besteffort", "cri-containerd");
    let bundles = [
        containerd_bundle(rootfs.path(), &long.id, ("shop", "web-0", "app")),
        containerd_bundle(rootfs.path(), &short.id, ("batch", "job-1", "once")),
    ];
    let nsx = Exporter::start(&[
        "--scan.interval",
        "60s",
        "--scan.events",
        "--path.rootfs",
        rootfs.path().to_str().expect("UTF-8 path"),
    ]);
    nsx.wait_ready();
    let long_id = long.container_id("containerd");
    let short_id = short.container_id("containerd");
    InContainer::start(&lab, &long_cg, &mut sleep_cmd("0.3")).wait();
    // 20 ms may be over before the events thread reads it on a busy machine (then it
    // counts as vanished): try until one is counted.
    let mut tries = 0;
    while execs(&parse_exposition(&nsx.get("/metrics").body), &short_id).is_none() {
        tries += 1;
        assert!(tries <= 50, "no 20 ms process of {short_id} was counted");
        InContainer::start(&lab, &short_cg, &mut sleep_cmd("0.02")).wait();
        std::thread::sleep(Duration::from_millis(300));
    }
    nsx.scrape_until(Duration::from_secs(10), "both counted and gone", |s| {
        execs(s, &long_id).is_some()
            && find(s, "nsexporter_container_host_namespace", &[])
                .iter()
                .all(|x| {
                    x.labels["container_id"] != long_id && x.labels["container_id"] != short_id
                })
    });
    // The runtime deletes the tasks' bundles; a third container's exec makes a new
    // publish after that.
    for b in &bundles {
        std::fs::remove_dir_all(b).expect("remove bundle");
    }
    let (other, other_cg) = lab.docker_cgroup();
    let other_id = other.container_id("docker");
    let _p = InContainer::start(&lab, &other_cg, &mut sleep_cmd("2"));
    let s = nsx.scrape_until(Duration::from_secs(10), "a publish after", |s| {
        execs(s, &other_id).is_some()
    });
    for (cid, names) in [
        (&long_id, ("shop", "web-0", "app")),
        (&short_id, ("batch", "job-1", "once")),
    ] {
        let info = find(&s, "nsexporter_container_info", &[("container_id", cid)]);
        assert_eq!(info.len(), 1, "info of {cid}");
        let l = &info[0].labels;
        assert_eq!(
            (
                l["namespace"].as_str(),
                l["pod"].as_str(),
                l["container"].as_str()
            ),
            names,
            "{cid}"
        );
        assert_eq!(l["comm"], "sleep");
    }
}

/// A FROM-scratch image around the host's static busybox, `sleep` its entrypoint (no
/// image can be pulled here); built once per test process.
fn sleeper_image() -> &'static str {
    const TAG: &str = "nsexporter-events-sleeper:test";
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let ctx = tempfile::tempdir().map_err(|e| e.to_string())?;
        let bin = ctx.path().join("bin");
        std::fs::create_dir(&bin).map_err(|e| e.to_string())?;
        std::fs::copy("/bin/busybox", bin.join("busybox"))
            .map_err(|e| format!("/bin/busybox (busybox-static): {e}"))?;
        std::os::unix::fs::symlink("busybox", bin.join("sleep")).map_err(|e| e.to_string())?;
        std::fs::write(
            ctx.path().join("Dockerfile"),
            "FROM scratch\nCOPY bin/ /bin/\nENTRYPOINT [\"/bin/sleep\"]\n",
        )
        .map_err(|e| e.to_string())?;
        let out = Command::new(common::require_tool("docker"))
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "-t", TAG])
            .arg(ctx.path())
            .output()
            .map_err(|e| format!("docker: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "building {TAG} failed (is dockerd running? tests/docker/start-dockerd.sh): {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    });
    if let Err(e) = built {
        panic!("{e}");
    }
    TAG
}

/// A Docker container started here; removed when dropped, pass or fail.
struct DockerContainer(String);

impl DockerContainer {
    fn run(args: &[&str]) -> DockerContainer {
        let out = Command::new(common::require_tool("docker"))
            .args(["run", "-d", "--label", "nsexporter-test=scan_events"])
            .args(args)
            .output()
            .expect("docker (tests/docker/start-dockerd.sh starts dockerd)");
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success() && id.len() == 64,
            "docker run {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        DockerContainer(id)
    }

    fn wait(&self) {
        let st = Command::new(common::require_tool("docker"))
            .args(["wait", &self.0])
            .stdout(Stdio::null())
            .status()
            .expect("docker wait");
        assert!(st.success());
    }
}

impl Drop for DockerContainer {
    fn drop(&mut self) {
        let _ = Command::new(common::require_tool("docker"))
            .args(["rm", "-f", "-v", &self.0])
            .output();
    }
}

/// Real Docker containers started while events are on: runc's own init, which a read
/// right after its exec finds in the container's cgroup while still in every host
/// namespace, is not counted as the container's exec; the container's own process is,
/// once, in the host namespaces it really shares.
#[test]
fn runc_setting_up_a_docker_container_is_not_a_host_namespace_exec() {
    let image = sleeper_image();
    let nsx = Exporter::start(&["--scan.interval", "60s", "--scan.events"]);
    nsx.wait_ready();
    let private: Vec<DockerContainer> = (0..3)
        .map(|_| DockerContainer::run(&["--network", "none", image, "1"]))
        .collect();
    let hostnet = DockerContainer::run(&["--network", "host", image, "1"]);
    for c in private.iter().chain([&hostnet]) {
        c.wait();
    }
    let host_id = format!("docker://{}", hostnet.0);
    let s = nsx.scrape_until(
        Duration::from_secs(20),
        "the containers' execs counted",
        |s| {
            execs(s, &host_id).is_some()
                && private.iter().all(|c| {
                    value(
                        s,
                        EXECS,
                        &[
                            ("container_id", &format!("docker://{}", c.0)),
                            ("type", "user"),
                        ],
                    )
                    .is_some()
                })
        },
    );
    for c in &private {
        let id = format!("docker://{}", c.0);
        let counted: Vec<(String, f64)> = find(&s, EXECS, &[("container_id", &id)])
            .iter()
            .map(|x| (x.labels["type"].clone(), x.value))
            .collect();
        // Docker shares the host's cgroup (v1), time and user namespaces with every
        // container: `sleep`'s exec, once. Nothing else, and never net, pid or ipc.
        let want: Vec<(String, f64)> = ["cgroup", "time", "user"]
            .iter()
            .map(|t| (t.to_string(), 1.0))
            .collect();
        assert_eq!(counted, want, "{id}");
        let info = find(&s, "nsexporter_container_info", &[("container_id", &id)]);
        assert_eq!(info[0].labels["comm"], "sleep", "{id}");
    }
    assert_eq!(execs(&s, &host_id), Some(1.0));
    for t in ["pid", "ipc", "mnt", "uts"] {
        assert_eq!(
            value(&s, EXECS, &[("container_id", &host_id), ("type", t)]),
            None,
            "{t}"
        );
    }
}

